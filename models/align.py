"""Maps between embedding spaces: fit one from anchors, serialize it canonically, compare spaces.

Two encoders trained apart (other seeds, other architectures) publish vectors in different spaces,
which ModelRegistry keeps apart by model id. An `AlignmentMap` takes vectors of one space (the
source) into another (the target). It is fitted on *anchors*: the same K inputs embedded by both
models, `source` (K, d_in) and `target` (K, d_out), row i of each from input i.

- `fit_procrustes(source, target)` fits an affine map `x -> (x - source_mean) @ matrix + target_mean`
  (row vectors, `matrix` of shape (d_in, d_out)) by orthogonal Procrustes after centring, or by CCA
  (`method="cca"`).
- `AlignmentMap.to_bytes()` is its canonical serialization; `map_id` (sha256 of those bytes) is what
  `ModelRegistry.registerAlignment` records on chain, so a reader that fetched the bytes can check
  them. `AlignmentMap.from_bytes()` reads them back and refuses anything malformed.
- `linear_cka(x, y)` measures how alike two spaces are on the same inputs (1 for spaces one
  rotation and scaling apart, near 0 for unrelated ones).

Wire format of `to_bytes()` (version 1), all little-endian:

    offset 0   4 bytes   magic b"CHAL"
           4   uint8     version (1)
           5   uint8     method code (0 procrustes, 1 cca)
           6   uint16    in_dim   (1..MAX_DIM)
           8   uint16    out_dim  (1..MAX_DIM)
          10   float32   matrix, in_dim * out_dim values, row-major (row i: input coordinate i)
               float32   source_mean, in_dim values
               float32   target_mean, out_dim values

Nothing follows; the length is exactly `10 + 4 * (in_dim * out_dim + in_dim + out_dim)`. Every value
is finite and no zero is negative (-0.0 is written as 0.0), so equal maps have equal bytes.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

MAGIC = b"CHAL"
VERSION = 1
MAX_DIM = 4096
"""Largest dimension a map may have on either side (ModelRegistry's dims are uint16; this caps a
hostile header's claim at a 64 MiB matrix)."""

METHODS = ("procrustes", "cca")
"""The fitting methods, in the order of their wire codes."""

_HEADER = struct.Struct("<4sBBHH")
_F32 = np.dtype("<f4")


def _as_f32(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """`value` as a read-only, C-contiguous little-endian float32 array of `shape`, finite, with
    every -0.0 turned into 0.0 (so the serialization of equal maps is equal)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name}: shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)) or (arr.size and np.abs(arr).max() > np.finfo(_F32).max):
        raise ValueError(f"{name}: not every value is finite (in float32)")
    out = np.ascontiguousarray(arr.astype(_F32))
    out = out + _F32.type(0.0)  # -0.0 + 0.0 == +0.0
    out.setflags(write=False)
    return out


def _check_dim(name: str, dim: Any) -> int:
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or not 1 <= int(dim) <= MAX_DIM:
        raise ValueError(f"{name} must be an integer in 1..{MAX_DIM}, got {dim!r}")
    return int(dim)


@dataclass(frozen=True, eq=False)
class AlignmentMap:
    """The affine map `x -> (x - source_mean) @ matrix + target_mean` from a source space of
    `in_dim` into a target space of `out_dim`. Weights are held as float32, exactly as serialized,
    so `apply` uses the very numbers `map_id` names. Equality and hashing go by `to_bytes()`."""

    method: str
    in_dim: int
    out_dim: int
    matrix: np.ndarray
    """(in_dim, out_dim)."""
    source_mean: np.ndarray
    """(in_dim,): subtracted from inputs before the matrix."""
    target_mean: np.ndarray
    """(out_dim,): added after it."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        in_dim = _check_dim("in_dim", self.in_dim)
        out_dim = _check_dim("out_dim", self.out_dim)
        object.__setattr__(self, "in_dim", in_dim)
        object.__setattr__(self, "out_dim", out_dim)
        object.__setattr__(self, "matrix", _as_f32("matrix", self.matrix, (in_dim, out_dim)))
        object.__setattr__(self, "source_mean", _as_f32("source_mean", self.source_mean, (in_dim,)))
        object.__setattr__(self, "target_mean", _as_f32("target_mean", self.target_mean, (out_dim,)))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Map one vector (in_dim,) or a batch (n, in_dim) into the target space (float64, computed
        from the float32 weights)."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.in_dim:
            raise ValueError(f"expected shape ({self.in_dim},) or (n, {self.in_dim}), got {arr.shape}")
        centred = arr - self.source_mean.astype(np.float64)
        return centred @ self.matrix.astype(np.float64) + self.target_mean.astype(np.float64)

    def to_bytes(self) -> bytes:
        """The canonical serialization (see the module docstring): deterministic, so equal maps
        give equal bytes and `map_id` is stable across runs and machines."""
        header = _HEADER.pack(MAGIC, VERSION, METHODS.index(self.method), self.in_dim, self.out_dim)
        return header + self.matrix.tobytes() + self.source_mean.tobytes() + self.target_mean.tobytes()

    @property
    def map_id(self) -> bytes:
        """sha256 of `to_bytes()`, 32 bytes: the id `ModelRegistry.registerAlignment` records."""
        return hashlib.sha256(self.to_bytes()).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> AlignmentMap:
        """Read back `to_bytes()`. Untrusted input: the header's dims are checked against MAX_DIM
        and the buffer's actual length before anything is read; truncated, oversized, trailing,
        non-finite or otherwise malformed input raises ValueError."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"expected bytes, got {type(data).__name__}")
        buf = bytes(data)
        if len(buf) < _HEADER.size:
            raise ValueError(f"alignment map truncated: {len(buf)} bytes, the header alone is {_HEADER.size}")
        magic, version, code, in_dim, out_dim = _HEADER.unpack_from(buf)
        if magic != MAGIC:
            raise ValueError(f"not an alignment map: magic {magic!r}, expected {MAGIC!r}")
        if version != VERSION:
            raise ValueError(f"unsupported alignment map version {version} (this reader knows {VERSION})")
        if code >= len(METHODS):
            raise ValueError(f"unknown method code {code}")
        for name, dim in (("in_dim", in_dim), ("out_dim", out_dim)):
            if not 1 <= dim <= MAX_DIM:
                raise ValueError(f"{name} {dim} outside 1..{MAX_DIM}")
        count = in_dim * out_dim + in_dim + out_dim
        expected = _HEADER.size + 4 * count
        if len(buf) != expected:
            kind = "truncated" if len(buf) < expected else "has trailing bytes"
            raise ValueError(f"alignment map {kind}: {len(buf)} bytes, {in_dim}x{out_dim} needs {expected}")
        values = np.frombuffer(buf, dtype=_F32, count=count, offset=_HEADER.size)
        if not np.all(np.isfinite(values)):
            raise ValueError("alignment map holds a non-finite value")
        if np.any((values == 0) & np.signbit(values)):
            raise ValueError("alignment map holds -0.0 (not canonical)")
        split = in_dim * out_dim
        return cls(method=METHODS[code], in_dim=in_dim, out_dim=out_dim,
                   matrix=values[:split].reshape(in_dim, out_dim),
                   source_mean=values[split:split + in_dim], target_mean=values[split + in_dim:])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AlignmentMap):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.map_id)


def _anchors(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(source, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"source and target must be 2-D (K, d), got {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"source and target must hold the same K anchors, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError(f"at least 2 anchors are needed, got {x.shape[0]}")
    _check_dim("source dimension", x.shape[1])
    _check_dim("target dimension", y.shape[1])
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("anchors must be finite")
    return x, y


def fit_procrustes(source: np.ndarray, target: np.ndarray, method: str = "procrustes", *,
                   scale: bool = False, n_components: int | None = None) -> AlignmentMap:
    """Fit a map from the source space into the target space on K anchors.

    `source` (K, d_in) and `target` (K, d_out): row i of each is anchor i embedded by the source and
    the target model. Both are centred on their anchor means, which the map keeps.

    `method="procrustes"` (default): the W minimising ||(source - mean) W - (target - mean)||_F
    over semi-orthogonal W. With d_in == d_out this is `scipy.linalg.orthogonal_procrustes`, an
    orthogonal matrix (WᵀW = I). With d_in != d_out no padding is used: W = U Vᵀ from the thin
    SVD U S Vᵀ of sourceᵀ target (centred), i.e. of (targetᵀ source)ᵀ, which is the same optimum
    over matrices with orthonormal columns (d_in > d_out, WᵀW = I: a projection onto d_out
    directions) or orthonormal rows (d_in < d_out, W Wᵀ = I: an isometric embedding). Fewer
    anchors than dimensions still give a valid (semi-)orthogonal W; it maps the anchors as well as
    any such W can, and is arbitrary (but still orthonormal) on directions the anchors do not span.
    `scale=True` also fits one global factor s = trace(S) / ||source - mean||², folded into the
    matrix (which is then s times a semi-orthogonal one), for spaces of different norms.

    `method="cca"`: scikit-learn's CCA with `n_components` (default min(K - 1, d_in, d_out))
    canonical pairs; the map is its linear prediction of the target from the source (a low-rank,
    not orthogonal, matrix). It needs more anchors than Procrustes to generalise.
    """
    x, y = _anchors(source, target)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    d_in, d_out = x.shape[1], y.shape[1]
    if method == "procrustes":
        if d_in == d_out:
            from scipy.linalg import orthogonal_procrustes

            w, singular_sum = orthogonal_procrustes(xc, yc)
        else:
            u, s, vt = np.linalg.svd(xc.T @ yc, full_matrices=False)
            w, singular_sum = u @ vt, float(s.sum())
        if scale:
            norm = float(np.sum(xc * xc))
            w = w * (singular_sum / norm if norm > 0 else 1.0)
        return AlignmentMap("procrustes", d_in, d_out, w, mx, my)
    if scale:
        raise ValueError("scale applies to procrustes only (CCA fits its own scaling)")
    return _fit_cca(x, y, mx, my, n_components)


def _fit_cca(x: np.ndarray, y: np.ndarray, mx: np.ndarray, my: np.ndarray,
             n_components: int | None) -> AlignmentMap:
    from sklearn.cross_decomposition import CCA

    k_max = min(x.shape[0] - 1, x.shape[1], y.shape[1])
    k = k_max if n_components is None else int(n_components)
    if not 1 <= k <= k_max:
        raise ValueError(f"n_components must be in 1..{k_max} (K - 1, d_in and d_out bound it), got {k}")
    cca = CCA(n_components=k, max_iter=1000).fit(x, y)
    # predict(x) = (x - x_mean) @ coef_.T + intercept_, with intercept_ the target mean.
    matrix = np.asarray(cca.coef_, dtype=np.float64).T
    return AlignmentMap("cca", x.shape[1], y.shape[1], matrix, mx, np.asarray(cca.intercept_, dtype=np.float64))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al., 2019) of two representations of the same
    n inputs: x (n, p) and y (n, q), row i of each from input i.

    CKA = ||YᵀX||_F² / (||XᵀX||_F ||YᵀY||_F) on column-centred X, Y: in [0, 1], invariant to
    orthogonal transforms and isotropic scaling of either side (so 1 for spaces one rotation and
    scaling apart), near 0 for independent ones (about sqrt(pq)/n for Gaussian noise). Computed
    through the n x n Gram matrices when n is smaller than the dimensions."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"expected (n, p) and (n, q) with the same n, got {a.shape} and {b.shape}")
    if a.shape[0] < 2:
        raise ValueError("CKA needs at least 2 inputs")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("representations must be finite")
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    # Rescale each side first (CKA is scale invariant), so squares neither overflow nor underflow.
    for arr in (a, b):
        peak = np.abs(arr).max()
        if peak == 0:
            raise ValueError("a representation is constant across inputs: CKA is undefined")
        arr /= peak
    if a.shape[0] < max(a.shape[1], b.shape[1]):
        ka, kb = a @ a.T, b @ b.T
        cross, sa, sb = float(np.sum(ka * kb)), float(np.sum(ka * ka)), float(np.sum(kb * kb))
    else:
        cross = float(np.sum((b.T @ a) ** 2))
        sa, sb = float(np.sum((a.T @ a) ** 2)), float(np.sum((b.T @ b) ** 2))
    return float(min(1.0, max(0.0, cross / np.sqrt(sa * sb))))
