"""Batched publication (the `transport = "batch"` setting): the node's publications of several tasks
go out in one `TaskBoard.publishDecisions` (and, for an agent that also publishes its embeddings,
one `publishEmbeddings` before it) instead of one `publishDecision` (and `publishEmbedding`) each.

- A publication the node would send is held instead (`DecisionBatcher.hold`); the loop sends what
  it holds once the oldest has waited `batch_wait_s` or `batch_max` are held: the embeddings in one
  transaction, then the decisions in the next nonce (send kind `batch`, no task id of its own: the
  send log's raw bytes name its tasks). A task is published once every batch carrying it is mined.
- The contract takes a batch whole or not at all. Refused at estimation, or mined and reverted (a
  task closed meanwhile), its tasks go back to work and publish one by one (`publishDecision`, whose
  own error says what became of each); dropped, the outbox rebroadcasts it as any send.
- Mined, every decision in it is on chain: its tasks are published.
- A restarted node reads the batches still open in its send log (`restore`), so it never batches a
  task a second time while the first batch may still be mined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector

from node.protocol.reports import pack_decision, unpack_decision

SELECTOR_LEN = 4
PUBLISH_EMBEDDINGS = function_signature_to_4byte_selector("publishEmbeddings(uint256[],bytes32,uint8,bytes)")


@dataclass(frozen=True)
class Embedding:
    """A held embedding: the node's model id, encoding and encoded vector."""

    model_id: bytes
    encoding: int
    vector: bytes


@dataclass(frozen=True)
class Held:
    """One task's publication waiting for its batch: its decision, and its embedding if it has one."""

    task_id: int
    action: int
    confidence: int
    since: float
    embedding: Embedding | None = None


def batch_tasks(data: bytes) -> list[int]:
    """The task ids of a batch's calldata: `publishEmbeddings(uint256[] taskIds, ...)` or
    `publishDecisions(uint256[] items)`."""
    body = bytes(data[SELECTOR_LEN:])
    if bytes(data[:SELECTOR_LEN]) == PUBLISH_EMBEDDINGS:
        task_ids, _, _, _ = decode(["uint256[]", "bytes32", "uint8", "bytes"], body)
        return [int(t) for t in task_ids]
    (items,) = decode(["uint256[]"], body)
    return [unpack_decision(int(item))[0] for item in items]


class DecisionBatcher:
    """The decisions a node holds for its next `publishDecisions`, and the batches it has sent."""

    def __init__(self, *, enabled: bool, wait_s: float, max_items: int, clock: Callable[[], float]) -> None:
        self.enabled = enabled
        self.wait_s = wait_s
        self.max_items = max_items
        self.clock = clock
        self._held: dict[int, Held] = {}
        self._live: dict[int, list[int]] = {}  # send id -> its tasks, while the send is open
        self._covered: dict[int, set[int]] = {}  # task id -> the open sends that carry its publications
        self._failed: set[int] = set()  # tasks one of whose batches was not mined, others still open
        self.single: set[int] = set()
        """Tasks whose batch the chain refused: they publish one by one from now on."""

    def hold(self, task_id: int, action: int, confidence: int, embedding: Embedding | None = None) -> None:
        self._held[task_id] = Held(task_id, int(action), int(confidence), self.clock(), embedding)

    def covers(self, task_id: int) -> bool:
        """Whether the task's decision is held, or in a batch not settled yet."""
        return task_id in self._held or task_id in self._covered

    def due(self) -> bool:
        if not self._held:
            return False
        oldest = min(h.since for h in self._held.values())
        return len(self._held) >= self.max_items or self.clock() - oldest >= self.wait_s

    def take(self) -> list[Held]:
        """The decisions of the next batch (at most `max_items`, oldest first), no longer held."""
        batch = sorted(self._held.values(), key=lambda h: (h.since, h.task_id))[: self.max_items]
        for h in batch:
            del self._held[h.task_id]
        return batch

    def items(self, batch: Iterable[Held]) -> list[int]:
        """`publishDecisions`' argument for `batch`."""
        return [pack_decision(h.task_id, h.action, h.confidence) for h in batch]

    @staticmethod
    def embedding_groups(batch: Iterable[Held]) -> list[tuple[bytes, int, list[Held]]]:
        """The embeddings of `batch` by (model id, encoding): one `publishEmbeddings` each."""
        groups: dict[tuple[bytes, int], list[Held]] = {}
        for h in batch:
            if h.embedding is not None:
                groups.setdefault((h.embedding.model_id, h.embedding.encoding), []).append(h)
        return [(model, encoding, held) for (model, encoding), held in groups.items()]

    def sent(self, send_id: int, tasks: Iterable[int]) -> None:
        tasks = list(tasks)
        self._live[send_id] = tasks
        for t in tasks:
            self._covered.setdefault(t, set()).add(send_id)

    def settled(self, send_id: int, mined: bool) -> tuple[list[int], list[int]]:
        """A batch whose fate is known: `(published, refused)`, the tasks it carried whose every batch
        is now mined, and those of which one batch was not (each once, when its last batch settles)."""
        published, refused = [], []
        for t in self._live.pop(send_id, []):
            if not mined:
                self._failed.add(t)
            sends = self._covered.get(t, set())
            sends.discard(send_id)
            if sends:
                continue
            self._covered.pop(t, None)
            (refused if t in self._failed else published).append(t)
            self._failed.discard(t)
        return published, refused

    def refuse(self, tasks: Iterable[int]) -> None:
        self.single.update(tasks)

    def fail(self, tasks: Iterable[int]) -> None:
        """Tasks whose next batch was refused while another batch of theirs is open: refused when
        that one settles."""
        self._failed.update(t for t in tasks if t in self._covered)

    def forget(self, task_id: int) -> None:
        """A task that started over (reorg) or is done: drop what is held of it (an open batch that
        carries it stays followed until it settles)."""
        self._held.pop(task_id, None)
        self.single.discard(task_id)

    def restore(self, open_batches: Iterable[tuple[int, bytes]]) -> None:
        """After a restart: the open batches of the send log, `(send id, calldata)` each."""
        for send_id, data in open_batches:
            self.sent(send_id, batch_tasks(data))
