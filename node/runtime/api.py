"""The node's HTTP API (FastAPI): health, identity, tasks, metrics, and one write: a signed decision
posted to a task's aggregator (`POST /tasks/{id}/reports`, transport "report"). Bound to 127.0.0.1
unless the operator says otherwise.

The app reads a `NodeView` (the running node, or a fake with a filled store in tests) through a
FastAPI dependency, so tests override it. Every error leaves as JSON `{"error", "message"}`:
ChorusError subclasses are mapped to status codes in one handler, unknown ids are 404, bad
parameters (ids beyond SQLite's 64-bit integers included) 422, a body over the route's size limit
413 or nested deeper than the payload decoder allows 422, and anything unexpected 500. Nothing secret is ever in a response: no keys, no passwords, no payload URIs'
query strings.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from node.protocol.errors import ChainError, ChorusError, ConfigError, ContractRevert, ModelError, PayloadError, RpcUnavailable
from node.runtime.metrics import CONTENT_TYPE, NodeMetrics
from node.protocol.reports import SignedDecision
from node.protocol.payload import MAX_DEPTH, nesting_depth, redact_uri
from node.protocol.enums import Action, Role
from node.runtime.sendlog import SendRecord
from node.runtime.reports import ReportRefused
from node.runtime.store import ChainState, StoredEvent, Store, TaskRecord, TaskState

log = logging.getLogger(__name__)

MAX_PAGE = 500
MAX_ID = 2**63 - 1
"""Largest id or offset the API takes: SQLite's INTEGER is a signed 64-bit number."""
MAX_BODY_BYTES = 64 << 10
"""Body limit of the node's routes (all of them read-only); a router may set its own per route."""
RECURSION_LIMIT = 1000
"""The interpreter's default recursion limit, which `create_app` restores (see there)."""
TASK_STATES = tuple(state.value for state in TaskState)
"""The values of `node_status`, which `GET /tasks?node_status=` accepts."""
CHAIN_STATES = tuple(state.value for state in ChainState)
"""The values of `chain_status`."""
NodeStatus = Literal[TASK_STATES]  # type: ignore[valid-type]
ChainStatus = Literal[CHAIN_STATES]  # type: ignore[valid-type]

NODE_STATUS_MEANING: dict[TaskState, str] = {
    TaskState.NEW: "seen on chain, not handled yet",
    TaskState.WAITING: "handled as far as it can be, waiting for the peers' decisions (fusion) or for the report "
                       "carrying its signed decision (transport report)",
    TaskState.PUBLISHING: "its transactions are sent, not all mined yet",
    TaskState.PUBLISHED: "its publications are mined",
    TaskState.REJECTED: "the payload is malformed, mismatches its hash or cannot be fetched, so it publishes nothing (see error)",
    TaskState.FAILED: "publishing failed for good, e.g. a revert it cannot fix (see error)",
    TaskState.SKIPPED: "nothing for it to do (closed on chain, too close to its deadline, or an architecture it does not serve)",
    TaskState.RECHECK: "a reorg removed the block its work rested on, so it looks at the task again",
}
"""`node_status`: this node's own work on a task (docs/node.md, "Task status")."""
NODE_STATUS_FINAL = (TaskState.PUBLISHED, TaskState.REJECTED, TaskState.FAILED, TaskState.SKIPPED)
CHAIN_STATUS_MEANING: dict[ChainState, str] = {
    ChainState.OPEN: "submitted, neither finalized nor reclaimed yet (it takes publications until its deadline)",
    ChainState.FINALIZED: "the decision is fixed on chain (see finalized)",
    ChainState.RECLAIMED: "its deadline passed without a single decision and the reward went back to the submitter",
    ChainState.GONE: "a reorg removed its submission (open again if the submission is mined again)",
}
"""`chain_status`: the task on chain as this node last read it (docs/node.md, "Task status")."""
CHAIN_STATUS_FINAL = (ChainState.FINALIZED, ChainState.RECLAIMED)


