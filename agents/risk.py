"""The risk agent: reads the on-chain flows.

With the trained `risk` ONNX model (features from `models.data.features.flow_features`) it
publishes that model's embedding and decision; without it, a deterministic rule on net exchange
flow decides (decisions only): coins leaving exchanges is read as accumulation (buy), coins
arriving as distribution (sell).
"""

from __future__ import annotations

import numpy as np

from agents.base import Modality, Role
from agents.feature import FeatureAgent, signal_probs
from node.protocol.payload import FLOW_NAMES, TaskPayload

_IN, _OUT = FLOW_NAMES.index("exchange_inflow"), FLOW_NAMES.index("exchange_outflow")
_MINT, _ADDR = FLOW_NAMES.index("stablecoin_mint"), FLOW_NAMES.index("active_addresses")


def netflow_probs(flows: list[float]) -> np.ndarray:
    """(sell, hold, buy) from log net exchange outflow and stablecoin mints: the fallback model."""
    f = np.log1p(np.asarray(flows, dtype=np.float64))  # (8,)
    score = (f[_OUT] - f[_IN]) + 0.25 * (f[_MINT] - f[_ADDR] + 2.0)
    return signal_probs(float(np.tanh(score)))


class RiskAgent(FeatureAgent):
    role = Role.RISK
    modality = Modality.FLOWS
    rule_name = "netflow-rule"

    def present(self, payload: TaskPayload) -> bool:
        return bool(payload.flows)

    def features(self, payload: TaskPayload) -> np.ndarray:
        from models.data.features import flow_features

        return flow_features(payload.flows)

    def rule_probs(self, payload: TaskPayload) -> np.ndarray:
        return netflow_probs(payload.flows)
