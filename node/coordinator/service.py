"""The edge coordinator's HTTP service: `POST /embed` and `POST /decide`, micro-batched, on onnxruntime.

    chorus coordinator run [--int8] [--threads N] [--max-batch 32] [--max-wait-ms 5] [--port 8800]

The coordinator is an agent node (role coordinator, architectures 6 U and 7 U-rep: it registers,
follows the TaskBoard and publishes U's decisions like any node) whose API also serves the models:

- `POST /embed {"texts": [...]}` -> all-MiniLM-L6-v2 unit vectors (n, 384);
- `POST /decide <chorus.task/1 payload>` -> U's decision, probabilities and the embedding
  commitment (sha256 of the f32 embedding bytes); `?embedding=true` also returns the vector.

Every answer names the model (`model`) and its id (`model_id`, the sha256 of the ONNX file, as
ModelRegistry records it).

Concurrent requests are batched: one `MicroBatcher` per route (`node.coordinator.batcher`: a
queue and one worker thread) takes the first waiting request, gathers more until it has
`max_batch` or `max_wait_ms` has passed, runs the whole batch as one onnxruntime call, and
resolves each request's future with its own row. The event loop only awaits futures, so it keeps
accepting requests while a batch runs.
"""

# No `from __future__ import annotations` here: FastAPI must see the request models built in
# `build_router` (their limits come from the settings) as real classes, not strings.

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from node.coordinator.batcher import MicroBatcher, Overloaded
from node.protocol.enums import Action
from node.protocol.payload import MAX_PAYLOAD_BYTES, TaskPayload, decode, json_schema, payload_hash
from node.runtime.api import ErrorBody, guarded_route
from node.runtime.settings import NodeSettings

if TYPE_CHECKING:
    from agents.registry import AgentConfig

log = logging.getLogger(__name__)


class CoordinatorSettings(NodeSettings):
    """`chorus coordinator run`: the node settings (role coordinator) plus the service's own."""

    role: Literal["coordinator"] = "coordinator"
    """Always coordinator (AgentRegistry role 4)."""

    port: int = Field(default=8800, ge=1, le=65535)
    """Port of the HTTP API (node routes + /embed + /decide)."""

    int8: bool = False
    """Run `u-int8` (dynamic int8 weights, its own model id) instead of `u`."""

    threads: int = Field(default=1, ge=1, le=64)
    """onnxruntime intra-op threads of each session (U and MiniLM)."""

    max_batch: int = Field(default=32, ge=1, le=1024)
    """Most requests one onnxruntime call serves (per route)."""

    max_wait_ms: float = Field(default=5.0, ge=0, le=1000)
    """How long the first request of a batch waits for others to join it."""

    max_queue: int = Field(default=1024, ge=1, le=1_000_000)
    """Requests waiting per route before new ones are refused with 503."""

    max_texts: int = Field(default=128, ge=1, le=4096)
    """Most texts in one /embed request."""

    max_text_chars: int = Field(default=2000, ge=1, le=100_000)
    """Longest text /embed accepts (MiniLM reads the first 256 tokens anyway)."""

    text_model: Literal["f32", "int8"] = "f32"
    """MiniLM variant for /embed and U's text features (U was trained on f32 features)."""

    text_batch: int = Field(default=16, ge=1, le=1024)
    """MiniLM rows per onnxruntime run (a batch of texts is cut into runs this long): on a CPU
    longer runs gain no speed and grow onnxruntime's memory arena (peak RSS)."""

    @property
    def max_body_bytes(self) -> int:
        """Largest request body the routes read: a full /embed request with every character
        \\u-escaped (6 bytes), or a /decide payload (1 MiB), whichever is larger."""
        return max(MAX_PAYLOAD_BYTES, self.max_texts * (6 * self.max_text_chars + 4) + 64)

    @property
    def u_model_name(self) -> str:
        """Manifest entry of the U model: `model_name` if set, else u or u-int8."""
        return self.model_name or ("u-int8" if self.int8 else "u")

    def agent_config(self) -> "AgentConfig":
        """The node's agent config with the U model and the sessions' threads, MiniLM variant and runs."""
        from dataclasses import replace

        return replace(super().agent_config(), model_name=self.u_model_name, threads=self.threads,
                       text_kind=self.text_model, text_batch=self.text_batch)


