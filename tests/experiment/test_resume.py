"""Resume: finished units survive a kill (a cut last line included), finished sessions are skipped
without starting anything, and a run folder refuses a run with other options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.protocol.errors import ConfigError
from node.experiment.checkpoint import CHECKPOINT, Checkpoint, check_run_file
from node.experiment.config import RunOptions, get_profile
from node.experiment.plan import unit_tasks
from node.experiment.runner import Bench, Ui
from node.protocol.enums import Arch


def test_checkpoint_appends_and_reloads_and_ignores_a_cut_line(tmp_path: Path) -> None:
    ck = Checkpoint(tmp_path / CHECKPOINT)
    ck.add({"key": "main/s0/a0", "tasks": []})
    ck.add({"key": "main/s0/a1", "tasks": []})
    with open(tmp_path / CHECKPOINT, "a") as f:
        f.write('{"key": "main/s0/a2", "tas')  # the kill came mid-write
    again = Checkpoint(tmp_path / CHECKPOINT)
    assert again.done("main/s0/a0") and again.done("main/s0/a1")
    assert not again.done("main/s0/a2")
    again.add({"key": "main/s0/a2", "tasks": []})  # redone, appended after the cut line
    assert Checkpoint(tmp_path / CHECKPOINT).done("main/s0/a2")


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_the_plan_covers_every_architecture_and_sweep(tmp_path: Path, profile: str) -> None:
    opts = RunOptions(profile=get_profile(profile), out=tmp_path)
    bench = Bench(opts, tmp_path, background=False)
    keys = [k for s in bench.sessions() for k in s.units]
    assert len(keys) == len(set(keys))
    for seed in opts.seeds():
        assert {f"main/s{seed}/a{a}" for a in Arch} <= set(keys)
    for prefix in ("alpha/", "n/", "ed/", "robust/noise-market/", "robust/byzantine/", "robust/offline/",
                   "probe/mismatch/", "rerun/", *(("paced/",) if profile == "full" else ())):
        assert any(k.startswith(prefix) for k in keys), prefix
    full_grid = {f"ed/{d}-{t}/s0" for d in (4, 16, 64, 384) for t in ("f32", "i8", "binary")} - {"ed/16-f32/s0"}
    assert (full_grid <= set(keys)) == (profile == "full")
    # the ablation rows beside the alpha-sweep points of `ablation_alphas` (full: 0 and 1), on the sweep's seeds
    p = opts.profile
    beside = {f"ablation/alpha/{a:g}/s{s}/a{x}" for a in p.ablation_alphas for s in opts.sweep_seeds()
              for x in (Arch.E_D, Arch.U)}
    assert beside == {k for k in keys if k.startswith("ablation/alpha/")}
    assert bool(beside) == (profile == "full") and {f"eval/ablation/alpha/{a:g}/s0" for a in p.ablation_alphas} <= set(keys)
    assert all(unit_tasks(k, p) == p.alpha_tasks for k in beside)
    # each point's seeds start with the main table's and may go beyond them (full: 12, 24 and 15 at
    # alpha 0, 0.75 and 1 against 10), as many as `alpha_seed_counts` gives the point
    beyond = []
    for alpha in (a for a in p.alphas if a != p.alpha):
        sweep = {int(k.split("/s")[1]) for k in keys if k.startswith(f"eval/alpha/{alpha:g}/")}
        n = dict(p.alpha_seed_counts).get(alpha, p.alpha_seeds)
        assert sweep == set(opts.sweep_seeds(alpha)) == set(range(n)), alpha
        beyond.append(max(sweep) >= p.seeds)
    assert any(beyond) == (profile == "full")
    assert (opts.sweep_seeds(0.75) != opts.sweep_seeds()) == (profile == "full")


def test_finished_sessions_are_skipped_without_a_chain(tmp_path: Path) -> None:
    opts = RunOptions(profile=get_profile("tiny"), out=tmp_path, sweeps=False)
    bench = Bench(opts, tmp_path, background=False)
    ck = Checkpoint(tmp_path / CHECKPOINT)
    for s in bench.sessions():
        for key in s.units:
            ck.add({"key": key})
    seen: list[str] = []
    resumed = Bench(opts, tmp_path, Ui(unit_done=seen.append), background=False)
    resumed.run()  # would fail at once if it tried to start Anvil or train: everything is done
    assert resumed.chain is None
    assert sorted(seen) == sorted(k for s in bench.sessions() for k in s.units)


def test_only_unfinished_sessions_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = RunOptions(profile=get_profile("tiny"), out=tmp_path, sweeps=False, rerun_check=False)
    bench = Bench(opts, tmp_path, background=False)
    sessions = bench.sessions()
    ck = Checkpoint(tmp_path / CHECKPOINT)
    for key in sessions[0].units:
        ck.add({"key": key})
    ran: list[str] = []
    resumed = Bench(opts, tmp_path, background=False)
    monkeypatch.setattr(resumed, "_run_sessions", lambda todo: ran.extend(s.name for s in todo))
    resumed.run()
    assert ran == [s.name for s in sessions[1:]]


def test_a_run_folder_refuses_other_options(tmp_path: Path) -> None:
    check_run_file(tmp_path, RunOptions(profile=get_profile("tiny"), out=tmp_path))
    check_run_file(tmp_path, RunOptions(profile=get_profile("tiny"), out=tmp_path))  # same options: resume
    assert json.loads((tmp_path / "run.json").read_text())["profile"]["name"] == "tiny"
    with pytest.raises(ConfigError, match="other options"):
        check_run_file(tmp_path, RunOptions(profile=get_profile("tiny", tasks=3), out=tmp_path))


@pytest.mark.parametrize("profile", ["tiny", "quick", "full"])
def test_the_profile_sets_how_many_sets_train_at_once(tmp_path: Path, profile: str) -> None:
    from node.experiment.modelsets import Factory

    opts = RunOptions(profile=get_profile(profile), out=tmp_path)
    assert Bench(opts, tmp_path, background=False).factory.workers == opts.profile.train_workers
    assert opts.profile.train_workers == (2 if profile == "full" else 1)
    with pytest.raises(ValueError, match="at least 1"):
        Factory(workers=0)


def test_a_resumed_run_reports_the_wall_time_of_all_its_invocations(tmp_path: Path) -> None:
    """Each invocation that ran units leaves a line (also when it failed); the report's wall time
    is their sum, with each part, and a line cut short by a kill is skipped."""
    from node.experiment.bench import INVOCATIONS, invocations_of, record_invocation
    from node.experiment.report.render import _wall

    assert invocations_of(tmp_path) == {}
    record_invocation(tmp_path, 100.0, 2513.0, 0, 629, 637)  # stopped by a failure
    with open(tmp_path / INVOCATIONS, "a") as f:
        f.write('{"started_ts": 2600.0, "wall')  # killed while writing
        f.write("\n")
    record_invocation(tmp_path, 2600.0, 2676.0, 629, 637, 637)
    got = invocations_of(tmp_path)
    assert [x["units_after"] for x in got["invocations"]] == [629, 637]
    assert got["wall_s_total"] == 2413.0 + 76.0
    text = _wall({"wall_s": 76.0, **got})
    assert text == "2,489 s over 2 invocations (a resumed run: 2,413 s, 76 s)"
    # a later invocation with nothing left to run reports the run's time, not its own
    assert _wall({"wall_s": 0.01, "invocations": got["invocations"][:1], "wall_s_total": 2413.0}) == "2413 s"
    assert _wall({"wall_s": 12.0}) == "12 s"  # older folders: no invocations recorded
