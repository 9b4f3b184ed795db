"""results.json's `alignment` and report.md's alignment section, from synthetic unit records."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from benchrecords import decide, digits, full_records

from node.experiment.config import RunOptions, get_profile
from node.experiment.report import metrics as M
from node.experiment.report.render import render_markdown
from node.experiment.report.results import ALIGNMENT_CHECK, build_results, make_run_info

ENV = {"python": "3.11", "platform": "linux", "machine": "x86_64", "cpu": "test cpu", "cores": 2, "memory_gib": 1.0,
       "hostname": "h", "packages": {"numpy": "2"}, "anvil": "anvil 1.7.1", "seed": 0, "git_commit": None}
SKILL = {"reference": 0.7, "dropped": 0.55, "0": 0.4, "5": 0.6, "25": 0.7, "100": 0.7, "400": 0.7}
"""Each variant's chance to decide a task right: far below the reference unaligned, level with it
from K = 25 on."""
VARIANT_SKILL = {"same-arch/cca": {"0": 0.4, "5": 0.45, "25": 0.6, "100": 0.7, "400": 0.7},
                 "other-arch/procrustes": {"0": 0.35, "5": 0.6, "25": 0.7, "100": 0.7, "400": 0.7},
                 "other-arch/cca": {"0": 0.35, "5": 0.4, "25": 0.55, "100": 0.7, "400": 0.7}}
"""The other curves' chances: CCA needs more anchors than Procrustes."""


def alignment_record(seed: int, labels: np.ndarray, rng: np.random.Generator, *, map_equal: bool = True
                     ) -> dict:
    ks = (0, 5, 25, 100, 400)
    gas = [21_000 + 9_000 + int(rng.integers(0, 50)) for _ in range(16)]
    return {"key": f"alignment/s{seed}", "seed": seed, "n": len(labels), "labels": digits(labels),
            "actions": {name: digits(decide(labels, skill, rng)) for name, skill in SKILL.items()},
            "ks": list(ks),
            "by_k": {str(k): {"map_id": None if k == 0 else "0x" + "ab" * 32, "cka": 0.6 + 0.001 * seed,
                              "residual": 1.5 if k == 0 else 0.2} for k in ks},
            "cka_before": 0.6 + 0.001 * seed, "residual_before": 1.5, "cka_tasks": len(labels),
            "model_ids": {"reference": "0x" + "11" * 32, "apart": "0x" + "22" * 32},
            "anchors": {"source": "the seed's validation split", "drawn": 400, "usable": 400},
            "reference_equals_main_ed": True,
            "apart": {"seed": seed + 1000, "tuning": {"market-apart": {"hp": {"hidden": 64}},
                                                      "market-apart-arch": {"hp": {"hidden": 128}}}},
            "chain": {"anchors": 8, "task_ids": list(range(8)), "publish_gas": gas,
                      "per_anchor_publication": float(np.mean(gas)), "register_alignment": 120_000,
                      "register_model": [], "map_id": "0x" + "cd" * 32,
                      "offchain_map_id": "0x" + ("cd" if map_equal else "ef") * 32, "map_equal": map_equal,
                      "resolver_loaded": True},
            "offchain_s": 1.0,
            "variants": {name: {"apart": name.split("/")[0], "method": name.split("/")[1],
                                "model_id": "0x" + ("22" if name.startswith("same") else "33") * 32,
                                "cka_tasks": len(labels), "cka_before": 0.5, "residual_before": 1.6,
                                "anchors_usable": 400, "ks": list(ks),
                                "actions": {k: digits(decide(labels, p, rng)) for k, p in skill.items()},
                                "by_k": {str(k): {"map_id": None if k == 0 else "0x" + "ef" * 32,
                                                  "cka": 0.5 if name.endswith("procrustes") or k == 0 else 0.7,
                                                  "residual": 0.3} for k in ks}}
                         for name, skill in VARIANT_SKILL.items()}}


@pytest.fixture()
def setup(tmp_path: Path):
    profile = get_profile("quick", seeds=5, alignment_seeds=2)
    opts = RunOptions(profile=profile, seed=0, out=tmp_path)
    records = full_records(profile, opts.seeds())
    rng = np.random.default_rng(3)
    for s in opts.seeds()[:profile.alignment_seeds]:
        records[f"alignment/s{s}"] = alignment_record(s, M.decode_actions(records[f"eval/s{s}"]["labels"]), rng)
    run = make_run_info(opts, "test-run", time.time() - 100, time.time(), {}, "anvil")
    return opts, records, run


