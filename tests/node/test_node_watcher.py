"""The event watcher against a scripted chain: cursor, confirmations, ranges, reorgs, restarts,
and the node loop's backoff while the RPC is away."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from nodefakes import FakeNodeChain, ScriptedSource
from testkit import sample

from node.chain.events import DecisionPublished, TaskFinalized, TaskSubmitted
from node.protocol.errors import RpcUnavailable
from node.runtime.metrics import NodeMetrics
from node.runtime.store import ChainState, Store, TaskState
from node.runtime.watcher import ReorgRace, Watcher


def task_submitted(task_id: int) -> TaskSubmitted:
    return TaskSubmitted(task_id=task_id, submitter="0xS", arch=2, deadline=2_000_000_000, quorum=2, reward=0,
                         payload_hash=bytes(32), uri="", payload=b"{}")


def decision(task_id: int, agent: str = "0xA") -> DecisionPublished:
    return DecisionPublished(task_id=task_id, agent=agent, role=0, action=2, confidence=5000)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "w.sqlite")


def test_follows_new_blocks_and_persists_the_cursor(store: Store) -> None:
    src = ScriptedSource()
    src.add_block()  # deployment block
    src.add_block([task_submitted(1)])
    watcher = Watcher(src, store, start_block=1)
    first = watcher.poll()
    assert first.new_tasks == [1] and store.cursor() == 2 and first.caught_up
    assert watcher.poll().new_tasks == []  # nothing new
    src.add_block([decision(1), task_submitted(2)])
    second = watcher.poll()
    assert second.new_tasks == [2] and [e.name for e in second.events] == ["DecisionPublished", "TaskSubmitted"]
    assert store.cursor() == 3


def test_confirmations_hold_back_recent_blocks(store: Store) -> None:
    src = ScriptedSource()
    src.add_block([task_submitted(1)])
    watcher = Watcher(src, store, start_block=1, confirmations=2)
    assert watcher.poll().new_tasks == [] and store.cursor() is None
    src.add_block()
    assert watcher.poll().new_tasks == []
    src.add_block()
    assert watcher.poll().new_tasks == [1] and store.cursor() == 1


def test_long_histories_are_read_in_ranges(store: Store) -> None:
    src = ScriptedSource()
    for i in range(1, 11):
        src.add_block([task_submitted(i)])
    watcher = Watcher(src, store, start_block=1, max_range=4)
    seen, polls = [], 0
    while True:
        result = watcher.poll()
        seen += result.new_tasks
        polls += 1
        if result.caught_up:
            break
    assert seen == list(range(1, 11)) and polls == 3


def test_a_restarted_watcher_resumes_without_loss_or_repeat(tmp_path: Path) -> None:
    src = ScriptedSource()
    src.add_block([task_submitted(1)])
    path = tmp_path / "resume.sqlite"
    assert Watcher(src, Store(path), start_block=1).poll().new_tasks == [1]
    src.add_block([task_submitted(2)])
    src.add_block([decision(2)])
    # "crash": a new store and watcher on the same file
    again = Watcher(src, Store(path), start_block=1).poll()
    assert again.new_tasks == [2] and [e.name for e in again.events] == ["TaskSubmitted", "DecisionPublished"]


def test_reorg_rolls_back_to_the_fork_and_reads_the_new_branch(store: Store) -> None:
    metrics = NodeMetrics("market")
    src = ScriptedSource()
    src.add_block()  # 1
    src.add_block([task_submitted(1)])  # 2
    watcher = Watcher(src, store, start_block=1, metrics=metrics)
    watcher.poll()
    src.add_block([task_submitted(2)])  # 3
    src.add_block([decision(1), TaskFinalized(task_id=1, action=2, sell_tally=0, hold_tally=0, buy_tally=1,
                                              decisions=2, contributors=2)])  # 4
    watcher.poll()
    assert store.get_task(1).chain_status == ChainState.FINALIZED

    src.replace_from(3)  # blocks 3 and 4 are replaced: task 2 and the finalization vanish
    src.add_block(tag="b")  # 3'
    src.add_block(tag="b")  # 4'
    src.add_block([task_submitted(3)], tag="b")  # 5'
    result = watcher.poll()

    assert result.rollback is not None and result.rollback.to_block == 2
    assert result.new_tasks == [3]
    assert store.get_task(1).chain_status == "open" and store.task_events(1) == []
    gone = store.get_task(2)
    assert gone.status == TaskState.RECHECK and gone.chain_status == ChainState.GONE
    assert sample(metrics, "chorus_reorgs_total") == 1


def test_same_height_reorg_is_detected_by_hash(store: Store) -> None:
    src = ScriptedSource()
    src.add_block()
    src.add_block([task_submitted(1)])
    watcher = Watcher(src, store, start_block=1)
    watcher.poll()
    src.replace_from(2)
    src.add_block([task_submitted(1)], tag="c")  # same height, other hash: anvil_reorg's shape
    result = watcher.poll()
    # Only batch ends are remembered (block 2 here), so the watcher rereads from the start block.
    assert result.rollback is not None and result.rollback.to_block == 0
    assert result.new_tasks == [1] and store.get_task(1).status == "new"


def test_a_chain_change_while_reading_discards_the_batch(store: Store) -> None:
    src = ScriptedSource()
    src.add_block([task_submitted(1)])
    src.mutate_between_reads = True
    watcher = Watcher(src, store, start_block=1)
    with pytest.raises(ReorgRace):
        watcher.poll()
    assert store.cursor() is None and store.get_task(1) is None


def test_a_range_read_past_a_shortened_head_is_retried_from_the_cursor(store: Store, caplog) -> None:
    src = ScriptedSource()
    for _ in range(3):
        src.add_block()
    watcher = Watcher(src, store, start_block=1)
    watcher.poll()
    for i in range(5):
        src.add_block([task_submitted(10 + i)])  # 4..8
    # evm_revert lands between the range's header read and its eth_getLogs: the head drops to 4.
    src.before_events = lambda: src.replace_from(5)
    with caplog.at_level(logging.WARNING, logger="node.runtime.watcher"), pytest.raises(ReorgRace):
        watcher.poll()
    assert any("BlockOutOfRangeError" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert store.cursor() == 3  # nothing applied
    src.before_events = None
    src.add_block([task_submitted(20)], tag="b")  # 5'
    result = watcher.poll()
    assert result.new_tasks == [10, 20] and store.cursor() == 5


def test_rpc_errors_propagate_and_lose_nothing(store: Store) -> None:
    src = ScriptedSource()
    src.add_block([task_submitted(1)])
    watcher = Watcher(src, store, start_block=1)
    src.down = True
    with pytest.raises(RpcUnavailable):
        watcher.poll()
    src.down = False
    assert watcher.poll().new_tasks == [1]


# -- the node loop's backoff (NodeRuntime.run) with a failing RPC --------------------------------------


class RecordingStop(threading.Event):
    """A stop event whose waits return at once but are recorded; stops after `limit` waits."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.limit = limit

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0))
        if len(self.waits) >= self.limit:
            self.set()
        return self.is_set()


