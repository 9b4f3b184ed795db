"""A real dataset nobody here made: scikit-learn's bundled handwritten digits (1797 8x8 images,
10 classes), split into image regions, one region per agent.

Each agent sees only its region's pixels (scaled to [0, 1]); a digit is hard to tell from one
quadrant (is that stroke the top of a 7 or of a 9?), so joint fusion of the regions beats a vote
of per-region classifiers: a known case of cross-part synergy on real data.
"""

from __future__ import annotations

import numpy as np

from models.data.features import FeatureSet

REGIONS: dict[str, dict[str, tuple[slice, slice]]] = {
    "quadrants": {
        "top_left": (slice(0, 4), slice(0, 4)),
        "top_right": (slice(0, 4), slice(4, 8)),
        "bottom_left": (slice(4, 8), slice(0, 4)),
        "bottom_right": (slice(4, 8), slice(4, 8)),
    },
    "halves": {"top": (slice(0, 4), slice(0, 8)), "bottom": (slice(4, 8), slice(0, 8))},
    "bands": {f"rows_{2 * i}_{2 * i + 1}": (slice(2 * i, 2 * i + 2), slice(0, 8)) for i in range(4)},
}
"""Region layouts: name -> {agent name: (row slice, column slice)} over the 8x8 image."""


def digits_regions(regions: str = "quadrants") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-region pixel features {agent: (1797, pixels) float32 in [0, 1]} and labels (1797,)."""
    if regions not in REGIONS:
        raise ValueError(f"unknown region layout {regions!r}; known: {sorted(REGIONS)}")
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)  # (N, 8, 8)
    x = {name: images[:, rs, cs].reshape(len(images), -1) for name, (rs, cs) in REGIONS[regions].items()}
    return x, d.target.astype(np.int64)


def digits_features(regions: str = "quadrants") -> FeatureSet:
    """The whole digits set as a FeatureSet (every region always present; no oracle)."""
    x, y = digits_regions(regions)
    names = tuple(x)
    return FeatureSet(names, x, np.ones((len(y), len(names)), np.float32), y, 10, None)
