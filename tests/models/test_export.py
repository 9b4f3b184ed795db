"""ONNX export: parity with torch (stated tolerance), int8 U accuracy, manifest, runtime validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.data.embed import HashEmbedder
from models.data.features import FEATURES_VERSION, HEADLINE_SLOTS, flow_features, market_features
from models.data.splits import SyntheticConfig
from models.data.synthetic import generate, to_payload
from models.export import INT8_MAX_ACC_LOSS, PARITY_ATOL, export_all, graphs_for
from models.fusion import decision
from models.manifest import load_manifest, sha256_file
from models.runtime import OnnxModel
from models.train import CHECKPOINT_DIR, Budget, load_checkpoint, load_eval_batch, train_deployables
from node.protocol.errors import ModelError

DEPLOYED = ("market", "sentiment", "risk", "m-learned", "m-learned-dec", "e-d16", "u", "u-int8")
TOL = 1e-4  # the stated parity tolerance: max |onnxruntime - torch| on every output element
assert TOL == PARITY_ATOL


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    cfg = SyntheticConfig(n_train=1500, n_val=400, n_test=800, alpha=0.5)
    train_deployables(cfg, 0, Budget(epochs=8, folds=2, patience=3), out_dir=root / "checkpoints",
                      embedder=HashEmbedder())
    reports = export_all(root / "checkpoints", root / "onnx", root / "manifest.json")
    return root, reports


def _torch_vs_onnx(ckpt_dir, manifest):
    models = {p.stem: load_checkpoint(p) for p in sorted(ckpt_dir.glob("*.pt"))}
    batch = load_eval_batch(ckpt_dir / "eval.npz")
    for g in graphs_for(models, batch):
        with torch.no_grad():
            ref = g.module(*[torch.from_numpy(v) for v in g.inputs.values()])
        ref = dict(zip(g.outputs, ref if isinstance(ref, tuple) else (ref,)))
        got = OnnxModel(g.name, manifest).run(**g.inputs)
        yield g.name, max(float(np.max(np.abs(ref[k].numpy() - got[k]))) for k in g.outputs)


def test_manifest_entries(built):
    root, reports = built
    entries = load_manifest(root / "manifest.json")
    assert set(entries) == {"market", "sentiment", "risk", "m-learned", "m-learned-dec", "e-d16", "u", "u-int8"}
    for e in entries.values():
        assert sha256_file(root / e.path) == e.sha256
    assert entries["market"].inputs == ["features"] and entries["market"].outputs == ["embedding", "probs"]
    assert entries["market"].dim == 16 and entries["market"].dtype == "f32"
    assert entries["u"].inputs == ["market", "sentiment", "risk", "mask"]
    assert entries["u"].outputs == ["probs", "embedding"]
    assert entries["e-d16"].inputs == ["embeddings", "mask"] and entries["m-learned"].inputs == ["scores", "mask"]
    json.dumps([e.extra for e in entries.values()])  # the manifest stays plain JSON


def test_every_exported_model_matches_torch(built):
    root, _ = built
    seen = dict(_torch_vs_onnx(root / "checkpoints", root / "manifest.json"))
    assert set(seen) == {"market", "sentiment", "risk", "m-learned", "m-learned-dec", "e-d16", "u"}
    for name, diff in seen.items():
        assert diff <= TOL, f"{name}: |onnxruntime - torch| = {diff:.2e}"


def test_u_splits_the_headline_slots_inside_the_graph(built):
    """U is trained with one token per headline; the exported graph takes the same (B, 1152)
    sentiment input and computes which slots are present itself, as torch does."""
    root, _ = built
    model, _ = load_checkpoint(root / "checkpoints" / "u.pt")
    assert model.cfg.token_slots == (1, HEADLINE_SLOTS, 1)
    entries = load_manifest(root / "manifest.json")
    assert {e.extra["features_version"] for e in entries.values() if e.name in DEPLOYED} == {FEATURES_VERSION}
    batch = load_eval_batch(root / "checkpoints" / "eval.npz")
    inputs = {k: batch.x[k][:64].copy() for k in batch.names} | {"mask": batch.mask[:64].copy()}
    inputs["sentiment"][:, 2 * 384:] = 0.0  # slot 2 absent everywhere
    inputs["sentiment"][:16, 384:] = 0.0  # slot 1 too on 16 rows
    inputs["mask"][:4, 1] = 1.0
    inputs["sentiment"][:4] = 0.0  # a present modality with no headline slot present: no sentiment token at all
    with torch.no_grad():
        ref = torch.softmax(model(*[torch.from_numpy(v) for v in inputs.values()])[1], 1).numpy()
    got = OnnxModel("u", root / "manifest.json").run(**inputs)["probs"]
    assert float(np.max(np.abs(ref - got))) <= TOL


def test_sentiment_agent_splits_the_headline_slots_inside_the_graph(built):
    """The sentiment agent reads its headline slots as U does (one shared encoder, slot positions,
    pooled over the present slots); its graph keeps the (B, 1152) input and computes presence
    itself: rows with absent slots, or none present, match torch."""
    root, _ = built
    model, _ = load_checkpoint(root / "checkpoints" / "sentiment.pt")
    assert model.cfg.slots == HEADLINE_SLOTS and model.cfg.in_dim == HEADLINE_SLOTS * 384
    market, _ = load_checkpoint(root / "checkpoints" / "market.pt")
    assert market.cfg.slots == 1
    batch = load_eval_batch(root / "checkpoints" / "eval.npz")
    x = batch.x["sentiment"][:64].copy()
    x[:, 2 * 384:] = 0.0
    x[:16, 384:] = 0.0
    x[:4] = 0.0
    with torch.no_grad():
        e, logits = model(torch.from_numpy(x))
    got = OnnxModel("sentiment", root / "manifest.json").run(features=x)
    assert float(np.max(np.abs(e.numpy() - got["embedding"]))) <= TOL
    assert float(np.max(np.abs(torch.softmax(logits, 1).numpy() - got["probs"]))) <= TOL


def test_int8_u_loses_at_most_one_point(built):
    root, _ = built
    batch = load_eval_batch(root / "checkpoints" / "eval.npz")
    inputs = {k: batch.x[k] for k in batch.names} | {"mask": batch.mask}
    acc = {n: np.mean(OnnxModel(n, root / "manifest.json").run(**inputs)["probs"].argmax(1) == batch.y)
           for n in ("u", "u-int8")}
    assert acc["u"] - acc["u-int8"] <= INT8_MAX_ACC_LOSS
    assert (root / "onnx" / "u-int8.onnx").stat().st_size < 0.6 * (root / "onnx" / "u.onnx").stat().st_size


def test_agent_runs_from_a_task_payload(built):
    """What the market and risk agents do at run time: payload -> numpy features -> ONNX -> decision."""
    root, _ = built
    p = json.loads(json.dumps(to_payload(generate(3, 42, alpha=0.5)[0])))
    market = OnnxModel("market", root / "manifest.json")
    out = market.run(features=market_features(p["prices"], p["volumes"])[None, :])
    assert out["embedding"].shape == (1, 16) and out["probs"].shape == (1, 3)
    action, conf = decision(out["probs"][0])
    assert 0 <= action <= 2 and 0 <= conf <= 10000
    model, _ = load_checkpoint(root / "checkpoints" / "risk.pt")
    feats = flow_features(p["flows"])[None, :]
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(feats))[1], 1).numpy()
    np.testing.assert_allclose(OnnxModel("risk", root / "manifest.json").run(features=feats)["probs"], ref, atol=TOL)


def test_runtime_rejects_bad_inputs(built):
    root, _ = built
    m = OnnxModel("u", root / "manifest.json")
    ok = {"market": np.zeros((2, 26)), "sentiment": np.zeros((2, 1152)), "risk": np.zeros((2, 10)), "mask": np.ones((2, 3))}
    assert m.run(**ok)["probs"].shape == (2, 3)
    bad_cases = [
        ({k: v for k, v in ok.items() if k != "mask"}, "missing"),
        (ok | {"extra": np.zeros((2, 1))}, "unknown"),
        (ok | {"market": np.zeros((2, 25))}, "market"),
        (ok | {"risk": np.zeros(10)}, "risk"),
        (ok | {"mask": np.ones((3, 3))}, "batch"),
        (ok | {"sentiment": np.full((2, 1152), np.nan)}, "NaN"),
    ]
    for inputs, word in bad_cases:
        with pytest.raises(ModelError, match=word):
            m.run(**inputs)
    with pytest.raises(ModelError, match="unknown model"):
        OnnxModel("nope", root / "manifest.json")


def test_runtime_refuses_a_file_that_does_not_match_its_model_id(built, tmp_path):
    root, _ = built
    manifest = json.loads((root / "manifest.json").read_text())
    (tmp_path / "onnx").mkdir()
    for e in manifest["models"]:
        (tmp_path / e["path"]).write_bytes((root / e["path"]).read_bytes())
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert OnnxModel("risk", tmp_path / "manifest.json").model_id == bytes.fromhex(
        next(e["sha256"] for e in manifest["models"] if e["name"] == "risk"))
    with open(tmp_path / "onnx" / "risk.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="does not match its model id"):
        OnnxModel("risk", tmp_path / "manifest.json")


@pytest.mark.skipif(not (CHECKPOINT_DIR / "eval.npz").exists() or not load_manifest().get("u"),
                    reason="models not built (run `chorus train --quick && chorus export`)")
def test_built_artifacts_match_torch():
    """The artifacts set-up built (models/artifacts) obey the same tolerance."""
    for name, diff in _torch_vs_onnx(CHECKPOINT_DIR, CHECKPOINT_DIR.parent / "manifest.json"):
        assert diff <= TOL, (f"{name}: |onnxruntime - torch| = {diff:.2e}; if the checkpoints were retrained, "
                             "the ONNX files are stale: run `chorus export`")
