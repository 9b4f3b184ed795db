"""Per-modality feature extraction in numpy: the one definition training and agents share.

No torch here: agents call these at run time on the task payload, training calls them on
generated or loaded data, and the networks standardize the features internally (their mean and
scale are buffers exported into the ONNX graph), so these functions need no fitted state.

- `market_features(prices, volumes)` -> (MARKET_DIM,) from a price/volume series of any length >= 8.
- `flow_features(flows)` -> (FLOW_DIM,) from the 8 on-chain flow numbers (`FLOW_NAMES` order).
- `text_features(headlines, embedder)` -> (TEXT_DIM,) the mean MiniLM embedding of the headlines.
Each accepts one sample (1-D input) or a batch (2-D input / list of lists) and returns float32.
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
FEATURE_DIMS = {"market": MARKET_DIM, "sentiment": TEXT_DIM, "risk": FLOW_DIM}


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


def text_features(headlines: Sequence[str] | Sequence[Sequence[str]], embedder: Embedder) -> np.ndarray:
    """Mean of the headlines' (L2-normalised) sentence embeddings; zeros for no headline."""
    single = len(headlines) == 0 or isinstance(headlines[0], str)
    batch: list[list[str]] = [list(headlines)] if single else [list(h) for h in headlines]  # type: ignore[arg-type]
    flat = [t for hs in batch for t in hs]
    vecs = embedder.embed(flat) if flat else np.zeros((0, TEXT_DIM), np.float32)
    out = np.zeros((len(batch), TEXT_DIM), np.float32)
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
