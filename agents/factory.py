"""Build the agent a node runs, loading its model once (the session is reused for every task)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agents.base import Agent, Encoding
from agents.fusion import FusionAgent, TrainedHead
from agents.market import MarketAgent
from agents.onnx import AgentModel, encoding_of, find_agent_model
from agents.risk import RiskAgent
from agents.sentiment import SentimentAgent
from node.protocol.errors import ModelError

log = logging.getLogger(__name__)

ROLES = ("market", "sentiment", "risk", "fusion", "coordinator")


def _trained(name: str, use_trained: bool, manifest_path: Path | None) -> AgentModel | None:
    if not use_trained:
        log.info("trained model disabled by settings: %s uses its simple numpy model", name)
        return None
    model = find_agent_model(name, manifest_path)
    if model is None:
        log.info("no trained ONNX model %r in the manifest: the simple deterministic numpy model decides", name)
    else:
        log.info("using trained ONNX model %s (%s, dim %d)", model.name, model.path.name, model.dim)
    return model


def load_text_encoder() -> tuple[Any, bytes, str, Encoding]:
    """all-MiniLM-L6-v2 through onnxruntime (models.minilm.runtime): (encoder, model id, name, encoding)."""
    try:
        from models.minilm.runtime import load_default
    except ImportError as exc:
        raise ModelError(f"the MiniLM runtime is not available ({exc}); run `make setup`") from None
    # One thread: four node processes share two cores; a task's few headlines are one small batch.
    encoder = load_default("f32", threads=1)
    return (encoder, *encoder_identity(encoder))


def encoder_identity(encoder: Any) -> tuple[bytes, str, Encoding]:
    """(model id, name, encoding) of a text encoder, from its manifest entry."""
    entry = getattr(encoder, "entry", None)
    if entry is not None:
        return bytes(entry.model_id), str(entry.name), encoding_of(entry.dtype)
    model_id = getattr(encoder, "model_id", None)
    if isinstance(model_id, str):
        model_id = bytes.fromhex(model_id.removeprefix("0x"))
    if not isinstance(model_id, (bytes, bytearray)) or len(model_id) != 32:
        raise ModelError("the text encoder does not say which ONNX file it runs (no manifest entry / model id)")
    return bytes(model_id), str(getattr(encoder, "name", "minilm")), Encoding.F32


def load_fusion_heads(manifest_path: Path | None = None) -> tuple[TrainedHead | None, TrainedHead | None]:
    """The trained M-learned (decisions) and E-d (embeddings) heads from the manifest, if exported."""
    from models.manifest import MANIFEST_PATH, load_manifest
    from models.runtime import OnnxModel

    path = Path(manifest_path or MANIFEST_PATH)
    entries = load_manifest(path)
    decisions = embeddings = None
    dec = entries.get("m-learned-dec")
    if dec is not None and set(dec.inputs) == {"scores", "mask"} and dec.file(path.parent).is_file():
        decisions = TrainedHead(dec.name, OnnxModel(dec.name, path, threads=1))
    for entry in sorted(entries.values(), key=lambda e: e.name):
        if not entry.name.startswith("e-d") or set(entry.inputs) != {"embeddings", "mask"}:
            continue
        if entry.name.endswith("-int8") or not entry.file(path.parent).is_file():
            continue
        agents = entry.extra.get("agents") or []
        spaces = []
        for name in agents:
            agent = entries.get(name)
            if agent is None or agent.dim != entry.extra.get("embedding_dim"):
                break
            spaces.append((agent.model_id, agent.dim, encoding_of(entry.extra.get("embedding_dtype", agent.dtype))))
        if len(spaces) == 3 and len(agents) == 3:
            embeddings = TrainedHead(entry.name, OnnxModel(entry.name, path, threads=1), tuple(spaces))
            break
    return decisions, embeddings


def build_agent(role: str, *, model_name: str | None = None, use_trained: bool = True,
                manifest_path: Path | None = None, text_encoder: tuple[Any, bytes, str, Encoding] | None = None) -> Agent:
    """The agent for `role`; `text_encoder` lets tests pass a small fake instead of MiniLM."""
    if role not in ROLES:
        raise ModelError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if role == "fusion":
        if not use_trained:
            return FusionAgent()
        decisions, embeddings = load_fusion_heads(manifest_path)
        log.info("fusion heads: M-learned %s, E-d %s (else the weighted vote decides)",
                 decisions.name if decisions else "none", embeddings.name if embeddings else "none")
        return FusionAgent(decisions, embeddings)
    if role == "coordinator":
        if not use_trained:
            raise ModelError("the coordinator runs the trained unified model (u); it has no simple fallback")
        from agents.coordinator import load_u_agent

        encoder = text_encoder[:3] if text_encoder is not None else None
        return load_u_agent(model_name or "u", manifest_path=manifest_path, text_encoder=encoder)
    model = _trained(model_name or role, use_trained, manifest_path)
    if role == "market":
        return MarketAgent(model)
    if role == "risk":
        return RiskAgent(model)
    encoder, model_id, name, encoding = text_encoder or load_text_encoder()
    return SentimentAgent(encoder, model_id, name, model, encoder_encoding=encoding)
