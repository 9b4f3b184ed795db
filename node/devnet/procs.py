"""The processes Chorus starts and stops itself: Anvil, agent node processes, the bench's forked nodes.

One helper for all of them, so that devnet, cluster and the experiment agree on what "still ours"
means:

- A process is named by its pid *and* its start time: after ours exits, the kernel may hand its pid
  to an unrelated process, so nothing is signalled unless the start time recorded at spawn still
  matches (callers add a look at the command line for processes read back from a state file).
- A zombie (exited, not yet reaped) counts as gone.
- `spawn` starts a child in a session of its own (Ctrl-C in the terminal does not reach it, and its
  whole group can be signalled) and, where asked, with a parent-death signal (Linux
  `PR_SET_PDEATHSIG`): the kernel signals the child when the thread that started it dies, even by
  SIGKILL, so a killed test or bench leaves nothing running.

psutil reads the process table; only the parent-death signal, which psutil does not offer, is a
direct `prctl` call.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def start_time(pid: int) -> float | None:
    """When `pid` started (seconds since the epoch, as psutil reads it); None if there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def alive(pid: int) -> bool:
    """Whether `pid` exists and has not exited (a zombie has)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def same_process(pid: int, started: float | None) -> bool:
    """Whether `pid` is alive and is still the process that started at `started` (None: not recorded)."""
    return alive(pid) and (started is None or start_time(pid) == started)


def cmdline(pid: int) -> list[str]:
    """The command line of `pid`; empty if it is gone or unreadable."""
    try:
        return [arg for arg in psutil.Process(pid).cmdline() if arg]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return []


def option_value(args: Sequence[str], option: str) -> str | None:
    """The word after `option` in a command line (`--port 8701` -> "8701"), None if absent."""
    args = list(args)
    return args[args.index(option) + 1] if option in args[:-1] else None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds `pid` has used so far; None if it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None
    return float(times.user + times.system)


def reap(pid: int) -> None:
    """Collect `pid` if it is an exited child of this process, so it stops being a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux; elsewhere a no-op).

    Called in a child: as `preexec_fn` between fork and exec, or first thing in a forked child.
    `parent` is the pid that forked us: if it is no longer our parent (it died between the fork and
    here, and we were re-parented), the signal would never come, so the child ends at once.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), int(sig))


def spawn(args: Sequence[str], *, stdout: int | IO[Any] | None = subprocess.DEVNULL,
          stderr: int | IO[Any] | None = subprocess.STDOUT, stdin: int | IO[Any] | None = subprocess.DEVNULL,
          env: Mapping[str, str] | None = None, cwd: Path | str | None = None,
          death_signal: int | None = signal.SIGKILL, text: bool = False) -> subprocess.Popen[Any]:
    """Start `args` in a session of its own; with `death_signal`, the child gets it when we die.

    stderr goes where stdout goes unless told otherwise (None: inherited).
    """
    preexec: Callable[[], None] | None = None
    if death_signal is not None:
        parent = os.getpid()

        def preexec() -> None:  # pragma: no cover - runs in the child, between fork and exec
            die_with_parent(death_signal, parent)
    return subprocess.Popen(list(args), stdin=stdin, stdout=stdout, stderr=stderr, text=text,
                            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
                            preexec_fn=preexec)  # noqa: PLW1509 - only prctl runs there


def send_signal(pid: int, sig: int, *, group: bool = False) -> bool:
    """Signal `pid` (its whole process group with `group`); False if it is gone."""
    try:
        if group:
            try:
                os.killpg(pid, sig)
                return True
            except PermissionError:
                pass  # not a group leader we may signal: the process alone
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, is_ours: Callable[[], bool], timeout: float, poll_s: float = 0.05) -> bool:
    """Wait until `is_ours()` is False (the process exited, and was reaped if it is our child)."""
    deadline = time.monotonic() + timeout
    while True:
        reap(pid)
        if not is_ours():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def stop(pid: int, is_ours: Callable[[], bool], *, timeout: float, kill_timeout: float = 5.0,
         group: bool = False, name: str = "process") -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True if the process was ours and has stopped.

    Nothing is sent unless `is_ours()` holds right before each signal: a recycled pid is never hit.
    """
    if not is_ours():
        reap(pid)
        return False
    send_signal(pid, signal.SIGTERM, group=group)
    if wait_gone(pid, is_ours, timeout):
        return True
    log.warning("%s (pid %d) ignored SIGTERM for %gs; killing it", name, pid, timeout)
    if is_ours():
        send_signal(pid, signal.SIGKILL, group=group)
    return wait_gone(pid, is_ours, kill_timeout)
