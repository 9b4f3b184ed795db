"""Latency of all-MiniLM-L6-v2 sentence embedding: torch eager vs onnxruntime fp32 vs onnxruntime int8.

All three engines run the same work per call: tokenize with `tokenizers` (truncate at 128, pad to
the longest row), run the model, mean-pool and L2-normalize. Torch is the HF BertModel in eager
mode under `inference_mode` (what sentence-transformers runs), so the ratios isolate the engine.
Engines are timed in interleaved rounds, so a noisy neighbour slows them all alike; p50 over all
timed calls. Ratios are torch p50 / engine p50, both measured in the same run. Process CPU time per
call is reported too: on a shared machine wall time swings with other load, and at `--threads 1`
CPU time does not.

    python scripts/bench_embed.py [--threads N] [--rounds R] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from models.manifest import MANIFEST_PATH
from models.minilm.heldout import FINANCIAL, HELDOUT_SENTENCES
from models.minilm.spec import MAX_LENGTH

log = logging.getLogger(__name__)

TARGETS = {"onnxruntime fp32": 1.2, "onnxruntime int8": 2.0}
"""Speed-up over torch eager at batch 1 that each engine is expected to reach."""
BATCH_SIZES = (1, 32)


@dataclass(frozen=True)
class EngineResult:
    engine: str
    size_mb: float
    p50_ms: dict[int, float]
    """Batch size -> median latency of one `embed` call in milliseconds."""
    speedup: dict[int, float] = field(default_factory=dict)
    """Batch size -> torch p50 / this p50 (1.0 for torch itself)."""
    cpu_p50_ms: dict[int, float] = field(default_factory=dict)
    """Batch size -> median CPU time of the process per call: robust to other load at 1 thread."""
    cpu_speedup: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchReport:
    threads: int
    cpu: str
    versions: dict[str, str]
    batches: dict[int, str]
    """Batch size -> what the batch holds."""
    results: list[EngineResult]
    targets: dict[str, dict]
    load_avg: tuple[float, float]
    """1-minute load average before and after the run: other work on the machine skews latencies."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class TorchEmbedder:
    """The torch eager baseline: HF BertModel + masked mean pooling + L2 norm, same tokenization."""

    def __init__(self, tokenizer_path: Path, threads: int, max_length: int = MAX_LENGTH) -> None:
        import torch

        from models.minilm.export import hf_offline, source_dir
        from models.minilm.runtime import load_tokenizer

        hf_offline()
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.set_num_threads(threads)
        self._torch = torch
        self._model = AutoModel.from_pretrained(str(source_dir())).eval()
        self._tokenizer, self._pad_id = load_tokenizer(tokenizer_path, max_length)
        self.size_mb = (source_dir() / "model.safetensors").stat().st_size / 1e6

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from models.minilm.runtime import pad_batch

        torch = self._torch
        ids, mask = pad_batch([e.ids for e in self._tokenizer.encode_batch(list(texts))], self._pad_id)
        with torch.inference_mode():
            ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
            hidden = self._model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state  # (B, T, 384)
            m = mask_t.unsqueeze(-1).to(hidden.dtype)                                       # (B, T, 1)
            mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)                           # (B, 384)
            return torch.nn.functional.normalize(mean, dim=1).numpy()


