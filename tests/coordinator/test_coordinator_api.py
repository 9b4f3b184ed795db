"""The coordinator's routes over the real models: /embed and /decide answers, the model id in each,
bad input refused with 422 (without echoing it), and the node routes still served beside them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from models.manifest import load_manifest
from node.protocol.payload import TaskPayload, encode, example_payload

MANIFEST = load_manifest()


@pytest.fixture
def client(coordinator: tuple[Any, Any]) -> TestClient:
    return TestClient(coordinator[0])


def test_embed_returns_unit_vectors_in_minilms_space(client: TestClient, u_agent: Any) -> None:
    texts = ["ETH rallies as institutional demand surges", "Exchange hack triggers a sell-off", "quiet day"]
    r = client.post("/embed", json={"texts": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    vectors = np.asarray(body["embeddings"], dtype=np.float32)
    assert vectors.shape == (3, 384) and body["dim"] == 384 and body["count"] == 3
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, u_agent.text_encoder.embed(texts), atol=1e-5)
    assert body["model"] == "minilm-f32" and body["model_id"] == "0x" + MANIFEST["minilm-f32"].sha256


@pytest.mark.parametrize("body, where", [
    ({"texts": []}, "texts"),                                # empty list
    ({"texts": ["a"] * 9}, "texts"),                          # more than max_texts (8 here)
    ({"texts": ["x" * 101]}, "texts.0"),                      # longer than max_text_chars (100 here)
    ({"texts": [""]}, "texts.0"),                             # empty text
    ({"texts": ["ok", 3]}, "texts.1"),                        # not a string
    ({"texts": "just one string"}, "texts"),
    ({}, "texts"),
    ({"texts": ["ok"], "model": "other"}, "model"),           # unknown field
])
def test_embed_refuses_bad_input_with_422(client: TestClient, body: dict, where: str) -> None:
    r = client.post("/embed", json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["error"] == "invalid_request" and f"body.{where}" in err["message"]
    assert "x" * 101 not in err["message"]  # the offending input is not echoed


def test_decide_returns_a_decision_and_the_embedding_commitment(client: TestClient, u_agent: Any) -> None:
    payload = example_payload(3)
    raw = encode(payload)
    r = client.post("/decide", content=raw, params={"embedding": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "u" and body["model_id"] == "0x" + MANIFEST["u"].sha256
    assert body["text_model_id"] == "0x" + MANIFEST["minilm-f32"].sha256
    assert body["action"] in ("sell", "hold", "buy") and 0 <= body["confidence"] <= 10_000
    probs = [body["probs"][a] for a in ("sell", "hold", "buy")]
    assert abs(sum(probs) - 1) < 1e-4 and body["action"] == ("sell", "hold", "buy")[int(np.argmax(probs))]
    assert body["confidence"] == round(max(probs) * 10_000)
    assert body["modalities"] == ["market", "sentiment", "risk"]
    # The commitment is sha256 of the f32 little-endian embedding: checkable from the vector alone.
    vector = np.asarray(body["embedding"], dtype="<f4")
    assert vector.shape == (body["embedding_dim"],) == (32,)
    assert body["embedding_commitment"] == "0x" + hashlib.sha256(vector.tobytes()).hexdigest()
    assert body["payload_hash"] == "0x" + hashlib.sha256(raw).hexdigest()
    # Same answer as the agent the chain loop runs.
    direct = u_agent.decide_batch([payload])[0].output
    assert (body["action"], body["confidence"]) == (direct.decision.action.name.lower(), direct.decision.confidence)
    assert body["embedding_commitment"] == "0x" + direct.commitment.hex()
    # Without ?embedding=true the vector stays home; the commitment does not change.
    plain = client.post("/decide", content=raw).json()
    assert plain["embedding"] is None and plain["embedding_commitment"] == body["embedding_commitment"]


def test_decide_with_missing_modalities(client: TestClient) -> None:
    text_only = TaskPayload(asset="ETH", headlines=["ETH rallies as institutional demand surges"])
    body = client.post("/decide", content=encode(text_only)).json()
    assert body["modalities"] == ["sentiment"] and body["embedding_commitment"] is not None
    short = TaskPayload(asset="ETH", prices=[1.0, 1.1, 1.2], volumes=[1.0, 1.0, 1.0])  # < 8 points: unreadable
    body = client.post("/decide", content=encode(short)).json()
    assert (body["action"], body["confidence"], body["embedding_commitment"]) == ("hold", 0, None)
    assert body["modalities"] == [] and "no modality" in body["note"]


@pytest.mark.parametrize("raw, needle", [
    (b"{not json", "not UTF-8 JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"schema": "chorus.task/9", "asset": "ETH"}).encode(), "unsupported payload schema"),
    (json.dumps({"schema": "chorus.task/1", "asset": "ETH", "prices": [1.0, -2.0], "volumes": [1, 1]}).encode(),
     "prices.1"),
    (json.dumps({"schema": "chorus.task/1", "asset": "ETH"}).encode(), "at least one modality"),
    (b'{"schema": "chorus.task/1", "asset": "ETH", "asset": "BTC", "headlines": ["x"]}', "duplicate key"),
    (json.dumps({"schema": "chorus.task/1", "asset": "ETH", "headlines": ["x"], "extra": 1}).encode(), "extra"),
])
def test_decide_refuses_malformed_payloads_with_422(client: TestClient, raw: bytes, needle: str) -> None:
    r = client.post("/decide", content=raw)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "PayloadError" and needle in r.json()["message"]


def test_node_routes_and_metrics_are_served_beside(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/info").json()["role"] == "coordinator"
    assert client.get("/tasks/7").status_code == 404
    client.post("/embed", json={"texts": ["hello"]})
    metrics = client.get("/metrics").text
    assert 'chorus_coordinator_requests_total{outcome="ok",route="embed"}' in metrics
    assert "chorus_coordinator_batch_size_bucket" in metrics and "chorus_tasks_seen_total" in metrics
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/embed", "/decide", "/health", "/tasks/{task_id}"} <= set(paths)
