"""Transport "report" in-process against the session's Anvil: three modality nodes hand their signed
decisions to the task's aggregator (posted through its real API app), which finalizes the task in
one submitReport; with the aggregator gone, the others publish their own after the fallback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from test_node_runtime import make_node, submit

from node.chain.events import DecisionPublished, ReportSubmitted, TaskFinalized
from node.runtime.api import create_app
from node.runtime.node import NodeRuntime
from node.runtime.reports import choose_aggregator
from node.runtime.sendlog import SendKind
from node.runtime.store import ChainState, TaskState

ROLES = ("market", "sentiment", "risk")
FALLBACK_S = 30


def report_nodes(chain, tmp_path: Path) -> list[NodeRuntime]:
    nodes = [make_node(chain, role, tmp_path, transport="report", report_fallback_s=FALLBACK_S) for role in ROLES]
    apps = {n.settings.endpoint_url: TestClient(create_app(n)) for n in nodes}
    down: set[str] = set()

    def post(url: str, body: dict[str, Any]) -> tuple[int, str | None]:
        base = next(u for u in apps if url.startswith(u))
        if base in down:
            return 0, None  # nobody listens
        r = apps[base].post(url[len(base):], json=body)
        return r.status_code, r.json().get("error") if r.status_code >= 400 else None

    for node in nodes:
        node.reports._post = post
        node.down = down  # type: ignore[attr-defined]
    return nodes


def drain_posts(nodes: list[NodeRuntime]) -> None:
    for node in nodes:
        if node.reports._pool is not None:
            node.reports._pool.shutdown(wait=True)
            node.reports._pool = None


def step_all(nodes: list[NodeRuntime], done, timeout: float = 30.0) -> None:
    """Step every node until `done()` (posts run on the nodes' worker threads meanwhile)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "condition not reached"
        for node in nodes:
            node.step()
        time.sleep(0.02)


def tx_hashes(chain, task_id: int) -> set[str]:
    events = chain.contracts(0).events(chain.deployment.deploy_block, "latest")
    return {e.tx_hash for e in events if getattr(e, "task_id", None) == task_id}


def aggregator(chain, nodes: list[NodeRuntime], task_id: int) -> NodeRuntime:
    head = chain.client(0).block_number()
    nodes[0].reports.directory.catch_up(head)
    agents = nodes[0].reports.directory.agents_at(head)
    address = choose_aggregator(task_id, agents).address
    return next(n for n in nodes if n.address == address)


def test_three_signed_decisions_finalize_in_one_report(chain, tmp_path: Path) -> None:
    nodes = report_nodes(chain, tmp_path)
    board = chain.contracts(0)
    task_id = submit(chain, quorum=3, arch=2)
    step_all(nodes, lambda: board.task_info(task_id).status == 2)
    events = [e for e in board.events(chain.deployment.deploy_block, "latest") if getattr(e, "task_id", None) == task_id]
    report = next(e for e in events if isinstance(e, ReportSubmitted))
    agg = aggregator(chain, nodes, task_id)
    assert report.aggregator == agg.address and report.count == 3
    decisions = [e for e in events if isinstance(e, DecisionPublished)]
    assert {d.agent for d in decisions} == {n.address for n in nodes} and {d.tx_hash for d in decisions} == {report.tx_hash}
    assert next(e for e in events if isinstance(e, TaskFinalized)).tx_hash == report.tx_hash
    assert len(tx_hashes(chain, task_id)) == 2  # the submission and the report
    step_all(nodes, lambda: all(n.store.get_task(task_id).status == TaskState.PUBLISHED for n in nodes))
    for node in nodes:
        kinds = [s.kind for s in node.store.sends(task_id=task_id)]
        assert kinds == ([SendKind.REPORT] if node is agg else []), (node.settings.role, kinds)
        assert node.store.get_task(task_id).chain_status == ChainState.FINALIZED


def test_with_the_aggregator_down_the_agents_publish_after_the_fallback(chain, tmp_path: Path) -> None:
    nodes = report_nodes(chain, tmp_path)
    board = chain.contracts(0)
    task_id = submit(chain, quorum=2, arch=2)
    dead = aggregator(chain, nodes, task_id)
    dead.down.add(dead.settings.endpoint_url)  # type: ignore[attr-defined]
    alive = [n for n in nodes if n is not dead]
    step_all(alive, lambda: all(n.store.own_report(task_id) is not None for n in alive))
    drain_posts(alive)
    assert {n.store.own_report(task_id).post_status for n in alive} == {"unreachable"}
    for _ in range(5):
        for node in alive:
            node.step()
    assert board.task_info(task_id).decisions == 0  # chain time stands still: still waiting
    chain.increase_time(FALLBACK_S)
    step_all(alive, lambda: board.task_info(task_id).status == 2)
    events = [e for e in board.events(chain.deployment.deploy_block, "latest") if getattr(e, "task_id", None) == task_id]
    assert not any(isinstance(e, ReportSubmitted) for e in events)
    decisions = [e for e in events if isinstance(e, DecisionPublished)]
    assert {d.agent for d in decisions} == {n.address for n in alive} and len({d.tx_hash for d in decisions}) == 2
    for node in alive:
        assert [s.kind for s in node.store.sends(task_id=task_id) if s.kind != SendKind.FINALIZE] == [SendKind.DECISION]
