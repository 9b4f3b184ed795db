"""The agent modes the experiment adds around the standard agents (see `agentproc`).

- `RulesFusion`: M-rules (`models.fusion.m_rules`, thresholds picked on validation) for tasks of
  architecture 1; other architectures go to the wrapped fusion agent unchanged.
- `ByzantineAgent`: runs the honest agent, then publishes the opposite action (sell <-> buy,
  hold -> sell) with full confidence: the worst single liar a weighted vote can meet.
- `WrongModelAgent`: publishes its embeddings under a model id that was never registered (as an
  agent that upgraded its model without re-registering would); the chain must refuse them.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import Any

import numpy as np

from agents.base import (
    Agent,
    AgentOutput,
    Decision,
    Embedding,
    TaskInput,
)
from node.protocol.enums import MAX_CONFIDENCE, Action

log = logging.getLogger(__name__)

ARCH_M_RULES = 1
_OPPOSITE = {Action.SELL: Action.BUY, Action.BUY: Action.SELL, Action.HOLD: Action.SELL}


class RulesFusion(Agent):
    """M-rules for architecture 1 on the peers' published decisions; the wrapped agent otherwise."""

    waits_for_peers = True

    def __init__(self, inner: Agent, risk_veto: float, lead: float) -> None:
        from models.fusion import RuleParams

        self.inner = inner
        self.params = RuleParams(risk_veto=risk_veto, lead=lead)
        self.identity = replace(inner.identity, decider=f"{inner.identity.decider} + m-rules {self.params}")

    def run(self, task: TaskInput) -> AgentOutput:
        if task.arch != ARCH_M_RULES:
            return self.inner.run(task)
        from models.fusion import m_rules

        peers = {p.role: p for p in task.peers if p.role in (0, 1, 2) and p.action is not None}
        actions = np.array([[peers[r].action if r in peers else 1 for r in (0, 1, 2)]])  # (1, 3)
        confs = np.array([[peers[r].confidence or 0 if r in peers else 0 for r in (0, 1, 2)]])
        present = np.array([[r in peers for r in (0, 1, 2)]])
        action = int(m_rules(actions, confs, present, self.params)[0])
        return AgentOutput(Decision(Action(action), MAX_CONFIDENCE), note=f"m-rules over {len(peers)} decisions")


class ByzantineAgent(Agent):
    """The honest agent's identity and embedding, the opposite decision at full confidence.
    Anything else (a coordinator's HTTP service uses `decide_batch`) is the honest agent's."""

    def __init__(self, inner: Agent) -> None:
        self.inner = inner
        self.identity = replace(inner.identity, decider=f"byzantine({inner.identity.decider})")
        self.waits_for_peers = inner.waits_for_peers

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, task: TaskInput) -> AgentOutput:
        honest = self.inner.run(task)
        lie = Decision(_OPPOSITE[Action(honest.decision.action)], MAX_CONFIDENCE)
        return replace(honest, decision=lie, note="byzantine")


def wrong_model_id(model_id: bytes) -> bytes:
    """The id of an 'upgraded' model nobody registered: derived from the real one."""
    return hashlib.sha256(b"chorus-bench/unregistered-upgrade/" + bytes(model_id)).digest()


class WrongModelAgent(Agent):
    """Registers its real model id, publishes embeddings under another one."""

    def __init__(self, inner: Agent) -> None:
        self.inner = inner
        self.identity = replace(inner.identity, decider=f"wrong-model-id({inner.identity.decider})")
        self.waits_for_peers = inner.waits_for_peers

    def run(self, task: TaskInput) -> AgentOutput:
        out = self.inner.run(task)
        if out.embedding is None:
            return out
        emb = Embedding(out.embedding.vector, wrong_model_id(out.embedding.model_id), out.embedding.encoding)
        return replace(out, embedding=emb, note="embedding under an unregistered model id")
