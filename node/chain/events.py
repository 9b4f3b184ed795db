"""The protocol's events and view results as typed dataclasses.

Field names are the ABI names in snake_case; `tests/chain/test_events.py` checks every ABI event
has a dataclass here with exactly those fields, so the two cannot drift apart silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from node.chain.abi import DecodedLog
from node.protocol.reports import unpack_reported


def snake_case(name: str) -> str:
    """ABI name to Python field name: `payloadHash` -> `payload_hash`, `unlockAt` -> `unlock_at`."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


@dataclass(frozen=True)
class ChainEvent:
    """Base of every decoded event: where the log came from."""

    address: str = field(default="", kw_only=True)
    block_number: int = field(default=0, kw_only=True)
    tx_hash: str = field(default="", kw_only=True)
    log_index: int = field(default=0, kw_only=True)


# --- ModelRegistry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRegistered(ChainEvent):
    model_id: bytes
    dim: int
    dtype: int
    name: str
    registrant: str


@dataclass(frozen=True)
class AlignmentRegistered(ChainEvent):
    from_model: bytes
    to_model: bytes
    map_id: bytes
    in_dim: int
    out_dim: int
    method: str
    registrant: str


# --- AgentRegistry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentRegistered(ChainEvent):
    agent: str
    role: int
    modality: int
    endpoint: str
    model_id: bytes
    dim: int
    stake: int


@dataclass(frozen=True)
class EndpointUpdated(ChainEvent):
    agent: str
    endpoint: str


@dataclass(frozen=True)
class AgentDeregistered(ChainEvent):
    agent: str
    unlock_at: int


@dataclass(frozen=True)
class StakeWithdrawn(ChainEvent):
    agent: str
    amount: int


# --- TaskBoard --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnershipTransferred(ChainEvent):
    previous_owner: str
    new_owner: str


@dataclass(frozen=True)
class WeightSet(ChainEvent):
    arch: int
    role: int
    weight: int


@dataclass(frozen=True)
class TaskSubmitted(ChainEvent):
    task_id: int
    submitter: str
    arch: int
    deadline: int
    quorum: int
    reward: int
    payload_hash: bytes
    uri: str
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class EmbeddingPublished(ChainEvent):
    task_id: int
    agent: str
    model_id: bytes
    encoding: int
    vector: bytes = field(repr=False)


@dataclass(frozen=True)
class DecisionPublished(ChainEvent):
    task_id: int
    agent: str
    role: int
    action: int
    confidence: int


@dataclass(frozen=True)
class ProbabilitiesPublished(ChainEvent):
    """Follows the DecisionPublished of a `publishProbabilities` call: the three numbers behind it."""

    task_id: int
    agent: str
    sell: int
    hold: int
    buy: int


@dataclass(frozen=True)
class DecisionReported(ChainEvent):
    """A decision of a `submitReport` call, packed in one word; `decoded()` is the DecisionPublished
    it stands for (`ChorusContracts.decode_logs` hands out that one in its place)."""

    decision: int

    def decoded(self) -> DecisionPublished:
        task_id, agent, role, action, confidence = unpack_reported(self.decision)
        return DecisionPublished(task_id, agent, role, action, confidence, address=self.address,
                                 block_number=self.block_number, tx_hash=self.tx_hash, log_index=self.log_index)


@dataclass(frozen=True)
class ReportSubmitted(ChainEvent):
    """Follows the DecisionReported logs of a `submitReport` call (its signed decisions)."""

    task_id: int
    aggregator: str
    count: int


@dataclass(frozen=True)
class TaskFinalized(ChainEvent):
    task_id: int
    action: int
    sell_tally: int
    hold_tally: int
    buy_tally: int
    decisions: int
    contributors: int


@dataclass(frozen=True)
class RewardClaimed(ChainEvent):
    task_id: int
    agent: str
    amount: int


@dataclass(frozen=True)
class TaskReclaimed(ChainEvent):
    task_id: int
    amount: int


EVENT_TYPES: dict[str, type[ChainEvent]] = {
    cls.__name__: cls
    for cls in (ModelRegistered, AlignmentRegistered, AgentRegistered, EndpointUpdated, AgentDeregistered, StakeWithdrawn,
                OwnershipTransferred, WeightSet, TaskSubmitted, EmbeddingPublished, DecisionPublished,
                ProbabilitiesPublished, DecisionReported, ReportSubmitted, TaskFinalized, RewardClaimed, TaskReclaimed)
}


def event_fields(cls: type[ChainEvent]) -> list[str]:
    """The event's own fields (without the log position)."""
    base = {f.name for f in fields(ChainEvent)}
    return [f.name for f in fields(cls) if f.name not in base]


def to_event(decoded: DecodedLog) -> ChainEvent | DecodedLog:
    """The typed event for a decoded log; the DecodedLog itself for an event this module lacks."""
    cls = EVENT_TYPES.get(decoded.name)
    if cls is None:
        return decoded
    args = {snake_case(k): v for k, v in decoded.args.items()}
    return cls(**args, address=decoded.address, block_number=decoded.block_number,
               tx_hash=decoded.tx_hash, log_index=decoded.log_index)


# --- view results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """`ModelRegistry.models(modelId)`; dim 0 means unknown."""

    dim: int
    dtype: int
    registrant: str


@dataclass(frozen=True)
class AlignmentInfo:
    """`ModelRegistry.alignment(fromModel, toModel)`; a zero map id means none is registered."""

    map_id: bytes
    in_dim: int
    out_dim: int
    registrant: str


@dataclass(frozen=True)
class AgentInfo:
    """`AgentRegistry.agentInfo(agent)`: what TaskBoard checks per publication."""

    active: bool
    role: int
    dim: int
    model_id: bytes


@dataclass(frozen=True)
class AgentRecord:
    """`AgentRegistry.agents(agent)`: the whole stored record."""

    stake: int
    unlock_at: int
    role: int
    modality: int
    dim: int
    active: bool
    model_id: bytes


@dataclass(frozen=True)
class TaskInfo:
    """`TaskBoard.taskInfo(taskId)`."""

    submitter: str
    deadline: int
    arch: int
    status: int
    quorum: int
    decisions: int
    contributors: int
    action: int
    reward: int
    payload_hash: bytes


@dataclass(frozen=True)
class Published:
    """`TaskBoard.published(taskId, agent)`."""

    embedding: bool
    decision: bool
    claimed: bool


@dataclass(frozen=True)
class Tallies:
    """`TaskBoard.tallies(taskId)`: weighted confidence per action."""

    sell: int
    hold: int
    buy: int


V = TypeVar("V")


def view_result(cls: type[V], values: tuple[Any, ...]) -> V:
    """Build a view dataclass from a call's return values, in ABI order."""
    return cls(*values)
