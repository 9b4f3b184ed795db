"""Sets of node processes for one model set: the agents, the fusion node and the U coordinators.

Each process is a real `chorus node run` (or `chorus coordinator run`), forked by the zygote
(`node.experiment.agentproc`) or started as `python -m node.cli`; its settings flags point the
agent at the model set's manifest and pick its mode. Each has a key of its own (`--dev-key-index N`
on the dev chain, else a generated keystore named by CHORUS_KEYSTORE_PATH and
CHORUS_KEYSTORE_PASSWORD_FILE; see `node.experiment.keys`), its HTTP API on a port of its own
(from `chorus bench --node-port N` in order, or the first free ones from 21700 + 10 x (pid mod 400))
and its SQLite state under the run's work folder. Processes are stopped by pid after checking that
the pid is still theirs (`node.devnet.cluster.NodeProc`), never by name; the kernel stops them too if
the bench dies (PR_SET_PDEATHSIG).

CPU time (user + system, `node.devnet.procs.cpu_seconds`) is read per process so the runner can
charge each architecture the CPU its tasks cost the node processes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from node.devnet import procs
from node.devnet.cluster import NodeProc, free_base_port, wait_healthy
from node.devnet.ports import Port, PortBusy, check_free
from node.experiment.keys import NodeKey
from node.protocol.enums import Role

log = logging.getLogger(__name__)

BASE_PORT = 21700
"""Where the automatic choice of node API ports starts (`chorus bench` without --node-port)."""
PORT_OPTION = "--node-port"
_PORTS = threading.Lock()
"""Held while ports are picked and processes spawned: two sets may start from two threads."""
_next_port = BASE_PORT + 10 * (os.getpid() % 400)
"""Where this process looks for ports first: two benches on one machine rarely start in one range."""


@dataclass
class _FixedPorts:
    first: int
    end: int
    """One past the last port of the block."""
    next: int


_fixed: _FixedPorts | None = None
"""Set by `fixed_ports`: the block of ports the run reserved (None: find free ones automatically)."""


@contextmanager
def fixed_ports(first: int, count: int) -> Iterator[None]:
    """Within this block, node processes take their API ports in order from `first`, each process
    its own (a restarted node keeps its port), never past `first + count - 1`: `chorus bench
    --node-port`. The caller checks the whole block first (`node.devnet.ports.check_free`); each
    port is checked again just before its process starts, and a taken one is `PortBusy`."""
    global _fixed
    with _PORTS:
        previous, _fixed = _fixed, _FixedPorts(first, first + count, first)
    try:
        yield
    finally:
        with _PORTS:
            _fixed = previous


def take_ports(names: list[str]) -> list[int]:
    """API ports for the processes `names` (hold `_PORTS`): the next ones of the `fixed_ports`
    block, checked free (PortBusy names the port and --node-port), or else the first free run of
    ports after the last set's."""
    global _next_port
    if _fixed is None:
        base = free_base_port(len(names), start=_next_port)
        # Ports move forward over the run: a set spawned a moment ago may not listen yet.
        _next_port = base + len(names) if base + 2 * len(names) < 65000 else BASE_PORT
        return list(range(base, base + len(names)))
    ports = list(range(_fixed.next, _fixed.next + len(names)))
    if ports and ports[-1] >= _fixed.end:
        raise PortBusy(f"the run needs more node API ports than the {_fixed.end - _fixed.first} from "
                       f"{PORT_OPTION} {_fixed.first} it reserved")
    check_free([Port(port, f"API of bench node {name}", PORT_OPTION) for port, name in zip(ports, names, strict=True)])
    _fixed.next += len(names)
    return ports


