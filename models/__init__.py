"""Benchmark data, model definitions (torch, training time only), ONNX export and runtime loading.

Runtime modules (`models.manifest`, `models.data`, `models.runtime`, `models.minilm.runtime`) never
import torch; everything that does lives behind the `train` extra.
"""
