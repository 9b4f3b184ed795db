"""Agents: the one interface, deterministic fallback models, abstention on a missing modality,
the fusion vote, vector encodings, and the trained-ONNX path through the manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from testkit import tiny_head

from agents.base import Action, Decision, Embedding, Encoding, PeerOutput, TaskInput, decode_vector, encode_vector
from agents.factory import build_agent, encoder_identity
from agents.fusion import FusionAgent
from agents.market import MarketAgent
from agents.risk import RiskAgent
from agents.sentiment import SentimentAgent
from node.protocol.enums import MAX_CONFIDENCE, ZERO_MODEL_ID, Role
from node.protocol.payload import TaskPayload, example_payload


class HashEncoder:
    """A deterministic stand-in for MiniLM: words hash to fixed random vectors, averaged, normalised."""

    dim = 32

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            v = np.zeros(self.dim)
            for word in text.lower().split():
                seed = int.from_bytes(hashlib.sha256(word.strip(".,;:").encode()).digest()[:4], "little")
                v += np.random.default_rng(seed).standard_normal(self.dim)
            rows.append(v / (np.linalg.norm(v) + 1e-12))
        return np.asarray(rows, dtype=np.float32)


ENCODER = (HashEncoder(), hashlib.sha256(b"fake-minilm").digest(), "fake-minilm", Encoding.F32)


def task(payload: TaskPayload, peers: tuple[PeerOutput, ...] = (), arch: int = 2) -> TaskInput:
    return TaskInput(task_id=1, arch=arch, payload=payload, peers=peers)


def trending(direction: float) -> TaskPayload:
    prices = [100 * float(np.exp(direction * 0.01 * i)) for i in range(32)]
    return TaskPayload(asset="ETH", prices=prices, volumes=[1000.0] * 32)


# -- market / risk fallbacks -------------------------------------------------------------------------------


def test_market_fallback_follows_the_trend() -> None:
    agent = MarketAgent()
    assert agent.identity.role == Role.MARKET and not agent.identity.publishes_embeddings
    up = agent.run(task(trending(+1)))
    down = agent.run(task(trending(-1)))
    assert up.decision.action == Action.BUY and down.decision.action == Action.SELL
    assert up.embedding is None and 5000 < up.decision.confidence <= MAX_CONFIDENCE


def test_market_is_deterministic_and_abstains_without_prices() -> None:
    agent = MarketAgent()
    p = example_payload(4)
    assert agent.run(task(p)) == agent.run(task(p))
    out = agent.run(task(TaskPayload(asset="ETH", headlines=["news only"])))
    assert out.decision == Decision.abstain() and "missing" in out.note


def test_risk_fallback_reads_net_exchange_flows() -> None:
    agent = RiskAgent()
    leaving = [50, 400, 10, 20, 100, 5, 80, 4]  # outflow >> inflow: accumulation
    arriving = [400, 50, 10, 20, 100, 5, 80, 4]
    assert agent.run(task(TaskPayload(asset="ETH", flows=leaving))).decision.action == Action.BUY
    assert agent.run(task(TaskPayload(asset="ETH", flows=arriving))).decision.action == Action.SELL
    assert agent.run(task(TaskPayload(asset="ETH", headlines=["x"]))).decision == Decision.abstain()


# -- sentiment --------------------------------------------------------------------------------------------


def test_sentiment_publishes_the_encoder_embedding_in_its_space() -> None:
    agent = build_agent("sentiment", use_trained=False, text_encoder=ENCODER)
    assert isinstance(agent, SentimentAgent)
    ident = agent.identity
    assert ident.model_id == ENCODER[1] and ident.dim == HashEncoder.dim and ident.publishes_embeddings
    out = agent.run(task(TaskPayload(asset="ETH", headlines=["Prices surge as institutional demand soars"])))
    assert out.decision.action == Action.BUY  # nearest prototype
    assert out.embedding is not None and out.embedding.model_id == ENCODER[1]
    assert len(out.embedding.to_bytes()) == Encoding.F32.byte_length(HashEncoder.dim)
    assert abs(float(np.linalg.norm(out.embedding.vector)) - 1.0) < 1e-5
    assert agent.run(task(TaskPayload(asset="ETH", prices=[1.0, 2.0], volumes=[1.0, 1.0]))).embedding is None


class RecordingModel:
    """An AgentModel stand-in that records its inputs and always says buy."""

    name = "sentiment"
    model_id = hashlib.sha256(b"fake-sentiment").digest()
    dim = 4
    encoding = Encoding.F32

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def __call__(self, features: np.ndarray) -> dict[str, np.ndarray]:
        self.seen.append(np.atleast_2d(features))
        return {"embedding": np.full((1, 4), 0.5, np.float32), "probs": np.array([[0.1, 0.2, 0.7]], np.float32)}


def test_sentiment_model_reads_one_slot_per_headline_and_the_rule_past_its_slots() -> None:
    from models.data.embed import HashEmbedder
    from models.data.features import HEADLINE_SLOTS, SENTIMENT_DIM, TEXT_DIM

    enc, model = HashEmbedder(), RecordingModel()
    agent = SentimentAgent(enc, ENCODER[1], "fake-minilm", model=model)
    out = agent.run(task(TaskPayload(asset="ETH", headlines=["Token rallies", "Fees fall"])))
    assert out.decision.action == Action.BUY and out.embedding is not None
    assert out.embedding.model_id == model.model_id
    (x,) = model.seen
    assert x.shape == (1, SENTIMENT_DIM)
    slots = x[0].reshape(HEADLINE_SLOTS, TEXT_DIM)
    np.testing.assert_array_equal(slots[:2], enc.embed(["Token rallies", "Fees fall"]))  # payload order
    assert not slots[2].any()
    # more headlines than slots: the prototype rule decides, a decision only (its vector is MiniLM's)
    many = agent.run(task(TaskPayload(asset="ETH", headlines=["a", "b", "c", "d"])))
    assert len(model.seen) == 1 and many.embedding is None and "prototype rule" in many.note
    assert many.decision.confidence > 0


def test_u_features_have_one_slot_per_headline_and_no_sentiment_past_the_slots() -> None:
    from agents.coordinator import UAgent
    from models.data.embed import HashEmbedder
    from models.data.features import SENTIMENT_DIM, TEXT_DIM

    class NoModel:
        name, model_id, dim, dtype = "u", b"\x01" * 32, 8, "f32"

    enc = HashEmbedder()
    u = UAgent(NoModel(), enc)  # type: ignore[arg-type]
    feats, mask, seen = u.features([TaskPayload(asset="ETH", headlines=["b", "a"]),
                                    TaskPayload(asset="ETH", headlines=["a", "b", "c", "d"], flows=[1.0] * 8)])
    assert feats["sentiment"].shape == (2, SENTIMENT_DIM)
    np.testing.assert_array_equal(feats["sentiment"][0, :2 * TEXT_DIM], enc.embed(["b", "a"]).reshape(-1))
    assert not feats["sentiment"][1].any() and mask[1].tolist() == [0.0, 0.0, 1.0] and seen[1] == ("risk",)


def test_encoder_identity_needs_a_model_id() -> None:
    class Anonymous:
        def embed(self, texts: list[str]) -> np.ndarray:
            return np.zeros((len(texts), 4), np.float32)

    from node.protocol.errors import ModelError

    with pytest.raises(ModelError):
        encoder_identity(Anonymous())


def test_sentiment_with_the_real_minilm_when_available() -> None:
    runtime = pytest.importorskip("models.minilm.runtime")
    try:
        agent = build_agent("sentiment", use_trained=False)
    except Exception as exc:  # the ONNX export is made by `make setup`
        pytest.skip(f"MiniLM artifacts not built: {exc}")
    assert runtime is not None and agent.identity.dim == 384
    good = agent.run(task(TaskPayload(asset="ETH", headlines=["ETH rallies to a record high on huge inflows"])))
    bad = agent.run(task(TaskPayload(asset="ETH", headlines=["ETH crashes after exchange hack, investors flee"])))
    assert good.decision.action == Action.BUY and bad.decision.action == Action.SELL


# -- fusion ----------------------------------------------------------------------------------------------


def peer(role: Role, action: Action, confidence: int, agent: str = "") -> PeerOutput:
    return PeerOutput(agent=agent or f"0x{int(role):040x}", role=int(role), action=int(action), confidence=confidence)


def test_fusion_weighs_peers_by_role_and_confidence() -> None:
    agent = FusionAgent()
    assert agent.waits_for_peers and agent.identity.role == Role.FUSION
    out = agent.run(task(example_payload(1), (peer(Role.MARKET, Action.BUY, 9000), peer(Role.SENTIMENT, Action.SELL, 9000),
                                               peer(Role.RISK, Action.SELL, 5000))))
    assert out.decision.action == Action.BUY  # 0.45 vs 0.37
    assert 0 < out.decision.confidence < MAX_CONFIDENCE


def test_fusion_abstains_without_usable_peers_and_ignores_other_roles() -> None:
    agent = FusionAgent()
    assert agent.run(task(example_payload(1))).decision == Decision.abstain()
    other = PeerOutput(agent="0x1", role=int(Role.COORDINATOR), action=int(Action.BUY), confidence=9000)
    assert agent.run(task(example_payload(1), (other,))).decision == Decision.abstain()


def test_fusion_tie_is_hold() -> None:
    out = FusionAgent().run(task(example_payload(1), (peer(Role.SENTIMENT, Action.BUY, 5000),
                                                       peer(Role.SENTIMENT, Action.SELL, 5000, agent="0x2"))))
    assert out.decision.action == Action.HOLD


# -- decisions and encodings --------------------------------------------------------------------------------


def test_decision_from_probs_and_bounds() -> None:
    d = Decision.from_probs(np.array([0.1, 0.2, 0.7]))
    assert d == Decision(Action.BUY, 7000)
    with pytest.raises(ValueError):
        Decision(Action.BUY, MAX_CONFIDENCE + 1)
    with pytest.raises(ValueError):
        Decision.from_probs(np.array([0.5, np.nan, 0.5]))


unit_vectors = arrays(np.float32, st.integers(1, 70), elements=st.floats(-1, 1, width=32))


@given(unit_vectors, st.sampled_from(list(Encoding)))
@settings(max_examples=200)
def test_vector_encodings_have_the_protocol_lengths_and_round_trip(vector: np.ndarray, encoding: Encoding) -> None:
    data = encode_vector(vector, encoding)
    assert len(data) == encoding.byte_length(len(vector))
    back = decode_vector(data, encoding, dim=len(vector))
    assert back.shape == vector.shape
    if encoding == Encoding.F32:
        np.testing.assert_array_equal(back, vector)
    elif encoding == Encoding.F16:
        np.testing.assert_allclose(back, vector, atol=1e-3)
    elif encoding == Encoding.I8:
        np.testing.assert_allclose(back, vector, atol=0.5 / 127 + 1e-6)
    else:
        np.testing.assert_array_equal(back, np.where(vector >= 0, 1.0, -1.0))


# -- the trained-model path -----------------------------------------------------------------------------------


def _tiny_agent_model(path: Path, n_features: int, dim: int) -> None:
    """An ONNX graph x (B, F) -> embedding (B, dim) = tanh(x W), probs (B, 3) = softmax(x V)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((n_features, dim)).astype(np.float32), "W")
    v = numpy_helper.from_array(rng.standard_normal((n_features, 3)).astype(np.float32), "V")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Tanh", ["h"], ["embedding"]),
             helper.make_node("MatMul", ["x", "V"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(nodes, "agent", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n_features])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, dim]),
                               helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 3])], [w, v])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_trained_onnx_model_from_the_manifest_is_used(tmp_path: Path) -> None:
    from models.data.features import FLOW_DIM, MARKET_DIM
    from models.manifest import ManifestEntry, sha256_file, upsert_entries

    manifest = tmp_path / "manifest.json"
    for name, features in (("market", MARKET_DIM), ("risk", FLOW_DIM)):
        path = tmp_path / f"{name}.onnx"
        _tiny_agent_model(path, features, 16)
        upsert_entries([ManifestEntry(name, path.name, sha256_file(path), 16, "f16", ["x"], ["embedding", "probs"])],
                       manifest)
    market = build_agent("market", manifest_path=manifest)
    assert market.identity.backend == "onnx" and market.identity.dim == 16
    assert market.identity.encoding == Encoding.F16 and market.identity.model_id != ZERO_MODEL_ID
    out = market.run(task(example_payload(2)))
    assert out.embedding is not None and len(out.embedding.to_bytes()) == 32
    assert out.embedding.model_id == market.identity.model_id
    risk = build_agent("risk", manifest_path=manifest)
    assert risk.run(task(example_payload(2))).embedding is not None
    # A short series falls back to the rule rather than failing.
    short = TaskPayload(asset="ETH", prices=[1.0, 1.1, 1.2], volumes=[1.0, 1.0, 1.0])
    assert market.run(task(short)).embedding is None
    # Without the manifest entry the simple model runs.
    assert build_agent("market", manifest_path=tmp_path / "none.json").identity.backend == "numpy"
    assert build_agent("market", manifest_path=manifest, use_trained=False).identity.backend == "numpy"


