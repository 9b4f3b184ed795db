"""What the node does for a task after publishing: finalize it at quorum, claim its reward share.

Both go through the outbox like publications, so they are crash-safe the same way. Finalization
is open to any node, but one is designated per task, and the others only stand in for it: the
node whose decision reached quorum sends `finalize` at once; the agent that published the r-th
decision before it (r = 1, 2, ...) waits r x `finalize_grace_s` from the moment it saw quorum,
and a node with no decision on the task waits one grace more than all of them. So the stand-ins
never race the designated node or each other unless the one before them has been silent for a
whole grace period (dead, or its RPC down); gas estimation turns a lost race seen on chain into
nothing sent, and AlreadyFinalized there is expected and quiet. A claim
is sent at most once per task: a claim open or mined in the send log is never built again, and
what settles a share for good is written to the task's `claim_status`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from node.chain.nodechain import BlockHeader
from node.protocol.errors import ChainError, ContractRevert
from node.runtime.metrics import NodeMetrics
from node.runtime.outbox import Outbox, Settled
from node.runtime.ports import ChainPort
from node.runtime.sendlog import SendKind, SendState
from node.runtime.settings import NodeSettings
from node.runtime.store import ClaimState, Store, StoredEvent, TaskRecord

log = logging.getLogger(__name__)

_FINALIZE_QUIET = {"AlreadyFinalized", "QuorumNotReached", "NothingToFinalize", "UnknownTask"}
_CLAIM_FINAL = {"AlreadyClaimed", "NotContributor"}  # quiet, and no claim is tried again
_CONTRIBUTIONS = ("DecisionPublished", "EmbeddingPublished")


def explain_revert(chain: ChainPort, item: Settled) -> ContractRevert:
    """Why a settled send reverted; a plain "Reverted" when the chain cannot say."""
    if item.receipt is not None:
        try:
            return chain.explain_failure(item.receipt)
        except ChainError:
            pass
    return ContractRevert("Reverted", {}, tx_hash=item.send.tx_hash)


def finalize_rank(decisions: list[StoredEvent], me: str) -> int:
    """How many grace periods this node waits before finalizing a task whose decisions (in chain
    order, up to the quorum-reaching one) are `decisions`: 0 for the agent of the last one (it
    reached quorum), r for the agent r places before it, one more than all of them for a node
    with no decision there."""
    agents: list[str] = []
    for event in reversed(decisions):
        agent = (event.agent or "").lower()
        if agent not in agents:
            agents.append(agent)
    return agents.index(me) if me in agents else len(agents)


def share_of(task: TaskRecord) -> int:
    """A contributor's share of a finalized task: `reward / contributors`, rounded down (as on chain)."""
    return int(task.reward or 0) // task.contributors if task.contributors else 0


