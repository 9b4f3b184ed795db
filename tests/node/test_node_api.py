"""The HTTP API: each route's success, not-found and bad-input answers, over a store filled
directly (no chain)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from node.runtime.api import create_app, status_for
from node.protocol.errors import ChainError, ChorusError, ConfigError, ContractRevert, PayloadError, RpcUnavailable
from node.runtime.metrics import NodeMetrics
from node.runtime.sendlog import SendState
from node.protocol.enums import Action
from node.runtime.store import ChainState, Store, StoredEvent, TaskRecord, TaskState

ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@dataclass
class FakeView:
    store: Store
    metrics: NodeMetrics = field(default_factory=lambda: NodeMetrics("market"))
    healthy: bool = True
    fail_with: Exception | None = None

    def info(self) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        return dict(address=ADDRESS, role="market", endpoint="http://127.0.0.1:8701", model_id="0x" + "00" * 32,
                    model_name="", decider="momentum-rule", model_backend="numpy", embedding_dim=0, embedding_encoding="f32",
                    chain_id=31337, contracts={"TaskBoard": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"},
                    last_processed_block=self.store.cursor(), confirmations=0, version="chorus-node/1")

    def health(self) -> dict[str, Any]:
        return dict(status="ok" if self.healthy else "degraded", chain_reachable=self.healthy, registered=True,
                    head_block=12, last_processed_block=self.store.cursor(),
                    rpc_down_since=None if self.healthy else 1.0,
                    last_error=None if self.healthy else "RpcUnavailable: connection refused", uptime_s=3.5)


@pytest.fixture
def view(tmp_path: Path) -> FakeView:
    store = Store(tmp_path / "api.sqlite")
    store.apply_batch(12, {12: "0x12"}, [
        StoredEvent("TaskSubmitted", 10, 0, tx_hash="0xsub", task_id=1, submitter=ADDRESS, arch=5, deadline=2_000_000_000,
                   quorum=2, reward=5, payload_hash="0x" + "ab" * 32, uri="http://127.0.0.1:9/p.json?token=SECRET",
                   payload=b""),
        StoredEvent("EmbeddingPublished", 11, 0, tx_hash="0xemb", task_id=1, agent=ADDRESS, model_id="0x" + "cd" * 32,
                   encoding=0, vector=b"\x00" * 1536),
        StoredEvent("DecisionPublished", 11, 1, tx_hash="0xdec", task_id=1, agent=ADDRESS, role=0, action=2,
                   confidence=8100),
        StoredEvent("DecisionPublished", 12, 0, tx_hash="0xdec2", task_id=1, agent="0xOther", role=1, action=0,
                   confidence=6000),
        StoredEvent("TaskFinalized", 12, 1, tx_hash="0xfin", task_id=1, action=2, decisions=2, contributors=2,
                    tallies=(3000, 0, 4050)),
    ])
    send = store.record_send(task_id=1, kind="decision", nonce=3, tx_hash="0xdec", raw=b"\x02")
    store.mark_send(send, SendState.MINED, block_number=11, gas_used=61_000, effective_gas_price=10**9)
    store.update_task(1, status=TaskState.PUBLISHED, action=2, confidence=8100, seen_at=100.0, published_at=100.25,
                      finalized_at=100.5)
    for i in range(2, 8):
        store.put_task(TaskRecord(id=i, status=TaskState.REJECTED if i == 3 else TaskState.NEW, chain_status="open", arch=2,
                                  error="invalid payload: asset: Field required" if i == 3 else None))
    return FakeView(store)


@pytest.fixture
def client(view: FakeView) -> TestClient:
    return TestClient(create_app(view))


# -- /health ------------------------------------------------------------------------------------------


def test_health_ok(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["chain_reachable"] is True and r.json()["last_processed_block"] == 12


def test_health_degraded_is_503_with_a_reason(client: TestClient, view: FakeView) -> None:
    view.healthy = False
    r = client.get("/health")
    assert r.status_code == 503 and r.json()["status"] == "degraded"
    assert "connection refused" in r.json()["last_error"]


def test_health_rejects_unknown_methods(client: TestClient) -> None:
    r = client.post("/health")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


# -- /info --------------------------------------------------------------------------------------------


def test_info(client: TestClient) -> None:
    body = client.get("/info").json()
    assert body["address"] == ADDRESS and body["role"] == "market" and body["chain_id"] == 31337
    assert body["last_processed_block"] == 12 and "TaskBoard" in body["contracts"]


def test_info_maps_chorus_errors_once(client: TestClient, view: FakeView) -> None:
    view.fail_with = RpcUnavailable("RPC unreachable")
    r = client.get("/info")
    assert r.status_code == 503 and r.json() == {"error": "RpcUnavailable", "message": "RPC unreachable"}


def test_info_bad_input_is_ignored_query(client: TestClient) -> None:
    assert client.get("/info?unexpected=1").status_code == 200


@pytest.mark.parametrize(("exc", "status"), [
    (PayloadError("x"), 422), (RpcUnavailable("x"), 503), (ContractRevert("AlreadyFinalized", {}), 409),
    (ChainError("x"), 502), (ConfigError("x"), 500), (ChorusError("x"), 500),
])
def test_error_statuses(exc: ChorusError, status: int) -> None:
    assert status_for(exc) == status


# -- /tasks -------------------------------------------------------------------------------------------


def test_tasks_are_paged_newest_first(client: TestClient) -> None:
    body = client.get("/tasks", params={"limit": 3}).json()
    assert body["total"] == 7 and [t["id"] for t in body["items"]] == [7, 6, 5]
    body = client.get("/tasks", params={"limit": 3, "offset": 6}).json()
    assert [t["id"] for t in body["items"]] == [1]
    assert body["items"][0]["final_action"] == "buy"


def test_tasks_filter_by_node_status(client: TestClient) -> None:
    body = client.get("/tasks", params={"node_status": "rejected"}).json()
    assert body["total"] == 1 and body["items"][0]["id"] == 3 and "asset" in body["items"][0]["error"]
    assert body["items"][0]["node_status"] == "rejected" and body["items"][0]["chain_status"] == "open"


def test_the_old_status_filter_is_refused_not_ignored(client: TestClient) -> None:
    r = client.get("/tasks", params={"status": "rejected"})  # ignored, it would answer all 7 tasks
    assert r.status_code == 422 and "node_status" in r.json()["message"]


def test_tasks_beyond_the_end_is_an_empty_page(client: TestClient) -> None:
    body = client.get("/tasks", params={"offset": 100}).json()
    assert body["items"] == [] and body["total"] == 7


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"},
                                    {"node_status": "bogus"}, {"node_status": "finalized"}])
def test_tasks_bad_parameters_are_422(client: TestClient, params: dict) -> None:
    r = client.get("/tasks", params=params)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert "bogus" not in r.json()["message"] and "ten" not in r.json()["message"]  # input is not echoed


# -- /tasks/{id} ----------------------------------------------------------------------------------------


def test_task_detail(client: TestClient) -> None:
    body = client.get("/tasks/1").json()
    assert body["node_status"] == "published" and body["chain_status"] == "finalized" and "status" not in body
    assert body["output"] == {"action": "buy", "confidence": 8100, "embedding_bytes": None, "note": None,
                              "embedding_commitment": None}
    assert body["finalized"]["action"] == "buy" and body["finalized"]["tx_hash"] == "0xfin"
    assert body["finalized"]["tallies"] == {"sell": 3000, "hold": 0, "buy": 4050}  # the contract's, as it emitted them
    kinds = [(p["kind"], p["agent"]) for p in body["publications"]]
    assert kinds == [("embedding", ADDRESS), ("decision", ADDRESS), ("decision", "0xOther")]
    assert body["publications"][0]["vector_bytes"] == 1536
    assert body["publications"][2]["role"] == "sentiment" and body["publications"][2]["action"] == "sell"
    assert body["transactions"] == [{"kind": "decision", "nonce": 3, "status": "mined", "tx_hash": "0xdec",
                                     "attempts": ["0xdec"], "block_number": 11, "gas_used": 61_000,
                                     "effective_gas_price": 10**9, "error": None}]
    assert body["gas_used"] == 61_000
    assert body["timings"]["publish_latency_s"] == 0.25 and body["timings"]["finalize_latency_s"] == 0.5
    assert body["payload_uri"] == "http://127.0.0.1:9/p.json"  # the query (a token) is not shown


def test_task_detail_counts_the_decisions_on_chain_per_action(client: TestClient, view: FakeView) -> None:
    stored = [e for e in view.store.task_events(1) if e.name == "DecisionPublished"]
    body = client.get("/tasks/1").json()
    assert body["decisions_on_chain"] == len(stored) == body["finalized"]["decisions"] == body["quorum"]
    assert set(body["decision_counts"]) == set(Action.labels())
    assert body["decision_counts"] == {a.label: sum(e.action == a for e in stored) for a in Action}
    # Another task: its decisions are counted apart, an embedding is no decision, and a reorg that
    # drops a block drops its decisions from the count.
    view.store.apply_batch(15, {15: "0x15"}, [
        StoredEvent("TaskSubmitted", 13, 0, tx_hash="0xs8", task_id=8, submitter=ADDRESS, arch=2, deadline=2_000_000_000,
                    quorum=3, reward=0, payload_hash="0x" + "ee" * 32, payload=b"{}"),
        StoredEvent("DecisionPublished", 14, 0, tx_hash="0xa", task_id=8, agent="0xA", role=0, action=Action.HOLD,
                    confidence=5000),
        StoredEvent("EmbeddingPublished", 14, 1, tx_hash="0xb", task_id=8, agent="0xB", model_id="0x" + "cd" * 32,
                    encoding=0, vector=b"\x00" * 64),
        StoredEvent("DecisionPublished", 14, 2, tx_hash="0xc", task_id=8, agent="0xB", role=1, action=Action.HOLD,
                    confidence=7000),
        StoredEvent("DecisionPublished", 15, 0, tx_hash="0xd", task_id=8, agent="0xC", role=2, action=Action.SELL,
                    confidence=9000),
    ])
    eight = client.get("/tasks/8").json()
    assert (eight["node_status"], eight["chain_status"], eight["finalized"]) == ("new", "open", None)
    assert eight["decision_counts"] == {"sell": 1, "hold": 2, "buy": 0} and eight["decisions_on_chain"] == 3
    assert client.get("/tasks/1").json()["decision_counts"] == body["decision_counts"]  # task 1 untouched
    view.store.rollback(14)
    eight = client.get("/tasks/8").json()
    assert eight["decision_counts"] == {"sell": 0, "hold": 2, "buy": 0} and eight["decisions_on_chain"] == 2


def test_a_task_without_decisions_counts_zero(client: TestClient) -> None:
    body = client.get("/tasks/3").json()
    assert body["decisions_on_chain"] == 0 and body["decision_counts"] == dict.fromkeys(Action.labels(), 0)


def test_the_openapi_document_lists_both_status_vocabularies(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for model in ("TaskSummary", "TaskDetail"):
        props = schemas[model]["properties"]
        assert "status" not in props
        assert props["node_status"]["enum"] == [s.value for s in TaskState]
        assert props["chain_status"]["enum"] == [s.value for s in ChainState]
        for field, states in (("node_status", TaskState), ("chain_status", ChainState)):
            described = props[field]["description"]
            assert all(f"{s.value}:" in described for s in states) and "Final:" in described
    assert list(schemas["DecisionCounts"]["properties"]) == list(Action.labels())
    params = client.get("/openapi.json").json()["paths"]["/tasks"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["offset", "limit", "node_status"]


def test_docs_define_every_status_value_and_which_are_final() -> None:
    from node.runtime.api import CHAIN_STATUS_FINAL, NODE_STATUS_FINAL

    text = (Path(__file__).resolve().parents[2] / "docs" / "node.md").read_text()
    section = text.split("## Task status", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")[-2].strip()
            for line in section.splitlines() if line.startswith("| `")}
    for states, final in ((TaskState, NODE_STATUS_FINAL), (ChainState, CHAIN_STATUS_FINAL)):
        for state in states:
            assert state.value in rows, f"docs/node.md's Task status section does not define {state.value}"
            assert (rows[state.value] == "yes") == (state in final), state.value


def test_task_rejected_shows_why(client: TestClient) -> None:
    body = client.get("/tasks/3").json()
    assert body["node_status"] == "rejected" and "Field required" in body["error"]


def test_task_not_found(client: TestClient) -> None:
    r = client.get("/tasks/999")
    assert r.status_code == 404 and r.json() == {"error": "not_found", "message": "task 999 is unknown to this node"}


@pytest.mark.parametrize("task_id", ["abc", "0", "-4", "1.5"])
def test_task_bad_id_is_422(client: TestClient, task_id: str) -> None:
    r = client.get(f"/tasks/{task_id}")
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


# -- /metrics and the docs -------------------------------------------------------------------------------


def test_metrics_are_prometheus_text(client: TestClient, view: FakeView) -> None:
    view.metrics.tasks_seen.inc(3)
    view.metrics.publish_latency.observe(0.3)
    view.metrics.gas_used.labels(kind="decision").inc(61_000)
    view.metrics.rpc_errors.labels(operation="poll").inc()
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for line in ("chorus_tasks_seen_total 3.0", 'chorus_gas_used_total{kind="decision"} 61000.0',
                 'chorus_rpc_errors_total{operation="poll"} 1.0', "chorus_publish_latency_seconds_count 1.0",
                 "chorus_tasks_processed_total 0.0", 'chorus_node_info{role="market"} 1.0'):
        assert line in text


def test_metrics_bad_method(client: TestClient) -> None:
    assert client.delete("/metrics").status_code == 405


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/health", "/info", "/tasks", "/tasks/{task_id}", "/metrics"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_no_secret_in_any_response(client: TestClient, view: FakeView) -> None:
    for path in ("/health", "/info", "/tasks", "/tasks/1", "/metrics", "/openapi.json"):
        assert "SECRET" not in client.get(path).text


# -- hardening: bounded ids, JSON on every status, bounded bodies -------------------------------------


@pytest.mark.parametrize("url, where", [
    ("/tasks?offset=1488748988028643966976", "query.offset"),
    (f"/tasks?offset={2**63}", "query.offset"),
    ("/tasks/124845108490817863680", "path.task_id"),
    (f"/tasks/{2**63}", "path.task_id"),
])
def test_ids_beyond_sqlite_integers_are_422_not_500(client: TestClient, url: str, where: str) -> None:
    r = client.get(url)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "invalid_request" and where in r.json()["message"]


def test_the_largest_id_and_offset_are_served(client: TestClient) -> None:
    assert client.get(f"/tasks/{2**63 - 1}").status_code == 404
    assert client.get("/tasks", params={"offset": 2**63 - 1}).json()["items"] == []


def test_an_unexpected_error_is_a_json_500_without_details(view: FakeView) -> None:
    view.fail_with = RuntimeError("cannot open /root/.ssh/id_rsa")  # not a ChorusError
    r = TestClient(create_app(view), raise_server_exceptions=False).get("/info")
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "internal_error", "message": "internal server error"}


@pytest.mark.parametrize("method", ["TRACE", "POST", "DELETE"])
def test_method_not_allowed_says_which_are(client: TestClient, method: str) -> None:
    r = client.request(method, "/tasks")
    assert r.status_code == 405 and r.headers["allow"] == "GET" and r.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("headers", [{}, {"transfer-encoding": "chunked"}])
def test_a_body_over_the_limit_is_a_json_413(client: TestClient, headers: dict) -> None:
    from node.runtime.api import MAX_BODY_BYTES

    body = b" " * (MAX_BODY_BYTES + 1)
    content = iter([body]) if headers else body  # an iterator goes out chunked, without Content-Length
    r = client.request("GET", "/health", content=content)
    assert r.status_code == 413 and r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "content_too_large"


def test_a_deeply_nested_body_is_refused_before_parsing(client: TestClient) -> None:
    r = client.request("GET", "/tasks", content=b"[" * 20_000 + b"]" * 20_000)
    assert r.status_code == 422 and "nests deeper" in r.json()["message"]


def test_the_openapi_document_declares_every_error_status(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, ops in paths.items():
        for op in ops.values():
            assert {"413", "422", "500"} <= set(op["responses"]), path
    assert "404" in paths["/tasks/{task_id}"]["get"]["responses"]
    assert paths["/tasks/{task_id}"]["get"]["parameters"][0]["schema"]["maximum"] == 2**63 - 1


def test_building_the_app_restores_the_recursion_limit(view: FakeView) -> None:
    import sys

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # as py_ecc leaves it when web3 imports it
    try:
        create_app(view)
        assert sys.getrecursionlimit() == 1000
    finally:
        sys.setrecursionlimit(before)
