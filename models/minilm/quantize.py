"""int8 quantization of the MiniLM fp32 export with onnxruntime.quantization, and how it was chosen.

Training-time code (onnx, onnxruntime.quantization; no torch). `quantize_int8` applies the chosen
recipe (`spec.QuantRecipe`); `compare_recipes` re-measures the alternatives on the calibration
sentences, so the choice can be checked again on another onnxruntime or CPU:

    python -m models.minilm.quantize --compare

What was measured (cosine to fp32; onnxruntime 1.32, AMD EPYC with AVX-512 VNNI, 1 thread):
- dynamic int8 of every MatMul and Gather (per-tensor weights, per-tensor activations): min 0.906
  on the calibration set, 0.83 on held-out; per-channel weights: 0.969. Both are 2.2-2.9x faster
  than fp32, but a batch shares one activation scale, so BERT's outlier channels (hidden unit 99
  reaches ~30 at [CLS] while most stay below 3) flatten everything else, and a sentence's vector
  changes with its batch mates. SmoothQuant-style scale migration (alpha 0.5-0.85) got to 0.986,
  plus keeping the eight most sensitive MatMuls in fp32 to 0.993 on calibration, still
  batch-dependent; splitting the top outlier channels off into fp32 MatMuls: 0.993 / 0.987 held-out
  (these three were one-off experiments and are not among the `--compare` candidates).
- MatMulNBits, 8-bit weights in blocks along K with accuracy_level=4 (int8 activations quantized
  per row and per block at run time): block 32 0.9973 / 0.9975 held-out, block 64 0.9972 / 0.9961,
  block 128 0.995 / 0.992. Per-row activation scales make the vector independent of the batch.
  Block 64 is ~8% faster than 32 for the same calibration minimum: it is the recipe. onnxruntime's
  8-bit MatMulNBits kernel is tuned for one-row (decode) GEMV, so at batch 32 it is only 1.1-1.4x
  fp32 (1.3-1.7x at batch 1), where dynamic MatMulInteger is 2.2-2.9x: speed traded for the 0.99
  target and batch independence.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.minilm.spec import DEFAULT_RECIPE, QuantRecipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CosineStats:
    """Agreement of two embedders on a sentence set (rows are unit vectors, so dot = cosine)."""

    min: float
    mean: float
    worst: str
    """The sentence with the lowest cosine."""
    count: int


def cosine_stats(reference: np.ndarray, candidate: np.ndarray, texts: Sequence[str]) -> CosineStats:
    cos = np.sum(reference.astype(np.float64) * candidate.astype(np.float64), axis=1)  # (N,)
    worst = int(np.argmin(cos))
    return CosineStats(min=float(cos.min()), mean=float(cos.mean()), worst=texts[worst], count=len(texts))


def _quiet_quantizer_logs() -> None:
    # matmul_nbits_quantizer calls logging.basicConfig(level=INFO) at import and logs every node.
    for name in ("onnxruntime.quantization.matmul_nbits_quantizer", "onnxruntime.quantization"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _no_preprocess_advice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Please consider to run pre-processing")


@contextlib.contextmanager
def _without_preprocess_advice() -> Iterator[None]:
    # quantize_dynamic advises shape-inference pre-processing on the root logger on every call; it
    # changes nothing for the tables and MatMuls quantized here.
    root = logging.getLogger()
    root.addFilter(_no_preprocess_advice)
    try:
        yield
    finally:
        root.removeFilter(_no_preprocess_advice)


def _atomic_target(dst: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.stem}.", suffix=".onnx")
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, dst: Path) -> None:
    """Move a finished temp file into place, readable like any other build output."""
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
    os.replace(tmp, dst)


def quantize_int8(src: Path, dst: Path, recipe: QuantRecipe = DEFAULT_RECIPE) -> None:
    """Write the int8 model for `recipe` from the fp32 model `src` to `dst` (atomically)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    _quiet_quantizer_logs()
    dst.parent.mkdir(parents=True, exist_ok=True)
    stage = _atomic_target(dst)
    out = _atomic_target(dst)
    try:
        if recipe.embeddings == "int8-per-tensor":
            # Embedding tables are 52% of the fp32 bytes; an int8 table costs < 3e-4 cosine.
            with _without_preprocess_advice():
                quantize_dynamic(src, stage, weight_type=QuantType.QUInt8, op_types_to_quantize=["Gather"])
            model = onnx.load(stage)
        elif recipe.embeddings == "f32":
            model = onnx.load(src)
        else:
            raise ValueError(f"unknown embeddings mode {recipe.embeddings!r}")
        config = DefaultWeightOnlyQuantConfig(block_size=recipe.block_size, is_symmetric=recipe.symmetric,
                                              accuracy_level=recipe.accuracy_level, bits=recipe.weight_bits,
                                              op_types_to_quantize=("MatMul",))
        quantizer = MatMulNBitsQuantizer(model, algo_config=config)
        quantizer.process()  # only MatMuls with a constant weight; attention score products stay fp32
        quantizer.model.save_model_to_file(str(out), use_external_data_format=False)
        publish(out, dst)
    finally:
        for p in (stage, out):
            p.unlink(missing_ok=True)


