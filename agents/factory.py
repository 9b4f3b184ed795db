"""Build the agent a node runs, loading its model once (the session is reused for every task).

`build_agent` looks the role up in `agents.registry.ROLE_AGENTS` (the builders below register
themselves there, one per role) and wraps the agent in its mode (`AGENT_MODES`, from
`agents.faults`); importing this module registers every built-in kind.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agents import faults  # RulesFusion; importing it registers the agent modes
from agents.base import Agent, Encoding, Role
from agents.fusion import FusionAgent, FusionHeads, TrainedHead
from agents.market import MarketAgent
from agents.onnx import AgentModel, encoding_of, find_agent_model
from agents.registry import AGENT_MODES, ROLE_AGENTS, AgentConfig, role_agent
from agents.risk import RiskAgent
from agents.sentiment import SentimentAgent
from node.protocol.errors import ModelError

log = logging.getLogger(__name__)

__all__ = ["AGENT_MODES", "ROLE_AGENTS", "AgentConfig", "build_agent", "build_agent_from", "encoder_identity",
           "load_fusion_heads", "load_text_encoder"]


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


def load_text_encoder(manifest_path: Path | None = None) -> tuple[Any, bytes, str, Encoding]:
    """all-MiniLM-L6-v2 through onnxruntime (models.minilm.runtime), from `manifest_path` (default the
    project's manifest): (encoder, model id, name, encoding)."""
    try:
        from models.manifest import MANIFEST_PATH
        from models.minilm.runtime import load_default
    except ImportError as exc:
        raise ModelError(f"the MiniLM runtime is not available ({exc}); run `make setup`") from None
    # One thread: four node processes share two cores; a task's few headlines are one small batch.
    encoder = load_default("f32", Path(manifest_path or MANIFEST_PATH), threads=1)
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


def load_fusion_heads(manifest_path: Path | None = None) -> FusionHeads:
    """The trained M-learned (decisions), M-learned-p (probabilities) and E-d (embeddings) heads
    from the manifest, where exported."""
    from models.manifest import MANIFEST_PATH, load_manifest
    from models.runtime import OnnxModel

    path = Path(manifest_path or MANIFEST_PATH)
    entries = load_manifest(path)
    embeddings = None
    stackers: dict[str, TrainedHead | None] = {}
    for name in ("m-learned-dec", "m-learned"):
        entry = entries.get(name)
        ok = entry is not None and set(entry.inputs) == {"scores", "mask"} and entry.file(path.parent).is_file()
        stackers[name] = TrainedHead(name, OnnxModel(name, path, threads=1)) if ok else None
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
    return FusionHeads(stackers["m-learned-dec"], stackers["m-learned"], embeddings)


def build_agent(role: str, **options: Any) -> Agent:
    """The agent for `role` in its mode; `options` are the other `AgentConfig` fields (`text_encoder`
    lets tests pass a small fake instead of MiniLM)."""
    return build_agent_from(AgentConfig(role, **options))


def build_agent_from(config: AgentConfig) -> Agent:
    """The role's agent (ConfigError naming the known roles if there is none), wrapped in its mode."""
    build = ROLE_AGENTS.get(config.role)
    wrap = AGENT_MODES.get(config.mode)  # before any model is loaded: a typo fails fast
    return wrap(build(config), config)


@role_agent(Role.MARKET)
def _market(config: AgentConfig) -> Agent:
    return MarketAgent(_trained(config.model_name or config.role, config.use_trained, config.manifest_path))


@role_agent(Role.SENTIMENT)
def _sentiment(config: AgentConfig) -> Agent:
    model = _trained(config.model_name or config.role, config.use_trained, config.manifest_path)
    encoder, model_id, name, encoding = config.text_encoder or load_text_encoder(config.text_manifest_path)
    return SentimentAgent(encoder, model_id, name, model, encoder_encoding=encoding)


@role_agent(Role.RISK)
def _risk(config: AgentConfig) -> Agent:
    return RiskAgent(_trained(config.model_name or config.role, config.use_trained, config.manifest_path))


@role_agent(Role.FUSION)
def _fusion(config: AgentConfig) -> Agent:
    if not config.use_trained:
        agent = FusionAgent()
    else:
        heads = load_fusion_heads(config.manifest_path)
        log.info("fusion heads: M-learned %s, M-learned-p %s, E-d %s (else the weighted vote decides)",
                 *(h.name if h else "none" for h in (heads.decisions, heads.probabilities, heads.embeddings)))
        agent = FusionAgent(heads.decisions, heads.embeddings, heads.probabilities)
    if config.fusion_rules is not None:
        agent = faults.RulesFusion(agent, *config.fusion_rules)
    return agent


@role_agent(Role.COORDINATOR)
def _coordinator(config: AgentConfig) -> Agent:
    if not config.use_trained:
        raise ModelError("the coordinator runs the trained unified model (u); it has no simple fallback")
    from agents.coordinator import load_u_agent

    encoder = config.text_encoder[:3] if config.text_encoder is not None else None
    return load_u_agent(config.model_name or "u", threads=config.threads, manifest_path=config.manifest_path,
                        text_manifest_path=config.text_manifest_path, text_encoder=encoder,
                        text_kind=config.text_kind, text_batch=config.text_batch)