class Closer:
    """Finalization and reward claims of one node, over its store and outbox."""

    def __init__(self, chain: ChainPort, store: Store, outbox: Outbox, metrics: NodeMetrics,
                 settings: NodeSettings, clock: Callable[[], float]) -> None:
        self.chain = chain
        self.store = store
        self.outbox = outbox
        self.metrics = metrics
        self.settings = settings
        self.clock = clock
        self.board = chain.address_of("TaskBoard")
        self._quorum_seen: dict[int, float] = {}
        self._finalize_retry_at: dict[int, float] = {}
        self._claim_retry_at: dict[int, float] = {}

    # -- finalization -----------------------------------------------------------------------------

    def finalize_ready(self, head: BlockHeader) -> None:
        """Send finalize for open tasks at quorum (or past deadline with a decision) that this node
        should finalize now; a lost race (AlreadyFinalized) is expected and quiet."""
        now = self.clock()
        me = self.chain.address.lower()
        # Open tasks without a decision are neither at quorum nor expired with one: not candidates.
        candidates = self.store.decided_open_tasks()
        candidate_ids = {task.id for task, _ in candidates}
        for book in (self._quorum_seen, self._finalize_retry_at):
            for task_id in [t for t in book if t not in candidate_ids]:
                del book[task_id]
        for task, decisions in candidates:
            # Only a row filled from its TaskSubmitted event has a quorum (TaskBoard refuses 0).
            if task.submitted_block is None or task.quorum is None:
                continue
            if now < self._finalize_retry_at.get(task.id, 0.0):
                continue
            at_quorum = len(decisions) >= task.quorum
            expired = task.deadline is not None and head.timestamp > task.deadline and decisions
            if not (at_quorum or expired):
                self._quorum_seen.pop(task.id, None)
                continue
            if self.store.live_send(task.id, SendKind.FINALIZE) is not None:
                continue
            first_seen = self._quorum_seen.setdefault(task.id, now)
            rank = finalize_rank(decisions[:task.quorum] if at_quorum else decisions, me)
            if now - first_seen < rank * self.settings.finalize_grace_s:
                continue
            data = self.chain.calldata("TaskBoard", "finalize", task.id)
            try:
                self.outbox.send(kind=SendKind.FINALIZE, to=self.board, data=data, task_id=task.id)
                log.debug("task %d: finalize sent", task.id)
            except ContractRevert as exc:
                if exc.error_name not in _FINALIZE_QUIET:
                    log.warning("task %d: finalize refused: %s", task.id, exc)
                self._finalize_retry_at[task.id] = now + 1.0

    # -- rewards ----------------------------------------------------------------------------------

    def claim_ready(self) -> None:
        """Send claimReward for each finalized task this node contributed to whose share is above
        zero, at most once: a claim open or mined in the send log is never built again, and what
        settles a share for good (our claim mined, nothing to claim, AlreadyClaimed or
        NotContributor from the chain) is written to the task's `claim_status`."""
        now = self.clock()
        me = self.chain.address.lower()
        for task in self.store.claimable_tasks():
            if now < self._claim_retry_at.get(task.id, 0.0):
                continue
            live = self.store.live_send(task.id, SendKind.CLAIM)
            if live is not None:
                if live.status == SendState.MINED:  # killed between the receipt and its record
                    self._claimed(task.id)
                continue
            contributed = any(e.name in _CONTRIBUTIONS and (e.agent or "").lower() == me
                              for e in self.store.task_events(task.id))
            if not contributed or share_of(task) == 0:
                self.store.update_task(task.id, claim_status=ClaimState.NONE)
                continue
            data = self.chain.calldata("TaskBoard", "claimReward", task.id)
            try:
                self.outbox.send(kind=SendKind.CLAIM, to=self.board, data=data, task_id=task.id)
                log.debug("task %d: claimReward sent", task.id)
            except ContractRevert as exc:
                if exc.error_name in _CLAIM_FINAL:
                    log.info("task %d: no reward to claim (%s)", task.id, exc.error_name)
                    self.store.update_task(task.id, claim_status=exc.error_name)
                else:
                    log.warning("task %d: claimReward refused: %s", task.id, exc)
                    self._claim_retry_at[task.id] = now + 5.0

    def _claimed(self, task_id: int) -> None:
        task = self.store.get_task(task_id)
        share = share_of(task) if task is not None else 0
        self.store.update_task(task_id, claim_status=ClaimState.CLAIMED, claimed_wei=str(share))
        log.info("task %d: reward share of %d wei claimed", task_id, share)

    # -- settled sends --------------------------------------------------------------------------

    def on_settled(self, item: Settled) -> None:
        """Record what became of a finalize or claim send the outbox settled."""
        send = item.send
        if send.task_id is None:
            return
        if send.kind == SendKind.FINALIZE:
            if send.status == SendState.MINED:
                self.metrics.finalize_sent.inc()
                log.info("task %d finalized by this node (gas %s)", send.task_id, send.gas_used)
            elif send.status == SendState.REVERTED:
                log.info("finalize of task %d reverted (another node was first)", send.task_id)
        elif send.status == SendState.MINED:
            self._claimed(send.task_id)
        elif send.status == SendState.REVERTED:
            reason = explain_revert(self.chain, item)
            if reason.error_name in _CLAIM_FINAL:
                log.info("task %d: claim reverted (%s)", send.task_id, reason.error_name)
            else:
                log.warning("task %d: claim reverted: %s; not tried again", send.task_id, reason)
            self.store.update_task(send.task_id, claim_status=reason.error_name)
        elif send.status == SendState.DROPPED:
            # None of our attempts was mined (or a reorg took it): decide again; the chain says
            # AlreadyClaimed at estimation if the share was paid after all.
            self.store.update_task(send.task_id, claim_status=None, claimed_wei=None)
