"""The alignment curve (`node.experiment.alignment.alignment_curve`) on hand-made model sets.

The apart market agent is the reference's ONNX graph with its embedding output rotated and shifted
(`x -> x @ R + t`, R orthogonal) and its decision head reading the unrotated vector: the same
decisions, a space one rigid motion away. So Procrustes on enough anchors recovers the reference
E-d task for task, CKA is 1 before and after, while the raw (K = 0) and refused variants differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from offchain_fixtures import FakeText, handmade_set

from node.experiment.alignment import APART_NAME
from node.experiment.modelsets import ModelSet
from node.experiment.offchain import TextCache, score_offchain
from node.experiment.plan import ed_specs
from node.experiment.tasks import synthetic_stream
from node.protocol.enums import Arch

D = 16


def _rotated_market(src: Path, dst: Path, seed: int = 5) -> Path:
    """A manifest with the apart agent's entry: `src`'s market graph, embedding rotated and shifted."""
    import onnx
    from onnx import helper, numpy_helper

    from models.manifest import ManifestEntry, sha256_file, upsert_entries

    model = onnx.load(str(src / "onnx" / "market.onnx"))
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    g = model.graph
    for node in g.node:
        node.output[:] = ["emb0" if o == "embedding" else o for o in node.output]
        node.input[:] = ["emb0" if i == "embedding" else i for i in node.input]
    g.initializer.extend([numpy_helper.from_array(q.astype(np.float32), "rot"),
                          numpy_helper.from_array((rng.standard_normal(D) * 0.5).astype(np.float32), "shift")])
    g.node.extend([helper.make_node("MatMul", ["emb0", "rot"], ["emb1"]),
                   helper.make_node("Add", ["emb1", "shift"], ["embedding"])])
    onnx.checker.check_model(model)
    (dst / "onnx").mkdir(parents=True)
    path = dst / "onnx" / "market.onnx"
    path.write_bytes(model.SerializeToString())
    upsert_entries([ManifestEntry(APART_NAME, "onnx/market.onnx", sha256_file(path), D, "f32", ["features"],
                                  ["embedding", "probs"])], dst / "manifest.json")
    return dst / "manifest.json"


@pytest.fixture(scope="module")
def curve(tmp_path_factory):
    from node.experiment.alignment import alignment_curve

    root = tmp_path_factory.mktemp("align")
    main_dir = handmade_set(root / "main", kind="ed")
    apart = _rotated_market(main_dir, root / "apart")
    stream = synthetic_stream(300, 3, 0.5, missing_rate=0.2)
    anchors = synthetic_stream(60, 11, 0.5).payloads
    text = TextCache(FakeText())
    out = alignment_curve(main_dir / "manifest.json", apart, stream, anchors, (0, 5, 40, 100), text)
    return out, main_dir, stream, text


def test_the_reference_is_the_off_chain_e_d(curve):
    out, main_dir, stream, text = curve
    ms = ModelSet(main_dir, json.loads((main_dir / "bench.json").read_text()))
    scored = score_offchain(ms, stream, [Arch.E_D], specs=ed_specs(), text=text)
    assert np.array_equal(out["reference"], scored.actions(Arch.E_D))


def test_procrustes_recovers_a_rigid_motion_and_raw_mixing_does_not(curve):
    out = curve[0]
    ref = out["reference"]
    assert sorted(out["by_k"]) == [0, 5, 40]  # 100 > the usable anchors: left out
    assert out["anchors_usable"] == 60
    aligned = out["by_k"][40]
    assert np.mean(aligned["actions"] == ref) > 0.99
    assert aligned["residual"] < 1e-6
    assert out["residual_before"] > 0.1
    assert np.mean(out["by_k"][0]["actions"] != ref) > 0.02  # raw vectors in the wrong space change decisions
    assert np.mean(out["dropped"] != ref) > 0.02  # so does leaving the market vector out
    # CKA is invariant to the rigid motion: 1 before the map and after it.
    assert out["cka_before"] == pytest.approx(1.0, abs=1e-5)
    assert aligned["cka"] == pytest.approx(1.0, abs=1e-5)
    assert out["by_k"][0]["map_id"] is None and aligned["map_id"].startswith("0x")


def test_the_fusion_node_refuses_without_a_map(curve):
    """`dropped` is E-d with the market vector absent: the fusion node's choice without a registered map."""
    out = curve[0]
    assert out["model_ids"]["reference"] != out["model_ids"]["apart"]
    assert len(out["dropped"]) == out["n"] == 300
