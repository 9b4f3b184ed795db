"""Per-modality feature extraction in numpy: the one definition training and agents share.

No torch here: agents call these at run time on the task payload, training calls them on
generated or loaded data, and the networks standardize the features internally (their mean and
scale are buffers exported into the ONNX graph), so these functions need no fitted state.

- `market_features(prices, volumes)` -> (MARKET_DIM,) from a price/volume series of any length >= 8.
- `flow_features(flows)` -> (FLOW_DIM,) from the 8 on-chain flow numbers (`FLOW_NAMES` order).
- `text_features(headlines, embedder)` -> (SENTIMENT_DIM,) the headlines' MiniLM embeddings, one
  slot of TEXT_DIM per headline in payload order (HEADLINE_SLOTS slots, zeros where a task has fewer
  headlines). A task has at most HEADLINE_SLOTS headlines (`ValueError` otherwise); the loader refuses
  such rows, and the agents treat such a payload as one the model cannot read.
- `headlines_fit(headlines)` -> whether one task's headlines fit those slots (1 to HEADLINE_SLOTS).
- `mean_text_embedding(headlines, embedder)` -> (TEXT_DIM,) the mean of the headlines' embeddings
  (what the sentiment agent's prototype rule reads; the features before FEATURES_VERSION 2).
Each accepts one sample (1-D input) or a batch (2-D input / list of lists) and returns float32.

FEATURES_VERSION says what these functions compute; it is part of every cache key of trained models
(`node.experiment.modelsets`) and of the deployed models' manifest entries, so nothing trained on
other features is reused. 1: the sentiment feature was the mean headline embedding (TEXT_DIM),
which loses which headline said what (a distractor is one of them) and the slot order the
generator's latent_dim > 1 reads (`models.data.synthetic`). 2: the per-slot embeddings
(SENTIMENT_DIM), the same input for every architecture; U reads each slot as a token of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.data.synthetic import FLOW_NAMES, MODALITIES, Dataset

RECENT = 16
"""Number of most recent (volatility-normalised) returns kept as raw features."""
MARKET_DIM = RECENT + 10
FLOW_DIM = len(FLOW_NAMES) + 2
TEXT_DIM = 384
"""Width of one headline's embedding (all-MiniLM-L6-v2)."""
HEADLINE_SLOTS = 3
"""Headlines a task may carry (the generator draws 1-3); the sentiment feature has one slot per headline."""
SENTIMENT_DIM = HEADLINE_SLOTS * TEXT_DIM
FEATURE_DIMS = {"market": MARKET_DIM, "sentiment": SENTIMENT_DIM, "risk": FLOW_DIM}
TOKEN_SLOTS = {"sentiment": HEADLINE_SLOTS}
"""Modalities whose feature is several equal slots (U reads each as a token); the others are one."""
FEATURES_VERSION = 2
"""What the feature functions compute (module docstring); 2: per-slot headline embeddings."""


