"""One `chorus bench` invocation, end to end: the run folder, the signing mode, the run, the report.

`run_bench(BenchRequest(...))` is what the command (`node.cli.bench`), `make demo`
(`scripts/demo.py`) and the tests call: it resumes or starts the run in its folder, shows the
progress bars and the summary (`node.experiment.console`), and writes report.md, results.json and
the PNGs (`node.experiment.report`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from node.experiment.checkpoint import CHECKPOINT, RUN_FILE, Checkpoint, check_run_file
from node.experiment.config import PROFILES, Profile, RunOptions, get_profile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchRequest:
    """What a `chorus bench` invocation asks for (the command's options)."""

    profile: str = "quick"
    """A profile name of `node.experiment.config.PROFILES`: tiny, quick or full."""
    seed: int = 0
    """Base seed: the run's seeds are seed, seed+1, ..."""
    out: Path | None = None
    """The run folder; None: reports/<run id>."""
    rpc_url: str | None = None
    """Any EVM JSON-RPC; None starts a private Anvil."""
    data: Path | None = None
    """The user's own tasks (CSV/Parquet, `models.data.loader`); None: the synthetic market."""
    seeds: int | None = None
    """Override of the profile's number of seeds."""
    tasks: int | None = None
    """Override of the profile's on-chain tasks per (seed, architecture)."""
    n_train: int | None = None
    """Override of the profile's training tasks (`TrainBudget.n_train`) for every model the run trains."""
    sweeps: bool = True
    """Run the sweeps after the main table."""
    fresh: bool = False
    """Discard the finished units of an earlier run in the folder."""
    report_only: bool = False
    """Only render the report from the folder's units."""
    chain_label: str | None = None
    """How the report names the chain (default: from `rpc_url`)."""
    keystore: Path | None = None
    """Encrypted JSON keystore of the funder (any chain); None: the dev keys (chain 31337 only)."""
    password_file: Path | None = None
    """File holding the keystore's password (else CHORUS_KEYSTORE_PASSWORD)."""
    fund_per_key: str | None = None
    """Ether sent to each generated node key (with `keystore`); None: computed from the plan."""
    rerun_check: bool = True
    """Re-run units and retrain models at the end (the determinism honesty check)."""
    node_port: int | None = None
    """First API port (127.0.0.1) of the node processes: each takes the next one, all checked free
    before anything starts (`node_ports`); None: free ports found as the run goes (from 21700)."""
    prices: Any = None
    """The fee model's prices (`node.chain.fees.Prices`) the report's costs are priced at; None: its defaults."""
    latent_dim: int = 1
    """Dimension m of each modality's latent in the synthetic market; 1: the original generator."""

    def run_id(self) -> str:
        """The run folder's default name: profile, seed, data file and overrides."""
        overrides = ({"seeds": self.seeds, "tasks": self.tasks, "ntrain": self.n_train}
                     | ({"nosweeps": ""} if not self.sweeps else {}))
        if self.latent_dim != 1:
            overrides["latentdim"] = self.latent_dim
        return run_id(self.profile, self.seed, self.data, overrides)


def run_id(profile: str, seed: int, data: Path | None, overrides: dict[str, object]) -> str:
    """`<profile>-seed<seed>[-<data stem>][-<override><value>...]`."""
    parts = [profile, f"seed{seed}"]
    if data is not None:
        parts.append(Path(data).stem)
    parts += [f"{k}{v}" for k, v in sorted(overrides.items()) if v is not None]
    return "-".join(parts)


def run_bench(request: BenchRequest, console: Any = None) -> dict | None:
    """The bench with progress bars and the summary table; returns the results (None: nothing to
    report). Raises ChorusError on failure and KeyboardInterrupt when interrupted (finished units
    stay in the run folder). With `request.keystore` (+ its password) it signs with that funder
    account and generated node keys (`node.experiment.keys`) instead of the dev keys."""
    from rich.console import Console

    from node.experiment.console import print_funds, print_summary, progress_ui
    from node.experiment.report.render import write_report
    from node.experiment.report.results import make_run_info
    from node.experiment.runner import Bench

    r = request
    console = console or Console()
    prof = profile_with(r.profile, seeds=r.seeds, tasks=r.tasks, n_train=r.n_train)
    folder = Path(r.out) if r.out is not None else Path("reports") / r.run_id()
    opts = RunOptions(profile=prof, seed=r.seed, out=folder, rpc_url=r.rpc_url, data=r.data, sweeps=r.sweeps,
                      rerun_check=r.rerun_check, prices=r.prices, latent_dim=r.latent_dim)
    keys = None if r.report_only else bench_keys(r.keystore, r.password_file, r.fund_per_key)
    n_ports = 0 if r.report_only or r.node_port is None else check_node_ports(opts, folder, r.node_port)
    if r.fresh and not r.report_only:
        for name in (CHECKPOINT, RUN_FILE, INVOCATIONS):
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / ".work", ignore_errors=True)
    started = time.time()
    timings: dict[str, float] = {}
    signing: dict | None = None
    if not r.report_only:
        check_run_file(folder, opts)
        if n_ports:
            console.print(f"node APIs on 127.0.0.1 ports {r.node_port}..{r.node_port + n_ports - 1} (--node-port)")
        with progress_ui(console) as ui, node_ports(r.node_port, n_ports):
            runner = Bench(opts, folder, ui, keys=keys)
            planned = [key for session in runner.sessions() for key in session.units]
            done = sum(runner.checkpoint.done(key) for key in planned)
            if done:
                console.print(f"resuming {folder}: {done} of {len(planned)} units already finished "
                              f"({CHECKPOINT}); --fresh starts over")
            try:
                runner.run()
            finally:
                if done < len(planned):  # it had units to run (a finished folder re-rendered is not one)
                    record_invocation(folder, started, time.time(), done,
                                      sum(runner.checkpoint.done(key) for key in planned), len(planned))
                if runner.signing:
                    print_funds(runner.signing, console)
            timings, signing = runner.timings, runner.signing
    elif (folder / RUN_FILE).exists():
        saved = json.loads((folder / RUN_FILE).read_text())
        opts = RunOptions(profile=profile_with(saved["profile"]["name"], **_overrides(saved["profile"])),
                          seed=saved["seed"], out=folder, data=Path(saved["data"]) if saved.get("data") else None,
                          sweeps=saved.get("sweeps", True), prices=r.prices,
                          latent_dim=int(saved.get("latent_dim", 1)))  # the run's own, as `check_run_file` records it
    records = Checkpoint(folder / CHECKPOINT).records
    if not records:
        console.print(f"[red]no finished units in {folder}[/red]")
        return None
    chain = r.chain_label or ((f"private anvil, a block every {prof.block_time:g} s" if prof.block_time else
                               "private anvil, auto-mine") if r.rpc_url is None else _safe(r.rpc_url))
    if keys is not None and keys.funder is not None and r.chain_label is None:
        chain += f"; signed by keystore account {keys.funder.address}, fresh node keys"
    run = make_run_info(opts, folder.name, started, time.time(), timings, chain)
    if signing:
        run["signing"] = signing  # addresses and amounts only
    previous, env = _previous(folder)
    if r.report_only and previous:  # the run's own facts, not the re-rendering's
        run.update({k: previous[k] for k in ("started", "started_ts", "finished", "wall_s", "timings", "chain",
                                             "signing", "invocations", "wall_s_total") if k in previous})
    elif not r.report_only:
        run.update(invocations_of(folder))
    results = write_report(records, opts, folder, run, env if r.report_only else None)
    print_summary(results, console)
    took = "" if r.report_only else f"  ({time.time() - started:.0f} s)"
    console.print(f"report: {folder / 'report.md'}  results: {folder / 'results.json'}{took}")
    failed = results["honesty"].get("fatal_failures") or []
    if failed:  # a chain or transport check mismatch fails the run, --strict or not; the report is written first
        from node.protocol.errors import ChorusError

        raise ChorusError(f"{'; '.join(failed)}: FAILED (see the honesty checks in {folder / 'report.md'})")
    return results


