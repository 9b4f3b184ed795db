"""The one small interface every agent implements: a task in, a decision (and maybe an embedding) out.

An agent knows nothing of the chain: the node hands it a `TaskInput` (the validated payload and,
for the fusion agent, the other agents' published outputs) and publishes what `run` returns.
`AgentIdentity` is what the node registers on chain (role, modality, model id, dim).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from node.protocol.enums import MAX_CONFIDENCE, ZERO_MODEL_ID, Action, Encoding, Modality, Role
from node.protocol.codec import decode_vector, encode_vector
from node.protocol.payload import TaskPayload

log = logging.getLogger(__name__)

__all__ = ["Action", "Agent", "AgentIdentity", "AgentOutput", "Decision", "Embedding", "Encoding", "Modality",
           "PeerOutput", "Role", "TaskInput", "TextEncoder", "decode_vector", "encode_vector", "softmax"]


class TextEncoder(Protocol):
    """A sentence encoder (MiniLM through onnxruntime, or a small fake in tests)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), d) float32, L2-normalised rows (d = 384 for MiniLM)."""
        ...


@dataclass(frozen=True)
class Decision:
    """An action with a confidence in basis points (0..10000), as TaskBoard takes it."""

    action: Action
    confidence: int

    def __post_init__(self) -> None:
        if not 0 <= self.confidence <= MAX_CONFIDENCE:
            raise ValueError(f"confidence {self.confidence} outside 0..{MAX_CONFIDENCE}")

    @classmethod
    def from_probs(cls, probs: np.ndarray) -> Decision:
        """argmax of (sell, hold, buy) probabilities; confidence = its probability in bps."""
        p = np.asarray(probs, dtype=np.float64).reshape(-1)  # (3,)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ValueError(f"expected 3 finite probabilities, got {p}")
        best = int(np.argmax(p))
        return cls(Action(best), int(round(float(np.clip(p[best], 0.0, 1.0)) * MAX_CONFIDENCE)))

    @classmethod
    def from_bps(cls, bps: Sequence[int]) -> Decision:
        """The decision TaskBoard reads from published probabilities (`publishProbabilities`): the
        first of the largest, with its basis points as confidence; all zeros abstain."""
        b = [int(x) for x in bps]
        if not any(b):
            return cls.abstain()
        best = max(range(len(b)), key=lambda k: (b[k], -k))
        return cls(Action(best), b[best])

    @classmethod
    def abstain(cls) -> Decision:
        """hold with confidence 0: what an agent says when its modality is missing."""
        return cls(Action.HOLD, 0)


def probs_bps(probs: np.ndarray) -> tuple[int, int, int]:
    """(sell, hold, buy) probabilities as `publishProbabilities` takes them: integer basis points
    summing to exactly 10,000, by the largest remainder (ties to the lower class)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if p.shape != (3,) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"expected 3 finite non-negative probabilities, got {p}")
    scaled = p / p.sum() * MAX_CONFIDENCE
    base = np.floor(scaled).astype(np.int64)
    order = sorted(range(3), key=lambda k: (-(scaled[k] - base[k]), k))
    for k in order[:MAX_CONFIDENCE - int(base.sum())]:
        base[k] += 1
    return int(base[0]), int(base[1]), int(base[2])


NO_PROBS = (0, 0, 0)
"""What an agent that abstains publishes as probabilities (TaskBoard reads hold, confidence 0)."""


@dataclass(frozen=True)
class Embedding:
    """A vector in the space of `model_id`, with the on-chain encoding it is published in."""

    vector: np.ndarray = field(repr=False)  # (d,) float32
    model_id: bytes
    encoding: Encoding = Encoding.F32

    def to_bytes(self) -> bytes:
        return encode_vector(self.vector, self.encoding)


@dataclass(frozen=True)
class AgentOutput:
    decision: Decision
    embedding: Embedding | None = None
    note: str = ""
    """A short human-readable reason (shown in the API), e.g. 'modality missing'."""
    commitment: bytes | None = None
    """sha256 of the encoded embedding, when the agent commits to its embedding instead of
    publishing it (the coordinator); kept in the node's task record, shown in GET /tasks/{id}."""
    probs: tuple[int, int, int] | None = None
    """A modality agent's class probabilities in basis points (`probs_bps`; `NO_PROBS` when it
    abstains): what it publishes, instead of `decision`, for the architectures in
    `PROBABILITY_ARCHS`. None for agents that have none (fusion, U)."""


def decided(probs: np.ndarray, embedding: Embedding | None = None, note: str = "") -> AgentOutput:
    """A modality agent's output from its class probabilities: the decision (`Decision.from_probs`)
    and the probabilities as published (`probs_bps`)."""
    return AgentOutput(Decision.from_probs(probs), embedding, note=note, probs=probs_bps(probs))


def abstained(note: str) -> AgentOutput:
    """A modality agent's output when its modality is missing: hold, confidence 0, no probabilities."""
    return AgentOutput(Decision.abstain(), note=note, probs=NO_PROBS)


@dataclass(frozen=True)
class PeerOutput:
    """Another agent's publication for the same task, as read from chain events."""

    agent: str
    role: int | None = None
    action: int | None = None
    confidence: int | None = None
    model_id: bytes | None = None
    encoding: int | None = None
    vector: bytes | None = field(default=None, repr=False)
    probs: tuple[int, int, int] | None = None
    """From its ProbabilitiesPublished event, when it published probabilities (basis points)."""


@dataclass(frozen=True)
class TaskInput:
    task_id: int
    arch: int
    payload: TaskPayload
    peers: tuple[PeerOutput, ...] = ()


@dataclass(frozen=True)
class AgentIdentity:
    """What the node registers in AgentRegistry, and what it says about itself in `GET /info`."""

    role: Role
    modality: Modality
    model_id: bytes = ZERO_MODEL_ID
    """sha256 of the ONNX file whose embeddings the agent publishes; zero: decisions only."""
    dim: int = 0
    encoding: Encoding = Encoding.F32
    model_name: str = ""
    """Manifest name of the model whose embeddings are published (`minilm-f32`, `market`); empty if none.
    It is also the name registered in ModelRegistry."""
    decider: str = ""
    """What makes the decision: a trained model's name, or the simple rule's (`momentum-rule`)."""
    backend: str = "numpy"
    """`onnx` when a trained ONNX model decides, `numpy` for the simple deterministic model."""

    @property
    def publishes_embeddings(self) -> bool:
        return self.model_id != ZERO_MODEL_ID and self.dim > 0


class Agent(ABC):
    """Payload (+ peers) -> decision (+ embedding). Implementations load their model once, in
    `__init__`, and keep its session for the life of the process."""

    identity: AgentIdentity
    waits_for_peers: bool = False
    """True for agents that need other agents' outputs first (fusion)."""

    @abstractmethod
    def run(self, task: TaskInput) -> AgentOutput:
        """Decide on one task. Must not raise for a valid payload; abstain instead."""

    def describe(self) -> str:
        i = self.identity
        published = f"embeddings of {i.model_name} (model id 0x{i.model_id.hex()[:12]}..., dim {i.dim})" \
            if i.publishes_embeddings else "decisions only"
        return f"{i.role.name.lower()} agent: {i.decider} ({i.backend}), {published}"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


