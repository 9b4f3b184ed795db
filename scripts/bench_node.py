"""Benchmark N agent node processes on a fresh devnet: tasks/s and p50/p95 submit-to-finalized
latency, beside raw Anvil throughput measured in the same run, and their ratio.

    python -m scripts.bench_node                 # N=4, 40 tasks, arch 2 (M-fixed)
    python -m scripts.bench_node --tasks 100 --arch 5 --json reports/bench_node.json

Raw: 500 signed transfers sent one by one from this process (the chain layer's client), timed to
the last receipt. Pipeline: the burst's submissions go out back to back (consecutive nonces, no
wait per receipt), and chain tx/s counts every transaction mined from the first submission to the
last finalization. The ratio is pipeline tx/s : raw tx/s. The logic (and exactly how each figure
is measured) lives in `node.bench.throughput`; this is the entry point.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from node.protocol.enums import ARCH_NAMES, Arch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4, help="node processes (default mix of roles)")
    parser.add_argument("--tasks", type=int, default=40, help="tasks submitted in one burst")
    parser.add_argument("--arch", type=int, default=int(Arch.M_FIXED),
                        help=f"architecture id of the tasks ({int(Arch.M_FIXED)} {ARCH_NAMES[Arch.M_FIXED]}, "
                             f"{int(Arch.E_D)} {ARCH_NAMES[Arch.E_D]})")
    parser.add_argument("--raw-txs", type=int, default=500, help="transfers for the raw Anvil measurement")
    parser.add_argument("--paced", type=int, default=10, help="tasks sent one at a time for the unloaded latency")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from node.bench.throughput import format_result, run_benchmark
    from scripts._progress import stage_bars

    with stage_bars() as on_progress:
        result = run_benchmark(args.nodes, args.tasks, args.arch, args.raw_txs, args.paced, on_progress=on_progress)
    print(format_result(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
