"""What a task costs in money (`node.chain.fees` through the report): the per-task compressed sizes
of the records become `costs()`'s means, each architecture's `cost_usd_per_task` in results.json
(with the prices used under `prices`), the report's "What a task costs" section and its plot;
records made before the sizes were measured still price L1 and leave the rollups empty."""

from __future__ import annotations

import time
from pathlib import Path

import benchrecords
import pytest
from benchrecords import full_records

from node.chain.fees import Prices, cost_usd
from node.experiment.config import RunOptions, get_profile
from node.experiment.report import metrics as M
from node.experiment.report.render import render_markdown, write_report
from node.experiment.report.results import build_results, make_run_info
from node.protocol.enums import ARCH_NAMES

ENV = {"python": "3.11", "platform": "linux", "machine": "x86_64", "cpu": "test cpu", "cores": 2, "memory_gib": 1.0,
       "hostname": "h", "packages": {"numpy": "2"}, "anvil": "anvil 1.7.1", "seed": 0, "git_commit": None}
PRICES = Prices(eth_usd=2000.0, l1_gas_price_gwei=10.0, op_l1_base_fee_gwei=10.0, op_l1_blob_base_fee_gwei=1.0,
                op_base_fee_scalar=1000, op_blob_base_fee_scalar=500_000, op_l2_gas_price_gwei=0.01,
                arbitrum_l1_price_per_unit_gwei=0.5, arbitrum_l2_gas_price_gwei=0.1)


@pytest.fixture(autouse=True)
def _every_arch_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """The synthetic records need a skill, and the report a training reference name, for every
    architecture (one may be added before the fixture and the report's table know it)."""
    from node.experiment.report import results

    for arch, name in ARCH_NAMES.items():
        if arch not in benchrecords.SKILLS:
            monkeypatch.setitem(benchrecords.SKILLS, arch, 0.6)
        if name not in results.OFFCHAIN_NAME:
            monkeypatch.setitem(results.OFFCHAIN_NAME, name, name)


def _with_sizes(records: dict[str, dict]) -> dict[str, dict]:
    for record in records.values():
        for t in record.get("tasks") or []:
            t.update(fastlz_bytes=0.5 * t["calldata_bytes"], brotli_bytes=0.6 * t["calldata_bytes"],
                     op_da_bytes=0.45 * t["calldata_bytes"])
    return records


def _setup(tmp_path: Path, prices: Prices | None, sizes: bool = True):
    profile = get_profile("quick", seeds=2)
    opts = RunOptions(profile=profile, seed=0, out=tmp_path, prices=prices)
    records = full_records(profile, opts.seeds())
    if sizes:
        records = _with_sizes(records)
    run = make_run_info(opts, "test-run", time.time() - 100, time.time(), {}, "anvil")
    return opts, records, run


def test_costs_gives_the_mean_compressed_sizes_per_task_and_keeps_the_rest() -> None:
    tasks = [{"gas": 100, "calldata_bytes": 10, "txs": 2, "latency_s": 1.0, "blocks": 1},
             {"gas": 300, "calldata_bytes": 30, "txs": 4, "latency_s": 2.0, "blocks": 3}]
    before = M.costs(tasks)
    assert before["fastlz_bytes_per_task"] is None and before["brotli_bytes_per_task"] is None
    for t, (f, b, d) in zip(tasks, ((8, 12, 100.0), (20, 30, 150.5)), strict=True):
        t.update(fastlz_bytes=f, brotli_bytes=b, op_da_bytes=d)
    after = M.costs(tasks)
    assert after["fastlz_bytes_per_task"] == 14 and after["brotli_bytes_per_task"] == 21
    assert after["op_da_bytes_per_task"] == pytest.approx(125.25)
    assert {k: after[k] for k in before if not k.endswith(("fastlz_bytes_per_task", "brotli_bytes_per_task",
                                                           "op_da_bytes_per_task"))} == \
        {k: v for k, v in before.items() if v is not None}


def test_results_price_every_architecture_on_three_chains(tmp_path: Path) -> None:
    opts, records, run = _setup(tmp_path, PRICES)
    results = build_results(records, opts, run, ENV)
    assert results["prices"]["eth_usd"] == 2000.0 and results["prices"]["op_base_fee_scalar"] == 1000
    assert "2,000.00" in results["prices"]["description"]
    for name, a in results["architectures"].items():
        usd = a["cost_usd_per_task"]
        assert set(usd) == {"l1", "op", "arbitrum"}, name
        want = cost_usd(a["gas_per_task"], a["op_da_bytes_per_task"], a["brotli_bytes_per_task"], PRICES)
        assert usd == pytest.approx(want), name
        assert usd["l1"] == pytest.approx(a["gas_per_task"] * 10e-9 * 2000), name
        assert 0 < usd["op"] < usd["l1"] and 0 < usd["arbitrum"] < usd["l1"], name
        assert a["fastlz_bytes_per_task"] == pytest.approx(0.5 * a["calldata_bytes_per_task"]), name


def test_the_prices_change_the_costs_and_nothing_else(tmp_path: Path) -> None:
    opts, records, run = _setup(tmp_path, None)
    default = build_results(records, opts, run, ENV)
    assert default["prices"]["eth_usd"] == Prices().eth_usd
    doubled = build_results(records, RunOptions(profile=opts.profile, seed=0, out=tmp_path,
                                                prices=Prices(eth_usd=2 * Prices().eth_usd)), run, ENV)
    for name, a in default["architectures"].items():
        b = doubled["architectures"][name]
        assert b["cost_usd_per_task"] == pytest.approx({k: 2 * v for k, v in a["cost_usd_per_task"].items()})
        assert {k: v for k, v in a.items() if k != "cost_usd_per_task"} == \
            {k: v for k, v in b.items() if k != "cost_usd_per_task"}


def test_older_records_price_l1_only(tmp_path: Path) -> None:
    opts, records, run = _setup(tmp_path, PRICES, sizes=False)
    results = build_results(records, opts, run, ENV)
    for a in results["architectures"].values():
        assert a["cost_usd_per_task"]["l1"] > 0
        assert a["cost_usd_per_task"]["op"] is None and a["cost_usd_per_task"]["arbitrum"] is None
    assert "## What a task costs" in render_markdown(results, {})


def test_the_report_has_the_section_its_table_and_the_plot(tmp_path: Path) -> None:
    opts, records, run = _setup(tmp_path, PRICES)
    results = write_report(records, opts, tmp_path, run, ENV)
    md = (tmp_path / "report.md").read_text()
    section = md[md.index("## What a task costs"):]
    section = section[:section.index("\n## ", 1)]
    assert "| architecture | Ethereum L1 $/task | OP Stack (Fjord) $/task | Arbitrum $/task | gas | calldata B | " \
           "FastLZ B | Brotli B |" in section
    for name in results["architectures"]:
        assert f"| {name} | $" in section, name
    assert PRICES.sentence() in section
    assert "cost_per_task_usd.png" in section and (tmp_path / "cost_per_task_usd.png").stat().st_size > 0
