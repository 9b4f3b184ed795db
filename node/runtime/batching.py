"""Batched publication (the `transport = "batch"` setting): the node's decision-only publications of
several tasks go out in one `TaskBoard.publishDecisions` instead of one `publishDecision` each.

- A decision the node would publish alone is held instead (`DecisionBatcher.hold`); the loop sends
  what it holds in one transaction once the oldest has waited `batch_wait_s` or `batch_max` are held
  (send kind `batch`, no task id of its own: the send log's raw bytes name its tasks).
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

from node.protocol.reports import pack_decision, unpack_decision

PUBLISH_DECISIONS_SELECTOR_LEN = 4


@dataclass(frozen=True)
class Held:
    """One decision waiting for its batch."""

    task_id: int
    action: int
    confidence: int
    since: float


def batch_tasks(data: bytes) -> list[int]:
    """The task ids of a `publishDecisions` call's calldata (selector, then `uint256[] items`)."""
    (items,) = decode(["uint256[]"], bytes(data[PUBLISH_DECISIONS_SELECTOR_LEN:]))
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
        self._covered: dict[int, int] = {}  # task id -> the open send that carries its decision
        self.single: set[int] = set()
        """Tasks whose batch the chain refused: they publish one by one from now on."""

    def hold(self, task_id: int, action: int, confidence: int) -> None:
        self._held[task_id] = Held(task_id, int(action), int(confidence), self.clock())

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

    def sent(self, send_id: int, tasks: Iterable[int]) -> None:
        tasks = list(tasks)
        self._live[send_id] = tasks
        for t in tasks:
            self._covered[t] = send_id

    def settled(self, send_id: int) -> list[int]:
        """The tasks of a batch whose fate is known (mined, reverted or given up)."""
        tasks = self._live.pop(send_id, [])
        for t in tasks:
            if self._covered.get(t) == send_id:
                del self._covered[t]
        return tasks

    def refuse(self, tasks: Iterable[int]) -> None:
        self.single.update(tasks)

    def forget(self, task_id: int) -> None:
        """A task that started over (reorg) or is done: drop what is held of it (an open batch that
        carries it stays followed until it settles)."""
        self._held.pop(task_id, None)
        self.single.discard(task_id)

    def restore(self, open_batches: Iterable[tuple[int, bytes]]) -> None:
        """After a restart: the open batches of the send log, `(send id, calldata)` each."""
        for send_id, data in open_batches:
            self.sent(send_id, batch_tasks(data))
