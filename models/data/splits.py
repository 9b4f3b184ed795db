"""Dataset configurations and their train / validation / test splits as model inputs.

Three sources share one shape (`FeatureSet`), so every architecture runs on each unchanged:
- `SyntheticConfig`: the seeded market generator (`models.data.synthetic`); the test split comes
  from the (possibly shifted) test regime.
- `DigitsConfig`: scikit-learn's digits, one image region per agent.
- `FileConfig`: the user's own CSV/Parquet (`models.data.loader`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from models.data.features import Embedder, FeatureSet, build_features
from models.fusion import FIXED_WEIGHTS_BPS, ROLES


@dataclass(frozen=True)
class SyntheticConfig:
    n_train: int = 4000
    n_val: int = 1000
    n_test: int = 2000
    alpha: float = 0.0
    noise: float | tuple[float, float, float] = 1.0
    """Observation noise multiplier, for every modality or per (market, sentiment, risk); 1.0 = default."""
    missing_rate: float = 0.0
    redundancy: float = 0.0
    shift: float = 0.0
    label_noise: float = 0.25
    latent_dim: int = 1
    """Dimension m of each modality's latent (`models.data.synthetic`); 1 = the original generator."""
    kind: str = "synthetic"


@dataclass(frozen=True)
class DigitsConfig:
    regions: str = "quadrants"
    val_frac: float = 0.15
    test_frac: float = 0.3
    kind: str = "digits"


@dataclass(frozen=True)
class FileConfig:
    path: str = ""
    val_frac: float = 0.15
    test_frac: float = 0.3
    kind: str = "file"


DatasetConfig = SyntheticConfig | DigitsConfig | FileConfig
_CONFIGS = {"synthetic": SyntheticConfig, "digits": DigitsConfig, "file": FileConfig}


def config_to_dict(cfg: DatasetConfig) -> dict:
    return asdict(cfg)


def config_from_dict(d: dict) -> DatasetConfig:
    cls = _CONFIGS[d.get("kind", "synthetic")]
    names = {f.name for f in fields(cls)}
    kw = {k: v for k, v in d.items() if k in names}
    if isinstance(kw.get("noise"), list):
        kw["noise"] = tuple(kw["noise"])
    return cls(**kw)


@dataclass
class Splits:
    train: FeatureSet
    val: FeatureSet
    test: FeatureSet
    weights_bps: tuple[int, ...]
    """M-fixed's per-agent weights (the chain's per-role weights, or equal weights)."""
    roles: bool
    """True when the agents are the market/sentiment/risk roles (M-rules' if/else applies)."""


def _random_split(fs: FeatureSet, seed: int, val_frac: float, test_frac: float) -> tuple[FeatureSet, ...]:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(fs))
    n_test, n_val = int(round(test_frac * len(fs))), int(round(val_frac * len(fs)))
    test, val, train = idx[:n_test], idx[n_test:n_test + n_val], idx[n_test + n_val:]
    return fs.subset(train), fs.subset(val), fs.subset(test)


def make_splits(cfg: DatasetConfig, seed: int, embedder: Embedder | None = None) -> Splits:
    """Train/val/test inputs for a dataset config under a seed (deterministic)."""
    if isinstance(cfg, SyntheticConfig):
        from models.data.synthetic import generate

        noise = dict(zip(ROLES, cfg.noise)) if isinstance(cfg.noise, (tuple, list)) else cfg.noise
        kw = dict(alpha=cfg.alpha, noise=noise, missing_rate=cfg.missing_rate,
                  redundancy=cfg.redundancy, shift=cfg.shift, label_noise=cfg.label_noise)
        if cfg.latent_dim != 1:  # latent_dim 1 calls the generator exactly as before
            kw["latent_dim"] = cfg.latent_dim
        train_ds = generate(cfg.n_train + cfg.n_val, seed, regime="train", **kw)
        test_ds = generate(cfg.n_test, seed, regime="test", **kw)
        emb = embedder or _default_embedder()
        both = build_features(train_ds, emb)
        train, val = both.subset(np.arange(cfg.n_train)), both.subset(np.arange(cfg.n_train, len(both)))
        test = build_features(test_ds, emb)
        return Splits(train, val, test, tuple(FIXED_WEIGHTS_BPS[r] for r in ROLES), True)
    if isinstance(cfg, DigitsConfig):
        from models.data.digits import digits_features

        fs = digits_features(cfg.regions)
        train, val, test = _random_split(fs, seed, cfg.val_frac, cfg.test_frac)
        return Splits(train, val, test, tuple(10000 // len(fs.names) for _ in fs.names), False)
    if isinstance(cfg, FileConfig):
        from models.data.loader import load_tasks

        ds = load_tasks(cfg.path)
        fs = build_features(ds, embedder or _default_embedder())
        train, val, test = _random_split(fs, seed, cfg.val_frac, cfg.test_frac)
        return Splits(train, val, test, tuple(FIXED_WEIGHTS_BPS[r] for r in ROLES), True)
    raise TypeError(f"not a dataset config: {cfg!r}")


def _default_embedder() -> Embedder:
    from models.data.embed import default_embedder

    return default_embedder()
