"""`python -m node.experiment.agentproc --zygote`: a warm fork server for the bench's node processes.

It imports the node runtime once (about 1.5 CPU-seconds per process saved: a run starts dozens),
then forks one child per request read from stdin (a JSON line: the module to run, its argv, env,
log file, working directory) and answers with the child's pid. Each child is a node process of its
own — own pid, session, log, state file and key — running exactly what `python -m <module> <argv>`
runs (the bench asks for `node.cli`: `chorus node run ...` or `chorus coordinator run ...`, whose
settings say the agent's mode and manifest). The zygote imports nothing that starts a thread
(onnxruntime is imported by each child), so forking it is safe; it reaps its children, and every
process dies with the one above it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import logging
import os
import sys

from node.devnet import procs

log = logging.getLogger(__name__)


def main() -> None:
    if sys.argv[1:] != ["--zygote"]:
        raise SystemExit("usage: python -m node.experiment.agentproc --zygote (node processes: python -m node.cli)")
    zygote()


# -- the zygote -------------------------------------------------------------------------------------


PRELOAD = ("numpy", "web3", "eth_account", "uvicorn", "fastapi", "httpx", "requests", "tokenizers", "pydantic",
           "pydantic_settings", "sqlite3", "node.cli.main", "node.runtime.node", "node.runtime.api",
           "node.chain.nodechain", "node.runtime.store", "node.runtime.watcher", "node.runtime.outbox",
           "node.protocol.payload", "node.runtime.settings", "agents.factory", "agents.fusion", "agents.market",
           "agents.risk", "agents.sentiment", "agents.onnx", "agents.base", "agents.coordinator", "agents.faults",
           "node.coordinator.service", "models.runtime", "models.manifest", "models.data.features", "models.fusion")
"""What the zygote imports before forking: the node runtime without onnxruntime (whose import
starts a thread, which a fork must not inherit). By name only: the children run the CLI, a layer
above this one, which the zygote warms up but never calls."""


def _reap_children(*_args: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def zygote() -> None:
    """Serve fork requests from stdin until it closes (see the module docstring)."""
    import importlib
    import json
    import signal
    import threading

    # The zygote dies with the bench by the parent-death signal `Zygote` spawned it with (it survives
    # exec); each child asks for its own below, since a fork clears it.
    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() > 1 or len(os.listdir("/proc/self/task")) > 1:
        raise SystemExit("zygote: a preloaded module started a thread; forking would not be safe")
    signal.signal(signal.SIGCHLD, _reap_children)
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        zygote_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: becomes the node process
            try:
                _child(request, zygote_pid)
            finally:
                os._exit(1)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()


def _child(request: dict, zygote_pid: int) -> None:
    import signal

    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    procs.die_with_parent(signal.SIGKILL, parent=zygote_pid)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the process ends with os._exit
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    import runpy

    code = 0
    try:
        sys.argv = ["chorus", *request["argv"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - anything else is printed to the node's log, then exit 1
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
