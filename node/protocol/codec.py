"""Embeddings as they travel on chain: the vector codec of the protocol.

A published vector is d numbers in one of four encodings (`Encoding` on chain, names here):
f32 and f16 little-endian, i8 = round(127 x) of x clipped to [-1, 1], binary = sign bits packed MSB
first (ceil(d/8) bytes). `quantize` / `dequantize` give what a fusion head sees of a published vector;
`encode_vector` / `decode_vector` give its bytes.
"""

from __future__ import annotations

import numpy as np

from node.protocol.enums import Encoding

VECTOR_DTYPES = ("f32", "f16", "i8", "binary")
"""Encoding names, in the order of the on-chain `Encoding` values (0..3)."""


def dtype_name(dtype: str | Encoding | int) -> str:
    """The codec's name of an encoding given by name or by its on-chain value."""
    if isinstance(dtype, str):
        if dtype not in VECTOR_DTYPES:
            raise ValueError(f"dtype {dtype!r} not in {VECTOR_DTYPES}")
        return dtype
    return VECTOR_DTYPES[Encoding(dtype)]


def quantize(e: np.ndarray, dtype: str) -> np.ndarray:
    """An embedding in [-1, 1] as it is published: float32, float16, int8 (x127) or bits (uint8 0/1)."""
    e = np.asarray(e, dtype=np.float32)
    if dtype == "f32":
        return e
    if dtype == "f16":
        return e.astype(np.float16)
    if dtype == "i8":
        return np.rint(np.clip(e, -1, 1) * 127).astype(np.int8)
    if dtype == "binary":
        return (e >= 0).astype(np.uint8)
    raise ValueError(f"dtype {dtype!r} not in {VECTOR_DTYPES}")


def dequantize(q: np.ndarray, dtype: str) -> np.ndarray:
    """The float32 vector a fusion head sees for a published one."""
    if dtype in ("f32", "f16"):
        return np.asarray(q).astype(np.float32)
    if dtype == "i8":
        return np.asarray(q, dtype=np.int8).astype(np.float32) / 127.0
    if dtype == "binary":
        return np.asarray(q, dtype=np.float32) * 2.0 - 1.0
    raise ValueError(f"dtype {dtype!r} not in {VECTOR_DTYPES}")


def encode_vector(e: np.ndarray, dtype: str | Encoding) -> bytes:
    """Bytes of one d-dim embedding: 4d (f32 LE), 2d (f16 LE), d (i8) or ceil(d/8) (binary)."""
    dtype = dtype_name(dtype)
    q = quantize(np.asarray(e, dtype=np.float32).reshape(-1), dtype)
    if dtype == "f32":
        return q.astype("<f4").tobytes()
    if dtype == "f16":
        return q.astype("<f2").tobytes()
    if dtype == "i8":
        return q.tobytes()
    return np.packbits(q).tobytes()


def decode_vector(data: bytes, dtype: str | Encoding, dim: int) -> np.ndarray:
    """Inverse of `encode_vector`, dequantised to float32 (dim,)."""
    dtype, data = dtype_name(dtype), bytes(data)
    if dtype == "f32":
        q = np.frombuffer(data, dtype="<f4")
    elif dtype == "f16":
        q = np.frombuffer(data, dtype="<f2")
    elif dtype == "i8":
        q = np.frombuffer(data, dtype=np.int8)
    elif dtype == "binary":
        q = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:dim]
    else:
        raise ValueError(f"dtype {dtype!r} not in {VECTOR_DTYPES}")
    if len(q) != dim:
        raise ValueError(f"{len(data)} bytes do not hold a {dim}-dim {dtype} vector")
    return dequantize(q, dtype)


def vector_nbytes(dim: int, dtype: str | Encoding) -> int:
    """Bytes of a `dim`-dimensional vector in `dtype`."""
    return Encoding(VECTOR_DTYPES.index(dtype_name(dtype))).byte_length(dim)
