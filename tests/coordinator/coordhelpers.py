"""Helpers of the coordinator tests: call-counting model wrappers, a chain-less NodeView, and the
coordinator app (node routes + /embed + /decide) over a given agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI

from node.runtime.metrics import NodeMetrics
from node.runtime.store import Store


class Counting:
    """Wraps a model (`run`) or text encoder (`embed`) and counts the calls: one per onnxruntime
    session call for U; one per `embed` call for MiniLM (which cuts it into runs of `text_batch` rows)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.rows: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        self.rows.append(len(inputs["mask"]))
        return self.inner.run(**inputs)

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.rows.append(len(texts))
        return self.inner.embed(texts)


@dataclass
class View:
    """The NodeView the node routes read (no chain here)."""

    store: Store = field(default_factory=lambda: Store(":memory:"))
    metrics: NodeMetrics = field(default_factory=lambda: NodeMetrics("coordinator"))

    def info(self) -> dict[str, Any]:
        return {"address": "0x" + "11" * 20, "role": "coordinator", "endpoint": "http://127.0.0.1:8800",
                "model_id": "0x" + "00" * 32, "model_name": "u", "decider": "u on minilm-f32",
                "model_backend": "onnx", "embedding_dim": 32, "embedding_encoding": "f32", "chain_id": 31337,
                "contracts": {}, "last_processed_block": None, "confirmations": 0, "version": "chorus-node/1"}

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "chain_reachable": True, "registered": True, "head_block": 1,
                "last_processed_block": 1, "uptime_s": 1.0}


def make_app(agent: Any, **limits: Any) -> tuple[FastAPI, Any]:
    from node.runtime.api import create_app
    from node.coordinator.service import CoordinatorMetrics, CoordinatorService, CoordinatorSettings, build_router

    settings = CoordinatorSettings(**limits)
    view = View()
    service = CoordinatorService(agent, settings, CoordinatorMetrics(view.metrics.registry)).start()
    return create_app(view, extra_routers=[build_router(service)]), service
