"""Every facade function, happy path, against the session Anvil."""

from __future__ import annotations

import hashlib

from node.chain.events import (
    AgentDeregistered,
    AgentRegistered,
    DecisionPublished,
    EmbeddingPublished,
    EndpointUpdated,
    ModelRegistered,
    OwnershipTransferred,
    RewardClaimed,
    StakeWithdrawn,
    TaskFinalized,
    TaskReclaimed,
    TaskSubmitted,
    WeightSet,
)
from node.protocol.enums import Action, Arch, Encoding, Modality, Role, TaskStatus, ZERO_MODEL_ID

from chainhelpers import DIM, model_id, open_task, setup_agents


def test_register_model_and_views(chain) -> None:
    c = chain.contracts(3)
    mid = model_id("views")
    event = c.register_model(mid, 384, Encoding.F16, "minilm").event(ModelRegistered)
    assert (event.model_id, event.dim, event.dtype, event.name, event.registrant) == (
        mid, 384, Encoding.F16, "minilm", c.client.address)
    assert c.is_model_registered(mid)
    info = c.model(mid)
    assert (info.dim, info.dtype, info.registrant) == (384, Encoding.F16, c.client.address)
    assert not c.is_model_registered(model_id("other"))
    assert c.model(model_id("other")).dim == 0


def test_register_agent_views_and_stake(chain) -> None:
    owner, market, sentiment, mid = setup_agents(chain)
    assert market.agent_info() .active and market.agent_info().model_id == mid
    record = market.agent()
    assert (record.stake, record.role, record.modality, record.dim, record.active, record.model_id) == (
        owner.min_stake(), Role.MARKET, Modality.SERIES, DIM, True, mid)
    assert sentiment.agent_info().model_id == ZERO_MODEL_ID
    assert sentiment.agent_role() == (True, Role.SENTIMENT)
    assert owner.total_staked() == 2 * owner.min_stake()


def test_register_agent_event_with_extra_stake(chain) -> None:
    c = chain.contracts(4)
    stake = c.min_stake() * 3
    event = c.register_agent(Role.RISK, Modality.FLOWS, "http://x", stake=stake).event(AgentRegistered)
    assert (event.agent, event.role, event.modality, event.endpoint, event.stake) == (
        c.client.address, Role.RISK, Modality.FLOWS, "http://x", stake)


def test_update_endpoint_deregister_withdraw(chain) -> None:
    _, market, _, _ = setup_agents(chain)
    assert market.update_endpoint("http://new").event(EndpointUpdated).endpoint == "http://new"
    unlock_at = market.deregister().event(AgentDeregistered).unlock_at
    assert not market.agent_info().active
    assert market.agent().unlock_at == unlock_at
    chain.increase_time(market.cooldown() + 1)
    before = market.client.balance()
    result = market.withdraw()
    assert result.event(StakeWithdrawn).amount == market.min_stake()
    assert market.client.balance() > before
    assert market.agent().stake == 0


def test_task_lifecycle_with_reward(chain) -> None:
    owner, market, sentiment, mid = setup_agents(chain)
    reward = 10**15 + 1  # odd: the remainder goes to the caller of finalize
    deadline = owner.client.block_timestamp() + 600
    submitted = owner.submit_task(b"payload", Arch.M_FIXED, deadline, 2, reward).event(TaskSubmitted)
    assert submitted.payload_hash == hashlib.sha256(b"payload").digest()
    assert (submitted.payload, submitted.uri, submitted.reward, submitted.quorum) == (b"payload", "", reward, 2)
    task = submitted.task_id
    assert owner.task_count() == task
    assert owner.escrowed() == reward

    vector = bytes(range(1, 4 * DIM + 1))
    emb = market.publish_embedding(task, mid, Encoding.F32, vector).event(EmbeddingPublished)
    assert (emb.task_id, emb.agent, emb.model_id, emb.encoding, emb.vector) == (
        task, market.client.address, mid, Encoding.F32, vector)
    market.publish_decision(task, Action.BUY, 8000)
    dec = sentiment.publish_decision(task, Action.SELL, 5000).event(DecisionPublished)
    assert (dec.role, dec.action, dec.confidence) == (Role.SENTIMENT, Action.SELL, 5000)

    assert market.published(task) == market.published(task, market.client.address)
    assert market.published(task).embedding and market.published(task).decision
    tallies = owner.tallies(task)
    assert (tallies.sell, tallies.hold, tallies.buy) == (3000 * 5000, 0, 5000 * 8000)
    info = owner.task_info(task)
    assert (info.status, info.decisions, info.contributors, info.quorum, info.reward) == (
        TaskStatus.OPEN, 2, 2, 2, reward)
    submitter, task_deadline, arch, status, quorum = owner.task(task)
    assert (submitter, task_deadline, arch, status, quorum) == (owner.client.address, deadline, Arch.M_FIXED,
                                                               TaskStatus.OPEN, 2)

    final = owner.finalize(task).event(TaskFinalized)
    assert (final.action, final.decisions, final.contributors, final.buy_tally) == (Action.BUY, 2, 2, 40_000_000)
    assert owner.task_info(task).status == TaskStatus.FINALIZED
    share = reward // 2
    assert market.claim_reward(task).event(RewardClaimed).amount == share
    assert sentiment.claim_reward(task).event(RewardClaimed).amount == share
    assert market.published(task).claimed
    assert owner.escrowed() == 0


def test_submit_task_uri(chain) -> None:
    c = chain.contracts(0)
    digest = hashlib.sha256(b"remote").digest()
    deadline = c.client.block_timestamp() + 60
    event = c.submit_task_uri(digest, "http://127.0.0.1/p", Arch.U, deadline, 1).event(TaskSubmitted)
    assert (event.uri, event.payload, event.payload_hash, event.arch) == ("http://127.0.0.1/p", b"", digest, Arch.U)
    assert c.task_info(event.task_id).payload_hash == digest


def test_reclaim_after_deadline(chain) -> None:
    c = chain.contracts(0)
    task = open_task(c, reward=12345, ttl=30)
    chain.increase_time(31)
    assert c.reclaim(task).event(TaskReclaimed).amount == 12345
    assert c.task_info(task).status == TaskStatus.RECLAIMED


def test_weights_and_ownership(chain) -> None:
    c = chain.contracts(0)
    assert [c.weight(Arch.M_FIXED, r) for r in Role] == [5000, 3000, 2000, 0, 0]
    assert c.weight(Arch.U, Role.COORDINATOR) == 10_000
    assert c.set_weight(Arch.M_FIXED, Role.RISK, 2500).event(WeightSet).weight == 2500
    assert c.weight(Arch.M_FIXED, Role.RISK) == 2500
    new_owner = chain.client(9).address
    assert c.transfer_ownership(new_owner).event(OwnershipTransferred).new_owner == new_owner
    assert c.owner() == new_owner


def test_events_query_over_blocks(chain) -> None:
    owner, market, _, mid = setup_agents(chain)
    start = owner.client.block_number()
    task = open_task(owner)
    market.publish_embedding(task, mid, Encoding.BINARY, b"\x01")
    found = owner.events(from_block=start + 1)
    assert [type(e).__name__ for e in found] == ["TaskSubmitted", "EmbeddingPublished"]
    only = owner.events(from_block=chain.deployment.deploy_block, names=["ModelRegistered"])
    assert all(isinstance(e, ModelRegistered) for e in only) and only