def _vocabulary(intro: str, meaning: dict[Any, str], final: tuple[Any, ...]) -> str:
    values = "; ".join(f"{state.value}: {text}" for state, text in meaning.items())
    return (f"{intro} {values}. Final: {', '.join(s.value for s in final)} (unless a reorg undoes what they rest "
            "on).")


NODE_STATUS_HELP = _vocabulary("This node's own work on the task (chain_status is the chain's view).",
                               NODE_STATUS_MEANING, NODE_STATUS_FINAL)
CHAIN_STATUS_HELP = _vocabulary("The task on chain, as this node last read it (node_status is the node's own work).",
                                CHAIN_STATUS_MEANING, CHAIN_STATUS_FINAL)

# One place maps the exception tree to HTTP.
_STATUS_BY_ERROR: tuple[tuple[type[ChorusError], int], ...] = (
    (PayloadError, 422),
    (RpcUnavailable, 503),
    (ContractRevert, 409),
    (ChainError, 502),
    (ConfigError, 500),
    (ModelError, 500),
    (ChorusError, 500),
)


class NodeView(Protocol):
    """What the API reads: the node's store and metrics, its identity and its health."""

    store: Store
    metrics: NodeMetrics

    def info(self) -> dict[str, Any]: ...

    def health(self) -> dict[str, Any]: ...


# -- response models (they document the API at /docs) --------------------------------------------


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable error kind, e.g. not_found, invalid_request, RpcUnavailable.")
    message: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Request body over the route's size limit"},
    422: {"model": ErrorBody, "description": "Invalid parameters or body"},
    500: {"model": ErrorBody, "description": "Unexpected server error"},
}
"""The error answers every route can give (a router adds its own, e.g. 400 or 503)."""


class Health(BaseModel):
    status: Literal["ok", "starting", "degraded"]
    chain_reachable: bool
    registered: bool
    head_block: int | None
    last_processed_block: int | None
    rpc_down_since: float | None = None
    last_error: str | None = None
    uptime_s: float


class Info(BaseModel):
    address: str
    role: str
    endpoint: str
    model_id: str
    model_name: str = Field(description="Manifest name of the model whose embeddings this node publishes.")
    decider: str = Field(description="What decides: a trained model, or the simple deterministic rule.")
    model_backend: str
    embedding_dim: int
    embedding_encoding: str
    chain_id: int
    contracts: dict[str, str]
    last_processed_block: int | None
    confirmations: int
    version: str


class Publication(BaseModel):
    kind: Literal["decision", "embedding", "probabilities"]
    agent: str
    role: str | None = None
    action: str | None = None
    confidence: int | None = None
    model_id: str | None = None
    encoding: int | None = None
    vector_bytes: int | None = None
    probabilities: dict[str, int] | None = Field(
        default=None, description="kind probabilities: the agent's class probabilities in basis points, by action "
                                  "label (its decision, published with them, is their argmax).")
    block_number: int
    tx_hash: str | None


class Transaction(BaseModel):
    kind: str
    nonce: int
    status: str
    tx_hash: str | None
    attempts: list[str]
    block_number: int | None
    gas_used: int | None
    effective_gas_price: int | None
    error: str | None


class Finalization(BaseModel):
    action: str | None
    block_number: int | None
    tx_hash: str | None
    tallies: dict[str, int] | None = Field(
        default=None, description="The contract's weighted tallies per action at finalization (each decision "
                                  "adds its role's weight x its confidence to its action); the action is their argmax.")
    decisions: int | None
    contributors: int | None


class Output(BaseModel):
    action: str | None
    confidence: int | None
    embedding_bytes: int | None
    note: str | None = Field(default=None, description="How the agent decided (model, head, or why it abstained).")
    embedding_commitment: str | None = Field(
        default=None, description="sha256 of the encoded embedding behind the decision (the coordinator), 0x-hex.")