@dataclass(frozen=True)
class NodeSpec:
    """One node process of a set."""

    name: str
    """Unique in its set: market, sentiment, risk, fusion, coordinator-0, market-1 (a replica)..."""
    role: str
    """The role the agent registers: market, sentiment, risk, fusion or coordinator."""
    archs: tuple[int, ...]
    """Architecture ids this node publishes for."""
    embedding_archs: tuple[int, ...] = ()
    """Architectures for which the node also publishes its embedding."""
    mode: str = "honest"
    """The node's `agent_mode`: honest, byzantine, wrong-model or slow."""
    rules: str | None = None
    """M-rules thresholds "risk_veto,lead" (fusion nodes: the `fusion_rules` setting)."""
    delay_s: float = 0.0
    """Mode slow: the node's `agent_delay_s`."""
    transport: str = "tx"
    """The node's `transport`: tx (its own publishDecision), report (signed, via the task's aggregator)
    or batch (its decisions on several tasks in one publishDecisions)."""
    report_fallback_s: float | None = None
    """Transport report: the node's `report_fallback_s` (None: the node's default)."""
    batch_wait_s: float | None = None
    """Transport batch: the node's `batch_wait_s` (None: the node's default)."""

    def with_mode(self, mode: str, archs: tuple[int, ...] | None = None, *, delay_s: float = 0.0) -> NodeSpec:
        from dataclasses import replace

        return replace(self, mode=mode, archs=self.archs if archs is None else tuple(archs), delay_s=delay_s)

    def settings_args(self) -> list[str]:
        """The flags of `chorus node run` / `chorus coordinator run` that set the agent's kind."""
        args = ["--agent-mode", self.mode]
        if self.delay_s:
            args += ["--agent-delay", str(self.delay_s)]
        if self.rules:
            args += ["--fusion-rules", self.rules]
        if self.transport != "tx":
            args += ["--transport", self.transport]
        if self.report_fallback_s is not None:
            args += ["--report-fallback", f"{self.report_fallback_s:g}"]
        if self.batch_wait_s is not None:
            args += ["--batch-wait", f"{self.batch_wait_s:g}"]
        return args


NODE_MODULE = "node.cli"
"""What a node process runs: `python -m node.cli` is `chorus`."""


proc_cpu_seconds = procs.cpu_seconds
"""User + system CPU seconds of a node process; None when it is gone."""


class ForkedNode(NodeProc):
    """A node process of the bench, recognised by pid and start time alone (which is what rules out
    a recycled pid): a process forked by the zygote has the zygote's command line."""

    def is_ours(self) -> bool:
        return self.start_time is not None and procs.same_process(self.pid, self.start_time)


