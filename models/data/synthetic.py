r"""The seeded synthetic multimodal market: prices/volumes, news headlines, on-chain flows.

Generative model (one sample = one task about one asset)
--------------------------------------------------------
Latent state. A common factor c and three private factors u_k, all N(0, 1) and independent; the
per-modality latents are

    z_k = sqrt(1 - rho) * u_k + sqrt(rho) * c,      k in {market, sentiment, risk}

so `redundancy` rho is the correlation between any two modalities' latents (0: each modality
carries its own information; 1: all carry the same).

Label. An additive part A and a cross-modal interaction part I, both of unit variance:

    A = (1.0 z_m + 0.8 z_s + 0.6 z_r) / sd_A
    I = (z_m z_s + z_m z_r + z_s z_r - 3 rho) / sqrt(3 + 6 rho + 9 rho^2)
    s = (1 - alpha) * A + alpha * I                               (the latent decision score)
    label = sell if s + e < t_lo, buy if s + e > t_hi, else hold,  e ~ N(0, (label_noise * sd_s)^2)

with thresholds t_lo, t_hi at the tertiles of s + e (balanced classes; computed once per
(alpha, rho, label_noise) by a fixed-seed Monte Carlo). Given any one modality the pairwise
products are symmetric in sign, so at alpha = 1 no single modality says buy rather than sell:
the signal exists only across modalities (a soft XOR). At alpha = 0 the Bayes decision is a
monotone function of E[A | x] = sum_k w_k E[z_k | x_k], a sum of per-modality terms, so calibrated
late fusion of per-modality posteriors can reach it.

Oracle. The Bayes decision given the true latent state: argmax_y P(y | s) under the label noise,
i.e. the label rule applied to the noiseless latent score. No model sees s, so none can beat it in
expectation. Risk flag: 1 when z_r + e_r < -1 (e_r ~ N(0, 0.3^2)); its oracle is z_r < -1.

Ceilings. Since no model sees z, "no model above the oracle" cannot fail; `models.data.ceiling`
computes, from this model's known likelihoods and the observations alone, the ceilings that can:
- the observation ceiling: the Bayes decision given the observations. Per modality the likelihood
  p(x_k | z_k) on a grid of z_k values, its nuisances marginalised (market: the 2 S + 1 jump
  components summed exactly, the volatility by adaptive Gauss-Hermite quadrature in log sigma, the
  volume level in closed form given the return signs; sentiment: each text names its bank group,
  so distractors are flat and a level l has likelihood P(bucket(z_s + 0.8 nu_s e) = l); risk: the
  activity level in closed form for the seven log-normal flows, the whale count a Poisson-lognormal
  integral by quadrature); an absent modality is flat. Then the posterior over (z_m, z_s, z_r) on
  the 3-D grid under the correlated prior, and P(y | x) = sum over the grid of posterior x P(y | z).
  Its accuracy is reported as the hit rate and as the expected accuracy mean_i max_y P(y | x_i).
- at alpha = 1, the late-fusion cap: the Bayes decision given each modality's observation only up
  to the sign of its latent (each likelihood symmetrised, L_k(z) + L_k(-z)). At alpha = 1,
  rho = 0 a single modality's Bayes class posterior is blind to that sign, so late fusion of
  per-modality class posteriors cannot beat the cap.
Headlines tell z_s only through its polarity bucket, so even as noise -> 0 the observation ceiling
stays below the oracle (it reaches it at redundancy 1, where z_s = z_m). `python -m
models.data.ceiling --tasks N --seed S` prints all three with their intervals.

Observations, each with a noise multiplier (the `noise` knob; 1.0 = default):
- market: T prices and volumes. Per-step volatility sigma_i (lognormal per sample); log returns
  r_t = sigma_i * (1.6 z_m / sqrt(T - 1) + nu_m * e_t) with AR(1) noise e_t (phi 0.2) and, with
  probability 0.2, one unrelated +-3 sigma jump. Volume is higher on days that move with the trend:
  log v_t = log V_i + 0.15 z_m sign(r_t) + 0.4 nu_m eta_t. Prices and volumes are rounded to 6 and 5
  significant digits (short payloads that round-trip through JSON exactly).
- sentiment: 1-3 headlines (30/40/30%). Each is a distractor with probability 0.15 (level 0,
  off-topic or about another asset); otherwise its polarity level is the bucket of
  1.0 z_s + 0.8 nu_s * N(0, 1) at (-1.5, -0.5, 0.5, 1.5) -> -2..2, and the text is drawn from the
  headline bank (`models.data.headlines`) for that asset and level.
- risk: 8 on-chain flow features (`FLOW_NAMES`), log-normal around a per-sample activity level a
  ~ N(0, 1) (a nuisance that scales every flow), each tilted by z_r: exchange inflow down and
  outflow up with z_r, stablecoin mints and active addresses up, bridge and validator outflows
  down, DEX volume pure nuisance, whale transfers a Poisson count.

Missing modalities: each modality is absent independently with probability `missing_rate` (at least
one stays). An absent modality has empty fields in the payload and a 0 in the presence mask.

Regime shift (`shift` >= 0, applied only when `regime="test"`): market volatility x (1 + 0.5 shift)
and return noise x (1 + 0.5 shift); flow activity level +0.5 shift and flow noise x (1 + 0.5 shift);
distractor rate +0.1 shift and a share 0.5 shift (capped at 1) of headlines from the held-out
phrasing family. The label rule and the oracle do not shift (covariate shift only).

Latent dimension (`latent_dim` m; default 1, the model above, byte for byte). For 2 <= m <= 16
each modality's latent is a vector, so what a modality tells another needs m numbers, not one:

    z_k = sqrt(1 - rho) * u_k + sqrt(rho) * c,      c, u_k ~ N(0, I_m) independent

(`Dataset.latent` is (N, 3, m)). A fixed structure per m (`latent_structure(m)`, each part from its
own child of SeedSequence([STRUCTURE_SEED, m]), the same for every dataset): unit additive
directions w_k, bilinear forms W_ms, W_mr, W_sr of rank 2 (W = U V' with U, V random orthonormal
m x 2: a pair of modalities interacts through two directions of each, so a modality's message to
the others needs up to four numbers; the two forms that read z_s read it only in the 3-dim span of
its headline projections, below), and each modality's projections.

    A = (1.0 w_m.z_m + 0.8 w_s.z_s + 0.6 w_r.z_r) / sd_A
    I = (z_m' W_ms z_s + z_m' W_mr z_r + z_s' W_sr z_r - mean) / sd      (mean, sd in closed form:
        a Gaussian quadratic form Z'QZ has mean tr(Q S) and variance 2 tr(Q S Q S))
    s = (1 - alpha) * A + alpha * I,  label and thresholds as above (tertiles by a fixed-seed Monte
        Carlo per (alpha, rho, label_noise, m): `label_thresholds_dims`)

A is odd and I even in z, so they are uncorrelated and sd_s is as above. Flipping all of one
modality's latent leaves the law of I given the others' symmetric, so at alpha = 1, rho = 0 a
single modality still says nothing about buy vs sell; at alpha = 0 one direction per modality
(w_k.z_k) decides. Risk flag and its oracle read w_r.z_r in place of z_r.

Observations at m > 1 keep the payload formats (prices/volumes, 1-3 bank headlines, 8 flows), so
the agents run unchanged. The market and the risk modality first take Gaussian measurements of
their latent, then show them through the nonlinearity g(x) = 1.5 tanh(x / 1.5):
- market: t_m = B_m z_m + 0.3 nu_m e (B_m a fixed orthonormal m x m matrix, its first row w_m:
  every direction is measured). Log returns r = sigma_i * (3.0 sum_j g(t_m,j) p_j + nu_m * e_t), with p_0 the constant
  trend profile over all T - 1 steps and p_j (j >= 1) the cosine of frequency j over the last 16
  steps (unit norm, mutually orthogonal; `time_profiles`); the volatility, AR(1) noise, jump and
  rounding as above; the volume tilt is 0.15 g(t_m,0) sign(r_t).
- sentiment: headline slot j (payload order) reads the projection b_s,j . z_s (b_s orthonormal,
  b_s,0 = w_s): its polarity level is the bucket of b_s,j . z_s + 0.8 nu_s N(0, 1), the rest as
  above. (A text model that averages its headlines' embeddings loses the slot order.)
- risk: t_r = B_r z_r + 0.3 nu_r e with B_r eight fixed unit rows (one per flow; the first min(m, 8)
  orthonormal, the first w_r, so they span R^m for m <= 8); log flow j = b_j + l_j a + tau_j g(t_r,j) + 0.25 s e_j (tau_j = +-0.5, `RISK_TILT`;
  intercepts b_j and activity loadings l_j as above, s the shifted risk noise), the whale count
  Poisson with that mean (its log-rate noise 0.15 s).
t_m and t_r are kept in `Dataset.signals` (for `models.data.ceiling`'s bound); the payload is a
noisy function of them. `Dataset.params` carries latent_dim only when m > 1.

Every component draws from its own child of the seed, so changing one knob changes only what it
governs: alpha changes labels and oracle, never observations; noise changes observations, never
labels (at every latent_dim).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from models.data.headlines import ASSETS, BASE_PRICE, headline_bank
# The payload schema owns the flow order and the schema id; FLOW_NAMES is re-exported for the loader.
from node.protocol.enums import AGENT_ROLES, Action
from node.protocol.payload import FLOW_NAMES, SCHEMA_ID as SCHEMA_VERSION  # noqa: F401

MODALITIES = tuple(r.label for r in AGENT_ROLES)
"""The three modalities, named by the agent role that reads each (the columns of `z` in this order)."""
ACTIONS = Action.labels()
"""Label names by class index (sell, hold, buy), as the loader reads and writes them."""

ADDITIVE_WEIGHTS = (1.0, 0.8, 0.6)
SERIES_LEN = 32
_REGIMES = ("train", "test")
_BASE_VOLUME = {a: 1e6 / math.sqrt(p) for a, p in BASE_PRICE.items()}


@dataclass
class Sample:
    """One task with its ground truth (the payload is `to_payload(sample)`)."""

    asset: str
    prices: list[float]
    volumes: list[float]
    headlines: list[str]
    flows: list[float]
    label: int
    risk_flag: int
    latent: list[float] | list[list[float]] | None = None
    """(z_market, z_sentiment, z_risk), each a list of latent_dim values when latent_dim > 1; None
    for data whose latent state is unknown."""
    oracle: int | None = None
    """The Bayes decision given the latent state; None when unknown."""


@dataclass
class Dataset:
    """A batch of tasks as arrays. Absent modalities: NaN rows (prices, volumes, flows), [] headlines."""

    asset: np.ndarray  # (N,) str
    prices: np.ndarray  # (N, T) float64
    volumes: np.ndarray  # (N, T) float64
    headlines: list[list[str]]
    flows: np.ndarray  # (N, 8) float64
    label: np.ndarray  # (N,) int64
    risk_flag: np.ndarray  # (N,) int64
    mask: np.ndarray  # (N, 3) bool, presence of market, sentiment, risk
    latent: np.ndarray | None = None  # (N, 3), or (N, 3, latent_dim) when latent_dim > 1
    score: np.ndarray | None = None  # (N,) latent decision score
    oracle: np.ndarray | None = None  # (N,) int64
    oracle_risk: np.ndarray | None = None  # (N,) int64
    params: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, np.ndarray] | None = None
    """latent_dim > 1 only: the market's and the risk modality's Gaussian measurements t_k (module
    docstring), (N, J_k) each, kept for `models.data.ceiling`'s bound; None for latent_dim 1."""

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> Sample:
        m, s, r = (bool(v) for v in self.mask[i])
        return Sample(
            asset=str(self.asset[i]),
            prices=self.prices[i].tolist() if m else [],
            volumes=self.volumes[i].tolist() if m else [],
            headlines=list(self.headlines[i]) if s else [],
            flows=self.flows[i].tolist() if r else [],
            label=int(self.label[i]),
            risk_flag=int(self.risk_flag[i]),
            latent=None if self.latent is None else self.latent[i].tolist(),
            oracle=None if self.oracle is None else int(self.oracle[i]),
        )

    def subset(self, idx: np.ndarray) -> Dataset:
        """The rows `idx` (an index array or boolean mask) as a new Dataset."""
        idx = np.arange(len(self))[idx] if np.asarray(idx).dtype == bool else np.asarray(idx)
        opt = lambda a: None if a is None else a[idx]  # noqa: E731
        return Dataset(
            asset=self.asset[idx], prices=self.prices[idx], volumes=self.volumes[idx],
            headlines=[self.headlines[i] for i in idx], flows=self.flows[idx],
            label=self.label[idx], risk_flag=self.risk_flag[idx], mask=self.mask[idx],
            latent=opt(self.latent), score=opt(self.score), oracle=opt(self.oracle),
            oracle_risk=opt(self.oracle_risk), params=dict(self.params),
            signals=None if self.signals is None else {k: v[idx] for k, v in self.signals.items()},
        )

    def oracle_accuracy(self) -> float | None:
        """Accuracy of the oracle decision on this data (the ceiling no model may exceed)."""
        return None if self.oracle is None else float(np.mean(self.oracle == self.label))


