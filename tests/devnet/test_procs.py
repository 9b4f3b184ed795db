"""node.devnet.procs: identity by start time, stop with escalation, the parent-death signal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from node.devnet import procs


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def test_a_live_process_is_itself_and_a_changed_start_time_is_not() -> None:
    child = procs.spawn([sys.executable, "-c", "import time; time.sleep(30)"], death_signal=None)
    try:
        started = procs.start_time(child.pid)
        assert started is not None and procs.alive(child.pid)
        assert procs.same_process(child.pid, started) and procs.same_process(child.pid, None)
        assert not procs.same_process(child.pid, started + 1)  # what a recycled pid looks like
        assert procs.cpu_seconds(child.pid) is not None
    finally:
        child.kill()
        child.wait()
    assert not procs.alive(child.pid) and procs.start_time(child.pid) is None and procs.cmdline(child.pid) == []


def test_a_zombie_counts_as_gone_until_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    _wait_for(lambda: not procs.alive(child.pid), 10, "the child to exit")
    procs.reap(child.pid)
    with pytest.raises(ChildProcessError):
        import os

        os.waitpid(child.pid, os.WNOHANG)


def test_stop_escalates_to_sigkill_for_a_process_that_ignores_sigterm(caplog: pytest.LogCaptureFixture) -> None:
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    child = procs.spawn([sys.executable, "-c", code], stdout=subprocess.PIPE, death_signal=None)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        started = procs.start_time(child.pid)
        with caplog.at_level("WARNING", logger="node.devnet.procs"):
            assert procs.stop(child.pid, lambda: procs.same_process(child.pid, started), timeout=0.5, kill_timeout=5)
        assert not procs.alive(child.pid)  # gone, and reaped by stop (so Popen sees no status of its own)
        assert "ignored SIGTERM" in caplog.text and "killing it" in caplog.text
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_stop_sends_nothing_to_a_process_that_is_not_ours() -> None:
    child = procs.spawn([sys.executable, "-c", "import time; time.sleep(30)"], death_signal=None)
    try:
        assert not procs.stop(child.pid, lambda: False, timeout=0.1)
        assert child.poll() is None  # still running: the check said "not ours"
    finally:
        child.kill()
        child.wait()


def test_a_child_dies_with_the_process_that_started_it() -> None:
    # A parent that spawns a long-sleeping child with a death signal, reports its pid, then sleeps.
    parent_code = (
        "import json, sys, time\n"
        "from node.devnet import procs\n"
        "child = procs.spawn([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(json.dumps({'child': child.pid}), flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child_pid = json.loads(parent.stdout.readline())["child"]
        child_started = procs.start_time(child_pid)
        assert procs.same_process(child_pid, child_started)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        _wait_for(lambda: not procs.same_process(child_pid, child_started), 10, "the orphaned child to be killed")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_option_value_reads_the_word_after_an_option() -> None:
    assert procs.option_value(["anvil", "--port", "8545"], "--port") == "8545"
    assert procs.option_value(["anvil", "--port"], "--port") is None
    assert procs.option_value(["anvil"], "--port") is None
