"""The observation ceiling and the late-fusion cap (models.data.ceiling): where they sit between a
trained baseline and the latent oracle, whether their probabilities are calibrated on fresh
simulated data (the check that the likelihoods are right), how they move with noise and missing
modalities, and the quadratures they rest on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.data import ceiling as C
from models.data.features import flow_features, market_features
from models.data.synthetic import generate, label_posterior, latent_score

N = 2500
ALPHAS = (0.0, 0.5, 1.0)
Z99 = 2.58  # two-sided 99% normal quantile: the tolerance of every sampling-error comparison


@pytest.fixture(scope="module")
def fresh():
    """N tasks (seed 301) at alpha 0, 0.5 and 1 (the same observations, different labels), with the
    per-modality likelihoods computed once."""
    sets = {a: generate(N, 301, alpha=a) for a in ALPHAS}
    return sets, C.modality_loglik(sets[0.0])


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of a - b and its standard error (per-task paired)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def _baseline_features(ds) -> np.ndarray:
    counts, distract = C.headline_levels(ds)
    return np.column_stack([market_features(ds.prices, ds.volumes), flow_features(ds.flows), counts, distract])


@pytest.mark.parametrize("alpha", ALPHAS)
def test_ceiling_sits_between_a_trained_baseline_and_the_latent_oracle(fresh, alpha):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    sets, ll = fresh
    te = sets[alpha]
    dec, prob = C.observation_ceiling(te, loglik=ll)
    hit = dec == te.label
    # ceiling <= oracle: in hit rate (paired, within sampling error) and in expected accuracy
    gap, se = _paired(hit, te.oracle == te.label)
    assert gap < Z99 * se, (gap, se)
    oracle_p = label_posterior(te.score, alpha, 0.0, te.params["label_noise"])
    gap, se = _paired(prob.max(axis=1), oracle_p.max(axis=1))
    assert gap < Z99 * se, (gap, se)
    # ceiling >= the better of two baselines trained on 4,000 other tasks (market and flow features,
    # headline level counts), scored on the same tasks
    tr = generate(4000, 302, alpha=alpha)
    x_tr, x_te = _baseline_features(tr), _baseline_features(te)
    best = None
    for model in (make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                  HistGradientBoostingClassifier(random_state=0)):
        with threadpool_limits(1):  # one core: the machine is shared
            pred = model.fit(x_tr, tr.label).predict(x_te)
        if best is None or np.mean(pred == te.label) > np.mean(best == te.label):
            best = pred
    lead, se = _paired(hit, best == te.label)
    assert lead > -Z99 * se, (lead, se)
    assert np.mean(best == te.label) > 0.4  # a baseline that learned something, not chance


def _temperature(prob: np.ndarray, label: np.ndarray) -> float:
    """The T minimising the log loss of prob^(1/T) (renormalised): 1 for calibrated probabilities."""
    logp = np.log(np.maximum(prob, 1e-300))
    ts = np.linspace(0.5, 2.0, 301)
    loss = []
    for t in ts:
        lp = logp / t
        lp = lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)
        loss.append(-lp[np.arange(len(label)), label].mean())
    return float(ts[int(np.argmin(loss))])


def _reliability_chi2(prob: np.ndarray, label: np.ndarray, bins: int = 10) -> float:
    """Sum over classes and equal-count bins of P(y = c | x) of ((hits - expected) / sd)^2, where the
    expected hits and their variance come from the predicted probabilities: about chi2(3 x bins)."""
    chi2 = 0.0
    for c in range(prob.shape[1]):
        p, y = prob[:, c], (label == c).astype(float)
        order = np.argsort(p)
        for part in np.array_split(order, bins):
            chi2 += (y[part].sum() - p[part].sum()) ** 2 / max((p[part] * (1 - p[part])).sum(), 1e-9)
    return chi2


@pytest.mark.parametrize("alpha", ALPHAS)
def test_ceiling_probabilities_are_calibrated_on_fresh_data(fresh, alpha):
    sets, ll = fresh
    ds = sets[alpha]
    dec, prob = C.observation_ceiling(ds, loglik=ll)
    rows = np.arange(len(ds))
    # the expected accuracy is the hit rate's expectation
    gap, se = _paired(dec == ds.label, prob[rows, dec])
    assert abs(gap) < Z99 * se, (gap, se)
    # binned reliability over every class: chi2 with 30 cells, 99.9% quantile ~59.7
    assert _reliability_chi2(prob, ds.label) < 59.7
    # no temperature does better than the one the likelihoods give
    assert 0.85 < _temperature(prob, ds.label) < 1.15


def _z_calibration(ds, ll: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per modality: mean and variance of (z_k - E[z_k | x_k]) / sd[z_k | x_k], and the KS distance of
    the posterior CDF at the true z_k (the PIT, uniform when the likelihood is right) from uniform."""
    grid = C.z_grid(ll.shape[-1])
    mean, sd = C.posterior_moments(ll, grid)
    score = (ds.latent - mean) / sd
    lp = ll - 0.5 * grid**2
    w = np.exp(lp - lp.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    h = grid[1] - grid[0]
    # posterior mass spread uniformly over each node's cell: CDF at z
    frac = np.clip((ds.latent[..., None] - (grid - h / 2)) / h, 0.0, 1.0)
    pit = (w * frac).sum(axis=-1)
    ks = []
    for k in range(3):
        u = np.sort(pit[:, k])
        n = len(u)
        ks.append(max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n)))
    return score.mean(axis=0), score.var(axis=0), np.array(ks)


