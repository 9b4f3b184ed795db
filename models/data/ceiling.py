r"""Ceilings computed from the synthetic market's generative model: what the observations allow.

The latent oracle (`Dataset.oracle`) decides from the true latent state z, which no model sees, so
"no architecture above the oracle" cannot fail. This module computes the two ceilings that can:

Observation ceiling. The Bayes decision given the observations, argmax_y P(label = y | x), with
P(y | x) computed from the generator's known likelihoods (`models.data.synthetic` documents the
model; the constants below mirror its code, and the calibration tests check them against generated
data):

1. Per modality, the log-likelihood log p(x_k | z_k) on a grid of z_k values (`z_grid`: 64 equally
   spaced points over [-5, 5] by default), nuisances marginalised (below). An absent modality has
   a flat likelihood.
2. The posterior over (z_m, z_s, z_r) on the 3-D grid, prop. to the correlated Gaussian prior
   (unit variances, correlation `redundancy` rho) evaluated at the nodes times the three
   likelihoods; P(y | x) = sum over the grid of posterior x P(y | z), with P(y | z) the label rule
   under label noise (`synthetic.label_posterior` of the latent score at the node). At rho = 1
   (z_m = z_s = z_r) the grid is the 1-D diagonal; 0.99 < rho < 1 is refused (the prior's width
   across the diagonal, sqrt(1 - rho), falls below the grid spacing; up to 0.99 the default grid
   agrees with a 160-point grid to 1e-6 in probability).
3. The decision is argmax_y P(y | x). Two estimates of its accuracy: the hit rate against the
   labels, and the expected accuracy mean_i max_y P(y | x_i), which has lower variance and is
   unbiased when the likelihoods are right (the calibration tests check that they are).

The likelihoods, given the observations agents see and nothing else (no volatility draw, no
activity level, no distractor flag from the generator's internals):

- market: returns r_t = diff(log price), S = T - 1 of them. Given z_m and the per-sample
  volatility sigma, y = r / sigma is Gaussian with mean 1.6 z_m / sqrt(S) and covariance
  nu^2 Sigma_AR (stationary AR(1), phi 0.2, unit variance; nu the shifted noise level) plus, with
  probability 0.2, a jump of +-3 at a uniform step: a mixture of 2 S + 1 Gaussians, summed
  exactly. Each component's quadratic form in lambda = 1 / sigma is lambda^2 A - 2 lambda beta +
  gamma with A = r' P r shared (P the AR precision), so sigma is integrated per component against
  its lognormal prior by adaptive Gauss-Hermite quadrature in log sigma (`SIGMA_NODES` nodes centred
  at the component integrand's mode, found by Newton's method, and scaled by its curvature; the
  integrands are unimodal and near-Gaussian in log sigma). A fixed grid in sigma would not do: for a
  given z_m the data pin sigma down to r-bar / mean(z_m), a ridge that narrows with the noise. The
  tests check this quadrature against a dense trapezoid rule. Volumes given the return signs:
  log v_t = log V + 0.15 z_m sign(r_t) + 0.4 nu_m eta_t with log V ~ N(log base volume of the
  asset, 0.5^2), a Gaussian whose likelihood in z_m is exact (V marginalised in closed form).
- sentiment: the headline bank (`models.data.headlines`) has each text once, so a headline's text
  names its group: a distractor (likelihood flat in z_s) or a polarity level l, whose likelihood
  is P(bucket(z_s + 0.8 nu_s e) = l) = Phi((hi_l - z_s) / 0.8 nu_s) - Phi((lo_l - z_s) / 0.8 nu_s).
  The number of headlines, the distractor draws, the phrasing family and which sentence of a
  group is drawn do not depend on z_s. Exact. (The ceiling reads the text perfectly; a text model
  must learn to.)
- risk: the seven log-normal flows are jointly Gaussian in log space given z_r once the activity
  level a ~ N(0.5 shift, 1) is marginalised (covariance a a^T + diag(noise^2)), exact; the whale
  count is Poisson with log-rate 2.5 + 0.4 a - 0.3 z_r + 0.3 s g, so given the log flows and z_r
  its log-rate is Gaussian (a's conditional posterior plus g) and its probability is a
  Poisson-lognormal integral, by adaptive Gauss-Hermite quadrature (`GH_NODES` nodes about the
  integrand's mode, which is unique as it is log-concave).

Approximations, all stated: z lives on the grid (a Riemann sum over [-5, 5]^3, where the prior
has all but ~2e-6 of its mass; when a likelihood is narrower than the grid spacing, as at noise
near 0, this rounds z to the grid); sigma and the whale count by Gauss-Hermite quadrature.
Prices and volumes (6 and 5 significant digits) and flows (5) are rounded in the payload: the
rounding is ignored, but a small noise floor stands in for it so noise = 0 stays finite
(`_NU_FLOOR`, `_LOG_FLOOR_VAR`); the sign of a return is read from the rounded prices (it differs
from the generator's only when |r| < 1e-5, a few in ten thousand returns, and then costs one
volume's worth of evidence).

Late-fusion cap (alpha = 1). Each modality's observation model has a sign symmetry g_k with p(g_k
x_k | z_k) = p(x_k | -z_k): negate the returns (volumes unchanged, as 0.15 z_m sign(r_t) is
invariant), mirror the headline levels (l -> -l, the buckets are symmetric), reflect the log flows
about their means at z_r = 0 (log f -> 2 (b + 0.5 shift x loading) - log f, which maps (a - E a,
z_r) to (E a - a, -z_r), and a's prior is symmetric about E a). The sign-blind statistic of modality
k is its observation up to g_k, the unordered pair {x_k, g_k x_k}; its likelihood is prop. to L_k(z)
+ L_k(-z). The cap is the Bayes decision given the three sign-blind statistics: the same computation
as the observation ceiling with each likelihood symmetrised. Every function of x_k that g_k leaves
unchanged is a function of the pair, so no decision that fuses sign-blind per-modality messages
beats the cap in expectation. At alpha = 1 and rho = 0 the label rule is invariant under flipping
all three signs and each modality's Bayes class posterior P(y | x_k) is sign-blind (the pairwise
products are symmetric in any one latent's sign), so late fusion of per-modality class posteriors is
capped by it. The cap is exact for the market and sentiment, and for the risk modality's seven
log-normal flows; the whale count (a Poisson count) has no exact mirror, so for it the symmetrised
likelihood is taken as the sign-blind statistic's likelihood (an approximation; the cap's
calibration test checks it on generated data).

Measurement bound (latent_dim m > 1; `measurement_bound`). The grid above is 3-D and does not
scale to 3m dimensions, and the payload's likelihoods in z (volatility, jumps, activity and tanh
in between) have no closed form to integrate over 3m dimensions. What is computed instead is an
upper bound on the observation ceiling: the Bayes decision given the market's and the risk
modality's Gaussian measurements t_m = B_m z_m + 0.3 nu_m e, t_r = B_r z_r + 0.3 nu_r e (which the
generator keeps in `Dataset.signals`) and the headlines. The payload's series and flows are noisy
functions of t_m and t_r (their nuisances independent of z), so P(y | payload) = E[P(y | t, x_s) |
payload] and no decision from the payload beats this one in expectation (data processing). It is
exact up to Monte Carlo error: Z = (z_m, z_s, z_r) given t is Gaussian (prior R (x) I_m, R the
redundancy correlation; linear Gaussian measurements of the present modalities; an absent one
measures nothing), its mean and covariance in closed form per presence pattern; `BOUND_SAMPLES`
draws per task (common random numbers), each weighted by the headlines' exact likelihood (slot j
at level l: P(bucket(b_s,j . z_s + 0.8 nu_s e) = l), distractors flat), and P(y | t, x_s) = the
weighted mean of P(y | s(Z)). The hit rate is that of a decision computed from 1024 draws (Monte
Carlo noise can only cost it); the expected accuracy mean_i max_y P is biased up by the same
noise. How far it sits below the latent oracle (hit rates on 5,000 tasks, seed 0, m = 8, noise 1,
rho 0): alpha 0: 68.7 % vs 85.6 %; alpha 0.5: 63.5 % vs 85.0 %; alpha 1: 59.7 % vs 84.5 %, so
a model above it is a bug, and at 17-25 points under the oracle the check has teeth. How far it sits
above the true observation ceiling is not computed: it ignores what the volatility, the jumps,
the AR noise, the activity level, the whale count's Poisson noise and the tanh saturation cost.
`ceilings_for(ds)` returns every ceiling of a dataset with its method, at any latent_dim; the
late-fusion cap is computed at latent_dim 1 only.

`python -m models.data.ceiling --tasks N --seed S` prints the latent oracle, the observation
ceiling (both estimates) and, at alpha = 1, the late-fusion cap, at alpha 0, 0.5 and 1, with
binomial 95% intervals.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.special import gammaln, logsumexp, ndtr

from models.data.headlines import headline_bank
from models.data import synthetic as syn
from models.data.synthetic import (_BASE_VOLUME, MODALITIES, Dataset, generate, label_posterior,
                                   latent_score)

GRID_POINTS = 64
GRID_LIMIT = 5.0
SIGMA_NODES = 8
GH_NODES = 12
CHUNK = 256
"""Tasks per vectorised block of the label posterior (bounds memory: CHUNK x 3 x grid^2)."""
MARKET_CHUNK = 16
"""Tasks per block of the market likelihood (MARKET_CHUNK x grid x (2 S + 1) x SIGMA_NODES values)."""

# The generator's constants (models/data/synthetic.py: _market, _headlines, _flows). The tests check
# that each modality's posterior of z_k is calibrated on generated data (and that a wrong constant
# fails that check), so a change there fails here rather than silently skewing a ceiling.
_PHI = 0.2  # AR(1) coefficient of the return noise
_DRIFT = 1.6  # mean return per step, in volatility units: 1.6 z_m / sqrt(S)
_JUMP_P, _JUMP = 0.2, 3.0  # probability and size (in volatility units) of the one unrelated jump
_VOL_BASE, _VOL_SD = 0.02, 0.3  # per-step volatility: 0.02 exp(0.3 g) (1 + 0.5 shift)
_VOLUME_TILT, _VOLUME_NOISE, _VOLUME_LEVEL_SD = 0.15, 0.4, 0.5
_LEVEL_EDGES = (-1.5, -0.5, 0.5, 1.5)  # polarity buckets of z_s + 0.8 nu_s e -> levels -2..2
_TEXT_NOISE = 0.8
# Flows: (intercept, activity loading, z_r tilt, noise scale) per log-normal column, FLOW_NAMES order
# without the whale count (column 2), which is Poisson with log-rate _WHALE + a-loading a + tilt z_r.
_FLOW_COLS = (0, 1, 3, 4, 5, 6, 7)
_FLOW = np.array([
    (4.0, 0.6, -0.5, 0.5),  # exchange inflow
    (4.0, 0.6, 0.5, 0.5),  # exchange outflow
    (3.0, 0.5, 0.4, 0.6),  # stablecoin mint
    (5.0, 0.8, 0.2, 0.3),  # active addresses
    (2.0, 0.5, -0.3, 0.6),  # bridge outflow
    (4.5, 0.7, 0.0, 0.5),  # DEX volume
    (1.5, 0.3, -0.3, 0.6),  # validator outflow
])
_WHALE = (2.5, 0.4, -0.3, 0.3)
_NU_FLOOR = 1e-3  # return noise floor (volatility units): price rounding is ~2e-4 of that scale
_LOG_FLOOR_VAR = 1e-8  # log-volume and log-flow variance floor: 5-digit rounding is below 5e-5


def z_grid(points: int = GRID_POINTS, limit: float = GRID_LIMIT) -> np.ndarray:
    """The latent grid: `points` equally spaced values over [-limit, limit] (symmetric about 0)."""
    if points < 8 or limit <= 0:
        raise ValueError("need points >= 8 and limit > 0")
    return np.linspace(-limit, limit, points)


def _params(ds: Dataset) -> dict:
    p = ds.params
    missing = {"alpha", "redundancy", "label_noise", "noise", "shift", "regime"} - set(p)
    if missing:
        raise ValueError(f"the ceiling needs a synthetic Dataset's generator parameters; missing {sorted(missing)}")
    return p


def latent_dim(ds: Dataset) -> int:
    """The generator's latent_dim for `ds` (1 when its parameters do not name one)."""
    return int(ds.params.get("latent_dim", 1))