class Timings(BaseModel):
    seen_at: float | None
    started_at: float | None
    published_at: float | None
    finalized_at: float | None
    publish_latency_s: float | None = Field(description="From seeing the task to this node's publication mined.")
    finalize_latency_s: float | None = Field(description="From seeing the task to seeing it finalized.")


class TaskSummary(BaseModel):
    id: int
    node_status: NodeStatus = Field(description=NODE_STATUS_HELP)
    chain_status: ChainStatus = Field(description=CHAIN_STATUS_HELP)
    arch: int | None
    deadline: int | None
    quorum: int | None = Field(description="Decisions that let the task be finalized before its deadline.")
    error: str | None
    action: str | None = Field(description="This node's own decision, if it published one.")
    final_action: str | None = Field(description="The action the chain finalized, once chain_status is finalized.")
    submitted_block: int | None


DecisionCounts = create_model(
    "DecisionCounts",
    __doc__="Decisions published on chain for the task, counted per action (one per agent, unweighted).",
    **{label: (int, Field(ge=0)) for label in Action.labels()},
)


class TaskDetail(TaskSummary):
    submitter: str | None
    reward_wei: str | None
    payload_hash: str | None
    payload_uri: str | None
    payload_size: int | None
    submitted_tx: str | None
    output: Output
    finalized: Finalization | None
    decisions_on_chain: int = Field(
        ge=0, description="DecisionPublished events of this task the node has read from the chain (every agent's, "
                          "this node's included); the task can be finalized early once this reaches quorum.")
    decision_counts: DecisionCounts = Field(  # type: ignore[valid-type]
        description="decisions_on_chain per action label. Plain counts: the contract's tallies, which pick the final "
                    "action, weigh each decision by its role's weight for the architecture times its confidence "
                    "(`chorus task show` reads those from the chain).")
    publications: list[Publication]
    transactions: list[Transaction]
    gas_used: int = Field(description="Gas of this node's mined transactions for the task.")
    timings: Timings


def _json_integer(value: Any) -> Any:
    """A JSON integer (2 or 2.0, as JSON Schema has it), never a string or a boolean."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
HEX_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
HEX_WORD = r"^0x[0-9a-fA-F]{64}$"


class SignedDecisionIn(BaseModel):
    """One agent's decision on the task, signed as EIP-712 typed data (docs/protocol.md, submitReport)."""

    model_config = ConfigDict(extra="forbid")

    agent: str = Field(pattern=HEX_ADDRESS, description="The signer: a registered, active agent.")
    action: JsonInt = Field(ge=0, le=2, description="0 sell, 1 hold, 2 buy.")
    confidence: JsonInt = Field(ge=0, le=10_000, description="Basis points.")
    model_id: str = Field(pattern=HEX_WORD, description="The agent's registered model id (zero: decisions only).")
    v: JsonInt = Field(ge=0, le=255, description="27 or 28.")
    r: str = Field(pattern=HEX_WORD)
    s: str = Field(pattern=HEX_WORD, description="At most half the secp256k1 order.")

    def signed(self) -> SignedDecision:
        from eth_utils import to_checksum_address

        return SignedDecision(to_checksum_address(self.agent), self.action, self.confidence,
                              bytes.fromhex(self.model_id[2:]), self.v, bytes.fromhex(self.r[2:]),
                              bytes.fromhex(self.s[2:]))


class HeldDecisions(BaseModel):
    task_id: int
    decisions: list[SignedDecisionIn] = Field(description="The signed decisions this node holds for the task as "
                                                          "its aggregator (its own included), not yet on chain "
                                                          "by a report; each is checked again by whoever uses it.")


class ReportReceipt(BaseModel):
    task_id: int
    agent: str
    held: int = Field(description="Signed decisions this node now holds for the task, its own included.")
    quorum: int | None


class TaskPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[TaskSummary]


# -- rendering --------------------------------------------------------------------------------------


