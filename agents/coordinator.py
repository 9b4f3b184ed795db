"""The coordinator's agent (architectures 6 U and 7 U-rep): the unified model `u` on every modality.

One network reads all three modalities at once (per-modality tokens, cross-modal attention, a
shared embedding) instead of three agents each publishing a label. Its inputs are the same
features the agents use (`models.data.features`; headlines through all-MiniLM-L6-v2 f32, the text
features U was trained on, one slot per headline, which U reads as a token each) plus a presence
mask; its outputs are `probs` (B, 3) and the U `embedding` (B, e). The decision is argmax(probs)
with its probability in basis points. A modality U cannot read counts as missing: prices of fewer
than 8 points, more headlines than the sentiment feature has slots (HEADLINE_SLOTS).

What leaves the coordinator: the decision (on chain, `publishDecision`) and a commitment to the
embedding, `sha256(encoded embedding bytes)` (f32 little-endian, `node.protocol.codec.encode_vector`).
The commitment binds the coordinator to the exact vector behind its decision without paying for
the vector in calldata; whoever receives the vector later (GET /decide?embedding=true, a replica,
an auditor) checks it against the commitment. With `embedding_archs` the node can still publish
the vector itself in the registered `u` space (`publishEmbedding`).

`decide_batch` runs a whole batch with one text-encoder call and one U call: the coordinator's
HTTP service batches concurrent requests through it; the chain loop calls `run` (a batch of one).
Runtime code: onnxruntime and numpy only, never torch.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agents.base import Agent, AgentIdentity, AgentOutput, Decision, Embedding, Modality, Role, TaskInput, TextEncoder
from agents.onnx import encoding_of
from node.protocol.enums import AGENT_ROLES, Action
from node.protocol.errors import ModelError
from node.protocol.payload import TaskPayload

log = logging.getLogger(__name__)

U_MODELS = ("u", "u-int8")
"""Manifest entries the coordinator can run (f32 and dynamic-int8 weights of the same network)."""
U_INPUTS = tuple(role.label for role in AGENT_ROLES)
"""U's modality inputs, named by the agent roles that read them, in graph order; column j of the
presence mask is AGENT_ROLES[j] (`models.data.synthetic.MODALITIES`)."""
MIN_MARKET_POINTS = 8  # market_features needs at least 8 steps
COMMITMENT_SCHEME = "sha256(f32 little-endian embedding bytes)"



class UModel(Protocol):
    """What UAgent needs of `models.runtime.OnnxModel` (tests wrap one to count calls)."""

    name: str
    model_id: bytes
    dim: int
    dtype: str

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]: ...


def commit(embedding: Embedding) -> bytes:
    """The embedding commitment: sha256 of the vector's encoded bytes (what publishEmbedding would carry)."""
    return hashlib.sha256(embedding.to_bytes()).digest()


@dataclass(frozen=True)
class UResult:
    """One payload's U output: the agent output (decision, embedding, commitment) and the details."""

    output: AgentOutput
    probs: np.ndarray = field(repr=False)  # (3,) sell, hold, buy; zeros when it abstained
    modalities: tuple[str, ...] = ()
    """The modalities U saw (present in the payload and usable)."""