def _grid_only(ds: Dataset, what: str) -> None:
    m = latent_dim(ds)
    if m > 1:
        raise ValueError(f"{what}: the exact 3-D grid method needs latent_dim 1, this dataset has latent_dim {m}; "
                         "use measurement_bound(ds) (an upper bound on the observation ceiling, by Monte Carlo "
                         "over the exact Gaussian posterior of the latents) or ceilings_for(ds)")


def _shift(ds: Dataset) -> float:
    p = _params(ds)
    return float(p["shift"]) if p["regime"] == "test" else 0.0


# --- market ------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _ar1_precision(steps: int, phi: float) -> np.ndarray:
    """Precision matrix of a stationary unit-variance AR(1) with coefficient `phi` over `steps` steps."""
    w = np.eye(steps)
    c = 1.0 / math.sqrt(1 - phi**2)
    w[1:, 1:] *= c
    w[np.arange(1, steps), np.arange(steps - 1)] = -phi * c
    return w.T @ w


def _ar1_parts(steps: int) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    prec = _ar1_precision(steps, _PHI)
    p1 = prec.sum(axis=0)
    return prec, p1, float(p1.sum()), np.diag(prec).copy()


def _components(r: np.ndarray, grid: np.ndarray, nu: float):
    """The return model's 2 S + 1 Gaussian components (no jump; a jump of +-3 at step j) in y = r / sigma,
    as log weight (C,), the linear coefficient beta (n, G, C) and constant gamma (G, C) of each
    component's quadratic form lambda^2 A - 2 lambda beta + gamma (lambda = 1 / sigma), and A (n,)."""
    steps = r.shape[1]
    prec, p1, c11, diag = _ar1_parts(steps)
    pr = r @ prec
    a_q = np.maximum(np.einsum("ns,ns->n", pr, r), 1e-300)
    mu = _DRIFT * grid / math.sqrt(steps)  # (G,) mean of y given z_m
    jump_b = np.concatenate([np.zeros((len(r), 1)), _JUMP * pr, -_JUMP * pr], axis=1)  # (n, C)
    jump_g = np.concatenate([[0.0], 2 * _JUMP * p1, -2 * _JUMP * p1])  # times mu
    jump_c = np.concatenate([[0.0], _JUMP**2 * diag, _JUMP**2 * diag])
    beta = mu[None, :, None] * pr.sum(axis=1)[:, None, None] + jump_b[:, None, :]
    gamma = mu[:, None] ** 2 * c11 + mu[:, None] * jump_g[None, :] + jump_c[None, :]
    log_w = np.concatenate([[math.log(1 - _JUMP_P)], np.full(2 * steps, math.log(_JUMP_P / (2 * steps)))])
    return log_w, beta, gamma, a_q