def _z_calibrated(ds, ll) -> np.ndarray:
    """Per modality, whether the posterior of z_k passes: mean and variance of the standardised error
    within 4 standard errors of 0 and 1, and the PIT's KS distance under its 1% critical value."""
    n = len(ds)
    mean, var, ks = _z_calibration(ds, ll)
    return (np.abs(mean) < 4 / math.sqrt(n)) & (np.abs(var - 1) < 4 * math.sqrt(2 / n)) & (ks < 1.63 / math.sqrt(n))


def test_each_modality_posterior_of_its_latent_is_calibrated(fresh):
    sets, ll = fresh
    assert _z_calibrated(sets[0.0], ll).all(), _z_calibration(sets[0.0], ll)


@pytest.mark.parametrize(("name", "value", "modality"), [
    ("_DRIFT", 2.4, 0),  # return drift per unit of z_m (the volumes carry most of z_m, so a half)
    ("_VOLUME_TILT", 0.11, 0),  # volume tilt with the direction of moves
    ("_PHI", 0.0, 0),  # the return noise taken as white instead of AR(1) with coefficient 0.2
    ("_TEXT_NOISE", 0.6, 1),  # headline polarity noise
    ("_FLOW", C._FLOW * np.array([1.0, 1.0, 1.25, 1.0]), 2),  # flow tilts with z_r
])
def test_a_wrong_generator_constant_fails_the_posterior_calibration(fresh, monkeypatch, name, value, modality):
    """The calibration check above can fail: a constant off by a quarter to a half shows up."""
    sets, _ = fresh
    ds = sets[0.0]
    monkeypatch.setattr(C, name, value)
    ll = C.modality_loglik(ds, use=[C.MODALITIES[modality]])
    assert not _z_calibrated(ds, ll)[modality], _z_calibration(ds, ll)


def test_calibrated_under_regime_shift_with_correlated_latents():
    """The shifted test regime (volatility, flow activity and noise, distractors, held-out phrasing)
    with redundancy 0.5: each latent's posterior and the label probabilities stay calibrated."""
    ds = generate(1500, 310, alpha=0.5, redundancy=0.5, regime="test", shift=1.0)
    ll = C.modality_loglik(ds)
    assert _z_calibrated(ds, ll).all(), _z_calibration(ds, ll)
    dec, prob = C.observation_ceiling(ds, loglik=ll)
    gap, se = _paired(dec == ds.label, prob[np.arange(len(ds)), dec])
    assert abs(gap) < Z99 * se, (gap, se)
    assert 0.85 < _temperature(prob, ds.label) < 1.15


def _noise_free_limit(ds) -> np.ndarray:
    """P(y | z_m, z_r, the polarity bucket of z_s when an on-topic headline exists): what the
    observations tell as noise -> 0 (prices, volumes and flows then pin z_m and z_r down; headlines
    only ever tell z_s's bucket). rho = 0."""
    p = ds.params
    counts, _ = C.headline_levels(ds)
    zs = np.linspace(-6, 6, 1201)
    edges = np.array([-np.inf, -1.5, -0.5, 0.5, 1.5, np.inf])
    bucket = np.digitize(ds.latent[:, 1], edges[1:-1])
    out = np.empty((len(ds), 3))
    for i in range(len(ds)):
        w = np.exp(-0.5 * zs**2)
        if counts[i].sum():
            w = w * ((zs >= edges[bucket[i]]) & (zs < edges[bucket[i] + 1]))
        z = np.column_stack([np.full_like(zs, ds.latent[i, 0]), zs, np.full_like(zs, ds.latent[i, 2])])
        out[i] = w @ label_posterior(latent_score(z, p["alpha"], 0.0), p["alpha"], 0.0, p["label_noise"]) / w.sum()
    return out


