"""`make demo`'s protocol walk-through: a throwaway devnet, 4 agent nodes + the coordinator, one task
per architecture family, all finalized, and nothing left running afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_protocol_demo_finalizes_every_task_and_stops_everything():
    proc = subprocess.Popen([sys.executable, "-m", "scripts.protocol_demo", "--timeout", "90"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    for arch in ("M-fixed", "M-learned", "E-d", "U"):
        assert arch in out
    assert out.count("finalized") >= 4 and "not finalized" not in out
    assert "stopped anvil pid" in out
    stopped = [int(line.split(" pid ")[1].split()[0]) for line in out.splitlines() if line.startswith("stopped ")]
    assert len(stopped) == 6  # 5 nodes + anvil
    for pid in stopped:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