def _returns_loglik(r: np.ndarray, grid: np.ndarray, nu: float, log_sig0: float) -> np.ndarray:
    """log p(returns | z_m) on `grid` up to a per-task constant, sigma integrated per component by
    adaptive Gauss-Hermite quadrature in t = log sigma (centred at the integrand's mode, scaled by its
    curvature, `SIGMA_NODES` nodes): (n, G)."""
    steps = r.shape[1]
    log_w, beta, gamma, a_q = _components(r, grid, nu)
    a = a_q[:, None, None]
    v2 = nu**2
    s02 = _VOL_SD**2
    # the component integrands exp(h(t)), h(t) = -S t - (A e^-2t - 2 beta e^-t) / 2 nu^2 - (t - t0)^2 / 2 s0^2,
    # are log-concave about their single mode; start from the mode without the prior term
    x = (beta + np.sqrt(beta**2 + 4 * a * v2 * steps)) / (2 * a)
    t = -np.log(x)
    for _ in range(8):
        x = np.exp(-t)
        grad = -steps + (a * x**2 - beta * x) / v2 - (t - log_sig0) / s02
        hess = np.minimum(-(2 * a * x**2 - beta * x) / v2 - 1 / s02, -1 / s02)
        t = t - np.clip(grad / hess, -1.0, 1.0)
    x = np.exp(-t)
    hess = np.minimum(-(2 * a * x**2 - beta * x) / v2 - 1 / s02, -1 / s02)
    scale = np.sqrt(-1.0 / hess)
    node, weight = np.polynomial.hermite.hermgauss(SIGMA_NODES)
    tn = t[..., None] + (math.sqrt(2) * scale)[..., None] * node  # (n, G, C, Q)
    xn = np.exp(-tn)
    h = xn * (2 * beta[..., None] - a[..., None] * xn)
    h *= 1 / (2 * v2)
    h -= steps * tn
    tn -= log_sig0
    tn **= 2
    tn *= 1 / (2 * s02)
    h -= tn
    h += node**2 + np.log(weight)
    integral = _lse(h) + np.log(math.sqrt(2) * scale)
    comp = log_w + integral - gamma[None] / (2 * v2)
    return _lse(comp)