def to_payload(sample: Sample) -> dict[str, Any]:
    """The JSON task payload for a sample: what agents see. No label, no latent state."""
    return {
        "schema": SCHEMA_VERSION,
        "asset": sample.asset,
        "prices": list(sample.prices),
        "volumes": list(sample.volumes),
        "headlines": list(sample.headlines),
        "flows": list(sample.flows),
    }


def _noise_levels(noise: float | Mapping[str, float]) -> dict[str, float]:
    if isinstance(noise, Mapping):
        unknown = set(noise) - set(MODALITIES)
        if unknown:
            raise ValueError(f"noise keys {sorted(unknown)} not in {MODALITIES}")
        levels = {m: float(noise.get(m, 1.0)) for m in MODALITIES}
    else:
        levels = dict.fromkeys(MODALITIES, float(noise))
    if any(v < 0 for v in levels.values()):
        raise ValueError(f"noise must be >= 0, got {levels}")
    return levels


def _score_sd(alpha: float) -> float:
    return math.sqrt((1 - alpha) ** 2 + alpha**2)  # A and I are uncorrelated (odd vs even moments)


def latent_score(z: np.ndarray, alpha: float, redundancy: float) -> np.ndarray:
    """The latent decision score s = (1 - alpha) A + alpha I for latents z of shape (N, 3)."""
    w = np.asarray(ADDITIVE_WEIGHTS)
    cov = (1 - redundancy) * np.eye(3) + redundancy
    a = z @ w / math.sqrt(w @ cov @ w)
    pair = z[:, 0] * z[:, 1] + z[:, 0] * z[:, 2] + z[:, 1] * z[:, 2]
    i = (pair - 3 * redundancy) / math.sqrt(3 + 6 * redundancy + 9 * redundancy**2)
    return (1 - alpha) * a + alpha * i


