"""`node.bench.gasbatch`: batched publications and signed reports against the protocol's floor."""

from __future__ import annotations

from node.bench.gas import SSTORE_RESET_COLD, SSTORE_SET_COLD, calldata_cost, log_cost
from node.bench.gasbatch import BATCH_SIZES, REPORT_SIGNERS, batch_floor, measure_batches, report_sstores
from node.chain.api import Log


def test_floor_arithmetic() -> None:
    data = bytes([0, 1]) * 40
    logs = [Log("0x" + "00" * 20, (bytes(32),) * 3, bytes(96), 1, "0x", 0)]
    assert batch_floor(7, data, logs) == 21_000 + calldata_cost(data) + log_cost(logs) + 7
    assert batch_floor(0, b"\x01" * 1536, []) == 21_000 + 61_440  # the EIP-7623 floor wins
    assert report_sstores(3) == 3 * SSTORE_SET_COLD + 2 * SSTORE_RESET_COLD
    assert report_sstores(3, finalizes=False) == 3 * SSTORE_SET_COLD + SSTORE_RESET_COLD


def test_rows_against_the_session_anvil(chain) -> None:
    rows = measure_batches(chain.rpc_url)
    assert [(r.op, r.items) for r in rows] == (
        [("publishDecisions", n) for n in BATCH_SIZES] + [("publishEmbeddings", n) for n in BATCH_SIZES]
        + [("report", n) for n in REPORT_SIGNERS])
    for r in rows:
        assert r.gas >= r.floor > 21_000, r
        assert abs(r.gas_per_item / r.floor_per_item - r.ratio) < 1e-3
        assert r.gas_row().op.startswith(("publish", "report"))
        assert set(r.public()) >= {"op", "items", "gas", "floor", "ratio", "gas_per_item", "floor_per_item"}
    for op in ("publishDecisions", "publishEmbeddings"):
        ratios = [r.ratio for r in rows if r.op == op]
        assert ratios == sorted(ratios, reverse=True), f"{op}: the fixed costs amortize as batches grow"
    for r in rows:
        if r.op == "report":
            assert r.individual_gas and r.gas < r.individual_gas, "a report beats N transactions + finalize"
