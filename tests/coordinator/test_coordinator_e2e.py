"""End to end: a real Anvil, the four agent nodes and one coordinator as real processes
(`chorus coordinator run`, started by `node.devnet.cluster` like the others). Three U tasks (arch 6) each
finalize with the coordinator's decision; the agents take none of them; the coordinator's record
and its live /decide agree on the embedding commitment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from testkit import wait_until

from node.protocol import payload as pl
from node.chain.artifacts import load_artifact
from node.chain.client import Web3Client
from node.chain.contracts import ChorusContracts, revert_decoder
from node.chain.deploy import Deployment
from node.chain.events import DecisionPublished, TaskFinalized, TaskSubmitted
from node.protocol.enums import Role
from node.devnet.cluster import NodeProc, free_base_port, start_nodes, stop_nodes
from node.devnet.anvil import devnet_down, devnet_up, free_port
from node.chain.settings import dev_account

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROLES = ["market", "sentiment", "risk", "fusion", "coordinator"]
U = 6


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChorusContracts, Deployment, list[NodeProc]]]:
    directory = tmp_path_factory.mktemp("coordinator-devnet")
    devnet_up(port=free_port(), state=directory)
    file = directory / "devnet.json"
    try:
        nodes = start_nodes(file, ROLES, base_port=free_base_port(len(ROLES), start=18800), timeout=180,
                            die_with_parent=True)
        deployment = Deployment.load(file)
        artifacts = {n: load_artifact(n) for n in ("ModelRegistry", "AgentRegistry", "TaskBoard")}
        client = Web3Client(deployment.rpc_url, dev_account(0), decoder=revert_decoder(artifacts))
        yield ChorusContracts.from_deployment(client, deployment, artifacts), deployment, nodes
    finally:
        stop_nodes(file)
        devnet_down(state=directory)


def _wait(condition: Any, timeout: float, what: str, nodes: list[NodeProc]) -> None:
    def tails() -> str:
        return "\n".join(f"--- {n.role}\n{Path(n.log).read_text()[-1500:]}" for n in nodes)

    wait_until(condition, timeout, what, interval=0.2, detail=tails)


def test_u_tasks_finalize_with_the_coordinators_decision(devnet: Any) -> None:
    board, deployment, nodes = devnet
    coordinator = next(n for n in nodes if n.role == "coordinator")
    info = httpx.get(f"{coordinator.url}/info").json()
    assert info["role"] == "coordinator" and info["model_name"] == "u"

    payloads = [pl.encode(pl.example_payload(40 + i, asset=("ETH", "BTC", "SOL")[i])) for i in range(3)]
    deadline = board.client.block_timestamp() + 900
    task_ids = [board.submit_task(raw, U, deadline, 1).event(TaskSubmitted).task_id for raw in payloads]
    _wait(lambda: all(board.task_info(t).status == 2 for t in task_ids), 60, "finalization", nodes)

    events = board.events(deployment.deploy_block, "latest")
    for task_id, raw in zip(task_ids, payloads, strict=True):
        decisions = [e for e in events if isinstance(e, DecisionPublished) and e.task_id == task_id]
        (final,) = [e for e in events if isinstance(e, TaskFinalized) and e.task_id == task_id]
        assert [(d.agent, d.role) for d in decisions] == [(coordinator.address, Role.COORDINATOR)]
        assert final.action == decisions[0].action  # weight 10000 for the coordinator, 0 for the others
        # The live service answers the same payload with the same decision and commitment.
        live = httpx.post(f"{coordinator.url}/decide", content=raw, timeout=10).json()
        assert ("sell", "hold", "buy").index(live["action"]) == decisions[0].action
        assert live["confidence"] == decisions[0].confidence and live["model_id"] == info["model_id"]
        _wait(lambda t=task_id: httpx.get(f"{coordinator.url}/tasks/{t}").json()["chain_status"] == "finalized",
              15, f"coordinator sees task {task_id} finalized", nodes)
        record = httpx.get(f"{coordinator.url}/tasks/{task_id}").json()
        assert record["node_status"] == "published"
        assert record["output"]["embedding_commitment"] == live["embedding_commitment"] is not None
        for node in nodes:
            if node is not coordinator:  # the agents skipped it: no gas spent where their weight is 0
                body = httpx.get(f"{node.url}/tasks/{task_id}").json()
                assert body["node_status"] == "skipped" and body["transactions"] == []

    vectors = httpx.post(f"{coordinator.url}/embed", json={"texts": ["ETH up", "BTC down"]}).json()
    assert len(vectors["embeddings"]) == 2 and vectors["model"] == "minilm-f32"
