"""Names and numbers shared by the MiniLM export (torch) and runtime (no torch) sides.

The tensor names and file names are the contract between `export.py`, which writes the graph, and
`runtime.py`, which feeds it; the manifest records them again per file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

DIM = 384
"""Width of an all-MiniLM-L6-v2 sentence embedding."""
MAX_LENGTH = 128
"""Token window (with [CLS] and [SEP]) the runtime truncates to; the model was trained at 128."""

INPUT_NAMES = ("input_ids", "attention_mask")
"""Graph inputs, int64 (B, T). token_type_ids is all zeros for single sentences and built in the graph."""
OUTPUT_NAME = "embedding"
"""Graph output, float32 (B, 384): the attention-masked mean of the last hidden states, L2-normalized."""

F32_NAME, INT8_NAME = "minilm-f32", "minilm-int8"
F32_FILE, INT8_FILE = "minilm-f32.onnx", "minilm-int8.onnx"
TOKENIZER_FILE = "minilm-tokenizer.json"
KINDS = {"f32": F32_NAME, "int8": INT8_NAME}
"""`load_default(kind)` names -> manifest entry names."""

OPSET = 18
"""The exported graph's opset: the lowest the dynamo exporter writes without converting."""
MIN_COSINE = 0.99
"""Quality target: int8 vs fp32 cosine on every held-out sentence."""


@dataclass(frozen=True)
class QuantRecipe:
    """How `minilm-int8.onnx` is made from `minilm-f32.onnx` (see `models.minilm.quantize`).

    Linear layers: 8-bit weights in blocks of `block_size` along the input axis (MatMulNBits), and
    at `accuracy_level=4` onnxruntime quantizes each activation row to int8 per block at run time and
    multiplies in int8. Per-token, per-block activation scales keep the few huge outlier channels of
    BERT (at [CLS] above all) from flattening every other value, which is what makes per-tensor
    dynamic quantization lose 3-10% cosine; they also make a sentence's vector independent of its
    batch mates. The measurements behind the choice are in `models.minilm.quantize`.
    Embedding tables: int8 per tensor (QOperator Gather + DequantizeLinear). The attention score
    products (activation x activation), softmax, LayerNorm and pooling stay fp32.
    """

    weight_bits: int = 8
    block_size: int = 64
    symmetric: bool = True
    accuracy_level: int = 4
    embeddings: str = "int8-per-tensor"
    """`int8-per-tensor` (quantize_dynamic on Gather tables) or `f32` (leave them)."""

    def as_dict(self) -> dict:
        return {"method": "MatMulNBits", **asdict(self)}


DEFAULT_RECIPE = QuantRecipe()
