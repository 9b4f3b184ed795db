"""Set-up step: build the model artifacts the runtime needs (idempotent; seconds when present).

Called by `make setup`. It exports all-MiniLM-L6-v2 to ONNX (fp32 and int8), then, when the
manifest lacks any deployed model or its file, or has one trained on other features than
`models.data.features` computes (its `features_version`, 1 where the entry has none), trains the
quick-profile agent, fusion and unified models (`chorus train --quick --no-compare`) and exports
them (`chorus export`).
"""

from __future__ import annotations

import logging
import subprocess
import sys

from models.manifest import ARTIFACTS_DIR, load_manifest

DEPLOYED = ("market", "sentiment", "risk", "m-learned", "m-learned-dec", "e-d16", "u", "u-int8")


def missing_models() -> list[str]:
    """Deployed models that are absent, or stale: trained on another FEATURES_VERSION."""
    from models.data.features import FEATURES_VERSION

    entries = load_manifest()
    return [n for n in DEPLOYED if n not in entries or not entries[n].file(ARTIFACTS_DIR).exists()
            or entries[n].extra.get("features_version", 1) != FEATURES_VERSION]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from models.minilm.export import ensure_minilm_artifacts

    ensure_minilm_artifacts()
    missing = missing_models()
    if not missing:
        logging.info("models: all %d deployed models present", len(DEPLOYED))
        return 0
    logging.info("models: training and exporting (missing or stale: %s)", ", ".join(missing))
    chorus = [sys.executable, "-m", "node.cli"]
    subprocess.run([*chorus, "train", "--quick", "--no-compare"], check=True)
    subprocess.run([*chorus, "export"], check=True)
    still = missing_models()
    if still:
        logging.error("models still missing after export: %s", ", ".join(still))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
