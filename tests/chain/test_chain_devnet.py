"""devnet up/status/down against a state directory of the test's own; pids checked before signals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from node.chain.deploy import Deployment
from node.devnet.anvil import (CACHE_OWNER, CACHE_PREFIX, MAX_PERSISTED_STATES, Anvil, DevnetError, devnet_down,
                               devnet_status, devnet_up, free_port, rpc_ready, sweep_stale_caches)


def test_up_status_down(tmp_path: Path) -> None:
    port = free_port()
    state = devnet_up(port=port, state=tmp_path)
    try:
        recorded = json.loads((tmp_path / "devnet.json").read_text())
        assert recorded == state
        assert recorded["rpc_url"] == f"http://127.0.0.1:{port}" and recorded["chain_id"] == 31337
        assert set(recorded["contracts"]) == {"ModelRegistry", "AgentRegistry", "TaskBoard"}
        assert recorded["anvil"]["port"] == port
        cache = Path(recorded["anvil"]["cache"])
        assert cache.is_dir() and cache.name.startswith(CACHE_PREFIX)
        assert int((tmp_path / "anvil.pid").read_text()) == recorded["anvil"]["pid"]
        deployment = Deployment.load(tmp_path / "devnet.json")  # what node processes read
        assert deployment.contracts == recorded["contracts"] and deployment.extra["anvil"]["port"] == port
        status = devnet_status(tmp_path)
        assert status.running and status.rpc_up
        with pytest.raises(DevnetError, match="already running"):
            devnet_up(port=free_port(), state=tmp_path)
    finally:
        message = devnet_down(tmp_path)
    assert "stopped anvil pid" in message
    assert rpc_ready(f"http://127.0.0.1:{port}") is None
    assert not (tmp_path / "devnet.json").exists() and not (tmp_path / "anvil.pid").exists()
    assert not devnet_status(tmp_path).running
    assert not cache.exists(), "devnet down left Anvil's state cache behind"


def test_down_never_signals_a_pid_that_is_not_our_anvil(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "anvil.pid").write_text(f"{bystander.pid}\n")
        assert "no longer running (or is not ours)" in devnet_down(tmp_path)
        assert bystander.poll() is None, "devnet down signalled a process that is not anvil"
    finally:
        bystander.kill()
        bystander.wait()


def test_anvil_stop_is_idempotent_and_checks_start_time() -> None:
    anvil = Anvil.start(die_with_parent=True)
    impostor = Anvil(pid=anvil.pid, port=anvil.port, executable=anvil.executable,
                     start_time=(anvil.start_time or 0) + 1)
    assert not impostor.is_ours() and not impostor.stop()
    assert anvil.is_ours()
    assert anvil.stop()
    assert not anvil.stop()


def test_anvil_keeps_a_bounded_state_cache_of_its_own_and_removes_it() -> None:
    """Old block states go to the Anvil's own cache, at most MAX_PERSISTED_STATES of them; stop removes it."""
    import requests

    anvil = Anvil.start(die_with_parent=True)
    try:
        cache = anvil.cache_dir
        assert cache is not None and json.loads((cache / CACHE_OWNER).read_text())["pid"] == anvil.pid
        reply = requests.post(anvil.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_mine",
                                                   "params": [hex(3 * MAX_PERSISTED_STATES + 300)]}, timeout=60)
        assert "error" not in reply.json()
        states = [f for f in cache.rglob("*.json") if f.name != CACHE_OWNER]
        assert 0 < len(states) <= MAX_PERSISTED_STATES + 1, len(states)
    finally:
        anvil.stop()
    assert not cache.exists()


def test_sweep_removes_caches_whose_anvil_is_gone(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / (CACHE_PREFIX + "orphan")
    orphan.mkdir()
    (orphan / CACHE_OWNER).write_text(json.dumps({"pid": dead.pid, "start_time": None}))
    (orphan / "0xabc.json").write_text("{}")
    live = tmp_path / (CACHE_PREFIX + "live")
    live.mkdir()
    (live / CACHE_OWNER).write_text(json.dumps({"pid": __import__("os").getpid(), "start_time": None}))
    starting = tmp_path / (CACHE_PREFIX + "starting")  # no owner yet: an Anvil being started elsewhere
    starting.mkdir()
    unrelated = tmp_path / "someone-else"
    unrelated.mkdir()
    assert sweep_stale_caches(tmp_path) == [orphan]
    assert live.exists() and starting.exists() and unrelated.exists()
    assert sweep_stale_caches(tmp_path, grace_s=0) == [starting]
