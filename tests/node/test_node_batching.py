"""Transport "batch" in-process against the session's Anvil: a node's decisions on several tasks go
out in one publishDecisions; a batch the chain refuses falls back to one publishDecision per task;
a restarted node does not batch again what an open batch of its previous run carries."""

from __future__ import annotations

from pathlib import Path

from test_node_runtime import ENCODER, KEYS, make_node, publications, run_until, submit

from agents.factory import build_agent
from node.chain.nodechain import NodeChain
from node.protocol import payload as pl
from node.runtime.batching import DecisionBatcher, batch_tasks
from node.runtime.node import NodeRuntime
from node.runtime.sendlog import SendKind, SendState
from node.runtime.settings import NodeSettings
from node.runtime.store import Store, TaskState


def test_decisions_of_several_tasks_go_in_one_transaction(chain, tmp_path: Path) -> None:
    node = make_node(chain, "market", tmp_path, transport="batch", batch_wait_s=0.0)
    tasks = [submit(chain, pl.encode(pl.example_payload(40 + i))) for i in range(3)]
    run_until([node], lambda: all(node.store.get_task(t) and node.store.get_task(t).status == TaskState.PUBLISHED
                                  for t in tasks))
    decisions = [d for t in tasks for d in publications(chain, t)]
    assert len(decisions) == 3 and len({d.tx_hash for d in decisions}) == 1, decisions
    [batch] = [s for s in node.store.sends() if s.kind == SendKind.BATCH]
    assert batch.status == SendState.MINED and batch.task_id is None
    assert not [s for s in node.store.sends() if s.kind == SendKind.DECISION]
    # Each task's own output is what went on chain.
    for t, d in zip(tasks, decisions):
        record = node.store.get_task(t)
        assert (record.action, record.confidence) == (d.action, d.confidence)


def test_a_refused_batch_falls_back_to_one_transaction_per_task(chain, tmp_path: Path) -> None:
    node = make_node(chain, "sentiment", tmp_path, transport="batch", batch_wait_s=600.0)
    tasks = [submit(chain, pl.encode(pl.example_payload(50 + i)), quorum=2) for i in range(2)]
    run_until([node], lambda: all(node.batcher.covers(t) for t in tasks))  # held, the batch not due yet
    assert not [s for s in node.store.sends() if s.kind == SendKind.BATCH]
    # The first task's decision reaches the chain meanwhile (an earlier life of the node published
    # it): the batch of both reverts at estimation, so each goes alone; the duplicate is taken as done.
    first = node.store.get_task(tasks[0])
    node.chain.contracts.publish_decision(tasks[0], first.action, first.confidence)
    node.batcher.wait_s = 0.0
    run_until([node], lambda: all(node.store.get_task(t).status == TaskState.PUBLISHED for t in tasks))
    assert set(node.batcher.single) >= set(tasks)
    assert len(publications(chain, tasks[0])) == 1 and len(publications(chain, tasks[1])) == 1
    assert [s.task_id for s in node.store.sends() if s.kind == SendKind.DECISION] == [tasks[1]]


def test_embeddings_go_in_one_publishEmbeddings_before_the_decisions(chain, tmp_path: Path) -> None:
    """An agent that publishes its embeddings (E-d): for 3 tasks, one publishEmbeddings then one
    publishDecisions, and each task's own vector is the one on chain."""
    from node.chain.events import EmbeddingPublished

    node = make_node(chain, "sentiment", tmp_path, transport="batch", batch_wait_s=600.0, archs=[5],
                     embedding_archs=[5])
    tasks = [submit(chain, pl.encode(pl.example_payload(60 + i)), quorum=4, arch=5) for i in range(3)]
    run_until([node], lambda: all(node.batcher.covers(t) for t in tasks))
    node.batcher.wait_s = 0.0
    run_until([node], lambda: all(node.store.get_task(t).status == TaskState.PUBLISHED for t in tasks))
    vectors = [e for t in tasks for e in publications(chain, t, EmbeddingPublished)]
    decisions = [d for t in tasks for d in publications(chain, t)]
    assert len(vectors) == len(decisions) == 3
    assert len({e.tx_hash for e in vectors}) == 1 and len({d.tx_hash for d in decisions}) == 1
    assert vectors[0].block_number <= decisions[0].block_number and vectors[0].tx_hash != decisions[0].tx_hash
    for t, e in zip(tasks, vectors):
        assert e.task_id == t and len(e.vector) == node.store.get_task(t).embedding_bytes
    assert [s.kind for s in node.store.sends()].count(SendKind.BATCH) == 2


