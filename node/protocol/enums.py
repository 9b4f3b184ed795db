"""The protocol's enumerations and fixed rules (docs/protocol.md), as Python types.

These mirror uint8 values on chain (`contracts/src/Chorus.sol` declares them once for the
contracts); the contracts are the authority and revert on anything else. Python code names a role,
an action or an architecture by these enums, never by a bare number or a string of its own: `label`
is the lower-case name used in settings, the API and the CLI, and `parse` reads it back.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

E = TypeVar("E", bound="Named")

ZERO_MODEL_ID = bytes(32)
"""modelId of an agent that publishes decisions only."""

MAX_CONFIDENCE = 10_000
"""Confidence is in basis points."""


class Named(IntEnum):
    """An on-chain uint8 enum with a lower-case text form (`label`) for settings, APIs and the CLI."""

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls: type[E], text: str | int) -> E:
        """The member named `text` (its `label`, any case) or with value `text`; ValueError otherwise."""
        if isinstance(text, int):
            return cls(text)
        for member in cls:
            if member.label == str(text).strip().lower().replace("_", "-"):
                return member
        raise ValueError(f"{text!r} is not one of {', '.join(m.label for m in cls)}")

    @classmethod
    def labels(cls) -> tuple[str, ...]:
        return tuple(m.label for m in cls)


class Role(Named):
    MARKET = 0
    SENTIMENT = 1
    RISK = 2
    FUSION = 3
    COORDINATOR = 4


class Modality(Named):
    NONE = 0
    SERIES = 1
    TEXT = 2
    FLOWS = 3
    IMAGE = 4
    MULTIMODAL = 5


class Encoding(Named):
    """A vector's dtype on chain (ModelRegistry's `dtype`, TaskBoard's `encoding`)."""

    F32 = 0
    F16 = 1
    I8 = 2
    BINARY = 3

    def byte_length(self, dim: int) -> int:
        """Bytes of a `dim`-dimensional vector: f32 4d, f16 2d, i8 d, binary ceil(d/8)."""
        return {Encoding.F32: 4 * dim, Encoding.F16: 2 * dim, Encoding.I8: dim,
                Encoding.BINARY: (dim + 7) // 8}[self]


class Action(Named):
    SELL = 0
    HOLD = 1
    BUY = 2


class Arch(Named):
    """Architecture ids (TaskBoard's `arch`); 9..15 are reserved for experiments."""

    UNI_BEST = 0
    M_RULES = 1
    M_FIXED = 2
    M_LEARNED = 3
    M_REGRET = 4
    E_D = 5
    U = 6
    U_REP = 7
    M_LEARNED_P = 8
    """M-learned on the agents' class probabilities (`publishProbabilities`) instead of their decisions."""


class TaskStatus(Named):
    NONE = 0
    OPEN = 1
    FINALIZED = 2
    RECLAIMED = 3


AGENT_ROLES = (Role.MARKET, Role.SENTIMENT, Role.RISK)
"""The three modality agents, in the order fusion heads and the benchmark data list them."""

ARCH_NAMES = {Arch.UNI_BEST: "Uni-best", Arch.M_RULES: "M-rules", Arch.M_FIXED: "M-fixed",
              Arch.M_LEARNED: "M-learned", Arch.M_REGRET: "M-regret", Arch.E_D: "E-d", Arch.U: "U",
              Arch.U_REP: "U-rep", Arch.M_LEARNED_P: "M-learned-p"}
"""How the report names each architecture."""

COORDINATOR_ARCHS = (Arch.U, Arch.U_REP)
"""Architectures the coordinator serves: TaskBoard weighs only role coordinator there, and the
coordinator weighs 0 everywhere else."""

PROBABILITY_ARCHS = (Arch.M_LEARNED_P,)
"""Architectures whose modality agents publish their class probabilities (`publishProbabilities`,
three numbers in basis points; TaskBoard tallies their argmax as a decision) instead of a decision."""

EXPERIMENT_ARCHS = tuple(range(9, 16))
"""Architecture ids reserved for experiments (TaskBoard accepts them with the fixed weights)."""