@pytest.mark.parametrize("alpha", (0.0, 1.0))
def test_as_noise_goes_to_zero_the_ceiling_reaches_what_the_observations_can_tell(fresh, alpha):
    """With noise -> 0 the ceiling approaches the noise-free limit; that limit is below the oracle
    only because headlines give z_s's polarity bucket, never z_s itself."""
    sets, ll = fresh
    quiet = generate(1000, 304, alpha=alpha, noise=0.03)
    oracle = C.oracle_expected_accuracy(quiet)
    _, e_loud = C.accuracy(sets[alpha], *C.observation_ceiling(sets[alpha], loglik=ll))
    acc, e_quiet = C.ceiling_accuracy(quiet)
    e_limit = _noise_free_limit(quiet).max(axis=1).mean()
    assert abs(e_quiet - e_limit) < 0.01, (e_quiet, e_limit)
    assert oracle - e_quiet < 0.5 * (oracle - e_loud), (oracle, e_quiet, e_loud)
    assert abs(acc - e_quiet) < Z99 * math.sqrt(e_quiet * (1 - e_quiet) / len(quiet))


def test_with_one_shared_latent_and_no_noise_the_ceiling_reaches_the_oracle():
    """At rho = 1 the headlines' coarseness no longer matters (z_s = z_m), so noise -> 0 closes the gap."""
    ds = generate(1000, 305, alpha=0.5, redundancy=1.0, noise=0.03)
    acc, expected = C.ceiling_accuracy(ds)
    assert abs(expected - C.oracle_expected_accuracy(ds)) < 0.01
    gap, se = _paired(C.observation_ceiling(ds)[0] == ds.label, ds.oracle == ds.label)
    assert abs(gap) < Z99 * se + 0.005, (gap, se)


def test_a_missing_modality_lowers_the_ceiling(fresh):
    sets, ll = fresh
    ds = sets[0.5]
    dec, prob = C.observation_ceiling(ds, loglik=ll)
    rows = np.arange(len(ds))
    head = ds.subset(np.arange(40))
    for k, name in enumerate(C.MODALITIES):
        partial = ll.copy()
        partial[:, k] = 0.0  # what `use` without the modality gives
        np.testing.assert_array_equal(C.modality_loglik(head, use=[m for m in C.MODALITIES if m != name]),
                                      partial[:40])
        d_dec, d_prob = C.observation_ceiling(ds, loglik=partial)
        drop, se = _paired(prob[rows, dec], d_prob[rows, d_dec])
        assert drop > 4 * se, (name, drop, se)
        hit_drop, se = _paired(dec == ds.label, d_dec == ds.label)
        assert hit_drop > -Z99 * se, (name, hit_drop, se)
    # tasks generated with modalities missing: still calibrated, and lower than with all present
    gappy = generate(N, 301, alpha=0.5, missing_rate=0.4)
    g_dec, g_prob = C.observation_ceiling(gappy)
    gap, se = _paired(g_dec == gappy.label, g_prob[rows, g_dec])
    assert abs(gap) < Z99 * se, (gap, se)
    drop, se = _paired(prob[rows, dec], g_prob[rows, g_dec])
    assert drop > 4 * se, (drop, se)


def test_late_fusion_cap_at_alpha_1_is_clearly_below_the_ceiling(fresh):
    sets, ll = fresh
    ds = sets[1.0]
    rows = np.arange(len(ds))
    dec, prob = C.observation_ceiling(ds, loglik=ll)
    c_dec, c_prob = C.late_fusion_cap(ds, loglik=ll)
    # calibrated too (the sign-blind statistics' likelihoods are right)
    gap, se = _paired(c_dec == ds.label, c_prob[rows, c_dec])
    assert abs(gap) < Z99 * se, (gap, se)
    # the ceiling's and the cap's 95% intervals are apart, in hit rate and in expected accuracy
    assert C.wilson(float((dec == ds.label).sum()), len(ds))[0] > C.wilson(float((c_dec == ds.label).sum()), len(ds))[1]
    lead, se = _paired(prob[rows, dec], c_prob[rows, c_dec])
    assert lead > 0.05 and lead > 8 * se, (lead, se)


def test_single_modality_class_posteriors_are_sign_blind_only_at_alpha_1(fresh):
    """At alpha = 1, rho = 0 a modality's own Bayes class posterior is unchanged by symmetrising its
    likelihood (so late fusion of such posteriors is under the cap); at alpha 0 it is not."""
    ll = fresh[1][:500]
    for k in range(3):
        one = np.zeros_like(ll)
        one[:, k] = ll[:, k]
        for alpha, blind in ((1.0, True), (0.0, False)):
            p = C.label_probabilities(one, alpha, 0.0, 0.25)
            q = C.label_probabilities(C.symmetrise(one), alpha, 0.0, 0.25)
            assert (np.abs(p - q).max() < 1e-9) == blind, (k, alpha)


