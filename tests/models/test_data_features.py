"""Feature extraction (numpy, shared by training and agents) and the torch-free runtime rule."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from models.data.embed import CachedEmbedder, HashEmbedder
from models.data.features import (FEATURE_DIMS, FLOW_DIM, HEADLINE_SLOTS, MARKET_DIM, SENTIMENT_DIM, TEXT_DIM,
                                  build_features, flow_features, market_features, mean_text_embedding, text_features,
                                  token_slots)
from models.data.synthetic import generate


def test_market_features_batch_matches_single_and_is_scale_free():
    ds = generate(20, 0)
    batch = market_features(ds.prices, ds.volumes)
    assert batch.shape == (20, MARKET_DIM) and batch.dtype == np.float32
    np.testing.assert_allclose(market_features(ds.prices[3], ds.volumes[3]), batch[3], rtol=1e-6)
    scaled = market_features(ds.prices * 1000.0, ds.volumes * 7.0)
    np.testing.assert_allclose(scaled, batch, atol=1e-4)  # price level and volume units do not matter
    # works from the JSON payload's lists, any length >= 8
    assert market_features(list(ds.prices[0][:10]), list(ds.volumes[0][:10])).shape == (MARKET_DIM,)


def test_market_features_reject_bad_series():
    with pytest.raises(ValueError):
        market_features([1.0] * 5, [1.0] * 5)
    with pytest.raises(ValueError):
        market_features([1.0] * 10, [1.0] * 9)


def test_flow_features():
    ds = generate(10, 0)
    f = flow_features(ds.flows)
    assert f.shape == (10, FLOW_DIM)
    np.testing.assert_array_equal(flow_features(ds.flows[0].tolist()), f[0])
    with pytest.raises(ValueError):
        flow_features([1.0, 2.0])
    with pytest.raises(ValueError):
        flow_features([-1.0] * 8)


def test_text_features_are_the_headline_slots_in_payload_order():
    emb = HashEmbedder()
    assert SENTIMENT_DIM == HEADLINE_SLOTS * TEXT_DIM == FEATURE_DIMS["sentiment"] == 1152
    one = text_features(["a", "b"], emb)
    assert one.shape == (SENTIMENT_DIM,) and one.dtype == np.float32
    slots = one.reshape(HEADLINE_SLOTS, TEXT_DIM)
    np.testing.assert_array_equal(slots[:2], emb.embed(["a", "b"]))
    assert not slots[2].any()  # an absent slot is zeros
    swapped = text_features(["b", "a"], emb)
    assert not np.array_equal(one, swapped)  # the order is kept ...
    np.testing.assert_array_equal(swapped.reshape(HEADLINE_SLOTS, TEXT_DIM)[[1, 0, 2]], slots)
    np.testing.assert_array_equal(mean_text_embedding(["a", "b"], emb), mean_text_embedding(["b", "a"], emb))
    batch = text_features([["a", "b"], [], ["c", "a", "b"]], emb)
    assert batch.shape == (3, SENTIMENT_DIM)
    np.testing.assert_array_equal(batch[0], one)
    assert not batch[1].any()
    np.testing.assert_array_equal(batch[2], np.concatenate(list(emb.embed(["c", "a", "b"]))))


def test_text_features_refuse_more_headlines_than_slots():
    emb = HashEmbedder()
    with pytest.raises(ValueError, match="4 headlines.*3 slots"):
        text_features(["a", "b", "c", "d"], emb)
    with pytest.raises(ValueError, match="task 1: 4 headlines"):
        text_features([["a"], ["a", "b", "c", "d"]], emb)
    assert mean_text_embedding(["a", "b", "c", "d"], emb).shape == (TEXT_DIM,)  # the mean reads any number


def test_mean_text_embedding():
    emb = HashEmbedder()
    np.testing.assert_allclose(mean_text_embedding(["a", "b"], emb), emb.embed(["a", "b"]).mean(axis=0), rtol=1e-6)
    batch = mean_text_embedding([["a", "b"], [], ["c"]], emb)
    assert batch.shape == (3, TEXT_DIM) and not batch[1].any()


def test_token_slots():
    assert token_slots(("market", "sentiment", "risk")) == (1, HEADLINE_SLOTS, 1)
    assert token_slots(("r0", "r1")) == (1, 1)


def test_cached_embedder_embeds_each_text_once(tmp_path):
    calls = []

    class Counting(HashEmbedder):
        def embed(self, texts):
            calls.append(list(texts))
            return super().embed(texts)

    cache = CachedEmbedder(Counting, tmp_path / "c.npz")
    first = cache.embed(["x", "y", "x"])
    again = CachedEmbedder(Counting, tmp_path / "c.npz").embed(["y", "x"])  # from disk, no model
    np.testing.assert_array_equal(first[[1, 0]], again)
    assert calls == [["x"], ["y"]]  # each text alone


def test_a_cached_vector_does_not_depend_on_the_texts_embedded_with_it(tmp_path):
    """MiniLM pads a batch to its longest text, which moves a vector's last bits: the cache embeds
    every text alone, so the same text gets the same bits whatever it was embedded with."""
    from models.data.embed import _base_factory

    short, long = "Bitcoin rallies", "Regulators open a long investigation into the exchange's custody after outflows"
    alone = CachedEmbedder(_base_factory, tmp_path / "a.npz").embed([short])
    beside = CachedEmbedder(_base_factory, tmp_path / "b.npz").embed([long, short, long])[1:2]
    assert np.array_equal(alone, beside)


def test_build_features_zero_rows_for_absent_modalities():
    ds = generate(200, 1, missing_rate=0.3)
    fs = build_features(ds, HashEmbedder())
    assert fs.dims == (MARKET_DIM, SENTIMENT_DIM, FLOW_DIM)
    for k, name in enumerate(fs.names):
        absent = fs.mask[:, k] == 0
        assert absent.any() and not fs.x[name][absent].any()
        assert fs.x[name][~absent].any(axis=1).all()


def test_runtime_modules_never_import_torch():
    code = ("import sys\n"
            "import models.runtime, models.fusion, models.data, models.data.synthetic, models.data.features, "
            "models.data.loader, models.data.embed, models.data.splits, models.data.digits, models.data.headlines\n"
            "from models.data.features import build_features\n"
            "from models.data.synthetic import generate\n"
            "from models.data.embed import HashEmbedder\n"
            "build_features(generate(20, 0), HashEmbedder())\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
