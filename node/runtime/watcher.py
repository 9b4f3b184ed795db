"""The event watcher: follows TaskBoard's events with a cursor persisted in SQLite.

Each `poll` (one round trip to the RPC when nothing is new, three when a range is read):
1. reads the head and the block at the cursor (one batch request) and checks that the latter still
   has the hash stored for it; if not, a reorg replaced it: walk back through the stored hashes to
   the newest block still canonical, roll the store back to it (tasks submitted above it are marked
   for re-check, publications and finalizations seen above it are forgotten) and read forward again;
2. reads the events of the next range of blocks buried under `confirmations` blocks, bracketed by
   two reads of the range's last block hash (a reorg in between discards the batch; when the range
   ends at the head, the head read in step 1 is the first of the two);
3. stores events, tasks, the block hash and the new cursor in one SQLite transaction.

A crash between two polls loses nothing (the cursor only moves with the data) and repeats nothing
(a batch is applied once). RPC failures propagate to the caller, which backs off. An error reply to
the range read (eth_getLogs past the head of a chain a reorg just shortened) is a `ReorgRace`: the
cursor has not moved, so the next poll checks the chain again and reads from the right block.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from node.chain.events import (
    ChainEvent,
    DecisionPublished,
    EmbeddingPublished,
    ProbabilitiesPublished,
    TaskFinalized,
    TaskReclaimed,
    TaskSubmitted,
)
from node.chain.nodechain import BlockHeader
from node.protocol.errors import RpcErrorReply
from node.runtime.metrics import NodeMetrics
from node.runtime.store import Rollback, Store, StoredEvent

log = logging.getLogger(__name__)


class EventSource(Protocol):
    """What the watcher reads (`node.chain.nodechain.NodeChain`, or a fake). A source may also offer
    `headers(blocks) -> list[BlockHeader | None]` (several headers in one round trip)."""

    def header(self, block: int | str = "latest") -> BlockHeader | None: ...

    def events(self, from_block: int, to_block: int) -> list[ChainEvent]: ...


class ReorgRace(Exception):
    """The chain changed while a batch was being read; the batch was not applied."""


@dataclass
class PollResult:
    head: BlockHeader
    new_tasks: list[int] = field(default_factory=list)
    events: list[StoredEvent] = field(default_factory=list)
    rollback: Rollback | None = None
    caught_up: bool = True


def to_stored(event: ChainEvent) -> StoredEvent | None:
    """Flatten a decoded TaskBoard event into the store's row shape (None for events not kept)."""
    where = dict(block_number=event.block_number, log_index=event.log_index, tx_hash=event.tx_hash)
    if isinstance(event, TaskSubmitted):
        return StoredEvent("TaskSubmitted", task_id=event.task_id, submitter=event.submitter, arch=event.arch,
                           deadline=event.deadline, quorum=event.quorum, reward=event.reward,
                           payload_hash="0x" + bytes(event.payload_hash).hex(), uri=event.uri,
                           payload=bytes(event.payload), **where)
    if isinstance(event, DecisionPublished):
        return StoredEvent("DecisionPublished", task_id=event.task_id, agent=event.agent, role=event.role,
                           action=event.action, confidence=event.confidence, **where)
    if isinstance(event, ProbabilitiesPublished):
        return StoredEvent("ProbabilitiesPublished", task_id=event.task_id, agent=event.agent,
                           probs=(event.sell, event.hold, event.buy), **where)
    if isinstance(event, EmbeddingPublished):
        return StoredEvent("EmbeddingPublished", task_id=event.task_id, agent=event.agent,
                           model_id="0x" + bytes(event.model_id).hex(), encoding=event.encoding,
                           vector=bytes(event.vector), **where)
    if isinstance(event, TaskFinalized):
        return StoredEvent("TaskFinalized", task_id=event.task_id, action=event.action, decisions=event.decisions,
                           contributors=event.contributors,
                           tallies=(event.sell_tally, event.hold_tally, event.buy_tally), **where)
    if isinstance(event, TaskReclaimed):
        return StoredEvent("TaskReclaimed", task_id=event.task_id, **where)
    return None


