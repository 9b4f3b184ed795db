"""devnet up/status/down against a state directory of the test's own; pids checked before signals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from node.chain.deploy import Deployment
from node.devnet.anvil import Anvil, DevnetError, devnet_down, devnet_status, devnet_up, free_port, rpc_ready


def test_up_status_down(tmp_path: Path) -> None:
    port = free_port()
    state = devnet_up(port=port, state=tmp_path)
    try:
        recorded = json.loads((tmp_path / "devnet.json").read_text())
        assert recorded == state
        assert recorded["rpc_url"] == f"http://127.0.0.1:{port}" and recorded["chain_id"] == 31337
        assert set(recorded["contracts"]) == {"ModelRegistry", "AgentRegistry", "TaskBoard"}
        assert recorded["anvil"]["port"] == port
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