def test_unknown_role_is_refused() -> None:
    from node.protocol.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown agent role 'oracle'; known: market, sentiment, risk, fusion, coordinator"):
        build_agent("oracle")


def test_embedding_bytes_follow_its_encoding() -> None:
    emb = Embedding(np.ones(10, np.float32), b"\x01" * 32, Encoding.BINARY)
    assert emb.to_bytes() == bytes([0xFF, 0xC0])
    assert json.dumps(Decision.abstain().confidence) == "0"


def test_fusion_uses_trained_heads_only_on_vectors_of_their_spaces(tmp_path: Path) -> None:
    from node.protocol.codec import encode_vector as codec
    from models.manifest import ManifestEntry, sha256_file, upsert_entries

    manifest = tmp_path / "manifest.json"
    entries = []
    for name in ("market", "sentiment", "risk"):  # the agents' spaces (files only hashed here)
        (tmp_path / f"{name}.onnx").write_bytes(name.encode())
        entries.append(ManifestEntry(name, f"{name}.onnx", sha256_file(tmp_path / f"{name}.onnx"), 4, "i8",
                                     ["features"], ["embedding", "probs"]))
    tiny_head(tmp_path / "m-learned-dec.onnx", {"scores": 9, "mask": 3})
    tiny_head(tmp_path / "e-d4.onnx", {"embeddings": 12, "mask": 3})
    entries.append(ManifestEntry("m-learned-dec", "m-learned-dec.onnx", sha256_file(tmp_path / "m-learned-dec.onnx"),
                                 3, "f32", ["scores", "mask"], ["probs"]))
    entries.append(ManifestEntry("e-d4", "e-d4.onnx", sha256_file(tmp_path / "e-d4.onnx"), 3, "f32",
                                 ["embeddings", "mask"], ["probs"],
                                 {"agents": ["market", "sentiment", "risk"], "embedding_dim": 4,
                                  "embedding_dtype": "i8"}))
    upsert_entries(entries, manifest)
    agent = build_agent("fusion", manifest_path=manifest)
    assert agent.identity.backend == "onnx" and "e-d4" in agent.identity.decider

    ids = {e.name: e.model_id for e in entries}
    vec = np.array([0.5, -0.5, 0.25, 1.0], np.float32)

    def with_vector(role: Role, model_id: bytes) -> PeerOutput:
        return PeerOutput(agent=f"0x{int(role)}", role=int(role), action=int(Action.BUY), confidence=8000,
                          model_id=model_id, encoding=int(Encoding.I8), vector=codec(vec, "i8"))

    peers = (with_vector(Role.MARKET, ids["market"]), with_vector(Role.SENTIMENT, ids["sentiment"]),
             with_vector(Role.RISK, b"\x09" * 32))  # risk's vector is from another space
    out = agent.run(task(example_payload(1), peers, arch=5))
    assert out.note == "e-d4 head over 2 embeddings"
    alien = tuple(with_vector(Role(int(p.role)), b"\x09" * 32) for p in peers)
    assert agent.run(task(example_payload(1), alien, arch=5)).note.startswith("vote")
    assert agent.run(task(example_payload(1), peers, arch=3)).note == "m-learned-dec head"
    assert agent.run(task(example_payload(1), peers, arch=2)).note.startswith("vote")
