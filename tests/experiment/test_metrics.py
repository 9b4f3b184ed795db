"""The report's figures on inputs whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from node.experiment.report import metrics as M


def task(action, label, *, ret=0.01, oracle=None, latency=1.0, gas=100, nbytes=10, txs=3):
    return {"i": 0, "action": action, "label": label, "ret": ret, "oracle": label if oracle is None else oracle,
            "latency_s": latency, "blocks": 2, "gas": gas, "calldata_bytes": nbytes, "txs": txs}


def test_accuracy_and_macro_f1_by_hand() -> None:
    y = np.array([0, 0, 1, 2])
    pred = np.array([0, 1, 1, 2])
    assert M.accuracy(y, pred) == 0.75
    # class 0: P=1, R=1/2 -> F1 2/3; class 1: P=1/2, R=1 -> 2/3; class 2: 1
    assert M.macro_f1(y, pred) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_interval_is_a_student_t_half_width() -> None:
    mean, ci = M.interval([0.5, 0.7])
    assert mean == pytest.approx(0.6)
    assert ci == pytest.approx(12.7062047 * np.std([0.5, 0.7], ddof=1) / math.sqrt(2), rel=1e-6)
    assert M.interval([0.4]) == (0.4, 0.0)
    mean, ci = M.interval([0.3, float("nan"), 0.3, 0.3])
    assert (mean, ci) == (pytest.approx(0.3), pytest.approx(0.0))


def test_unfinalized_tasks_count_as_hold_and_lower_the_finalized_rate() -> None:
    q = M.quality([task(None, 1), task(2, 2), task(None, 0)])
    assert q["accuracy"] == pytest.approx(2 / 3)
    assert q["finalized_rate"] == pytest.approx(1 / 3)


def test_pnl_and_sharpe_from_positions_times_returns() -> None:
    tasks = [task(2, 2, ret=0.02), task(0, 0, ret=-0.01), task(1, 1, ret=0.05), task(0, 2, ret=0.03)]
    q = M.quality(tasks)
    per_task = np.array([0.02, 0.01, 0.0, -0.03])
    assert q["pnl"] == pytest.approx(per_task.sum())
    assert q["sharpe"] == pytest.approx(per_task.mean() / per_task.std(ddof=1))
    assert q["oracle_accuracy"] == 1.0


def test_costs_and_percentiles() -> None:
    tasks = [task(1, 1, latency=t, gas=g, txs=x) for t, g, x in ((1.0, 100, 3), (2.0, 300, 5), (3.0, 200, 4))]
    c = M.costs(tasks)
    assert c["gas_per_task"] == 200 and c["txs_per_task"] == 4
    assert c["latency_p50_s"] == 2.0
    assert c["latency_p95_s"] == pytest.approx(2.9)
    assert M.percentile([], 50) != M.percentile([], 50)  # NaN when empty


def test_relative_and_effective_robustness() -> None:
    assert M.relative_robustness(0.3, 0.6) == 0.5
    points = {"a": (0.5, 0.4), "b": (0.6, 0.5), "c": (0.7, 0.6), "d": (0.6, 0.3)}
    eff = M.effective_robustness(points)
    # the least-squares trend through all four points; "d" falls well below it
    slope, intercept = np.polyfit([0.5, 0.6, 0.7, 0.6], [0.4, 0.5, 0.6, 0.3], 1)
    assert eff["d"] == pytest.approx(0.3 - (intercept + slope * 0.6))
    assert eff["d"] < 0 < eff["b"]
    # two points: the identity trend (perturbed minus clean)
    assert M.effective_robustness({"a": (0.5, 0.4), "b": (0.6, 0.6)}) == {"a": pytest.approx(-0.1), "b": 0.0}


def test_summarize_seeds_adds_intervals_for_present_keys() -> None:
    out = M.summarize_seeds([{"accuracy": 0.5}, {"accuracy": 0.7, "sharpe": 0.1}], ("accuracy", "sharpe", "pnl"))
    assert out["accuracy"] == pytest.approx(0.6) and out["accuracy_ci"] > 0
    assert out["sharpe"] == 0.1 and out["sharpe_ci"] == 0.0
    assert "pnl" not in out
