"""The model manifest: `models/artifacts/manifest.json`, one entry per exported ONNX file.

The model id of an entry is the sha256 of its ONNX file; it is what ModelRegistry records on chain
and what every published embedding names, so vectors from different spaces are never fused.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from node.protocol.codec import VECTOR_DTYPES
from node.protocol.errors import ModelError

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
MANIFEST_PATH = ARTIFACTS_DIR / "manifest.json"
DTYPES = VECTOR_DTYPES  # the encodings a model may publish in: the protocol codec's names


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    """Unique short name, e.g. `minilm-f32`, `minilm-int8`, `u-alpha0.5`."""
    path: str
    """ONNX file path relative to the artifacts directory."""
    sha256: str
    """Hex sha256 of the ONNX file: the model id (without 0x)."""
    dim: int
    """Width of the embedding (or output) vector the model produces."""
    dtype: str
    """Element type of the published vector: one of f32, f16, i8, binary."""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    """Free-form facts (quantization, opset, source checkpoint, accuracy)."""

    @property
    def model_id(self) -> bytes:
        return bytes.fromhex(self.sha256)

    def file(self, root: Path = ARTIFACTS_DIR) -> Path:
        return root / self.path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, ManifestEntry]:
    """Entries by name; an empty dict when no manifest has been written yet."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {e["name"]: ManifestEntry(**e) for e in raw["models"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"manifest {path} is malformed: {exc}") from exc


def get_entry(name: str, path: Path = MANIFEST_PATH) -> ManifestEntry:
    entries = load_manifest(path)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none (run `make setup`)"
        raise ModelError(f"unknown model {name!r}; manifest has: {known}")
    return entries[name]


def upsert_entries(new: list[ManifestEntry], path: Path = MANIFEST_PATH) -> None:
    """Add or replace entries by name, writing the file atomically."""
    for e in new:
        if e.dtype not in DTYPES:
            raise ModelError(f"entry {e.name}: dtype {e.dtype!r} not in {DTYPES}")
    entries = load_manifest(path)
    entries.update({e.name: e for e in new})
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": 1, "models": [asdict(e) for e in sorted(entries.values(), key=lambda e: e.name)]},
                      indent=2)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest.")
    with os.fdopen(fd, "w") as f:
        f.write(body + "\n")
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; the manifest is no secret
    os.replace(tmp, path)
