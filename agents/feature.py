"""The skeleton of the agents that read one numeric modality (market: prices, risk: flows).

Such an agent abstains when its modality is missing; otherwise the trained ONNX model decides on
the modality's feature row (and its embedding is published) when the manifest has one and the
input is long enough for it, and a deterministic rule decides otherwise (decisions only). A
subclass names its role, modality and rule, and says how to read the payload.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np

from agents.base import (Agent, AgentIdentity, AgentOutput, Embedding, Modality, Role, TaskInput, abstained, decided,
                         softmax)
from agents.onnx import AgentModel
from node.protocol.payload import TaskPayload


def signal_probs(signal: float) -> np.ndarray:
    """(sell, hold, buy) from a signal in (-1, 1): its sign says which way, its size how sure;
    near 0 it is hold."""
    return softmax(4.0 * np.array([-signal, 0.3 - abs(signal), signal]))


class FeatureAgent(Agent):
    """One modality's trained model, or its rule; see the module docstring."""

    role: ClassVar[Role]
    modality: ClassVar[Modality]
    rule_name: ClassVar[str]
    """How the fallback rule is named in the agent's identity (`momentum-rule`)."""
    fallback_note: ClassVar[str] = ""
    """Note of a rule decision although a model is loaded (the payload was too short for it)."""

    def __init__(self, model: AgentModel | None = None) -> None:
        self.model = model
        if model is not None:
            self.identity = AgentIdentity(self.role, self.modality, model.model_id, model.dim, model.encoding,
                                          model.name, model.name, "onnx")
        else:
            self.identity = AgentIdentity(self.role, self.modality, decider=self.rule_name, backend="numpy")

    @abstractmethod
    def present(self, payload: TaskPayload) -> bool:
        """Whether the payload carries this agent's modality."""
        ...

    def model_reads(self, payload: TaskPayload) -> bool:
        """Whether the trained model can read this payload (else the rule decides)."""
        return True

    @abstractmethod
    def features(self, payload: TaskPayload) -> np.ndarray:
        """The trained model's feature row."""
        ...

    @abstractmethod
    def rule_probs(self, payload: TaskPayload) -> np.ndarray:
        """(sell, hold, buy) of the deterministic fallback rule."""
        ...

    def run(self, task: TaskInput) -> AgentOutput:
        p = task.payload
        if not self.present(p):
            return abstained(f"{self.role.label} modality missing")
        if self.model is not None and self.model_reads(p):
            out = self.model(self.features(p))
            emb = Embedding(out["embedding"][0].astype(np.float32), self.model.model_id, self.model.encoding)
            return decided(out["probs"][0], emb)
        return decided(self.rule_probs(p), note="" if self.model is None else self.fallback_note)
