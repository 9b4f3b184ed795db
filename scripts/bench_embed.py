"""Benchmark MiniLM sentence embedding: torch eager vs onnxruntime fp32 / int8 (p50 at batch 1 and 32).

Thin entry point; the logic is in `models.minilm.bench`.

    python scripts/bench_embed.py [--threads N] [--rounds R] [--json PATH]
"""

from __future__ import annotations

import sys

from models.minilm.bench import main

if __name__ == "__main__":
    sys.exit(main())
