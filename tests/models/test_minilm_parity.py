"""fp32 ONNX export vs the torch sentence-transformers model it came from.

Tolerance, stated: on every sentence the ONNX vector is within 1e-4 of sentence-transformers' (max
absolute difference per coordinate) and their cosine is >= 0.9999. Both are unit vectors, so fp32
rounding alone gives differences around 1e-7; anything near the bound is a real export bug (wrong
pooling, mask ignored, truncation mismatch).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from models.minilm.export import ensure_minilm_artifacts, source_dir
from models.minilm.heldout import FINANCIAL, GENERAL, LONG, MIXED, NEGATION, NUMBERS, SHORT
from models.minilm.runtime import load_default
from models.minilm.spec import MAX_LENGTH

MAX_ABS_DIFF = 1e-4
MIN_COSINE = 0.9999

PARITY_SENTENCES = [
    *FINANCIAL[:4], *NEGATION[:3], *NUMBERS[:3], *GENERAL[:3], *SHORT[:3], *MIXED[:2], LONG[0], LONG[7],
]
"""20 sentences: short and long (one past the 128-token window), padded together in one batch."""


@pytest.fixture(scope="module")
def sentence_transformer() -> Iterator[Any]:
    # The checkpoint is a local folder: keep the hub offline while the module runs, and give the
    # environment back afterwards (monkeypatch itself is per test, its context is not).
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            if name not in os.environ:
                mp.setenv(name, "1")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(source_dir()), device="cpu")
        model.max_seq_length = MAX_LENGTH  # the package says 256; the runtime's window is 128
        yield model


def test_fp32_onnx_matches_sentence_transformers(sentence_transformer) -> None:
    ensure_minilm_artifacts()
    assert len(PARITY_SENTENCES) == 20
    expected = sentence_transformer.encode(PARITY_SENTENCES, batch_size=len(PARITY_SENTENCES), convert_to_numpy=True,
                                           normalize_embeddings=True, show_progress_bar=False)
    got = load_default("f32", batch_size=len(PARITY_SENTENCES)).embed(PARITY_SENTENCES)
    diff = np.abs(got - expected).max(axis=1)     # (20,)
    cos = np.sum(got * expected, axis=1)          # (20,)
    worst = int(np.argmax(diff))
    assert diff.max() <= MAX_ABS_DIFF, f"max abs diff {diff.max():.2e} on {PARITY_SENTENCES[worst]!r}"
    assert cos.min() >= MIN_COSINE, f"min cosine {cos.min():.6f}"
