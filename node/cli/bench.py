"""`chorus bench`: run the experiment through the chain and write the report.

    chorus bench                          # quick profile (a few minutes), private Anvil, reports/quick-seed0/
    chorus bench --profile full           # the full grid (under an hour on 2 cores); resumable
    chorus bench --rpc-url http://127.0.0.1:8545 --out reports/mine      # a dev chain (31337): dev keys
    chorus bench --rpc-url https://rpc.example --keystore funder.json --password-file pw.txt  # any chain
    chorus bench --data tasks.parquet     # your own tasks (CSV/Parquet, models.data.loader format)
    chorus bench --latent-dim 8           # the synthetic market with 8-dim latents per modality
    chorus bench --profile mechanisms --latent-dim 8 --n-train 20000   # more training tasks per model
    chorus bench --report-only --out reports/quick-seed0
    chorus bench --node-port 30000        # node APIs on 30000, 30001, ... (checked free first)

A killed run started again with the same options continues where it stopped (finished units are
kept in `<out>/units.jsonl`); `--fresh` starts over. The command only reads its options: the run
itself is `node.experiment.bench.run_bench`. Heavy imports happen inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer


def bench(
    profile: str = typer.Option("quick", "--profile", help="quick (minutes; what `make demo` runs), full (the "
                                "whole grid, under an hour on 2 cores), mechanisms (the ablation decomposition "
                                "at alpha 0, 0.5 and 1 alone, e.g. with --latent-dim 8) or tiny (tests)."),
    seed: int = typer.Option(0, "--seed", help="Base seed: the run's seeds are seed, seed+1, ..."),
    out: Path | None = typer.Option(None, "--out", help="Report folder (default reports/<run-id>)."),  # noqa: B008
    rpc_url: str | None = typer.Option(
        None, "--rpc-url", help="Any EVM JSON-RPC; default: a private Anvil started and stopped here. On chain id "
                                "31337 the bench signs with Anvil's funded dev keys; on any other chain it needs "
                                "--keystore (a funded account that deploys, owns and funds fresh node keys), e.g. "
                                "--rpc-url https://rpc.example --keystore funder.json --password-file pw.txt"),
    keystore: Path | None = typer.Option(  # noqa: B008
        None, "--keystore", help="Encrypted JSON keystore (geth / eth-account) of the funder: it deploys the "
                                 "contracts, submits the tasks and funds generated node keys, which give back what "
                                 "is left at the end. Required on a chain other than 31337; optional on 31337."),
    password_file: Path | None = typer.Option(  # noqa: B008
        None, "--password-file", help="File holding the --keystore password (else CHORUS_KEYSTORE_PASSWORD)."),
    fund_per_key: str | None = typer.Option(
        None, "--fund-per-key", metavar="ETH",
        help="Ether sent to each generated node key (with --keystore); default: the stake plus 150k gas per task of "
             "the profile's busiest session at today's max fee (2 x base fee + tip)."),
    data: Path | None = typer.Option(  # noqa: B008
        None, "--data", help="Your own tasks (CSV/Parquet in the models.data.loader format) instead of the synthetic "
                             "market."),
    latent_dim: int = typer.Option(
        1, "--latent-dim", min=1, max=16, metavar="M",
        help="Dimension of each modality's latent in the synthetic market (models.data.synthetic, 'Latent "
             "dimension'): 1 (default) is the original generator; 2..16 give m-dim latents with bilinear "
             "cross-modal terms, the same payloads, and an upper bound (measurement_bound) as the observation "
             "ceiling. Not with --data."),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="Override the profile's number of seeds."),
    tasks: int | None = typer.Option(None, "--tasks", min=1, help="Override the on-chain tasks per (seed, arch)."),
    n_train: int | None = typer.Option(
        None, "--n-train", min=100, max=1_000_000, metavar="N",
        help="Override the profile's training tasks for every model the run trains (quick and full: 5,000; "
             "validation and test sets keep their size). Part of the run folder's name and of its identity."),
    sweeps: bool = typer.Option(True, "--sweeps/--no-sweeps", help="Run the sweeps after the main table."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard the finished units of an earlier run in --out."),
    report_only: bool = typer.Option(False, "--report-only", help="Only render the report from --out's units."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when an honesty check fails."),
    prices: Path | None = typer.Option(  # noqa: B008
        None, "--prices", metavar="FILE",
        help="JSON object of fee-model prices for the report's 'What a task costs' (US$ per task on Ethereum L1, "
             "an OP Stack chain and Arbitrum), any subset of: eth_usd, l1_gas_price_gwei, op_l1_base_fee_gwei, "
             "op_l1_blob_base_fee_gwei, op_base_fee_scalar, op_blob_base_fee_scalar (integers, scaled by 1e6), "
             "op_l2_gas_price_gwei, arbitrum_l1_price_per_unit_gwei, arbitrum_l2_gas_price_gwei; the rest keep "
             "their defaults (docs/experiment.md). Works with --report-only."),
    node_port: int | None = typer.Option(
        None, "--node-port", min=1, max=65535, metavar="PORT",
        help="First HTTP API port (127.0.0.1) of the node processes the bench starts (agents, fusion nodes, U "
             "coordinators): each takes the next port, as many as the run's plan has node keys (the run prints the "
             "range). All are checked free before anything starts; a taken one stops the run with its number. Default: "
             "free ports found as the run goes, from 21700 + 10 x (pid mod 400). The private Anvil takes a port "
             "the system picks (or give --rpc-url)."),
) -> None:
    """Run every architecture through the chain, the sweeps and the honesty checks;
    write report.md, results.json and PNG plots; print the summary table."""
    import signal

    from node.chain.fees import Prices
    from node.experiment.bench import BenchRequest, run_bench
    from node.protocol.errors import ChorusError

    signal.signal(signal.SIGTERM, _interrupt)  # clean up as on Ctrl-C: nodes, chain, training stop
    try:
        prof_check(profile)
        if data is not None and not data.is_file():
            raise typer.BadParameter(f"--data {data}: no such file")
        if data is not None and latent_dim != 1:
            raise typer.BadParameter("--latent-dim is for the synthetic market, not --data")
        fee_prices = Prices.load(prices) if prices is not None else None
        results = run_bench(BenchRequest(profile=profile, seed=seed, out=out, rpc_url=rpc_url, data=data, seeds=seeds,
                                         tasks=tasks, n_train=n_train, sweeps=sweeps, fresh=fresh,
                                         report_only=report_only, keystore=keystore, password_file=password_file, fund_per_key=fund_per_key,
                                         node_port=node_port, prices=fee_prices, latent_dim=latent_dim))
    except ChorusError as exc:
        typer.echo(f"bench failed: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: finished units are kept; run the same command again to continue", err=True)
        raise typer.Exit(130) from None
    if results is None:
        raise typer.Exit(1)
    if strict and not results["honesty"]["all_passed"]:
        raise typer.Exit(1)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def prof_check(profile: str) -> None:
    from node.experiment.config import PROFILES

    if profile not in PROFILES:
        raise typer.BadParameter(f"--profile must be one of {', '.join(PROFILES)}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