# -- metrics ------------------------------------------------------------------------------------------


class CoordinatorMetrics:
    """The service's metrics, on the node's registry (one GET /metrics for both)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.requests = Counter("chorus_coordinator_requests", "Requests to /embed and /decide, by outcome.",
                                ["route", "outcome"], registry=r)
        self.batch_size = Histogram("chorus_coordinator_batch_size", "Requests served by one onnxruntime call.",
                                    ["route"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=r)
        self.batch_seconds = Histogram("chorus_coordinator_batch_seconds", "Time of one batch (features + model).",
                                       ["route"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                           1.0, 2.5), registry=r)
        self.queue_depth = Gauge("chorus_coordinator_queue_depth", "Requests waiting for a batch.", ["route"],
                                 registry=r)


# -- the service --------------------------------------------------------------------------------------


class CoordinatorService:
    """The models behind /embed and /decide: the coordinator's UAgent (U + its MiniLM), batched."""

    def __init__(self, agent: Any, settings: CoordinatorSettings, metrics: CoordinatorMetrics | None = None) -> None:
        self.agent = agent
        self.settings = settings
        self.metrics = metrics or CoordinatorMetrics()
        wait = settings.max_wait_ms / 1000.0
        common: dict[str, Any] = {"max_batch": settings.max_batch, "max_wait_s": wait,
                                  "max_queue": settings.max_queue, "metrics": self.metrics}
        self.embed_batcher: MicroBatcher[list[str], np.ndarray] = MicroBatcher("embed", self._embed_batch, **common)
        self.decide_batcher: MicroBatcher[TaskPayload, Any] = MicroBatcher("decide", agent.decide_batch, **common)

    # identity of the two models
    @property
    def embed_model(self) -> tuple[str, str]:
        return self.agent.text_model_name, "0x" + bytes(self.agent.text_model_id).hex()

    @property
    def decide_model(self) -> tuple[str, str]:
        ident = self.agent.identity
        return ident.model_name, "0x" + ident.model_id.hex()

    def start(self) -> "CoordinatorService":
        self.embed_batcher.start()
        self.decide_batcher.start()
        return self

    def close(self) -> None:
        self.embed_batcher.close()
        self.decide_batcher.close()

    def _embed_batch(self, requests: list[list[str]]) -> list[np.ndarray]:
        flat = [t for texts in requests for t in texts]
        vectors = self.agent.text_encoder.embed(flat)  # (sum n_i, 384)
        bounds = np.cumsum([0, *(len(texts) for texts in requests)])
        return [vectors[a:b] for a, b in itertools.pairwise(bounds)]

    async def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) unit vectors, computed in a batch with other waiting requests."""
        return await self._submit(self.embed_batcher, texts)

    async def decide(self, payload: TaskPayload) -> Any:
        """U's `UResult` for one payload, computed in a batch with other waiting requests."""
        return await self._submit(self.decide_batcher, payload)

    async def _submit(self, batcher: MicroBatcher, value: Any) -> Any:
        try:
            future = batcher.submit(value)
        except Overloaded as exc:
            self.metrics.requests.labels(route=batcher.name, outcome="overloaded").inc()
            raise HTTPException(status_code=503, detail=f"coordinator busy: {exc}; retry later") from None
        try:
            result = await asyncio.wrap_future(future)
        except Exception:
            self.metrics.requests.labels(route=batcher.name, outcome="error").inc()
            raise
        self.metrics.requests.labels(route=batcher.name, outcome="ok").inc()
        return result


# -- the routes ---------------------------------------------------------------------------------------


class EmbedResponse(BaseModel):
    model: str = Field(description="Manifest name of the text encoder, e.g. minilm-f32.")
    model_id: str = Field(description="sha256 of its ONNX file, 0x-hex: the embedding space's id on chain.")
    dim: int
    count: int
    embeddings: list[list[float]] = Field(description="One L2-normalised row per text, in request order.")


