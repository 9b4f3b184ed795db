"""Cluster bookkeeping (no processes started here; the e2e tests start real ones) and the
benchmark's arithmetic."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import wait_until

from node.devnet.cluster import (
    NodeProc,
    default_roles,
    free_base_port,
    node_command,
    nodes_status,
    recorded_nodes,
    stop_nodes,
)
from node.bench.throughput import BenchResult, format_result, percentile


def test_default_mix_of_roles() -> None:
    assert default_roles(4) == ["market", "sentiment", "risk", "fusion"]
    assert default_roles(6) == ["market", "sentiment", "risk", "fusion", "market", "sentiment"]
    assert default_roles(2) == ["market", "sentiment"]


def test_free_base_port_skips_busy_ports() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        base = free_base_port(3, start=taken)
        assert base > taken or base + 2 < taken


def proc(pid: int, port: int = 18999) -> NodeProc:
    return NodeProc(role="market", address="0xA", url=f"http://127.0.0.1:{port}", pid=pid, port=port, key_index=1,
                    db="/tmp/x.sqlite", log="/tmp/x.log", start_time=None)


def test_a_pid_that_is_not_a_node_is_never_ours() -> None:
    assert not proc(os.getpid()).is_ours()  # pytest: alive, but not `node run --port 18999`
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not proc(sleeper.pid).is_ours()
        assert not proc(sleeper.pid).signal(9)  # refused: never kill what we did not start
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not proc(sleeper.pid).is_ours()


def test_a_node_command_line_is_recognised_by_port_and_start_time(tmp_path: Path) -> None:
    # A harmless stand-in with a node's command line shape: python -c ... node run --port P
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "node", "run", "--port", "18998"])
    try:
        from node.devnet.procs import start_time  # the value a real spawn records

        mine = proc(fake.pid, 18998)
        mine.start_time = start_time(fake.pid)
        # A loaded machine may lag the exec.
        wait_until(mine.is_ours, 5, "the stand-in to show its node command line", interval=0.01)
        assert not proc(fake.pid, 18997).is_ours()  # other port
        mine_later = proc(fake.pid, 18998)
        mine_later.start_time = (mine.start_time or 0) + 1  # a recycled pid
        assert not mine_later.is_ours()
        assert mine.stop(timeout=5)
    finally:
        fake.kill()
        fake.wait()


def test_records_round_trip_and_stop_of_dead_nodes(tmp_path: Path) -> None:
    devnet = tmp_path / "devnet.json"
    gone = proc(2**22 + 12345)
    devnet.write_text(json.dumps({"rpc_url": "http://127.0.0.1:1", "nodes": [gone.to_dict()]}))
    assert recorded_nodes(devnet) == [gone]
    (status,) = nodes_status(devnet)
    assert not status.running and not status.healthy
    assert stop_nodes(devnet) == [f"market node pid {gone.pid} was not running"]
    assert json.loads(devnet.read_text())["nodes"] == []
    assert json.loads(devnet.read_text())["rpc_url"] == "http://127.0.0.1:1"  # the rest is kept
    assert stop_nodes(tmp_path / "missing.json") == []


def test_node_command_uses_the_recorded_key_and_state(tmp_path: Path) -> None:
    cmd = node_command("risk", 8703, 3, tmp_path / "devnet.json", tmp_path / "risk.sqlite")
    assert cmd[1:3] == ["-m", "node.cli"]
    assert cmd[cmd.index("--dev-key-index") + 1] == "3" and cmd[cmd.index("--port") + 1] == "8703"


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([5.0], 95) == 5.0


def test_format_result_prints_rates_latencies_and_ratio() -> None:
    r = BenchResult(nodes=4, roles=["market", "sentiment", "risk", "fusion"], arch=2, tasks=40, duration_s=4.0,
                    tasks_per_s=10.0, latency_p50_s=0.5, latency_p95_s=0.9, latency_max_s=1.0, chain_txs=240,
                    txs_per_task=6.0, pipeline_tx_per_s=60.0, raw_txs=500, raw_tx_per_s=400.0,
                    raw_before_tx_per_s=450.0, raw_after_tx_per_s=350.0, ratio_tasks_to_raw=0.025, ratio_txs_to_raw=0.15, mining="auto", paced_tasks=10,
                    paced_latency_p50_s=0.2, paced_latency_p95_s=0.3)
    text = format_result(r)
    for needle in ("10.00 tasks/s", "p50   500.0 ms", "p95   900.0 ms", "400.0 tx/s", "0.0250", "0.150",
                   "450.0 tx/s before the burst, 350.0 after it"):
        assert needle in text