def bench_keys(keystore: Path | None, password_file: Path | None, fund_per_key: str | None):
    """The signing mode (`node.experiment.keys.BenchKeys`): the keystore decrypted now, so a missing
    file or a wrong password stops the run before anything starts; None for the dev keys."""
    from node.experiment.keys import BenchKeys, load_funder, parse_eth
    from node.protocol.errors import ConfigError

    if keystore is None:
        if password_file is not None or fund_per_key is not None:
            raise ConfigError("--password-file and --fund-per-key go with --keystore")
        return None
    keys = BenchKeys(load_funder(keystore, password_file), None if fund_per_key is None else parse_eth(fund_per_key))
    # The funder is decrypted: no process this run starts (training, nodes) needs its password.
    for name in [k for k in os.environ if k.startswith("CHORUS_KEYSTORE")]:
        del os.environ[name]
    return keys


def check_node_ports(opts: RunOptions, folder: Path, first: int) -> int:
    """The number of node API ports from `first` a run of `opts` may bind (one per node key its plan
    allocates: an upper bound on its node processes), after checking that all are free on 127.0.0.1.
    Raises PortBusy (a ConfigError: one line) naming the first taken port and --node-port."""
    from node.devnet.ports import check_free, port_range
    from node.experiment.nodes import PORT_OPTION
    from node.experiment.plan import chain_plan
    from node.experiment.runner import Bench

    planner = Bench(opts, folder, background=False)
    count = chain_plan(planner.sessions(), opts.profile).keys
    check_free(port_range(first, count, f"node API ports {first}..{first + count - 1} of the bench", PORT_OPTION))
    return count


