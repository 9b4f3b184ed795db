"""Reward claiming in the node runtime, over the fake chain: one claimReward per finalized task the
node contributed to, never a second one (restarts, chain refusals and reverted receipts included)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

from eth_account import Account
from nodefakes import FakeNodeChain

from node.chain.deploy import Deployment
from node.chain.events import (
    DecisionPublished,
    EmbeddingPublished,
    TaskFinalized,
    TaskSubmitted,
)
from node.protocol.errors import ContractRevert
from node.runtime.settings import NodeSettings
from node.runtime.node import NodeRuntime
from node.runtime.sendlog import SendState
from node.runtime.store import ClaimState, Store, TaskState

OTHER = Account.create().address


def runtime(chain: FakeNodeChain, path: Path, clock=None, **settings: object) -> NodeRuntime:
    s = NodeSettings(role="market", port=9301, chain_id=31337, rpc_url="http://127.0.0.1:1", **settings)
    deployment = Deployment(chain_id=31337, rpc_url=s.rpc_url, contracts={"TaskBoard": chain.board}, deploy_block=1)
    # The agent is never run: every task here is finalized before the node looks at it.
    extra = {"clock": clock} if clock is not None else {}
    return NodeRuntime(s, chain, Store(path), agent=None, deployment=deployment, **extra)


def finalized_task(chain: FakeNodeChain, task_id: int, *, reward: int, contributors: int,
                   me: bool = True, embedding: bool = False) -> None:
    """Submission, a publication (ours or another agent's), finalization: one block each."""
    agent = chain.address if me else OTHER
    chain.source.add_block([TaskSubmitted(task_id, OTHER, 2, 2_000_000_000, 1, reward, b"\x11" * 32, "", b"{}")])
    if embedding:
        chain.source.add_block([EmbeddingPublished(task_id, agent, b"\x22" * 32, 0, b"\x00" * 64)])
    else:
        chain.source.add_block([DecisionPublished(task_id, agent, 0, 2, 7000)])
    chain.source.add_block([TaskFinalized(task_id, 2, 0, 0, 7000, 1, contributors)])


def steps(node: NodeRuntime, n: int = 4) -> None:
    for _ in range(n):
        node.step()


def test_the_share_is_claimed_once_and_a_restart_does_not_claim_again(tmp_path: Path) -> None:
    chain = FakeNodeChain()
    finalized_task(chain, 1, reward=10, contributors=3)
    finalized_task(chain, 2, reward=7, contributors=1, embedding=True)  # an embedding makes a contributor too
    node = runtime(chain, tmp_path / "n.sqlite")
    steps(node)
    for task_id, share in ((1, 3), (2, 7)):
        (claim,) = node.store.sends(task_id=task_id, kind="claim")
        assert claim.status == SendState.MINED and claim.tx_hash in chain.receipts
        task = node.store.get_task(task_id)
        assert (task.claim_status, task.claimed_wei) == (ClaimState.CLAIMED, str(share))
    assert chain.claims == [1, 2]
    node.store.close()

    restarted = runtime(chain, tmp_path / "n.sqlite")  # same state file, fresh process objects
    steps(restarted)
    assert chain.claims == [1, 2]
    assert [len(restarted.store.sends(task_id=t, kind="claim")) for t in (1, 2)] == [1, 1]


def test_a_claim_mined_but_not_yet_recorded_is_not_sent_again(tmp_path: Path) -> None:
    chain = FakeNodeChain(automine=False)
    finalized_task(chain, 1, reward=10, contributors=2)
    node = runtime(chain, tmp_path / "n.sqlite")
    steps(node, 2)
    (claim,) = node.store.sends(task_id=1, kind="claim")
    assert claim.status == SendState.SENT and node.store.get_task(1).claim_status is None
    chain.mine()
    node.store.mark_send(claim.id, SendState.MINED, block_number=chain.block)  # the receipt was recorded, then a kill
    node.store.close()

    restarted = runtime(chain, tmp_path / "n.sqlite")
    steps(restarted)
    assert chain.claims == [1]
    assert restarted.store.get_task(1).claim_status == ClaimState.CLAIMED


def test_nothing_to_claim_sends_nothing(tmp_path: Path) -> None:
    chain = FakeNodeChain()
    finalized_task(chain, 1, reward=10, contributors=3, me=False)  # another agent's task
    finalized_task(chain, 2, reward=2, contributors=3)  # a share of 0 wei
    finalized_task(chain, 3, reward=0, contributors=1)
    chain.source.add_block([TaskSubmitted(4, OTHER, 2, 2_000_000_000, 3, 10, b"\x11" * 32, "", b"{}"),
                            DecisionPublished(4, chain.address, 0, 2, 7000)])  # still open
    node = runtime(chain, tmp_path / "n.sqlite", finalize=False)
    steps(node)
    assert node.store.sends(kind="claim") == [] and chain.claims == [] and chain.estimates == 0
    assert [node.store.get_task(t).claim_status for t in (1, 2, 3, 4)] == [ClaimState.NONE] * 3 + [None]


def test_already_claimed_at_estimation_is_quiet_and_final(tmp_path: Path, caplog) -> None:
    chain = FakeNodeChain(estimate_reverts=ContractRevert("AlreadyClaimed", {"taskId": 1, "agent": "0x"}))
    finalized_task(chain, 1, reward=10, contributors=2)
    node = runtime(chain, tmp_path / "n.sqlite")
    with caplog.at_level(logging.INFO, logger="node.runtime.closing"):
        steps(node)
    assert chain.estimates == 1  # asked once, never again
    assert node.store.sends(kind="claim") == []
    assert node.store.get_task(1).claim_status == "AlreadyClaimed"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_unexpected_refusal_is_retried_later(tmp_path: Path, caplog) -> None:
    clock = SimpleNamespace(now=1000.0)
    chain = FakeNodeChain(estimate_reverts=ContractRevert("NotFinalized", {"taskId": 1}))
    finalized_task(chain, 1, reward=10, contributors=2)
    node = runtime(chain, tmp_path / "n.sqlite", clock=lambda: clock.now)
    with caplog.at_level(logging.WARNING, logger="node.runtime.closing"):
        steps(node)
    assert chain.estimates == 1 and node.store.get_task(1).claim_status is None
    assert any("claimReward refused" in r.getMessage() for r in caplog.records)
    chain.estimate_reverts = None
    clock.now += 10
    steps(node)
    assert node.store.get_task(1).claim_status == ClaimState.CLAIMED and chain.claims == [1, 1]


def test_a_claim_reverted_on_chain_is_final(tmp_path: Path, caplog) -> None:
    chain = FakeNodeChain(automine=False)
    chain.revert_reason = ContractRevert("NotContributor", {"taskId": 1})
    finalized_task(chain, 1, reward=10, contributors=2)
    node = runtime(chain, tmp_path / "n.sqlite")
    steps(node, 2)
    chain.mine(status=0)
    with caplog.at_level(logging.INFO, logger="node.runtime.closing"):
        steps(node)
    (claim,) = node.store.sends(task_id=1, kind="claim")
    assert claim.status == SendState.REVERTED and chain.claims == [1]
    assert node.store.get_task(1).claim_status == "NotContributor"
    assert node.store.get_task(1).status != TaskState.FAILED  # a claim is not a publication
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_dropped_claim_is_decided_again(tmp_path: Path) -> None:
    chain = FakeNodeChain(automine=False)
    finalized_task(chain, 1, reward=10, contributors=2)
    node = runtime(chain, tmp_path / "n.sqlite")
    steps(node, 2)
    (first,) = node.store.sends(task_id=1, kind="claim")
    chain.forget(first.tx_hash)
    chain.mined_nonce += 1  # another transaction of the key took the nonce
    chain.automine = True
    steps(node)
    first, second = node.store.sends(task_id=1, kind="claim")
    assert (first.status, second.status) == (SendState.DROPPED, SendState.MINED)
    assert node.store.get_task(1).claim_status == ClaimState.CLAIMED


def test_claiming_can_be_turned_off(tmp_path: Path) -> None:
    chain = FakeNodeChain()
    finalized_task(chain, 1, reward=10, contributors=2)
    node = runtime(chain, tmp_path / "n.sqlite", claim_rewards=False)
    steps(node)
    assert chain.claims == [] and node.store.get_task(1).claim_status is None
