"""Start, stop and check N agent node processes on a devnet (`chorus devnet up --agents N`).

Each node is one OS process (`python -m node.cli -v node run ...`) in a session of its own, with
dev key `1 + i` (key 0 deploys, key 19 is the submitter's: `node.devnet.accounts`), its API on
`base_port + i`, its state and log under `.chorus/nodes/`. The started processes are recorded in devnet.json under `nodes`
(role, address, url, pid, ...) so `stop_nodes` stops exactly them: by pid, and only after checking
that the pid is still that node (same start time, same command line), never by name.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from node.devnet import procs
from node.devnet.accounts import node_keys
from node.devnet.ports import Port, check_free, port_range
from node.protocol.enums import AGENT_ROLES, Role
from node.protocol.errors import ChorusError, ConfigError

log = logging.getLogger(__name__)

DEFAULT_ROLE_CYCLE = tuple(role.label for role in (*AGENT_ROLES, Role.FUSION))
"""The roles `devnet up --agents N` cycles through: the three modality agents, then fusion."""


class ClusterError(ChorusError):
    """Node processes could not be started, found healthy, or stopped."""


def free_base_port(n: int, start: int = 8701, host: str = "127.0.0.1") -> int:
    """The first port >= `start` with `n` consecutive ports nobody listens on."""
    import socket

    def free(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
            return True

    port = start
    while port + n < 65535:
        if all(free(port + i) for i in range(n)):
            return port
        port += n
    raise ClusterError(f"no {n} consecutive free ports from {start}")


def node_ports(roles: list[str], base_port: int, option: str = "--node-port") -> list[Port]:
    """The API ports `start_nodes(roles, base_port)` binds, one per role, for `ports.check_free`."""
    ports = port_range(base_port, len(roles), "API of node {i}", option)  # PortBusy past 65535
    return [Port(p.number, f"API of the {role} node", option) for p, role in zip(ports, roles, strict=True)]


def default_roles(n: int) -> list[str]:
    """The default mix for N nodes: market, sentiment, risk, fusion, then round again."""
    return [DEFAULT_ROLE_CYCLE[i % len(DEFAULT_ROLE_CYCLE)] for i in range(n)]


@dataclass
class NodeProc:
    """One node process as recorded in devnet.json."""

    role: str
    address: str
    url: str
    pid: int
    port: int
    key_index: int
    db: str
    log: str
    start_time: float | None = None
    """When the process started (`procs.start_time`): tells this node from a recycled pid."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeProc:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})

    def is_ours(self) -> bool:
        """Whether `pid` is still this node (not an exited process whose pid was reused)."""
        if not procs.same_process(self.pid, self.start_time):
            return False
        cmdline = procs.cmdline(self.pid)
        return (bool({"node", "coordinator"} & set(cmdline)) and "run" in cmdline
                and procs.option_value(cmdline, "--port") == str(self.port))

    def signal(self, sig: int) -> bool:
        """Send `sig` if the process is still this node; False if it is not (or is gone)."""
        return self.is_ours() and procs.send_signal(self.pid, sig)

    def wait_exit(self, timeout: float) -> bool:
        """Wait until the process is gone (reaped, if it is our child); False on timeout."""
        return procs.wait_gone(self.pid, self.is_ours, timeout)

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM (the node finishes its task in hand), SIGKILL after `timeout`. True if it ran."""
        return procs.stop(self.pid, self.is_ours, timeout=timeout, name=f"node {self.role}")


# -- devnet.json ------------------------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def _write(path: Path, state: dict[str, Any]) -> None:
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def recorded_nodes(devnet_json_path: Path) -> list[NodeProc]:
    return [NodeProc.from_dict(n) for n in _read(devnet_json_path).get("nodes", [])]


def _record(devnet_json_path: Path, nodes: list[NodeProc]) -> None:
    state = _read(devnet_json_path)
    state["nodes"] = [n.to_dict() for n in nodes]
    _write(devnet_json_path, state)


# -- start / health / stop ------------------------------------------------------------------------------


def node_command(role: str, port: int, key_index: int, devnet_json_path: Path, db: Path,
                 extra_args: tuple[str, ...] = ()) -> list[str]:
    """`chorus node run --role ROLE ...`, or `chorus coordinator run ...` for role coordinator (the
    same node plus /embed and /decide)."""
    run = ["coordinator", "run"] if role == "coordinator" else ["node", "run", "--role", role]
    return [sys.executable, "-m", "node.cli", "-v", *run, "--port", str(port),
            "--dev-key-index", str(key_index), "--deployment", str(devnet_json_path), "--db", str(db), *extra_args]


def spawn_node(role: str, port: int, key_index: int, devnet_json_path: Path, *, state_dir: Path | None = None,
               env: dict[str, str] | None = None, die_with_parent: bool = False,
               extra_args: tuple[str, ...] = ()) -> NodeProc:
    """Start one node process (does not wait for it to be healthy)."""
    from node.chain.settings import dev_account, find_project_root

    devnet_json_path = Path(devnet_json_path).resolve()
    directory = state_dir or devnet_json_path.parent / "nodes"
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / f"{role}-{port}.sqlite"
    log_path = directory / f"{role}-{port}.log"
    child_env = {**os.environ, **(env or {})}
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    # file:// payloads are off by default; on the devnet the nodes read the folder where
    # `chorus task submit` stores the large ones (beside devnet.json).
    child_env.setdefault("CHORUS_PAYLOAD_ALLOW_FILE", json.dumps([str(devnet_json_path.parent / "payloads")]))
    # A node must sign with the key we record, whatever the caller's environment says.
    for var in ("CHORUS_KEYSTORE_PATH", "CHORUS_KEYSTORE_PASSWORD", "CHORUS_KEYSTORE_PASSWORD_FILE"):
        child_env.pop(var, None)
    with open(log_path, "ab") as out:
        process = procs.spawn(node_command(role, port, key_index, devnet_json_path, db, extra_args), stdout=out,
                              env=child_env, cwd=find_project_root(),
                              death_signal=signal.SIGKILL if die_with_parent else None)
    return NodeProc(role=role, address=dev_account(key_index).address, url=f"http://127.0.0.1:{port}",
                    pid=process.pid, port=port, key_index=key_index, db=str(db), log=str(log_path),
                    start_time=procs.start_time(process.pid))


def node_health(node: NodeProc, timeout: float = 1.0) -> dict[str, Any] | None:
    """The node's `GET /health` body, or None when it does not answer."""
    import httpx

    try:
        response = httpx.get(f"{node.url}/health", timeout=timeout)
        return response.json()
    except (httpx.HTTPError, ValueError):
        return None


