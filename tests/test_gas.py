"""`chorus gas`: the floor arithmetic, the JSON shape, and the SSTORE table against a real trace."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from node.bench.gas import (
    DIMS,
    ENCODINGS,
    SSTORE_RESET_COLD,
    SSTORE_SET_COLD,
    calldata_cost,
    calldata_floor,
    gas_floor,
    log_cost,
)
from node.chain.api import Log
from node.cli.main import app

ROW_KEYS = {"op", "d", "encoding", "gas", "floor", "ratio", "signed_bytes", "fastlz_bytes", "brotli_bytes", "cost_usd"}


def _log(topics: int, data: int) -> Log:
    return Log("0x" + "00" * 20, tuple(bytes(32) for _ in range(topics)), bytes(data), 1, "0x", 0)


def test_floor_arithmetic() -> None:
    data = bytes([0, 0, 1, 2])
    assert calldata_cost(data) == 2 * 4 + 2 * 16
    assert calldata_floor(data) == 10 * (2 + 4 * 2)
    assert log_cost([_log(3, 96)]) == 375 + 3 * 375 + 8 * 96
    logs = [_log(3, 96)]
    expected = 21_000 + max(calldata_cost(data) + log_cost(logs) + SSTORE_SET_COLD + SSTORE_RESET_COLD,
                            calldata_floor(data))
    assert gas_floor("publishDecision", data, logs) == expected


def test_eip7623_floor_wins_for_big_calldata_without_execution() -> None:
    # The design's check: a 384-d f32 vector alone costs at least 40 * 1536 = 61,440 gas of floor.
    assert calldata_floor(b"\x01" * 1536) == 61_440


def _check_rows(rows: list[dict]) -> None:
    assert all(set(r) == ROW_KEYS for r in rows)
    decisions = [r for r in rows if r["op"] == "publishDecision"]
    embeddings = [(r["d"], r["encoding"]) for r in rows if r["op"] == "publishEmbedding"]
    assert len(decisions) == 1 and decisions[0]["d"] is None and decisions[0]["encoding"] is None
    assert sorted(embeddings) == sorted((d, e) for d in DIMS for e in ENCODINGS)
    for r in rows:
        assert r["gas"] >= r["floor"] > 21_000, r
        assert abs(r["ratio"] - r["gas"] / r["floor"]) < 1e-3


def test_gas_json_against_the_session_anvil(chain) -> None:
    result = CliRunner().invoke(app, ["gas", "--json", "--rpc-url", chain.rpc_url])
    assert result.exit_code == 0, result.output
    _check_rows(json.loads(result.stdout))


def test_gas_starts_and_stops_its_own_anvil() -> None:
    proc = subprocess.run([sys.executable, "-m", "node.cli", "gas", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    _check_rows(json.loads(proc.stdout))