def _lse(x: np.ndarray) -> np.ndarray:
    """log sum exp over the last axis (finite inputs)."""
    m = x.max(axis=-1)
    return m + np.log(np.exp(x - m[..., None]).sum(axis=-1))


def _returns_loglik_trapezoid(r: np.ndarray, grid: np.ndarray, nu: float, log_sig0: float,
                              nodes: int = 400) -> np.ndarray:
    """The same integral by the trapezoid rule on `nodes` fixed nodes over +-8 prior sd in log sigma: a
    slow, independent reference for `_returns_loglik` (the tests compare them)."""
    log_w, beta, gamma, a_q = _components(r, grid, nu)
    u = np.linspace(-8.0, 8.0, nodes)
    t = log_sig0 + _VOL_SD * u
    out = np.empty(beta.shape[:2])
    for g in range(beta.shape[1]):
        x = np.exp(-t)[None, None, :]
        h = (-r.shape[1] * t - (a_q[:, None, None] * x**2 - 2 * beta[:, g, :, None] * x) / (2 * nu**2)
             - 0.5 * u**2)
        comp = log_w + logsumexp(h, axis=-1) - gamma[g] / (2 * nu**2)
        out[:, g] = logsumexp(comp, axis=1)
    return out


def _volume_loglik(r: np.ndarray, volumes: np.ndarray, log_base: np.ndarray, grid: np.ndarray,
                   nu_m: float) -> np.ndarray:
    """log p(volumes | return signs, z_m) up to a per-task constant: log v_t = log V + tilt z_m s_t +
    noise, s = (0, sign(r)), log V ~ N(log base, level_sd^2) marginalised in closed form: (n, G)."""
    d_vol = (_VOLUME_NOISE * nu_m) ** 2 + _LOG_FLOOR_VAR  # volume noise is not shifted
    kappa = _VOLUME_LEVEL_SD**2 / (d_vol + _VOLUME_LEVEL_SD**2 * volumes.shape[1])
    s = np.concatenate([np.zeros((len(r), 1)), np.sign(r)], axis=1)
    dev = np.log(volumes) - log_base[:, None]
    a_v = (np.einsum("nt,nt->n", s, dev) - kappa * s.sum(1) * dev.sum(1)) / d_vol
    b_v = ((s**2).sum(1) - kappa * s.sum(1) ** 2) / d_vol
    tz = _VOLUME_TILT * grid[None, :]
    return tz * a_v[:, None] - 0.5 * tz**2 * b_v[:, None]


def _market_setup(ds: Dataset) -> tuple[float, float, float]:
    """(return noise nu with its floor, unshifted market noise nu_m, prior mean of log sigma)."""
    shift = _shift(ds)
    nu_m = float(_params(ds)["noise"]["market"])
    nu = math.sqrt((nu_m * (1 + 0.5 * shift)) ** 2 + _NU_FLOOR**2)
    return nu, nu_m, math.log(_VOL_BASE * (1 + 0.5 * shift))


def market_loglik(ds: Dataset, grid: np.ndarray) -> np.ndarray:
    """log p(prices, volumes | z_m) on `grid`, up to a per-task constant: (N, G); 0 where absent."""
    out = np.zeros((len(ds), len(grid)))
    rows = np.flatnonzero(ds.mask[:, 0])
    nu, nu_m, log_sig0 = _market_setup(ds)
    log_base = np.log(np.array([_BASE_VOLUME[str(a)] for a in ds.asset]))
    for start in range(0, len(rows), MARKET_CHUNK):
        idx = rows[start:start + MARKET_CHUNK]
        r = np.diff(np.log(ds.prices[idx]), axis=1)
        out[idx] = _returns_loglik(r, grid, nu, log_sig0) + _volume_loglik(r, ds.volumes[idx], log_base[idx],
                                                                           grid, nu_m)
    return out


# --- sentiment ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _bank_index() -> dict[str, tuple[str, int | None]]:
    """Headline text -> (asset, level), level None for a distractor (texts are unique in the bank)."""
    return {h.text: (h.asset, None if h.family == "d" else h.level) for h in headline_bank().headlines}


