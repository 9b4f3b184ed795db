"""The alignment curve (`node.experiment.alignment.alignment_curve`) on hand-made model sets.

The apart market agent is the reference's ONNX graph with its embedding output rotated and shifted
(`x -> x @ R + t`, R orthogonal) and its decision head reading the unrotated vector: the same
decisions, a space one rigid motion away. So Procrustes on enough anchors recovers the reference
E-d task for task, CKA is 1 before and after, while the raw (K = 0) and refused variants differ.
The set's second apart agent (`APART_ARCH_NAME`) is the same graph under another rigid motion, for the
variants' curves; a real one of another architecture is trained in `test_the_other_agent_differs_in_architecture`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from offchain_fixtures import FakeText, handmade_set

from node.experiment.alignment import APART_ARCH_NAME, APART_NAME, METHODS, VARIANTS, variants_record
from node.experiment.modelsets import ModelSet
from node.experiment.offchain import TextCache, score_offchain
from node.experiment.plan import ed_specs
from node.experiment.tasks import synthetic_stream
from node.protocol.enums import Arch

D = 16


def _rotated_market(src: Path, dst: Path, seed: int = 5, name: str = APART_NAME) -> Path:
    """A manifest with an apart agent's entry `name`: `src`'s market graph, embedding rotated and shifted."""
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
    (dst / "onnx").mkdir(parents=True, exist_ok=True)
    path = dst / "onnx" / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    upsert_entries([ManifestEntry(name, f"onnx/{name}.onnx", sha256_file(path), D, "f32", ["features"],
                                  ["embedding", "probs"])], dst / "manifest.json")
    return dst / "manifest.json"


@pytest.fixture(scope="module")
def curve(tmp_path_factory):
    from node.experiment.alignment import alignment_curve

    root = tmp_path_factory.mktemp("align")
    main_dir = handmade_set(root / "main", kind="ed")
    apart = _rotated_market(main_dir, root / "apart")
    _rotated_market(main_dir, root / "apart", seed=7, name=APART_ARCH_NAME)
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


def test_every_variant_has_its_curve_at_every_k(curve):
    out = curve[0]
    ref = out["reference"]
    expected = {f"{label}/{m}" for label, _ in VARIANTS for m in METHODS} - {"same-arch/procrustes"}
    assert set(out["variants"]) == expected
    for name, v in out["variants"].items():
        assert sorted(v["by_k"]) == sorted(out["by_k"]) == [0, 5, 40], name
        assert v["cka_before"] == pytest.approx(1.0, abs=1e-5) and v["residual_before"] > 0.1
        aligned = v["by_k"][40]
        # Both maps recover a rigid motion from 40 anchors (CCA: its full-rank linear prediction).
        assert np.mean(aligned["actions"] == ref) > 0.95, name
        assert aligned["residual"] < 0.05 * v["residual_before"], name
        assert aligned["map_id"].startswith("0x") and v["by_k"][0]["map_id"] is None
    other = out["variants"]["other-arch/procrustes"]
    assert other["model_id"] != out["model_ids"]["apart"]  # another apart agent, another space
    assert np.array_equal(out["variants"]["same-arch/cca"]["by_k"][0]["actions"], out["by_k"][0]["actions"])
    assert out["variants"]["same-arch/cca"]["by_k"][40]["map_id"] != out["by_k"][40]["map_id"]


def test_the_variants_record_is_what_the_report_reads(curve):
    from node.experiment.report.metrics import decode_actions

    out = curve[0]
    rec = variants_record(out)
    assert set(rec) == set(out["variants"])
    for name, v in rec.items():
        assert v["ks"] == [0, 5, 40] and set(v["actions"]) == set(v["by_k"]) == {"0", "5", "40"}
        assert np.array_equal(decode_actions(v["actions"]["40"]), out["variants"][name]["by_k"][40]["actions"])
        assert v["method"] in METHODS and v["by_k"]["40"]["cka"] == out["variants"][name]["by_k"][40]["cka"]
    json.dumps(rec)


def test_without_the_other_architecture_only_the_same_agent_s_cca_curve(tmp_path):
    from node.experiment.alignment import alignment_curve

    main_dir = handmade_set(tmp_path / "main", kind="ed")
    apart = _rotated_market(main_dir, tmp_path / "apart")
    out = alignment_curve(main_dir / "manifest.json", apart, synthetic_stream(40, 3, 0.5),
                          synthetic_stream(10, 11, 0.5).payloads, (0, 5), TextCache(FakeText()))
    assert set(out["variants"]) == {"same-arch/cca"}


def test_the_other_agent_differs_in_architecture(tmp_path):
    """`_train_one` with the main setting and with `other_architecture`'s: the manifests and the ONNX
    graphs record two architectures of the same embedding dim."""
    import onnx
    from onnx import numpy_helper

    from models.data.embed import HashEmbedder
    from models.data.splits import SyntheticConfig, make_splits
    from models.train import SEARCH, Budget
    from node.experiment.alignment import OTHER_HIDDEN_FACTOR, _train_one, other_architecture

    splits = make_splits(SyntheticConfig(n_train=200, n_val=100, n_test=100), 0, HashEmbedder())
    names = list(splits.train.names)
    k = names.index("market")
    hp = dict(SEARCH[0])
    budget = Budget(epochs=1, folds=2, patience=1)
    shapes, archs = {}, {}
    for name, setting in ((APART_NAME, hp), (APART_ARCH_NAME, other_architecture(hp))):
        entry, _, arch = _train_one(name, setting, splits, k, budget, 1000, names, "main", tmp_path)
        assert entry.extra["architecture"] == arch and entry.dim == arch["embed_dim"]
        graph = onnx.load(str(tmp_path / entry.path)).graph
        shapes[name] = sorted(numpy_helper.to_array(t).shape for t in graph.initializer)
        archs[name] = arch
    assert archs[APART_ARCH_NAME]["hidden"] == OTHER_HIDDEN_FACTOR * archs[APART_NAME]["hidden"] == 2 * hp["hidden"]
    assert archs[APART_ARCH_NAME]["embed_dim"] == archs[APART_NAME]["embed_dim"]
    assert shapes[APART_ARCH_NAME] != shapes[APART_NAME]
