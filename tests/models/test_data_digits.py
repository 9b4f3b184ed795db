"""Scikit-learn digits split into image regions, one per agent."""

from __future__ import annotations

import numpy as np
import pytest

from models.data.digits import REGIONS, digits_features, digits_regions
from models.data.splits import DigitsConfig, make_splits


@pytest.mark.parametrize("layout,count,pixels", [("quadrants", 4, 16), ("halves", 2, 32), ("bands", 4, 16)])
def test_region_shapes(layout, count, pixels):
    x, y = digits_regions(layout)
    assert len(x) == count == len(REGIONS[layout])
    assert all(v.shape == (1797, pixels) and v.dtype == np.float32 for v in x.values())
    assert y.shape == (1797,) and set(np.unique(y)) == set(range(10))
    assert all(v.min() >= 0 and v.max() <= 1 for v in x.values())


def test_quadrants_tile_the_image():
    from sklearn.datasets import load_digits

    x, _ = digits_regions("quadrants")
    img = np.zeros((1797, 8, 8), np.float32)
    img[:, :4, :4] = x["top_left"].reshape(-1, 4, 4)
    img[:, :4, 4:] = x["top_right"].reshape(-1, 4, 4)
    img[:, 4:, :4] = x["bottom_left"].reshape(-1, 4, 4)
    img[:, 4:, 4:] = x["bottom_right"].reshape(-1, 4, 4)
    np.testing.assert_allclose(img, load_digits().images / 16.0, atol=1e-7)


def test_splits_partition_the_data():
    fs = digits_features()
    assert fs.n_classes == 10 and fs.mask.all() and fs.oracle is None
    sp = make_splits(DigitsConfig(), seed=0)
    sizes = [len(sp.train), len(sp.val), len(sp.test)]
    assert sum(sizes) == 1797 and sizes[2] == round(0.3 * 1797)
    assert not sp.roles and len(sp.weights_bps) == 4
    with pytest.raises(ValueError):
        digits_regions("pixels")
