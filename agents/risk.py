"""The risk agent: reads the on-chain flows.

With the trained `risk` ONNX model (features from `models.data.features.flow_features`) it
publishes that model's embedding and decision; without it, a deterministic rule on net exchange
flow decides (decisions only): coins leaving exchanges is read as accumulation (buy), coins
arriving as distribution (sell).
"""

from __future__ import annotations

import numpy as np

from agents.base import Agent, AgentIdentity, AgentOutput, Decision, Embedding, Modality, Role, TaskInput, softmax
from agents.onnx import AgentModel
from node.protocol.payload import FLOW_NAMES

_IN, _OUT = FLOW_NAMES.index("exchange_inflow"), FLOW_NAMES.index("exchange_outflow")
_MINT, _ADDR = FLOW_NAMES.index("stablecoin_mint"), FLOW_NAMES.index("active_addresses")


def netflow_probs(flows: list[float]) -> np.ndarray:
    """(sell, hold, buy) from log net exchange outflow and stablecoin mints: the fallback model."""
    f = np.log1p(np.asarray(flows, dtype=np.float64))  # (8,)
    score = (f[_OUT] - f[_IN]) + 0.25 * (f[_MINT] - f[_ADDR] + 2.0)
    s = float(np.tanh(score))
    return softmax(4.0 * np.array([-s, 0.3 - abs(s), s]))


class RiskAgent(Agent):
    def __init__(self, model: AgentModel | None = None) -> None:
        self.model = model
        if model is not None:
            self.identity = AgentIdentity(Role.RISK, Modality.FLOWS, model.model_id, model.dim, model.encoding,
                                          model.name, model.name, "onnx")
        else:
            self.identity = AgentIdentity(Role.RISK, Modality.FLOWS, decider="netflow-rule", backend="numpy")

    def run(self, task: TaskInput) -> AgentOutput:
        p = task.payload
        if not p.flows:
            return AgentOutput(Decision.abstain(), note="risk modality missing")
        if self.model is not None:
            from models.data.features import flow_features

            out = self.model(flow_features(p.flows))
            emb = Embedding(out["embedding"][0].astype(np.float32), self.model.model_id, self.model.encoding)
            return AgentOutput(Decision.from_probs(out["probs"][0]), emb)
        return AgentOutput(Decision.from_probs(netflow_probs(p.flows)))
