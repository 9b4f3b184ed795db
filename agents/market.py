"""The market agent: reads the price/volume series.

With the trained `market` ONNX model (features from `models.data.features.market_features`) it
publishes that model's embedding and decision; without it, a deterministic momentum rule decides
(decisions only).
"""

from __future__ import annotations

import logging

import numpy as np

from agents.base import Modality, Role
from agents.feature import FeatureAgent, signal_probs
from node.protocol.payload import TaskPayload

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
    return signal_probs(float(np.tanh(t / 2.0)))  # tanh: strength and direction of the trend


class MarketAgent(FeatureAgent):
    role = Role.MARKET
    modality = Modality.SERIES
    rule_name = "momentum-rule"
    fallback_note = "series too short for the model: momentum rule"

    def present(self, payload: TaskPayload) -> bool:
        return bool(payload.prices)

    def model_reads(self, payload: TaskPayload) -> bool:
        return len(payload.prices) >= MIN_POINTS_MODEL

    def features(self, payload: TaskPayload) -> np.ndarray:
        from models.data.features import market_features

        return market_features(payload.prices, payload.volumes)

    def rule_probs(self, payload: TaskPayload) -> np.ndarray:
        return momentum_probs(payload.prices, payload.volumes)
