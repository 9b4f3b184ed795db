"""Signed reports (the `transport = "report"` setting): a modality agent signs its decision (EIP-712,
`node.protocol.reports`) and posts it to the task's aggregator instead of sending `publishDecision`;
the aggregator publishes the signed decisions it holds in one `TaskBoard.submitReport`, which
finalizes the task in the same transaction once they reach its quorum.

- The aggregator of task T is chosen by every node from chain state alone (`choose_aggregator`):
  the agents registered and active in AgentRegistry as of T's submission block (every registered
  agent has a non-empty endpoint), sorted by address (as a number), index `T mod n`. The
  `AgentDirectory` rebuilds that set from AgentRegistry's events, on the loop thread, up to the
  block the watcher has stored.
- The aggregator (`ReportDesk.accept`, the API thread) takes a signed decision only for a task it
  knows, holds open and aggregates, once the signature recovers to the claimed agent and that agent
  is registered and active with the claimed model id; it writes it to the store (`reports` table),
  so a restart keeps it. On the loop thread (`ReportDesk.aggregate`) it sends ONE `submitReport`
  through the outbox (send kind `report`) once the decisions it holds and those already on chain
  reach the quorum, or with whatever it holds once half of `report_fallback_s` has passed.
- Peers off chain: an agent that fuses its peers' decisions (the fusion agent of M-rules and
  M-learned) reads them, under reports, from the task's aggregator (`GET /tasks/{id}/reports`, or
  its own store when it aggregates the task) and keeps only those `accept` would take (signature,
  registered active agent, model id); it then signs its own decision and hands it in like any agent,
  so the aggregator's one report carries every decision (`ReportDesk.peer_decisions`).
- Fallback: an agent whose decision is not on chain `report_fallback_s` seconds of chain time (block
  timestamps) after the task's submission block publishes it itself with `publishDecision`
  (`NodeRuntime`), at once if the aggregator refused it; a duplicate is refused by the contract and
  taken as done. Posting runs on worker threads, never on the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from eth_utils import to_checksum_address

from node.chain.events import AgentDeregistered, AgentRegistered, ChainEvent, EndpointUpdated, StakeWithdrawn
from node.chain.nodechain import BlockHeader
from node.protocol.errors import ChainError, ContractRevert, safe_url
from node.protocol.reports import SignedDecision, recover_signer, report_args
from node.runtime.outbox import Outbox, Settled
from node.runtime.sendlog import SendKind, SendState
from node.runtime.store import ChainState, HeldReport, Store, TaskRecord

log = logging.getLogger(__name__)

POST_TIMEOUT_S = 2.0
POST_TRIES = 6
POST_RETRY_S = 0.5
PEERS_REFRESH_S = 0.25
"""Seconds between two reads of an aggregator's held decisions for one task a fusion agent waits on."""
_REPORT_OVER = {"AlreadyFinalized", "PastDeadline", "UnknownTask"}  # no report for this task any more


@dataclass(frozen=True)
class DirectoryEntry:
    """One agent as AgentRegistry's events describe it."""

    address: str
    role: int
    endpoint: str
    model_id: bytes
    active: bool


def choose_aggregator(task_id: int, agents: Mapping[str, DirectoryEntry]) -> DirectoryEntry | None:
    """The aggregator of task `task_id`: among the active agents with an endpoint, sorted by
    address (as a number), the one at index `task_id mod n`; None when there is none."""
    candidates = sorted((a for a in agents.values() if a.active and a.endpoint), key=lambda a: int(a.address, 16))
    return candidates[task_id % len(candidates)] if candidates else None


def replay(events: list[ChainEvent], up_to_block: int | None = None) -> dict[str, DirectoryEntry]:
    """The registry's agents (lower-case address -> entry) after `events`, up to `up_to_block` included."""
    agents: dict[str, DirectoryEntry] = {}
    for ev in events:
        if up_to_block is not None and ev.block_number > up_to_block:
            break
        key = str(getattr(ev, "agent", "")).lower()
        if isinstance(ev, AgentRegistered):
            agents[key] = DirectoryEntry(to_checksum_address(ev.agent), int(ev.role), ev.endpoint, bytes(ev.model_id),
                                         True)
        elif key in agents and isinstance(ev, EndpointUpdated):
            agents[key] = DirectoryEntry(**{**agents[key].__dict__, "endpoint": ev.endpoint})
        elif key in agents and isinstance(ev, AgentDeregistered):
            agents[key] = DirectoryEntry(**{**agents[key].__dict__, "active": False})
        elif isinstance(ev, StakeWithdrawn):
            agents.pop(key, None)
    return agents