class UAgent(Agent):
    """Role coordinator, modality multimodal: U's decision and embedding commitment per task."""

    def __init__(self, model: UModel, text_encoder: TextEncoder, *, text_model_name: str = "minilm-f32",
                 text_model_id: bytes = b"") -> None:
        self.model = model
        self.text_encoder = text_encoder
        self.text_model_name = text_model_name
        self.text_model_id = text_model_id
        self.identity = AgentIdentity(Role.COORDINATOR, Modality.MULTIMODAL, bytes(model.model_id), int(model.dim),
                                      encoding_of(model.dtype), model.name, f"{model.name} on {text_model_name}",
                                      "onnx")

    def run(self, task: TaskInput) -> AgentOutput:
        return self.decide_batch([task.payload])[0].output

    def decide_batch(self, payloads: Sequence[TaskPayload]) -> list[UResult]:
        """U on a batch of payloads: one text-encoder call, one U call."""
        if not payloads:
            return []
        feats, mask, seen = self.features(payloads)
        usable = mask.any(axis=1)  # (B,)
        probs = np.zeros((len(payloads), len(Action)), np.float32)
        emb = np.zeros((len(payloads), self.identity.dim), np.float32)
        if usable.any():
            rows = np.flatnonzero(usable)
            out = self.model.run(**{k: v[rows] for k, v in feats.items()}, mask=mask[rows])
            probs[rows] = out["probs"]  # (b, 3)
            emb[rows] = out["embedding"]  # (b, e)
        return [self._result(probs[i], emb[i], seen[i]) if usable[i] else
                UResult(AgentOutput(Decision.abstain(), note="no modality U can read (prices need >= 8 points)"),
                        probs[i], ())
                for i in range(len(payloads))]

    def _result(self, probs: np.ndarray, vector: np.ndarray, seen: tuple[str, ...]) -> UResult:
        embedding = Embedding(vector.astype(np.float32), self.identity.model_id, self.identity.encoding)
        missing = [m for m in U_INPUTS if m not in seen]
        note = f"{self.model.name}" + (f" ({', '.join(missing)} missing)" if missing else "")
        output = AgentOutput(Decision.from_probs(probs), embedding, note=note, commitment=commit(embedding))
        return UResult(output, probs.astype(np.float32), seen)

    def features(self, payloads: Sequence[TaskPayload]) -> tuple[dict[str, np.ndarray], np.ndarray,
                                                                    list[tuple[str, ...]]]:
        """U's inputs for a batch: {modality: (B, F_k)} with zero rows where absent, mask (B, 3),
        and the modalities each row has."""
        from models.data.features import FEATURE_DIMS, flow_features, headlines_fit, market_features, text_features

        n = len(payloads)
        market, sentiment, risk = (AGENT_ROLES.index(r) for r in (Role.MARKET, Role.SENTIMENT, Role.RISK))
        x = {k: np.zeros((n, FEATURE_DIMS[k]), np.float32) for k in U_INPUTS}
        mask = np.zeros((n, len(U_INPUTS)), np.float32)  # (B, 3)
        for i, p in enumerate(payloads):
            if len(p.prices) >= MIN_MARKET_POINTS:
                x[U_INPUTS[market]][i] = market_features(p.prices, p.volumes)
                mask[i, market] = 1.0
            if p.flows:
                x[U_INPUTS[risk]][i] = flow_features(p.flows)
                mask[i, risk] = 1.0
            mask[i, sentiment] = 1.0 if headlines_fit(p.headlines) else 0.0
        if mask[:, sentiment].any():  # every headline U reads in the batch, in one encoder call
            x[U_INPUTS[sentiment]] = text_features([list(p.headlines) if mask[i, sentiment] else []
                                                    for i, p in enumerate(payloads)], self.text_encoder)  # (B, 1152)
        seen = [tuple(m for j, m in enumerate(U_INPUTS) if mask[i, j]) for i in range(n)]
        return x, mask, seen


TEXT_BATCH = 16
"""MiniLM rows per onnxruntime run. On a CPU the cost is per token, so longer runs gain nothing, while
they grow onnxruntime's memory arena (peak RSS) and the padding to the longest row; measured on
2 vCPUs, runs of 16 were faster per text than runs of 32 and peaked ~50 MB lower."""


def load_u_agent(name: str = "u", *, threads: int = 1, manifest_path: Path | None = None,
                 text_manifest_path: Path | None = None, text_encoder: tuple[Any, bytes, str] | None = None,
                 text_kind: str = "f32", text_batch: int = TEXT_BATCH) -> UAgent:
    """UAgent on `name` (u or u-int8) from `manifest_path` and MiniLM (`text_kind`, f32 by default: U
    was trained on f32 text features; runs of `text_batch` rows) from `text_manifest_path`, both the
    project's manifest by default; `text_encoder` = (encoder, model id, name) lets tests pass a fake."""
    from models.manifest import MANIFEST_PATH, load_manifest
    from models.runtime import OnnxModel

    path = Path(manifest_path or MANIFEST_PATH)
    entry = load_manifest(path).get(name)
    if entry is None:
        raise ModelError(f"no model {name!r} in {path}: the coordinator needs the unified model "
                         "(run `make setup`, or `chorus train --quick && chorus export`)")
    expected = set(U_INPUTS) | {"mask"}
    if set(entry.inputs) != expected or not {"probs", "embedding"} <= set(entry.outputs):
        raise ModelError(f"model {name!r} takes {entry.inputs} -> {entry.outputs}; a U model takes "
                         f"{sorted(expected)} -> probs, embedding")
    model = OnnxModel(name, path, threads=threads)
    if text_encoder is None:
        from models.minilm.runtime import load_default

        encoder = load_default(text_kind, Path(text_manifest_path or MANIFEST_PATH), threads=threads,
                               batch_size=text_batch)
        text_encoder = (encoder, bytes.fromhex(encoder.model_id), encoder.name)
        if text_kind != "f32":
            log.warning("U reads %s text features; it was trained on minilm-f32 ones", encoder.name)
    encoder, text_id, text_name = text_encoder
    return UAgent(model, encoder, text_model_name=text_name, text_model_id=text_id)
