"""Micro-batching: concurrent requests share onnxruntime calls, and each gets its own answer.

The requests are sent concurrently through the ASGI app (64 in flight on one event loop); the
model wrappers count the calls that reach onnxruntime."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest

from node.coordinator.batcher import MicroBatcher, Overloaded
from node.protocol.payload import encode, example_payload

N = 64


async def _post_all(app: Any, requests: list[dict[str, Any]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as client:
        return await asyncio.gather(*(client.post(**r) for r in requests))


def test_64_concurrent_embeds_share_calls_and_each_gets_its_own_vectors(coordinator: tuple[Any, Any],
                                                                        u_agent: Any) -> None:
    app, service = coordinator
    encoder = service.agent.text_encoder
    texts = [[f"headline number {i}: token {i * 7} moves {('up', 'down', 'sideways')[i % 3]}"] * (1 + i % 2)
             for i in range(N)]
    responses = asyncio.run(_post_all(app, [{"url": "/embed", "json": {"texts": t}} for t in texts]))
    assert all(r.status_code == 200 for r in responses)
    assert service.embed_batcher.items == N
    assert encoder.calls == service.embed_batcher.batches < N, encoder.rows
    assert max(encoder.rows) > 2  # requests really were merged
    onnx_runs = sum(math.ceil(rows / encoder.batch_size) for rows in encoder.rows)  # MiniLM cuts each call in runs
    assert onnx_runs < N
    expected = u_agent.text_encoder.embed([t[0] for t in texts])  # (N, 384), one call, unbatched order
    for i, r in enumerate(responses):
        got = np.asarray(r.json()["embeddings"], np.float32)
        assert got.shape == (len(texts[i]), 384)
        np.testing.assert_allclose(got, np.repeat(expected[i:i + 1], len(texts[i]), axis=0), atol=1e-5)


def test_64_concurrent_decides_share_calls_and_each_gets_its_own_decision(coordinator: tuple[Any, Any],
                                                                          u_agent: Any) -> None:
    app, service = coordinator
    u = service.agent.model
    payloads = [example_payload(i, asset=("ETH", "BTC", "SOL")[i % 3]) for i in range(N)]
    responses = asyncio.run(_post_all(app, [{"url": "/decide", "content": encode(p)} for p in payloads]))
    assert all(r.status_code == 200 for r in responses)
    assert u.calls == service.decide_batcher.batches < N and sum(u.rows) == N, u.rows
    text = service.agent.text_encoder  # every headline of a batch in one MiniLM call
    assert text.calls == u.calls and sum(math.ceil(r / text.batch_size) for r in text.rows) < N
    alone = [u_agent.decide_batch([p])[0] for p in payloads]  # batch of one each
    for r, one in zip(responses, alone, strict=True):
        body = r.json()
        np.testing.assert_allclose([body["probs"][a] for a in ("sell", "hold", "buy")], one.probs, atol=1e-5)
        assert body["action"] == one.output.decision.action.name.lower()
    commitments = {r.json()["embedding_commitment"] for r in responses}
    assert len(commitments) == N  # 64 payloads, 64 different embeddings


def test_batcher_respects_max_batch_and_fails_only_the_bad_request() -> None:
    sizes: list[int] = []

    def square(values: list[int]) -> list[int]:
        sizes.append(len(values))
        if -1 in values:
            raise ValueError("negative")
        return [v * v for v in values]

    batcher = MicroBatcher("square", square, max_batch=4, max_wait_s=0.05).start()
    futures = [batcher.submit(v) for v in [1, 2, -1, 3, 4, 5, 6]]
    assert [f.exception(timeout=5) is not None for f in futures] == [False, False, True, False, False, False, False]
    assert [f.result() for i, f in enumerate(futures) if i != 2] == [1, 4, 9, 16, 25, 36]
    assert max(sizes) <= 4
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.submit(7)


def test_a_full_queue_is_refused_and_a_lone_request_waits_at_most_max_wait() -> None:
    gate, taken = threading.Event(), threading.Event()

    def slow(values: list[int]) -> list[int]:
        taken.set()
        gate.wait(5)
        return values

    batcher = MicroBatcher("slow", slow, max_batch=1, max_wait_s=0.0, max_queue=2).start()
    first = batcher.submit(0)
    assert taken.wait(5), "the worker never took the first request"  # it holds `first`; the queue is empty
    batcher.submit(1), batcher.submit(2)
    with pytest.raises(Overloaded):
        batcher.submit(3)
    gate.set()
    assert first.result(timeout=5) == 0
    batcher.close()

    quick = MicroBatcher("quick", lambda v: v, max_batch=32, max_wait_s=0.02).start()
    t0 = time.perf_counter()
    assert quick.submit(1).result(timeout=5) == 1
    assert time.perf_counter() - t0 < 1.0  # not stuck waiting for 31 more
    quick.close()


def test_an_overloaded_coordinator_answers_503(u_agent: Any) -> None:
    from coordhelpers import Counting, make_app

    from agents.coordinator import UAgent

    gate = threading.Event()

    class Stalled(Counting):
        def embed(self, texts: list[str]) -> np.ndarray:
            gate.wait(5)
            return super().embed(texts)

    agent = UAgent(u_agent.model, Stalled(u_agent.text_encoder), text_model_name=u_agent.text_model_name,
                   text_model_id=u_agent.text_model_id)
    app, service = make_app(agent, max_batch=1, max_queue=1)
    threading.Timer(0.5, gate.set).start()
    try:
        responses = asyncio.run(_post_all(app, [{"url": "/embed", "json": {"texts": [f"t{i}"]}} for i in range(3)]))
    finally:
        gate.set()
        service.close()
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == 200 and codes[-1] == 503  # the worker holds one, the queue one more: the third waits nowhere
    refused = next(r for r in responses if r.status_code == 503).json()
    assert "busy" in refused["message"]