def _time_calls(fn: Callable[[], object], n: int) -> list[tuple[float, float]]:
    """(wall ms, process CPU ms) of `n` calls."""
    out = []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        out.append(((time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3))
    return out


def run_bench(threads: int | None = None, rounds: int = 7, calls: dict[int, int] | None = None,
              manifest_path: Path = MANIFEST_PATH) -> BenchReport:
    """Measure p50 latency at batch 1 and 32 for torch eager, onnxruntime fp32 and int8."""
    import onnxruntime
    import torch

    from models.minilm.export import ensure_minilm_artifacts
    from models.minilm.runtime import load_default

    threads = threads or os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    calls = calls or {1: 20, 32: 3}
    ensure_minilm_artifacts(manifest_path=manifest_path, artifacts_dir=Path(manifest_path).parent)
    f32 = load_default("f32", manifest_path, threads=threads, batch_size=64)
    int8 = load_default("int8", manifest_path, threads=threads, batch_size=64)
    torch_embedder = TorchEmbedder(f32.tokenizer_path, threads)
    engines: dict[str, tuple[Callable[[Sequence[str]], np.ndarray], float]] = {
        "torch eager fp32": (torch_embedder.embed, torch_embedder.size_mb),
        "onnxruntime fp32": (f32.embed, f32.model_path.stat().st_size / 1e6),
        "onnxruntime int8": (int8.embed, int8.model_path.stat().st_size / 1e6),
    }
    batches = {1: [FINANCIAL[0]], 32: list(HELDOUT_SENTENCES[:32])}
    samples: dict[str, dict[int, list[tuple[float, float]]]] = {name: {b: [] for b in batches} for name in engines}
    for name, (embed, _) in engines.items():  # warm-up: first calls allocate and pick kernels
        for texts in batches.values():
            embed(texts)
    for r in range(rounds):
        for name, (embed, _) in engines.items():
            for b, texts in batches.items():
                samples[name][b] += _time_calls(lambda: embed(texts), calls[b])
        log.debug("round %d/%d done", r + 1, rounds)
    p50 = {name: {b: float(np.median([w for w, _ in s])) for b, s in per.items()} for name, per in samples.items()}
    cpu = {name: {b: float(np.median([c for _, c in s])) for b, s in per.items()} for name, per in samples.items()}
    base, cpu_base = p50["torch eager fp32"], cpu["torch eager fp32"]
    results = [EngineResult(name, round(engines[name][1], 1), {b: round(v, 3) for b, v in p50[name].items()},
                            {b: round(base[b] / p50[name][b], 2) for b in batches},
                            {b: round(v, 3) for b, v in cpu[name].items()},
                            {b: round(cpu_base[b] / cpu[name][b], 2) for b in batches}) for name in engines]
    targets = {name: {"batch": 1, "target": t, "measured": next(r.speedup[1] for r in results if r.engine == name),
                      "met": next(r.speedup[1] for r in results if r.engine == name) >= t}
               for name, t in TARGETS.items()}
    return BenchReport(
        threads=threads, cpu=_cpu_name(),
        versions={"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        batches={b: (repr(texts[0]) if b == 1 else f"the first {b} held-out sentences (financial headlines)")
                 for b, texts in batches.items()},
        results=results, targets=targets, load_avg=(round(load_before, 2), round(os.getloadavg()[0], 2)))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical CPUs)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} logical CPUs)"


def print_report(report: BenchReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"MiniLM embedding latency, p50 ({report.threads} threads, {report.cpu}, "
                        f"load avg {report.load_avg[0]:.1f} -> {report.load_avg[1]:.1f})")
    table.add_column("engine", no_wrap=True)
    table.add_column("MB", justify="right")
    for b in BATCH_SIZES:
        table.add_column(f"b{b} p50 ms (vs torch)", justify="right")
    for b in BATCH_SIZES:
        table.add_column(f"b{b} CPU ms (vs torch)", justify="right")
    for r in report.results:
        cells = [r.engine, f"{r.size_mb:.1f}"]
        cells += [f"{r.p50_ms[b]:.2f} ({r.speedup[b]:.2f}x)" for b in BATCH_SIZES]
        cells += [f"{r.cpu_p50_ms[b]:.2f} ({r.cpu_speedup[b]:.2f}x)" for b in BATCH_SIZES]
        table.add_row(*cells)
    console = Console(width=max(Console().width, 130))
    console.print(table)
    for name, t in report.targets.items():
        verdict = "met" if t["met"] else "NOT met"
        console.print(f"target {name} >= {t['target']}x torch at batch 1: {t['measured']:.2f}x ({verdict})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="p50 latency of torch eager vs onnxruntime fp32/int8 MiniLM.")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for every engine (default: all CPUs)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON ('-' for stdout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = run_bench(threads=args.threads, rounds=args.rounds)
    if args.json == "-":
        print(report.to_json())
    else:
        print_report(report)
        if args.json:
            Path(args.json).write_text(report.to_json() + "\n")
    return 0
