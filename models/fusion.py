"""Numpy-side fusion rules and vector codecs shared by evaluation and the agents at run time.

No torch. These functions define what the modular architectures do with what travels on chain:

- `decision(probs)`: an agent's published decision, action = argmax, confidence = max prob in
  basis points (0..10000).
- `m_fixed`: the TaskBoard's on-chain rule, bit for bit: tally[action_i] += weight_bps(role_i) *
  confidence_bps_i over the agents that decided; the action with the strictly largest tally wins;
  a tie for the largest, or all-zero tallies, gives hold.
- `m_rules`: hand-written if/else rules on the agents' decisions.
- `Hedge`: online regret-based weighting of agents (multiplicative weights); the fused action is the
  m_fixed vote with the Hedge weights in place of the fixed ones.
- `stack_probs`, `decision_scores`: the M-learned heads' input, from the agents' probabilities or
  from their published decisions only.

How vectors travel on chain (`quantize`, `encode_vector`, ...) is the protocol's: `node.protocol.codec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from node.protocol.enums import AGENT_ROLES, Action, Role

ROLES = tuple(r.label for r in AGENT_ROLES)
"""The agents' role labels in the order of the fusion heads' inputs (the columns of every (N, 3) array here)."""
FIXED_WEIGHTS_BPS = {Role.MARKET.label: 5000, Role.SENTIMENT.label: 3000, Role.RISK.label: 2000}
"""The chain's default per-role weights for the modular baseline (0.5a + 0.3b + 0.2c)."""


