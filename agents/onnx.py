"""Loading an agent's trained ONNX model from the manifest (onnxruntime only, never torch).

The agent models (`market`, `sentiment`, `risk`) take one float32 feature row and return
`embedding` (1, d) and `probs` (1, 3: sell, hold, buy). When the manifest has no entry for a role,
or its file is missing, `find_agent_model` returns None and the agent falls back to its simple
deterministic numpy model; the node logs which one runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from node.protocol.enums import Encoding
from node.protocol.errors import ModelError

log = logging.getLogger(__name__)

def encoding_of(dtype: str) -> Encoding:
    """The Encoding a manifest's dtype names (f32, f16, i8, binary)."""
    try:
        return Encoding.parse(dtype)
    except ValueError:
        raise ModelError(f"unknown vector dtype {dtype!r}") from None


@dataclass
class AgentModel:
    """A trained agent model (`models.runtime.OnnxModel`) with the facts the node registers on chain."""

    name: str
    model_id: bytes
    dim: int
    encoding: Encoding
    path: Path
    model: Any = field(repr=False)

    def __call__(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """One batch of feature rows (B, F) -> {'embedding': (B, d), 'probs': (B, 3)}."""
        x = np.asarray(features, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]  # (1, F)
        return self.model.run(**{self.model.input_names[0]: x})


def find_agent_model(name: str, manifest_path: Path | None = None) -> AgentModel | None:
    """The trained model `name` from the manifest, loaded once; None when it is not there (yet)."""
    from models.manifest import MANIFEST_PATH, load_manifest
    from models.runtime import OnnxModel

    path = Path(manifest_path or MANIFEST_PATH)
    entry = load_manifest(path).get(name)
    if entry is None:
        return None
    if not entry.file(path.parent).is_file():
        log.warning("manifest names %s at %s but the file is missing", name, entry.file(path.parent))
        return None
    if "probs" not in entry.outputs or "embedding" not in entry.outputs:
        log.warning("manifest model %s has outputs %s, not embedding + probs: not an agent model", name, entry.outputs)
        return None
    # One intra-op thread: several node processes share a small machine.
    model = OnnxModel(name, path, threads=1)
    if len(model.input_names) != 1:
        raise ModelError(f"agent model {name} takes inputs {model.input_names}; expected one feature row")
    return AgentModel(name=entry.name, model_id=entry.model_id, dim=entry.dim, encoding=encoding_of(entry.dtype),
                      path=model.path, model=model)
