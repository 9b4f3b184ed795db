"""Benchmark what a block costs Anvil as its state grows: CPU per empty block at several state
sizes (storage slots), each as a ratio to the smallest, all measured in this run.

    python -m scripts.bench_anvil                                  # 0, 40k, 80k, 160k slots
    python -m scripts.bench_anvil --sizes 0,200000 --json reports/bench_anvil.json

The logic (and exactly how each figure is measured) lives in `node.bench.anvil_state`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,40000,80000,160000",
                        help="comma-separated state sizes, in storage slots (default: 0,40000,80000,160000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="idle mining timed per size (default: 15)")
    parser.add_argument("--block-time", type=float, default=0.25, help="Anvil's mining interval, s (default: 0.25)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    try:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated whole numbers, got {args.sizes!r}")
    if not sizes or min(sizes) < 0 or len(set(sizes)) < 2:
        parser.error("--sizes needs at least two different sizes, none negative")
    if args.seconds <= 0 or args.block_time <= 0:
        parser.error("--seconds and --block-time must be positive")

    from node.bench.anvil_state import format_result, run_benchmark
    from scripts._progress import stage_bars

    with stage_bars() as on_progress:
        result = run_benchmark(sizes, args.seconds, args.block_time, on_progress=on_progress)
    print(format_result(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
