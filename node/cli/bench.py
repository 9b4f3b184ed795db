"""`chorus bench`: run the experiment through the chain and write the report.

    chorus bench                          # quick profile (a few minutes), private Anvil, reports/quick-seed0/
    chorus bench --profile full           # the full grid (under an hour on 2 cores); resumable
    chorus bench --rpc-url http://127.0.0.1:8545 --out reports/mine      # a dev chain (31337): dev keys
    chorus bench --rpc-url https://rpc.example --keystore funder.json --password-file pw.txt  # any chain
    chorus bench --data tasks.parquet     # your own tasks (CSV/Parquet, models.data.loader format)
    chorus bench --report-only --out reports/quick-seed0

A killed run started again with the same options continues where it stopped (finished units are
kept in `<out>/units.jsonl`); `--fresh` starts over. Heavy imports happen inside the command.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer


def run_id(profile: str, seed: int, data: Path | None, overrides: dict[str, object]) -> str:
    parts = [profile, f"seed{seed}"]
    if data is not None:
        parts.append(Path(data).stem)
    parts += [f"{k}{v}" for k, v in sorted(overrides.items()) if v is not None]
    return "-".join(parts)


class _RichUi:
    """Progress bars: finished units overall, and the tasks of the batch on chain."""

    def __init__(self, progress) -> None:
        from node.experiment.runner import Ui

        self.progress = progress
        self.units = progress.add_task("units", total=1)
        self.tasks = progress.add_task("tasks", total=1, visible=False)
        self.ui = Ui(start_units=self.start_units, unit_done=self.unit_done, status=self.status,
                     start_tasks=self.start_tasks, task_done=self.task_done)

    def start_units(self, total: int) -> None:
        self.progress.update(self.units, total=total, completed=0)

    def unit_done(self, key: str) -> None:
        self.progress.update(self.units, advance=1)

    def status(self, text: str) -> None:
        self.progress.update(self.units, description=text[:70])

    def start_tasks(self, what: str, total: int) -> None:
        self.progress.update(self.tasks, description=f"  tasks {what}"[:70], total=total, completed=0, visible=True)

    def task_done(self) -> None:
        self.progress.update(self.tasks, advance=1)


def print_summary(results: dict, console) -> None:
    """The summary as two tables (quality, then costs), narrow enough for an 80-column terminal."""
    from rich.table import Table

    from node.experiment.report.render import SUMMARY_HEADER, summary_rows

    run = results["run"]
    rows = summary_rows(results)
    quality = Table(title=f"Chorus bench {run['id']}: decisions as finalized on chain, {len(run['seeds'])} seeds "
                          "(mean ± 95% interval)", title_style="bold")
    for i, col in enumerate(SUMMARY_HEADER[:5]):
        quality.add_column(col, justify="left" if i == 0 else "right")
    costs = Table(title="What it cost (per task, from the receipts; latency submit -> TaskFinalized)",
                  title_style="bold")
    for i, col in enumerate([SUMMARY_HEADER[0], *SUMMARY_HEADER[5:]]):
        costs.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        style = "bold" if row[0] in ("U", "Oracle") else None
        quality.add_row(*row[:5], style=style)
        if row[0] != "Oracle":
            costs.add_row(row[0], *row[5:], style=style)
    console.print(quality)
    console.print(costs)
    for check in results["honesty"]["checks"]:
        mark = {True: "[green]PASS[/green]", False: "[red]FAIL[/red]", None: "[yellow]n/a[/yellow]"}[check["passed"]]
        console.print(f"{mark} {check['name']}: {check['detail']}")


def bench(
    profile: str = typer.Option("quick", "--profile", help="quick (minutes; what `make demo` runs), full (the "
                                "whole grid, under an hour on 2 cores) or tiny (tests)."),
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
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="Override the profile's number of seeds."),
    tasks: int | None = typer.Option(None, "--tasks", min=1, help="Override the on-chain tasks per (seed, arch)."),
    sweeps: bool = typer.Option(True, "--sweeps/--no-sweeps", help="Run the sweeps after the main table."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard the finished units of an earlier run in --out."),
    report_only: bool = typer.Option(False, "--report-only", help="Only render the report from --out's units."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when an honesty check fails."),
) -> None:
    """Run every architecture of DESIGN.md through the chain, the sweeps and the honesty checks;
    write report.md, results.json and PNG plots; print the summary table."""
    import signal

    from node.protocol.errors import ChorusError

    signal.signal(signal.SIGTERM, _interrupt)  # clean up as on Ctrl-C: nodes, chain, training stop
    try:
        prof_check(profile)
        if data is not None and not data.is_file():
            raise typer.BadParameter(f"--data {data}: no such file")
        results = run_bench(profile=profile, seed=seed, out=out, rpc_url=rpc_url, data=data, seeds=seeds,
                            tasks=tasks, sweeps=sweeps, fresh=fresh, report_only=report_only, keystore=keystore,
                            password_file=password_file, fund_per_key=fund_per_key)
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


def run_bench(*, profile: str = "quick", seed: int = 0, out: Path | None = None, rpc_url: str | None = None,
              data: Path | None = None, seeds: int | None = None, tasks: int | None = None, sweeps: bool = True,
              fresh: bool = False, report_only: bool = False, console=None, chain_label: str | None = None,
              keystore: Path | None = None, password_file: Path | None = None, fund_per_key: str | None = None,
              rerun_check: bool = True) -> dict | None:
    """The bench with progress bars and the summary table; returns the results (None: nothing to
    report). Raises ChorusError on failure and KeyboardInterrupt when interrupted (finished units
    stay in the run folder). `keystore` (+ `password_file` or CHORUS_KEYSTORE_PASSWORD): sign with
    that funder account and generated node keys (`node.experiment.keys`) instead of the dev keys."""
    import json
    import shutil
    import time

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from node.experiment.config import RunOptions, get_profile
    from node.experiment.report.render import make_run_info, write_report
    from node.experiment.runner import (
        CHECKPOINT,
        RUN_FILE,
        Bench,
        Checkpoint,
        check_run_file,
    )

    console = console or Console()
    prof = get_profile(profile, seeds=seeds, tasks=tasks)
    rid = run_id(profile, seed, data, {"seeds": seeds, "tasks": tasks} | ({"nosweeps": ""} if not sweeps else {}))
    folder = Path(out) if out is not None else Path("reports") / rid
    opts = RunOptions(profile=prof, seed=seed, out=folder, rpc_url=rpc_url, data=data, sweeps=sweeps,
                      rerun_check=rerun_check)
    keys = None if report_only else bench_keys(keystore, password_file, fund_per_key)
    if fresh and not report_only:
        for name in (CHECKPOINT, RUN_FILE):
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / ".work", ignore_errors=True)
    started = time.time()
    timings: dict[str, float] = {}
    signing: dict | None = None
    if not report_only:
        check_run_file(folder, opts)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            ui = _RichUi(progress)
            runner = Bench(opts, folder, ui.ui, keys=keys)
            planned = [key for session in runner.sessions() for key in session.units]
            done = sum(runner.checkpoint.done(key) for key in planned)
            if done:
                console.print(f"resuming {folder}: {done} of {len(planned)} units already finished "
                              f"({CHECKPOINT}); --fresh starts over")
            try:
                runner.run()
            finally:
                if runner.signing:
                    _print_funds(runner.signing, console)
            timings, signing = runner.timings, runner.signing
    elif (folder / RUN_FILE).exists():
        saved = json.loads((folder / RUN_FILE).read_text())
        opts = RunOptions(profile=get_profile(saved["profile"]["name"], **_overrides(saved["profile"])),
                          seed=saved["seed"], out=folder, data=Path(saved["data"]) if saved.get("data") else None,
                          sweeps=saved.get("sweeps", True))
    records = Checkpoint(folder / CHECKPOINT).records
    if not records:
        console.print(f"[red]no finished units in {folder}[/red]")
        return None
    chain = chain_label or ((f"private anvil, a block every {prof.block_time:g} s" if prof.block_time else
                             "private anvil, auto-mine") if rpc_url is None else _safe(rpc_url))
    if keys is not None and keys.funder is not None and chain_label is None:
        chain += f"; signed by keystore account {keys.funder.address}, fresh node keys"
    run = make_run_info(opts, folder.name, started, time.time(), timings, chain)
    if signing:
        run["signing"] = signing  # addresses and amounts only
    previous, env = _previous(folder)
    if report_only and previous:  # the run's own facts, not the re-rendering's
        run.update({k: previous[k] for k in ("started", "started_ts", "finished", "wall_s", "timings", "chain",
                                             "signing") if k in previous})
    results = write_report(records, opts, folder, run, env if report_only else None)
    print_summary(results, console)
    took = "" if report_only else f"  ({time.time() - started:.0f} s)"
    console.print(f"report: {folder / 'report.md'}  results: {folder / 'results.json'}{took}")
    return results


def _print_funds(signing: dict, console) -> None:
    from node.experiment.keys import fmt_eth

    console.print(f"funder {signing['funder']}: {signing['node_keys']} generated node keys got "
                  f"{fmt_eth(signing['funded_wei'])}, {fmt_eth(signing['returned_wei'])} came back")


def bench_keys(keystore: Path | None, password_file: Path | None, fund_per_key: str | None):
    """The signing mode (`node.experiment.keys.BenchKeys`): the keystore decrypted now, so a missing
    file or a wrong password stops the run before anything starts; None for the dev keys."""
    from node.protocol.errors import ConfigError
    from node.experiment.keys import BenchKeys, load_funder, parse_eth

    if keystore is None:
        if password_file is not None or fund_per_key is not None:
            raise ConfigError("--password-file and --fund-per-key go with --keystore")
        return None
    keys = BenchKeys(load_funder(keystore, password_file), None if fund_per_key is None else parse_eth(fund_per_key))
    # The funder is decrypted: no process this run starts (training, nodes) needs its password.
    for name in [k for k in os.environ if k.startswith("CHORUS_KEYSTORE")]:
        del os.environ[name]
    return keys


def _overrides(saved_profile: dict) -> dict:
    from node.experiment.config import PROFILES

    base = PROFILES[saved_profile["name"]].to_dict()
    return {k: v for k, v in saved_profile.items() if k in ("seeds", "tasks") and v != base.get(k)}


def _previous(folder: Path) -> tuple[dict | None, dict | None]:
    """The run and environment sections of an earlier results.json in `folder`."""
    import json

    try:
        earlier = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return None, None
    return earlier.get("run"), earlier.get("environment")


def _safe(url: str) -> str:
    from node.protocol.errors import safe_url

    return safe_url(url)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