def _label(enum: type[Action] | type[Role], value: int | None) -> str | None:
    """The enum member's label, or None for a missing or unknown value (the API never raises on one)."""
    try:
        return None if value is None else enum(value).label
    except ValueError:
        return None


def _action(value: int | None) -> str | None:
    return _label(Action, value)


def _role(value: int | None) -> str | None:
    return _label(Role, value)


def _summary(task: TaskRecord) -> dict[str, Any]:
    return dict(id=task.id, node_status=task.status, chain_status=task.chain_status, arch=task.arch,
                deadline=task.deadline, quorum=task.quorum, error=task.error, action=_action(task.action),
                final_action=_action(task.final_action), submitted_block=task.submitted_block)


def _publication(ev: StoredEvent) -> Publication | None:
    if ev.name == "DecisionPublished":
        return Publication(kind="decision", agent=ev.agent or "", role=_role(ev.role), action=_action(ev.action),
                           confidence=ev.confidence, block_number=ev.block_number, tx_hash=ev.tx_hash)
    if ev.name == "EmbeddingPublished":
        return Publication(kind="embedding", agent=ev.agent or "", model_id=ev.model_id, encoding=ev.encoding,
                           vector_bytes=len(ev.vector or b""), block_number=ev.block_number, tx_hash=ev.tx_hash)
    if ev.name == "ProbabilitiesPublished" and ev.probs is not None:
        return Publication(kind="probabilities", agent=ev.agent or "", probabilities=dict(zip(Action.labels(), ev.probs)),
                           block_number=ev.block_number, tx_hash=ev.tx_hash)
    return None


def _transaction(send: SendRecord) -> Transaction:
    return Transaction(kind=send.kind, nonce=send.nonce, status=send.status, tx_hash=send.tx_hash,
                       attempts=[a.tx_hash for a in send.attempts], block_number=send.block_number,
                       gas_used=send.gas_used, effective_gas_price=send.effective_gas_price, error=send.error)


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 6)


def task_detail(store: Store, task: TaskRecord) -> TaskDetail:
    """Everything the node knows of one task, for `GET /tasks/{id}`."""
    events = store.task_events(task.id)
    pubs = [p for p in (_publication(e) for e in events) if p is not None]
    counts = dict.fromkeys(Action.labels(), 0)
    for ev in events:
        label = _action(ev.action) if ev.name == "DecisionPublished" else None
        if label is not None:
            counts[label] += 1
    sends = store.sends(task_id=task.id)
    finalized = None
    if task.final_action is not None or task.final_block is not None:
        finalized = Finalization(action=_action(task.final_action), block_number=task.final_block,
                                 tx_hash=task.final_tx, decisions=task.decisions, contributors=task.contributors,
                                 tallies=None if task.final_tallies is None
                                 else dict(zip(Action.labels(), json.loads(task.final_tallies))))
    return TaskDetail(
        **_summary(task),
        submitter=task.submitter, reward_wei=task.reward, payload_hash=task.payload_hash,
        payload_uri=redact_uri(task.uri) if task.uri else None, payload_size=task.payload_size,
        submitted_tx=task.submitted_tx,
        output=Output(action=_action(task.action), confidence=task.confidence, embedding_bytes=task.embedding_bytes,
                      note=task.note, embedding_commitment=task.commitment),
        finalized=finalized,
        decisions_on_chain=sum(counts.values()),
        decision_counts=DecisionCounts(**counts),
        publications=pubs,
        transactions=[_transaction(s) for s in sends],
        gas_used=sum(s.gas_used or 0 for s in sends if s.block_number is not None),
        timings=Timings(seen_at=task.seen_at, started_at=task.started_at, published_at=task.published_at,
                        finalized_at=task.finalized_at, publish_latency_s=_since(task.seen_at, task.published_at),
                        finalize_latency_s=_since(task.seen_at, task.finalized_at)),
    )


# -- the app ------------------------------------------------------------------------------------------


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": kind, "message": message})