def decision(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(action, confidence in basis points) from class probabilities (..., C)."""
    p = np.asarray(probs, dtype=np.float64)
    action = p.argmax(axis=-1)
    conf = np.clip(np.rint(p.max(axis=-1) * 10000), 0, 10000).astype(np.int64)
    return action.astype(np.int64), conf


def m_fixed(actions: np.ndarray, confs_bps: np.ndarray, present: np.ndarray,
            weights_bps: Sequence[int], n_classes: int = 3) -> np.ndarray:
    """The on-chain weighted vote for a batch. actions, confs_bps, present: (N, A); weights: (A,).

    Integer arithmetic as on chain. With 3 classes a tie for the top tally gives hold (1); with more
    classes (image regions) it gives the lowest tied class.
    """
    actions = np.asarray(actions, dtype=np.int64)
    votes = np.asarray(confs_bps, dtype=np.int64) * np.asarray(weights_bps, dtype=np.int64)[None, :]
    votes = votes * np.asarray(present, dtype=bool)
    tally = np.zeros((len(actions), n_classes), dtype=np.int64)
    for a in range(actions.shape[1]):
        np.add.at(tally, (np.arange(len(actions)), actions[:, a]), votes[:, a])
    top = tally.max(axis=1, keepdims=True)
    tied = (tally == top).sum(axis=1) > 1
    out = tally.argmax(axis=1)
    if n_classes == 3:
        out = np.where(tied | (top[:, 0] == 0), int(Action.HOLD), out)
    return out.astype(np.int64)


def m_fixed_one(decisions: Sequence[tuple[str, int, int]],
                weights_bps: dict[str, int] | None = None) -> int:
    """The chain rule for one task from (role, action, confidence_bps) decisions."""
    w = weights_bps or FIXED_WEIGHTS_BPS
    tally = [0] * len(Action)
    for role, action, conf in decisions:
        tally[int(action)] += int(w.get(role, 0)) * int(conf)
    top = max(tally)
    if top == 0 or tally.count(top) > 1:
        return int(Action.HOLD)
    return tally.index(top)


@dataclass(frozen=True)
class RuleParams:
    """Thresholds of the if/else rules (confidences as fractions)."""

    risk_veto: float = 0.6
    """Risk agent says sell at least this confident -> sell, whatever the others say."""
    lead: float = 0.5
    """Market (then sentiment) alone decides when at least this confident."""


RULE_GRID = (RuleParams(), RuleParams(0.5, 0.45), RuleParams(0.7, 0.55), RuleParams(0.8, 0.6),
             RuleParams(0.55, 0.5), RuleParams(1.01, 0.5))
"""Rule settings tried in order; M-rules gets as many as the tuning budget allows trials."""


def m_rules(actions: np.ndarray, confs_bps: np.ndarray, present: np.ndarray,
            params: RuleParams = RuleParams()) -> np.ndarray:
    """If/else rules on (market, sentiment, risk) decisions, batch (N, 3) arrays:

    1. risk says sell with confidence >= risk_veto: sell;
    2. market and sentiment agree: that action;
    3. market confident (>= lead): market's action; else sentiment confident: sentiment's action;
    4. otherwise hold. Absent agents never trigger a rule.
    """
    a = np.asarray(actions)
    c = np.asarray(confs_bps) / 10000.0
    p = np.asarray(present, dtype=bool)
    out = np.full(len(a), int(Action.HOLD), dtype=np.int64)
    decided = np.zeros(len(a), dtype=bool)

    def take(cond: np.ndarray, value: np.ndarray | int) -> None:
        nonlocal decided
        sel = cond & ~decided
        out[sel] = np.broadcast_to(value, out.shape)[sel]
        decided |= sel

    sell = int(Action.SELL)
    take(p[:, 2] & (a[:, 2] == sell) & (c[:, 2] >= params.risk_veto), sell)
    take(p[:, 0] & p[:, 1] & (a[:, 0] == a[:, 1]), a[:, 0])
    take(p[:, 0] & (c[:, 0] >= params.lead), a[:, 0])
    take(p[:, 1] & (c[:, 1] >= params.lead), a[:, 1])
    return out


def majority_rule(actions: np.ndarray, confs_bps: np.ndarray, present: np.ndarray,
                  n_classes: int) -> np.ndarray:
    """The rule for agents without roles (image regions): majority vote, ties to the most confident."""
    counts = np.zeros((len(actions), n_classes))
    rows = np.arange(len(actions))
    for a in range(actions.shape[1]):
        # one vote each; confidence (< 1e-2 of a vote in total) only breaks ties
        np.add.at(counts, (rows, actions[:, a]), np.asarray(present[:, a], float) * (1 + confs_bps[:, a] / 1e6))
    return counts.argmax(axis=1).astype(np.int64)


class Hedge:
    """Multiplicative weights over agents (Hedge): w_i <- w_i * exp(-eta * loss_i).

    Loss is 0-1 (the agent's published action was wrong), so every quantity is visible on chain
    once a task's outcome is known. Absent agents neither vote nor update.
    """

    def __init__(self, n_agents: int, eta: float = 0.1) -> None:
        self.eta = eta
        self.log_w = np.zeros(n_agents)

    @property
    def weights(self) -> np.ndarray:
        w = np.exp(self.log_w - self.log_w.max())
        return w / w.sum()

    def weights_bps(self) -> np.ndarray:
        return np.maximum(1, np.rint(self.weights * 10000)).astype(np.int64)

    def predict(self, actions: np.ndarray, confs_bps: np.ndarray, present: np.ndarray,
                n_classes: int = 3) -> int:
        return int(m_fixed(actions[None], confs_bps[None], present[None], self.weights_bps(), n_classes)[0])

    def update(self, actions: np.ndarray, present: np.ndarray, label: int) -> None:
        loss = (np.asarray(actions) != label).astype(np.float64) * np.asarray(present, dtype=bool)
        self.log_w -= self.eta * loss

    def run(self, actions: np.ndarray, confs_bps: np.ndarray, present: np.ndarray, labels: np.ndarray,
            n_classes: int = 3) -> np.ndarray:
        """Predict then update along a stream; returns the predictions (N,)."""
        out = np.empty(len(labels), dtype=np.int64)
        for t in range(len(labels)):
            out[t] = self.predict(actions[t], confs_bps[t], present[t], n_classes)
            self.update(actions[t], present[t], int(labels[t]))
        return out


HEDGE_ETAS = (0.05, 0.2, 0.01, 0.5, 0.1, 1.0)
"""Hedge learning rates tried in order; M-regret gets as many as the tuning budget allows trials."""


def decision_scores(actions: np.ndarray, confs_bps: np.ndarray, present: np.ndarray,
                    n_classes: int = 3) -> np.ndarray:
    """An agent's decision as a class-score vector: confidence on its action, 0 elsewhere.

    actions, confs_bps, present: (N, A) -> (N, A * C), the M-learned head's `scores` input. Exactly
    what a fusion agent can rebuild from the DecisionPublished events.
    """
    n, a = actions.shape
    out = np.zeros((n, a, n_classes), dtype=np.float32)
    idx = np.arange(n)
    for j in range(a):
        out[idx, j, actions[:, j]] = confs_bps[:, j] / 10000.0 * present[:, j]
    return out.reshape(n, a * n_classes)


def stack_probs(probs: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The M-learned head's `scores` input from the agents' class probabilities.

    probs: (N, A, C), present: (N, A) -> (N, A * C) float32, zeros for absent agents.
    """
    p = np.asarray(probs, dtype=np.float32) * np.asarray(present, dtype=np.float32)[:, :, None]
    return p.reshape(len(p), -1)


def concat_embeddings(embeddings: Sequence[np.ndarray | None], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The E-d head's inputs for one task from per-agent vectors (None = absent): ((1, A*d), (1, A))."""
    rows = [np.zeros(dim, np.float32) if e is None else np.asarray(e, np.float32).reshape(dim) for e in embeddings]
    mask = np.array([[0.0 if e is None else 1.0 for e in embeddings]], np.float32)
    return np.concatenate(rows)[None, :], mask