class DecideResponse(BaseModel):
    model: str = Field(description="Manifest name of the U model: u or u-int8.")
    model_id: str = Field(description="sha256 of the U ONNX file, 0x-hex (its ModelRegistry id).")
    text_model: str
    text_model_id: str
    action: Literal[Action.labels()]  # type: ignore[valid-type] - the labels, as the schema lists them
    confidence: int = Field(description="Probability of the action in basis points (0..10000), as TaskBoard takes it.")
    probs: dict[str, float] = Field(description="sell / hold / buy probabilities (zeros when U abstained).")
    modalities: list[str] = Field(description="The modalities U read.")
    embedding_commitment: str | None = Field(description="sha256 of the f32 little-endian U embedding, 0x-hex.")
    commitment_scheme: str
    embedding_dim: int
    embedding: list[float] | None = Field(default=None, description="The U embedding (only with ?embedding=true).")
    payload_hash: str = Field(description="sha256 of the request body: TaskBoard's payloadHash for these bytes.")
    note: str


def build_router(service: CoordinatorService) -> APIRouter:
    """/embed and /decide over `service`; limits from its settings. Mount with `create_app(extra_routers=...)`."""
    from agents.coordinator import COMMITMENT_SCHEME

    limits = service.settings
    Text = Annotated[str, StringConstraints(min_length=1, max_length=limits.max_text_chars)]

    class EmbedRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[Text] = Field(min_length=1, max_length=limits.max_texts,  # type: ignore[valid-type]
                                  description=f"1..{limits.max_texts} texts of 1..{limits.max_text_chars} characters.")

    # The route class bounds the body's size and nesting before any JSON parser sees it.
    router = APIRouter(tags=["coordinator"], route_class=guarded_route(limits.max_body_bytes))
    # The published chorus.task/1 schema (`schema` required, as `decode` requires it), as an OpenAPI
    # schema object: without the document's own $schema and $id.
    payload_schema = {k: v for k, v in json_schema().items() if k not in ("$schema", "$id")}
    busy = {"model": ErrorBody, "description": "Queue full: retry later"}

    @router.post("/embed", response_model=EmbedResponse, summary="Sentence embeddings (all-MiniLM-L6-v2)",
                 responses={400: {"model": ErrorBody, "description": "Body is not UTF-8 JSON"}, 503: busy})
    async def embed(body: EmbedRequest) -> Any:
        vectors = await service.embed(list(body.texts))
        name, model_id = service.embed_model
        return JSONResponse({"model": name, "model_id": model_id, "dim": int(vectors.shape[1]),
                             "count": int(vectors.shape[0]), "embeddings": vectors.tolist()})

    @router.post("/decide", response_model=DecideResponse, summary="U's decision and embedding commitment for a task",
                 responses={422: {"model": ErrorBody, "description": "Invalid parameters or payload"}, 503: busy},
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": payload_schema}}}})
    async def decide(request: Request,
                     embedding: bool = Query(False, description="Also return the U embedding itself."),
                     ) -> Any:
        raw = await request.body()
        payload = decode(raw)  # PayloadError -> 422 in the app's handler
        result = await service.decide(payload)
        out = result.output
        name, model_id = service.decide_model
        text_name, text_id = service.embed_model
        vector = out.embedding.vector if out.embedding is not None else None
        return JSONResponse({
            "model": name, "model_id": model_id, "text_model": text_name, "text_model_id": text_id,
            "action": Action(int(out.decision.action)).label, "confidence": out.decision.confidence,
            "probs": {a.label: float(p) for a, p in zip(Action, result.probs)},
            "modalities": list(result.modalities),
            "embedding_commitment": "0x" + out.commitment.hex() if out.commitment else None,
            "commitment_scheme": COMMITMENT_SCHEME, "embedding_dim": service.agent.identity.dim,
            "embedding": vector.tolist() if embedding and vector is not None else None,
            "payload_hash": "0x" + payload_hash(raw).hex(), "note": out.note,
        })

    return router
