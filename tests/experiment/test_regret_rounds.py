"""M-regret's rounds on chain are fixed multiples of its round size, whatever the in-flight cap.

The off-chain replay (`offchain._regret`) sets the Hedge weights before each round of `round_size`
tasks and learns from the whole round after it. On chain, `run_jobs` may let a job submit fewer
tasks than it wants (the cap is shared with the other architectures of a session); a round must
then go out in several chunks under the same weights, and the weights change only once the whole
round has finalized. (A full run found one task finalized under other weights than the replay's
when each chunk was learned from as if it were a round.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from node.experiment.chain import Submitted
from node.experiment.jobs import ArchJob, RegretWeights
from node.protocol.enums import Arch, Role


@dataclass
class _Stream:
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def payloads(self) -> list[bytes]:
        return [bytes([i % 256]) for i in range(len(self.labels))]


@dataclass
class _Board:
    """What ArchJob asks of the chain: weights set, tasks submitted, the round's publications."""

    weights_at: list[tuple[int, dict[int, int]]] = field(default_factory=list)
    """(index of the next task to submit, the weights set) at every set_weights."""
    next_index: int = 0
    learned: list[list[int]] = field(default_factory=list)
    """The stream indices of each group of tasks Hedge learned from."""

    def block_number(self) -> int:
        return 1

    def set_weights(self, arch: int, weights: dict[int, int]) -> list[str]:
        self.weights_at.append((self.next_index, dict(weights)))
        return []

    def submit(self, payloads, arch, quorum, deadline_s, indices) -> list[Submitted]:
        self.next_index = indices[-1] + 1
        return [Submitted(task_id=100 + i, index=i, arch=arch, tx_hash="0x", sent_at=0.0) for i in indices]

    def publications(self, task_ids, first_block):
        self.learned.append([t - 100 for t in task_ids])
        return {}


def _drive(n: int, round_size: int, cap: int) -> _Board:
    """Submit the whole stream at most `cap` tasks at a time, finalizing everything in flight
    between calls (as run_jobs does when the cap binds)."""
    board = _Board()
    job = ArchJob("main/s0/a4", int(Arch.M_REGRET), _Stream(np.ones(n, dtype=np.int64)), 3, 600,
                  round_size=round_size, hedge=RegretWeights(0.5, [0.0, 0.0, 0.0]))
    while not job.done:
        want = min(job.wants(), cap)
        if want > 0:
            job.submit(board, want)
        else:
            for s in job.in_flight:
                s.finalized_at = 1.0
        if job.wants() == 0:  # nothing more to send now: what is in flight finalizes
            for s in job.in_flight:
                s.finalized_at = 1.0
    job.finish(board)
    return board


def test_rounds_are_fixed_however_small_the_cap() -> None:
    for cap in (1, 3, 4, 16):
        board = _drive(10, 4, cap)
        assert [i for i, _ in board.weights_at] == [0, 4, 8], cap
        assert board.learned == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]], cap


def test_a_round_goes_out_in_chunks_under_one_set_of_weights() -> None:
    board = _drive(8, 8, 3)
    assert [i for i, _ in board.weights_at] == [0]
    assert board.learned == [list(range(8))]
    assert board.weights_at[0][1][int(Role.FUSION)] == 0


def test_the_next_round_waits_for_the_last_one_to_finalize() -> None:
    job = ArchJob("main/s0/a4", int(Arch.M_REGRET), _Stream(np.ones(6, dtype=np.int64)), 3, 600,
                  round_size=3, hedge=RegretWeights(0.5, [0.0, 0.0, 0.0]))
    board = _Board()
    job.submit(board, 2)
    assert job.wants() == 1  # the rest of the round, weights unchanged
    job.submit(board, 5)  # asked for more than the round holds: only its last task goes
    assert job._next == 3 and job.wants() == 0  # round boundary, tasks in flight: wait
    for s in job.in_flight:
        s.finalized_at = 1.0
    assert job.wants() == 3