def wait_healthy(nodes: list[NodeProc], timeout: float = 60.0) -> None:
    """Block until every node answers /health with status ok; ClusterError (with log tails) if not."""
    deadline = time.monotonic() + timeout
    pending = list(nodes)
    while pending:
        for node in list(pending):
            body = node_health(node, timeout=0.5)
            if body is not None and body.get("status") == "ok":
                pending.remove(node)
            elif not procs.alive(node.pid):
                procs.reap(node.pid)
                raise ClusterError(f"node {node.role} (pid {node.pid}) exited during start-up:\n{_tail(node.log)}")
        if pending and time.monotonic() > deadline:
            names = ", ".join(f"{n.role}:{n.port}" for n in pending)
            raise ClusterError(f"nodes not healthy after {timeout:.0f}s: {names}\n{_tail(pending[0].log)}")
        if pending:
            time.sleep(0.1)


def _tail(path: str, chars: int = 1500) -> str:
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def start_nodes(devnet_json_path: Path, roles: list[str] | None = None, base_port: int = 8701, *,
                n: int | None = None, timeout: float = 90.0, die_with_parent: bool = False,
                env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()) -> list[NodeProc]:
    """Start one node per role (default mix for `n`; "coordinator" starts `chorus coordinator run`),
    wait until all are healthy, record them in devnet.json under `nodes`. On failure every node
    started here is stopped again."""
    devnet_json_path = Path(devnet_json_path).resolve()
    roles = list(roles) if roles is not None else default_roles(n or 4)
    running = [node for node in recorded_nodes(devnet_json_path) if node.is_ours()]
    if running:
        raise ClusterError(f"{len(running)} nodes recorded in {devnet_json_path} still run; stop them first")
    keys = node_keys(len(roles))
    check_free(node_ports(roles, base_port))
    nodes: list[NodeProc] = []
    try:
        for i, (role, key) in enumerate(zip(roles, keys, strict=True)):
            nodes.append(spawn_node(role, base_port + i, key, devnet_json_path, env=env,
                                    die_with_parent=die_with_parent, extra_args=extra_args))
        _record(devnet_json_path, nodes)
        wait_healthy(nodes, timeout)
    except BaseException:
        for node in nodes:
            node.stop(timeout=5.0)
        _record(devnet_json_path, [])
        raise
    log.info("%d nodes healthy: %s", len(nodes), ", ".join(f"{n.role}@{n.url}" for n in nodes))
    return nodes


def restart_node(devnet_json_path: Path, node: NodeProc, *, timeout: float = 60.0,
                 die_with_parent: bool = False) -> NodeProc:
    """Start `node` again (same role, port, key and state file) after it stopped or was killed;
    wait until healthy and replace its record in devnet.json."""
    if node.is_ours():
        raise ClusterError(f"node {node.role} (pid {node.pid}) still runs")
    fresh = spawn_node(node.role, node.port, node.key_index, Path(devnet_json_path), die_with_parent=die_with_parent)
    nodes = [fresh if (n.port, n.key_index) == (node.port, node.key_index) else n
             for n in recorded_nodes(Path(devnet_json_path))]
    _record(Path(devnet_json_path), nodes)
    wait_healthy([fresh], timeout)
    return fresh


def stop_nodes(devnet_json_path: Path, timeout: float = 15.0) -> list[str]:
    """SIGTERM exactly the recorded nodes that are still ours, then clear `nodes`. Returns one line each."""
    devnet_json_path = Path(devnet_json_path)
    if not devnet_json_path.exists():
        return []
    lines = []
    nodes = recorded_nodes(devnet_json_path)
    for node in nodes:
        if node.stop(timeout):
            lines.append(f"stopped {node.role} node pid {node.pid} ({node.url})")
        else:
            lines.append(f"{node.role} node pid {node.pid} was not running")
    _record(devnet_json_path, [])
    return lines


@dataclass(frozen=True)
class NodeStatus:
    node: NodeProc
    running: bool
    health: dict[str, Any] | None

    @property
    def healthy(self) -> bool:
        return self.health is not None and self.health.get("status") == "ok"


def nodes_status(devnet_json_path: Path) -> list[NodeStatus]:
    """Each recorded node: whether its process runs and what its /health says."""
    devnet_json_path = Path(devnet_json_path)
    if not devnet_json_path.exists():
        return []
    out = []
    for node in recorded_nodes(devnet_json_path):
        running = node.is_ours()
        out.append(NodeStatus(node, running, node_health(node) if running else None))
    return out