def _draw_latent(rng: np.random.Generator, n: int, redundancy: float) -> np.ndarray:
    c = rng.standard_normal((n, 1))
    u = rng.standard_normal((n, 3))
    return math.sqrt(1 - redundancy) * u + math.sqrt(redundancy) * c


@lru_cache(maxsize=64)
def label_thresholds(alpha: float, redundancy: float, label_noise: float) -> tuple[float, float]:
    """Tertiles (t_lo, t_hi) of the noisy score, by a fixed-seed Monte Carlo (balanced classes)."""
    rng = np.random.default_rng(12345)
    s = latent_score(_draw_latent(rng, 400_000, redundancy), alpha, redundancy)
    s = s + rng.standard_normal(s.shape) * label_noise * _score_sd(alpha)
    lo, hi = np.quantile(s, [1 / 3, 2 / 3])
    return float(lo), float(hi)


def _phi(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(x)


def label_posterior(score: np.ndarray, alpha: float, redundancy: float, label_noise: float) -> np.ndarray:
    """P(label | latent score): (N, 3) probabilities of sell, hold, buy."""
    lo, hi = label_thresholds(alpha, redundancy, label_noise)
    sd = max(label_noise * _score_sd(alpha), 1e-9)
    p_sell = _phi((lo - score) / sd)
    p_buy = 1.0 - _phi((hi - score) / sd)
    return np.stack([p_sell, 1.0 - p_sell - p_buy, p_buy], axis=1)


def _round_sig(x: np.ndarray, sig: int) -> np.ndarray:
    """Round to `sig` significant digits so payload JSON stays short and round-trips exactly."""
    flat = np.asarray(x, dtype=np.float64).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.abs(flat)))
    dec = np.where(np.isfinite(mag), sig - 1 - mag, 0).astype(int)
    out = np.array([round(float(v), int(d)) for v, d in zip(flat, dec)], dtype=np.float64)
    return out.reshape(np.shape(x))