class RegistrySource(Protocol):
    """What the directory reads (`node.chain.nodechain.NodeChain.registry_events`, or a fake)."""

    def registry_events(self, from_block: int, to_block: int) -> list[ChainEvent]: ...


class AgentDirectory:
    """AgentRegistry's agents from its events, as of any block up to the one it has read.

    Written on the loop thread (`catch_up`, `rollback`), read from the API thread too: every
    change swaps whole objects under a lock."""

    def __init__(self, source: RegistrySource, start_block: int, max_range: int = 2000) -> None:
        self.source = source
        self.start_block = start_block
        self.max_range = max_range
        self._lock = threading.Lock()
        self._events: list[ChainEvent] = []
        self._scanned = start_block - 1
        self._latest: dict[str, DirectoryEntry] = {}
        self._at: dict[int, dict[str, DirectoryEntry]] = {}

    @property
    def scanned(self) -> int:
        """The last block whose registry events are read."""
        return self._scanned

    def catch_up(self, to_block: int | None) -> None:
        """Read the registry's events up to `to_block` (the watcher's cursor)."""
        if to_block is None or to_block <= self._scanned:
            return
        new: list[ChainEvent] = []
        start = self._scanned + 1
        while start <= to_block:
            end = min(to_block, start + self.max_range - 1)
            new.extend(self.source.registry_events(start, end))
            start = end + 1
        with self._lock:
            events = self._events + new
            self._events, self._scanned = events, to_block
            self._latest = replay(events)
            if new:
                self._at = {}

    def rollback(self, to_block: int) -> None:
        """Forget what was read above `to_block` (a reorg replaced those blocks)."""
        with self._lock:
            self._events = [e for e in self._events if e.block_number <= to_block]
            self._scanned = min(self._scanned, to_block)
            self._latest = replay(self._events)
            self._at = {}

    def agents_at(self, block: int) -> dict[str, DirectoryEntry] | None:
        """The agents as of the end of `block`; None if the directory has not read that far."""
        with self._lock:
            if block > self._scanned:
                return None
            cached = self._at.get(block)
            if cached is None:
                cached = self._at[block] = replay(self._events, block)
            return cached

    def latest(self, agent: str) -> DirectoryEntry | None:
        """The agent as of the last block read (None: never registered, or withdrawn)."""
        return self._latest.get(agent.lower())


