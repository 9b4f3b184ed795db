"""Run exported models with onnxruntime. No torch: this is what agents and the coordinator import.

    model = OnnxModel("market")                 # looked up in models/artifacts/manifest.json
    out = model.run(features=feats)             # {"embedding": (B, d), "probs": (B, 3)}
    model.model_id                              # bytes32: sha256 of the ONNX file (checked on load)

Inputs are validated against the graph (names, rank, fixed widths, one batch size) and any mismatch
raises `ModelError` naming the input, so a wrong payload never reaches onnxruntime.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from models.manifest import MANIFEST_PATH, ManifestEntry, get_entry, sha256_file
from node.protocol.errors import ModelError

log = logging.getLogger(__name__)


class OnnxModel:
    """One exported model, its manifest entry and an onnxruntime session."""

    def __init__(self, name: str, manifest_path: Path = MANIFEST_PATH, *, threads: int = 1, verify: bool = True) -> None:
        self.entry: ManifestEntry = get_entry(name, manifest_path)
        self.path = self.entry.file(manifest_path.parent)
        if not self.path.is_file():
            raise ModelError(f"model {name!r}: file {self.path} is missing (run `chorus export`)")
        if verify and sha256_file(self.path) != self.entry.sha256:
            raise ModelError(f"model {name!r}: {self.path} does not match its model id {self.entry.sha256[:16]}...; "
                             "re-run `chorus export`")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"model {name!r}: onnxruntime cannot load {self.path}: {exc}") from exc
        self._inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self._outputs = [o.name for o in self.session.get_outputs()]

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def model_id(self) -> bytes:
        """The 32-byte model id (sha256 of the ONNX file), as ModelRegistry records it."""
        return self.entry.model_id

    @property
    def model_id_hex(self) -> str:
        return "0x" + self.entry.sha256

    @property
    def dim(self) -> int:
        return self.entry.dim

    @property
    def dtype(self) -> str:
        return self.entry.dtype

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def input_shape(self, name: str) -> list[int | str]:
        """Shape of an input; symbolic dims (the batch) are strings."""
        return list(self._inputs[name])

    def _validate(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = sorted(set(self._inputs) - set(inputs))
        unknown = sorted(set(inputs) - set(self._inputs))
        if missing or unknown:
            raise ModelError(f"model {self.name!r} takes inputs {self.input_names}; missing {missing}, unknown {unknown}")
        feed, batch = {}, None
        for key, shape in self._inputs.items():
            try:
                arr = np.asarray(inputs[key], dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise ModelError(f"model {self.name!r}: input {key!r} is not numeric: {exc}") from exc
            if arr.ndim != len(shape):
                raise ModelError(f"model {self.name!r}: input {key!r} must have shape {shape}, got {arr.shape}")
            for want, got in zip(shape, arr.shape):
                if isinstance(want, int) and want != got:
                    raise ModelError(f"model {self.name!r}: input {key!r} must have shape {shape}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ModelError(f"model {self.name!r}: input {key!r} has NaN or infinite values")
            if batch is not None and arr.shape[0] != batch:
                raise ModelError(f"model {self.name!r}: inputs disagree on batch size ({batch} vs {arr.shape[0]})")
            batch = arr.shape[0]
            feed[key] = np.ascontiguousarray(arr)
        return feed

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by name for a batch of inputs given by name."""
        feed = self._validate(inputs)
        outs = self.session.run(self._outputs, feed)
        return dict(zip(self._outputs, outs))

    def __repr__(self) -> str:
        return f"OnnxModel({self.name!r}, id=0x{self.entry.sha256[:12]}..., inputs={self.input_names})"
