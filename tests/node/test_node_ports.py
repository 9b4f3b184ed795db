"""The chain seam: `NodeChain` and the unit tests' fake both satisfy the runtime's `ChainPort`, and
the runtime starts up (registration, recovery) over the fake alone."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account
from nodefakes import FakeChain, FakeNodeChain, ScriptedSource

from agents.factory import build_agent
from node.chain.client import Web3Client
from node.chain.contracts import ChorusContracts
from node.chain.deploy import Deployment
from node.chain.nodechain import NodeChain
from node.runtime.node import NodeRuntime
from node.runtime.outbox import SendPort
from node.runtime.ports import ChainPort
from node.runtime.settings import NodeSettings
from node.runtime.store import Store
from node.runtime.watcher import EventSource


def test_the_node_chain_and_the_fake_satisfy_the_runtimes_port() -> None:
    client = Web3Client("http://127.0.0.1:1", Account.create())  # nothing is asked of the RPC here
    assert isinstance(NodeChain(client, ChorusContracts(client, {}, {})), ChainPort)
    assert isinstance(FakeNodeChain(), ChainPort)
    assert not isinstance(FakeChain(), ChainPort)  # the send path alone is not enough
    assert not isinstance(ScriptedSource(), ChainPort)
    assert {SendPort, EventSource} <= set(ChainPort.__mro__)  # composed of the outbox's and the watcher's


def runtime(chain: FakeNodeChain, path: Path, endpoint: str = "http://127.0.0.1:9302") -> NodeRuntime:
    settings = NodeSettings(role="market", port=9302, chain_id=31337, rpc_url="http://127.0.0.1:1",
                            endpoint=endpoint)
    deployment = Deployment(chain_id=31337, rpc_url=settings.rpc_url, contracts={"TaskBoard": chain.board},
                            deploy_block=1)
    return NodeRuntime(settings, chain, Store(path), build_agent("market", use_trained=False), deployment=deployment)


def test_bootstrap_over_the_fake_registers_once(tmp_path: Path) -> None:
    chain = FakeNodeChain()
    chain.source.add_block()
    node = runtime(chain, tmp_path / "n.sqlite")
    node.bootstrap()
    assert chain.contracts.calls == ["register_agent"] and node.health()["registered"] is True
    node.store.close()

    again = runtime(chain, tmp_path / "n.sqlite")  # a restart: already registered, same endpoint
    again.bootstrap()
    assert chain.contracts.calls == ["register_agent"]
    again.store.close()

    moved = runtime(chain, tmp_path / "n.sqlite", endpoint="http://127.0.0.1:9303")
    moved.bootstrap()
    assert chain.contracts.calls == ["register_agent", "update_endpoint"]
