"""Signed reports and batched publications on a real Anvil: agents sign EIP-712 decisions with
eth_account, one aggregator submits them through web3, the chain tallies and finalizes; a forged
signature reverts with its named error."""

from __future__ import annotations

import pytest

from node.chain.events import DecisionPublished, ReportSubmitted, TaskFinalized
from node.chain.settings import dev_account
from node.protocol.enums import Action, Encoding, Modality, Role
from node.protocol.errors import ContractRevert
from node.protocol.reports import (
    SignedDecision,
    decision_digest,
    pack_decision,
    recover_signer,
    sign_decision,
    unpack_decision,
)

from chainhelpers import DIM, model_id, open_task

SIGNERS = (21, 22, 23)  # market, sentiment, risk
AGGREGATOR = 24  # a fusion agent


def _setup(chain):
    owner = chain.contracts(0)
    mid = model_id("reports")
    owner.register_model(mid, DIM, Encoding.F32, "reports")
    for index, role in zip(SIGNERS, (Role.MARKET, Role.SENTIMENT, Role.RISK)):
        chain.contracts(index).register_agent(role, Modality.SERIES, f"http://127.0.0.1:{9000 + index}", mid, DIM)
    aggregator = chain.contracts(AGGREGATOR)
    aggregator.register_agent(Role.FUSION, Modality.NONE, "http://127.0.0.1:9024")
    return owner, aggregator, mid


def _sign(chain, index: int, task: int, action: int, confidence: int, mid: bytes) -> SignedDecision:
    board = chain.deployment.address("TaskBoard")
    return sign_decision(dev_account(index).key, chain_id=chain.client(0).chain_id(), board=board, task_id=task,
                         action=action, confidence=confidence, model_id=mid)


def _revert(fn, *args) -> ContractRevert:
    with pytest.raises(ContractRevert) as info:
        fn(*args)
    return info.value


def test_digest_matches_the_contract(chain) -> None:
    owner = chain.contracts(0)
    board = chain.deployment.address("TaskBoard")
    agent = dev_account(21).address
    mid = model_id("digest")
    ours = decision_digest(chain.client(0).chain_id(), board, 7, Action.BUY, 6543, mid, agent)
    assert ours == owner.decision_digest(7, Action.BUY, 6543, mid, agent)


def test_sign_and_recover_offline() -> None:
    board = "0x" + "ab" * 20
    signed = sign_decision(dev_account(3).key, chain_id=31337, board=board, task_id=5, action=Action.SELL,
                           confidence=10_000, model_id=bytes(32))
    assert signed.agent == dev_account(3).address
    assert recover_signer(signed, chain_id=31337, board=board, task_id=5) == signed.agent
    assert recover_signer(signed, chain_id=1, board=board, task_id=5) != signed.agent
    assert recover_signer(signed, chain_id=31337, board=board, task_id=6) != signed.agent
    with pytest.raises(ValueError, match="confidence"):
        sign_decision(dev_account(3).key, chain_id=1, board=board, task_id=1, action=0, confidence=10_001,
                      model_id=bytes(32))
    assert unpack_decision(pack_decision(123_456, 2, 9_999)) == (123_456, 2, 9_999)


def test_report_tallies_and_finalizes(chain) -> None:
    owner, aggregator, mid = _setup(chain)
    task = open_task(owner, quorum=3, reward=10**18)
    signed = [_sign(chain, i, task, a, c, mid)
              for i, a, c in zip(SIGNERS, (Action.BUY, Action.BUY, Action.SELL), (8000, 6000, 9000))]
    result = aggregator.submit_report(task, signed)

    decisions = [e for e in result.events if isinstance(e, DecisionPublished)]
    assert [(d.agent, d.role, d.action, d.confidence) for d in decisions] == [
        (dev_account(21).address, Role.MARKET, Action.BUY, 8000),
        (dev_account(22).address, Role.SENTIMENT, Action.BUY, 6000),
        (dev_account(23).address, Role.RISK, Action.SELL, 9000),
    ]
    report = result.event(ReportSubmitted)
    assert (report.task_id, report.aggregator, report.count) == (task, aggregator.client.address, 3)
    finalized = result.event(TaskFinalized)
    assert (finalized.action, finalized.decisions, finalized.contributors) == (Action.BUY, 3, 3)
    tallies = owner.tallies(task)
    assert (tallies.sell, tallies.hold, tallies.buy) == (2000 * 9000, 0, 5000 * 8000 + 3000 * 6000)
    info = owner.task_info(task)
    assert info.status == 2
    assert not owner.published(task, aggregator.client.address).decision
    # A signer's later publication of its own is a duplicate.
    err = _revert(chain.contracts(21).publish_decision, task, Action.SELL, 1)
    assert err.error_name == "AlreadyFinalized"


