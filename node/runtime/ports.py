"""What the node runtime uses of the chain, as typed protocols.

`node.chain.nodechain.NodeChain` is the implementation; the unit tests pass a fake
(tests/node/nodefakes.py) that satisfies the same protocols. The outbox needs the split send path
(`SendPort`), the watcher blocks and events (`EventSource`); the runtime adds the views it asks
before it publishes, calldata for its calls, the registration calls made once at start-up, and why
a mined transaction failed.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from node.chain.api import Receipt
from node.chain.contracts import TxResult
from node.chain.events import AgentInfo, AgentRecord, AlignmentInfo, Published
from node.protocol.enums import ZERO_MODEL_ID
from node.protocol.errors import ContractRevert
from node.runtime.outbox import SendPort
from node.runtime.watcher import EventSource


class Registrar(Protocol):
    """The registry calls of start-up (`node.chain.contracts.ChorusContracts`): each is sent and
    awaited directly, not through the outbox, because nothing else runs before registration."""

    def agent(self, agent: str | None = None) -> AgentRecord: ...

    def min_stake(self) -> int: ...

    def is_model_registered(self, model_id: bytes) -> bool: ...

    def register_model(self, model_id: bytes, dim: int, dtype: int, name: str) -> TxResult: ...

    def register_agent(self, role: int, modality: int, endpoint: str, model_id: bytes = ZERO_MODEL_ID,
                       dim: int = 0, stake: int | None = None) -> TxResult: ...

    def update_endpoint(self, endpoint: str) -> TxResult: ...

    def alignment(self, from_model: bytes, to_model: bytes) -> AlignmentInfo:
        """The registered map between two spaces (read by the fusion node's `AlignmentResolver`)."""
        ...


@runtime_checkable
class ChainPort(SendPort, EventSource, Protocol):
    """Everything `NodeRuntime` uses of the chain: the send path, the event source, and these."""

    @property
    def address(self) -> str:
        """The node's signing address."""
        ...

    @property
    def contracts(self) -> Registrar: ...

    def address_of(self, contract: str) -> str:
        """The deployed address of a protocol contract ("TaskBoard")."""
        ...

    def agent_info(self, agent: str | None = None) -> AgentInfo:
        """The registry's view of `agent` (default: this node)."""
        ...

    def published(self, task_id: int, agent: str | None = None) -> Published:
        """What `agent` (default: this node) has published for a task, as TaskBoard records it."""
        ...

    def calldata(self, contract: str, function: str, *args: Any) -> bytes: ...

    def explain_failure(self, receipt: Receipt) -> ContractRevert:
        """Why a mined transaction (status 0) failed; raises ChainError when that cannot be found out."""
        ...

    def silent_for(self) -> float:
        """Seconds the RPC has left a request without any answer (0 while it answers); read by the
        health check on the API thread while the chain thread waits."""
        ...

    def take_silence(self) -> float:
        """The longest wait for an answer that ended since the previous call (an outage now over)."""
        ...