def test_node_loop_backs_off_while_the_rpc_is_down_and_says_so(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    from node.runtime.node import NodeRuntime

    runtime = NodeRuntime.__new__(NodeRuntime)  # only the loop is under test here
    from node.runtime.settings import NodeSettings
    from node.runtime.node import HealthState

    runtime.settings = NodeSettings(poll_interval_s=0.1, backoff_max_s=1.0)
    runtime.metrics = NodeMetrics("market")
    runtime.clock = iter(range(0, 10_000)).__next__  # one "second" per call
    runtime.health_state = HealthState(started_at=0)
    runtime.stopping = threading.Event()
    runtime.store = store
    runtime.chain = FakeNodeChain()  # answers every request at once: no silence to report
    runtime.silent_after_s = 0.1
    outcomes = [RpcUnavailable("connection refused")] * 6 + [True, False]

    def step() -> bool:
        outcome = outcomes.pop(0) if outcomes else False
        if isinstance(outcome, Exception):
            assert runtime.health()["status"] in ("starting", "degraded")
            raise outcome
        from node.chain.nodechain import BlockHeader

        runtime.rpc_ok(BlockHeader(5, "0x5", 5))
        return outcome

    runtime.step = step  # type: ignore[method-assign]
    stop = RecordingStop(limit=7)
    with caplog.at_level(logging.INFO, logger="node.runtime.node"):
        runtime.run(stop)
    assert stop.waits[:6] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]  # exponential, capped at backoff_max_s
    assert stop.waits[6:] == [0.1]  # back to the poll interval once the RPC answers (busy step: no wait)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable or failing" in m for m in messages) == 1  # one warning, not one per retry
    assert any("reachable again" in m for m in messages)
    assert sample(runtime.metrics, "chorus_rpc_errors_total", operation="poll") == 6
    assert runtime.health()["chain_reachable"] is True
