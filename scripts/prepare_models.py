"""Set-up step: build the model artifacts the runtime needs (idempotent; seconds when present).

Called by `make setup`. It exports all-MiniLM-L6-v2 to ONNX (fp32 and int8) and trains + exports the
quick-profile agent, fusion and unified models, recording each in models/artifacts/manifest.json.
"""

from __future__ import annotations

import logging
import sys


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from models.minilm.export import ensure_minilm_artifacts

    ensure_minilm_artifacts()
    from models.export import ensure_default_artifacts

    ensure_default_artifacts()
    return 0


if __name__ == "__main__":
    sys.exit(main())