def token_slots(names: Sequence[str]) -> tuple[int, ...]:
    """Slots per modality, in `names` order (1 for a modality not in TOKEN_SLOTS, e.g. digit regions)."""
    return tuple(TOKEN_SLOTS.get(n, 1) for n in names)


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), TEXT_DIM) float32, L2-normalised rows."""
        ...


def market_features(prices: np.ndarray | Sequence[float], volumes: np.ndarray | Sequence[float]) -> np.ndarray:
    """Scale-free summary of a price/volume series: recent normalised returns, multi-horizon
    t-statistics, volatility, drawdown, and how volume lines up with the direction of moves."""
    p = np.asarray(prices, dtype=np.float64)
    v = np.asarray(volumes, dtype=np.float64)
    single = p.ndim == 1
    p, v = np.atleast_2d(p), np.atleast_2d(v)
    if p.shape != v.shape or p.shape[1] < 8:
        raise ValueError(f"prices and volumes must have the same shape with >= 8 steps, got {p.shape}, {v.shape}")
    r = np.diff(np.log(p), axis=1)  # (N, T-1)
    n_r = r.shape[1]
    sd = r.std(axis=1, keepdims=True) + 1e-8
    zr = r / sd
    recent = np.zeros((len(p), RECENT))
    k = min(RECENT, n_r)
    recent[:, RECENT - k:] = zr[:, -k:]
    tstats = [zr[:, -h:].sum(axis=1) / np.sqrt(h) for h in (n_r, 4, 8, 16) if h <= n_r]
    while len(tstats) < 4:
        tstats.append(np.zeros(len(p)))
    cum = np.cumsum(r, axis=1)
    drawdown = (np.maximum.accumulate(cum, axis=1) - cum).max(axis=1) / (sd[:, 0] * np.sqrt(n_r))
    up = (r > 0).mean(axis=1)
    lv = np.log(v + 1e-12)
    lv = lv - lv.mean(axis=1, keepdims=True)
    lv_moves = lv[:, 1:]
    sgn = np.sign(r)
    vol_trend = lv[:, -k // 2:].mean(axis=1) - lv[:, : k // 2].mean(axis=1)
    vol_dir = (sgn * lv_moves).mean(axis=1)  # volume on up moves minus down moves
    vol_wret = (zr * np.exp(lv_moves)).sum(axis=1) / np.exp(lv_moves).sum(axis=1)
    feats = np.column_stack([recent, *tstats, np.log(sd[:, 0]), drawdown, up, vol_trend, vol_dir, vol_wret])
    feats = feats.astype(np.float32)
    return feats[0] if single else feats


def flow_features(flows: np.ndarray | Sequence[float]) -> np.ndarray:
    """log1p of the 8 flows plus two activity-free ratios (exchange net flow, mints per address)."""
    f = np.asarray(flows, dtype=np.float64)
    single = f.ndim == 1
    f = np.atleast_2d(f)
    if f.shape[1] != len(FLOW_NAMES):
        raise ValueError(f"flows must have {len(FLOW_NAMES)} values ({', '.join(FLOW_NAMES)}), got {f.shape[1]}")
    if np.any(f < 0):
        raise ValueError("flows must be non-negative")
    lf = np.log1p(f)
    net = lf[:, 1] - lf[:, 0]  # outflow vs inflow
    mint = lf[:, 3] - lf[:, 4]  # stablecoin mint per active address
    feats = np.column_stack([lf, net, mint]).astype(np.float32)
    return feats[0] if single else feats


def _headline_batch(headlines: Sequence[str] | Sequence[Sequence[str]]) -> tuple[bool, list[list[str]]]:
    single = len(headlines) == 0 or isinstance(headlines[0], str)
    batch = [list(headlines)] if single else [list(h) for h in headlines]  # type: ignore[arg-type]
    return single, batch


def _embedded(batch: list[list[str]], embedder: Embedder) -> np.ndarray:
    """Every headline of the batch, row after row, embedded in one call: (total headlines, TEXT_DIM)."""
    flat = [t for hs in batch for t in hs]
    return embedder.embed(flat) if flat else np.zeros((0, TEXT_DIM), np.float32)


def headlines_fit(headlines: Sequence[str]) -> bool:
    """Whether one task's headlines fit the sentiment feature's slots (1 to HEADLINE_SLOTS): what the
    trained sentiment agent and U can read."""
    return 0 < len(headlines) <= HEADLINE_SLOTS


def text_features(headlines: Sequence[str] | Sequence[Sequence[str]], embedder: Embedder) -> np.ndarray:
    """The headlines' (L2-normalised) sentence embeddings side by side: slot j (columns
    j*TEXT_DIM .. (j+1)*TEXT_DIM) holds headline j's, in payload order; zeros in the slots past the
    last headline (all zeros for no headline). More than HEADLINE_SLOTS headlines: ValueError."""
    single, batch = _headline_batch(headlines)
    for row, hs in enumerate(batch):
        if len(hs) > HEADLINE_SLOTS:
            where = "" if single else f"task {row}: "
            raise ValueError(f"{where}{len(hs)} headlines; the sentiment feature has {HEADLINE_SLOTS} slots "
                             f"(at most {HEADLINE_SLOTS} headlines per task)")
    vecs = _embedded(batch, embedder)
    out = np.zeros((len(batch), HEADLINE_SLOTS, TEXT_DIM), np.float32)
    i = 0
    for row, hs in enumerate(batch):
        out[row, :len(hs)] = vecs[i:i + len(hs)]
        i += len(hs)
    out = out.reshape(len(batch), SENTIMENT_DIM)
    return out[0] if single else out


def mean_text_embedding(headlines: Sequence[str] | Sequence[Sequence[str]], embedder: Embedder) -> np.ndarray:
    """Mean of the headlines' (L2-normalised) sentence embeddings, (d,) for an embedder of width d
    (TEXT_DIM for MiniLM); zeros for no headline.
    Any number of headlines; their order does not matter."""
    single, batch = _headline_batch(headlines)
    vecs = _embedded(batch, embedder)
    out = np.zeros((len(batch), vecs.shape[1]), np.float32)  # the embedder's width (TEXT_DIM for MiniLM)
    i = 0
    for row, hs in enumerate(batch):
        if hs:
            out[row] = vecs[i:i + len(hs)].mean(axis=0)
            i += len(hs)
    return out[0] if single else out


@dataclass
class FeatureSet:
    """Model inputs for any dataset: per-modality feature arrays, presence mask, labels."""

    names: tuple[str, ...]
    """Modality (agent) names, in input order."""
    x: dict[str, np.ndarray]
    """Modality name -> (N, F_k) float32; zero rows where the modality is absent."""
    mask: np.ndarray  # (N, M) float32
    y: np.ndarray  # (N,) int64
    n_classes: int
    oracle: np.ndarray | None = None  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(self.x[k].shape[1] for k in self.names)

    def subset(self, idx: np.ndarray) -> FeatureSet:
        return FeatureSet(self.names, {k: v[idx] for k, v in self.x.items()}, self.mask[idx], self.y[idx],
                          self.n_classes, None if self.oracle is None else self.oracle[idx])


def build_features(ds: Dataset, embedder: Embedder) -> FeatureSet:
    """Features of every modality for a market Dataset (synthetic or loaded)."""
    n = len(ds)
    mask = ds.mask.astype(np.float32)
    x = {k: np.zeros((n, FEATURE_DIMS[k]), np.float32) for k in MODALITIES}
    m = ds.mask[:, 0]
    if m.any():
        x["market"][m] = market_features(ds.prices[m], ds.volumes[m])
    x["sentiment"] = text_features([h if ds.mask[i, 1] else [] for i, h in enumerate(ds.headlines)], embedder)
    r = ds.mask[:, 2]
    if r.any():
        x["risk"][r] = flow_features(ds.flows[r])
    return FeatureSet(MODALITIES, x, mask, ds.label.astype(np.int64), 3, ds.oracle)
