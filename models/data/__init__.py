"""Benchmark data: the synthetic multimodal market, scikit-learn digits, the user's own files.

Torch-free (agents import the feature functions at run time):
- `generate(n, seed, alpha=..., noise=..., missing_rate=..., redundancy=..., shift=...)` -> `Dataset`,
  `to_payload(sample)` -> the JSON task payload (`models.data.synthetic`, which documents the model);
- `market_features`, `flow_features`, `text_features`, `build_features` (`models.data.features`);
- `load_tasks(path)` / `save_tasks(ds, path)` for CSV/Parquet (`models.data.loader`);
- `digits_regions(layout)` (`models.data.digits`); `make_splits(cfg, seed)` (`models.data.splits`).
"""

from models.data.features import (FeatureSet, build_features, flow_features, market_features,
                                  text_features)
from models.data.synthetic import (ACTIONS, FLOW_NAMES, MODALITIES, SCHEMA_VERSION, Dataset, Sample, generate,
                                   to_payload)

__all__ = ["ACTIONS", "FLOW_NAMES", "MODALITIES", "SCHEMA_VERSION", "Dataset", "FeatureSet", "Sample",
           "build_features", "flow_features", "generate", "market_features", "text_features", "to_payload"]