def _market(rng: np.random.Generator, z_m: np.ndarray, assets: np.ndarray, nu: float, shift: float,
            t: int, drift: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """latent_dim 1: drift 1.6 z_m / sqrt(T - 1) per step, volume tilt z_m. latent_dim > 1: `drift`
    (N, T - 1) in volatility units and the volume tilt `z_m` (N,) come from the caller."""
    n, steps = len(z_m), t - 1
    sigma = 0.02 * np.exp(0.3 * rng.standard_normal(n)) * (1 + 0.5 * shift)  # per-step volatility
    eta = rng.standard_normal((n, steps))
    e = np.empty_like(eta)
    e[:, 0] = eta[:, 0]
    for k in range(1, steps):  # AR(1) noise, unit variance
        e[:, k] = 0.2 * e[:, k - 1] + math.sqrt(1 - 0.04) * eta[:, k]
    noise = nu * (1 + 0.5 * shift)
    if drift is None:
        drift = 1.6 * z_m[:, None] / math.sqrt(steps)
    r = sigma[:, None] * (drift + noise * e)  # (N, T-1)
    jump = rng.random(n) < 0.2
    where = rng.integers(0, steps, n)
    sign = rng.choice([-1.0, 1.0], n)
    r[np.arange(n), where] += jump * sign * 3.0 * sigma
    p0 = np.array([BASE_PRICE[a] for a in assets]) * np.exp(0.2 * rng.standard_normal(n))
    prices = p0[:, None] * np.exp(np.concatenate([np.zeros((n, 1)), np.cumsum(r, axis=1)], axis=1))
    v0 = np.array([_BASE_VOLUME[a] for a in assets]) * np.exp(0.5 * rng.standard_normal(n))
    sgn = np.concatenate([np.zeros((n, 1)), np.sign(r)], axis=1)
    log_v = np.log(v0)[:, None] + 0.15 * z_m[:, None] * sgn + 0.4 * nu * rng.standard_normal((n, t))
    return _round_sig(prices, 6), _round_sig(np.exp(log_v), 5)


def _flows(rng: np.random.Generator, z_r: np.ndarray, nu: float, shift: float) -> np.ndarray:
    n = len(z_r)
    a = rng.standard_normal(n) + 0.5 * shift  # activity level: a nuisance that scales every flow
    s = nu * (1 + 0.5 * shift)
    g = lambda: rng.standard_normal(n)  # noqa: E731
    cols = [
        np.exp(4.0 + 0.6 * a - 0.5 * z_r + 0.5 * s * g()),  # exchange inflow
        np.exp(4.0 + 0.6 * a + 0.5 * z_r + 0.5 * s * g()),  # exchange outflow
        rng.poisson(np.exp(2.5 + 0.4 * a - 0.3 * z_r + 0.3 * s * g())).astype(np.float64),  # whales
        np.exp(3.0 + 0.5 * a + 0.4 * z_r + 0.6 * s * g()),  # stablecoin mint
        np.exp(5.0 + 0.8 * a + 0.2 * z_r + 0.3 * s * g()),  # active addresses
        np.exp(2.0 + 0.5 * a - 0.3 * z_r + 0.6 * s * g()),  # bridge outflow
        np.exp(4.5 + 0.7 * a + 0.5 * s * g()),  # DEX volume (nuisance)
        np.exp(1.5 + 0.3 * a - 0.3 * z_r + 0.6 * s * g()),  # validator outflow
    ]
    return _round_sig(np.stack(cols, axis=1), 5)


def _headlines(rng: np.random.Generator, z_s: np.ndarray, assets: np.ndarray, nu: float, shift: float,
               test_regime: bool) -> list[list[str]]:
    bank = headline_bank()
    n = len(z_s)
    counts = rng.choice([1, 2, 3], size=n, p=[0.3, 0.4, 0.3])
    p_distract = 0.15 + (0.1 * shift if test_regime else 0.0)
    p_held_out = min(1.0, 0.5 * shift) if test_regime else 0.0
    out = []
    for i in range(n):
        texts = []
        for j in range(counts[i]):
            if rng.random() < p_distract:
                group = bank.group(str(assets[i]), None, "d")
            else:  # latent_dim > 1: z_s is (N, 3), headline j reads the projection b_j . z_s
                u = 1.0 * (z_s[i] if z_s.ndim == 1 else z_s[i, j]) + 0.8 * nu * rng.standard_normal()
                level = int(np.digitize(u, [-1.5, -0.5, 0.5, 1.5])) - 2
                family = "b" if rng.random() < p_held_out else "a"
                group = bank.group(str(assets[i]), level, family)
            texts.append(group[int(rng.integers(len(group)))])
        out.append(texts)
    return out



# --- latent_dim > 1 (module docstring: "Latent dimension") --------------------------------------

MAX_LATENT_DIM = 16
"""The market series has 16 time profiles (a trend and 15 cosines over the last 16 steps)."""
STRUCTURE_SEED = 20_251_111
"""Entropy of the fixed structure (directions, bilinear forms, projections) for each latent_dim."""
SIGNAL_NOISE = 0.3
"""Noise sd (x the modality's noise level) of the market's and the risk modality's measurements t_k."""
MARKET_GAIN = 3.0
"""Return drift per unit of g(t_m,j) along time profile j (the profiles have unit norm)."""
RISK_TILT = (-0.5, 0.5, -0.5, 0.5, 0.5, -0.5, 0.5, -0.5)
"""Log-flow tilt per unit of g(t_r,j), FLOW_NAMES order (the whale count's is on its log-rate)."""
RISK_NOISE = 0.25
"""Noise sd (x the shifted risk noise level) of each log-normal flow (0.15 on the whale log-rate)."""
SQUASH = 1.5
"""The observation nonlinearity g(x) = SQUASH tanh(x / SQUASH): monotone, saturating beyond ~2."""
PROFILE_STEPS = 16
FORM_RANK = 2
"""Rank of each bilinear form: a pair of modalities interacts through 2 directions of each."""


def squash(x: np.ndarray) -> np.ndarray:
    """g(x) = 1.5 tanh(x / 1.5), the nonlinearity each modality sees its measurements through."""
    return SQUASH * np.tanh(np.asarray(x) / SQUASH)


@dataclass(frozen=True)
class LatentStructure:
    """The fixed (seeded, same for every dataset) structure of the generator at one latent_dim m."""

    m: int
    w: np.ndarray  # (3, m) unit additive directions, one per modality
    forms: np.ndarray  # (3, m, m) rank-2 bilinear forms W_ms, W_mr, W_sr (pairs (0, 1), (0, 2), (1, 2))
    market: np.ndarray  # (m, m) orthonormal rows b_m,j (b_m,0 = w_m), one per time profile
    sentiment: np.ndarray  # (3, m) orthonormal rows b_s,j, one per headline slot (b_s,0 = w_s)
    risk: np.ndarray  # (8, m) unit rows b_r,j, one per flow (the first min(m, 8) orthonormal, b_r,0 = w_r)


PAIRS = ((0, 1), (0, 2), (1, 2))


def _unit_rows(rng: np.random.Generator, rows: int, m: int) -> np.ndarray:
    x = rng.standard_normal((rows, m))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@lru_cache(maxsize=16)
def latent_structure(m: int) -> LatentStructure:
    """The directions, bilinear forms and observation projections at latent_dim `m` (2..16), each from
    its own child of SeedSequence([STRUCTURE_SEED, m])."""
    if not 2 <= m <= MAX_LATENT_DIM:
        raise ValueError(f"latent_dim > 1 must be in [2, {MAX_LATENT_DIM}], got {m}")
    r_w, r_f, r_m, r_s, r_r = (np.random.default_rng(c) for c in np.random.SeedSequence([STRUCTURE_SEED, m]).spawn(5))
    w = _unit_rows(r_w, 3, m)
    market = _orthonormal_rows(w[0], m, r_m)  # row 0: the additive direction (the trend reads it)
    sentiment = _orthonormal_rows(w[1], min(3, m), r_s)  # the label reads z_s only in their span
    if m == 2:  # two directions: the third headline slot repeats the first
        sentiment = np.vstack([sentiment, sentiment[:1]])
    risk = _orthonormal_rows(w[2], min(m, len(FLOW_NAMES)), r_r)
    risk = np.vstack([risk, _unit_rows(r_r, len(FLOW_NAMES) - len(risk), m)])
    r = min(FORM_RANK, m)
    span_s = sentiment[:min(3, m)].T  # (m, 3): an orthonormal basis of what the headlines read
    cols = lambda k: np.linalg.qr(r_f.standard_normal((m, r)))[0] if k != 1 else (  # noqa: E731
        span_s @ np.linalg.qr(r_f.standard_normal((span_s.shape[1], min(r, span_s.shape[1]))))[0])
    forms = np.stack([cols(k) @ cols(j).T for k, j in PAIRS])  # W = U V' of rank FORM_RANK
    return LatentStructure(m=m, w=w, forms=forms, market=market, sentiment=sentiment, risk=risk)


def _orthonormal_rows(first: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """`rows` orthonormal rows in R^m, the first equal to the unit vector `first`, the rest random."""
    q, _ = np.linalg.qr(np.column_stack([first, rng.standard_normal((len(first), rows - 1))]))
    q = q.T
    q[0] *= np.sign(q[0] @ first)
    return q


def _corr(redundancy: float) -> np.ndarray:
    return (1 - redundancy) * np.eye(3) + redundancy


@lru_cache(maxsize=64)
def _score_moments(m: int, redundancy: float) -> tuple[float, float, float]:
    """(sd of the additive part, mean and sd of the bilinear part) under the prior, in closed form:
    the bilinear part is Z' Q Z with Z ~ N(0, R (x) I_m), mean tr(Q S), variance 2 tr(Q S Q S)."""
    st = latent_structure(m)
    r = _corr(redundancy)
    a = np.asarray(ADDITIVE_WEIGHTS)
    var_a = float(sum(a[k] * a[j] * r[k, j] * (st.w[k] @ st.w[j]) for k in range(3) for j in range(3)))
    q = np.zeros((3 * m, 3 * m))
    for (k, j), f in zip(PAIRS, st.forms):
        q[k * m:(k + 1) * m, j * m:(j + 1) * m] = f / 2
        q[j * m:(j + 1) * m, k * m:(k + 1) * m] = f.T / 2
    cov = np.kron(r, np.eye(m))
    qs = q @ cov
    return math.sqrt(var_a), float(np.trace(qs)), math.sqrt(2.0 * float(np.trace(qs @ qs)))


def latent_score_dims(z: np.ndarray, alpha: float, redundancy: float) -> np.ndarray:
    """The latent decision score for latents z of shape (..., 3, m), m >= 2 (module docstring)."""
    m = z.shape[-1]
    st = latent_structure(m)
    sd_a, mean_i, sd_i = _score_moments(m, float(redundancy))
    a = np.einsum("...km,km,k->...", z, st.w, np.asarray(ADDITIVE_WEIGHTS)) / sd_a
    pair = sum(np.einsum("...i,ij,...j->...", z[..., k, :], f, z[..., j, :]) for (k, j), f in zip(PAIRS, st.forms))
    return (1 - alpha) * a + alpha * (pair - mean_i) / sd_i


def _draw_latent_dims(rng: np.random.Generator, n: int, redundancy: float, m: int) -> np.ndarray:
    c = rng.standard_normal((n, 1, m))
    u = rng.standard_normal((n, 3, m))
    return math.sqrt(1 - redundancy) * u + math.sqrt(redundancy) * c


@lru_cache(maxsize=64)
def label_thresholds_dims(alpha: float, redundancy: float, label_noise: float, m: int) -> tuple[float, float]:
    """`label_thresholds` for latent_dim m >= 2 (a fixed-seed Monte Carlo of 400,000 draws)."""
    rng = np.random.default_rng([12345, m])
    s = latent_score_dims(_draw_latent_dims(rng, 400_000, redundancy, m), alpha, redundancy)
    s = s + rng.standard_normal(s.shape) * label_noise * _score_sd(alpha)
    lo, hi = np.quantile(s, [1 / 3, 2 / 3])
    return float(lo), float(hi)


def thresholds(alpha: float, redundancy: float, label_noise: float, latent_dim: int = 1) -> tuple[float, float]:
    """The label tertiles at any latent_dim."""
    if latent_dim == 1:
        return label_thresholds(alpha, redundancy, label_noise)
    return label_thresholds_dims(float(alpha), float(redundancy), float(label_noise), int(latent_dim))


def label_posterior_dims(score: np.ndarray, alpha: float, redundancy: float, label_noise: float,
                         latent_dim: int) -> np.ndarray:
    """`label_posterior` at any latent_dim: (..., 3) probabilities of sell, hold, buy given the score."""
    lo, hi = thresholds(alpha, redundancy, label_noise, latent_dim)
    sd = max(label_noise * _score_sd(alpha), 1e-9)
    p_sell = _phi((lo - score) / sd)
    p_buy = 1.0 - _phi((hi - score) / sd)
    return np.stack([p_sell, 1.0 - p_sell - p_buy, p_buy], axis=-1)


@lru_cache(maxsize=8)
def time_profiles(m: int, steps: int) -> np.ndarray:
    """(m, steps) unit-norm, mutually orthogonal return profiles: a constant trend over all steps and
    cosines of frequency 1..m-1 over the last min(16, steps) steps (zero before)."""
    width = min(PROFILE_STEPS, steps)
    if m > width:
        raise ValueError(f"latent_dim {m} needs series_len >= {m + 1}")
    out = np.zeros((m, steps))
    out[0] = 1.0 / math.sqrt(steps)
    k = np.arange(width)
    for j in range(1, m):
        out[j, steps - width:] = math.sqrt(2.0 / width) * np.cos(math.pi * j * (k + 0.5) / width)
    return out


def _market_signal(rng: np.random.Generator, z_m: np.ndarray, st: LatentStructure, nu: float,
                   steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t_m (N, m), drift (N, steps), volume tilt (N,)) for latent_dim > 1."""
    t = z_m @ st.market.T + SIGNAL_NOISE * nu * rng.standard_normal((len(z_m), st.m))
    h = squash(t)
    return t, MARKET_GAIN * h @ time_profiles(st.m, steps), h[:, 0]


def _flows_dims(rng: np.random.Generator, z_r: np.ndarray, st: LatentStructure, nu: float,
                shift: float) -> tuple[np.ndarray, np.ndarray]:
    """(flows (N, 8), t_r (N, 8)) for latent_dim > 1: flow j is tilted by g(t_r,j)."""
    n = len(z_r)
    t = z_r @ st.risk.T + SIGNAL_NOISE * nu * rng.standard_normal((n, len(FLOW_NAMES)))
    h = squash(t) * np.asarray(RISK_TILT)
    a = rng.standard_normal(n) + 0.5 * shift
    s = nu * (1 + 0.5 * shift)
    g = rng.standard_normal((n, len(FLOW_NAMES)))
    base = np.array([4.0, 4.0, 2.5, 3.0, 5.0, 2.0, 4.5, 1.5])
    load = np.array([0.6, 0.6, 0.4, 0.5, 0.8, 0.5, 0.7, 0.3])
    noise = np.full(len(FLOW_NAMES), RISK_NOISE)
    noise[2] = 0.15
    log_f = base + load * a[:, None] + h + noise * s * g
    flows = np.exp(log_f)
    flows[:, 2] = rng.poisson(flows[:, 2]).astype(np.float64)  # whale transfers: a Poisson count
    return _round_sig(flows, 5), t


def _apply_mask(r_msk: np.random.Generator, n: int, missing_rate: float, prices: np.ndarray, volumes: np.ndarray,
                headlines: list[list[str]], flows: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    """Draw the presence mask (at least one modality stays) and blank the absent modalities in place."""
    mask = r_msk.random((n, 3)) >= missing_rate
    empty = ~mask.any(axis=1)
    mask[np.flatnonzero(empty), r_msk.integers(0, 3, int(empty.sum()))] = True
    prices[~mask[:, 0]] = np.nan
    volumes[~mask[:, 0]] = np.nan
    headlines = [h if mask[i, 1] else [] for i, h in enumerate(headlines)]
    flows[~mask[:, 2]] = np.nan
    return mask, headlines


def generate(n: int, seed: int, alpha: float = 0.0, noise: float | Mapping[str, float] = 1.0,
             missing_rate: float = 0.0, redundancy: float = 0.0, shift: float = 0.0,
             regime: str = "train", label_noise: float = 0.25, series_len: int = SERIES_LEN,
             latent_dim: int = 1) -> Dataset:
    """Draw `n` tasks. See the module docstring for the generative model.

    `regime="test"` draws from the shifted test regime (and from a different seed stream than
    `regime="train"`, so a train and a test set with the same seed never share samples).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if not 0.0 <= redundancy <= 1.0:
        raise ValueError(f"redundancy must be in [0, 1], got {redundancy}")
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}")
    if shift < 0 or label_noise <= 0 or n < 1 or series_len < 8:
        raise ValueError("need shift >= 0, label_noise > 0, n >= 1, series_len >= 8")
    if regime not in _REGIMES:
        raise ValueError(f"regime must be one of {_REGIMES}")
    if int(latent_dim) != latent_dim or not 1 <= latent_dim <= MAX_LATENT_DIM:
        raise ValueError(f"latent_dim must be an integer in [1, {MAX_LATENT_DIM}], got {latent_dim}")
    latent_dim = int(latent_dim)
    if latent_dim > 1 and series_len < latent_dim + 1:
        raise ValueError(f"latent_dim {latent_dim} needs series_len >= {latent_dim + 1}")
    nu = _noise_levels(noise)
    test = regime == "test"
    eff_shift = shift if test else 0.0
    streams = np.random.SeedSequence([seed, _REGIMES.index(regime)]).spawn(7)
    r_lat, r_lab, r_mkt, r_txt, r_flw, r_msk, r_ast = (np.random.default_rng(s) for s in streams)
    if latent_dim > 1:
        return _generate_dims(n, seed, alpha, nu, missing_rate, redundancy, shift, regime, label_noise, series_len,
                              latent_dim, (r_lat, r_lab, r_mkt, r_txt, r_flw, r_msk, r_ast))

    z = _draw_latent(r_lat, n, redundancy)  # (N, 3)
    score = latent_score(z, alpha, redundancy)
    lo, hi = label_thresholds(alpha, redundancy, label_noise)
    noisy = score + r_lab.standard_normal(n) * label_noise * _score_sd(alpha)
    label = np.where(noisy < lo, 0, np.where(noisy > hi, 2, 1)).astype(np.int64)
    risk_flag = (z[:, 2] + 0.3 * r_lab.standard_normal(n) < -1.0).astype(np.int64)
    oracle = label_posterior(score, alpha, redundancy, label_noise).argmax(axis=1).astype(np.int64)

    assets = np.array(list(ASSETS))[r_ast.integers(0, len(ASSETS), n)]
    prices, volumes = _market(r_mkt, z[:, 0], assets, nu["market"], eff_shift, series_len)
    headlines = _headlines(r_txt, z[:, 1], assets, nu["sentiment"], eff_shift, test)
    flows = _flows(r_flw, z[:, 2], nu["risk"], eff_shift)

    mask, headlines = _apply_mask(r_msk, n, missing_rate, prices, volumes, headlines, flows)

    params = dict(n=n, seed=seed, alpha=alpha, noise=nu, missing_rate=missing_rate,
                  redundancy=redundancy, shift=shift, regime=regime, label_noise=label_noise,
                  series_len=series_len)
    return Dataset(asset=assets, prices=prices, volumes=volumes, headlines=headlines, flows=flows,
                   label=label, risk_flag=risk_flag, mask=mask, latent=z, score=score, oracle=oracle,
                   oracle_risk=(z[:, 2] < -1.0).astype(np.int64), params=params)


def _generate_dims(n: int, seed: int, alpha: float, nu: dict[str, float], missing_rate: float, redundancy: float,
                   shift: float, regime: str, label_noise: float, series_len: int, m: int,
                   rngs: tuple[np.random.Generator, ...]) -> Dataset:
    """`generate` at latent_dim m >= 2 (module docstring), from the same seven streams."""
    r_lat, r_lab, r_mkt, r_txt, r_flw, r_msk, r_ast = rngs
    test = regime == "test"
    eff_shift = shift if test else 0.0
    st = latent_structure(m)
    z = _draw_latent_dims(r_lat, n, redundancy, m)  # (N, 3, m)
    score = latent_score_dims(z, alpha, redundancy)
    lo, hi = label_thresholds_dims(float(alpha), float(redundancy), float(label_noise), m)
    noisy = score + r_lab.standard_normal(n) * label_noise * _score_sd(alpha)
    label = np.where(noisy < lo, 0, np.where(noisy > hi, 2, 1)).astype(np.int64)
    z_flag = z[:, 2] @ st.w[2]  # the risk flag reads the risk modality's additive direction
    risk_flag = (z_flag + 0.3 * r_lab.standard_normal(n) < -1.0).astype(np.int64)
    oracle = label_posterior_dims(score, alpha, redundancy, label_noise, m).argmax(axis=1).astype(np.int64)

    assets = np.array(list(ASSETS))[r_ast.integers(0, len(ASSETS), n)]
    t_m, drift, tilt = _market_signal(r_mkt, z[:, 0], st, nu["market"], series_len - 1)
    prices, volumes = _market(r_mkt, tilt, assets, nu["market"], eff_shift, series_len, drift=drift)
    headlines = _headlines(r_txt, z[:, 1] @ st.sentiment.T, assets, nu["sentiment"], eff_shift, test)
    flows, t_r = _flows_dims(r_flw, z[:, 2], st, nu["risk"], eff_shift)
    mask, headlines = _apply_mask(r_msk, n, missing_rate, prices, volumes, headlines, flows)

    params = dict(n=n, seed=seed, alpha=alpha, noise=nu, missing_rate=missing_rate, redundancy=redundancy,
                  shift=shift, regime=regime, label_noise=label_noise, series_len=series_len, latent_dim=m)
    return Dataset(asset=assets, prices=prices, volumes=volumes, headlines=headlines, flows=flows, label=label,
                   risk_flag=risk_flag, mask=mask, latent=z, score=score, oracle=oracle,
                   oracle_risk=(z_flag < -1.0).astype(np.int64), params=params,
                   signals={"market": t_m, "risk": t_r})
