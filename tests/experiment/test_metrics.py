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


# -- the evaluation set: correctness, the two-level bootstrap, paired differences, equivalence ---------


def _coverage(n_seeds: int, n_tasks: int, p: float, seed_sd: float, reps: int = 400) -> float:
    """How often the 95% interval of synthetic correctness vectors covers the true mean p (each seed's
    rate p plus a seed effect of sd `seed_sd`, tasks Bernoulli of that rate)."""
    rng = np.random.default_rng(12345)
    hits = 0
    for r in range(reps):
        rates = np.clip(p + rng.normal(0, seed_sd, n_seeds), 0, 1)
        vecs = [(rng.random(n_tasks) < q).astype(float) for q in rates]
        _, (lo, hi) = M.boot_mean(vecs, n_boot=1000, seed=r)
        hits += lo <= p <= hi
    return hits / reps


def test_the_bootstrap_interval_covers_the_true_mean_at_about_its_nominal_rate() -> None:
    # one seed: the task level alone (a bootstrap that did not resample tasks would never cover)
    assert 0.91 <= _coverage(1, 200, 0.6, 0.0) <= 0.99
    # several seeds with seed effects as large as the task noise
    assert 0.91 <= _coverage(5, 300, 0.6, 0.03) <= 0.99
    # seed effects larger than the task noise: the seed level carries it (tasks only: about 70%)
    assert 0.90 <= _coverage(8, 300, 0.6, 0.05) <= 0.99


def test_the_point_estimate_is_the_mean_over_seeds_and_the_interval_brackets_it() -> None:
    vecs = [np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0, 1.0, 0.0])]
    mean, (lo, hi) = M.boot_mean(vecs)
    assert mean == pytest.approx((0.75 + 0.5) / 2)  # every seed weighs the same, whatever its size
    assert lo < mean < hi
    assert M.boot_mean(vecs) == M.boot_mean(vecs)  # seeded: the same records give the same interval
    _, (lo1, hi1) = M.boot_mean([np.ones(50)])
    assert lo1 == hi1 == 1.0  # nothing varies, nothing to resample


def test_resampling_by_counts_matches_resampling_task_indices() -> None:
    rng = np.random.default_rng(3)
    v = (rng.random(300) < 0.4).astype(float)
    by_counts = M._resampled_means(v, 4000, np.random.default_rng(1))
    by_index = v[np.random.default_rng(2).integers(0, len(v), (4000, len(v)))].mean(axis=1)
    assert by_counts.mean() == pytest.approx(by_index.mean(), abs=0.003)
    assert by_counts.std() == pytest.approx(by_index.std(), rel=0.08)
    assert by_counts.std() == pytest.approx(math.sqrt(v.mean() * (1 - v.mean()) / len(v)), rel=0.08)
    cont = rng.normal(size=200)  # many distinct values: the index path
    r = M._resampled_means(cont, 500, np.random.default_rng(4))
    assert r.std() == pytest.approx(cont.std() / math.sqrt(len(cont)), rel=0.15)


def test_paired_intervals_are_narrower_than_unpaired_ones_on_correlated_data() -> None:
    rng = np.random.default_rng(7)
    a, b = [], []
    for _ in range(4):
        x = (rng.random(1000) < 0.6).astype(float)
        y = x.copy()
        flip = rng.random(1000) < 0.08  # b agrees with a on 92% of the tasks
        y[flip] = 1 - y[flip]
        a.append(x)
        b.append(y)
    d, (plo, phi) = M.paired_difference(a, b)
    du, (ulo, uhi) = M.unpaired_difference(a, b)
    assert d == pytest.approx(du) == pytest.approx(np.mean([x.mean() - y.mean() for x, y in zip(a, b, strict=True)]))
    assert plo <= d <= phi
    assert (phi - plo) < 0.6 * (uhi - ulo)
    with pytest.raises(ValueError):
        M.paired_difference([np.ones(3)], [np.ones(4)])


def test_actions_decode_and_no_action_counts_as_wrong() -> None:
    assert M.decode_actions("012-").tolist() == [0, 1, 2, -1]
    assert M.correctness("01-2", "0112").tolist() == [1.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        M.correctness("01", "012")
    v = M.rate_vector(0.25, 8)
    assert v.sum() == 2 and len(v) == 8
    assert M.macro_f1(np.array([0, 1, 2]), np.array([-1, 1, 2])) == pytest.approx((0 + 1 + 1) / 3)


def test_equivalence_verdicts() -> None:
    assert M.equivalence([-0.010, 0.012]) == "equivalent"  # inside ±1.5 points
    assert M.equivalence([0.004, 0.012]) == "equivalent"  # inside the margin, even if it excludes 0
    assert M.equivalence([0.02, 0.08]) == "different"
    assert M.equivalence([-0.09, -0.016]) == "different"
    assert M.equivalence([-0.03, 0.04]) == "inconclusive"
    assert M.equivalence([-0.01, 0.02]) == "inconclusive"  # includes 0, pokes out of the margin
    assert M.equivalence([float("nan"), float("nan")]) == "inconclusive"
    assert M.excludes_zero([0.01, 0.02]) and not M.excludes_zero([-0.01, 0.02])