def test_report_below_quorum_then_individual_duplicate(chain) -> None:
    owner, aggregator, mid = _setup(chain)
    task = open_task(owner, quorum=5)
    aggregator.submit_report(task, [_sign(chain, 21, task, Action.HOLD, 100, mid)])
    assert owner.task_info(task).status == 1
    err = _revert(chain.contracts(21).publish_decision, task, Action.SELL, 1)
    assert (err.error_name, err.error_args) == ("DuplicateDecision", {"taskId": task, "agent": dev_account(21).address})


def test_forged_signature_reverts_with_its_name(chain) -> None:
    owner, aggregator, mid = _setup(chain)
    task = open_task(owner, quorum=3)
    good = [_sign(chain, i, task, Action.BUY, 5000, mid) for i in SIGNERS]

    # The aggregator rewrites a signer's action: the signature recovers to someone else.
    forged = SignedDecision(**{**good[1].__dict__, "action": Action.SELL})
    err = _revert(aggregator.submit_report, task, [good[0], forged, good[2]])
    assert err.error_name == "SignerMismatch"
    assert err.error_args["index"] == 1 and err.error_args["agent"] == dev_account(22).address

    # The malleable twin of a valid signature.
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(good[2].s, "big")
    twin = SignedDecision(**{**good[2].__dict__, "s": (order - s).to_bytes(32, "big"), "v": 55 - good[2].v})
    err = _revert(aggregator.submit_report, task, [good[0], good[1], twin])
    assert (err.error_name, err.error_args) == ("BadSignature", {"index": 2})

    # A signer twice, and an aggregator that is not an agent.
    err = _revert(aggregator.submit_report, task, [good[0], good[1], good[0]])
    assert (err.error_name, err.error_args) == ("DuplicateSigner", {"agent": dev_account(21).address})
    err = _revert(chain.contracts(25).submit_report, task, good)
    assert (err.error_name, err.error_args) == ("UnknownAgent", {"agent": dev_account(25).address})
    assert owner.task_info(task).decisions == 0


def test_batched_decisions_and_embeddings(chain) -> None:
    owner, _, mid = _setup(chain)
    market = chain.contracts(21)
    tasks = [open_task(owner, quorum=1, payload=bytes([i + 1]) * 8) for i in range(3)]
    vectors = [bytes([i + 1]) * (4 * DIM) for i in range(3)]
    result = market.publish_embeddings(tasks, mid, Encoding.F32, vectors)
    assert len(result.events) == 3
    result = market.publish_decisions([(t, Action.BUY, 7000 + i) for i, t in enumerate(tasks)])
    assert [(e.task_id, e.confidence) for e in result.events] == [(t, 7000 + i) for i, t in enumerate(tasks)]
    for t in tasks:
        info = owner.task_info(t)
        assert (info.decisions, info.contributors) == (1, 1)
    err = _revert(market.publish_decisions, [(tasks[0], Action.BUY, 1)])
    assert (err.error_name, err.error_args) == ("DuplicateDecision", {"taskId": tasks[0], "agent": market.client.address})
    err = _revert(market.publish_embeddings, tasks[:2], mid, Encoding.F32, vectors[:1])
    assert (err.error_name, err.error_args) == ("WrongLength", {"expected": 2 * 4 * DIM, "got": 4 * DIM})