def headline_levels(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per task, counts of on-topic headlines at levels -2..2 (N, 5) and of distractors (N,)."""
    index = _bank_index()
    counts = np.zeros((len(ds), 5), dtype=np.int64)
    distract = np.zeros(len(ds), dtype=np.int64)
    for i, texts in enumerate(ds.headlines):
        for text in texts:
            if text not in index:
                raise ValueError(f"task {i}: headline not in the generator's bank: {text!r}")
            asset, level = index[text]
            if asset != str(ds.asset[i]):
                raise ValueError(f"task {i}: headline of {asset} on a {ds.asset[i]} task")
            if level is None:
                distract[i] += 1
            else:
                counts[i, level + 2] += 1
    return counts, distract


def sentiment_loglik(ds: Dataset, grid: np.ndarray) -> np.ndarray:
    """log p(headlines | z_s) on `grid`, up to a per-task constant: (N, G); 0 where absent."""
    counts, _ = headline_levels(ds)
    counts[~ds.mask[:, 1]] = 0
    sd = max(_TEXT_NOISE * float(_params(ds)["noise"]["sentiment"]), 1e-6)
    edges = np.concatenate([[-np.inf], _LEVEL_EDGES, [np.inf]])
    p = ndtr((edges[1:, None] - grid[None, :]) / sd) - ndtr((edges[:-1, None] - grid[None, :]) / sd)  # (5, G)
    return counts @ np.log(np.maximum(p, 1e-300))


# --- risk --------------------------------------------------------------------------------------


def risk_loglik(ds: Dataset, grid: np.ndarray) -> np.ndarray:
    """log p(flows | z_r) on `grid`, up to a per-task constant: (N, G); 0 where absent."""
    n, g = len(ds), len(grid)
    out = np.zeros((n, g))
    rows = np.flatnonzero(ds.mask[:, 2])
    if len(rows) == 0:
        return out
    shift = _shift(ds)
    s = float(_params(ds)["noise"]["risk"]) * (1 + 0.5 * shift)
    m_a = 0.5 * shift
    b, load, tilt, scale = _FLOW.T
    dvar = (scale * s) ** 2 + _LOG_FLOOR_VAR
    cov = np.outer(load, load) + np.diag(dvar)
    icov = np.linalg.inv(cov)
    t_i_t = float(tilt @ icov @ tilt)
    v_a = 1.0 / (1.0 + float(load @ (load / dvar)))
    tau = math.sqrt(_WHALE[1] ** 2 * v_a + (_WHALE[3] * s) ** 2)

    lf = np.log(ds.flows[rows][:, _FLOW_COLS])  # (n, 7)
    k = ds.flows[rows, 2][:, None]
    d0 = lf - b - load * m_a
    gauss = grid[None, :] * (d0 @ icov @ tilt)[:, None] - 0.5 * t_i_t * grid[None, :] ** 2
    # activity given the log flows and z_r: N(m_post(z), v_a); the whale log-rate is Gaussian given both
    a_lin = v_a * (m_a + (lf - b) @ (load / dvar))  # part of m_post without z
    a_z = -v_a * float(tilt @ (load / dvar))  # d m_post / d z
    mu_u = _WHALE[0] + _WHALE[2] * grid[None, :] + _WHALE[1] * (a_lin[:, None] + a_z * grid[None, :])  # (n, G)
    out[rows] = gauss + _poisson_lognormal(k, mu_u, tau)
    return out


def _poisson_lognormal(k: np.ndarray, mu: np.ndarray, tau: float) -> np.ndarray:
    """log of int Poisson(k; e^u) N(u; mu, tau^2) du by adaptive Gauss-Hermite quadrature: `GH_NODES`
    nodes centred at the integrand's mode (it is log-concave in u) and scaled by its curvature."""
    u = np.log(k + 0.5) * np.ones_like(mu)
    u = np.clip(u, mu - 10 * tau, mu + 10 * tau)
    for _ in range(30):  # Newton on k u - e^u - (u - mu)^2 / 2 tau^2, concave
        step = (k - np.exp(u) - (u - mu) / tau**2) / (np.exp(u) + 1 / tau**2)
        u = u + np.clip(step, -2.0, 2.0)
    scale = 1.0 / np.sqrt(np.exp(u) + 1 / tau**2)
    x, w = np.polynomial.hermite.hermgauss(GH_NODES)
    un = u[..., None] + math.sqrt(2) * scale[..., None] * x
    f = k[..., None] * un - np.exp(un) - (un - mu[..., None]) ** 2 / (2 * tau**2) + x**2 + np.log(w)
    return (_lse(f) + np.log(math.sqrt(2) * scale) - 0.5 * math.log(2 * math.pi * tau**2)
            - gammaln(k + 1))

    out[rows] = gauss + whale
    return out


# --- posterior over the label ------------------------------------------------------------------


def modality_loglik(ds: Dataset, grid: np.ndarray | None = None,
                    use: Sequence[str] | None = None) -> np.ndarray:
    """(N, 3, G) log-likelihoods of each modality's observations on `grid` (market, sentiment, risk);
    a row of zeros (flat) where the modality is absent or not in `use`."""
    _grid_only(ds, "modality_loglik")
    grid = z_grid() if grid is None else grid
    use = MODALITIES if use is None else tuple(use)
    unknown = set(use) - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; choose from {MODALITIES}")
    funcs = {"market": market_loglik, "sentiment": sentiment_loglik, "risk": risk_loglik}
    out = np.zeros((len(ds), len(MODALITIES), len(grid)))
    for k, name in enumerate(MODALITIES):
        if name in use:
            out[:, k] = funcs[name](ds, grid)
    return out


def symmetrise(loglik: np.ndarray) -> np.ndarray:
    """log of (L(z) + L(-z)) / 2 on a grid symmetric about 0: the sign-blind statistic's likelihood."""
    return np.logaddexp(loglik, loglik[..., ::-1]) - math.log(2)


def _diagonal(redundancy: float) -> bool:
    if 0.99 < redundancy < 1.0:
        raise ValueError(f"redundancy {redundancy} in (0.99, 1): the 3-D grid cannot resolve the prior; "
                         "use <= 0.99 or exactly 1")
    return redundancy >= 1.0


@lru_cache(maxsize=16)
def _weights(alpha: float, redundancy: float, label_noise: float, points: int, limit: float) -> np.ndarray:
    """prior(z) x P(y | z) on the grid: (3, G, G, G), or (3, G) on the diagonal when rho = 1."""
    grid = z_grid(points, limit)
    if _diagonal(redundancy):
        z = np.repeat(grid[:, None], 3, axis=1)
        prior = np.exp(-0.5 * grid**2)
        post = label_posterior(latent_score(z, alpha, redundancy), alpha, redundancy, label_noise)  # (G, 3)
        return (prior[:, None] * post).T / prior.sum()
    z = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    cov = (1 - redundancy) * np.eye(3) + redundancy
    log_prior = -0.5 * np.einsum("ni,ij,nj->n", z, np.linalg.inv(cov), z)
    prior = np.exp(log_prior - log_prior.max())
    prior /= prior.sum()
    post = label_posterior(latent_score(z, alpha, redundancy), alpha, redundancy, label_noise)  # (G^3, 3)
    g = len(grid)
    return (prior[:, None] * post).T.reshape(3, g, g, g)


def label_probabilities(loglik: np.ndarray, alpha: float, redundancy: float, label_noise: float,
                        points: int = GRID_POINTS, limit: float = GRID_LIMIT) -> np.ndarray:
    """P(label = y | x) from per-modality log-likelihoods (N, 3, G) on `z_grid(points, limit)`: (N, 3)."""
    n, _, g = loglik.shape
    if g != points:
        raise ValueError(f"loglik has {g} grid points, expected {points}")
    w = _weights(float(alpha), float(redundancy), float(label_noise), points, float(limit))
    lik = np.exp(loglik - loglik.max(axis=2, keepdims=True))  # (N, 3, G), each row's max is 1
    out = np.empty((n, 3))
    if w.ndim == 2:  # rho = 1: one latent
        out[:] = np.prod(lik, axis=1) @ w.T
    else:
        w_k = w.reshape(3 * g * g, g)  # last axis: z_r
        for start in range(0, n, CHUNK):
            sl = slice(start, start + CHUNK)
            m = lik[sl].shape[0]
            t1 = (lik[sl, 2] @ w_k.T).reshape(m, 3 * g, g)  # sum over z_r
            t2 = np.matmul(t1, lik[sl, 1, :, None]).reshape(m, 3, g)  # sum over z_s
            out[sl] = np.einsum("nyi,ni->ny", t2, lik[sl, 0])  # sum over z_m
    return out / out.sum(axis=1, keepdims=True)


def _probabilities(ds: Dataset, loglik: np.ndarray | None, use: Sequence[str] | None, sign_blind: bool,
                   points: int, limit: float) -> tuple[np.ndarray, np.ndarray]:
    p = _params(ds)
    _grid_only(ds, "the late-fusion cap" if sign_blind else "observation_ceiling")
    if loglik is None:
        loglik = modality_loglik(ds, z_grid(points, limit), use)
    if sign_blind:
        loglik = symmetrise(loglik)
    prob = label_probabilities(loglik, p["alpha"], p["redundancy"], p["label_noise"], points, limit)
    return prob.argmax(axis=1).astype(np.int64), prob


def observation_ceiling(ds: Dataset, *, use: Sequence[str] | None = None, loglik: np.ndarray | None = None,
                        points: int = GRID_POINTS, limit: float = GRID_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """The Bayes decision given the observations: (decisions (N,), P(label | x) (N, 3)).

    `use` restricts the modalities it reads (the others count as absent); `loglik` reuses
    `modality_loglik(ds, ...)` computed before (the observations do not depend on alpha)."""
    return _probabilities(ds, loglik, use, False, points, limit)


def late_fusion_cap(ds: Dataset, *, use: Sequence[str] | None = None, loglik: np.ndarray | None = None,
                    points: int = GRID_POINTS, limit: float = GRID_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """The Bayes decision given each modality's sign-blind statistic (module docstring): (decisions, P)."""
    return _probabilities(ds, loglik, use, True, points, limit)


def accuracy(ds: Dataset, decisions: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
    """(hit rate against the labels, expected accuracy mean_i P(decision_i | x_i))."""
    return float(np.mean(decisions == ds.label)), float(np.mean(prob[np.arange(len(ds)), decisions]))


def ceiling_accuracy(ds: Dataset, **kw) -> tuple[float, float]:
    """The observation ceiling's (accuracy, expected accuracy) on `ds` (keywords: `observation_ceiling`)."""
    return accuracy(ds, *observation_ceiling(ds, **kw))


def oracle_expected_accuracy(ds: Dataset) -> float:
    """mean_i max_y P(y | s_i): the latent oracle's expected accuracy (needs the latent score)."""
    if ds.score is None:
        raise ValueError("no latent score on this dataset")
    p = _params(ds)
    if latent_dim(ds) > 1:
        return float(syn.label_posterior_dims(ds.score, p["alpha"], p["redundancy"], p["label_noise"],
                                              latent_dim(ds)).max(axis=1).mean())
    return float(label_posterior(ds.score, p["alpha"], p["redundancy"], p["label_noise"]).max(axis=1).mean())


def posterior_moments(loglik: np.ndarray, grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-modality posterior mean and sd of z_k given x_k alone (prior N(0, 1), each z_k's marginal):
    two (N, 3) arrays."""
    grid = z_grid(loglik.shape[-1]) if grid is None else grid
    lp = loglik - 0.5 * grid**2
    w = np.exp(lp - lp.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    mean = w @ grid
    var = w @ grid**2 - mean**2
    return mean, np.sqrt(np.maximum(var, 0.0))



# --- latent_dim > 1: the measurement bound ---------------------------------------------------------

BOUND_SAMPLES = 1024
"""Posterior draws per task of `measurement_bound` (common random numbers: the same draws for all)."""
BOUND_CHUNK = 128
_SIGNAL_FLOOR = 1e-3  # measurement noise floor, so noise = 0 keeps the posterior proper


def headline_slots(ds: Dataset) -> np.ndarray:
    """Per task and headline slot (payload order, 3 slots), the polarity level + 2 (0..4) of an
    on-topic headline, or -1 for a distractor or an empty slot: (N, 3)."""
    index = _bank_index()
    out = np.full((len(ds), 3), -1, dtype=np.int64)
    for i, texts in enumerate(ds.headlines):
        if not ds.mask[i, 1]:
            continue
        for j, text in enumerate(texts[:3]):
            if text not in index:
                raise ValueError(f"task {i}: headline not in the generator's bank: {text!r}")
            level = index[text][1]
            if level is not None:
                out[i, j] = level + 2
    return out


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    val, vec = np.linalg.eigh((cov + cov.T) / 2)
    return vec * np.sqrt(np.clip(val, 0.0, None))


def _gaussian_posterior(st: syn.LatentStructure, redundancy: float, nu: dict[str, float], market: bool,
                        risk: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one presence pattern: the gain K (3m, J) with E[Z | t] = K t, a square root L of Cov[Z | t]
    (3m, 3m), and the rows of H used (so t = H Z + noise), Z = (z_m, z_s, z_r) stacked."""
    m = st.m
    prior = np.kron(syn._corr(redundancy), np.eye(m))
    rows, noise = [], []
    if market:
        h = np.zeros((m, 3 * m))
        h[:, :m] = st.market
        rows.append(h)
        noise += [max(syn.SIGNAL_NOISE * nu["market"], _SIGNAL_FLOOR)] * m
    if risk:
        h = np.zeros((len(st.risk), 3 * m))
        h[:, 2 * m:] = st.risk
        rows.append(h)
        noise += [max(syn.SIGNAL_NOISE * nu["risk"], _SIGNAL_FLOOR)] * len(st.risk)
    if not rows:
        return np.zeros((3 * m, 0)), _psd_sqrt(prior), np.zeros((0, 3 * m))
    h = np.vstack(rows)
    gain = prior @ h.T @ np.linalg.inv(h @ prior @ h.T + np.diag(np.square(noise)))
    return gain, _psd_sqrt(prior - gain @ h @ prior), h


def measurement_bound(ds: Dataset, *, samples: int = BOUND_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """latent_dim > 1: the Bayes decision given the market's and the risk modality's measurements t_m,
    t_r and the headlines (module docstring "Measurement bound"): (decisions (N,), P(label | t, x_s) (N, 3)).

    An upper bound on the observation ceiling: the payload's market series and flows are noisy
    functions of t_m and t_r, so no decision from the payload beats this one in expectation."""
    p = _params(ds)
    m = latent_dim(ds)
    if m < 2:
        raise ValueError("measurement_bound is for latent_dim > 1; at latent_dim 1 use observation_ceiling (exact)")
    if ds.signals is None:
        raise ValueError("measurement_bound needs the generator's measurements (Dataset.signals)")
    st = syn.latent_structure(m)
    alpha, rho, label_noise = float(p["alpha"]), float(p["redundancy"]), float(p["label_noise"])
    nu = p["noise"]
    eps = np.random.default_rng([seed, 77]).standard_normal((samples, 3 * m))
    slots = headline_slots(ds)
    sd = max(_TEXT_NOISE * float(nu["sentiment"]), 1e-6)
    edges = np.concatenate([[-np.inf], _LEVEL_EDGES, [np.inf]])
    prob = np.empty((len(ds), 3))
    market, risk = ds.mask[:, 0], ds.mask[:, 2]
    for pattern in {(bool(a), bool(b)) for a, b in zip(market, risk)}:
        rows = np.flatnonzero((market == pattern[0]) & (risk == pattern[1]))
        gain, root, _ = _gaussian_posterior(st, rho, nu, *pattern)
        t = np.hstack(([ds.signals["market"]] if pattern[0] else []) + ([ds.signals["risk"]] if pattern[1] else [])
                      ) if any(pattern) else np.zeros((len(ds), 0))
        draws = eps @ root.T  # (S, 3m)
        for start in range(0, len(rows), BOUND_CHUNK):
            idx = rows[start:start + BOUND_CHUNK]
            z = (t[idx] @ gain.T)[:, None, :] + draws[None]  # (c, S, 3m)
            z = z.reshape(len(idx), samples, 3, m)
            post = syn.label_posterior_dims(syn.latent_score_dims(z, alpha, rho), alpha, rho, label_noise, m)
            proj = z[:, :, 1, :] @ st.sentiment.T  # (c, S, 3): the headline slots' projections
            logw = np.zeros((len(idx), samples))
            for j in range(3):
                lvl = slots[idx, j]
                on = lvl >= 0
                if on.any():
                    hi, lo = edges[lvl[on] + 1][:, None], edges[lvl[on]][:, None]
                    pj = ndtr((hi - proj[on, :, j]) / sd) - ndtr((lo - proj[on, :, j]) / sd)
                    logw[on] += np.log(np.maximum(pj, 1e-300))
            w = np.exp(logw - logw.max(axis=1, keepdims=True))
            prob[idx] = np.einsum("cs,csy->cy", w, post) / w.sum(axis=1, keepdims=True)
    return prob.argmax(axis=1).astype(np.int64), prob


def ceilings_for(ds: Dataset, *, loglik: np.ndarray | None = None) -> dict[str, dict | None]:
    """Every ceiling of a synthetic dataset, each {"accuracy" (hit rate), "expected" (mean_i
    P(decision_i | what it reads)), "decisions" (N,), "method" (how it was computed)}; keys
    "latent" (the oracle), "observation" and "late_fusion_cap" (None where not computed: alpha != 1,
    or latent_dim > 1). `loglik` reuses `modality_loglik(ds)` at latent_dim 1."""
    m = latent_dim(ds)
    out: dict[str, dict | None] = {}
    if ds.oracle is not None and ds.score is not None:
        out["latent"] = {"accuracy": float(np.mean(ds.oracle == ds.label)), "expected": oracle_expected_accuracy(ds),
                         "decisions": ds.oracle, "method": "latent oracle: the Bayes decision given the true latent "
                         "state (no model sees it; an upper bound that cannot fail)"}
    if m == 1:
        loglik = modality_loglik(ds) if loglik is None else loglik
        dec, prob = observation_ceiling(ds, loglik=loglik)
        out["observation"] = {**dict(zip(("accuracy", "expected"), accuracy(ds, dec, prob))), "decisions": dec,
                              "method": "exact: the Bayes decision given the observations, likelihoods on a "
                                        f"{GRID_POINTS}-point grid per latent, posterior on the 3-D grid"}
        out["late_fusion_cap"] = None
        if float(_params(ds)["alpha"]) == 1.0:
            cdec, cprob = late_fusion_cap(ds, loglik=loglik)
            out["late_fusion_cap"] = {**dict(zip(("accuracy", "expected"), accuracy(ds, cdec, cprob))),
                                      "decisions": cdec, "method": "exact: the Bayes decision given each "
                                      "modality's sign-blind statistic (symmetrised likelihoods, 3-D grid)"}
        return out
    dec, prob = measurement_bound(ds)
    out["observation"] = {**dict(zip(("accuracy", "expected"), accuracy(ds, dec, prob))), "decisions": dec,
                          "method": f"upper bound (latent_dim {m}): the Bayes decision given the market's and the "
                                    "risk modality's Gaussian measurements and the headline levels, Monte Carlo "
                                    f"over the exact Gaussian posterior ({BOUND_SAMPLES} draws per task, "
                                    "importance-weighted by the headline likelihoods)"}
    out["late_fusion_cap"] = None
    return out


# --- CLI ---------------------------------------------------------------------------------------


def wilson(hits: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson 95% interval for a binomial proportion `hits / n`."""
    p = hits / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def _fmt_acc(correct: np.ndarray) -> str:
    lo, hi = wilson(float(correct.sum()), len(correct))
    return f"{100 * correct.mean():5.1f} % [{100 * lo:4.1f}, {100 * hi:4.1f}]"


def _fmt_mean(x: np.ndarray) -> str:
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    return f"{100 * x.mean():5.1f} % [{100 * (x.mean() - half):4.1f}, {100 * (x.mean() + half):4.1f}]"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.data.ceiling", description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--redundancy", type=float, default=0.0)
    ap.add_argument("--missing-rate", type=float, default=0.0)
    ap.add_argument("--noise", type=float, default=1.0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    loglik, first = None, None
    print(f"{args.tasks} tasks, seed {args.seed}, redundancy {args.redundancy}, missing rate {args.missing_rate}, "
          f"noise {args.noise}; accuracy % [95% interval]")
    print(f"{'alpha':>5}  {'latent oracle':<24} {'oracle expected':<24} {'observation ceiling':<24} "
          f"{'ceiling expected':<24} {'late-fusion cap':<24} {'cap expected':<24}")
    for alpha in (0.0, 0.5, 1.0):
        ds = generate(args.tasks, args.seed, alpha=alpha, noise=args.noise, missing_rate=args.missing_rate,
                      redundancy=args.redundancy)
        if first is None:
            first = ds
            loglik = modality_loglik(ds)
        else:  # alpha changes labels only: reuse the likelihoods, after checking the observations match
            assert np.array_equal(ds.prices, first.prices, equal_nan=True) and ds.headlines == first.headlines
        dec, prob = observation_ceiling(ds, loglik=loglik)
        rows = np.arange(len(ds))
        oracle_p = label_posterior(ds.score, alpha, args.redundancy, ds.params["label_noise"]).max(axis=1)
        cols = [_fmt_acc(ds.oracle == ds.label), _fmt_mean(oracle_p), _fmt_acc(dec == ds.label),
                _fmt_mean(prob[rows, dec])]
        if alpha == 1.0:
            cdec, cprob = late_fusion_cap(ds, loglik=loglik)
            cols += [_fmt_acc(cdec == ds.label), _fmt_mean(cprob[rows, cdec])]
        else:
            cols += ["-", "-"]
        print(f"{alpha:5.1f}  " + " ".join(f"{c:<24}" for c in cols))
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
