"""The agent modes the bench runs nodes in: byzantine, wrong model id, slow, M-rules on the fusion
node; and that a node process started the bench's way runs in the mode its settings name."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from testkit import reply_json

from agents.base import (
    Agent,
    AgentIdentity,
    AgentOutput,
    Decision,
    Embedding,
    Modality,
    PeerOutput,
    Role,
    TaskInput,
)
from models.fusion import RuleParams, m_rules
from node.protocol.enums import MAX_CONFIDENCE, Action
from agents.faults import (
    ByzantineAgent,
    RulesFusion,
    SlowAgent,
    WrongModelAgent,
    wrong_model_id,
)
from node.protocol.payload import TaskPayload

MODEL_ID = bytes(range(32))


class Honest(Agent):
    def __init__(self, action: Action) -> None:
        self.action = action
        self.identity = AgentIdentity(Role.MARKET, Modality.SERIES, MODEL_ID, 4, model_name="market", decider="test")

    def run(self, task: TaskInput) -> AgentOutput:
        return AgentOutput(Decision(self.action, 4200), Embedding(np.ones(4, np.float32), MODEL_ID), note="honest")

    def decide_batch(self, payloads):  # what a coordinator's HTTP service calls
        return ["batch"] * len(payloads)


def task(arch: int = 2, peers: tuple[PeerOutput, ...] = ()) -> TaskInput:
    return TaskInput(1, arch, TaskPayload(asset="ETH", prices=[1.0] * 8, volumes=[1.0] * 8), peers)


def test_byzantine_publishes_the_opposite_at_full_confidence() -> None:
    for honest, lie in ((Action.BUY, Action.SELL), (Action.SELL, Action.BUY), (Action.HOLD, Action.SELL)):
        agent = ByzantineAgent(Honest(honest))
        out = agent.run(task())
        assert out.decision == Decision(lie, MAX_CONFIDENCE)
        assert out.embedding is not None and out.embedding.model_id == MODEL_ID
    agent = ByzantineAgent(Honest(Action.BUY))
    assert agent.identity.model_id == MODEL_ID  # registers as the honest agent would
    assert agent.decide_batch([1, 2]) == ["batch", "batch"]  # the rest is the honest agent's


def test_wrong_model_id_keeps_the_decision_and_renames_the_space() -> None:
    agent = WrongModelAgent(Honest(Action.BUY))
    out = agent.run(task())
    assert out.decision == Decision(Action.BUY, 4200)
    assert out.embedding.model_id == wrong_model_id(MODEL_ID) != MODEL_ID
    assert agent.identity.model_id == MODEL_ID


def test_rules_fusion_applies_m_rules_on_architecture_1_only() -> None:
    peers = (PeerOutput("0xa", role=0, action=2, confidence=4000),
             PeerOutput("0xb", role=1, action=0, confidence=8000),
             PeerOutput("0xc", role=2, action=0, confidence=7000))
    params = RuleParams(risk_veto=0.6, lead=0.5)
    agent = RulesFusion(Honest(Action.HOLD), params.risk_veto, params.lead)
    expected = int(m_rules(np.array([[2, 0, 0]]), np.array([[4000, 8000, 7000]]), np.ones((1, 3), bool), params)[0])
    assert agent.run(task(1, peers)).decision == Decision(Action(expected), MAX_CONFIDENCE)
    assert expected == Action.SELL  # the risk veto
    assert agent.run(task(3, peers)).decision == Decision(Action.HOLD, 4200)  # other archs: the wrapped agent
    assert agent.waits_for_peers


def test_slow_answers_honestly_after_its_delay() -> None:
    waited: list[float] = []
    agent = SlowAgent(Honest(Action.BUY), 2.5, sleep=waited.append)
    out = agent.run(task())
    assert waited == [2.5]
    assert out.decision == Decision(Action.BUY, 4200) and out.embedding.model_id == MODEL_ID
    assert agent.identity.model_id == MODEL_ID and "slow" in agent.identity.decider
    assert agent.decide_batch([1]) == ["batch"]  # a coordinator's HTTP routes are not slowed


def test_slow_really_waits() -> None:
    agent = SlowAgent(Honest(Action.SELL), 0.05)
    t0 = time.monotonic()
    assert agent.run(task()).decision.action == Action.SELL
    assert time.monotonic() - t0 >= 0.05


# -- a node process started the bench's way ---------------------------------------------------------


@pytest.fixture
def chain_id_only_rpc() -> Iterator[str]:
    """A JSON-RPC endpoint that answers eth_chainId (31337) and refuses the rest: enough for a node
    to load its settings, check the chain and build its agent before it gives up."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = {"jsonrpc": "2.0", "id": request.get("id")}
            if request.get("method") == "eth_chainId":
                answer["result"] = hex(31337)
            else:
                answer["error"] = {"code": -32601, "message": "not served by this test"}
            reply_json(self, json.dumps(answer).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("forked", [True, False], ids=["zygote", "python -m node.cli"])
def test_a_bench_node_process_runs_the_mode_of_its_settings(tmp_path: Path, chain_id_only_rpc: str,
                                                            forked: bool) -> None:
    from node.devnet.cluster import free_base_port
    from node.experiment.keys import NodeKey
    from node.experiment.nodes import NodeSet, NodeSpec, Zygote

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"models": []}))  # the model set: no trained heads, the vote decides
    deployment = tmp_path / "deployment.json"
    contracts = {name: "0x" + f"{i + 1:040x}" for i, name in enumerate(("ModelRegistry", "AgentRegistry", "TaskBoard"))}
    deployment.write_text(json.dumps({"chain_id": 31337, "rpc_url": chain_id_only_rpc, "deploy_block": 0,
                                      "contracts": contracts}))
    zygote = Zygote() if forked else None
    nodes = NodeSet("modes", manifest, deployment, tmp_path, chain_id_only_rpc, fusion_wait_s=1.0, zygote=zygote)
    spec = NodeSpec("fusion", "fusion", (1, 3), mode="byzantine", rules="0.6,0.5")
    try:
        proc = nodes.spawn(spec, free_base_port(1, start=23700), NodeKey.dev(7))
        log = Path(proc.log)
        deadline = time.monotonic() + 90
        try:
            # The forked child opens its log itself, a moment after the zygote answers.
            while "loaded in" not in _text(log) and proc.is_ours() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.stop(timeout=5)
    finally:
        if zygote is not None:
            zygote.close()
    text = _text(log)
    assert "fusion agent: byzantine(weighted-vote + m-rules RuleParams(risk_veto=0.6, lead=0.5))" in text, text[-3000:]


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
