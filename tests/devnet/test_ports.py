"""node.devnet.ports and its callers: a port the devnet would bind that something else holds is
named, with the option that moves it, before anything starts (no Anvil, no node, no state file)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from node.devnet import anvil, cluster
from node.devnet.ports import Port, PortBusy, check_free, port_free, port_range


@pytest.fixture
def busy() -> Iterator[int]:
    """A port something listens on for the length of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@contextmanager
def held(n: int, k: int) -> Iterator[tuple[int, int]]:
    """A block of `n` ports free a moment ago, with a listener on its `k`-th (from 0): (first, busy)."""
    first = cluster.free_base_port(n, start=30000)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", first + k))
        sock.listen()
        yield first, first + k


def _nothing_may_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("something was started although a port is busy")

    monkeypatch.setattr(anvil.Anvil, "start", classmethod(refuse))
    monkeypatch.setattr(cluster, "spawn_node", refuse)


def test_a_busy_port_is_named_with_its_option(busy: int) -> None:
    assert not port_free(busy)
    with pytest.raises(PortBusy) as caught:
        check_free([Port(busy, "API of the market node", "--node-port")])
    message = str(caught.value)
    assert f"port {busy} " in message and "--node-port" in message and "market" in message
    assert "\n" not in message


def test_free_ports_pass_and_overlaps_or_bad_numbers_do_not(busy: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    check_free([Port(free, "Anvil's JSON-RPC", "--port")])
    with pytest.raises(PortBusy, match=f"port {free} would serve both"):
        check_free([Port(free, "Anvil's JSON-RPC", "--port"), Port(free, "API of the market node", "--node-port")])
    with pytest.raises(PortBusy, match="not a TCP port"):
        check_free([Port(70000, "Anvil's JSON-RPC", "--port")])
    with pytest.raises(PortBusy, match="pick a lower --node-port"):
        port_range(65534, 4, "API of node {i}", "--node-port")
    assert [p.number for p in port_range(busy + 1, 3, "API of node {i}", "--node-port")] == [busy + 1, busy + 2,
                                                                                            busy + 3]


def test_devnet_up_names_a_busy_anvil_port_and_starts_nothing(busy: int, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _nothing_may_start(monkeypatch)
    with pytest.raises(PortBusy, match=f"port {busy} .*Anvil.*--port"):
        anvil.devnet_up(port=busy, state=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_devnet_up_names_a_busy_node_port_and_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _nothing_may_start(monkeypatch)
    roles = cluster.default_roles(4)
    with held(len(roles), 2) as (first, busy), \
            pytest.raises(PortBusy, match=f"port {busy} .*{roles[2]} node.*--node-port"):
        anvil.devnet_up(port=anvil.free_port(), state=tmp_path, also_binds=cluster.node_ports(roles, first))
    assert list(tmp_path.iterdir()) == []


def test_start_nodes_checks_every_port_before_it_spawns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _nothing_may_start(monkeypatch)
    devnet_json = tmp_path / "devnet.json"
    devnet_json.write_text("{}")
    with held(3, 2) as (first, busy), pytest.raises(PortBusy, match=f"port {busy} .*--node-port"):
        cluster.start_nodes(devnet_json, cluster.default_roles(3), base_port=first)


@pytest.mark.parametrize("which", ["--port", "--node-port"])
def test_the_devnet_up_command_says_which_port_in_one_line(which: str, busy: int, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from node.cli.main import app

    _nothing_may_start(monkeypatch)
    monkeypatch.setattr(anvil, "state_dir", lambda root=None: tmp_path)
    args = ["devnet", "up", "--agents", "2"]
    args += ["--port", str(busy)] if which == "--port" else ["--port", str(anvil.free_port()), "--node-port", str(busy)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "devnet up failed" in lines[0], result.output
    assert f"port {busy} " in lines[0] and f"another {which}" in lines[0]
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []
