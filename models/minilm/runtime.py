"""Sentence embeddings from the exported all-MiniLM-L6-v2 ONNX files, on onnxruntime + `tokenizers`.

Runtime code: this module never imports torch (a test checks it). The graph already contains the
mean pooling and L2 normalization, so `embed` returns unit vectors that match sentence-transformers'
`encode(..., normalize_embeddings=True)` for the fp32 file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from models.manifest import MANIFEST_PATH, ManifestEntry, get_entry, sha256_file
from models.minilm.spec import DIM, INPUT_NAMES, KINDS, MAX_LENGTH, OUTPUT_NAME
from node.protocol.errors import ModelError

log = logging.getLogger(__name__)

SETUP_HINT = "run `make setup` (or `python -m models.minilm.export`) to build it"
PAD_TOKEN = "[PAD]"


class TextEmbedder:
    """all-MiniLM-L6-v2 sentence encoder: `embed(list[str]) -> (B, 384) float32`, unit rows.

    Texts are tokenized without padding, sorted by length and run in batches of `batch_size`, each
    padded only to its own longest row, so a long list costs little more than its real tokens.
    `model_id` is the sha256 (hex) of the ONNX file: the id of the embedding space on chain.
    """

    def __init__(self, model_path: str | Path, tokenizer_path: str | Path, threads: int | None = None,
                 max_length: int = MAX_LENGTH, batch_size: int = 32, entry: ManifestEntry | None = None) -> None:
        self.model_path, self.tokenizer_path = Path(model_path), Path(tokenizer_path)
        for what, path in (("ONNX model", self.model_path), ("tokenizer", self.tokenizer_path)):
            if not path.is_file():
                raise ModelError(f"MiniLM {what} not found at {path}; {SETUP_HINT}")
        if max_length < 2:
            raise ValueError(f"max_length must leave room for [CLS] and [SEP], got {max_length}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.max_length, self.batch_size, self.threads = max_length, batch_size, threads
        self.entry = entry
        """The manifest entry this embedder was loaded from (None when built from bare paths)."""
        self.model_id = sha256_file(self.model_path)
        if entry is not None and entry.sha256 != self.model_id:
            raise ModelError(f"{self.model_path} has sha256 {self.model_id[:12]}..., but the manifest entry "
                             f"{entry.name} records {entry.sha256[:12]}...; the file is stale: {SETUP_HINT}")
        self.name = entry.name if entry is not None else self.model_path.stem
        self._tokenizer = self._load_tokenizer()
        self._session = self._load_session()
        self.dim = self._check_signature()

    # -- loading ------------------------------------------------------------------------------------

    def _load_tokenizer(self) -> Tokenizer:
        tok, self._pad_id = load_tokenizer(self.tokenizer_path, self.max_length)
        return tok

    def _load_session(self) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # onnxruntime's own warnings (e.g. unused initializers) are noise here
        if self.threads is not None:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"onnxruntime cannot load {self.model_path}: {exc}") from exc

    def _check_signature(self) -> int:
        inputs = {i.name for i in self._session.get_inputs()}
        outputs = {o.name: o for o in self._session.get_outputs()}
        if not set(INPUT_NAMES) <= inputs or OUTPUT_NAME not in outputs:
            raise ModelError(f"{self.model_path} is not a MiniLM export: inputs {sorted(inputs)}, "
                             f"outputs {sorted(outputs)}; expected {list(INPUT_NAMES)} -> {OUTPUT_NAME!r}")
        dim = outputs[OUTPUT_NAME].shape[-1]
        return dim if isinstance(dim, int) else DIM

    # -- embedding ----------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, one row per text, in input order: float32 (len(texts), dim)."""
        if isinstance(texts, (str, bytes)):
            raise TypeError("embed() takes a list of strings, not a single string; wrap it: embed([text])")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"embed() takes strings; texts[{i}] is {type(t).__name__}: {t!r:.60}")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            out[rows] = self._run([encodings[i].ids for i in rows])
        return out

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        input_ids, attention_mask = pad_batch(ids, self._pad_id)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self._session.run([OUTPUT_NAME], feeds)[0]  # (B, dim)

    def __repr__(self) -> str:
        return f"TextEmbedder({self.name}, id={self.model_id[:12]}, dim={self.dim}, threads={self.threads})"


def load_tokenizer(path: str | Path, max_length: int = MAX_LENGTH) -> tuple[Tokenizer, int]:
    """The MiniLM tokenizer with truncation at `max_length` and no padding, and its pad id."""
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception subclasses
        raise ModelError(f"cannot read tokenizer {path}: {exc}") from exc
    pad_id = tok.token_to_id(PAD_TOKEN)
    if pad_id is None:
        raise ModelError(f"tokenizer {path} has no {PAD_TOKEN} token")
    # The shipped tokenizer.json pads every input to a fixed 128; batches are padded by pad_batch.
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return tok, pad_id


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token ids to the longest row: (input_ids, attention_mask), both int64 (B, T)."""
    width = max(len(row) for row in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)  # (B, T)
    attention_mask = np.zeros((len(ids), width), dtype=np.int64)    # (B, T)
    for r, row in enumerate(ids):
        input_ids[r, :len(row)] = row
        attention_mask[r, :len(row)] = 1
    return input_ids, attention_mask


def load_default(kind: str = "f32", manifest_path: Path = MANIFEST_PATH, **kwargs) -> TextEmbedder:
    """The MiniLM embedder recorded in the manifest: `kind` is "f32" or "int8".

    Keyword arguments (threads, max_length, batch_size) go to `TextEmbedder`. Raises ModelError when
    the manifest has no such entry, a file is missing, or the ONNX file no longer matches its id.
    """
    if kind not in KINDS:
        raise ModelError(f"unknown MiniLM kind {kind!r}; expected one of {sorted(KINDS)}")
    entry = get_entry(KINDS[kind], manifest_path)
    root = Path(manifest_path).parent
    tokenizer = entry.extra.get("tokenizer")
    if not tokenizer:
        raise ModelError(f"manifest entry {entry.name} names no tokenizer; {SETUP_HINT}")
    return TextEmbedder(entry.file(root), root / tokenizer, entry=entry, **kwargs)
