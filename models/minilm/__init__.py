"""all-MiniLM-L6-v2 as ONNX: export and int8 quantization (training time), and the torch-free runtime.

- `spec`: names shared by both sides (files, manifest names, tensor names, the quantization recipe).
- `export` (torch): `ensure_minilm_artifacts()` builds `minilm-f32.onnx`, `minilm-int8.onnx` and
  `minilm-tokenizer.json` under `models/artifacts/` and records them in the manifest.
- `quantize` (onnx + onnxruntime.quantization, no torch): the int8 recipe and recipe comparisons.
- `runtime` (onnxruntime + tokenizers, never torch): `TextEmbedder`, `load_default()`.
- `bench`: latency of torch eager vs onnxruntime fp32 / int8 (`scripts/bench_embed.py`).
- `heldout` / `calibration`: sentence sets to measure quantization, and to choose it.

Nothing is imported here, so `import models.minilm.runtime` stays light.
"""