class ReportRefused(Exception):
    """Why the node does not take a signed decision: an HTTP status and a named error kind."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


class ReportChain(RegistrySource, Protocol):
    """What the desk uses of the chain beyond the outbox (`NodeChain`, or a fake in tests)."""

    def header(self, block: int | str = "latest") -> BlockHeader | None: ...

    def calldata(self, contract: str, function: str, *args: Any) -> bytes: ...

    def sign_decision(self, task_id: int, action: int, confidence: int, model_id: bytes) -> SignedDecision: ...


def _post_body(decision: SignedDecision) -> dict[str, Any]:
    """A signed decision as JSON (the body of `POST /tasks/{id}/reports`, an item of the GET)."""
    return {"agent": decision.agent, "action": decision.action, "confidence": decision.confidence,
            "model_id": "0x" + decision.model_id.hex(), "v": decision.v, "r": "0x" + decision.r.hex(),
            "s": "0x" + decision.s.hex()}


def parse_decision(item: Any) -> SignedDecision | None:
    """A signed decision from its JSON form, or None for anything malformed (an aggregator's answer
    is not trusted: every decision is checked again before use)."""
    try:
        signed = SignedDecision(to_checksum_address(item["agent"]), int(item["action"]), int(item["confidence"]),
                                bytes.fromhex(str(item["model_id"]).removeprefix("0x")), int(item["v"]),
                                bytes.fromhex(str(item["r"]).removeprefix("0x")),
                                bytes.fromhex(str(item["s"]).removeprefix("0x")))
    except (KeyError, TypeError, ValueError):
        return None
    if len(signed.model_id) != 32 or len(signed.r) != 32 or len(signed.s) != 32:
        return None
    return signed


class ReportDesk:
    """One node's signed-report work: the decisions it signs and posts, and, as a task's aggregator,
    those it takes in and submits."""

    def __init__(self, *, enabled: bool, chain: ReportChain, store: Store, outbox: Outbox, address: str,
                 chain_id: int, board: str, model_id: bytes, start_block: int, fallback_s: float,
                 deadline_margin_s: float, max_range: int = 2000, clock: Callable[[], float] = time.time,
                 post: Callable[[str, dict[str, Any]], tuple[int, str | None]] | None = None,
                 get: Callable[[str], tuple[int, Any]] | None = None) -> None:
        self.enabled = enabled
        self.chain = chain
        self.store = store
        self.outbox = outbox
        self.address = address
        self.chain_id = chain_id
        self.board = board
        self.model_id = model_id
        self.fallback_s = fallback_s
        self.deadline_margin_s = deadline_margin_s
        self.clock = clock
        self.directory = AgentDirectory(chain, start_block, max_range)
        self._post = post or http_post
        self._get = get or http_get
        self._pool: ThreadPoolExecutor | None = None
        self._peer_held: dict[int, list[SignedDecision]] = {}  # task -> what its aggregator answered
        self._peer_read_at: dict[int, float] = {}
        self._peer_reading: set[int] = set()
        self._checked: dict[int, dict[tuple[str, bytes, bytes], DirectoryEntry | None]] = {}
        self._posting: set[int] = set()
        self._posted: set[int] = set()  # tasks posted (or being posted) in this life of the node
        self._submitted_at: dict[int, int] = {}
        self._retry_at: dict[int, float] = {}
        self._over: set[int] = set()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _worker(self, fn: Callable[..., None], *args: Any) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="report-post")
        self._pool.submit(fn, *args)

    # -- the rule ---------------------------------------------------------------------------------

    def aggregator_of(self, task: TaskRecord) -> DirectoryEntry | None:
        """The task's aggregator by `choose_aggregator` over the agents as of its submission block;
        None while the directory has not read that block (or the task has no block)."""
        if task.submitted_block is None:
            return None
        agents = self.directory.agents_at(task.submitted_block)
        return None if agents is None else choose_aggregator(task.id, agents)

    def is_mine(self, task: TaskRecord) -> bool:
        agg = self.aggregator_of(task)
        return agg is not None and agg.address.lower() == self.address.lower()

    # -- the aggregator's door (API thread) ------------------------------------------------------------

    def accept(self, task_id: int, decision: SignedDecision) -> dict[str, Any]:
        """Take one agent's signed decision for a task this node aggregates; ReportRefused if not."""
        if not self.enabled:
            raise ReportRefused(404, "reports_disabled", "this node takes no signed reports (transport tx)")
        task = self.store.get_task(task_id)
        if task is None:
            raise ReportRefused(404, "not_found", f"task {task_id} is unknown to this node")
        if task.chain_status != ChainState.OPEN:
            raise ReportRefused(409, "AlreadyFinalized", f"task {task_id} is {task.chain_status} on chain")
        agg = self.aggregator_of(task)
        if agg is None:
            raise ReportRefused(503, "not_ready", f"the registry is not read up to task {task_id}'s block yet")
        if agg.address.lower() != self.address.lower():
            raise ReportRefused(400, "NotAggregator", f"the aggregator of task {task_id} is {agg.address}")
        try:
            signer = recover_signer(decision, chain_id=self.chain_id, board=self.board, task_id=task_id)
        except Exception as exc:  # v, s out of range, or no point on the curve
            message = str(exc) if isinstance(exc, ValueError) else "the signature does not recover to any address"
            raise ReportRefused(400, "BadSignature", message[:200]) from None
        if signer.lower() != decision.agent.lower():
            raise ReportRefused(400, "SignerMismatch", f"the signature recovers to {signer}, not {decision.agent}")
        entry = self.directory.latest(decision.agent)
        if entry is None or not entry.active:
            raise ReportRefused(400, "UnknownAgent", f"{decision.agent} is not a registered active agent")
        if entry.model_id != decision.model_id:
            raise ReportRefused(400, "ModelMismatch", f"{decision.agent} is registered with model "
                                                      f"0x{entry.model_id.hex()}, not 0x{decision.model_id.hex()}")
        if decision.agent.lower() in self.decided_on_chain(task_id):
            raise ReportRefused(409, "DuplicateDecision", f"{decision.agent} has a decision on task {task_id} on chain")
        if not self.store.put_report(task_id, decision, own=False):
            raise ReportRefused(409, "DuplicateDecision", f"this node holds a decision of {decision.agent} "
                                                          f"for task {task_id} already")
        held = self.store.held_reports(task_id)
        log.info("task %d: holding %d signed decisions (%s's received)", task_id, len(held), decision.agent)
        return dict(task_id=task_id, agent=decision.agent, held=len(held), quorum=task.quorum)

    def held(self, task_id: int) -> dict[str, Any]:
        """`GET /tasks/{id}/reports` (API thread): the signed decisions this node holds for a task, as
        its aggregator (its own included); ReportRefused if it takes no reports or knows no such task."""
        if not self.enabled:
            raise ReportRefused(404, "reports_disabled", "this node takes no signed reports (transport tx)")
        task = self.store.get_task(task_id)
        if task is None:
            raise ReportRefused(404, "not_found", f"task {task_id} is unknown to this node")
        return dict(task_id=task_id, decisions=[_post_body(h.decision) for h in self.store.held_reports(task_id)])

    # -- the agent's side (loop thread) -------------------------------------------------------------------

    def hand_in(self, task: TaskRecord, action: int, confidence: int) -> HeldReport:
        """Sign this node's decision, write it down, then post it to the aggregator (or hold it, as the
        aggregator). Written before it is posted, so a restarted node knows it signed."""
        signed = self.chain.sign_decision(task.id, action, confidence, self.model_id)
        self._drop_peers(task.id)  # a fusion agent has fused what it read
        agg = self.aggregator_of(task)
        if agg is None:
            status, target = "no_aggregator", None
        elif agg.address.lower() == self.address.lower():
            status, target = "held", None
        else:
            status, target = "queued", agg.endpoint
        self.store.put_report(task.id, signed, own=True, sent_to=target, post_status=status)
        own = self.store.own_report(task.id)
        assert own is not None
        self.repost(own)
        return own

    def repost(self, own: HeldReport) -> None:
        """Post `own` (queued) to its aggregator on a worker thread, once per life of the node."""
        if own.post_status != "queued" or own.sent_to is None or own.task_id in self._posted:
            return
        self._posted.add(own.task_id)
        self._posting.add(own.task_id)
        self._worker(self._post_now, own.task_id, own.decision, own.sent_to)

    def _post_now(self, task_id: int, decision: SignedDecision, endpoint: str) -> None:
        status = "unreachable"
        try:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                status = "refused: endpoint"
                return
            url = f"{endpoint.rstrip('/')}/tasks/{task_id}/reports"
            for attempt in range(POST_TRIES):
                code, kind = self._post(url, _post_body(decision))
                if code == 202 or (code == 409 and kind == "DuplicateDecision"):
                    status = "accepted"
                    return
                # No answer, the aggregator not there yet (it has not read the task or the registry):
                # try again shortly; anything else is its final word.
                if code == 0 or code >= 500 or (code == 404 and kind == "not_found"):
                    if attempt + 1 < POST_TRIES:
                        time.sleep(POST_RETRY_S)
                    continue
                status = f"refused: {kind or code}"
                return
        except Exception:  # a bug here must not kill the worker; the fallback still publishes
            log.exception("task %d: posting the signed decision failed", task_id)
        finally:
            self.store.set_report_post(task_id, decision.agent, status)
            self._posting.discard(task_id)
            log.info("task %d: signed decision posted to %s: %s", task_id, safe_url(endpoint), status)

    # -- a fusion agent's peers (loop thread; reads on a worker) -------------------------------------------

    def peer_decisions(self, task: TaskRecord) -> list[tuple[SignedDecision, DirectoryEntry]]:
        """The other agents' signed decisions on `task` that its aggregator holds (this node's store
        when it aggregates the task, else the aggregator's last answer to `GET /tasks/{id}/reports`,
        read again on a worker every `PEERS_REFRESH_S`), each with its signer's registry entry; only
        those `accept` would take: the signature recovers to the agent, registered and active with
        the model id it signed."""
        if not self.enabled:
            return []
        agg = self.aggregator_of(task)
        if agg is None:
            return []
        if agg.address.lower() == self.address.lower():
            held = [h.decision for h in self.store.held_reports(task.id)]
        else:
            self._read_peers(task.id, agg.endpoint)
            held = self._peer_held.get(task.id, [])
        me, out, seen = self.address.lower(), [], set()
        for decision in held:
            agent = decision.agent.lower()
            if agent == me or agent in seen:
                continue
            entry = self._check(task.id, decision)
            if entry is not None:
                seen.add(agent)
                out.append((decision, entry))
        return out

    def _check(self, task_id: int, decision: SignedDecision) -> DirectoryEntry | None:
        checked = self._checked.setdefault(task_id, {})
        key = (decision.agent.lower(), decision.r, decision.s)
        if key not in checked:
            entry = None
            try:
                signer = recover_signer(decision, chain_id=self.chain_id, board=self.board, task_id=task_id)
            except Exception:  # v, s out of range, or no point on the curve
                signer = ""
            if signer.lower() == decision.agent.lower():
                found = self.directory.latest(decision.agent)
                if found is not None and found.active and found.model_id == decision.model_id:
                    entry = found
            if entry is None:
                log.info("task %d: a held decision of %s does not check out; left out", task_id, decision.agent)
            checked[key] = entry
        return checked[key]

    def _read_peers(self, task_id: int, endpoint: str) -> None:
        if task_id in self._peer_reading or self.clock() - self._peer_read_at.get(task_id, -1e9) < PEERS_REFRESH_S:
            return
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return
        self._peer_reading.add(task_id)
        self._worker(self._read_now, task_id, f"{endpoint.rstrip('/')}/tasks/{task_id}/reports")

    def _read_now(self, task_id: int, url: str) -> None:
        try:
            code, body = self._get(url)
            if code == 200 and isinstance(body, dict) and isinstance(body.get("decisions"), list):
                parsed = [parse_decision(item) for item in body["decisions"][:256]]
                self._peer_held[task_id] = [d for d in parsed if d is not None]
        except Exception:  # a bug here must not kill the worker; the fusion agent waits on
            log.exception("task %d: reading the aggregator's held decisions failed", task_id)
        finally:
            self._peer_read_at[task_id] = self.clock()
            self._peer_reading.discard(task_id)

    def fallback_due(self, task: TaskRecord, own: HeldReport, head: BlockHeader) -> str | None:
        """Why the node should publish its decision itself now, or None to keep waiting for the report."""
        status = own.post_status or ""
        if own.task_id not in self._posting and (status.startswith("refused") or status == "no_aggregator"):
            return f"the aggregator did not take it ({status})"
        if task.deadline is not None and head.timestamp >= task.deadline - self.deadline_margin_s - 10:
            return "its deadline is near"
        since = self.chain_seconds_since_submission(task, head)
        if since is not None and since >= self.fallback_s:
            return f"no report on chain {since}s of chain time after its submission"
        return None

    def chain_seconds_since_submission(self, task: TaskRecord, head: BlockHeader) -> int | None:
        if task.submitted_block is None:
            return None
        stamp = self._submitted_at.get(task.id)
        if stamp is None:
            header = self.chain.header(task.submitted_block)
            if header is None:
                return None
            stamp = self._submitted_at[task.id] = header.timestamp
        return head.timestamp - stamp

    def decided_on_chain(self, task_id: int) -> set[str]:
        """Lower-case addresses of the agents whose decision on the task the node has read on chain."""
        return {(e.agent or "").lower() for e in self.store.task_events(task_id) if e.name == "DecisionPublished"}

    def forget(self, task_id: int) -> None:
        """A task that started over (reorg) or is done: drop what is cached of it."""
        self._submitted_at.pop(task_id, None)
        self._retry_at.pop(task_id, None)
        self._over.discard(task_id)
        self._posted.discard(task_id)
        self._drop_peers(task_id)

    def _drop_peers(self, task_id: int) -> None:
        self._peer_held.pop(task_id, None)
        self._peer_read_at.pop(task_id, None)
        self._checked.pop(task_id, None)

    # -- the aggregator's work (loop thread) ---------------------------------------------------------------

    def aggregate(self, head: BlockHeader) -> bool:
        """Submit one report for each task this node aggregates whose held decisions, with those on
        chain, reach its quorum (or, half the fallback time after its submission, whatever it holds).
        True when it sent something."""
        sent = False
        for task_id in self.store.report_tasks():
            if task_id in self._over or self.clock() < self._retry_at.get(task_id, 0.0):
                continue
            if self.store.live_send(task_id, SendKind.REPORT) is not None:
                continue  # one report per task: the rest go by the agents' own fallback
            task = self.store.get_task(task_id)
            if task is None or task.chain_status != ChainState.OPEN or not self.is_mine(task):
                continue
            if task.deadline is not None and head.timestamp > task.deadline - self.deadline_margin_s:
                continue
            on_chain = self.decided_on_chain(task_id)
            held = [h.decision for h in self.store.held_reports(task_id) if h.decision.agent.lower() not in on_chain]
            if not held:
                continue
            quorum = task.quorum or 1
            since = self.chain_seconds_since_submission(task, head)
            if len(held) + len(on_chain) < quorum and (since is None or since < self.fallback_s / 2):
                continue
            data = self.chain.calldata("TaskBoard", "submitReport", task_id, report_args(held))
            try:
                self.outbox.send(kind=SendKind.REPORT, to=self.board, data=data, task_id=task_id)
            except ContractRevert as exc:
                if exc.error_name in _REPORT_OVER:
                    self._over.add(task_id)
                    log.info("task %d: no report (%s)", task_id, exc.error_name)
                else:  # a decision published meanwhile (DuplicateDecision): the store catches up first
                    self._retry_at[task_id] = self.clock() + 1.0
                    log.info("task %d: report refused at estimation (%s); trying again", task_id, exc.error_name)
                continue
            sent = True
            log.info("task %d: report of %d signed decisions sent (%d on chain before, quorum %d)", task_id,
                     len(held), len(on_chain), quorum)
        return sent

    def on_settled(self, item: Settled, explain: Callable[[Settled], ContractRevert]) -> None:
        send = item.send
        if send.status == SendState.MINED:
            log.info("task %s: report mined in block %s (gas %s)", send.task_id, send.block_number, send.gas_used)
        elif send.status == SendState.REVERTED:
            try:
                reason = explain(item).error_name
            except ChainError:
                reason = "Reverted"
            log.warning("task %s: report reverted (%s); the agents publish their own", send.task_id, reason)
            if send.task_id is not None:
                self._over.add(send.task_id)