class Watcher:
    def __init__(self, source: EventSource, store: Store, *, start_block: int, confirmations: int = 0,
                 max_range: int = 2000, reorg_depth: int = 128, metrics: NodeMetrics | None = None) -> None:
        self.source = source
        self.store = store
        self.start_block = start_block
        self.confirmations = confirmations
        self.max_range = max_range
        self.reorg_depth = reorg_depth
        self.metrics = metrics

    @property
    def cursor(self) -> int:
        """Last block fully processed (start_block - 1 before the first batch)."""
        cursor = self.store.cursor()
        return self.start_block - 1 if cursor is None else cursor

    def poll(self) -> PollResult:
        head, at_cursor = self._head_and_cursor_block()
        if head is None:
            raise ReorgRace("the RPC returned no latest block")
        rollback = self._check_reorg(at_cursor)
        safe = head.number - self.confirmations
        cursor = self.cursor
        if safe <= cursor:
            return PollResult(head, rollback=rollback, caught_up=True)
        to_block = min(safe, cursor + self.max_range)
        # The head read above brackets the range read as well as a read of its last block would.
        before = head if to_block == head.number and rollback is None else self.source.header(to_block)
        try:
            events = self.source.events(cursor + 1, to_block)
        except RpcErrorReply as exc:
            log.warning("reading blocks %d..%d failed (%s); the chain changed under the read? "
                        "reading again from block %d", cursor + 1, to_block, exc, cursor + 1)
            raise ReorgRace(f"blocks {cursor + 1}..{to_block} could not be read: {exc}") from exc
        after = self.source.header(to_block)
        if before is None or after is None or before.hash != after.hash:
            raise ReorgRace(f"block {to_block} changed while reading {cursor + 1}..{to_block}")
        stored = [s for s in (to_stored(e) for e in events) if s is not None]
        new_tasks = self.store.apply_batch(to_block, {to_block: after.hash}, stored, keep_blocks=self.reorg_depth)
        if self.metrics:
            self.metrics.last_block.set(to_block)
        if stored:
            log.debug("blocks %d..%d: %d events, %d new tasks", cursor + 1, to_block, len(stored), len(new_tasks))
        return PollResult(head, new_tasks, stored, rollback, caught_up=to_block == safe)

    def _head_and_cursor_block(self) -> tuple[BlockHeader | None, tuple[int, str, BlockHeader | None] | None]:
        """The latest header, and (cursor, stored hash, the chain's header there) when the cursor's
        block hash is stored: one batch request when the source can (`headers`), else two."""
        cursor = self.store.cursor()
        stored = self.store.block_hash(cursor) if cursor is not None else None
        if stored is None:
            return self.source.header("latest"), None
        headers = getattr(self.source, "headers", None)
        if headers is not None:
            head, current = headers(["latest", cursor])
        else:
            head, current = self.source.header("latest"), self.source.header(cursor)
        return head, (cursor, stored, current)

    def _check_reorg(self, at_cursor: tuple[int, str, BlockHeader | None] | None) -> Rollback | None:
        if at_cursor is None:
            return None
        cursor, stored, current = at_cursor
        if current is not None and current.hash == stored:
            return None
        fork = self.start_block - 1
        for number, block_hash in self.store.recent_blocks(self.reorg_depth):
            header = self.source.header(number)
            if header is not None and header.hash == block_hash:
                fork = number
                break
        rollback = self.store.rollback(fork)
        if self.metrics:
            self.metrics.reorgs.inc()
            self.metrics.last_block.set(fork)
        log.warning("reorg: block %d is no longer %s; rolled back to block %d (%d tasks to re-check, "
                    "%d finalizations undone, %d transactions to re-check)", cursor, stored[:18], fork,
                    len(rollback.tasks_rechecked), len(rollback.tasks_reopened), len(rollback.sends_reopened))
        return rollback
