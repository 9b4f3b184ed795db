"""One architecture's tasks through the chain: submit, wait for TaskFinalized, account the costs.

An `ArchJob` keeps a bounded number of its tasks in flight (a sliding window: a submitter paces
its tasks, and nodes slow down when hundreds of tasks are open at once), except M-regret, which
sends its stream in rounds and updates its on-chain weights from the revealed labels between them,
as an online regret-weighted network does. What the chain says becomes a unit record: per task
the fused action from `TaskFinalized`, the label kept off chain, latency, blocks, gas, calldata
bytes and transactions; per unit the wall time, CPU time of the node processes and throughput.

`run_jobs` drives several jobs at once under one in-flight cap (robustness and synergy sweeps:
only quality matters) or a single one (the main table and the cost sweeps).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from node.experiment.chain import Board, Submitted
from node.experiment.tasks import TaskStream
from node.protocol.enums import AGENT_ROLES, Action, Role

log = logging.getLogger(__name__)

WINDOW = 8
"""Tasks of one job in flight at once."""
POLL_S = 0.03


class JobTimeout(RuntimeError):
    """Tasks were not finalized in time (the message carries the node logs' tails)."""


@dataclass
class RegretWeights:
    """M-regret's state: multiplicative weights over the three agents (`models.fusion.Hedge`)."""

    eta: float
    log_w: list[float]

    def weights_bps(self) -> dict[int, int]:
        from models.fusion import Hedge as H

        h = H(len(self.log_w), self.eta)
        h.log_w = np.asarray(self.log_w, dtype=np.float64)
        return {role: int(w) for role, w in zip(AGENT_ROLES, h.weights_bps())}

    def update(self, actions: list[int], present: list[bool], label: int) -> None:
        loss = np.array([a != label for a in actions], dtype=np.float64) * np.array(present, dtype=bool)
        self.log_w = (np.asarray(self.log_w) - self.eta * loss).tolist()


@dataclass
class ArchJob:
    """The tasks of one unit (one architecture on one stream)."""

    key: str
    arch: int
    stream: TaskStream
    quorum: int
    deadline_s: int
    window: int = WINDOW
    round_size: int | None = None
    """M-regret: tasks per round (the weights change only between rounds)."""
    hedge: RegretWeights | None = None
    expect_unfinalized: bool = False
    """Degraded scenarios: tasks may never finalize (no decision at all); given up on after the deadline."""
    expected: np.ndarray | None = None
    """(len(stream),) the action the off-chain evaluation finalizes for each task (-1: none): the
    record then carries `chain_check`, every task where the chain finalized something else."""
    meta: dict[str, Any] = field(default_factory=dict)
    # -- state
    submitted: list[Submitted] = field(default_factory=list)
    owner_txs: list[str] = field(default_factory=list)
    first_block: int = 0
    started: float = 0.0
    ended: float = 0.0
    _next: int = 0
    _round: list[Submitted] = field(default_factory=list)
    _given_up: set[int] = field(default_factory=set)

    @property
    def in_flight(self) -> list[Submitted]:
        return [s for s in self.submitted if s.finalized_at is None and s.task_id not in self._given_up]

    @property
    def done(self) -> bool:
        return self._next >= len(self.stream) and not self.in_flight

    def wants(self) -> int:
        """How many more tasks this job would submit now."""
        if self._next >= len(self.stream):
            return 0
        if self.hedge is not None:
            # A round's tasks all run under the weights set at its start, however many at a time
            # the cap lets through; the next round starts (learn, then set weights) only once the
            # previous one has finalized. Round boundaries are therefore fixed multiples of
            # round_size, as the off-chain replay has them, whatever the concurrency.
            size = self.round_size or len(self.stream)
            at_boundary = self._next % size == 0
            if at_boundary and self.in_flight:
                return 0
            return min(len(self.stream), (self._next // size + 1) * size) - self._next
        return max(0, min(self.window - len(self.in_flight), len(self.stream) - self._next))

    def submit(self, board: Board, n: int) -> None:
        if not self.submitted:
            self.first_block = board.block_number() + 1
            self.started = time.perf_counter()
        if self.hedge is not None:
            size = self.round_size or len(self.stream)
            if self._next % size == 0:  # a round starts: learn from the last one, set its weights
                if self._round:
                    self._learn(board)
                self.owner_txs += board.set_weights(self.arch, {**self.hedge.weights_bps(), Role.FUSION: 0})
            n = min(n, self.wants())  # never past the round's end
        lo, hi = self._next, self._next + n
        subs = board.submit(self.stream.payloads[lo:hi], self.arch, self.quorum, self.deadline_s,
                            indices=list(range(lo, hi)))
        self._next = hi
        self._round = self._round + subs if self.hedge is not None else subs
        self.submitted += subs

    def _learn(self, board: Board) -> None:
        """M-regret: the round's labels are revealed; Hedge updates from the published decisions."""
        pubs = board.publications([s.task_id for s in self._round], self.first_block)
        for s in self._round:
            by_role = {e.role: e for e in pubs.get(s.task_id, []) if e.role in AGENT_ROLES}
            actions = [by_role[r].action if r in by_role else Action.HOLD for r in AGENT_ROLES]
            present = [r in by_role and by_role[r].confidence > 0 for r in AGENT_ROLES]
            self.hedge.update(actions, present, int(self.stream.labels[s.index]))  # type: ignore[union-attr]
        self._round = []

    def finish(self, board: Board) -> None:
        if self.hedge is not None and self._round:
            self._learn(board)
        self.ended = time.perf_counter()

    def give_up(self, board: Board, now: float) -> list[Submitted]:
        """Degraded jobs: tasks whose deadline passed on chain (plus grace) and still open."""
        if not self.expect_unfinalized:
            return []
        grace = getattr(board.chain, "give_up_grace_s", 8.0)  # longer on a chain with slow real blocks
        late = [s for s in self.in_flight if now - s.sent_at > self.deadline_s + grace]
        self._given_up.update(s.task_id for s in late)
        return late

    def record(self, board: Board, cpu_s: float | None) -> dict[str, Any]:
        """The unit's record: everything the report needs, from the chain and the stream."""
        costs = board.costs([s.task_id for s in self.submitted], self.first_block)
        owner = board.tx_charges(self.owner_txs) if self.owner_txs else {}
        owner_gas = sum(c.gas for c in owner.values())
        owner_bytes = sum(c.calldata_bytes for c in owner.values())
        owner_sizes = {k: sum(getattr(c, k) for c in owner.values()) for k in ("fastlz_bytes", "brotli_bytes",
                                                                                "op_da_bytes")}
        n = max(1, len(self.submitted))
        tasks = []
        for s in sorted(self.submitted, key=lambda s: s.index):
            c = costs[s.task_id]
            i = s.index
            tasks.append({
                "i": i, "eval_i": self.stream.eval_index(i), "task_id": s.task_id, "action": s.action,
                "decisions": s.decisions,
                "label": int(self.stream.labels[i]),
                "oracle": None if self.stream.oracle is None else int(self.stream.oracle[i]),
                "ret": None if self.stream.returns is None else float(self.stream.returns[i]),
                "latency_s": None if s.finalized_at is None else s.finalized_at - s.sent_at,
                "blocks": None if s.finalized_block is None else s.finalized_block - s.block,
                "gas": c.gas + owner_gas / n, "calldata_bytes": c.calldata_bytes + owner_bytes / n,
                "txs": c.txs + len(self.owner_txs) / n, "publications": c.publications,
                **{k: getattr(c, k) + v / n for k, v in owner_sizes.items()},
            })
        finalized = [s for s in self.submitted if s.finalized_at is not None]
        check = None
        if self.expected is not None:
            chain = {t["i"]: -1 if t["action"] is None else int(t["action"]) for t in tasks}  # -1: never finalized
            mismatches = [{"i": t["eval_i"], "task_id": t["task_id"], "chain": chain[t["i"]],
                           "offchain": int(self.expected[t["i"]])}
                          for t in tasks if chain[t["i"]] != int(self.expected[t["i"]])]
            check = {"sampled": len(tasks), "mismatches": mismatches}
            for m in mismatches:
                log.error("%s: task %d (eval task %d) finalized %s on chain, %s off chain", self.key, m["task_id"],
                          m["i"], m["chain"], m["offchain"])
        span = (max(s.finalized_at for s in finalized) - min(s.sent_at for s in self.submitted)) if finalized else None
        return {
            "key": self.key, "arch": self.arch, "quorum": self.quorum, "tasks": tasks,
            "wall_s": self.ended - self.started, "cpu_s": cpu_s,
            "throughput": (len(finalized) / span) if span else None, "window": self.window,
            "owner_gas": owner_gas, "owner_txs": len(self.owner_txs),
            "hedge": None if self.hedge is None else {"eta": self.hedge.eta, "log_w": self.hedge.log_w},
            "stream": self.stream.description, **({"chain_check": check} if check is not None else {}), **self.meta,
        }


class Cancelled(RuntimeError):
    """The run is stopping (Ctrl-C, an error elsewhere): the unit is abandoned, not recorded."""


def run_jobs(board: Board, jobs: list[ArchJob], *, timeout_s: float, max_in_flight: int | None = None,
             logs: Callable[[], str] = lambda: "", on_task: Callable[[], None] | None = None,
             poll_s: float = POLL_S, cancel: Any = None) -> None:
    """Drive `jobs` until every one is done, at most `max_in_flight` tasks open at once (all jobs
    together; default: no cap beyond each job's window). A task not finalized `timeout_s` after
    it was sent raises JobTimeout, unless its job expects unfinalized tasks; `cancel` (an Event)
    set from another thread raises Cancelled."""
    cursor = board.block_number() + 1
    last_tick = 0.0
    by_id: dict[int, Submitted] = {}
    while not all(job.done for job in jobs):
        if cancel is not None and cancel.is_set():
            raise Cancelled("the run is stopping")
        # Submit: round robin over the jobs that want more, within the cap.
        open_now = sum(len(j.in_flight) for j in jobs)
        for job in jobs:
            want = job.wants()
            if max_in_flight is not None:
                want = min(want, max_in_flight - open_now)
            if want > 0:
                job.submit(board, want)
                for s in job.submitted[-want:]:
                    by_id[s.task_id] = s
                open_now += want
        # Collect what finalized.
        head = board.block_number()
        now = time.perf_counter()
        if head >= cursor:
            for event in board.finalized_since(cursor, head):
                s = by_id.get(event.task_id)
                if s is not None and s.finalized_at is None:
                    s.finalized_at, s.finalized_block = now, event.block_number
                    s.action, s.decisions = event.action, event.decisions
                    if on_task is not None:
                        on_task()
            cursor = head + 1
        for job in jobs:
            for s in job.give_up(board, now):
                if on_task is not None:
                    on_task()
            stuck = [s for s in job.in_flight if now - s.sent_at > timeout_s]
            if stuck:
                raise JobTimeout(f"{job.key}: {len(stuck)} tasks not finalized after {timeout_s:.0f}s "
                                 f"(e.g. task {stuck[0].task_id})\n{logs()}")
            if job.done and job.ended == 0.0:
                job.finish(board)
        # Deadlines pass only when blocks are mined: once a degraded task's deadline is near (by
        # the wall clock: an idle auto-mining chain's clock stands still), mine a block a second.
        near = any(j.expect_unfinalized and any(now - s.sent_at >= j.deadline_s - 2 for s in j.in_flight)
                   for j in jobs)
        if near and now - last_tick > 1.0:
            board.tick()
            last_tick = now
        time.sleep(poll_s)
    for job in jobs:
        if job.ended == 0.0:
            job.finish(board)
