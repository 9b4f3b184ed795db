"""End to end: a real Anvil (the devnet), four real node processes, tasks from Python, from `cast`
and from the `chorus` CLI; one node SIGKILLed mid-run and restarted.

What must hold: every task finalized with every agent's decision, and no publication sent twice —
counted on chain (events per task and agent) and in each node's own send log (GET /tasks/{id}).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from testkit import wait_until

from node.protocol import payload as pl
from node.chain.artifacts import load_artifact
from node.chain.client import Web3Client
from node.chain.contracts import ChorusContracts, revert_decoder
from node.chain.deploy import Deployment
from node.chain.events import DecisionPublished, EmbeddingPublished, TaskSubmitted
from node.devnet.cluster import NodeProc, default_roles, free_base_port, nodes_status, restart_node, start_nodes, stop_nodes
from node.devnet.accounts import submitter
from node.devnet.anvil import devnet_down, devnet_up, free_port
from node.chain.settings import dev_account, find_project_root

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

N_TASKS = 20
QUORUM = 4


@dataclass
class Devnet:
    directory: Path
    file: Path
    deployment: Deployment
    board: ChorusContracts
    nodes: list[NodeProc]

    def node(self, role: str) -> NodeProc:
        return next(n for n in self.nodes if n.role == role)

    def wait_finalized(self, task_ids: list[int], timeout: float) -> None:
        def still_open() -> list[int]:
            return [t for t in task_ids if self.board.task_info(t).status != 2]

        def tails() -> str:
            logs = "\n".join(f"--- {n.role}\n{Path(n.log).read_text()[-1500:]}" for n in self.nodes)
            return f"still open: {still_open()}\n{logs}"

        wait_until(lambda: not still_open(), timeout, f"tasks {task_ids} finalized", interval=0.2, detail=tails)

    def view(self, node: NodeProc, task_id: int) -> dict:
        """What `node` itself records about `task_id` (GET /tasks/{id})."""
        return httpx.get(f"{node.url}/tasks/{task_id}").json()

    def events(self, kind: type) -> list:
        return [e for e in self.board.events(self.deployment.deploy_block, "latest") if isinstance(e, kind)]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    directory = tmp_path_factory.mktemp("devnet")
    devnet_up(port=free_port(), state=directory)
    file = directory / "devnet.json"
    try:
        nodes = start_nodes(file, default_roles(4), base_port=free_base_port(4, start=18700), timeout=180,
                            die_with_parent=True)
        deployment = Deployment.load(file)
        artifacts = {n: load_artifact(n) for n in ("ModelRegistry", "AgentRegistry", "TaskBoard")}
        client = Web3Client(deployment.rpc_url, dev_account(0), decoder=revert_decoder(artifacts))
        yield Devnet(directory, file, deployment, ChorusContracts.from_deployment(client, deployment, artifacts), nodes)
    finally:
        stop_nodes(file)
        devnet_down(state=directory)


def submit(devnet: Devnet, seed: int, arch: int) -> int:
    raw = pl.encode(pl.example_payload(seed, asset=("ETH", "BTC", "SOL")[seed % 3]))
    deadline = devnet.board.client.block_timestamp() + 900
    return devnet.board.submit_task(raw, arch, deadline, QUORUM).event(TaskSubmitted).task_id


def seen(node: NodeProc) -> int:
    try:
        return httpx.get(f"{node.url}/tasks", params={"limit": 1}, timeout=1).json()["total"]
    except httpx.HTTPError:
        return 0


def test_twenty_tasks_all_finalized_despite_a_sigkill_and_nothing_sent_twice(devnet: Devnet) -> None:
    t0 = time.monotonic()
    archs = [5 if i % 2 else 2 for i in range(N_TASKS)]  # E-d (embeddings too) and M-fixed
    task_ids = [submit(devnet, i, archs[i]) for i in range(8)]

    victim = devnet.node("market")
    # Kill it mid-run: the tasks are stored, their publications under way.
    wait_until(lambda: seen(victim) > 0, 60, "the market node to store a task", interval=0.005)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait_exit(10)
    task_ids += [submit(devnet, i, archs[i]) for i in range(8, 12)]  # submitted while it is down
    restarted = restart_node(devnet.file, victim, die_with_parent=True, timeout=90)
    devnet.nodes[devnet.nodes.index(victim)] = restarted
    task_ids += [submit(devnet, i, archs[i]) for i in range(12, N_TASKS)]

    devnet.wait_finalized(task_ids, timeout=150)
    elapsed = time.monotonic() - t0

    agents = {n.address for n in devnet.nodes}
    decisions = Counter((e.task_id, e.agent) for e in devnet.events(DecisionPublished) if e.task_id in task_ids)
    embeddings = Counter((e.task_id, e.agent) for e in devnet.events(EmbeddingPublished) if e.task_id in task_ids)
    for task_id in task_ids:
        assert {a for (t, a) in decisions if t == task_id} == agents, f"task {task_id} lacks an agent's decision"
        assert devnet.board.task_info(task_id).decisions == QUORUM
    assert set(decisions.values()) == {1}, "a decision was published twice"
    assert set(embeddings.values()) <= {1}, "an embedding was published twice"
    sentiment = devnet.node("sentiment").address
    for task_id, arch in zip(task_ids, archs, strict=True):
        assert ((task_id, sentiment) in embeddings) == (arch == 5)  # MiniLM vectors only where E-d asks

    # Each node's own send log: one decision transaction per task (a rebroadcast reuses its record).
    for node in devnet.nodes:
        failed = httpx.get(f"{node.url}/tasks", params={"node_status": "failed"}).json()
        assert failed["total"] == 0, failed
        for task_id in task_ids:
            body = httpx.get(f"{node.url}/tasks/{task_id}").json()
            sends = Counter(t["kind"] for t in body["transactions"])
            assert sends["decision"] == 1 and sends["embedding"] <= 1, (node.role, task_id, body["transactions"])
            assert {t["status"] for t in body["transactions"] if t["kind"] != "finalize"} == {"mined"}
            assert body["chain_status"] == "finalized"
    assert httpx.get(f"{restarted.url}/health").json()["status"] == "ok"
    print(f"\n{N_TASKS} tasks, one SIGKILL + restart: all finalized in {elapsed:.1f}s")


def test_a_task_sent_with_cast_is_processed(devnet: Devnet) -> None:
    abi = load_artifact("TaskBoard").abi
    item = next(i for i in abi if i.get("type") == "function" and i["name"] == "submitTask")
    from eth_utils import abi_to_signature

    signature = abi_to_signature(item)  # from forge's artifact, e.g. submitTask(bytes,uint8,uint64,uint16)
    raw = pl.encode(pl.example_payload(123))
    deadline = devnet.board.client.block_timestamp() + 900
    cast = find_project_root() / "node_modules" / ".bin" / "cast"
    subprocess.run(
        [str(cast), "send", "--rpc-url", devnet.deployment.rpc_url, "--private-key", "0x" + submitter().key.hex(),
         devnet.deployment.address("TaskBoard"), signature, "0x" + raw.hex(), "2", str(deadline), str(QUORUM)],
        check=True, capture_output=True, timeout=60)
    task_id = devnet.board.task_count()
    assert devnet.board.task_info(task_id).payload_hash == pl.payload_hash(raw)
    devnet.wait_finalized([task_id], timeout=60)
    node = devnet.node("fusion")
    wait_until(lambda: devnet.view(node, task_id).get("chain_status") == "finalized", 30,
               f"the fusion node to see task {task_id} finalized", interval=0.2,
               detail=lambda: str(devnet.view(node, task_id)))
    body = devnet.view(node, task_id)
    assert body["node_status"] == "published" and body["finalized"]["decisions"] == QUORUM
    assert body["decisions_on_chain"] == QUORUM == sum(body["decision_counts"].values())
    assert len([p for p in body["publications"] if p["kind"] == "decision"]) == QUORUM


def test_the_cli_submits_and_shows_every_nodes_view(devnet: Devnet) -> None:
    cli = [sys.executable, "-m", "node.cli"]
    out = subprocess.run([*cli, "task", "submit", "--example", "--seed", "77", "--deployment", str(devnet.file),
                          "--json"], check=True, capture_output=True, text=True, timeout=60)
    submitted = json.loads(out.stdout)
    assert submitted["by"] == "calldata" and submitted["quorum"] == len(devnet.nodes)
    devnet.wait_finalized([submitted["task_id"]], timeout=60)
    for node in devnet.nodes:  # each node's own record catches up with the chain: its receipt, the finalization
        wait_until(lambda n=node: (v := devnet.view(n, submitted["task_id"])).get("node_status") == "published"
                   and v.get("chain_status") == "finalized", 30, f"the {node.role} node to record the finalization",
                   interval=0.1)
    shown = subprocess.run([*cli, "task", "show", str(submitted["task_id"]), "--deployment", str(devnet.file),
                            "--json"], check=True, capture_output=True, text=True, timeout=60)
    report = json.loads(shown.stdout)
    assert report["chain"]["status"] == "finalized" and len(report["chain"]["publications"]) >= QUORUM
    assert [n["http"] for n in report["nodes"]] == [200] * len(devnet.nodes)
    assert all(n["node_status"] == "published" for n in report["nodes"])
    statuses = nodes_status(devnet.file)
    assert len(statuses) == len(devnet.nodes) and all(s.running and s.healthy for s in statuses)


def test_large_payloads_go_by_uri_and_bad_ones_are_rejected_visibly(devnet: Devnet, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "node.cli", "task", "submit"]
    big = pl.example_payload(9, points=1500)
    big_file = tmp_path / "big.json"
    big_file.write_bytes(pl.encode(big))
    assert big_file.stat().st_size > pl.INLINE_MAX_BYTES
    out = subprocess.run([*cli, str(big_file), "--deployment", str(devnet.file), "--json"], check=True,
                         capture_output=True, text=True, timeout=60)
    big_task = json.loads(out.stdout)
    assert big_task["by"] == "uri" and big_task["uri"].startswith("file://")
    devnet.wait_finalized([big_task["task_id"]], timeout=60)

    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps({"schema": "chorus.task/1", "asset": "ETH", "prices": [1.0, -3.0],
                                    "volumes": [1.0, 1.0]}))
    refused = subprocess.run([*cli, str(bad_file), "--deployment", str(devnet.file)], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1 and "invalid payload" in refused.stderr  # refused locally first
    out = subprocess.run([*cli, str(bad_file), "--no-validate", "--deployment", str(devnet.file), "--json"],
                         check=True, capture_output=True, text=True, timeout=60)
    bad_id = json.loads(out.stdout)["task_id"]
    node = devnet.node("market")
    wait_until(lambda: devnet.view(node, bad_id).get("node_status") == "rejected", 30,
               f"the market node to reject task {bad_id}", interval=0.1, detail=lambda: str(devnet.view(node, bad_id)))
    body = devnet.view(node, bad_id)
    assert "prices.1" in body["error"] and body["transactions"] == []
    assert httpx.get(f"{node.url}/health").json()["status"] == "ok"  # and the node carries on


def test_sigterm_finishes_and_exits_cleanly(devnet: Devnet) -> None:
    from node.runtime.store import Store

    node = devnet.node("risk")
    task_id = submit(devnet, 500, 2)  # work in hand when the signal arrives
    time.sleep(0.05)  # part of the scenario: the node may or may not have the task yet; both must end cleanly
    assert node.stop(timeout=20), "the node did not exit on SIGTERM"
    log = Path(node.log).read_text()
    assert "SIGTERM received" in log and log.rstrip().endswith("node stopped")
    state = Store(node.db)
    assert state.open_sends() == []  # nothing left half-sent
    task = state.get_task(task_id)
    assert task is None or task.status in ("new", "published", "publishing")
    state.close()
