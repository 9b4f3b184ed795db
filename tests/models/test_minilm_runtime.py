"""The torch-free MiniLM runtime: shapes, ids, batching, int8 quality, errors, and the export's idempotency.

Needs the exported artifacts; the module fixture builds them once (`ensure_minilm_artifacts`, which
returns at once when `make setup` already did).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.manifest import ManifestEntry, sha256_file, upsert_entries
from models.minilm.export import ensure_minilm_artifacts
from models.minilm.heldout import HELDOUT_SENTENCES, LONG, SHORT
from models.minilm.runtime import TextEmbedder, load_default
from models.minilm.spec import DIM, F32_NAME, INPUT_NAMES, INT8_NAME, MIN_COSINE, OUTPUT_NAME
from node.protocol.errors import ModelError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def entries() -> dict[str, ManifestEntry]:
    return ensure_minilm_artifacts()


@pytest.fixture(scope="module")
def f32(entries) -> TextEmbedder:
    return load_default("f32")


@pytest.fixture(scope="module")
def int8(entries) -> TextEmbedder:
    return load_default("int8")


def _subprocess(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


# -- shape, identity, manifest -----------------------------------------------------------------------


def test_embed_returns_unit_float32_rows_in_order(f32: TextEmbedder) -> None:
    texts = ["Stocks rallied.", "The cat slept on the mat all day long.", ""]
    vecs = f32.embed(texts)
    assert vecs.shape == (3, DIM) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vecs[1], f32.embed([texts[1]])[0], atol=1e-5)


def test_empty_list_gives_an_empty_matrix(f32: TextEmbedder, int8: TextEmbedder) -> None:
    for emb in (f32, int8):
        out = emb.embed([])
        assert out.shape == (0, DIM) and out.dtype == np.float32


def test_model_id_is_the_sha256_of_the_file_recorded_in_the_manifest(entries, f32, int8) -> None:
    for emb, name in ((f32, F32_NAME), (int8, INT8_NAME)):
        assert emb.model_id == sha256_file(emb.model_path) == entries[name].sha256
        assert emb.entry == entries[name] and emb.name == name and emb.dim == DIM
    assert f32.model_id != int8.model_id  # two files, two embedding spaces


def test_manifest_entries_describe_both_files(entries) -> None:
    for name in (F32_NAME, INT8_NAME):
        e = entries[name]
        assert (e.dim, e.dtype, e.inputs, e.outputs) == (DIM, "f32", list(INPUT_NAMES), [OUTPUT_NAME])
    q = entries[INT8_NAME].extra
    assert q["quantization"]["method"] == "MatMulNBits" and q["base_sha256"] == entries[F32_NAME].sha256
    assert q["min_cosine"] >= MIN_COSINE
    assert entries[INT8_NAME].file().stat().st_size < entries[F32_NAME].file().stat().st_size / 3


# -- batching, padding, truncation -------------------------------------------------------------------


def test_long_lists_are_batched_without_changing_any_vector(f32: TextEmbedder) -> None:
    texts = list(HELDOUT_SENTENCES[:70])
    small_batches = TextEmbedder(f32.model_path, f32.tokenizer_path, batch_size=8).embed(texts)
    one_by_one = np.concatenate([f32.embed([t]) for t in texts])
    np.testing.assert_allclose(small_batches, one_by_one, atol=1e-5)


def test_padding_next_to_a_long_text_does_not_change_a_short_one(f32: TextEmbedder) -> None:
    short, long = SHORT[0], LONG[0]
    together = f32.embed([short, long])
    np.testing.assert_allclose(together[0], f32.embed([short])[0], atol=1e-5)


def test_texts_are_truncated_at_max_length(f32: TextEmbedder) -> None:
    emb = TextEmbedder(f32.model_path, f32.tokenizer_path, max_length=8)
    # both share the first 6 word pieces, i.e. everything the 8-token window ([CLS] ... [SEP]) keeps
    a, b = emb.embed(["one two three four five six seven eight", "one two three four five six nine ten"])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert f32.embed(["word " * 1000]).shape == (1, DIM)  # far past 128 tokens: truncated, not an error


# -- int8 quality ----------------------------------------------------------------------------------


def test_int8_agrees_with_f32_on_every_heldout_sentence(f32: TextEmbedder, int8: TextEmbedder) -> None:
    cos = np.sum(f32.embed(HELDOUT_SENTENCES) * int8.embed(HELDOUT_SENTENCES), axis=1)  # (N,)
    worst = int(np.argmin(cos))
    assert cos.min() >= MIN_COSINE, f"min cosine {cos.min():.4f} on {HELDOUT_SENTENCES[worst]!r}"


def test_int8_vector_does_not_depend_on_the_batch(int8: TextEmbedder) -> None:
    texts = list(HELDOUT_SENTENCES[:40])
    alone = TextEmbedder(int8.model_path, int8.tokenizer_path, batch_size=1).embed(texts)
    np.testing.assert_allclose(int8.embed(texts), alone, atol=1e-4)


# -- errors ----------------------------------------------------------------------------------------


def test_non_string_input_is_a_type_error(f32: TextEmbedder) -> None:
    with pytest.raises(TypeError, match="not a single string"):
        f32.embed("a bare string")
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        f32.embed(["fine", 3])
    with pytest.raises(TypeError, match=r"texts\[0\] is NoneType"):
        f32.embed([None])


def test_missing_files_name_the_fix(f32: TextEmbedder, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="make setup"):
        TextEmbedder(tmp_path / "missing.onnx", f32.tokenizer_path)
    with pytest.raises(ModelError, match="tokenizer not found.*make setup"):
        TextEmbedder(f32.model_path, tmp_path / "missing.json")
    with pytest.raises(ModelError, match="make setup"):
        load_default("f32", manifest_path=tmp_path / "manifest.json")
    with pytest.raises(ModelError, match="unknown MiniLM kind"):
        load_default("f16")


def test_a_corrupt_model_file_is_a_model_error(f32: TextEmbedder, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="cannot load"):
        TextEmbedder(bad, f32.tokenizer_path)


def test_a_file_that_no_longer_matches_its_model_id_is_refused(entries, tmp_path: Path) -> None:
    real = entries[F32_NAME]
    (tmp_path / real.path).symlink_to(real.file())
    (tmp_path / real.extra["tokenizer"]).symlink_to(real.file().parent / real.extra["tokenizer"])
    upsert_entries([replace(real, sha256="00" * 32)], tmp_path / "manifest.json")
    with pytest.raises(ModelError, match="stale"):
        load_default("f32", manifest_path=tmp_path / "manifest.json")


# -- torch stays out of the runtime ------------------------------------------------------------------


def test_runtime_does_not_import_torch() -> None:
    proc = _subprocess("import models.minilm.runtime, sys; assert 'torch' not in sys.modules")
    assert proc.returncode == 0, proc.stderr


def test_second_ensure_is_a_no_op_without_torch(entries) -> None:
    files = [entries[n].file() for n in (F32_NAME, INT8_NAME)]
    before = [f.stat().st_mtime_ns for f in files]
    proc = _subprocess("from models.minilm.export import ensure_minilm_artifacts; import sys; "
                       "ensure_minilm_artifacts(); assert 'torch' not in sys.modules")
    assert proc.returncode == 0, proc.stderr
    assert [f.stat().st_mtime_ns for f in files] == before


def test_int8_is_rebuilt_alone_when_missing(entries, tmp_path: Path) -> None:
    f32 = entries[F32_NAME]
    for name in (f32.path, f32.extra["tokenizer"]):
        (tmp_path / name).symlink_to(f32.file().parent / name)
    manifest = tmp_path / "manifest.json"
    upsert_entries([f32], manifest)
    built = ensure_minilm_artifacts(artifacts_dir=tmp_path, manifest_path=manifest)
    assert built[F32_NAME] == f32  # fp32 was current: not re-exported
    assert built[INT8_NAME].sha256 == entries[INT8_NAME].sha256  # quantization is deterministic
    assert ensure_minilm_artifacts(artifacts_dir=tmp_path, manifest_path=manifest) == built


# -- properties ------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.text(max_size=300), min_size=1, max_size=4))
def test_embeddings_are_unit_norm_for_any_text(f32: TextEmbedder, int8: TextEmbedder, texts: list[str]) -> None:
    for emb in (f32, int8):
        vecs = emb.embed(texts)
        assert vecs.shape == (len(texts), DIM) and np.isfinite(vecs).all()
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
