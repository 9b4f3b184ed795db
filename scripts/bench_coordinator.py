"""Benchmark the edge coordinator in one run: MiniLM latency of torch eager vs onnxruntime fp32/int8
(batch 1 and 32, `models.minilm.bench`), then a real `chorus coordinator run` process under
concurrent /embed and /decide load with micro-batching off and on (throughput, p50/p95) and its
peak RSS (VmHWM). Logic in `node.bench.coordinator`.

    python -m scripts.bench_coordinator [--threads N] [--concurrency C] [--requests N] [--load-rounds R]
                                        [--no-engines] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per session (default 1)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--requests", type=int, default=128, help="requests per scenario and round (default 128)")
    parser.add_argument("--load-rounds", type=int, default=3, help="interleaved rounds per scenario (default 3)")
    parser.add_argument("--no-engines", action="store_true", help="skip the torch vs onnxruntime latency table")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds of the engine table (default 5)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from node.bench.coordinator import print_report, run_bench

    out: dict = {}
    if not args.no_engines:
        from models.minilm.bench import print_report as print_engines
        from models.minilm.bench import run_bench as run_engines

        engines = run_engines(threads=args.threads, rounds=args.rounds)
        print_engines(engines)
        out["engines"] = asdict(engines)
    bench = run_bench(threads=args.threads, concurrency=args.concurrency, n_requests=args.requests,
                      rounds=args.load_rounds)
    print_report(bench)
    out["coordinator"] = asdict(bench)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