# -- recipe comparison ------------------------------------------------------------------------------


def _dynamic(per_channel: bool) -> Callable[[Path, Path], None]:
    def build(src: Path, dst: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _without_preprocess_advice():
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=per_channel)
    return build


def _nbits(recipe: QuantRecipe) -> Callable[[Path, Path], None]:
    return lambda src, dst: quantize_int8(src, dst, recipe)


CANDIDATES: dict[str, Callable[[Path, Path], None]] = {
    "dynamic, per-tensor": _dynamic(per_channel=False),
    "dynamic, per-channel": _dynamic(per_channel=True),
    "NBits8 block 128": _nbits(QuantRecipe(block_size=128)),
    "NBits8 block 64 (chosen)": _nbits(QuantRecipe(block_size=64)),
    "NBits8 block 32": _nbits(QuantRecipe(block_size=32)),
}
"""Recipes `compare_recipes` measures; the chosen one is `spec.DEFAULT_RECIPE`."""


@dataclass(frozen=True)
class RecipeResult:
    name: str
    size_mb: float
    cosine: CosineStats
    batch_invariant: bool
    """Whether a sentence embedded alone gets the same vector (cosine >= 0.9999) as inside a batch."""
    b1_cpu_ms: float
    b32_cpu_ms: float
    """Median process CPU time of one `embed` call (batch 1 / 32); at 1 thread, other load does not move it."""


def compare_recipes(f32_path: Path, tokenizer_path: Path, sentences: Sequence[str], threads: int | None = 1,
                    candidates: dict[str, Callable[[Path, Path], None]] | None = None) -> list[RecipeResult]:
    """Build each candidate in a temp dir and measure it against `f32_path` on `sentences`."""
    from models.minilm.runtime import TextEmbedder

    sentences = list(sentences)
    f32 = TextEmbedder(f32_path, tokenizer_path, threads=threads, batch_size=64)
    reference = f32.embed(sentences)
    results = [_measure("fp32 (reference)", f32_path, tokenizer_path, reference, sentences, threads)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (candidates or CANDIDATES).items():
            path = Path(tmp) / "candidate.onnx"
            build(f32_path, path)
            results.append(_measure(name, path, tokenizer_path, reference, sentences, threads))
            log.info("%s: min %.4f mean %.4f", name, results[-1].cosine.min, results[-1].cosine.mean)
    return results


def _measure(name: str, path: Path, tokenizer_path: Path, reference: np.ndarray, sentences: list[str],
             threads: int | None) -> RecipeResult:
    from models.minilm.runtime import TextEmbedder

    batched = TextEmbedder(path, tokenizer_path, threads=threads, batch_size=64)
    single = TextEmbedder(path, tokenizer_path, threads=threads, batch_size=1)
    vecs = batched.embed(sentences)
    stats = cosine_stats(reference, vecs, sentences)
    invariant = cosine_stats(single.embed(sentences), vecs, sentences).min >= 0.9999
    b1 = _cpu_p50(lambda: single.embed(sentences[:1]), 30)
    b32 = _cpu_p50(lambda: batched.embed(sentences[:32]), 5)
    return RecipeResult(name, path.stat().st_size / 1e6, stats, invariant, b1, b32)


def _cpu_p50(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times) * 1e3)


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from models.manifest import ARTIFACTS_DIR
    from models.minilm.calibration import CALIBRATION_SENTENCES
    from models.minilm.spec import F32_FILE, TOKENIZER_FILE

    parser = argparse.ArgumentParser(description="Compare int8 recipes for the MiniLM export on the calibration set.")
    parser.add_argument("--compare", action="store_true", help="measure every candidate recipe (needs the fp32 export)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (CPU times are per call)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.compare:
        parser.print_help()
        return 0
    results = compare_recipes(ARTIFACTS_DIR / F32_FILE, ARTIFACTS_DIR / TOKENIZER_FILE, CALIBRATION_SENTENCES,
                              threads=args.threads)
    table = Table(title=f"int8 recipes vs fp32 on {len(CALIBRATION_SENTENCES)} calibration sentences")
    for col in ("recipe", "MB", "min cos", "mean cos", "batch-invariant", "b1 CPU ms", "b32 CPU ms", "worst"):
        table.add_column(col)
    for r in results:
        table.add_row(r.name, f"{r.size_mb:.1f}", f"{r.cosine.min:.4f}", f"{r.cosine.mean:.4f}",
                      "yes" if r.batch_invariant else "no", f"{r.b1_cpu_ms:.2f}", f"{r.b32_cpu_ms:.1f}", r.cosine.worst[:40])
    Console(width=max(Console().width, 140)).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