def test_the_curve_is_paired_against_the_reference(setup) -> None:
    opts, records, run = setup
    al = build_results(records, opts, run, ENV)["alignment"]
    seeds = opts.seeds()[:opts.profile.alignment_seeds]
    assert al["seeds"] == len(seeds) == 2 and al["ks"] == [0, 5, 25, 100, 400] and al["method"] == "procrustes"

    def acc(name: str, s: int) -> float:
        u = records[f"alignment/s{s}"]
        return float(np.mean(M.correctness(u["actions"][name], u["labels"])))

    assert al["reference"]["accuracy"] == pytest.approx(np.mean([acc("reference", s) for s in seeds]))
    for point in al["curve"]:
        k = str(point["k"])
        assert point["accuracy"] == pytest.approx(np.mean([acc(k, s) for s in seeds]))
        diff = point["diff_vs_reference"]
        assert diff["diff"] == pytest.approx(np.mean([acc(k, s) - acc("reference", s) for s in seeds]))
        assert diff["ci"][0] <= diff["diff"] <= diff["ci"][1]
        assert point["cka"] == pytest.approx(0.6005)
    k0 = al["curve"][0]["diff_vs_reference"]
    assert k0["excludes_zero"] and k0["diff"] < 0  # 0.4 against 0.7 on 400 tasks x 2 seeds
    gas = al["gas"]
    per_pub = np.mean([records[f"alignment/s{s}"]["chain"]["per_anchor_publication"] for s in seeds])
    assert gas["per_anchor_publication"] == pytest.approx(per_pub)
    assert gas["anchors_by_k"]["25"] == pytest.approx(25 * 2 * per_pub)
    assert gas["register_alignment"] == 120_000
    assert al["chain"]["maps_differ"] == 0 and al["chain"]["publications"] == 32
    assert al["chain"]["sampled"] == 0 and al["chain"]["mismatches"] == 0  # no chain unit in these records


def test_the_section_states_only_what_its_intervals_show(setup) -> None:
    opts, records, run = setup
    r = build_results(records, opts, run, ENV)
    text = render_markdown(r, {})
    assert "## Semantic alignment (trained-apart agents)" in text
    for point in r["alignment"]["curve"]:
        said = f"At K = {point['k']} E-d with the apart agent" in text
        assert said == point["diff_vs_reference"]["excludes_zero"]
    assert "At K = 0 E-d with the apart agent is less accurate" in text
    assert "registerAlignment" in text and "the same map (bytes and id)" in text


def test_a_chain_map_other_than_the_off_chain_one_fails_the_run(setup) -> None:
    opts, records, run = setup
    s = opts.seeds()[0]
    labels = M.decode_actions(records[f"eval/s{s}"]["labels"])
    records[f"alignment/s{s}"] = alignment_record(s, labels, np.random.default_rng(1), map_equal=False)
    r = build_results(records, opts, run, ENV)
    check = next(c for c in r["honesty"]["checks"] if c["name"] == ALIGNMENT_CHECK)
    assert check["passed"] is False and ALIGNMENT_CHECK in r["honesty"]["fatal_failures"]
    assert r["alignment"]["chain"]["maps_differ"] == 1


def test_no_alignment_unit_no_section(tmp_path: Path) -> None:
    profile = get_profile("quick", seeds=2)
    opts = RunOptions(profile=profile, seed=0, out=tmp_path)
    records = full_records(profile, opts.seeds())
    r = build_results(records, opts, make_run_info(opts, "t", time.time(), time.time(), {}, "anvil"), ENV)
    assert r["alignment"] is None
    assert "Semantic alignment" not in render_markdown(r, {})


def test_aligned_tasks_through_the_chain_join_the_chain_check(setup) -> None:
    """An `alignment/chain/s<seed>` unit is checked task by task like every unit: a task that
    finalized another action than the aligned replay's is a chain mismatch and fails the run."""
    from benchrecords import eval_unit

    opts, records, run = setup
    s = opts.seeds()[0]
    u = records[f"alignment/s{s}"]
    ev = {**records[f"eval/s{s}"], "labels": u["labels"]}
    aligned = M.decode_actions(u["actions"]["25"])
    unit = eval_unit(f"alignment/chain/s{s}", 5, ev, aligned, np.random.default_rng(2), row="E-d aligned (K = 25)")
    records[unit["key"]] = unit
    r = build_results(records, opts, run, ENV)
    assert r["alignment"]["chain"]["sampled"] == len(unit["tasks"]) and r["alignment"]["chain"]["mismatches"] == 0
    assert next(c for c in r["honesty"]["checks"] if c["name"] == ALIGNMENT_CHECK)["passed"] is True
    wrong = dict(unit, tasks=[dict(unit["tasks"][0], action=(unit["tasks"][0]["action"] + 1) % 3), *unit["tasks"][1:]])
    records[unit["key"]] = wrong
    r = build_results(records, opts, run, ENV)
    assert r["alignment"]["chain"]["mismatches"] == 1
    assert [m["key"] for m in r["chain_check"]["mismatches"]] == [unit["key"]]
    assert ALIGNMENT_CHECK in r["honesty"]["fatal_failures"]


