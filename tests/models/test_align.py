"""Alignment maps between embedding spaces: `models.align` (fit, apply, serialize, CKA)."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.align import MAX_DIM, AlignmentMap, fit_procrustes, linear_cka


def _rotation(d: int, seed: int) -> np.ndarray:
    """A random orthogonal d x d matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _fixed_map() -> AlignmentMap:
    """A map built from exact numbers (no fitting), so its bytes do not depend on LAPACK."""
    matrix = (np.arange(12, dtype=np.float64).reshape(3, 4) - 5.5) / 8
    return AlignmentMap("procrustes", 3, 4, matrix, [0.5, -1.0, 2.0], [0.0, 0.25, -0.75, 1.0])


# -- fitting ---------------------------------------------------------------------------------


def test_a_known_rotation_is_recovered_from_enough_anchors() -> None:
    d, k = 32, 96
    rng = np.random.default_rng(0)
    rot = _rotation(d, 1)
    source = rng.normal(size=(k, d))
    target = source @ rot + 3.0
    fitted = fit_procrustes(source, target)
    assert (fitted.method, fitted.in_dim, fitted.out_dim) == ("procrustes", d, d)
    assert np.abs(fitted.matrix - rot).max() < 1e-5
    fresh = rng.normal(size=(50, d))
    assert np.abs(fitted.apply(fresh) - (fresh @ rot + 3.0)).max() < 1e-5
    back = fit_procrustes(target, source)  # and the rotated copy maps back
    assert np.abs(back.apply(fresh @ rot + 3.0) - fresh).max() < 1e-5


def test_fewer_anchors_than_dims_still_give_an_orthogonal_map() -> None:
    d, k = 24, 6
    rng = np.random.default_rng(2)
    rot = _rotation(d, 3)
    source = rng.normal(size=(k, d))
    fitted = fit_procrustes(source, source @ rot)
    w = fitted.matrix.astype(np.float64)
    assert np.abs(w.T @ w - np.eye(d)).max() < 1e-5
    assert np.abs(fitted.apply(source) - source @ rot).max() < 1e-5  # the anchors themselves fit


def test_unequal_dims_give_a_semi_orthogonal_map() -> None:
    rng = np.random.default_rng(4)
    embed = _rotation(10, 5)[:6]  # 6 x 10, orthonormal rows: 6-d space isometrically in 10-d
    small = rng.normal(size=(40, 6))
    up = fit_procrustes(small, small @ embed)
    assert (up.in_dim, up.out_dim) == (6, 10)
    assert np.abs(up.matrix @ up.matrix.T - np.eye(6)).max() < 1e-5
    assert np.abs(up.apply(small) - small @ embed).max() < 1e-5
    down = fit_procrustes(rng.normal(size=(40, 10)), rng.normal(size=(40, 6)))
    assert np.abs(down.matrix.T @ down.matrix - np.eye(6)).max() < 1e-5


def test_scale_folds_one_global_factor_into_the_matrix() -> None:
    rng = np.random.default_rng(6)
    rot = _rotation(8, 7)
    source = rng.normal(size=(30, 8))
    fitted = fit_procrustes(source, 2.5 * source @ rot - 1, scale=True)
    assert np.abs(fitted.matrix - 2.5 * rot).max() < 1e-5
    assert np.abs(fit_procrustes(source, 2.5 * source @ rot).matrix - rot).max() < 1e-5


def test_cca_is_the_alternative_method() -> None:
    rng = np.random.default_rng(8)
    rot = _rotation(8, 9)
    source = rng.normal(size=(300, 8))
    fitted = fit_procrustes(source, source @ rot + 1.0, method="cca")
    assert (fitted.method, fitted.in_dim, fitted.out_dim) == ("cca", 8, 8)
    fresh = rng.normal(size=(100, 8))
    err = np.linalg.norm(fitted.apply(fresh) - (fresh @ rot + 1.0)) / np.linalg.norm(fresh @ rot)
    assert err < 0.15
    assert AlignmentMap.from_bytes(fitted.to_bytes()) == fitted
    with pytest.raises(ValueError, match="n_components"):
        fit_procrustes(source, source, method="cca", n_components=9)
    with pytest.raises(ValueError, match="scale"):
        fit_procrustes(source, source, method="cca", scale=True)


@pytest.mark.parametrize(("source", "target", "match"), [
    (np.zeros((5, 3)), np.zeros((4, 3)), "same K"),
    (np.zeros(5), np.zeros((5, 3)), "2-D"),
    (np.zeros((1, 3)), np.zeros((1, 3)), "at least 2"),
    (np.full((4, 3), np.nan), np.zeros((4, 3)), "finite"),
    (np.zeros((2, MAX_DIM + 1)), np.zeros((2, 3)), "source dimension"),
])
def test_bad_anchors_are_refused(source, target, match) -> None:
    with pytest.raises(ValueError, match=match):
        fit_procrustes(source, target)


