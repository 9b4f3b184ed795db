"""Deployment: the three contracts wired together, the record round-trips."""

from __future__ import annotations

from pathlib import Path

from node.chain.deploy import DEFAULT_COOLDOWN, DEFAULT_MIN_STAKE, Deployment, deploy


def test_session_deployment_is_wired(chain) -> None:
    dep = chain.deployment
    assert dep.chain_id == 31337
    assert set(dep.contracts) == {"ModelRegistry", "AgentRegistry", "TaskBoard"}
    assert dep.deployer == chain.client(0).address
    assert dep.deploy_block >= 1
    c = chain.contracts(0)
    assert c.model_registry_address() == dep.contracts["ModelRegistry"]
    assert c.registry_address() == dep.contracts["AgentRegistry"]
    assert c.owner() == dep.deployer
    assert (c.min_stake(), c.cooldown()) == (DEFAULT_MIN_STAKE, DEFAULT_COOLDOWN)
    for address in dep.contracts.values():
        assert chain.client(0).w3.eth.get_code(address)


def test_deploy_with_other_key_and_parameters(chain) -> None:
    client = chain.client(7)
    dep = deploy(client, rpc_url=chain.rpc_url, min_stake=5, cooldown=60, owner=chain.client(8).address,
                 artifacts=chain.artifacts)
    assert dep.deployer == client.address
    c = chain.contracts(0).__class__.from_deployment(client, dep, chain.artifacts)
    assert (c.min_stake(), c.cooldown(), c.owner()) == (5, 60, chain.client(8).address)
    assert dep.contracts["TaskBoard"] != chain.deployment.contracts["TaskBoard"]


def test_deployment_record_round_trips(chain, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    chain.deployment.save(path)
    assert Deployment.load(path) == chain.deployment
