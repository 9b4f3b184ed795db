"""Small helpers every test folder may import (`tests/` is on sys.path through its conftest):
waiting on a condition with a deadline, reading a Prometheus sample through its registry, a
loopback server that misbehaves below HTTP, the two halves of an RPC proxy in front of Anvil, and
a devnet with real node processes on transport "report" (the e2e tests' network)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry

if TYPE_CHECKING:
    from node.chain.contracts import ChorusContracts
    from node.chain.deploy import Deployment
    from node.devnet.cluster import NodeProc

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.02,
               detail: Callable[[], str] | None = None) -> T:
    """Call `condition` until it returns something truthy, and return that; after `timeout`
    seconds fail with an AssertionError naming `what` was awaited (plus `detail()`, say a log tail).

    Tests wait on what should happen rather than sleeping a fixed time and hoping it did: a fast
    machine does not wait longer than needed, a loaded one gets the whole deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(interval)


def sample(metrics: Any, name: str, **labels: str) -> float:
    """The value of sample `name` (as exposed, e.g. `chorus_reorgs_total`) with `labels`, read from
    the registry of `metrics` (a `NodeMetrics`, a coordinator's metrics, or a `CollectorRegistry`).

    Fails when the registry has no such sample, so a misspelt name cannot pass as a zero."""
    registry: CollectorRegistry = metrics if isinstance(metrics, CollectorRegistry) else metrics.registry
    value = registry.get_sample_value(name, labels)
    if value is None:
        known = sorted({s.name for family in registry.collect() for s in family.samples})
        raise AssertionError(f"no sample {name}{labels or ''} in the registry; it has {known}")
    return value


@contextlib.contextmanager
def loopback_server(on_connection: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that hands every accepted connection to `on_connection` (in the
    accepting thread: start a thread there for a long conversation); yields its http:// base URL
    and stops accepting on exit. For servers that misbehave below HTTP: hanging, trickling."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            on_connection(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def forward_rpc(url: str, body: bytes, timeout: float = 30.0) -> bytes:
    """POST a JSON-RPC request body to `url` (a loopback RPC) and return the answer's bytes: what a
    test's proxy in front of Anvil passes on."""
    import urllib.request

    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as upstream:  # noqa: S310 (loopback only)
        return upstream.read()


def reply_json(handler: Any, body: bytes, status: int = 200) -> None:
    """Answer an `http.server` request with a JSON body."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@dataclass
class NodeNetwork:
    """A devnet with the protocol deployed and real node processes on it: the deployment, the
    contracts as dev key 0 (who deployed them and owns TaskBoard), and the nodes as started."""

    deployment: Deployment
    board: ChorusContracts
    nodes: list[NodeProc]


@contextlib.contextmanager
def report_network(directory: Path, roles: Sequence[str], *, fallback_s: float,
                   port_start: int) -> Iterator[NodeNetwork]:
    """A real Anvil mining a block a second (chain time moves without traffic) with its state in
    `directory`, the protocol deployed, and one node process per role from the first free ports at
    or above `port_start`, all on transport "report" with `--report-fallback fallback_s`.

    On exit, or when any step fails half way, the recorded nodes are stopped and then the devnet is
    brought down (the latter even if stopping the nodes fails)."""
    from node.chain.artifacts import load_artifact
    from node.chain.client import Web3Client
    from node.chain.contracts import ChorusContracts, revert_decoder
    from node.chain.deploy import Deployment
    from node.chain.settings import dev_account
    from node.devnet.anvil import devnet_down, devnet_up, free_port
    from node.devnet.cluster import free_base_port, start_nodes, stop_nodes

    file = directory / "devnet.json"
    try:
        devnet_up(port=free_port(), state=directory, block_time=1)
        try:
            nodes = start_nodes(file, list(roles), base_port=free_base_port(len(roles), start=port_start),
                                timeout=180, die_with_parent=True,
                                extra_args=("--transport", "report", "--report-fallback", str(fallback_s)))
            deployment = Deployment.load(file)
            artifacts = {n: load_artifact(n) for n in ("ModelRegistry", "AgentRegistry", "TaskBoard")}
            client = Web3Client(deployment.rpc_url, dev_account(0), decoder=revert_decoder(artifacts))
            yield NodeNetwork(deployment, ChorusContracts.from_deployment(client, deployment, artifacts), nodes)
        finally:
            stop_nodes(file)
    finally:
        devnet_down(state=directory)


def tiny_head(path: Path, inputs: dict[str, int]) -> None:
    """An ONNX file computing probs = softmax(sum_k input_k W_k) with fixed random weights (seed 1),
    one input per `inputs` entry (name: width): a stand-in for an exported fusion head."""
    import numpy as np
    import pytest

    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    nodes, inits, terms = [], [], []
    for name, width in inputs.items():
        inits.append(numpy_helper.from_array(rng.standard_normal((width, 3)).astype(np.float32), f"W_{name}"))
        nodes.append(helper.make_node("MatMul", [name, f"W_{name}"], [f"t_{name}"]))
        terms.append(f"t_{name}")
    nodes.append(helper.make_node("Sum", terms, ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    graph = helper.make_graph(nodes, "head",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, w]) for n, w in inputs.items()],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def run_until(nodes: list[Any], done: Callable[[], bool], rounds: int = 40) -> None:
    """Step in-process node runtimes (`NodeRuntime.step`) in turn until `done()` holds; fails the
    test after `rounds` rounds."""
    for _ in range(rounds):
        for node in nodes:
            node.step()
        if done():
            return
    raise AssertionError("condition not reached")
