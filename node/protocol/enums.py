"""The protocol's enumerations and fixed rules (docs/protocol.md), as Python types.

These mirror uint8 values on chain; the contracts are the authority and revert on anything else.
"""

from __future__ import annotations

from enum import IntEnum

ZERO_MODEL_ID = bytes(32)
"""modelId of an agent that publishes decisions only."""

MAX_CONFIDENCE = 10_000
"""Confidence is in basis points."""


class Role(IntEnum):
    MARKET = 0
    SENTIMENT = 1
    RISK = 2
    FUSION = 3
    COORDINATOR = 4


class Modality(IntEnum):
    NONE = 0
    SERIES = 1
    TEXT = 2
    FLOWS = 3
    IMAGE = 4
    MULTIMODAL = 5


class Encoding(IntEnum):
    """A vector's dtype on chain (ModelRegistry's `dtype`, TaskBoard's `encoding`)."""

    F32 = 0
    F16 = 1
    I8 = 2
    BINARY = 3

    def byte_length(self, dim: int) -> int:
        """Bytes of a `dim`-dimensional vector: f32 4d, f16 2d, i8 d, binary ceil(d/8)."""
        return {Encoding.F32: 4 * dim, Encoding.F16: 2 * dim, Encoding.I8: dim,
                Encoding.BINARY: (dim + 7) // 8}[self]


class Action(IntEnum):
    SELL = 0
    HOLD = 1
    BUY = 2


class Arch(IntEnum):
    """Architecture ids (TaskBoard's `arch`); 8..15 are reserved for experiments."""

    UNI_BEST = 0
    M_RULES = 1
    M_FIXED = 2
    M_LEARNED = 3
    M_REGRET = 4
    E_D = 5
    U = 6
    U_REP = 7


class TaskStatus(IntEnum):
    NONE = 0
    OPEN = 1
    FINALIZED = 2
    RECLAIMED = 3
