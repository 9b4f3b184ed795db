"""`chorus bench --node-port`: the node API ports a run may bind are checked before anything starts
(a busy one is named in one line, nothing is started or deleted), and within the run each node
process takes the next port of that block, checked again just before it starts."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from node.devnet.cluster import free_base_port
from node.devnet.ports import PortBusy
from node.experiment import nodes
from node.experiment.bench import BenchRequest, check_node_ports, run_bench
from node.experiment.checkpoint import CHECKPOINT
from node.experiment.config import RunOptions, get_profile
from node.experiment.plan import chain_plan
from node.experiment.runner import Bench


@contextmanager
def held(n: int, k: int) -> Iterator[tuple[int, int]]:
    """A block of `n` ports free a moment ago, with a listener on its `k`-th (from 0): (first, busy)."""
    first = free_base_port(n, start=30000)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", first + k))
        sock.listen()
        yield first, first + k


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain, the runner and the node processes must not start."""
    from node.experiment import chain

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the bench started something although a node port is busy")

    monkeypatch.setattr(chain.BenchChain, "start", classmethod(refuse))
    monkeypatch.setattr(Bench, "run", refuse)
    monkeypatch.setattr(nodes.NodeSet, "spawn", refuse)


def _tiny_ports(tmp_path: Path) -> int:
    """How many node ports a tiny run's plan may need (the count the check uses)."""
    opts = RunOptions(profile=get_profile("tiny"), out=tmp_path)
    return chain_plan(Bench(opts, tmp_path, background=False).sessions(), opts.profile).keys


def test_the_whole_block_of_node_ports_is_checked(tmp_path: Path) -> None:
    n = _tiny_ports(tmp_path)
    opts = RunOptions(profile=get_profile("tiny"), out=tmp_path)
    for k in (0, n // 2, n - 1):  # the first, a middle and the last port of the block
        with held(n, k) as (first, busy), pytest.raises(PortBusy) as caught:
            check_node_ports(opts, tmp_path, first)
        assert f"port {busy} " in str(caught.value) and "--node-port" in str(caught.value)
    with held(n + 1, n) as (first, busy):  # the port just past the block is not the run's
        assert check_node_ports(opts, tmp_path, first) == n


def test_a_busy_port_stops_the_command_in_one_line_with_nothing_started_or_deleted(
        tmp_path: Path, nothing_starts: None) -> None:
    from node.cli.main import app

    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_text(json.dumps({"key": "main/s0/a0", "tasks": []}) + "\n")
    before = sorted(p.name for p in out.iterdir())
    with held(_tiny_ports(tmp_path), 3) as (first, busy):
        result = CliRunner().invoke(app, ["bench", "--profile", "tiny", "--node-port", str(first), "--out", str(out),
                                          "--fresh"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("bench failed: ") and f"port {busy} " in lines[0] and "--node-port" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == before  # --fresh deleted nothing


def test_a_block_past_the_last_port_is_refused(tmp_path: Path, nothing_starts: None) -> None:
    with pytest.raises(PortBusy, match="pick a lower --node-port"):
        run_bench(BenchRequest(profile="tiny", out=tmp_path / "run", node_port=65535))


def test_node_processes_take_the_next_ports_of_the_block() -> None:
    with held(6, 5) as (first, _), nodes.fixed_ports(first, 5), nodes._PORTS:
        assert nodes.take_ports(["a", "b"]) == [first, first + 1]
        assert nodes.take_ports(["c"]) == [first + 2]
        with pytest.raises(PortBusy, match="more node API ports than the 5"):
            nodes.take_ports(["d", "e", "f"])
    assert nodes._fixed is None  # automatic choice again after the block
    with held(4, 1) as (first, busy), nodes.fixed_ports(first, 4), nodes._PORTS:
        with pytest.raises(PortBusy) as caught:
            nodes.take_ports(["x/market", "x/sentiment"])
        assert f"port {busy} " in str(caught.value) and "x/sentiment" in str(caught.value)
        assert "--node-port" in str(caught.value)
        assert nodes.take_ports(["x/market"]) == [first]  # a refused set took no port
    with held(1, 0) as (_, busy), nodes._PORTS:  # without a block: a free run of ports, the busy one avoided
        auto = nodes.take_ports(["p", "q", "r"])
    assert busy not in auto and auto == list(range(auto[0], auto[0] + 3))