@pytest.mark.slow
def test_late_fusion_of_per_modality_class_posteriors_stays_under_the_cap(fresh):
    """A fuser trained on the three single-modality Bayes class posteriors does not beat the cap."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    sets, ll = fresh
    te = sets[1.0]

    def messages(lik: np.ndarray) -> np.ndarray:
        cols = []
        for k in range(3):
            one = np.zeros_like(lik)
            one[:, k] = lik[:, k]
            cols.append(C.label_probabilities(one, 1.0, 0.0, 0.25))
        return np.column_stack(cols)

    from threadpoolctl import threadpool_limits

    tr = generate(3000, 306, alpha=1.0)
    with threadpool_limits(1):
        fuser = HistGradientBoostingClassifier(random_state=0).fit(messages(C.modality_loglik(tr)), tr.label)
        fused = fuser.predict(messages(ll))
    c_dec, _ = C.late_fusion_cap(te, loglik=ll)
    lead, se = _paired(c_dec == te.label, fused == te.label)
    assert lead > -Z99 * se, (lead, se)


@pytest.mark.parametrize("noise", (1.0, 0.1))
def test_sigma_quadrature_matches_a_dense_trapezoid_rule(noise):
    ds = generate(12, 307, noise=noise)
    grid = C.z_grid()
    nu, _, log_sig0 = C._market_setup(ds)
    r = np.diff(np.log(ds.prices), axis=1)
    fast = C._returns_loglik(r, grid, nu, log_sig0)
    dense = C._returns_loglik_trapezoid(r, grid, nu, log_sig0, nodes=1500)
    near = dense - dense.max(axis=1, keepdims=True) > -25  # where the posterior can put mass
    diff = fast - dense
    diff -= np.array([d[m].mean() for d, m in zip(diff, near)])[:, None]  # per-task constants are free
    assert np.abs(diff[near]).max() < 1e-4


def test_whale_quadrature_has_converged(monkeypatch):
    ds = generate(200, 308)
    grid = C.z_grid()
    base = C.risk_loglik(ds, grid)
    monkeypatch.setattr(C, "GH_NODES", 3 * C.GH_NODES)
    np.testing.assert_allclose(C.risk_loglik(ds, grid), base, rtol=0, atol=1e-8)


def test_grid_resolution_has_converged(fresh):
    sets, _ = fresh
    ds = sets[0.5].subset(np.arange(300))
    _, p = C.observation_ceiling(ds)
    _, fine = C.observation_ceiling(ds, points=96, limit=6.0)
    assert np.abs(p - fine).max() < 1e-4


def test_absent_modalities_are_flat_and_bad_inputs_refused():
    ds = generate(50, 309, missing_rate=0.5)
    ll = C.modality_loglik(ds)
    assert np.all(ll[~ds.mask] == 0.0)
    for k in (0, 2):  # prices and flows always say something (headlines may all be distractors)
        assert np.all(np.ptp(ll[ds.mask[:, k], k], axis=-1) > 0)
    odd = ds.subset(np.arange(5))
    odd.headlines = [["Bitcoin is made of cheese"] for _ in range(5)]
    odd.mask[:, 1] = True
    with pytest.raises(ValueError, match="not in the generator's bank"):
        C.observation_ceiling(odd)
    with pytest.raises(ValueError, match="redundancy"):
        C.observation_ceiling(generate(5, 0, redundancy=0.995))
    bare = ds.subset(np.arange(5))
    bare.params = {}
    with pytest.raises(ValueError, match="generator parameters"):
        C.observation_ceiling(bare)


def test_cli_prints_oracle_ceiling_and_cap_per_alpha(capsys):
    assert C.main(["--tasks", "300", "--seed", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out if line.split() and line.split()[0] in ("0.0", "0.5", "1.0")}
    assert set(rows) == {"0.0", "0.5", "1.0"}
    assert rows["0.0"].count("%") == 4 and rows["0.5"].count("%") == 4 and rows["1.0"].count("%") == 6
    ds = generate(300, 4, alpha=0.5)
    acc, expected = C.ceiling_accuracy(ds)
    assert f"{100 * acc:5.1f} %" in rows["0.5"] and f"{100 * expected:5.1f} %" in rows["0.5"]
    assert f"{100 * ds.oracle_accuracy():5.1f} %" in rows["0.5"]