def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        fit_procrustes(np.eye(3), np.eye(3), method="magic")


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 12), extra=st.integers(0, 20), seed=st.integers(0, 2**32 - 1))
def test_any_rotation_is_recovered_from_at_least_d_plus_1_anchors(d: int, extra: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rot = _rotation(d, seed)
    source = rng.normal(size=(d + 1 + extra, d))
    fitted = fit_procrustes(source, source @ rot)
    assert np.abs(fitted.apply(source) - source @ rot).max() < 1e-4
    assert np.abs(fitted.matrix.T @ fitted.matrix - np.eye(d)).max() < 1e-5


# -- applying --------------------------------------------------------------------------------


def test_apply_takes_a_vector_or_a_batch_of_the_input_dim() -> None:
    m = _fixed_map()
    x = np.array([1.0, 2.0, 3.0])
    assert m.apply(x).shape == (4,)
    assert np.allclose(m.apply(x[None]), m.apply(x)[None])
    assert np.allclose(m.apply(x), (x - m.source_mean) @ m.matrix + m.target_mean)
    for bad in (np.zeros(4), np.zeros((2, 2)), np.zeros((1, 1, 3))):
        with pytest.raises(ValueError, match="shape"):
            m.apply(bad)


# -- serialization ---------------------------------------------------------------------------


def test_to_bytes_round_trips_and_the_map_id_is_its_sha256() -> None:
    m = _fixed_map()
    data = m.to_bytes()
    assert len(data) == 10 + 4 * (3 * 4 + 3 + 4)
    assert data[:4] == b"CHAL" and struct.unpack_from("<BBHH", data, 4) == (1, 0, 3, 4)
    back = AlignmentMap.from_bytes(data)
    assert back == m and back.to_bytes() == data
    assert m.map_id == hashlib.sha256(data).digest() and len(m.map_id) == 32
    assert hash(back) == hash(m)


GOLDEN_MAP_ID = "3f96fa0d67b9dd4fcc2b590f89f8599922ff0a4de11a65ab8d51c1eacc5d3dfc"


def test_the_map_id_is_stable_across_runs() -> None:
    # Fixed by the wire format: a change here is a change of every registered map id.
    assert _fixed_map().map_id.hex() == GOLDEN_MAP_ID


def test_any_change_of_a_weight_changes_the_map_id() -> None:
    m = _fixed_map()
    ids = {m.map_id}
    for field in ("matrix", "source_mean", "target_mean"):
        arr = getattr(m, field)
        for i in range(arr.size):
            changed = arr.astype(np.float64).ravel()
            changed[i] = np.nextafter(np.float32(changed[i]), np.float32(np.inf))
            kwargs = {f: getattr(m, f) for f in ("matrix", "source_mean", "target_mean")}
            kwargs[field] = changed.reshape(arr.shape)
            ids.add(AlignmentMap(m.method, m.in_dim, m.out_dim, **kwargs).map_id)
    cca = AlignmentMap("cca", 3, 4, m.matrix, m.source_mean, m.target_mean)
    ids.add(cca.map_id)
    assert len(ids) == 1 + 3 * 4 + 3 + 4 + 1


def test_weights_are_held_as_the_float32_they_serialize_to() -> None:
    m = AlignmentMap("procrustes", 1, 2, [[0.1, -0.0]], [1 / 3], [0.0, 2.0])
    assert m.matrix.dtype == np.float32 and not m.matrix.flags.writeable
    assert not np.signbit(m.matrix[0, 1])  # -0.0 written as 0.0
    assert m == AlignmentMap("procrustes", 1, 2, [[np.float32(0.1), 0.0]], [np.float32(1 / 3)], [0, 2])
    with pytest.raises(ValueError, match="finite"):
        AlignmentMap("procrustes", 1, 1, [[1e39]], [0.0], [0.0])  # inf in float32
    with pytest.raises(ValueError, match="shape"):
        AlignmentMap("procrustes", 2, 2, np.eye(3), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="in_dim"):
        AlignmentMap("procrustes", 0, 2, np.zeros((0, 2)), np.zeros(0), np.zeros(2))
    with pytest.raises(ValueError, match="method"):
        AlignmentMap("svd", 1, 1, [[1.0]], [0.0], [0.0])


def _header(version: int = 1, code: int = 0, in_dim: int = 3, out_dim: int = 4, magic: bytes = b"CHAL") -> bytes:
    return struct.pack("<4sBBHH", magic, version, code, in_dim, out_dim)


def _malformed() -> list[tuple[str, bytes, str]]:
    good = _fixed_map().to_bytes()
    body = good[10:]
    nan = struct.pack("<f", float("nan"))
    return [
        ("empty", b"", "truncated"),
        ("short header", good[:9], "truncated"),
        ("header only", good[:10], "truncated"),
        ("one byte short", good[:-1], "truncated"),
        ("trailing byte", good + b"\0", "trailing"),
        ("bad magic", _header(magic=b"ONNX") + body, "magic"),
        ("bad version", _header(version=2) + body, "version"),
        ("unknown method", _header(code=7) + body, "method code"),
        ("zero in_dim", _header(in_dim=0) + body, "in_dim"),
        ("huge out_dim", _header(out_dim=65535) + body, "out_dim"),
        ("dims beyond the buffer", _header(in_dim=4096, out_dim=4096) + body, "truncated"),
        ("nan weight", good[:10] + nan + good[14:], "non-finite"),
        ("negative zero", good[:10] + struct.pack("<f", -0.0) + good[14:], "-0.0"),
    ]


@pytest.mark.parametrize(("what", "data", "match"), _malformed(), ids=[m[0] for m in _malformed()])
def test_malformed_bytes_are_refused(what: str, data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AlignmentMap.from_bytes(data)


def test_from_bytes_wants_bytes() -> None:
    with pytest.raises(ValueError, match="bytes"):
        AlignmentMap.from_bytes("CHAL")  # type: ignore[arg-type]
    assert AlignmentMap.from_bytes(bytearray(_fixed_map().to_bytes())) == _fixed_map()


_finite32 = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@st.composite
def _maps(draw: st.DrawFn) -> AlignmentMap:
    d_in, d_out = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    values = draw(st.lists(_finite32, min_size=d_in * d_out + d_in + d_out, max_size=d_in * d_out + d_in + d_out))
    v = np.array(values)
    return AlignmentMap(draw(st.sampled_from(["procrustes", "cca"])), d_in, d_out, v[:d_in * d_out].reshape(d_in, d_out),
                        v[d_in * d_out:d_in * d_out + d_in], v[d_in * d_out + d_in:])


@given(m=_maps())
def test_every_map_round_trips_byte_for_byte(m: AlignmentMap) -> None:
    data = m.to_bytes()
    back = AlignmentMap.from_bytes(data)
    assert back.to_bytes() == data and back.map_id == m.map_id
    assert np.array_equal(back.matrix, m.matrix) and back.method == m.method


@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_either_parse_canonically_or_raise_value_error(data: bytes) -> None:
    try:
        m = AlignmentMap.from_bytes(data)
    except ValueError:
        return
    assert m.to_bytes() == data


@given(m=_maps(), cut=st.integers(0, 10_000))
def test_every_truncation_is_refused(m: AlignmentMap, cut: int) -> None:
    data = m.to_bytes()
    with pytest.raises(ValueError):
        AlignmentMap.from_bytes(data[: cut % len(data)])


# -- CKA -------------------------------------------------------------------------------------


def test_cka_is_one_for_a_rotation_and_scaling_of_the_same_space() -> None:
    x = np.random.default_rng(10).normal(size=(200, 16))
    assert linear_cka(x, 3.7 * x @ _rotation(16, 11) - 2.0) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x[:10], 0.5 * x[:10] @ _rotation(16, 12)) == pytest.approx(1.0, abs=1e-9)  # n < d


def test_cka_is_near_zero_for_independent_random_spaces() -> None:
    rng = np.random.default_rng(13)
    assert linear_cka(rng.normal(size=(2000, 8)), rng.normal(size=(2000, 12))) < 0.05


def test_cka_refuses_what_it_cannot_compare() -> None:
    with pytest.raises(ValueError, match="same n"):
        linear_cka(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="constant"):
        linear_cka(np.ones((5, 2)), np.random.default_rng(0).normal(size=(5, 2)))
    with pytest.raises(ValueError, match="finite"):
        linear_cka(np.full((3, 2), np.inf), np.zeros((3, 2)))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 40), p=st.integers(1, 10), q=st.integers(1, 10), seed=st.integers(0, 2**32 - 1),
       s=st.floats(1e-3, 1e3))
def test_cka_is_in_unit_interval_symmetric_and_invariant(n: int, p: int, q: int, seed: int, s: float) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, p)), rng.normal(size=(n, q))
    value = linear_cka(x, y)
    assert 0.0 <= value <= 1.0
    assert linear_cka(y, x) == pytest.approx(value, abs=1e-9)
    assert linear_cka(s * x @ _rotation(p, seed) + 5.0, y) == pytest.approx(value, abs=1e-7)
