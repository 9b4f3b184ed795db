"""Signed reports, node side, without a chain: the aggregator rule (and the registry it is read
from), `POST /tasks/{id}/reports` (every refusal with its status and named error), what the store
keeps across a restart, and when the aggregator submits its one report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from nodefakes import FakeNodeChain

from node.chain.events import AgentDeregistered, AgentRegistered, ChainEvent, EndpointUpdated, StakeWithdrawn
from node.chain.nodechain import BlockHeader
from node.chain.settings import dev_account
from node.protocol.reports import SignedDecision, pack_head, sign_decision, unpack_reported
from node.runtime.api import create_app
from node.runtime.metrics import NodeMetrics
from node.runtime.outbox import Outbox
from node.runtime.reports import AgentDirectory, DirectoryEntry, ReportDesk, choose_aggregator, replay
from node.runtime.sendlog import SendKind
from node.runtime.store import Store, StoredEvent

CHAIN_ID = 31337
BOARD = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
MODEL = bytes.fromhex("ab" * 32)
SUBMIT_BLOCK = 10
SUBMIT_TIME = 1_700_000_000 + SUBMIT_BLOCK
MARKET, SENTIMENT, RISK, STRANGER = (dev_account(i) for i in (1, 2, 3, 9))


def registered(account: Any, block: int = 2, model: bytes = MODEL, role: int = 0) -> AgentRegistered:
    return AgentRegistered(account.address, role, 1, f"http://127.0.0.1:{9000 + block}", model, 8, 10**16,
                           block_number=block)


# -- the aggregator rule ------------------------------------------------------------------------------


def entry(address: str, active: bool = True, endpoint: str = "http://x") -> DirectoryEntry:
    return DirectoryEntry(address, 0, endpoint, MODEL, active)


def test_the_aggregator_is_sorted_by_address_and_taken_mod_n() -> None:
    addresses = ["0x" + "c" * 40, "0x0" + "1" * 39, "0x" + "A" * 40]
    agents = {a.lower(): entry(a) for a in addresses}
    order = sorted(addresses, key=lambda a: int(a, 16))
    assert [choose_aggregator(t, agents).address for t in range(1, 7)] == [order[1], order[2], order[0]] * 2
    # The same answer whatever order the agents were read in, and inactive agents left out.
    assert choose_aggregator(4, dict(reversed(list(agents.items())))).address == order[1]
    agents[order[1].lower()] = entry(order[1], active=False)
    assert [choose_aggregator(t, agents).address for t in (1, 2)] == [order[2], order[0]]
    assert choose_aggregator(1, {}) is None


def test_the_directory_replays_the_registry_as_of_a_block() -> None:
    events: list[ChainEvent] = [
        registered(MARKET, 2), registered(SENTIMENT, 3),
        EndpointUpdated(MARKET.address, "http://127.0.0.1:1", block_number=5),
        AgentDeregistered(SENTIMENT.address, 99, block_number=6),
        StakeWithdrawn(SENTIMENT.address, 10**16, block_number=8),
    ]

    @dataclass
    class Source:
        reads: list[tuple[int, int]] = field(default_factory=list)

        def registry_events(self, start: int, end: int) -> list[ChainEvent]:
            self.reads.append((start, end))
            return [e for e in events if start <= e.block_number <= end]

    source = Source()
    directory = AgentDirectory(source, start_block=1, max_range=3)
    assert directory.agents_at(1) is None  # not read yet
    directory.catch_up(7)
    assert source.reads == [(1, 3), (4, 6), (7, 7)]
    assert set(directory.agents_at(3)) == {MARKET.address.lower(), SENTIMENT.address.lower()}
    assert directory.agents_at(4)[MARKET.address.lower()].endpoint == "http://127.0.0.1:9002"
    assert directory.agents_at(5)[MARKET.address.lower()].endpoint == "http://127.0.0.1:1"
    assert directory.agents_at(6)[SENTIMENT.address.lower()].active is False
    assert directory.agents_at(8) is None
    directory.catch_up(9)
    assert SENTIMENT.address.lower() not in directory.agents_at(9) and directory.latest(SENTIMENT.address) is None
    directory.rollback(4)  # a reorg: blocks above 4 are read again
    assert directory.scanned == 4 and directory.latest(SENTIMENT.address).active is True
    assert replay(events, 2) == {MARKET.address.lower(): directory.agents_at(2)[MARKET.address.lower()]}


# -- the route ---------------------------------------------------------------------------------------------


@dataclass
class DeskChain(FakeNodeChain):
    """FakeNodeChain plus what the report desk reads: registry events and block headers."""

    registry: list[ChainEvent] = field(default_factory=list)
    head_time: int = SUBMIT_TIME

    def registry_events(self, from_block: int, to_block: int) -> list[ChainEvent]:
        return [e for e in self.registry if from_block <= e.block_number <= to_block]

    def header(self, block: int | str = "latest") -> BlockHeader | None:
        number = 12 if block == "latest" else int(block)
        return BlockHeader(number, f"0x{number:064x}", 1_700_000_000 + number)

    def sign_decision(self, task_id: int, action: int, confidence: int, model_id: bytes) -> SignedDecision:
        return sign_decision(self.account.key, chain_id=CHAIN_ID, board=BOARD, task_id=task_id, action=action,
                             confidence=confidence, model_id=model_id)


def task_event(task_id: int, quorum: int = 3, block: int = SUBMIT_BLOCK) -> StoredEvent:
    return StoredEvent("TaskSubmitted", block, task_id, tx_hash=f"0xs{task_id}", task_id=task_id, submitter=STRANGER.address,
                       arch=2, deadline=SUBMIT_TIME + 900, quorum=quorum, reward=0, payload_hash="0x" + "11" * 32,
                       uri="", payload=b"{}")


@dataclass
class Desk:
    chain: DeskChain
    store: Store
    desk: ReportDesk
    me: Any

    def task_for(self, aggregator: str, *, start: int = 1) -> int:
        """The first task id >= start whose aggregator is `aggregator`."""
        agents = self.desk.directory.agents_at(SUBMIT_BLOCK)
        return next(t for t in range(start, start + 10) if choose_aggregator(t, agents).address == aggregator)


def make_desk(tmp_path: Path, *, enabled: bool = True, name: str = "desk") -> Desk:
    chain = DeskChain(board=BOARD, account=MARKET)
    chain.registry = [registered(MARKET, 2), registered(SENTIMENT, 3), registered(RISK, 4, model=bytes(32), role=2)]
    store = Store(tmp_path / f"{name}.sqlite")
    store.apply_batch(12, {12: "0x12"}, [task_event(t) for t in range(1, 7)])
    desk = ReportDesk(enabled=enabled, chain=chain, store=store, outbox=Outbox(chain, store), address=MARKET.address,
                      chain_id=CHAIN_ID, board=BOARD, model_id=MODEL, start_block=1, fallback_s=20,
                      deadline_margin_s=5)
    desk.directory.catch_up(12)
    return Desk(chain, store, desk, MARKET)


@dataclass
class DeskView:
    store: Store
    desk: ReportDesk
    metrics: NodeMetrics = field(default_factory=lambda: NodeMetrics("market"))

    def info(self) -> dict[str, Any]:
        raise NotImplementedError

    def health(self) -> dict[str, Any]:
        raise NotImplementedError

    def accept_report(self, task_id: int, decision: SignedDecision) -> dict[str, Any]:
        return self.desk.accept(task_id, decision)

    def held_reports(self, task_id: int) -> dict[str, Any]:
        return self.desk.held(task_id)


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return make_desk(tmp_path)


@pytest.fixture
def client(desk: Desk) -> TestClient:
    return TestClient(create_app(DeskView(desk.store, desk.desk)))


def signed(account: Any, task_id: int, action: int = 2, confidence: int = 7000, model: bytes = MODEL) -> SignedDecision:
    return sign_decision(account.key, chain_id=CHAIN_ID, board=BOARD, task_id=task_id, action=action,
                         confidence=confidence, model_id=model)


def body(d: SignedDecision, **changes: Any) -> dict[str, Any]:
    out = {"agent": d.agent, "action": d.action, "confidence": d.confidence, "model_id": "0x" + d.model_id.hex(),
           "v": d.v, "r": "0x" + d.r.hex(), "s": "0x" + d.s.hex()}
    out.update(changes)
    return out


def post(client: TestClient, task_id: int, payload: Any) -> tuple[int, dict[str, Any]]:
    r = client.post(f"/tasks/{task_id}/reports", json=payload)
    return r.status_code, r.json()


def test_a_signed_decision_is_held_once_and_survives_a_restart(desk: Desk, client: TestClient, tmp_path: Path) -> None:
    task = desk.task_for(MARKET.address)
    status, answer = post(client, task, body(signed(SENTIMENT, task)))
    assert status == 202 and answer == {"task_id": task, "agent": SENTIMENT.address, "held": 1, "quorum": 3}
    status, answer = post(client, task, body(signed(SENTIMENT, task, action=0)))  # a second decision of its own
    assert (status, answer["error"]) == (409, "DuplicateDecision")
    status, answer = post(client, task, body(signed(RISK, task, model=bytes(32)), agent=RISK.address.lower()))
    assert status == 202 and answer["held"] == 2 and answer["agent"] == RISK.address  # any case, checksummed
    desk.store.close()
    again = Store(tmp_path / "desk.sqlite")
    held = again.held_reports(task)
    assert [h.decision for h in held] == [signed(SENTIMENT, task), signed(RISK, task, model=bytes(32))]
    assert not any(h.own for h in held)


@pytest.mark.parametrize(("payload", "where"), [
    ({"action": "buy"}, "body.action"),
    ({"confidence": "7000"}, "body.confidence"),  # strict: no numbers in strings
    ({"confidence": 10_001}, "body.confidence"),
    ({"v": 27.5}, "body.v"),
    ({"agent": "0x1234"}, "body.agent"),
    ({"model_id": "ab" * 32}, "body.model_id"),
    ({"r": None}, "body.r"),
    ({"signature": "0x" + "00" * 65}, "body.signature"),  # unknown fields are refused, not ignored
])
def test_malformed_bodies_are_422(desk: Desk, client: TestClient, payload: dict, where: str) -> None:
    task = desk.task_for(MARKET.address)
    status, answer = post(client, task, body(signed(SENTIMENT, task), **payload))
    assert status == 422 and answer["error"] == "invalid_request" and where in answer["message"]


def test_bad_json_and_bad_ids_are_422(client: TestClient) -> None:
    r = client.post("/tasks/1/reports", content=b'{"agent": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    r = client.post("/tasks/1/reports", json=[1, 2])
    assert r.status_code == 422
    assert client.post("/tasks/0/reports", json={}).status_code == 422
    assert client.post(f"/tasks/{2**63}/reports", json={}).status_code == 422


def test_forged_and_malleable_signatures_are_400_with_their_names(desk: Desk, client: TestClient) -> None:
    task = desk.task_for(MARKET.address)
    good = signed(SENTIMENT, task)
    status, answer = post(client, task, body(good, action=0))  # rewritten after signing
    assert (status, answer["error"]) == (400, "SignerMismatch") and SENTIMENT.address in answer["message"]
    status, answer = post(client, task + 1, body(good))  # signed for another task
    assert status in (400, 404) and answer["error"] in ("SignerMismatch", "NotAggregator")
    status, answer = post(client, task, body(good, v=29))
    assert (status, answer["error"]) == (400, "BadSignature")
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    twin_s = (order - int.from_bytes(good.s, "big")).to_bytes(32, "big")
    status, answer = post(client, task, body(good, s="0x" + twin_s.hex(), v=55 - good.v))
    assert (status, answer["error"]) == (400, "BadSignature")
    status, answer = post(client, task, body(good, r="0x" + "00" * 32))
    assert (status, answer["error"]) == (400, "BadSignature")
    assert desk.store.held_reports(task) == []


def test_unknown_agents_tasks_and_the_wrong_aggregator_are_refused(desk: Desk, client: TestClient) -> None:
    task = desk.task_for(MARKET.address)
    status, answer = post(client, task, body(signed(STRANGER, task)))
    assert (status, answer["error"]) == (400, "UnknownAgent")
    status, answer = post(client, task, body(signed(SENTIMENT, task, model=bytes(32))))
    assert (status, answer["error"]) == (400, "ModelMismatch")
    status, answer = post(client, 99, body(signed(SENTIMENT, 99)))
    assert (status, answer["error"]) == (404, "not_found")
    other = desk.task_for(RISK.address)
    status, answer = post(client, other, body(signed(SENTIMENT, other)))
    assert (status, answer["error"]) == (400, "NotAggregator") and RISK.address in answer["message"]


def test_decisions_on_chain_and_closed_tasks_are_409(desk: Desk, client: TestClient) -> None:
    task = desk.task_for(MARKET.address)
    desk.store.apply_batch(13, {13: "0x13"}, [StoredEvent("DecisionPublished", 13, 0, task_id=task,
                                                          agent=SENTIMENT.address, role=1, action=2, confidence=1)])
    status, answer = post(client, task, body(signed(SENTIMENT, task)))
    assert (status, answer["error"]) == (409, "DuplicateDecision")
    desk.store.apply_batch(14, {14: "0x14"}, [StoredEvent("TaskFinalized", 14, 0, task_id=task, action=2, decisions=3,
                                                          contributors=3, tallies=(0, 0, 1))])
    status, answer = post(client, task, body(signed(RISK, task, model=bytes(32))))
    assert (status, answer["error"]) == (409, "AlreadyFinalized")


def test_a_node_with_transport_tx_takes_no_reports(tmp_path: Path) -> None:
    off = make_desk(tmp_path, enabled=False)
    client = TestClient(create_app(DeskView(off.store, off.desk)))
    task = off.task_for(MARKET.address)
    status, answer = post(client, task, body(signed(SENTIMENT, task)))
    assert (status, answer["error"]) == (404, "reports_disabled")


# -- the aggregator's one report ----------------------------------------------------------------------------


def head(seconds_after_submission: int) -> BlockHeader:
    return BlockHeader(12, "0x12", SUBMIT_TIME + seconds_after_submission)


def test_the_aggregator_sends_one_report_at_quorum(desk: Desk) -> None:
    task = desk.task_for(MARKET.address)
    own = desk.desk.hand_in(desk.store.get_task(task), 2, 9000)
    assert own.own and own.post_status == "held" and own.sent_to is None
    desk.desk.accept(task, signed(SENTIMENT, task))
    assert desk.desk.aggregate(head(1)) is False  # 2 of quorum 3
    desk.desk.accept(task, signed(RISK, task, model=bytes(32)))
    assert desk.desk.aggregate(head(2)) is True
    reports = desk.store.sends(task_id=task, kind=SendKind.REPORT)
    assert len(reports) == 1 and reports[0].status == "sent"
    desk.desk.outbox.poll()
    assert desk.store.sends(task_id=task, kind=SendKind.REPORT)[0].status == "mined"
    assert desk.desk.aggregate(head(3)) is False  # never a second one
    assert desk.store.sends(task_id=task, kind=SendKind.DECISION) == []


def test_below_quorum_the_aggregator_sends_what_it_holds_after_half_the_fallback(desk: Desk) -> None:
    task = desk.task_for(MARKET.address)
    desk.desk.accept(task, signed(SENTIMENT, task))
    assert desk.desk.aggregate(head(9)) is False
    assert desk.desk.aggregate(head(10)) is True  # fallback_s 20: half of it
    assert len(desk.store.sends(task_id=task, kind=SendKind.REPORT)) == 1


def test_an_agent_posts_to_the_aggregator_and_falls_back_by_chain_time(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("node.runtime.reports.POST_RETRY_S", 0.0)
    posted: list[tuple[str, dict]] = []
    d = make_desk(tmp_path)
    d.desk._post = lambda url, payload: (posted.append((url, payload)), (0, None))[1]  # nobody answers
    task = d.task_for(SENTIMENT.address)
    record = d.store.get_task(task)
    own = d.desk.hand_in(record, 1, 5000)
    assert own.post_status == "queued" and own.sent_to == "http://127.0.0.1:9003"
    d.desk._pool.shutdown(wait=True)
    assert posted[0][0] == f"http://127.0.0.1:9003/tasks/{task}/reports" and posted[0][1]["agent"] == MARKET.address
    own = d.store.own_report(task)
    assert own.post_status == "unreachable"
    assert d.desk.fallback_due(record, own, head(19)) is None
    assert "chain time" in d.desk.fallback_due(record, own, head(20))
    d.store.set_report_post(task, MARKET.address, "refused: NotAggregator")  # a refusal: at once
    assert "NotAggregator" in d.desk.fallback_due(record, d.store.own_report(task), head(0))


def test_report_args_put_the_signers_in_ascending_address_order() -> None:
    """submitReport takes its signers in ascending address order (UnsortedSigners otherwise), whatever
    order the aggregator received the decisions in."""
    from node.protocol.reports import report_args

    signed = [sign_decision(a.key, chain_id=CHAIN_ID, board=BOARD, task_id=7, action=i % 3, confidence=100 + i,
                            model_id=bytes(32)) for i, a in enumerate((RISK, MARKET, SENTIMENT, STRANGER))]
    agents = [row[0] >> 96 for row in report_args(signed)]
    assert agents == sorted(agents) and len(set(agents)) == 4
    assert {row[0] & 0xFFFF for row in report_args(reversed(signed))} == {100, 101, 102, 103}


def test_a_signed_decision_packs_into_the_head_the_contract_reads() -> None:
    """`head = agent << 96 | v << 24 | action << 16 | confidence`, bits 32..95 zero; r and s follow;
    the model id does not travel (the contract reads the registered one)."""
    d = sign_decision(MARKET.key, chain_id=CHAIN_ID, board=BOARD, task_id=9, action=2, confidence=10_000,
                      model_id=MODEL)
    head, r, s = d.as_tuple()
    assert (head >> 96, (head >> 24) & 0xFF, (head >> 16) & 0xFF, head & 0xFFFF) == (int(MARKET.address, 16), d.v, 2,
                                                                                    10_000)
    assert (head >> 32) & ((1 << 64) - 1) == 0 and (r, s) == (d.r, d.s)
    with pytest.raises(ValueError, match="out of the head"):
        pack_head(MARKET.address, 27, 2, 70_000)


@settings(max_examples=200, deadline=None)
@given(task=st.integers(1, 2**64 - 1), agent=st.integers(0, 2**160 - 1), role=st.integers(0, 255),
       action=st.integers(0, 255), confidence=st.integers(0, 0xFFFF))
def test_a_reported_decision_word_unpacks_to_its_fields(task: int, agent: int, role: int, action: int,
                                                       confidence: int) -> None:
    """`DecisionReported`'s word, `taskId << 192 | agent << 32 | role << 24 | action << 16 | confidence`."""
    word = (task << 192) | (agent << 32) | (role << 24) | (action << 16) | confidence
    t, a, r, act, c = unpack_reported(word)
    assert (t, int(a, 16), r, act, c) == (task, agent, role, action, confidence)
    assert a == to_checksum_address(a)


