"""Task streams: the chain sample of an evaluation set, drawn from a block hash."""

from __future__ import annotations

import numpy as np

from node.experiment.tasks import TaskStream, chain_sample


def stream(n: int) -> TaskStream:
    return TaskStream([bytes([i % 256]) * 3 for i in range(n)], np.arange(n) % 3, np.arange(n) % 3, None, "test")


def test_the_sample_is_fixed_by_the_block_hash_and_no_one_else() -> None:
    h1, h2 = "0x" + "ab" * 32, "0x" + "ac" * 32
    a, b = chain_sample(h1, 2000, 12), chain_sample(h1, 2000, 12)
    assert np.array_equal(a, b)  # anyone can redraw it from the hash
    assert not np.array_equal(a, chain_sample(h2, 2000, 12))
    assert len(set(a.tolist())) == 12 and np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 2000
    assert len(chain_sample(h1, 5, 12)) == 5  # never more than there are


def test_a_subset_remembers_where_its_tasks_came_from() -> None:
    s = stream(50)
    sub = s.subset([40, 3, 17])
    assert [sub.eval_index(i) for i in range(3)] == [40, 3, 17]
    assert sub.payloads == [s.payloads[40], s.payloads[3], s.payloads[17]]
    assert np.array_equal(sub.labels, s.labels[[40, 3, 17]])
    assert [sub.head(2).eval_index(i) for i in range(2)] == [40, 3]
    assert sub.subset([2]).eval_index(0) == 17  # positions in the first stream, through two draws
    assert [s.head(4).eval_index(i) for i in range(4)] == [0, 1, 2, 3]