def test_a_restarted_node_does_not_batch_again_what_an_open_batch_carries(chain, tmp_path: Path) -> None:
    """The batch is sent but not mined (the chain stops mining), the node dies; a new one on the same
    state file reads the open batch from its send log and waits for it instead of sending another."""
    node = make_node(chain, "risk", tmp_path, transport="batch", batch_wait_s=600.0)
    tasks = [submit(chain, pl.encode(pl.example_payload(70 + i)), quorum=2) for i in range(2)]
    run_until([node], lambda: all(node.batcher.covers(t) for t in tasks))
    chain.rpc("evm_setAutomine", False)
    try:
        node.batcher.wait_s = 0.0
        node.step()
        [batch] = [s for s in node.store.sends() if s.kind == SendKind.BATCH]
        assert batch.status == SendState.SENT
        node.store.close()
        del node  # killed: nothing of it but its state file survives
        key = KEYS["risk"]
        settings = NodeSettings(role="risk", port=9100 + key, dev_key_index=key, chain_id=31337, rpc_url=chain.rpc_url,
                                finalize_grace_s=0.0, transport="batch", batch_wait_s=0.0)
        again = NodeRuntime(settings, NodeChain(chain.client(key), chain.contracts(key)),
                            Store(tmp_path / "risk.sqlite"), build_agent("risk", use_trained=False, text_encoder=ENCODER),
                            deployment=chain.deployment)
        again.bootstrap()
        assert all(again.batcher.covers(t) for t in tasks)
        for _ in range(3):
            again.step()
        assert [s.id for s in again.store.sends() if s.kind == SendKind.BATCH] == [batch.id]  # no second batch
    finally:
        chain.rpc("evm_setAutomine", True)
        chain.rpc("evm_mine")
    run_until([again], lambda: all(again.store.get_task(t).status == TaskState.PUBLISHED for t in tasks))
    decisions = [d for t in tasks for d in publications(chain, t)]
    assert len(decisions) == 2 and len({d.tx_hash for d in decisions}) == 1


def test_batch_tasks_reads_the_calldata_and_restore_covers_them() -> None:
    from eth_abi import encode

    from node.protocol.reports import pack_decision

    items = [pack_decision(t, 2, 7000) for t in (5, 9, 12)]
    data = bytes.fromhex("deadbeef") + encode(["uint256[]"], [items])
    assert batch_tasks(data) == [5, 9, 12]
    b = DecisionBatcher(enabled=True, wait_s=5.0, max_items=2, clock=lambda: 100.0)
    b.restore([(7, data)])
    assert b.covers(9) and not b.covers(6)
    assert b.settled(7, mined=True) == ([5, 9, 12], []) and not b.covers(9)
    # A task carried by two batches is settled by the last; one not mined refuses it.
    b.sent(8, [5, 6])
    b.sent(9, [5])
    assert b.settled(8, mined=False) == ([], [6])
    assert b.covers(5) and b.settled(9, mined=True) == ([], [5])
    b.hold(1, 0, 10)
    assert not b.due()  # waits for company up to wait_s
    b.hold(2, 1, 20)
    assert b.due() and [h.task_id for h in b.take()] == [1, 2]  # full at max_items
