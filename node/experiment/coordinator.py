"""The agents the experiment adds around the standard ones, and the U coordinator it runs.

- `UCoordinatorAgent`: the unified model U (`u` in a manifest: cross-modal attention over the
  three modalities' features) as an agent with role coordinator. It registers U's model id, so k
  replicas of it (U-rep) are visibly in the same embedding space on chain, and publishes one
  decision per task: for U with U's confidence, for U-rep as a full-confidence vote, so that the
  chain's tally over the k replicas is a count of agreeing replicas (a disagreement of two is a
  tie, hence hold; with three, the majority wins). It stands in for the coordinator role (agents/coordinator.py) until that is
  part of the node runtime; it computes exactly the features U was trained on
  (`models.data.features`), headlines through the same MiniLM ONNX the sentiment agent uses.
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
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent, AgentIdentity, AgentOutput, Decision, Embedding, Modality, Role, TaskInput
from node.chain.types import MAX_CONFIDENCE, Action, Encoding

log = logging.getLogger(__name__)

ARCH_M_RULES = 1
ARCH_U_REP = 7
_OPPOSITE = {Action.SELL: Action.BUY, Action.BUY: Action.SELL, Action.HOLD: Action.SELL}
MIN_SERIES = 8


class UCoordinatorAgent(Agent):
    """U on the task's three modalities: one decision (its embedding is not published)."""

    def __init__(self, manifest_path: Path, text_encoder: Any = None, model_name: str = "u") -> None:
        from models.runtime import OnnxModel

        self.model = OnnxModel(model_name, Path(manifest_path), threads=1)
        if text_encoder is None:
            from agents.factory import load_text_encoder

            text_encoder = load_text_encoder()[0]
        self.encoder = text_encoder
        self.widths = {name: int(self.model.input_shape(name)[1]) for name in ("market", "sentiment", "risk")}
        self.identity = AgentIdentity(Role.COORDINATOR, Modality.MULTIMODAL, self.model.model_id, self.model.dim,
                                      Encoding.F32, self.model.name, f"{self.model.name} (cross-modal attention)",
                                      "onnx")

    def features(self, task: TaskInput) -> dict[str, np.ndarray]:
        """U's inputs for one task: per-modality features (zeros where absent) and the mask."""
        from models.data.features import flow_features, market_features, text_features

        p = task.payload
        feats = {k: np.zeros((1, w), np.float32) for k, w in self.widths.items()}
        mask = np.zeros((1, 3), np.float32)
        if len(p.prices) >= MIN_SERIES:
            feats["market"][0] = market_features(p.prices, p.volumes)
            mask[0, 0] = 1
        if p.headlines:
            feats["sentiment"][0] = text_features(list(p.headlines), self.encoder)
            mask[0, 1] = 1
        if p.flows:
            feats["risk"][0] = flow_features(p.flows)
            mask[0, 2] = 1
        return {**feats, "mask": mask}

    def run(self, task: TaskInput) -> AgentOutput:
        out = self.model.run(**self.features(task))
        emb = Embedding(np.asarray(out["embedding"][0], np.float32), self.model.model_id, Encoding.F32)
        decision = Decision.from_probs(out["probs"][0])
        if task.arch == ARCH_U_REP:
            return AgentOutput(Decision(decision.action, MAX_CONFIDENCE), emb, note="U replica vote")
        return AgentOutput(decision, emb, note="U")


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
    """The honest agent's identity and embedding, the opposite decision at full confidence."""

    def __init__(self, inner: Agent) -> None:
        self.inner = inner
        self.identity = replace(inner.identity, decider=f"byzantine({inner.identity.decider})")
        self.waits_for_peers = inner.waits_for_peers

    def run(self, task: TaskInput) -> AgentOutput:
        honest = self.inner.run(task)
        lie = Decision(_OPPOSITE[Action(honest.decision.action)], MAX_CONFIDENCE)
        return AgentOutput(lie, honest.embedding, note="byzantine")


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
        return AgentOutput(out.decision, emb, note="embedding under an unregistered model id")
