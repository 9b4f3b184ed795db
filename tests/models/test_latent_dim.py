"""The generator's latent_dim option (models.data.synthetic) and its ceiling (models.data.ceiling):
latent_dim 1 is the original generator byte for byte; at latent_dim 8 the shapes, determinism and
the independence of the knobs hold, and the measurement bound sits between chance and the oracle."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from models.data import ceiling as C
from models.data import synthetic as syn
from models.data.features import flow_features, market_features
from models.data.splits import SyntheticConfig, config_from_dict, config_to_dict
from models.data.synthetic import generate, to_payload

# (n, seed, knobs, sha256 of generate()'s arrays computed on the generator before latent_dim existed)
BEFORE = (
    (200, 0, {}, "a20801c19969801954e0b7b52ff5861f43d90ec28121fce3abb5d08b01bc75ac"),
    (200, 7, dict(alpha=0.5, missing_rate=0.3), "009bc887e1bc564dcb038a7a116e5c36ef5b8c5edbdab3cdd261fe943ff1b7b5"),
    (150, 3, dict(alpha=1.0, redundancy=0.5, regime="test", shift=1.0, noise={"market": 2.0}),
     "3105494014a00416447cb4da56197ef50c421da02c9c7bd73502764fdb6872ea"),
)


def ds_hash(ds) -> str:
    h = hashlib.sha256()
    for a in (ds.asset.astype(str), ds.prices, ds.volumes, ds.flows, ds.label, ds.risk_flag, ds.mask, ds.latent,
              ds.score, ds.oracle, ds.oracle_risk):
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(json.dumps(ds.headlines).encode())
    return h.hexdigest()


def _same_obs(a, b) -> bool:
    return (np.array_equal(a.prices, b.prices, equal_nan=True) and np.array_equal(a.volumes, b.volumes, equal_nan=True)
            and np.array_equal(a.flows, b.flows, equal_nan=True) and a.headlines == b.headlines)


@pytest.mark.parametrize("n,seed,kw,digest", BEFORE)
def test_latent_dim_1_is_the_original_generator_byte_for_byte(n, seed, kw, digest):
    assert ds_hash(generate(n, seed, **kw)) == digest
    ds = generate(n, seed, latent_dim=1, **kw)
    assert ds_hash(ds) == digest
    assert "latent_dim" not in ds.params and ds.signals is None


def test_config_threads_latent_dim_and_round_trips():
    cfg = SyntheticConfig(n_train=10, latent_dim=8)
    d = config_to_dict(cfg)
    assert d["latent_dim"] == 8 and config_from_dict(d) == cfg
    assert config_to_dict(SyntheticConfig())["latent_dim"] == 1
    assert config_from_dict({"kind": "synthetic", "alpha": 0.5}).latent_dim == 1  # older records


@pytest.fixture(scope="module")
def m8():
    return generate(1500, 11, alpha=0.5, latent_dim=8)


def test_shapes_and_payloads_at_latent_dim_8(m8):
    ds = m8
    n = len(ds)
    assert ds.latent.shape == (n, 3, 8) and ds.score.shape == (n,) and ds.prices.shape == (n, syn.SERIES_LEN)
    assert ds.flows.shape == (n, 8) and ds.signals["market"].shape == (n, 8) and ds.signals["risk"].shape == (n, 8)
    assert ds.params["latent_dim"] == 8
    assert sorted(np.bincount(ds.label)) and np.all(np.abs(np.bincount(ds.label) / n - 1 / 3) < 0.05)
    assert np.isfinite(ds.prices).all() and (ds.prices > 0).all() and (ds.flows >= 0).all()
    assert all(1 <= len(h) <= 3 for h in ds.headlines)
    p = json.loads(json.dumps(to_payload(ds[0])))
    assert len(p["prices"]) == syn.SERIES_LEN and len(p["flows"]) == 8 and p["headlines"]
    assert market_features(ds.prices, ds.volumes).shape[0] == n and flow_features(ds.flows).shape[0] == n
    C.headline_levels(ds)  # every headline is a bank text of its asset
    sub = ds.subset(np.arange(10))
    assert sub.signals["market"].shape == (10, 8) and sub.latent.shape == (10, 3, 8)


def test_determinism_seeds_and_regimes_at_latent_dim_8(m8):
    again = generate(1500, 11, alpha=0.5, latent_dim=8)
    assert ds_hash(again) == ds_hash(m8)
    assert not _same_obs(generate(300, 12, latent_dim=8), generate(300, 11, latent_dim=8))
    assert not _same_obs(generate(300, 11, latent_dim=8, regime="test"), generate(300, 11, latent_dim=8))
    # the same seed at another latent_dim is another dataset, m = 1 untouched by m = 8 existing
    assert generate(300, 11, latent_dim=4).latent.shape == (300, 3, 4)


def test_alpha_changes_labels_only_at_latent_dim_8():
    a0, a1 = generate(800, 3, alpha=0.0, latent_dim=8), generate(800, 3, alpha=1.0, latent_dim=8)
    assert _same_obs(a0, a1) and np.array_equal(a0.latent, a1.latent) and np.array_equal(a0.mask, a1.mask)
    assert np.array_equal(a0.signals["market"], a1.signals["market"])
    assert not np.array_equal(a0.label, a1.label)


def test_noise_changes_observations_only_at_latent_dim_8():
    base, lo, mk = (generate(800, 3, latent_dim=8, noise=nz) for nz in (1.0, 0.5, {"market": 2.0}))
    for other in (lo, mk):
        assert np.array_equal(base.label, other.label) and np.array_equal(base.latent, other.latent)
        assert np.array_equal(base.oracle, other.oracle) and np.array_equal(base.risk_flag, other.risk_flag)
    assert not np.array_equal(base.prices, lo.prices) and not np.array_equal(base.flows, lo.flows)
    # per-modality noise: only the market moved
    assert not np.array_equal(base.prices, mk.prices)
    assert np.array_equal(base.flows, mk.flows) and base.headlines == mk.headlines


def test_redundancy_and_score_normalisation_at_latent_dim_8():
    ds = generate(6000, 5, alpha=1.0, redundancy=0.6, latent_dim=8)
    z = ds.latent
    c = np.mean(z[:, 0] * z[:, 1]), np.mean(z[:, 0] * z[:, 2]), np.mean(z[:, 1] * z[:, 2])
    assert np.allclose(c, 0.6, atol=0.05)
    for alpha in (0.0, 0.5, 1.0):  # A and I have unit variance and are uncorrelated
        s = syn.latent_score_dims(z, alpha, 0.6)
        assert abs(s.std() - syn._score_sd(alpha)) < 0.05 and abs(s.mean()) < 0.05


def test_every_direction_of_the_latent_is_in_the_observations():
    """A linear read of the market features and the log flows recovers several directions of z_m and
    z_r, not just one (otherwise no bottleneck could squeeze anything)."""
    from sklearn.linear_model import Ridge

    ds = generate(4000, 8, latent_dim=8, noise=0.5)
    xm = market_features(ds.prices, ds.volumes)
    xr = np.log1p(ds.flows)
    for x, k, need in ((xm, 0, 6), (xr, 2, 4)):
        target = ds.latent[:, k] @ syn.latent_structure(8).market.T if k == 0 else ds.latent[:, k]
        fit = Ridge(1.0).fit(x[:3000], target[:3000])
        resid = target[3000:] - fit.predict(x[3000:])
        r2 = 1 - resid.var(axis=0) / target[3000:].var(axis=0)
        assert (r2 > 0.3).sum() >= need, r2.round(2)


def test_at_alpha_1_one_modality_alone_says_nothing():
    from sklearn.linear_model import LogisticRegression

    tr, te = generate(5000, 1, alpha=1.0, latent_dim=8), generate(3000, 1, alpha=1.0, latent_dim=8, regime="test")
    for k in range(3):
        acc = LogisticRegression(max_iter=500).fit(tr.latent[:, k], tr.label).score(te.latent[:, k], te.label)
        assert acc < 0.40, (k, acc)


def test_grid_ceiling_refuses_latent_dim_8_and_names_the_bound(m8):
    for f in (C.observation_ceiling, C.late_fusion_cap, C.modality_loglik):
        with pytest.raises(ValueError, match="measurement_bound"):
            f(m8)
    with pytest.raises(ValueError, match="observation_ceiling"):
        C.measurement_bound(generate(10, 0))


@pytest.mark.parametrize("alpha", (0.0, 1.0))
def test_measurement_bound_between_chance_and_the_oracle(alpha):
    ds = generate(1500, 21, alpha=alpha, latent_dim=8)
    out = C.ceilings_for(ds)
    obs, lat = out["observation"], out["latent"]
    assert "upper bound" in obs["method"] and out["late_fusion_cap"] is None
    se = np.sqrt(0.25 / len(ds))
    assert 1 / 3 + 5 * se < obs["accuracy"] < lat["accuracy"] - 5 * se
    assert 1 / 3 + 5 * se < obs["expected"] < lat["expected"]
    assert obs["decisions"].shape == (len(ds),)


def test_measurement_bound_is_calibrated():
    """Its class probabilities match the label frequencies on fresh data (the posterior is right)."""
    ds = generate(3000, 22, alpha=0.5, latent_dim=8, missing_rate=0.3)
    _, prob = C.measurement_bound(ds, samples=512)
    for y in range(3):
        p = prob[:, y]
        bins = np.quantile(p, [0, 0.25, 0.5, 0.75, 1.0])
        which = np.clip(np.digitize(p, bins[1:-1]), 0, 3)
        for b in range(4):
            sel = which == b
            freq, mean = np.mean(ds.label[sel] == y), p[sel].mean()
            assert abs(freq - mean) < 4 * np.sqrt(mean * (1 - mean) / sel.sum()) + 0.01, (y, b, freq, mean)


def test_measurement_bound_reaches_the_oracle_when_everything_is_measured():
    """At redundancy 1 and noise -> 0 the measurements pin every latent down: the bound meets the oracle."""
    ds = generate(1000, 23, alpha=1.0, redundancy=1.0, noise=0.01, latent_dim=8)
    obs = C.ceilings_for(ds)["observation"]
    assert abs(obs["accuracy"] - ds.oracle_accuracy()) < 0.03


def test_ceilings_for_at_latent_dim_1_is_the_grid_ceiling():
    ds = generate(200, 4, alpha=1.0)
    out = C.ceilings_for(ds)
    dec, prob = C.observation_ceiling(ds)
    assert np.array_equal(out["observation"]["decisions"], dec)
    assert out["observation"]["accuracy"] == C.accuracy(ds, dec, prob)[0]
    assert out["late_fusion_cap"] is not None and "exact" in out["observation"]["method"]


def test_latent_dim_is_validated():
    for bad in (0, 17, 2.5):
        with pytest.raises(ValueError, match="latent_dim"):
            generate(10, 0, latent_dim=bad)