def status_for(exc: ChorusError) -> int:
    for cls, status in _STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


class GuardedRoute(APIRoute):
    """A route that reads at most `max_body_bytes` of a request's body (413 past it) and refuses a
    body nested deeper than `MAX_DEPTH` (422), before anything parses it.

    json.loads recurses in C once per level: a body of 100,000 brackets overflows the thread's stack
    and kills the process once the recursion limit is high (py_ecc, imported through web3, raises
    it to 100,000). FastAPI's own parsing then reuses the bytes read here. (FastAPI's
    `max_body_size` would count the bytes too, but Starlette answers its 413 in text/plain.)
    """

    max_body_bytes: int = MAX_BODY_BYTES

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        limit = self.max_body_bytes

        async def guarded(request: Request) -> Response:
            body = await _read_body(request, limit)
            if body and nesting_depth(body) > MAX_DEPTH:
                return _error(422, "invalid_request", f"body nests deeper than {MAX_DEPTH} levels")
            return await handler(request)

        return guarded


def guarded_route(max_body_bytes: int) -> type[GuardedRoute]:
    """A `GuardedRoute` class with its own body limit, for `APIRouter(route_class=...)`."""
    return type(f"GuardedRoute{max_body_bytes}", (GuardedRoute,), {"max_body_bytes": max_body_bytes})


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = HTTPException(status_code=413, detail=f"request body is larger than {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body, or one longer than it said
            raise too_large
        chunks.append(chunk)
    # Starlette's cache of the body (the custom-Request pattern of FastAPI's docs): parsed later, not re-read.
    request._body = b"".join(chunks)
    return request._body


def bound_recursion_limit() -> None:
    """Put the recursion limit back to the interpreter's default if an import raised it.

    py_ecc (imported through web3) sets it to 100,000 at import time, so Python-level recursion on
    hostile input would run into the C stack instead of a RecursionError.
    """
    if sys.getrecursionlimit() > RECURSION_LIMIT:
        log.debug("recursion limit %d lowered to %d", sys.getrecursionlimit(), RECURSION_LIMIT)
        sys.setrecursionlimit(RECURSION_LIMIT)


def get_view(request: Request) -> NodeView:
    """The NodeView the app was built with (override this dependency in tests if needed)."""
    return request.app.state.view


def create_app(view: NodeView | None = None, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The API over `view` (set later through `app.state.view` if None), plus `extra_routers` (the
    coordinator's /embed and /decide), which get the same error handlers and should use
    `GuardedRoute` as their route class.

    The processes that serve the API have imported web3 by the time they build it, so this is
    where the recursion limit goes back to its default (`bound_recursion_limit`)."""
    bound_recursion_limit()
    app = FastAPI(title="Chorus agent node", version="1", description=__doc__, responses=ERROR_RESPONSES)
    app.router.route_class = GuardedRoute
    app.state.view = view

    @app.exception_handler(ChorusError)
    async def _chorus_error(request: Request, exc: ChorusError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.warning("%s %s failed: %s", request.method, request.url.path, exc)
        return _error(status, type(exc).__name__, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                413: "content_too_large"}.get(exc.status_code, "http_error")
        response = _error(exc.status_code, kind, str(exc.detail))
        response.headers.update(exc.headers or {})  # 405's Allow
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path; a path with a GET and a
            # POST route allows both.
            path = request.url.path
            allowed = sorted({m for r in app.routes if isinstance(r, APIRoute) and r.path_regex.match(path)
                              for m in r.methods})
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The offending input is left out on purpose: it is echoed nowhere.
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        return _error(422, "invalid_request", "; ".join(problems) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The details stay in the log: an unexpected error's text may name files or internals.
        log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal_error", "internal server error")

    @app.get("/health", response_model=Health, responses={503: {"model": Health}},
             summary="Liveness and chain reachability (503 while the chain is unreachable)")
    def health(view: NodeView = Depends(get_view)) -> Any:
        body = Health(**view.health())
        status = 503 if body.status == "degraded" else 200
        return JSONResponse(status_code=status, content=body.model_dump())

    @app.get("/info", response_model=Info, summary="Identity: address, role, model, chain, contracts, cursor")
    def info(view: NodeView = Depends(get_view)) -> Any:
        return Info(**view.info())

    @app.get("/tasks", response_model=TaskPage, summary="Tasks this node has seen, newest first (paged)")
    def tasks(
        offset: int = Query(0, ge=0, le=MAX_ID, description="Items to skip."),
        limit: int = Query(50, ge=1, le=MAX_PAGE, description=f"Page size, 1..{MAX_PAGE}."),
        node_status: NodeStatus | None = Query(None, description="Only tasks whose node_status is this."),
        status: str | None = Query(None, include_in_schema=False),  # the name before node_status
        view: NodeView = Depends(get_view),
    ) -> Any:
        if status is not None:  # refused, not ignored: ignoring it would answer every task
            return _error(422, "invalid_request", "query.status: renamed node_status (this node's own work on "
                                                  "the task; chain_status is the chain's)")
        items = view.store.list_tasks(offset=offset, limit=limit, status=node_status)
        return TaskPage(total=view.store.count_tasks(node_status), offset=offset, limit=limit,
                        items=[TaskSummary(**_summary(t)) for t in items])

    @app.get("/tasks/{task_id}", response_model=TaskDetail, responses={404: {"model": ErrorBody}},
             summary="One task: node_status, chain_status, decisions on chain, outputs, tx hashes, gas, timings")
    def task(task_id: int = Path(ge=1, le=MAX_ID, description="On-chain task id."),
             view: NodeView = Depends(get_view)) -> Any:
        record = view.store.get_task(task_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"task {task_id} is unknown to this node")
        return task_detail(view.store, record)

    @app.post("/tasks/{task_id}/reports", status_code=202, response_model=ReportReceipt,
              responses={400: {"model": ErrorBody, "description": "Not this task's aggregator, or a signature or "
                                                                  "signer the chain would refuse (error names it)"},
                         404: {"model": ErrorBody, "description": "Unknown task, or a node that takes no reports"},
                         409: {"model": ErrorBody, "description": "A decision of that agent is held or on chain "
                                                                  "already, or the task is closed"},
                         503: {"model": ErrorBody, "description": "The node has not read the registry that far yet"}},
              summary="Hand a signed decision to the task's aggregator (transport report)")
    def post_report(body: SignedDecisionIn, task_id: int = Path(ge=1, le=MAX_ID, description="On-chain task id."),
                    view: NodeView = Depends(get_view)) -> Any:
        accept = getattr(view, "accept_report", None)
        if accept is None:
            return _error(404, "reports_disabled", "this node takes no signed reports")
        try:
            return JSONResponse(status_code=202, content=ReportReceipt(**accept(task_id, body.signed())).model_dump())
        except ReportRefused as exc:
            return _error(exc.status, exc.kind, exc.message)

    @app.get("/tasks/{task_id}/reports", response_model=HeldDecisions,
             responses={404: {"model": ErrorBody, "description": "Unknown task, or a node that takes no reports"}},
             summary="The signed decisions a task's aggregator holds (what a fusion agent fuses under reports)")
    def get_reports(task_id: int = Path(ge=1, le=MAX_ID, description="On-chain task id."),
                    view: NodeView = Depends(get_view)) -> Any:
        held = getattr(view, "held_reports", None)
        if held is None:
            return _error(404, "reports_disabled", "this node takes no signed reports")
        try:
            return HeldDecisions(**held(task_id))
        except ReportRefused as exc:
            return _error(exc.status, exc.kind, exc.message)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics(view: NodeView = Depends(get_view)) -> Response:
        return Response(content=view.metrics.render(), media_type=CONTENT_TYPE)

    for router in extra_routers:
        app.include_router(router)
    return app