def test_the_session_nodes_run_the_apart_agent_and_the_fusion_node_s_maps(tmp_path: Path) -> None:
    from node.experiment.alignment import ANCHOR_ARCH, APART_NAME, session_specs
    from node.protocol.enums import Arch

    specs = {s.name: s for s in session_specs(tmp_path / "maps")}
    assert (tmp_path / "maps").is_dir()
    assert specs["market"].settings_args()[-2:] == ["--model", APART_NAME]
    assert ANCHOR_ARCH in specs["market"].embedding_archs and ANCHOR_ARCH not in specs["fusion"].archs
    assert specs["fusion"].settings_args()[-2:] == ["--alignments", str(tmp_path / "maps")]
    assert all(s.archs[0] == Arch.E_D for s in specs.values())
    assert "--model" not in specs["sentiment"].settings_args()


def test_the_variants_are_paired_per_task_against_the_reference(setup) -> None:
    opts, records, run = setup
    al = build_results(records, opts, run, ENV)["alignment"]
    seeds = opts.seeds()[:opts.profile.alignment_seeds]
    assert list(al["variants"]) == list(VARIANT_SKILL)
    for name, v in al["variants"].items():
        assert [c["k"] for c in v["curve"]] == al["ks"] and v["method"] == name.split("/")[1]
        for point in v["curve"]:
            k = str(point["k"])
            per_task = [M.correctness(records[f"alignment/s{s}"]["variants"][name]["actions"][k],
                                      records[f"alignment/s{s}"]["labels"])
                        - M.correctness(records[f"alignment/s{s}"]["actions"]["reference"],
                                        records[f"alignment/s{s}"]["labels"]) for s in seeds]
            diff = point["diff_vs_reference"]
            assert diff["diff"] == pytest.approx(np.mean([np.mean(d) for d in per_task]))
            assert diff["ci"][0] <= diff["diff"] <= diff["ci"][1]
            assert point["cka"] == pytest.approx(0.5 if name.endswith("procrustes") or k == "0" else 0.7)
    assert al["variants"]["other-arch/cca"]["curve"][0]["diff_vs_reference"]["excludes_zero"]


def test_the_variants_table_says_only_what_its_intervals_show(setup) -> None:
    opts, records, run = setup
    r = build_results(records, opts, run, ENV)
    text = render_markdown(r, {})
    header = "| apart agent / map | " + " | ".join(f"K = {k}" for k in r["alignment"]["ks"]) + " | CKA before |"
    assert header in text
    for name, v in r["alignment"]["variants"].items():
        assert f"| {name} | " in text
        for point in v["curve"]:
            said = f"{name} at K = {point['k']}: E-d" in text
            assert said == point["diff_vs_reference"]["excludes_zero"]
    assert "other-arch/cca at K = 0: E-d less accurate" in text
    assert "Hidden width: same-arch 64, other-arch 128." in text


def test_units_without_variants_give_no_variants_table(setup) -> None:
    opts, records, run = setup
    for s in opts.seeds()[:opts.profile.alignment_seeds]:
        records[f"alignment/s{s}"].pop("variants")
    r = build_results(records, opts, run, ENV)
    assert r["alignment"]["variants"] == {} and "apart agent / map" not in render_markdown(r, {})


def test_the_chain_check_names_the_alignment_sessions_tasks(setup) -> None:
    from benchrecords import eval_unit

    opts, records, run = setup
    s = opts.seeds()[0]
    u = records[f"alignment/s{s}"]
    ev = {**records[f"eval/s{s}"], "labels": u["labels"]}
    unit = eval_unit(f"alignment/chain/s{s}", 5, ev, M.decode_actions(u["actions"]["25"]), np.random.default_rng(2),
                     row="E-d aligned (K = 25)")
    records[unit["key"]] = unit
    text = render_markdown(build_results(records, opts, run, ENV), {})
    chain = text[text.index("## Chain check"):]
    assert (f"The alignment sessions' {len(unit['tasks'])} chain tasks (E-d through the registered map, from the "
            f"alignment seed {s})") in chain
