"""`python -m node.experiment.agentproc [chorus args]`: a `chorus node run` process for the bench.

It is the standard node (`node.cli.main` -> `node.runtime.node.run_node`, unchanged) with two things the
experiment needs and the node's settings do not offer yet:
- the agent's models come from the manifest named by `CHORUS_BENCH_MANIFEST` (each seed and sweep
  point of the experiment has its own trained models, hence its own model ids);
- `CHORUS_BENCH_MODE` picks what runs behind the node's role: `honest` (default), `byzantine` (the
  opposite action at full confidence) or `wrong-model` (embeddings under an unregistered model id).
  `CHORUS_BENCH_RULES` ("risk_veto,lead") makes a fusion node decide architecture 1 by M-rules.

The same holds for `python -m node.experiment.agentproc coordinator run ...` (the U coordinator,
`chorus coordinator run`): U comes from the session's manifest, MiniLM from the project's.

Everything else (registration, watcher, outbox, finalization, API) is the node runtime's own. The
agent factory is wrapped here, in this process only, before the CLI runs.

`python -m node.experiment.agentproc --zygote` is a warm start for many such processes: it imports
the node runtime once (about 1.5 CPU-seconds per process saved: a run starts dozens), then forks one
child per request read from stdin (a JSON line: argv, env, log file, working directory) and answers
with the child's pid. Each child is a node process of its own — own pid, session, log, state file
and key — running exactly what `python -m node.experiment.agentproc node run ...` runs. The zygote
imports nothing that starts a thread (onnxruntime is imported by each child), so forking it is safe;
it reaps its children, and every process dies with the one above it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

MODES = ("honest", "byzantine", "wrong-model")


def install(env: dict[str, str] | None = None) -> None:
    """Wrap the agent factories (`agents.factory.build_agent` for the agent nodes,
    `agents.coordinator.load_u_agent` for `chorus coordinator run`) per the CHORUS_BENCH_* variables."""
    from agents import coordinator, factory

    env = dict(os.environ if env is None else env)
    mode = env.get("CHORUS_BENCH_MODE", "honest")
    if mode not in MODES:
        raise SystemExit(f"CHORUS_BENCH_MODE must be one of {', '.join(MODES)}, got {mode!r}")
    manifest = Path(env["CHORUS_BENCH_MANIFEST"]) if env.get("CHORUS_BENCH_MANIFEST") else None
    rules = env.get("CHORUS_BENCH_RULES")
    build_original, load_u_original = factory.build_agent, coordinator.load_u_agent

    def wrap(agent):
        from agents.faults import ByzantineAgent, WrongModelAgent

        if mode == "byzantine":
            agent = ByzantineAgent(agent)
        elif mode == "wrong-model":
            agent = WrongModelAgent(agent)
        log.info("bench agent (%s mode, manifest %s): %s", mode, manifest, agent.describe())
        return agent

    def build_agent(role: str, *, model_name: str | None = None, use_trained: bool = True,
                    manifest_path: Path | None = None, text_encoder=None):
        from agents.faults import RulesFusion

        agent = build_original(role, model_name=model_name, use_trained=use_trained,
                               manifest_path=manifest_path or manifest, text_encoder=text_encoder)
        if role == "fusion" and rules:
            risk_veto, lead = (float(x) for x in rules.split(","))
            agent = RulesFusion(agent, risk_veto, lead)
        return wrap(agent)

    def load_u_agent(name: str = "u", *, manifest_path: Path | None = None, text_encoder=None, **kwargs):
        # U from the session's manifest; MiniLM (which that manifest does not hold) from the project's.
        if text_encoder is None and manifest is not None and manifest_path is None:
            from models.minilm.runtime import load_default

            encoder = load_default(kwargs.get("text_kind", "f32"), threads=kwargs.get("threads", 1),
                                   batch_size=kwargs.get("text_batch", 16))
            text_encoder = (encoder, bytes.fromhex(encoder.model_id), encoder.name)
        return wrap(load_u_original(name, manifest_path=manifest_path or manifest, text_encoder=text_encoder,
                                    **kwargs))

    factory.build_agent = build_agent
    coordinator.load_u_agent = load_u_agent


def main() -> None:
    if sys.argv[1:2] == ["--zygote"]:
        zygote()
        return
    install()
    from node.cli.main import app

    app(prog_name="chorus", args=sys.argv[1:])


# -- the zygote -------------------------------------------------------------------------------------


PRELOAD = ("numpy", "web3", "eth_account", "uvicorn", "fastapi", "httpx", "requests", "tokenizers", "pydantic",
           "pydantic_settings", "sqlite3", "node.cli.main", "node.runtime.node", "node.runtime.api", "node.chain.nodechain", "node.runtime.store",
           "node.runtime.watcher", "node.runtime.outbox", "node.protocol.payload", "node.runtime.settings", "agents.factory", "agents.fusion",
           "agents.market", "agents.risk", "agents.sentiment", "agents.onnx", "agents.base", "agents.coordinator",
           "node.coordinator.service", "models.runtime", "models.manifest", "models.data.features", "models.fusion",
           "agents.faults")
"""What the zygote imports before forking: the node runtime without onnxruntime (whose import
starts a thread, which a fork must not inherit)."""


def _die_with_parent(sig: int) -> None:
    import ctypes
    import signal

    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))
        if os.getppid() == 1:  # the parent is already gone
            os.kill(os.getpid(), signal.SIGKILL)


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

    _die_with_parent(signal.SIGKILL)
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
        pid = os.fork()
        if pid == 0:  # the child: becomes the node process
            try:
                _child(request)
            finally:
                os._exit(1)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()


def _child(request: dict) -> None:
    import signal

    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _die_with_parent(signal.SIGKILL)
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
    install()
    from node.cli.main import app

    code = 0
    try:
        app(prog_name="chorus", args=list(request["argv"]))
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
