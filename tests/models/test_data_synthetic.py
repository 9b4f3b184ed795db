"""The synthetic market: determinism, knobs, oracle, payloads, headline variety."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from models.data.synthetic import (FLOW_NAMES, SCHEMA_VERSION, generate, label_posterior, label_thresholds,
                                   to_payload)


def _same(a, b) -> bool:
    return (np.array_equal(a.prices, b.prices, equal_nan=True) and np.array_equal(a.volumes, b.volumes, equal_nan=True)
            and np.array_equal(a.flows, b.flows, equal_nan=True) and a.headlines == b.headlines
            and np.array_equal(a.asset, b.asset))


def test_same_seed_same_data_and_different_seed_differs():
    a, b, c = generate(300, 7), generate(300, 7), generate(300, 8)
    assert _same(a, b) and np.array_equal(a.label, b.label) and np.array_equal(a.oracle, b.oracle)
    assert not _same(a, c)
    assert not _same(a, generate(300, 7, regime="test"))  # train and test never share samples


def test_alpha_changes_labels_only():
    a0, a1 = generate(500, 3, alpha=0.0), generate(500, 3, alpha=1.0)
    assert _same(a0, a1)
    assert np.array_equal(a0.latent, a1.latent)
    assert not np.array_equal(a0.label, a1.label)


def test_noise_changes_observations_only():
    lo, hi = generate(500, 3, noise=0.5), generate(500, 3, noise={"market": 2.0})
    assert np.array_equal(lo.label, hi.label) and np.array_equal(lo.latent, hi.latent)
    assert not np.array_equal(lo.prices, hi.prices)
    # per-modality noise: only the market moved
    base = generate(500, 3)
    assert base.headlines == hi.headlines and np.array_equal(base.flows, hi.flows)
    with pytest.raises(ValueError):
        generate(10, 0, noise={"weather": 1.0})


def test_label_classes_balanced_and_oracle_below_one():
    for alpha in (0.0, 0.5, 1.0):
        ds = generate(6000, 0, alpha=alpha)
        frac = np.bincount(ds.label, minlength=3) / len(ds)
        assert np.all(np.abs(frac - 1 / 3) < 0.04), frac
        assert 0.7 < ds.oracle_accuracy() < 0.95


def test_alpha0_is_additive_and_alpha1_is_pure_interaction():
    """At alpha 0 a linear (late-fusion) model of the per-modality latents reaches the oracle; at
    alpha 1 no single modality's latent says buy rather than sell."""
    from sklearn.linear_model import LogisticRegression

    tr, te = generate(6000, 1, alpha=0.0), generate(4000, 1, alpha=0.0, regime="test")
    acc = LogisticRegression(max_iter=1000).fit(tr.latent, tr.label).score(te.latent, te.label)
    assert acc > te.oracle_accuracy() - 0.02
    tr, te = generate(6000, 1, alpha=1.0), generate(4000, 1, alpha=1.0, regime="test")
    for k in range(3):
        one = LogisticRegression(max_iter=1000).fit(tr.latent[:, [k]], tr.label).score(te.latent[:, [k]], te.label)
        assert one < 0.42
    assert LogisticRegression(max_iter=1000).fit(tr.latent, tr.label).score(te.latent, te.label) < 0.42


def test_oracle_is_bayes_optimal_in_expectation():
    """No prediction rule beats the oracle's expected accuracy given the latent state."""
    ds = generate(5000, 2, alpha=0.5)
    post = label_posterior(ds.score, 0.5, 0.0, 0.25)
    rows = np.arange(len(ds))
    best = post[rows, ds.oracle].mean()
    rng = np.random.default_rng(0)
    rivals = [ds.label, rng.integers(0, 3, len(ds)), np.full(len(ds), 1), ds.oracle[::-1]]
    lo, hi = label_thresholds(0.5, 0.0, 0.25)
    rivals.append(np.where(ds.score < lo * 1.2, 0, np.where(ds.score > hi * 0.8, 2, 1)))
    for pred in rivals:
        assert post[rows, pred].mean() <= best + 1e-12


def test_missing_rate_masks_modalities_and_empties_payload_fields():
    ds = generate(2000, 4, missing_rate=0.4)
    assert ds.mask.any(axis=1).all()
    assert abs(1 - ds.mask.mean() - 0.4) < 0.05
    i = int(np.flatnonzero(~ds.mask[:, 0])[0])
    p = to_payload(ds[i])
    assert p["prices"] == [] and p["volumes"] == []
    j = int(np.flatnonzero(~ds.mask[:, 1])[0])
    assert to_payload(ds[j])["headlines"] == []


def test_redundancy_correlates_latents():
    ds = generate(5000, 5, redundancy=0.6)
    c = np.corrcoef(ds.latent.T)
    assert np.all(np.abs(c[np.triu_indices(3, 1)] - 0.6) < 0.05)
    c0 = np.corrcoef(generate(5000, 5).latent.T)
    assert np.all(np.abs(c0[np.triu_indices(3, 1)]) < 0.05)


def test_shift_moves_only_the_test_regime():
    assert _same(generate(300, 6, shift=0.0), generate(300, 6, shift=1.0))  # train regime untouched
    calm, shifted = generate(2000, 6, regime="test"), generate(2000, 6, regime="test", shift=1.0)
    assert np.array_equal(calm.label, shifted.label)  # covariate shift: labels unchanged
    vol = lambda d: np.std(np.diff(np.log(d.prices), axis=1))  # noqa: E731
    assert vol(shifted) > 1.3 * vol(calm)
    assert np.log1p(shifted.flows).mean() > np.log1p(calm.flows).mean()


def test_payload_is_json_and_has_no_label():
    ds = generate(5, 9)
    p = to_payload(ds[0])
    assert set(p) == {"schema", "asset", "prices", "volumes", "headlines", "flows"}
    assert p["schema"] == SCHEMA_VERSION
    back = json.loads(json.dumps(p))
    assert back["prices"] == ds[0].prices  # floats survive JSON exactly
    assert len(p["flows"]) == len(FLOW_NAMES) and 1 <= len(p["headlines"]) <= 3
    assert len(p["prices"]) == len(p["volumes"]) == 32


def test_headlines_are_varied_natural_sentences():
    ds = generate(1500, 10)
    texts = [t for hs in ds.headlines for t in hs]
    assert len(set(texts)) > 700
    joined = " ".join(texts)
    for pattern in (r"\bnot\b|\bno longer\b|\bdenies\b|\brules out\b", r"\d+%", r"\$\d", r"SEC|CFTC|FCA"):
        assert re.search(pattern, joined), pattern
    assert any(not any(name in t for name in ("BTC", "Bitcoin")) for t, a in
               zip((hs[0] for hs in ds.headlines), ds.asset) if a == "BTC")  # distractors exist


def test_bad_knobs_rejected():
    for kw in ({"alpha": 1.5}, {"redundancy": -0.1}, {"missing_rate": 1.0}, {"regime": "prod"}):
        with pytest.raises(ValueError):
            generate(10, 0, **kw)