def node_ports(first: int | None, count: int) -> Any:
    """`nodes.fixed_ports(first, count)`, or nothing to do when the ports are found automatically."""
    from contextlib import nullcontext

    from node.experiment.nodes import fixed_ports

    return nullcontext() if first is None else fixed_ports(first, count)


def profile_with(name: str, *, seeds: int | None = None, tasks: int | None = None,
                 n_train: int | None = None) -> Profile:
    """The profile `name` with the command's overrides (None: the profile's own)."""
    prof = get_profile(name, seeds=seeds, tasks=tasks)
    return prof if n_train is None else replace(prof, train=replace(prof.train, n_train=n_train))


def _overrides(saved_profile: dict) -> dict:
    base = PROFILES[saved_profile["name"]].to_dict()
    out = {k: v for k, v in saved_profile.items() if k in ("seeds", "tasks") and v != base.get(k)}
    n_train = (saved_profile.get("train") or {}).get("n_train")
    if n_train is not None and n_train != base["train"]["n_train"]:
        out["n_train"] = int(n_train)
    return out


INVOCATIONS = "invocations.jsonl"
"""One line per `chorus bench` invocation that ran units in the folder (a resumed run has several):
its start, end, wall seconds and units finished before and after, written even when it fails."""


def record_invocation(folder: Path, started: float, finished: float, done_before: int, done_after: int,
                      planned: int) -> None:
    line = {"started_ts": started, "finished_ts": finished, "wall_s": finished - started,
            "units_before": done_before, "units_after": done_after, "units_planned": planned}
    with open(folder / INVOCATIONS, "a") as f:
        f.write(json.dumps(line) + "\n")


def invocations_of(folder: Path) -> dict[str, Any]:
    """`invocations` (the folder's invocations, in order) and `wall_s_total` (their wall seconds
    summed: the run's wall time when it was resumed); empty when none was recorded."""
    try:
        lines = (folder / INVOCATIONS).read_text().splitlines()
    except OSError:
        return {}
    found = []
    for text in lines:
        try:
            found.append(json.loads(text))
        except ValueError:  # a line cut short by a kill: the others still count
            continue
    if not found:
        return {}
    return {"invocations": found, "wall_s_total": sum(float(x["wall_s"]) for x in found)}


def _previous(folder: Path) -> tuple[dict | None, dict | None]:
    """The run and environment sections of an earlier results.json in `folder`."""
    try:
        earlier = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return None, None
    return earlier.get("run"), earlier.get("environment")


def _safe(url: str) -> str:
    from node.protocol.errors import safe_url

    return safe_url(url)
