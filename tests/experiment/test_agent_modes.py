"""The agent modes the bench runs nodes in: byzantine, wrong model id, M-rules on the fusion node."""

from __future__ import annotations

import numpy as np

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
