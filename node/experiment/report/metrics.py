"""Figures of the report, computed from unit records (plain dicts, as the checkpoint stores them).

Conventions (stated in the report):
- A task that never finalized (no agent decided it before its deadline) counts as `hold`: the
  protocol took no position. Its share is reported as `finalized_rate`.
- Fractions: every accuracy and difference is a fraction in [0, 1] (0.015 = 1.5 points).
- Accuracy on the evaluation set: a task with no action (`-`, -1) is wrong; the mean over seeds
  weighs every seed the same. Its interval is the 95% two-level bootstrap (`hierarchical_bootstrap`:
  seeds resampled, then tasks within each drawn seed), given as [lo, hi]; differences of two
  architectures on the same tasks are bootstrapped per task (`paired_difference`).
- Other intervals (`interval`, `summarize_seeds`) are 95% Student-t intervals of the mean over
  seeds (half-widths; 0 for one seed).
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
    """Macro-averaged F1 over all classes: per class 2 TP / (2 TP + FP + FN), 0 for a class with no
    support and no prediction (scikit-learn's with zero_division=0); a prediction outside the classes
    (-1: no action) is a miss of the true class."""
    y, pred = np.asarray(y), np.asarray(pred)
    if not len(y):
        return float("nan")
    f1 = []
    for c in range(n_classes):
        tp = int(np.sum((y == c) & (pred == c)))
        wrong = int(np.sum((y == c) != (pred == c)))  # FP + FN
        f1.append(2 * tp / (2 * tp + wrong) if tp or wrong else 0.0)
    return float(np.mean(f1))


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


COMPRESSED_SIZES = ("fastlz_bytes", "brotli_bytes", "op_da_bytes")
"""Per-task sums over the task's signed transactions (`node.chain.fees`): FastLZ and Brotli
lengths, and Fjord's estimated batch size. Records made before they were measured lack them."""


def costs(tasks: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean gas, calldata bytes and transactions per task; latency percentiles and blocks; the mean
    compressed sizes per task (`<size>_per_task`, None where a task's record lacks them)."""
    if not tasks:
        return {}
    lat = [t["latency_s"] for t in tasks if t.get("latency_s") is not None]
    blocks = [t["blocks"] for t in tasks if t.get("blocks") is not None]
    out = {"gas_per_task": float(np.mean([t["gas"] for t in tasks])),
           "calldata_bytes_per_task": float(np.mean([t["calldata_bytes"] for t in tasks])),
           "txs_per_task": float(np.mean([t["txs"] for t in tasks])),
           "latency_p50_s": percentile(lat, 50), "latency_p95_s": percentile(lat, 95),
           "blocks_p50": percentile(blocks, 50)}
    for key in COMPRESSED_SIZES:
        sizes = [t.get(key) for t in tasks]
        out[f"{key}_per_task"] = float(np.mean(sizes)) if all(v is not None for v in sizes) else None
    return out


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


# -- the large evaluation set: per-task correctness, the two-level bootstrap -----------------------

BOOTSTRAP_RESAMPLES = 2000
"""Resamples of every bootstrap interval in the report."""
BOOTSTRAP_SEED = 20240
"""The bootstrap's generator seed: a report re-rendered from the same records gives the same intervals."""
LEVEL = 0.95


def encode_actions(actions: Iterable[int]) -> str:
    """[0, 1, 2, -1] -> `"012-"`: how records store per-task actions (the inverse of `decode_actions`)."""
    return "".join("-" if int(a) < 0 else str(int(a)) for a in actions)


def decode_actions(digits: str) -> np.ndarray:
    """`"012-"` -> [0, 1, 2, -1]: one digit per task (0 sell, 1 hold, 2 buy), `-` where no action."""
    raw = np.frombuffer(digits.encode("ascii"), dtype=np.uint8).astype(np.int64) - ord("0")
    raw[(raw < 0) | (raw > 2)] = -1
    return raw


def correctness(actions: str | np.ndarray, labels: str | np.ndarray) -> np.ndarray:
    """1.0 where the action equals the label, 0.0 elsewhere (no action, `-` / -1, is wrong)."""
    a = decode_actions(actions) if isinstance(actions, str) else np.asarray(actions, dtype=np.int64)
    y = decode_actions(labels) if isinstance(labels, str) else np.asarray(labels, dtype=np.int64)
    if a.shape != y.shape:
        raise ValueError(f"{len(a)} actions for {len(y)} labels")
    return (a == y).astype(np.float64)


def _resampled_means(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k means of `values` resampled with replacement (as many draws as values). A vector of few
    distinct values (correctness 0/1, a paired difference -1/0/1) is resampled through the counts
    of each value, a multinomial draw: the same distribution as drawing task indices, far cheaper."""
    n = len(values)
    uniq, counts = np.unique(values, return_counts=True)
    if len(uniq) <= 64:
        return rng.multinomial(n, counts / n, size=k) @ uniq / n
    out = np.empty(k)
    step = max(1, 2_000_000 // n)
    for j in range(0, k, step):
        m = min(step, k - j)
        out[j:j + m] = values[rng.integers(0, n, size=(m, n))].mean(axis=1)
    return out


def hierarchical_bootstrap(per_seed: Sequence[np.ndarray], n_boot: int = BOOTSTRAP_RESAMPLES,
                           seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """`n_boot` bootstrap replicates of the mean over seeds of each seed's mean per task.

    Two levels: each replicate draws as many seeds as there are, with replacement, and then, for
    every seed drawn (a seed drawn twice is resampled twice, independently), as many of its tasks
    as it has, with replacement; the replicate is the mean over the drawn seeds of their resampled
    means. Seeds without tasks are left out."""
    vecs = [np.asarray(v, dtype=np.float64) for v in per_seed if len(v)]
    if not vecs:
        return np.full(n_boot, np.nan)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(vecs), size=(n_boot, len(vecs)))
    means = np.empty(pick.shape)
    for s, v in enumerate(vecs):
        slots = pick == s
        if slots.any():
            means[slots] = _resampled_means(v, int(slots.sum()), rng)
    return means.mean(axis=1)


def seed_mean(per_seed: Sequence[np.ndarray]) -> float:
    """The point estimate: the mean over seeds of each seed's mean per task (every seed weighs the same)."""
    means = [float(np.mean(v)) for v in per_seed if len(v)]
    return float(np.mean(means)) if means else float("nan")


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> list[float]:
    """[lo, hi]: the central `level` of the bootstrap replicates."""
    r = np.asarray(replicates, dtype=np.float64)
    if not len(r) or np.isnan(r).all():
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(r, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return [float(lo), float(hi)]


def boot_mean(per_seed: Sequence[np.ndarray], n_boot: int = BOOTSTRAP_RESAMPLES,
              seed: int = BOOTSTRAP_SEED) -> tuple[float, list[float]]:
    """Mean over seeds and its 95% two-level bootstrap interval [lo, hi]."""
    return seed_mean(per_seed), percentile_interval(hierarchical_bootstrap(per_seed, n_boot, seed))


def paired_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray], n_boot: int = BOOTSTRAP_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> tuple[float, list[float]]:
    """Mean over seeds of a - b, task by task on the same tasks (a[s][i] and b[s][i] are one task),
    and its interval: the two-level bootstrap of the per-task differences, so every replicate draws
    the same tasks for both sides."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} seeds against {len(b)}")
    diffs = []
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"paired vectors of {len(x)} and {len(y)} tasks")
        diffs.append(x - y)
    return boot_mean(diffs, n_boot, seed)


def unpaired_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray], n_boot: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> tuple[float, list[float]]:
    """Mean over seeds of a minus that of b, with the interval of two independent two-level
    bootstraps (for figures known only as rates, where the tasks cannot be paired)."""
    ra = hierarchical_bootstrap(a, n_boot, seed)
    rb = hierarchical_bootstrap(b, n_boot, seed + 1)
    return seed_mean(a) - seed_mean(b), percentile_interval(ra - rb)


def rate_vector(rate: float, n: int) -> np.ndarray:
    """A 0/1 vector of n tasks with round(rate * n) ones: what a task bootstrap of a rate known only
    as a fraction of n tasks needs (resampling it is resampling the tasks that rate came from)."""
    hits = int(round(rate * n))
    return np.concatenate([np.ones(hits), np.zeros(n - hits)])


EQUIVALENCE_MARGIN = 0.015
"""The alpha = 0 equivalence margin: 1.5 accuracy points, as a fraction."""


def equivalence(ci: Sequence[float], margin: float = EQUIVALENCE_MARGIN) -> str:
    """The verdict on a difference from its 95% interval [lo, hi]: `equivalent` when the interval lies
    inside [-margin, +margin], else `different` when it excludes 0, else `inconclusive`."""
    lo, hi = ci
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if -margin <= lo and hi <= margin:
        return "equivalent"
    if lo > 0 or hi < 0:
        return "different"
    return "inconclusive"


def excludes_zero(ci: Sequence[float] | None) -> bool:
    return bool(ci) and ci[0] is not None and ci[1] is not None and (ci[0] > 0 or ci[1] < 0)
