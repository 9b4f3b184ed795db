"""The node's SQLite state: cursor persistence, idempotent batches, reorg rollback, the send log."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.runtime.sendlog import SendState
from node.runtime.store import ChainState, ClaimState, Store, StoredEvent, TaskRecord, TaskState


def submitted(task_id: int, block: int, payload_hash: str = "0x" + "11" * 32, payload: bytes = b"{}",
              tx: str | None = None) -> StoredEvent:
    return StoredEvent("TaskSubmitted", block_number=block, log_index=0, tx_hash=tx or f"0xsub{task_id}", task_id=task_id,
                      submitter="0xS", arch=2, deadline=2_000_000_000, quorum=4, reward=10**18,
                      payload_hash=payload_hash, uri="", payload=payload)


def decision(task_id: int, block: int, agent: str = "0xA", index: int = 1) -> StoredEvent:
    return StoredEvent("DecisionPublished", block_number=block, log_index=index, tx_hash=f"0xdec{task_id}{agent}",
                      task_id=task_id, agent=agent, role=0, action=2, confidence=7000)


def finalized(task_id: int, block: int) -> StoredEvent:
    return StoredEvent("TaskFinalized", block_number=block, log_index=5, tx_hash=f"0xfin{task_id}", task_id=task_id,
                      action=2, decisions=4, contributors=4)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "node.sqlite")


def test_cursor_and_tasks_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = Store(path)
    assert first.cursor() is None
    new = first.apply_batch(10, {10: "0xaa"}, [submitted(1, 9, payload=b'{"a":1}'), decision(1, 10)])
    assert new == [1]
    first.close()

    second = Store(path)
    assert second.cursor() == 10
    assert second.block_hash(10) == "0xaa"
    task = second.get_task(1)
    assert task is not None and task.status == TaskState.NEW and task.reward == str(10**18)
    assert second.inline_payload(1) == b'{"a":1}'
    assert [e.name for e in second.task_events(1)] == ["DecisionPublished"]


def test_a_batch_seen_twice_adds_nothing(store: Store) -> None:
    assert store.apply_batch(5, {5: "0x05"}, [submitted(1, 5)]) == [1]
    store.update_task(1, status=TaskState.PUBLISHED)
    assert store.apply_batch(5, {5: "0x05"}, [submitted(1, 5), decision(1, 5)]) == []
    assert store.get_task(1).status == TaskState.PUBLISHED
    assert len(store.task_events(1)) == 1


def test_finalization_and_reclaim_update_the_chain_status(store: Store) -> None:
    store.apply_batch(3, {3: "0x03"}, [submitted(1, 2), submitted(2, 3)])
    store.apply_batch(4, {4: "0x04"}, [finalized(1, 4), StoredEvent("TaskReclaimed", 4, 6, task_id=2)])
    one, two = store.get_task(1), store.get_task(2)
    assert (one.chain_status, one.final_action, one.decisions, one.final_block) == (ChainState.FINALIZED, 2, 4, 4)
    assert two.chain_status == ChainState.RECLAIMED
    assert store.open_tasks() == []


def test_rollback_undoes_everything_above_the_fork(store: Store) -> None:
    store.apply_batch(10, {10: "0x10"}, [submitted(1, 10)])
    store.apply_batch(12, {12: "0x12"}, [decision(1, 11), submitted(2, 12)])
    store.apply_batch(14, {14: "0x14"}, [finalized(1, 14)])
    send_id = store.record_send(task_id=2, kind="decision", nonce=3, tx_hash="0xt", raw=b"\x01")
    store.mark_send(send_id, SendState.MINED, block_number=13, gas_used=50_000)
    store.update_task(2, status=TaskState.PUBLISHED)

    rb = store.rollback(10)

    assert rb.to_block == 10 and rb.tasks_rechecked == (2,) and rb.tasks_reopened == (1,)
    assert rb.sends_reopened == (send_id,)
    assert store.cursor() == 10
    assert [n for n, _ in store.recent_blocks()] == [10]
    one, two = store.get_task(1), store.get_task(2)
    assert one.chain_status == ChainState.OPEN and one.final_action is None  # its finalization vanished
    assert store.task_events(1) == []  # the decision in block 11 vanished
    assert two.status == TaskState.RECHECK and two.chain_status == ChainState.GONE  # submitted in a dropped block
    send = store.get_send(send_id)
    assert send.status == SendState.SENT and send.block_number is None  # its receipt must be fetched again
    assert [t.id for t in store.todo_tasks()] == [1]  # task 2 vanished: not work until it reappears


def test_a_task_reappearing_after_a_reorg_starts_over(store: Store) -> None:
    store.apply_batch(5, {5: "0x05"}, [submitted(1, 5, payload_hash="0x" + "aa" * 32, payload=b"old")])
    store.update_task(1, status=TaskState.PUBLISHED, action=2, confidence=9000)
    store.rollback(4)
    new = store.apply_batch(6, {6: "0x06b"}, [submitted(1, 6, payload_hash="0x" + "bb" * 32, payload=b"new")])
    assert new == [1]
    task = store.get_task(1)
    assert (task.status, task.chain_status, task.payload_hash, task.action) == (TaskState.NEW, ChainState.OPEN, "0x" + "bb" * 32, None)
    assert store.inline_payload(1) == b"new"


def test_a_finalized_task_whose_submission_vanished_is_gone_with_its_outputs(store: Store) -> None:
    store.apply_batch(10, {10: "0x10"}, [submitted(1, 10)])
    store.apply_batch(12, {12: "0x12"}, [submitted(2, 11), decision(2, 11), finalized(2, 12)])
    store.update_task(2, status=TaskState.PUBLISHED, action=2, confidence=7000, embedding_bytes=64,
                      commitment="0x" + "cc" * 32, published_at=5.0, claim_status=ClaimState.CLAIMED, claimed_wei="7")

    rb = store.rollback(10)

    assert rb.tasks_rechecked == (2,) and rb.tasks_reopened == ()  # gone, not reopened
    task = store.get_task(2)
    assert (task.status, task.chain_status) == (TaskState.RECHECK, ChainState.GONE)
    outputs = (task.action, task.confidence, task.embedding_bytes, task.commitment, task.published_at,
               task.final_action, task.final_block, task.decisions, task.claim_status, task.claimed_wei)
    assert outputs == (None,) * 10
    assert store.inline_payload(2) is None and store.task_events(2) == []
    assert 2 not in [t.id for t in store.open_tasks() + store.todo_tasks() + store.claimable_tasks()]


def test_another_task_under_an_id_the_node_holds_is_a_new_task(store: Store) -> None:
    # The node never saw the reorg (it was down, say): the row is PUBLISHED, not RECHECK.
    store.apply_batch(5, {5: "0x05"}, [submitted(1, 5, payload_hash="0x" + "aa" * 32, payload=b"old")])
    mined = store.record_send(task_id=1, kind="decision", nonce=0, tx_hash="0xold", raw=b"\x01")
    store.mark_send(mined, SendState.MINED, block_number=6)
    store.update_task(1, status=TaskState.PUBLISHED, action=2, confidence=9000, started_at=1.0)

    new = store.apply_batch(8, {8: "0x08b"}, [submitted(1, 7, payload_hash="0x" + "bb" * 32, payload=b"new",
                                                        tx="0xother")])

    assert new == [1]
    task = store.get_task(1)
    assert (task.status, task.chain_status, task.payload_hash) == (TaskState.NEW, ChainState.OPEN, "0x" + "bb" * 32)
    assert (task.action, task.started_at, task.submitted_block, task.submitted_tx) == (None, None, 7, "0xother")
    assert store.inline_payload(1) == b"new"
    assert store.get_send(mined).status == SendState.DROPPED  # made for the other task: no publication of this one
    assert store.live_send(1, "decision") is None


def test_the_same_task_remined_in_another_block_starts_over_and_keeps_its_sends(store: Store) -> None:
    store.apply_batch(5, {5: "0x05"}, [submitted(1, 5)])
    mined = store.record_send(task_id=1, kind="decision", nonce=0, tx_hash="0xt", raw=b"\x01")
    store.mark_send(mined, SendState.MINED, block_number=6)
    store.update_task(1, status=TaskState.PUBLISHED)
    assert store.apply_batch(9, {9: "0x09"}, [submitted(1, 8)]) == [1]  # same content, same tx, block 8
    assert store.get_task(1).status == TaskState.NEW
    assert store.get_send(mined).status == SendState.SENT  # its receipt is looked up again, it is not dropped


def test_a_transaction_signed_again_byte_for_byte_is_the_same_send(store: Store) -> None:
    first = store.record_send(task_id=1, kind="decision", nonce=4, tx_hash="0xsame", raw=b"\x01")
    store.mark_send(first, SendState.DROPPED, error="not resent: its task changed (reorg)")
    again = store.record_send(task_id=1, kind="decision", nonce=4, tx_hash="0xsame", raw=b"\x01")
    assert again == first
    send = store.get_send(first)
    assert (send.status, send.error, [a.tx_hash for a in send.attempts]) == (SendState.PREPARED, None, ["0xsame"])
    assert store.live_send(1, "decision").id == first and len(store.sends()) == 1


def test_a_publication_in_a_dropped_block_puts_its_task_back_to_work(store: Store) -> None:
    store.apply_batch(5, {5: "0x05"}, [submitted(1, 5)])
    send_id = store.record_send(task_id=1, kind="decision", nonce=0, tx_hash="0xt", raw=b"\x01")
    store.mark_send(send_id, SendState.MINED, block_number=7)
    store.update_task(1, status=TaskState.PUBLISHED)
    store.apply_batch(7, {7: "0x07"}, [])
    store.rollback(6)
    task = store.get_task(1)
    assert task.status == TaskState.RECHECK and task.chain_status == ChainState.OPEN
    assert [t.id for t in store.todo_tasks()] == [1]


def test_claim_candidates_and_a_rollback_of_the_finalization(store: Store) -> None:
    store.apply_batch(5, {5: "0x05"}, [submitted(1, 4), submitted(2, 5), finalized(1, 5)])
    assert [t.id for t in store.claimable_tasks()] == [1]  # finalized, share not decided yet
    store.update_task(1, claim_status=ClaimState.CLAIMED, claimed_wei=str(10**18 // 4))
    assert store.claimable_tasks() == []
    store.rollback(4)  # the finalization vanished: so did what we knew of the share
    task = store.get_task(1)
    assert (task.chain_status, task.claim_status, task.claimed_wei) == (ChainState.OPEN, None, None)


def test_an_old_state_file_gains_the_claim_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, status TEXT NOT NULL, chain_status TEXT NOT NULL)")
    db.commit()
    db.close()
    Store(path).close()
    db = sqlite3.connect(path)
    have = {r[1] for r in db.execute("PRAGMA table_info(tasks)")}
    db.close()
    assert {"claim_status", "claimed_wei"} <= have


def test_bind_wipes_state_of_another_deployment(store: Store) -> None:
    assert store.bind({"chain_id": 31337, "board": "0xB", "hash": "0x1"}) is False
    store.apply_batch(3, {3: "0x03"}, [submitted(1, 3)])
    store.record_send(task_id=1, kind="decision", nonce=0, tx_hash="0xt", raw=b"\x01")
    assert store.bind({"chain_id": 31337, "board": "0xB", "hash": "0x1"}) is False
    assert store.cursor() == 3
    assert store.bind({"chain_id": 31337, "board": "0xB", "hash": "0x2"}) is True
    assert store.cursor() is None and store.count_tasks() == 0 and store.open_sends() == []


def test_send_log_records_before_and_settles_after(store: Store) -> None:
    send_id = store.record_send(task_id=7, kind="decision", nonce=4, tx_hash="0xa1", raw=b"raw1",
                                max_fee_per_gas=3 * 10**9, max_priority_fee_per_gas=10**9)
    assert store.get_send(send_id).status == SendState.PREPARED
    assert store.live_send(7, "decision").id == send_id
    assert store.live_send(7, "embedding") is None
    store.add_attempt(send_id, tx_hash="0xa2", raw=b"raw2", max_fee_per_gas=4 * 10**9, max_priority_fee_per_gas=2 * 10**9)
    store.mark_send(send_id, SendState.SENT, sent_at=1.0)
    send = store.get_send(send_id)
    assert [a.tx_hash for a in send.attempts] == ["0xa1", "0xa2"] and send.tx_hash == "0xa2"
    assert send.attempts[1].raw == b"raw2" and send.attempts[1].max_priority_fee_per_gas == 2 * 10**9
    store.mark_send(send_id, SendState.MINED, tx_hash="0xa1", block_number=9, gas_used=51_000)
    assert store.open_sends() == [] and store.live_send(7, "decision").status == SendState.MINED
    store.mark_send(send_id, SendState.DROPPED)
    assert store.live_send(7, "decision") is None
    with pytest.raises(ValueError):
        store.mark_send(send_id, SendState.MINED, bogus=1)


def test_listing_paging_and_counts(store: Store) -> None:
    for i in range(1, 8):
        store.put_task(TaskRecord(id=i, status=TaskState.PUBLISHED if i % 2 else TaskState.NEW))
    assert [t.id for t in store.list_tasks(limit=3)] == [7, 6, 5]
    assert [t.id for t in store.list_tasks(offset=3, limit=3)] == [4, 3, 2]
    assert [t.id for t in store.list_tasks(status=TaskState.NEW)] == [6, 4, 2]
    assert store.count_tasks() == 7 and store.count_tasks(TaskState.PUBLISHED) == 4
    assert store.status_counts() == {TaskState.PUBLISHED: 4, TaskState.NEW: 3}
    with pytest.raises(ValueError):
        store.update_task(1, nonsense=True)


def test_old_block_hashes_are_pruned(store: Store) -> None:
    for n in range(1, 40):
        store.apply_batch(n, {n: f"0x{n:02x}"}, [], keep_blocks=10)
    assert [n for n, _ in store.recent_blocks(100)] == list(range(39, 29, -1))