class Zygote:
    """`python -m node.experiment.agentproc --zygote`: forks warm node processes on request."""

    def __init__(self) -> None:
        from node.chain.settings import find_project_root

        # Each child gets the environment of its request; the zygote itself keeps no keystore secret.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_KEYSTORE")}
        env.update({"PYTHONUNBUFFERED": "1", **THREAD_ENV})
        self.process = procs.spawn([sys.executable, "-m", "node.experiment.agentproc", "--zygote"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True,
                                   env=env, cwd=find_project_root())
        self._lock = threading.Lock()
        ready = json.loads(self.process.stdout.readline() or "{}")  # type: ignore[union-attr]
        if "ready" not in ready:
            self.process.kill()
            raise RuntimeError("the node zygote did not start (see stderr)")

    def spawn(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> int:
        request = {"module": NODE_MODULE, "argv": argv, "env": env, "log": str(log_path), "cwd": str(cwd)}
        with self._lock:
            self.process.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
            answer = json.loads(self.process.stdout.readline() or "{}")  # type: ignore[union-attr]
        if "pid" not in answer:
            raise RuntimeError("the node zygote stopped answering")
        return int(answer["pid"])

    def close(self) -> None:
        try:
            self.process.stdin.close()  # type: ignore[union-attr]
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=5)


THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Several nodes share a few cores: one math thread each (also a fixed summation order)."""


@dataclass
class Running:
    spec: NodeSpec
    proc: NodeProc
    key: NodeKey
    cpu_done: float = 0.0
    """CPU seconds of earlier lives of this node (before a restart)."""


@dataclass
class NodeSet:
    """Node processes sharing one model set and one deployment file."""

    label: str
    manifest: Path
    deployment_file: Path
    directory: Path
    rpc_url: str
    fusion_wait_s: float | None
    """Fusion fuses on a partial set after this long; None: it waits for its quorum (the node's default)."""
    poll_s: float | None = None
    """The nodes' idle poll interval (None: the node's default)."""
    zygote: Zygote | None = None
    """Fork node processes from this warm parent (None: start each with a fresh interpreter)."""
    nodes: dict[str, Running] = field(default_factory=dict)
    _cpu_removed: float = 0.0

    @classmethod
    def start(cls, board, specs: list[NodeSpec], manifest: Path, label: str, *, fusion_wait_s: float | None = None,
              poll_s: float | None = None, zygote: Zygote | None = None, timeout: float = 180.0) -> NodeSet:
        """Start one process per spec on fresh keys, following `board` (a `chain.Board`), and wait
        until every one is healthy."""
        directory = board.chain.work_dir / "nodes" / label
        directory.mkdir(parents=True, exist_ok=True)
        node_set = cls(label, Path(manifest), board.deployment_file(), directory, board.rpc_url, fusion_wait_s, poll_s,
                       zygote)
        node_set.add(board, specs, timeout=timeout)
        return node_set

    def add(self, board, specs: list[NodeSpec], timeout: float = 180.0) -> None:
        """Start more processes in this set (same deployment file and model set)."""
        keys = board.chain.allocate_keys(len(specs), board)
        with _PORTS:
            ports = take_ports([f"{self.label}/{spec.name}" for spec in specs])
            started = []
            try:
                for i, spec in enumerate(specs):
                    running = Running(spec, self.spawn(spec, ports[i], keys[i]), keys[i])
                    self.nodes[spec.name] = running
                    started.append(running)
            except BaseException:
                self.stop()
                raise
        try:
            wait_healthy([r.proc for r in started], timeout)
        except BaseException:
            self.stop()
            raise

    def _env(self, spec: NodeSpec, key: NodeKey) -> dict[str, str]:
        # The bench's own CHORUS_* settings (its keystore password, say) never reach a node.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("CHORUS_") or k in ("CHORUS_ARTIFACTS_DIR",)}
        env.update({
            "PYTHONUNBUFFERED": "1",
            **THREAD_ENV,
            "CHORUS_RPC_URL": self.rpc_url,
            "CHORUS_ARCHS": json.dumps(list(spec.archs)),
            "CHORUS_EMBEDDING_ARCHS": json.dumps(list(spec.embedding_archs)),
            **({"CHORUS_FUSION_WAIT_S": str(self.fusion_wait_s)} if self.fusion_wait_s is not None else {}),
            **({"CHORUS_POLL_INTERVAL_S": str(self.poll_s)} if self.poll_s else {}),
        })
        env.update(key.env())  # a generated key: its keystore and password file (paths)
        return env

    def _args(self, spec: NodeSpec, port: int, key: NodeKey, db: Path) -> list[str]:
        """The `chorus` arguments of the node process for `spec`."""
        # `chorus coordinator run` for the U coordinators, `chorus node run --role R` for the agents.
        # A U coordinator takes U from the set's manifest and MiniLM from the project's (its default).
        coordinator = spec.role == Role.COORDINATOR.label
        command = ["coordinator", "run"] if coordinator else ["node", "run", "--role", spec.role]
        return ["-v", *command, "--port", str(port), *key.args(), "--deployment", str(self.deployment_file),
                "--db", str(db), "--manifest", str(self.manifest), *spec.settings_args()]

    def spawn(self, spec: NodeSpec, port: int, key: NodeKey) -> NodeProc:
        """Start one node process of this set on `port` with `key` (does not wait for it to be healthy)."""
        from node.chain.settings import find_project_root

        db = self.directory / f"{spec.name}.sqlite"
        log_path = self.directory / f"{spec.name}.log"
        args = self._args(spec, port, key, db)
        if self.zygote is not None:
            pid = self.zygote.spawn(args, self._env(spec, key), log_path, find_project_root())
            return ForkedNode(role=spec.name, address=key.address, url=f"http://127.0.0.1:{port}",
                              pid=pid, port=port, key_index=key.key_index, db=str(db), log=str(log_path),
                              start_time=procs.start_time(pid))
        command = [sys.executable, "-m", NODE_MODULE, *args]
        with open(log_path, "ab") as out:
            process = procs.spawn(command, stdout=out, env=self._env(spec, key), cwd=find_project_root())
        return ForkedNode(role=spec.name, address=key.address, url=f"http://127.0.0.1:{port}",
                          pid=process.pid, port=port, key_index=key.key_index, db=str(db), log=str(log_path),
                          start_time=procs.start_time(process.pid))

    # -- control ---------------------------------------------------------------------------------

    def address(self, name: str) -> str:
        return self.nodes[name].proc.address

    def restart(self, name: str, spec: NodeSpec, timeout: float = 120.0) -> None:
        """Stop `name` and start it again with `spec` (same key, port and state file)."""
        running = self.nodes[name]
        self.stop_node(name)
        running.proc = self.spawn(spec, running.proc.port, running.key)
        running.spec = spec
        wait_healthy([running.proc], timeout)

    def remove(self, names: list[str]) -> None:
        """Stop and forget some processes of the set (their CPU time stays counted)."""
        for name in names:
            self.stop_node(name)
            self._cpu_removed += self.nodes.pop(name).cpu_done

    def stop_node(self, name: str) -> None:
        running = self.nodes[name]
        cpu = proc_cpu_seconds(running.proc.pid)
        if running.proc.stop(timeout=15.0) and cpu is not None:
            running.cpu_done += cpu
        procs.reap(running.proc.pid)

    def stop(self) -> None:
        """SIGTERM every process first (each finishes its task in hand), then wait for each."""
        signalled = []
        for running in self.nodes.values():
            cpu = proc_cpu_seconds(running.proc.pid)
            if running.proc.signal(signal.SIGTERM):
                running.cpu_done += cpu or 0.0  # the last moments before exit are not counted
                signalled.append(running)
        for running in signalled:
            try:
                if not running.proc.wait_exit(15.0):
                    log.warning("node %s (pid %d) ignored SIGTERM; killing it", running.spec.name, running.proc.pid)
                    running.proc.signal(signal.SIGKILL)
                    running.proc.wait_exit(5.0)
            except Exception:  # keep stopping the others
                log.exception("stopping node %s", running.spec.name)
            procs.reap(running.proc.pid)

    def cpu_seconds(self, arch: int | None = None) -> float:
        """CPU seconds used so far by the processes of the set (all lives) that publish for `arch`
        (all of them when None)."""
        total = self._cpu_removed if arch is None else 0.0
        for running in self.nodes.values():
            if arch is not None and arch not in running.spec.archs:
                continue
            total += running.cpu_done
            if running.proc.is_ours():
                total += proc_cpu_seconds(running.proc.pid) or 0.0
        return total

    def failed_tasks(self, name: str) -> list[dict]:
        """The node's tasks whose node_status is failed, with their errors (GET /tasks?node_status=failed)."""
        import httpx

        url = self.nodes[name].proc.url
        try:
            body = httpx.get(f"{url}/tasks", params={"node_status": "failed", "limit": 200}, timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return []
        return list(body.get("items") or [])

    def log_tail(self, chars: int = 2000) -> str:
        parts = []
        for name, running in self.nodes.items():
            try:
                parts.append(f"--- {name}\n{Path(running.proc.log).read_text(errors='replace')[-chars:]}")
            except OSError:
                pass
        return "\n".join(parts)


def wait_all_exit(node_sets: list[NodeSet], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    for node_set in node_sets:
        for running in node_set.nodes.values():
            while running.proc.is_ours() and time.monotonic() < deadline:
                time.sleep(0.05)
