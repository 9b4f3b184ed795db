"""The market agent: reads the price/volume series.

With the trained `market` ONNX model (features from `models.data.features.market_features`) it
publishes that model's embedding and decision; without it, a deterministic momentum rule decides
(decisions only).
"""

from __future__ import annotations

import logging

import numpy as np

from agents.base import Agent, AgentIdentity, AgentOutput, Decision, Embedding, Modality, Role, TaskInput, softmax
from agents.onnx import AgentModel

log = logging.getLogger(__name__)

MIN_POINTS_MODEL = 8  # market_features needs at least 8 steps


def momentum_probs(prices: list[float], volumes: list[float]) -> np.ndarray:
    """(sell, hold, buy) from a volume-weighted momentum t-statistic: the simple fallback model."""
    p = np.asarray(prices, dtype=np.float64)
    r = np.diff(np.log(p))  # (T-1,)
    if len(r) == 0 or not np.any(r):
        return np.array([0.0, 1.0, 0.0])
    v = np.asarray(volumes, dtype=np.float64)[1:] + 1e-9
    w = v / v.mean()
    t = float((w * r).sum() / (r.std() * np.sqrt(len(r)) + 1e-12))
    s = float(np.tanh(t / 2.0))  # in (-1, 1): strength and direction of the trend
    return softmax(4.0 * np.array([-s, 0.3 - abs(s), s]))


class MarketAgent(Agent):
    def __init__(self, model: AgentModel | None = None) -> None:
        self.model = model
        if model is not None:
            self.identity = AgentIdentity(Role.MARKET, Modality.SERIES, model.model_id, model.dim, model.encoding,
                                          model.name, model.name, "onnx")
        else:
            self.identity = AgentIdentity(Role.MARKET, Modality.SERIES, decider="momentum-rule", backend="numpy")

    def run(self, task: TaskInput) -> AgentOutput:
        p = task.payload
        if not p.prices:
            return AgentOutput(Decision.abstain(), note="market modality missing")
        if self.model is not None and len(p.prices) >= MIN_POINTS_MODEL:
            from models.data.features import market_features

            out = self.model(market_features(p.prices, p.volumes))
            emb = Embedding(out["embedding"][0].astype(np.float32), self.model.model_id, self.model.encoding)
            return AgentOutput(Decision.from_probs(out["probs"][0]), emb)
        return AgentOutput(Decision.from_probs(momentum_probs(p.prices, p.volumes)),
                           note="" if self.model is None else "series too short for the model: momentum rule")
