"""The report writer on synthetic unit records: every architecture in results.json with its
metrics from the two tiers (the large off-chain evaluation set, the chain sample that checks it),
ceilings, comparisons, the chain check, the sweeps and honesty sections, report.md and the PNGs;
and the older records (chain tasks only), which still render."""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from benchrecords import digits, full_records

from node.experiment.config import QUICK, RunOptions, get_profile
from node.experiment.plan import ALPHA_ARCHS, TRANSPORT_ARCHS
from node.experiment.report import metrics as M
from node.experiment.report.render import render_markdown, summary_rows, write_report
from node.experiment.report.results import (
    ALPHA0_CHECK,
    CEILING_CHECK,
    CHAIN_CHECK,
    LATENT_CHECK,
    TRANSPORT_CHECK,
    alpha_points,
    build_results,
    make_run_info,
    pareto,
)
from node.protocol.enums import ARCH_NAMES, Arch

ARCH_METRICS = ("accuracy", "accuracy_ci", "n_eval_tasks", "chain_sampled", "chain_mismatches", "chain_accuracy",
                "chain_accuracy_ci", "macro_f1", "macro_f1_ci", "gap_to_oracle", "pnl", "sharpe", "gas_per_task",
                "calldata_bytes_per_task", "txs_per_task", "latency_p50_s", "latency_p95_s",
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


def check(results: dict, name: str) -> dict:
    return next(c for c in results["honesty"]["checks"] if c["name"] == name)


def labels(record: dict) -> np.ndarray:
    return M.decode_actions(record["labels"])


def test_results_hold_every_architecture_with_its_metrics(run_setup) -> None:
    opts, records, run = run_setup
    results = build_results(records, opts, run, ENV)
    main = {n: e for n, e in results["architectures"].items() if not e.get("ablation_of")}
    assert set(main) == set(ARCH_NAMES.values())
    assert set(results["architectures"]) - set(main) == {"E-through", "U-concat"}  # the ablation rows
    for name, entry in main.items():
        assert entry["arch_id"] in ARCH_NAMES and ARCH_NAMES[entry["arch_id"]] == name
        missing = [m for m in ARCH_METRICS if entry.get(m) is None]
        assert not missing, (name, missing)
        assert entry["seeds"] == 5 and entry["accuracy_source"] == "offchain-eval"
        # the accuracy is the evaluation set's, mean over seeds, computed here from the records
        per_seed = [np.mean(M.decode_actions(records[f"main/s{s}/a{entry['arch_id']}"]["eval"]["actions"])
                            == labels(records[f"eval/s{s}"])) for s in opts.seeds()]
        assert entry["accuracy"] == pytest.approx(np.mean(per_seed))
        lo, hi = entry["accuracy_ci"]
        assert lo < entry["accuracy"] < hi and hi - lo < 0.1  # 5 x 400 tasks: a few points
        assert entry["n_eval_tasks"] == 400
        assert entry["chain_sampled"] == 5 * 12 and entry["chain_mismatches"] == 0
        assert 0 <= entry["accuracy"] <= 1 and 0 <= lo <= hi <= 1  # fractions
    assert {"checks", "all_passed", "fatal_failures"} <= set(results["honesty"])
    assert results["honesty"]["all_passed"] and not results["honesty"]["fatal_failures"]
    assert results["environment"]["cpu"] == "test cpu"


def test_results_json_layout_ceilings_comparisons_chain_check_dataset(run_setup) -> None:
    opts, records, run = run_setup
    r = build_results(records, opts, run, ENV)
    c = r["ceilings"]
    latent = np.mean([np.mean(M.decode_actions(records[f"eval/s{s}"]["ceiling_actions"]["latent"])
                              == labels(records[f"eval/s{s}"])) for s in opts.seeds()])
    assert c["latent"] == pytest.approx(latent)
    assert c["latent_ci"][0] < c["latent"] < c["latent_ci"][1]
    assert c["observation_ci"][0] < c["observation"] < c["observation_ci"][1] < c["latent"]
    assert c["late_fusion_cap"] is None  # alpha 0.5
    assert set(c["versus_observation"]) == set(ARCH_NAMES.values())
    comps = r["comparisons"]
    assert (comps[0]["a"], comps[0]["b"], comps[0]["preregistered"]) == ("U", "M-learned-p", True)
    assert {x["b"] for x in comps[1:-1]} == set(ARCH_NAMES.values()) - {"U", "M-learned-p"}
    assert all(x["a"] == "U" for x in comps[:-1]) and (comps[-1]["a"], comps[-1]["b"]) == ("M-learned-p", "M-learned")
    assert not any(x["preregistered"] for x in comps[1:])
    for x in comps:  # paired: the mean of per-task differences is the difference of accuracies
        a, b = r["architectures"][x["a"]], r["architectures"][x["b"]]
        assert x["diff"] == pytest.approx(a["accuracy"] - b["accuracy"])
        assert x["ci"][0] <= x["diff"] <= x["ci"][1]
    cc = r["chain_check"]
    assert cc["mismatches"] == [] and cc["sampled"] >= 5 * 8 * 12 and not cc["off_sample"]
    assert r["dataset"]["alpha"] == 0.5 and r["dataset"]["seeds"] == opts.seeds()
    sw = r["sweeps"]["alpha"]
    assert sw["alphas"] == sorted({QUICK.alpha, *QUICK.alphas})
    for alpha in sw["alphas"]:
        pt = sw[f"{alpha:g}"]
        assert set(pt["architectures"]) == {ARCH_NAMES[a] for a in (ARCH_NAMES if pt["main_table"] else ALPHA_ARCHS)}
        for a in pt["architectures"].values():
            assert {"accuracy", "accuracy_ci", "n_eval_tasks", "chain_sampled", "chain_mismatches"} <= set(a)
        assert {"latent", "latent_ci", "observation", "observation_ci", "late_fusion_cap"} <= set(pt["ceilings"])
    assert sw["1"]["ceilings"]["late_fusion_cap"] == pytest.approx(0.7)
    assert sw["0"]["architectures"]["U"]["seeds"] == QUICK.alpha_seeds
    assert sw["0.5"]["main_table"] and sw["0.5"]["architectures"]["U"]["accuracy"] == r["architectures"]["U"]["accuracy"]


def test_sweeps_are_summarised(run_setup) -> None:
    opts, records, run = run_setup
    sw = build_results(records, opts, run, ENV)["sweeps"]
    assert [p["alpha"] for p in alpha_points(sw["alpha"])] == sorted({QUICK.alpha, *QUICK.alphas})
    assert all(p["gap_u_minus_best_modular_ci"][0] <= p["gap_u_minus_best_modular"] <= p["gap_u_minus_best_modular_ci"][1]
               for p in alpha_points(sw["alpha"]))
    assert [p["n"] for p in sw["agents"]["points"]] == list(QUICK.agents)
    assert {(p["d"], p["dtype"]) for p in sw["ed"]["points"]} == {(d, t) for d in QUICK.dims for t in QUICK.dtypes}
    assert sw["ed"]["frontier"]
    rob = sw["robustness"]
    assert set(rob["scenarios"]) == {"noise-market", "noise-sentiment", "noise-risk", "byzantine", "offline"}
    u_offline = rob["scenarios"]["offline"]["architectures"]["U"]
    assert u_offline["finalized_rate"] == 0.0
    assert all("effective" in a for a in rob["scenarios"]["byzantine"]["architectures"].values())
    assert rob["model_mismatch"]["rejected"] is True


def test_robustness_compares_with_the_off_chain_clean_action_on_the_same_evaluation_task(run_setup) -> None:
    opts, records, run = run_setup
    ev, main = records["eval/s0"], records[f"main/s0/a{Arch.M_FIXED}"]
    robust = records[f"robust/noise-market/s0/a{Arch.M_FIXED}"]
    y, clean = labels(ev), M.decode_actions(main["eval"]["actions"])
    idx = [3, 10, 50, 77, 123, 200]
    robust["tasks"] = [{**t, "eval_i": i, "label": int(y[i]), "action": int(y[i])} for t, i in zip(robust["tasks"], idx,
                                                                                                  strict=True)]
    a = build_results(records, opts, run, ENV)["sweeps"]["robustness"]["scenarios"]["noise-market"]["architectures"]
    got = a["M-fixed"]
    assert got["clean_source"] == "offchain-eval"
    assert got["clean_accuracy"] == pytest.approx(np.mean(clean[idx] == y[idx]))
    assert got["accuracy"] == 1.0
    assert got["change_vs_clean"] == pytest.approx(1.0 - got["clean_accuracy"])


def test_honesty_checks_flag_a_rerun_that_differs(run_setup) -> None:
    opts, records, run = run_setup
    name = "same seed, same numbers (rerun on chain, retrain from scratch)"
    assert check(build_results(records, opts, run, ENV), name)["passed"] is True
    rerun = records[f"rerun/s{opts.seed}/a3"]
    rerun["tasks"] = [{**t, "action": (t["action"] + 1) % 3} for t in rerun["tasks"]]
    rerun.pop("eval")  # a rerun unit has no evaluation set of its own
    c = check(build_results(records, opts, run, ENV), name)
    assert c["passed"] is False and "DIFFER" in c["detail"]


def test_a_chain_mismatch_fails_the_honesty_checks_and_is_listed(run_setup, tmp_path: Path) -> None:
    opts, records, run = run_setup
    ok = build_results(records, opts, run, ENV)
    assert check(ok, CHAIN_CHECK)["passed"] is True and ok["honesty"]["fatal_failures"] == []
    unit = records[f"main/s2/a{Arch.E_D}"]
    t = unit["tasks"][4]  # the chain finalized another action than the off-chain evaluation gives
    off = int(M.decode_actions(unit["eval"]["actions"])[t["eval_i"]])
    t["action"] = (off + 1) % 3
    # and one the runner recorded (its chain_check) that the report's own recomputation would not see
    other = records[f"alpha/1/s0/a{Arch.U}"]
    other.pop("eval")
    other["chain_check"]["mismatches"] = [{"i": 9, "task_id": 1009, "chain": 2, "offchain": 0}]
    results = write_report(records, opts, tmp_path, run, ENV)
    c = check(results, CHAIN_CHECK)
    assert c["passed"] is False and c.get("fatal") is True
    assert results["honesty"]["all_passed"] is False and results["honesty"]["fatal_failures"] == [CHAIN_CHECK]
    got = {(m["arch"], m["seed"], m["alpha"], m["eval_i"], m["task_id"], m["chain"], m["offchain"])
           for m in results["chain_check"]["mismatches"]}
    assert got == {("E-d", 2, None, t["eval_i"], t["task_id"], (off + 1) % 3, off), ("U", 0, 1.0, 9, 1009, 2, 0)}
    assert results["architectures"]["E-d"]["chain_mismatches"] == 1
    text = (tmp_path / "report.md").read_text()
    assert "**FAIL** " + CHAIN_CHECK in text and f"main/s2/a{Arch.E_D}" in text and "The run fails." in text


def test_a_chain_mismatch_fails_the_run(run_setup, tmp_path: Path) -> None:
    from rich.console import Console

    from node.experiment.bench import BenchRequest, run_bench
    from node.experiment.checkpoint import CHECKPOINT
    from node.protocol.errors import ChorusError

    opts, records, run = run_setup
    (tmp_path / "results.json").write_text(json.dumps({"run": run, "environment": ENV}))
    request = BenchRequest(profile="quick", seeds=5, out=tmp_path, report_only=True)
    console = Console(file=io.StringIO(), width=200)

    def write(recs: dict) -> None:
        (tmp_path / CHECKPOINT).write_text("".join(json.dumps(r) + "\n" for r in recs.values()))

    write(records)
    assert run_bench(request, console=console)["honesty"]["fatal_failures"] == []
    t = records[f"main/s0/a{Arch.M_FIXED}"]["tasks"][0]
    t["action"] = (t["action"] + 1) % 3
    write(records)
    with pytest.raises(ChorusError, match="chain check"):
        run_bench(request, console=console)
    assert "FAIL" in (tmp_path / "report.md").read_text()  # the report is written before the run fails


def test_an_architecture_above_the_observation_ceiling_fails_the_check(run_setup) -> None:
    opts, records, run = run_setup
    ok = check(build_results(records, opts, run, ENV), CEILING_CHECK)
    assert ok["passed"] is True and "closest: U" in ok["detail"]
    for s in opts.seeds():  # U right on every evaluation task: above what the observations allow
        unit, y = records[f"main/s{s}/a{Arch.U}"], labels(records[f"eval/s{s}"])
        unit["eval"]["actions"] = digits(y)
        for t in unit["tasks"]:
            t["action"] = int(y[t["eval_i"]])
    results = build_results(records, opts, run, ENV)
    c = check(results, CEILING_CHECK)
    assert c["passed"] is False and "U" in c["detail"] and c["above"][0]["arch"] == "U"
    v = results["ceilings"]["versus_observation"]["U"]
    assert v["paired"] and v["ci"][0] > 0
    assert "Above the observation ceiling" in render_markdown(results, {})
    # the latent oracle stays a reported ceiling, above every architecture here too
    assert results["ceilings"]["latent"] > results["ceilings"]["observation"]


def _alpha0(tmp_path: Path, make_u) -> dict:
    """The alpha=0 check on records where U's off-chain actions are make_u(M-learned-p's, labels, rng)."""
    opts = RunOptions(profile=get_profile("quick", seeds=5, alpha_seeds=5), seed=0, out=tmp_path)
    records = full_records(opts.profile, opts.seeds())
    rng = np.random.default_rng(0)
    for s in opts.seeds():
        y = labels(records[f"eval/alpha/0/s{s}"])
        ml = M.decode_actions(records[f"alpha/0/s{s}/a{Arch.M_LEARNED_P}"]["eval"]["actions"])
        u = records[f"alpha/0/s{s}/a{Arch.U}"]
        actions = make_u(ml, y, rng)
        u["eval"]["actions"] = digits(actions)
        for t in u["tasks"]:
            t["action"] = int(actions[t["eval_i"]])
    run = make_run_info(opts, "t", time.time(), time.time(), {}, "anvil")
    results = build_results(records, opts, run, ENV)
    assert results["honesty"]["checks"][0]["name"] == ALPHA0_CHECK
    return results["honesty"]["checks"][0]


def test_alpha0_equivalence_verdicts_for_three_constructed_cases(tmp_path: Path) -> None:
    def swap(share: float):
        def make(ml: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            u = ml.copy()
            right, wrong = np.flatnonzero(ml == y), np.flatnonzero(ml != y)
            k = int(share * len(y))
            fix, spoil = rng.choice(wrong, k, replace=False), rng.choice(right, k, replace=False)
            u[fix] = y[fix]
            u[spoil] = (y[spoil] + 1) % 3
            return u
        return make

    # the same accuracy, 1% of the tasks decided differently: a tight interval inside ±1.5 points
    eq = _alpha0(tmp_path, swap(0.005))
    assert eq["verdict"] == "equivalent" and eq["passed"] is None  # a verdict, never a failed run
    assert -M.EQUIVALENCE_MARGIN <= eq["ci"][0] <= eq["ci"][1] <= M.EQUIVALENCE_MARGIN
    # the same accuracy, 24% of the tasks decided differently: an interval around 0 wider than the margin
    inc = _alpha0(tmp_path, swap(0.12))
    assert inc["verdict"] == "inconclusive" and inc["passed"] is None
    assert inc["ci"][0] < -M.EQUIVALENCE_MARGIN or inc["ci"][1] > M.EQUIVALENCE_MARGIN
    assert inc["ci"][0] < 0 < inc["ci"][1]
    # U right wherever M-learned-p is wrong: different
    diff = _alpha0(tmp_path, lambda ml, y, rng: y.copy())
    assert diff["verdict"] == "different" and diff["passed"] is None and diff["ci"][0] > M.EQUIVALENCE_MARGIN
    assert "different" in diff["detail"]


def test_old_records_without_an_evaluation_set_render_from_the_chain_sample(tmp_path: Path) -> None:
    profile = get_profile("quick", seeds=5)
    opts = RunOptions(profile=profile, seed=0, out=tmp_path)
    records = full_records(profile, opts.seeds(), eval_set=False)
    run = make_run_info(opts, "old-run", time.time() - 100, time.time(), {}, "anvil")
    results = write_report(records, opts, tmp_path, run, ENV)
    for name, a in results["architectures"].items():
        assert a["accuracy_source"] == "chain-sample", name
        assert a["accuracy"] == pytest.approx(a["chain_accuracy"])
        assert a["n_eval_tasks"] is None and a["chain_sampled"] is None
        assert a["accuracy_ci"][0] <= a["accuracy"] <= a["accuracy_ci"][1]
    assert results["ceilings"]["source"] == "chain-sample" and results["ceilings"]["observation"] is None
    assert results["ceilings"]["latent"] is not None  # the oracle the chain tasks carry
    assert results["chain_check"]["units"] == 0 and results["dataset"] is None
    names = [c["name"] for c in results["honesty"]["checks"]]
    assert CHAIN_CHECK not in names and LATENT_CHECK in names and CEILING_CHECK not in names
    assert results["comparisons"][0]["source"] == "chain-sample"
    text = (tmp_path / "report.md").read_text()
    assert "carry no off-chain evaluation set" in text and "†" in text
    assert "nothing to compare" in text
    for section in ("## Summary", "## Comparison", "## Ceilings", "## Chain check", "## Synergy: the gap curve",
                    "## Robustness", "## Honesty checks"):
        assert section in text, section
    assert (tmp_path / "accuracy.png").stat().st_size > 1000


def test_an_architecture_without_its_evaluation_set_falls_back_alone(run_setup) -> None:
    opts, records, run = run_setup
    for s in opts.seeds():
        records[f"main/s{s}/a{Arch.M_RULES}"].pop("eval")
        records[f"eval/s{s}"].pop("actions", None)
    results = build_results(records, opts, run, ENV)
    archs = results["architectures"]
    assert archs["M-rules"]["accuracy_source"] == "chain-sample"
    assert archs["U"]["accuracy_source"] == "offchain-eval"
    cmp = next(c for c in results["comparisons"] if c["b"] == "M-rules")
    assert cmp["source"] == "chain-sample"  # paired on the chain tasks both ran
    assert "M-rules" not in results["ceilings"]["versus_observation"]
    assert "† M-rules:" in render_markdown(results, {})


def test_report_files_markdown_and_summary(run_setup, tmp_path: Path) -> None:
    opts, records, run = run_setup
    results = write_report(records, opts, tmp_path, run, ENV)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert set(on_disk["architectures"]) == {*ARCH_NAMES.values(), "E-through", "U-concat"}
    assert isinstance(on_disk["architectures"]["U"]["accuracy_ci"], list)
    text = (tmp_path / "report.md").read_text()
    sections = ["Pre-registered comparison", "## Summary", "## Comparison", "## Which mechanism costs what",
                "## Ceilings", "## Chain check",
                "## Synergy: the gap curve", "accuracy-vs-gas frontier", "## Cost growth with the number of agents",
                "## Robustness", "## Honesty checks", "Model-id mismatch", "## Evaluation data", "## Environment",
                "Reduced sweep"]
    positions = [text.index(s) for s in sections]
    assert positions[0] < positions[1]  # the pre-registered comparison is named before any result
    assert "the price of the decision-only interface" in text
    for png in ("accuracy.png", "gap_vs_alpha.png", "accuracy_vs_gas.png", "cost_vs_agents.png", "robustness.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
        assert f"]({png})" in text
    rows = summary_rows(results)
    assert [r[0] for r in rows] == [*ARCH_NAMES.values(), "E-through", "U-concat", "Oracle"]
    u = results["architectures"]["U"]
    assert rows[list(ARCH_NAMES.values()).index("U")][1:5] == [
        f"{100 * u['accuracy']:.1f} [{100 * u['accuracy_ci'][0]:.1f}, {100 * u['accuracy_ci'][1]:.1f}]",
        f"{100 * u['macro_f1']:.1f} ± {100 * u['macro_f1_ci']:.1f}", "400", "60 / 0"]


def test_a_conclusion_only_where_the_interval_excludes_zero(run_setup) -> None:
    opts, records, run = run_setup
    results = build_results(records, opts, run, ENV)
    text = render_markdown(results, {})
    for c in results["comparisons"]:
        claimed = f"than {c['b']} by" in text or f"{c['b']} is more accurate than {c['a']}" in text
        assert claimed == M.excludes_zero(c["ci"]), c
    assert any(M.excludes_zero(c["ci"]) for c in results["comparisons"])  # U vs Uni-best: 25 points apart
    assert not M.excludes_zero(next(c for c in results["comparisons"] if c["b"] == "U-rep")["ci"])


def test_partial_records_render_without_sweeps(run_setup) -> None:
    opts, records, run = run_setup
    main_only = {k: v for k, v in records.items() if k.startswith(("main/", "eval/s"))}
    results = build_results(main_only, opts, run, ENV)
    text = render_markdown(results, {})
    assert "Not run" in text
    assert results["honesty"]["checks"][0]["passed"] is None  # no alpha=0 point


def test_pareto_frontier() -> None:
    pts = [("a", 0.5, 100.0), ("b", 0.6, 200.0), ("c", 0.55, 300.0), ("d", 0.7, 400.0)]
    assert pareto(pts) == ["a", "b", "d"]


def test_the_report_names_the_chains_client_when_an_rpc_was_given(chain, run_setup) -> None:
    from node.experiment.report.environment import environment

    opts, records, run = run_setup
    env = environment(RunOptions(profile=opts.profile, seed=0, out=opts.out, rpc_url=chain.rpc_url))
    assert env["chain_client"].startswith("anvil/")
    assert environment(opts)["chain_client"] is None  # a private Anvil: the `anvil` entry says it
    text = render_markdown(build_results(records, opts, run, {**ENV, "chain_client": env["chain_client"]}), {})
    assert f"the chain's client: {env['chain_client']}" in text


def test_robustness_gives_no_clean_figure_on_other_tasks(run_setup) -> None:
    opts, records, run = run_setup
    robust = records[f"robust/byzantine/s0/a{Arch.U}"]
    for t in robust["tasks"]:  # tasks of another stream: neither the evaluation set's nor the chain sample's
        t["label"] = (t["label"] + 1) % 3
    a = build_results(records, opts, run, ENV)["sweeps"]["robustness"]["scenarios"]["byzantine"]["architectures"]
    assert a["U"]["clean_accuracy"] is None and a["U"]["relative"] is None and "effective" not in a["U"]
    assert a["M-fixed"]["clean_source"] == "offchain-eval" and a["M-fixed"]["clean_accuracy"] is not None


def test_the_report_lists_what_validation_chose_and_says_when_m_regret_collapses(tmp_path: Path) -> None:
    profile = get_profile("quick", seeds=2)
    opts = RunOptions(profile=profile, seed=0, out=tmp_path)
    records = full_records(profile, opts.seeds())
    chosen = {"hp": {"hidden": 96, "lr": 0.002, "weight_decay": 0.01, "dropout": 0.1}, "epochs": 7, "val_acc": 0.61,
              "settings_tried": 4, "max_epochs": 15}
    for seed, start in zip(opts.seeds(), ([9990, 5, 5], [4000, 3000, 3000])):
        records[f"eval/s{seed}"]["tuning"] = {
            "models": {"u": chosen, "market": {**chosen, "epochs": 3}},
            "m-rules": {"chosen": {"risk_veto": 0.7, "lead": 0.55}, "settings_tried": 4},
            "m-regret": {"eta": 0.2, "settings_tried": 4, "start_weights_bps": start}}
    run = make_run_info(opts, "tuned", time.time() - 100, time.time(), {}, "anvil")
    results = write_report(records, opts, tmp_path, run, ENV)
    first, second = results["tuning"]["per_seed"]
    assert first["m-regret"]["collapsed_onto"] == 0 and second["m-regret"]["collapsed_onto"] is None
    text = (tmp_path / "report.md").read_text()
    section = text.split("## Tuning", 1)[1].split("\n## ", 1)[0]
    assert "| 0 | u | 4 | hidden 96, lr 0.002, weight_decay 0.01, dropout 0.1 | 7 (of 15) | 61.0 |" in section
    assert "| 1 | M-rules thresholds | 4 | risk_veto 0.7, lead 0.55 | | |" in section
    assert "Seed 0: M-regret starts with 99% or more of its weight on the market agent" in section
    assert "Seed 1: M-regret starts" not in section


def test_the_same_records_give_byte_identical_quality_figures(run_setup) -> None:
    """The report's figures are a function of the records: the bootstrap is seeded, so the same
    records (the same seed's run) give the same accuracies, intervals and comparisons, byte for byte."""
    opts, records, run = run_setup
    a, b = build_results(records, opts, run, ENV), build_results(json.loads(json.dumps(records)), opts, run, ENV)
    for key in ("architectures", "ceilings", "comparisons", "chain_check"):
        assert json.dumps(a[key], sort_keys=True, default=str) == json.dumps(b[key], sort_keys=True, default=str), key
    assert a["comparisons"] and a["architectures"]["U"]["accuracy_ci"][0] < a["architectures"]["U"]["accuracy_ci"][1]


def test_transports_rows_ratio_and_the_same_decisions_check(run_setup, tmp_path: Path) -> None:
    opts, records, run = run_setup
    results = write_report(records, opts, tmp_path, run, ENV)
    tr = results["transports"]
    assert tr["transports"] == ["tx", "batch", "report"] and tr["seed"] == opts.seed
    rows = {(r["arch"], r["transport"]): r for r in tr["rows"]}
    assert set(rows) == {(ARCH_NAMES[a], t) for a in TRANSPORT_ARCHS for t in ("tx", "report", "batch")}
    assert {Arch.M_RULES, Arch.M_LEARNED} <= set(TRANSPORT_ARCHS)  # the fusion agent's too
    n = opts.profile.transport_tasks
    for a in TRANSPORT_ARCHS:
        tx, rep = rows[(ARCH_NAMES[a], "tx")], rows[(ARCH_NAMES[a], "report")]
        assert tx["tasks"] == rep["tasks"] == n
        assert tx["txs_per_task"] == 5.0 and rep["txs_per_task"] == 2.0
        assert rep["gas_ratio"] == pytest.approx(0.6) and tx["gas_ratio"] == 1.0
        assert rep["accuracy"] == tx["accuracy"]  # the same decisions on the same tasks
        assert rep["latency_p50_s"] > tx["latency_p50_s"]
        batch = rows[(ARCH_NAMES[a], "batch")]
        assert batch["gas_ratio"] == pytest.approx(0.8) and batch["accuracy"] == tx["accuracy"]
        # L1's price is gas times the gas price: its ratio is the gas ratio
        assert rep["cost_usd_per_task"]["l1"] / tx["cost_usd_per_task"]["l1"] == pytest.approx(rep["gas_ratio"])
        # the per-agent row is the main unit on the shared tasks only
        main = records[f"main/s{opts.seed}/a{a}"]["tasks"][:n]
        assert tx["gas_per_task"] == pytest.approx(np.mean([t["gas"] for t in main]))
    c = check(results, TRANSPORT_CHECK)
    assert c["passed"] is True and c["fatal"] is True and tr["check"]["compared"] == 2 * len(TRANSPORT_ARCHS) * n
    text = (tmp_path / "report.md").read_text()
    assert "## Transports" in text and f"| M-fixed | signed report | {n} |" in text and "0.60" in text
    assert f"| M-fixed | batched | {n} |" in text and "up to 2 s" in text
    assert "| gas / per-agent gas | Ethereum L1 $/task |" in text
    assert "**PASS** " + TRANSPORT_CHECK in text and "E-d under signed reports (" in text and "M-learned-p (" in text
    # a transport that changed one decision fails the run
    t = records[f"transport/report/s{opts.seed}/a{Arch.M_FIXED}"]["tasks"][2]
    t["action"] = (t["action"] + 1) % 3
    bad = build_results(records, opts, run, ENV)
    c = check(bad, TRANSPORT_CHECK)
    assert c["passed"] is False and "M-fixed" in c["detail"] and str(t["eval_i"]) in c["detail"]
    assert bad["transports"]["check"]["mismatches"][0]["eval_i"] == t["eval_i"]
    assert TRANSPORT_CHECK in bad["honesty"]["fatal_failures"] and bad["honesty"]["all_passed"] is False


def test_no_transport_sweep_renders_not_run(run_setup) -> None:
    opts, records, run = run_setup
    records = {k: r for k, r in records.items() if not k.startswith("transport/")}
    results = build_results(records, opts, run, ENV)
    assert results["transports"]["rows"] == [] and results["transports"]["check"]["passed"] is None
    assert all(c["name"] != TRANSPORT_CHECK for c in results["honesty"]["checks"])
    assert "## Transports\n\nNot run." in render_markdown(results, {})


def test_ablation_rows_and_the_decomposition_of_the_gap(run_setup) -> None:
    """E-through and U-concat are scored on the main table's evaluation tasks; each decomposition
    step is a paired difference there, and the steps add up to U − M-learned on the same seeds."""
    opts, records, run = run_setup
    r = build_results(records, opts, run, ENV)
    ab = r["ablations"]
    seeds = opts.seeds()[:opts.profile.ablation_seeds]
    assert ab["seeds"] == len(seeds) == 4
    for name, arch in (("E-through", 5), ("U-concat", 6)):
        row = r["architectures"][name]
        assert row is ab["rows"][name] or row == ab["rows"][name]
        assert row["ablation_of"] == ARCH_NAMES[arch] and row["seeds"] == 4 and row["chain_mismatches"] == 0
        acc = np.mean([np.mean(M.decode_actions(records[f"ablation/s{s}/a{arch}"]["eval"]["actions"])
                               == labels(records[f"eval/s{s}"])) for s in seeds])
        assert row["accuracy"] == pytest.approx(acc)
    steps = ab["decomposition"]
    assert [(x["a"], x["b"]) for x in steps] == [("U", "U-concat"), ("U-concat", "E-through"), ("E-through", "E-d"),
                                                 ("E-d", "M-learned-p"), ("M-learned-p", "M-learned")]
    assert all(x["seeds"] == 4 and x["tasks_per_seed"] == 400 for x in steps)

    def acc(key: str, s: int) -> float:
        return float(np.mean(M.decode_actions(records[key]["eval"]["actions"]) == labels(records[f"eval/s{s}"])))

    u_minus_m = np.mean([acc(f"main/s{s}/a6", s) - acc(f"main/s{s}/a3", s) for s in seeds])
    assert sum(x["diff"] for x in steps) == pytest.approx(u_minus_m)
    text = render_markdown(r, {})
    assert "## Which mechanism costs what (ablations)" in text
    for x in steps:  # a sentence only where the interval excludes zero
        assert (f"({x['a']} − {x['b']}):" in text) == x["excludes_zero"]


def test_the_decomposition_beside_the_alpha_sweep(tmp_path: Path) -> None:
    """With `ablation_alphas`, the ablation rows run beside those alpha-sweep points too: each step
    is paired on that point's evaluation tasks with the sweep's rows, the steps add up to U −
    M-learned there, the chain samples are checked like any other, and the report has a column
    per alpha."""
    profile = replace(get_profile("quick", seeds=5), ablation_alphas=(1.0,))
    opts = RunOptions(profile=profile, seed=0, out=tmp_path)
    records = full_records(profile, opts.seeds())
    run = make_run_info(opts, "test-run", time.time() - 100, time.time(), {"chain_start_s": 1.0}, "anvil")
    r = build_results(records, opts, run, ENV)
    point = r["ablations"]["by_alpha"]["1"]
    seeds = opts.seeds()[:profile.alpha_seeds]
    assert point["alpha"] == 1.0 and point["seeds"] == len(seeds) == 2
    assert set(point["rows"]) == {"E-through", "U-concat"} and all(x["chain_mismatches"] == 0
                                                                     for x in point["rows"].values())

    def acc(key: str, s: int) -> float:
        return float(np.mean(M.decode_actions(records[key]["eval"]["actions"]) == labels(records[f"eval/alpha/1/s{s}"])))

    steps = point["decomposition"]
    assert len(steps) == 5
    assert steps[0]["diff"] == pytest.approx(np.mean([acc(f"alpha/1/s{s}/a6", s) - acc(f"ablation/alpha/1/s{s}/a6", s)
                                                      for s in seeds]))
    assert sum(x["diff"] for x in steps) == pytest.approx(
        np.mean([acc(f"alpha/1/s{s}/a6", s) - acc(f"alpha/1/s{s}/a3", s) for s in seeds]))
    assert any(x["key"] == "eval/ablation/alpha/1/s0" and x["alpha"] == 1.0 and x["ablation"]
               for x in r["chain_check"]["samples"])
    assert r["chain_check"]["off_sample"] == []
    assert r["chain_check"]["sampled"] > build_results(
        {k: v for k, v in records.items() if "ablation/alpha/" not in k}, opts, run, ENV)["chain_check"]["sampled"]
    text = render_markdown(r, {})
    assert "| mechanism | a − b | alpha 0.5, pts [95% CI] | alpha 1, pts [95% CI] |" in text
    # flip a chain task of the sweep's ablation row: the run's chain check sees it
    unit = records["ablation/alpha/1/s0/a6"]
    t = unit["tasks"][0]
    records["ablation/alpha/1/s0/a6"] = {**unit, "chain_check": {"sampled": len(unit["tasks"]), "mismatches": [
        {"i": t["eval_i"], "task_id": t["task_id"], "chain": (t["action"] + 1) % 3, "offchain": t["action"]}]}}
    mism = build_results(records, opts, run, ENV)["chain_check"]["mismatches"]
    assert [(m["key"], m["alpha"], m["arch"]) for m in mism] == [("ablation/alpha/1/s0/a6", 1.0, "U-concat")]


def test_the_alpha_sweep_may_have_more_seeds_than_the_main_table(tmp_path: Path) -> None:
    profile = replace(get_profile("quick", seeds=2), alpha_seeds=4, ablation_alphas=(1.0,))
    opts = RunOptions(profile=profile, seed=0, out=tmp_path)
    assert opts.sweep_seeds() == [0, 1, 2, 3]
    records = full_records(profile, opts.seeds())
    run = make_run_info(opts, "test-run", time.time() - 100, time.time(), {"chain_start_s": 1.0}, "anvil")
    r = build_results(records, opts, run, ENV)
    sw = r["sweeps"]["alpha"]
    assert sw["1"]["architectures"]["U"]["seeds"] == 4 and sw["0.5"]["architectures"]["U"]["seeds"] == 2
    assert r["ablations"]["by_alpha"]["1"]["seeds"] == 4 and r["ablations"]["seeds"] == 2  # beside the main table: its seeds
    acc = np.mean([np.mean(M.decode_actions(records[f"alpha/1/s{s}/a6"]["eval"]["actions"])
                           == labels(records[f"eval/alpha/1/s{s}"])) for s in range(4)])
    assert sw["1"]["architectures"]["U"]["accuracy"] == pytest.approx(acc)


def test_a_sweep_point_runs_on_the_seeds_its_count_gives(tmp_path: Path) -> None:
    profile = replace(get_profile("quick", seeds=2), alpha_seeds=3, alpha_seed_counts=((1.0, 5),),
                      ablation_alphas=(1.0,))
    opts = RunOptions(profile=profile, seed=0, out=tmp_path)
    assert opts.sweep_seeds(1.0) == [0, 1, 2, 3, 4] and opts.sweep_seeds(0.0) == opts.sweep_seeds() == [0, 1, 2]
    records = full_records(profile, opts.seeds())
    r = build_results(records, opts, make_run_info(opts, "test-run", time.time() - 100, time.time(), {}, "anvil"), ENV)
    sw = r["sweeps"]["alpha"]
    assert sw["1"]["architectures"]["U"]["seeds"] == 5 and sw["0"]["architectures"]["U"]["seeds"] == 3
    assert r["ablations"]["by_alpha"]["1"]["seeds"] == 3  # the ablation rows beside it: the base seeds
    # a seed beyond the count is not read, even where its records exist
    extra = full_records(replace(profile, alpha_seed_counts=((1.0, 6),)), opts.seeds())
    assert "alpha/1/s5/a6" in extra
    assert build_results(extra, opts, make_run_info(opts, "test-run", time.time() - 100, time.time(), {}, "anvil"),
                         ENV)["sweeps"]["alpha"]["1"]["architectures"]["U"]["seeds"] == 5


@pytest.mark.parametrize("counts", [((0.3, 4),), ((0.5, 4),), ((1.0, 0),)])
def test_a_seed_count_for_no_sweep_point_is_refused(counts: tuple) -> None:
    with pytest.raises(ValueError, match="alpha_seed_counts"):
        replace(get_profile("quick"), alpha_seed_counts=counts)


def test_ablation_units_on_other_tasks_than_the_main_table_are_refused(run_setup) -> None:
    opts, records, run = run_setup
    ev = records["eval/ablation/s0"]
    flipped = "".join("0" if c != "0" else "1" for c in ev["labels"])
    records["eval/ablation/s0"] = {**ev, "labels": flipped}
    with pytest.raises(ValueError, match="evaluation sets differ"):
        build_results(records, opts, run, ENV)


def test_the_mechanisms_profile_plans_and_reports_the_decomposition_at_three_alphas(tmp_path: Path) -> None:
    from node.experiment.runner import Bench

    profile = get_profile("mechanisms")
    opts = RunOptions(profile=profile, seed=0, out=tmp_path, latent_dim=8)
    keys = {k for s in Bench(opts, tmp_path, background=False).sessions() for k in s.units}
    assert {f"ablation/alpha/{a:g}/s{s}/a{x}" for a in (0, 1) for s in range(5) for x in (Arch.E_D, Arch.U)} <= keys
    assert not any(k.startswith(("n/", "ed/", "robust/", "transport/", "paced/", "alignment/", "width")) for k in keys)
    records = full_records(profile, opts.seeds())
    r = build_results(records, opts, make_run_info(opts, "test-run", time.time() - 100, time.time(), {}, "anvil"), ENV)
    assert set(r["ablations"]["by_alpha"]) == {"0", "1"} and r["ablations"]["decomposition"]
    text = render_markdown(r, {})
    assert "## Which mechanism costs what" in text and "alpha 0" in text