GET_LIMIT_BYTES = 256 * 1024
"""The most of an aggregator's answer a fusion agent reads (256 decisions take about 80 KiB)."""


def http_get(url: str, limit: int = GET_LIMIT_BYTES) -> tuple[int, Any]:
    """GET `url`; (status, the JSON answer or None), or (0, None) without an answer. An answer over
    `limit` bytes is not read further and counts as none (a peer's endpoint is not trusted)."""
    import json

    import httpx

    try:
        with httpx.stream("GET", url, timeout=POST_TIMEOUT_S, follow_redirects=False) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    return response.status_code, None
            status = response.status_code
    except httpx.HTTPError:
        return 0, None
    try:
        return status, json.loads(bytes(body))
    except ValueError:
        return status, None


def http_post(url: str, body: dict[str, Any]) -> tuple[int, str | None]:
    """POST `body` as JSON; (status, the answer's `error` kind), or (0, None) without an answer."""
    import httpx

    try:
        response = httpx.post(url, json=body, timeout=POST_TIMEOUT_S, follow_redirects=False)
    except httpx.HTTPError:
        return 0, None
    try:
        kind = response.json().get("error") if response.status_code >= 400 else None
    except ValueError:
        kind = None
    return response.status_code, kind if isinstance(kind, str) else None
