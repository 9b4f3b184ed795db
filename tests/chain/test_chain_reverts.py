"""Reverts come back as ContractRevert(error_name, args), from estimation, calls and mined txs."""

from __future__ import annotations

import pytest

from node.protocol.enums import Action, Encoding, Modality, Role
from node.protocol.errors import ContractRevert

from chainhelpers import DIM, model_id, open_task, setup_agents


def _revert(fn, *args, **kwargs) -> ContractRevert:
    with pytest.raises(ContractRevert) as info:
        fn(*args, **kwargs)
    return info.value


def test_duplicate_decision(chain) -> None:
    owner, market, _, _ = setup_agents(chain)
    task = open_task(owner)
    market.publish_decision(task, Action.BUY, 100)
    err = _revert(market.publish_decision, task, Action.SELL, 100)
    assert err.error_name == "DuplicateDecision"
    assert err.error_args == {"taskId": task, "agent": market.client.address}
    assert err.data and err.data.startswith("0x")


def test_wrong_length(chain) -> None:
    owner, market, _, mid = setup_agents(chain)
    task = open_task(owner)
    err = _revert(market.publish_embedding, task, mid, Encoding.F16, b"\x01" * 5)
    assert (err.error_name, err.error_args) == ("WrongLength", {"expected": 2 * DIM, "got": 5})


def test_model_mismatch(chain) -> None:
    owner, market, sentiment, mid = setup_agents(chain)
    task = open_task(owner)
    other = model_id("not-mine")
    err = _revert(market.publish_embedding, task, other, Encoding.I8, b"\x01" * DIM)
    assert (err.error_name, err.error_args) == ("ModelMismatch", {"expected": mid, "got": other})
    err = _revert(sentiment.publish_embedding, task, mid, Encoding.I8, b"\x01" * DIM)
    assert err.error_args == {"expected": bytes(32), "got": mid}


def test_unknown_agent(chain) -> None:
    owner = chain.contracts(0)
    task = open_task(owner)
    stranger = chain.contracts(11)
    err = _revert(stranger.publish_decision, task, Action.HOLD, 1)
    assert (err.error_name, err.error_args) == ("UnknownAgent", {"agent": stranger.client.address})


def test_already_finalized_and_claims(chain) -> None:
    owner, market, sentiment, _ = setup_agents(chain)
    task = open_task(owner, quorum=1)
    market.publish_decision(task, Action.BUY, 100)
    owner.finalize(task)
    assert _revert(owner.finalize, task).error_args == {"taskId": task}
    assert _revert(sentiment.publish_decision, task, Action.BUY, 1).error_name == "AlreadyFinalized"
    err = _revert(sentiment.claim_reward, task)
    assert (err.error_name, err.error_args) == ("NotContributor", {"taskId": task, "agent": sentiment.client.address})
    market.claim_reward(task)
    assert _revert(market.claim_reward, task).error_name == "AlreadyClaimed"


def test_registry_errors_with_args(chain) -> None:
    c = chain.contracts(5)
    mid = model_id("dup")
    c.register_model(mid, 4, Encoding.F32, "dup")
    assert _revert(c.register_model, mid, 4, Encoding.F32, "dup").error_args == {"modelId": mid}
    assert _revert(c.register_model, bytes(32), 4, Encoding.F32, "zero").error_name == "ZeroModelId"
    err = _revert(c.register_agent, Role.MARKET, Modality.SERIES, "http://x", mid, 4, stake=1)
    assert (err.error_name, err.error_args) == ("InsufficientStake", {"sent": 1, "required": c.min_stake()})
    err = _revert(c.register_agent, Role.MARKET, Modality.SERIES, "http://x", mid, 5)
    assert (err.error_name, err.error_args) == ("DimMismatch", {"expected": 4, "got": 5})
    assert _revert(c.register_agent, 9, Modality.SERIES, "http://x").error_name == "InvalidRole"


def test_task_errors_with_args(chain) -> None:
    owner, market, _, _ = setup_agents(chain)
    now = owner.client.block_timestamp()
    err = _revert(owner.submit_task, b"p", 2, now - 1, 1)
    assert err.error_name == "DeadlineInPast" and err.error_args["deadline"] == now - 1
    assert _revert(owner.submit_task, b"", 2, now + 60, 1).error_name == "EmptyPayload"
    task = open_task(owner, quorum=2)
    market.publish_decision(task, Action.BUY, 1)
    err = _revert(owner.finalize, task)
    assert (err.error_name, err.error_args) == ("QuorumNotReached", {"taskId": task, "decisions": 1, "quorum": 2})
    assert _revert(market.set_weight, 0, 0, 1).error_name == "Unauthorized"
    assert _revert(owner.finalize, 999).error_args == {"taskId": 999}  # UnknownTask


def test_revert_in_eth_call_is_decoded(chain) -> None:
    err = _revert(chain.contracts(0).weight, 16, 0)
    assert (err.error_name, err.error_args) == ("InvalidArchitecture", {})


def test_mined_failure_is_replayed_and_decoded(chain) -> None:
    owner, market, _, _ = setup_agents(chain)
    task = open_task(owner)
    market.publish_decision(task, Action.BUY, 100)
    # An explicit gas limit skips estimation, so the failing transaction is mined (status 0).
    sent = market.send("TaskBoard", "publishDecision", task, Action.BUY, 100, gas=200_000)
    err = _revert(market.result, sent)
    assert err.error_name == "DuplicateDecision"
    assert err.tx_hash == sent.tx_hash
    receipt = market.client.get_receipt(sent.tx_hash)
    assert receipt is not None and receipt.status == 0


def test_out_of_gas_is_named(chain) -> None:
    owner, market, _, _ = setup_agents(chain)
    task = open_task(owner)
    sent = market.send("TaskBoard", "publishDecision", task, Action.BUY, 100, gas=30_000)
    assert _revert(market.result, sent).error_name == "OutOfGas"
