"""Figures of the report, computed from unit records (plain dicts, as the checkpoint stores them).

Conventions (stated in the report):
- A task that never finalized (no agent decided it before its deadline) counts as `hold`: the
  protocol took no position. Its share is reported as `finalized_rate`.
- Intervals are 95% Student-t intervals of the mean over seeds (half-widths; 0 for one seed).
- PnL: position +1 (buy), 0 (hold), -1 (sell) times the task's next-period return; Sharpe is the
  mean over the std of the per-task PnL of one seed (per task, not annualised).
- Latency: wall clock from sending submitTask to seeing TaskFinalized; percentiles pool the tasks
  of all seeds (linear interpolation).
- Robustness (MultiBench): relative robustness = perturbed accuracy / clean accuracy on the same
  tasks; effective robustness = perturbed accuracy minus what the linear trend of perturbed vs
  clean accuracy across all architectures of that scenario predicts from the clean accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from node.protocol.enums import Action


def actions_of(tasks: Sequence[dict[str, Any]]) -> np.ndarray:
    """Each task's finalized action; a task that never finalized counts as hold."""
    return np.array([int(Action.HOLD) if t["action"] is None else int(t["action"]) for t in tasks], dtype=np.int64)


def labels_of(tasks: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array([int(t["label"]) for t in tasks], dtype=np.int64)


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(pred))) if len(y) else float("nan")


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int = 3) -> float:
    """Macro-averaged F1 over all classes (a class with no support and no prediction scores 0)."""
    from sklearn.metrics import f1_score

    if not len(y):
        return float("nan")
    return float(f1_score(y, pred, average="macro", labels=list(range(n_classes)), zero_division=0))


def interval(values: Iterable[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% t-interval (0 for fewer than two values; NaNs dropped)."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) < 2:
        return float(v.mean()), 0.0
    from scipy.stats import t

    return float(v.mean()), float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def positions(actions: np.ndarray) -> np.ndarray:
    """buy +1, hold 0, sell -1."""
    return np.asarray(actions, dtype=np.int64) - 1


def pnl(actions: np.ndarray, returns: np.ndarray) -> np.ndarray:
    return positions(actions) * np.asarray(returns, dtype=np.float64)


def sharpe(per_task_pnl: np.ndarray) -> float:
    p = np.asarray(per_task_pnl, dtype=np.float64)
    if len(p) < 2 or p.std(ddof=1) == 0:
        return float("nan")
    return float(p.mean() / p.std(ddof=1))


def percentile(values: Iterable[float], q: float) -> float:
    v = sorted(x for x in values if x is not None)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return float(v[lo] + (v[hi] - v[lo]) * (k - lo))


def quality(tasks: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Accuracy, macro-F1, PnL and Sharpe of one unit's finalized decisions; the oracle's too."""
    y, pred = labels_of(tasks), actions_of(tasks)
    out = {"accuracy": accuracy(y, pred), "macro_f1": macro_f1(y, pred), "n": len(tasks),
           "finalized_rate": float(np.mean([t["action"] is not None for t in tasks])) if tasks else float("nan")}
    rets = [t.get("ret") for t in tasks]
    if tasks and all(r is not None for r in rets):
        p = pnl(pred, np.array(rets))
        out.update(pnl=float(p.sum()), pnl_mean=float(p.mean()), sharpe=sharpe(p))
    oracle = [t.get("oracle") for t in tasks]
    if tasks and all(o is not None for o in oracle):
        o = np.array(oracle, dtype=np.int64)
        out.update(oracle_accuracy=accuracy(y, o), oracle_macro_f1=macro_f1(y, o))
        if "pnl" in out:
            po = pnl(o, np.array(rets))
            out.update(oracle_pnl=float(po.sum()), oracle_sharpe=sharpe(po))
    return out


def costs(tasks: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean gas, calldata bytes and transactions per task; latency percentiles and blocks."""
    if not tasks:
        return {}
    lat = [t["latency_s"] for t in tasks if t.get("latency_s") is not None]
    blocks = [t["blocks"] for t in tasks if t.get("blocks") is not None]
    return {"gas_per_task": float(np.mean([t["gas"] for t in tasks])),
            "calldata_bytes_per_task": float(np.mean([t["calldata_bytes"] for t in tasks])),
            "txs_per_task": float(np.mean([t["txs"] for t in tasks])),
            "latency_p50_s": percentile(lat, 50), "latency_p95_s": percentile(lat, 95),
            "blocks_p50": percentile(blocks, 50)}


def summarize_seeds(per_seed: Sequence[dict[str, float]], keys: Sequence[str]) -> dict[str, float]:
    """`key` -> mean over seeds, `key_ci` -> 95% half-width, for each key present."""
    out: dict[str, float] = {}
    for key in keys:
        values = [s[key] for s in per_seed if key in s and s[key] is not None]
        if values:
            out[key], out[f"{key}_ci"] = interval(values)
    return out


def relative_robustness(perturbed: float, clean: float) -> float:
    return float(perturbed / clean) if clean else float("nan")


def effective_robustness(points: dict[Any, tuple[float, float]]) -> dict[Any, float]:
    """For {name: (clean, perturbed)} of one scenario: perturbed minus the least-squares line of
    perturbed on clean across all names (identity trend when there are fewer than 3 points or no
    spread in clean accuracy)."""
    names = [k for k, (c, p) in points.items() if not (math.isnan(c) or math.isnan(p))]
    if not names:
        return {}
    c = np.array([points[k][0] for k in names])
    p = np.array([points[k][1] for k in names])
    if len(names) >= 3 and np.ptp(c) > 1e-9:
        slope, intercept = np.polyfit(c, p, 1)
    else:
        slope, intercept = 1.0, 0.0
    return {k: float(p[i] - (intercept + slope * c[i])) for i, k in enumerate(names)}