# -- a fusion agent's peers under reports -----------------------------------------------------------------


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_the_route_lists_the_decisions_the_aggregator_holds(desk: Desk, client: TestClient) -> None:
    task = desk.task_for(MARKET.address)
    assert client.get(f"/tasks/{task}/reports").json() == {"task_id": task, "decisions": []}
    assert client.post(f"/tasks/{task}/reports", json=body(signed(SENTIMENT, task))).status_code == 202
    answer = client.get(f"/tasks/{task}/reports")
    assert answer.status_code == 200
    assert answer.json()["decisions"] == [body(signed(SENTIMENT, task))]
    assert client.get("/tasks/99/reports").json()["error"] == "not_found"
    off = TestClient(create_app(DeskView(desk.store, make_desk(Path(desk.store.path).parent, enabled=False, name="off").desk)))
    assert (off.get(f"/tasks/{task}/reports").status_code, off.get(f"/tasks/{task}/reports").json()["error"]) == (
        404, "reports_disabled")


def test_a_fusion_agent_reads_its_peers_from_the_aggregator_and_keeps_only_what_checks_out(tmp_path: Path) -> None:
    """Read on a worker from the aggregator's GET route, each decision checked as the aggregator's door
    checks it: a forged signature, an unregistered signer, a model id other than the registered one
    and the reader's own decision are left out."""
    d = make_desk(tmp_path)
    task = d.task_for(SENTIMENT.address)
    good = signed(RISK, task, action=0, confidence=6100, model=bytes(32))
    forged = SignedDecision(**{**signed(STRANGER, task).__dict__, "agent": SENTIMENT.address})
    stranger = signed(STRANGER, task)
    wrong_model = signed(RISK, task, model=MODEL)
    own = signed(MARKET, task)
    asked: list[str] = []

    def get(url: str) -> tuple[int, Any]:
        asked.append(url)
        items = [body(x) for x in (forged, stranger, wrong_model, own, good)] + [{"agent": "junk"}]
        return 200, {"task_id": task, "decisions": items}

    d.desk._get = get
    record = d.store.get_task(task)
    wait_for(lambda: bool(d.desk.peer_decisions(record)))  # read on a worker, the loop never waits
    [(decision, found)] = d.desk.peer_decisions(record)
    assert (decision, found.role, found.address) == (good, 2, RISK.address)
    assert asked[0] == f"http://127.0.0.1:9003/tasks/{task}/reports"
    # Once it handed in its own decision, what it read is dropped.
    d.desk.hand_in(record, 2, 7000)
    assert d.desk._peer_held.get(task) is None


def test_a_fusion_agent_that_aggregates_reads_its_own_store(desk: Desk) -> None:
    task = desk.task_for(MARKET.address)
    assert desk.desk.accept(task, signed(RISK, task, model=bytes(32)))["held"] == 1
    desk.desk._get = lambda url: pytest.fail("no HTTP read when the node aggregates the task")
    [(decision, found)] = desk.desk.peer_decisions(desk.store.get_task(task))
    assert decision.agent == RISK.address and found.role == 2


def test_reading_an_aggregator_stops_at_the_size_limit() -> None:
    """A hostile endpoint cannot make a fusion agent read an answer of any size."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from node.runtime.reports import http_get

    class Huge(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = b'{"decisions": [' + b'"x",' * 100_000 + b'"x"]}' if self.path == "/big" else json.dumps(
                {"task_id": 1, "decisions": []}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Huge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert http_get(base + "/big") == (200, None)
        assert http_get(base + "/small") == (200, {"task_id": 1, "decisions": []})
        assert http_get("http://127.0.0.1:1/nothing") == (0, None)
    finally:
        server.shutdown()
