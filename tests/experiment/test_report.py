"""The report writer on synthetic unit records: every architecture in results.json with
its metrics, the sweeps and honesty sections, report.md and the PNGs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from benchrecords import full_records

from node.experiment.config import QUICK, RunOptions, get_profile
from node.experiment.report.render import render_markdown, summary_rows, write_report
from node.experiment.report.results import build_results, make_run_info, pareto
from node.protocol.enums import ARCH_NAMES

ARCH_METRICS = ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "gap_to_oracle", "pnl", "sharpe",
                "gas_per_task", "calldata_bytes_per_task", "txs_per_task", "latency_p50_s", "latency_p95_s",
                "throughput_tasks_per_s", "cpu_s_per_task", "model_bytes")
ENV = {"python": "3.11", "platform": "linux", "machine": "x86_64", "cpu": "test cpu", "cores": 2, "memory_gib": 1.0,
       "hostname": "h", "packages": {"numpy": "2"}, "anvil": "anvil 1.7.1", "seed": 0, "git_commit": None}


@pytest.fixture()
def run_setup(tmp_path: Path):
    profile = get_profile("quick", seeds=5)
    opts = RunOptions(profile=profile, seed=0, out=tmp_path)
    records = full_records(profile, opts.seeds())
    run = make_run_info(opts, "test-run", time.time() - 100, time.time(), {"chain_start_s": 1.0}, "anvil")
    return opts, records, run


def test_results_hold_every_architecture_with_its_metrics(run_setup) -> None:
    opts, records, run = run_setup
    results = build_results(records, opts, run, ENV)
    assert set(results["architectures"]) == set(ARCH_NAMES.values())
    for name, entry in results["architectures"].items():
        assert entry["arch_id"] in ARCH_NAMES and ARCH_NAMES[entry["arch_id"]] == name
        missing = [m for m in ARCH_METRICS if entry.get(m) is None]
        assert not missing, (name, missing)
        assert entry["seeds"] == 5
    assert results["oracle"]["accuracy"] > 0
    assert {"alpha", "agents", "ed", "robustness"} <= set(results["sweeps"])
    assert {"checks", "all_passed"} <= set(results["honesty"])
    assert results["environment"]["cpu"] == "test cpu"


def test_sweeps_are_summarised(run_setup) -> None:
    opts, records, run = run_setup
    sw = build_results(records, opts, run, ENV)["sweeps"]
    alphas = [p["alpha"] for p in sw["alpha"]["points"]]
    assert alphas == sorted({QUICK.alpha, *QUICK.alphas})
    assert all("gap_u_minus_best_modular" in p for p in sw["alpha"]["points"])
    assert [p["n"] for p in sw["agents"]["points"]] == list(QUICK.agents)
    assert {(p["d"], p["dtype"]) for p in sw["ed"]["points"]} == {(d, t) for d in QUICK.dims for t in QUICK.dtypes}
    assert sw["ed"]["frontier"]
    rob = sw["robustness"]
    assert set(rob["scenarios"]) == {"noise-market", "noise-sentiment", "noise-risk", "byzantine", "offline"}
    u_offline = rob["scenarios"]["offline"]["architectures"]["U"]
    assert u_offline["finalized_rate"] == 0.0
    assert all("effective" in a for a in rob["scenarios"]["byzantine"]["architectures"].values())
    assert rob["model_mismatch"]["rejected"] is True


def test_honesty_checks_flag_a_rerun_that_differs(run_setup) -> None:
    opts, records, run = run_setup
    assert next(c for c in build_results(records, opts, run, ENV)["honesty"]["checks"]
                if c["name"].startswith("same seed"))["passed"] is True
    rerun = records[f"rerun/s{opts.seed}/a3"]
    rerun["tasks"] = [{**t, "action": (t["action"] + 1) % 3} for t in rerun["tasks"]]
    check = next(c for c in build_results(records, opts, run, ENV)["honesty"]["checks"] if c["name"].startswith("same seed"))
    assert check["passed"] is False and "DIFFER" in check["detail"]


def test_an_architecture_above_the_oracle_fails_the_check(run_setup) -> None:
    opts, records, run = run_setup
    for s in opts.seeds():
        for t in records[f"main/s{s}/a6"]["tasks"]:
            t["action"] = t["label"]
            t["oracle"] = (t["label"] + 1) % 3 if t["i"] % 2 else t["label"]
    check = next(c for c in build_results(records, opts, run, ENV)["honesty"]["checks"] if "oracle" in c["name"])
    assert check["passed"] is False and "U" in check["detail"]


def test_report_files_markdown_and_summary(run_setup, tmp_path: Path) -> None:
    opts, records, run = run_setup
    results = write_report(records, opts, tmp_path, run, ENV)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert set(on_disk["architectures"]) == set(ARCH_NAMES.values())
    text = (tmp_path / "report.md").read_text()
    for section in ("## Summary", "## Synergy: the gap curve", "accuracy-vs-gas frontier",
                    "## Cost growth with the number of agents", "## Robustness", "## Honesty checks",
                    "Model-id mismatch", "## Environment", "Reduced sweep"):
        assert section in text, section
    for png in ("accuracy.png", "gap_vs_alpha.png", "accuracy_vs_gas.png", "cost_vs_agents.png", "robustness.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
        assert f"]({png})" in text
    rows = summary_rows(results)
    assert [r[0] for r in rows] == [*ARCH_NAMES.values(), "Oracle"]


def test_partial_records_render_without_sweeps(run_setup) -> None:
    opts, records, run = run_setup
    main_only = {k: v for k, v in records.items() if k.startswith("main/")}
    results = build_results(main_only, opts, run, ENV)
    text = render_markdown(results, {})
    assert "Not run" in text
    assert results["honesty"]["checks"][0]["passed"] is None  # no alpha=0 point


def test_pareto_frontier() -> None:
    pts = [("a", 0.5, 100.0), ("b", 0.6, 200.0), ("c", 0.55, 300.0), ("d", 0.7, 400.0)]
    assert pareto(pts) == ["a", "b", "d"]


def test_alpha0_check_fails_on_a_clear_disagreement_and_reports_the_paired_gap(run_setup) -> None:
    opts, records, run = run_setup
    opts = RunOptions(profile=get_profile("quick", seeds=5, alpha_seeds=5), seed=0, out=opts.out)
    records = full_records(opts.profile, opts.seeds())
    for s in opts.seeds():  # U right on every alpha=0 task, M-learned wrong on every one
        for t in records[f"alpha/0/s{s}/a6"]["tasks"]:
            t["action"] = t["label"]
        for t in records[f"alpha/0/s{s}/a3"]["tasks"]:
            t["action"] = (t["label"] + 1) % 3
    check = build_results(records, opts, run, ENV)["honesty"]["checks"][0]
    assert check["name"].startswith("alpha=0")
    assert check["passed"] is False
    assert check["paired_u_minus_m_learned"] == pytest.approx(1.0)
    assert "weak check" not in check["detail"]  # zero spread: the intervals are tight


def test_alpha0_check_says_when_it_is_weak(run_setup) -> None:
    opts, records, run = run_setup  # the quick profile: 2 seeds at alpha=0
    check = build_results(records, opts, run, ENV)["honesty"]["checks"][0]
    assert check["passed"] is True
    assert "weak check" in check["detail"] and "paired U − M-learned" in check["detail"]


def test_the_report_names_the_chains_client_when_an_rpc_was_given(chain, run_setup) -> None:
    from node.experiment.report.environment import environment

    opts, records, run = run_setup
    env = environment(RunOptions(profile=opts.profile, seed=0, out=opts.out, rpc_url=chain.rpc_url))
    assert env["chain_client"].startswith("anvil/")
    assert environment(opts)["chain_client"] is None  # a private Anvil: the `anvil` entry says it
    text = render_markdown(build_results(records, opts, run, {**ENV, "chain_client": env["chain_client"]}), {})
    assert f"the chain's client: {env['chain_client']}" in text
