"""End to end: `chorus bench --profile tiny` through a real Anvil and real node processes.

Two seeds, a few tasks per architecture, the N sweep and the robustness scenarios included: every
architecture must come back from the chain with its metrics, the model-id mismatch
must be a mined, reverted transaction, and the on-chain rerun must repeat its decisions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.protocol.enums import ARCH_NAMES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from node.experiment.bench import BenchRequest, run_bench

    out = tmp_path_factory.mktemp("bench") / "tiny"
    results = run_bench(BenchRequest(profile="tiny", out=out))
    assert results is not None
    return out, results


def test_every_architecture_comes_back_from_the_chain(tiny_run) -> None:
    out, _ = tiny_run
    on_disk = json.loads((out / "results.json").read_text())
    assert set(on_disk["architectures"]) == set(ARCH_NAMES.values())
    for name, a in on_disk["architectures"].items():
        assert a["seeds"] == 2, name
        assert 0.0 <= a["accuracy"] <= 1.0, name
        assert a["finalized_rate"] == 1.0, name
        assert a["gas_per_task"] > 21_000 and a["txs_per_task"] >= 3, name
        assert a["latency_p50_s"] > 0 and a["cpu_s_per_task"] > 0, name
    # what travels on chain shows in the costs: E-d publishes three embeddings more than M-learned
    archs = on_disk["architectures"]
    assert archs["E-d"]["txs_per_task"] == pytest.approx(archs["M-learned"]["txs_per_task"] + 3)
    assert archs["U"]["txs_per_task"] == 3  # submit, one decision, finalize
    # M-learned-p: the same transactions as M-learned, each agent's also carrying its three probabilities
    assert archs["M-learned-p"]["txs_per_task"] == pytest.approx(archs["M-learned"]["txs_per_task"])
    assert archs["M-learned-p"]["gas_per_task"] > archs["M-learned"]["gas_per_task"] + 3 * 1_000
    assert archs["M-learned-p"]["chain_sampled"] > 0 and archs["M-learned-p"]["chain_mismatches"] == 0
    assert (out / "report.md").read_text().startswith("# Chorus bench report")


def test_every_architecture_is_priced_on_three_chains(tiny_run) -> None:
    out, _ = tiny_run
    on_disk = json.loads((out / "results.json").read_text())
    assert {"eth_usd", "l1_gas_price_gwei", "op_base_fee_scalar", "arbitrum_l1_price_per_unit_gwei",
            "description"} <= set(on_disk["prices"])
    for name, a in on_disk["architectures"].items():
        # every transaction's signed bytes were read and compressed: FastLZ, Brotli, Fjord's >= 100 B each
        assert a["fastlz_bytes_per_task"] > 0 and a["brotli_bytes_per_task"] > 0, name
        assert a["op_da_bytes_per_task"] >= 100 * a["txs_per_task"] - 1e-6, name
        usd = a["cost_usd_per_task"]
        assert set(usd) == {"l1", "op", "arbitrum"} and all(v > 0 for v in usd.values()), name
        assert usd["op"] < usd["l1"] and usd["arbitrum"] < usd["l1"], name
    assert "## What a task costs" in (out / "report.md").read_text()
    assert (out / "cost_per_task_usd.png").stat().st_size > 0


def test_units_are_checkpointed_and_match_the_chain(tiny_run) -> None:
    out, _ = tiny_run
    records = [json.loads(line) for line in (out / "units.jsonl").read_text().splitlines()]
    main = [r for r in records if r["key"].startswith("main/")]
    assert len(main) == 2 * len(ARCH_NAMES)
    for r in main:
        assert all(t["action"] in (0, 1, 2) and t["decisions"] >= 1 for t in r["tasks"]), r["key"]


def test_robustness_and_the_model_id_mismatch(tiny_run) -> None:
    _, results = tiny_run
    rob = results["sweeps"]["robustness"]
    assert {"noise-market", "noise-sentiment", "noise-risk", "byzantine", "offline"} <= set(rob["scenarios"])
    offline = rob["scenarios"]["offline"]["architectures"]
    assert offline["U"]["finalized_rate"] == 0.0  # its only coordinator is down: nothing decides
    assert offline["U-rep"]["finalized_rate"] == 1.0  # the other replica decides, after the deadline
    mismatch = rob["model_mismatch"]
    assert mismatch["rejected"] is True
    assert mismatch["probe_tx"]["error"] == "ModelMismatch" and mismatch["probe_tx"]["status"] == 0
    assert mismatch["node_rejections"] >= 1


def test_honesty_rerun_is_identical(tiny_run) -> None:
    _, results = tiny_run
    rerun = next(c for c in results["honesty"]["checks"] if c["name"].startswith("same seed"))
    assert rerun["passed"] is True, rerun["detail"]
    ceiling = next(c for c in results["honesty"]["checks"] if "observation ceiling" in c["name"])
    assert ceiling["passed"] is not False


def test_two_tiers_the_chain_sample_finalizes_the_off_chain_actions(tiny_run) -> None:
    """Every architecture is measured on the seed's evaluation set off chain; the chain sample
    (drawn from a block hash) finalized, task by task, exactly the off-chain actions."""
    from node.experiment.config import get_profile

    out, results = tiny_run
    profile = get_profile("tiny")
    records = {r["key"]: r for r in map(json.loads, (out / "units.jsonl").read_text().splitlines())}
    for seed in (0, 1):
        ev = records[f"eval/s{seed}"]
        assert ev["n"] == profile.eval_tasks and len(ev["labels"]) == profile.eval_tasks
        assert ev["chain_sample"]["block_hash"].startswith("0x") and len(ev["chain_sample"]["indices"]) == profile.tasks
        assert 0 < ev["ceilings"]["observation"] < ev["ceilings"]["latent"] <= 1
    mains = [r for k, r in records.items() if k.startswith("main/")]
    assert mains and all(r["chain_check"]["sampled"] == len(r["tasks"]) and r["chain_check"]["mismatches"] == []
                         for r in mains)
    assert results["chain_check"]["mismatches"] == [] and results["chain_check"]["sampled"] >= len(mains) * profile.tasks
    for name, a in results["architectures"].items():
        assert a["n_eval_tasks"] == profile.eval_tasks and a["chain_mismatches"] == 0, name
        lo, hi = a["accuracy_ci"]
        assert lo <= a["accuracy"] <= hi, name


def test_signed_reports_cost_fewer_transactions_and_change_no_decision(tiny_run) -> None:
    """The transport sweep: M-fixed on the main table's first chain tasks again, under signed
    reports: one submitReport instead of three publications and finalize, the same decisions; and
    batched: the agents' decisions of several tasks in one publishDecisions each."""
    from node.experiment.config import get_profile
    from node.experiment.plan import transport_archs

    _, results = tiny_run
    tr = results["transports"]
    rows = {(r["arch"], r["transport"]): r for r in tr["rows"]}
    tx, report = rows[("M-fixed", "tx")], rows[("M-fixed", "report")]
    assert tx["tasks"] == report["tasks"] == get_profile("tiny").transport_tasks
    assert report["txs_per_task"] == 2 and tx["txs_per_task"] == 5  # submit + report; submit, 3 decisions, finalize
    assert report["txs_per_task"] < tx["txs_per_task"] and 0 < report["gas_ratio"] < 1
    assert report["accuracy"] == tx["accuracy"] and report["latency_p50_s"] > 0
    for transport in ("report", "batch"):
        assert {a for a, t in rows if t == transport} == {ARCH_NAMES[a] for a in transport_archs(transport)}
    for arch in ("M-rules", "M-learned"):  # the fusion agent's decision goes in the same report
        assert rows[(arch, "report")]["txs_per_task"] == 2 and rows[(arch, "tx")]["txs_per_task"] == 6
    batch = rows[("M-fixed", "batch")]
    assert batch["txs_per_task"] < tx["txs_per_task"] and 0 < batch["gas_ratio"] < 1
    assert batch["accuracy"] == tx["accuracy"]
    assert tr["check"]["passed"] is True and tr["check"]["compared"] >= 11 * report["tasks"]
    check = next(c for c in results["honesty"]["checks"] if c["name"] == tr["check"]["name"])
    assert check["passed"] is True and check["fatal"] is True

