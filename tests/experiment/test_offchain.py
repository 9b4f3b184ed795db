"""Tier (a): the off-chain scorer's actions equal, task by task, those of the node pipeline.

The reference (`offchain_fixtures.node_pipeline_actions`) composes the real agents one task at a
time as the nodes do: each node's own agent, `agent.run` per task and architecture, embeddings as
published bytes, the fusion node on its peers merged from those events, TaskBoard's rule. The
fast tests run hand-made ONNX sets and a fake text encoder; the slow one a tiny trained set and
the real MiniLM.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from node.experiment import offchain
from node.experiment.config import ARCH_N_SWEEP, Profile
from node.experiment.jobs import RegretWeights
from node.experiment.modelsets import ModelSet
from node.experiment.offchain import NOT_FINALIZED, TextCache, finalized_actions, score_offchain
from node.experiment.plan import ed_specs, main_specs, quorum, replica_specs
from node.experiment.tasks import TaskStream, synthetic_stream
from node.protocol import payload as pl
from node.protocol.enums import Arch
from node.protocol.errors import ModelError
from offchain_fixtures import FakeText, handmade_set, node_pipeline_actions

PROFILE = Profile("offchain-test", agents=(2, 4, 6), u_replicas=2)
"""N sweep points 2 and 4 (the first agents) and 6 (two replicas: market-1 and sentiment-1)."""


def _edge_payloads() -> list[bytes]:
    """Payloads the synthetic market never makes: a series too short for the model (the momentum
    rule, no embedding), more headlines than the sentiment feature has slots (the prototype rule, no
    embedding; U without sentiment), single modalities, and one that no node can read."""
    short = dict(prices=[100.0, 101.0, 99.5, 102.0, 103.0], volumes=[1.0, 2.0, 1.5, 3.0, 2.0])
    flows = [120.0, 80.0, 5.0, 40.0, 900.0, 1.0, 2.0, 3.0]
    many = ["Regulators sue the exchange", "Tokens slide", "Prices surge as demand soars", "Fees fall"]
    docs = [short, {**short, "headlines": ["Prices surge as demand soars"]}, {"flows": flows},
            {"headlines": ["Regulators sue the exchange", "Tokens slide"]}, {**short, "flows": flows},
            {"headlines": many}, {"flows": flows, "headlines": many}]
    out = [pl.encode(pl.TaskPayload(asset="ETH", **d)) for d in docs]
    return [*out, b'{"schema": "chorus.task/1", "asset": "ETH"}']


def _stream(n: int, seed: int = 3) -> TaskStream:
    base = synthetic_stream(n, seed, 0.5, missing_rate=0.3)
    edge = _edge_payloads()
    labels = np.concatenate([base.labels, np.arange(len(edge)) % 3])
    return TaskStream([*base.payloads, *edge], labels, None, None, "test")


def _fake_text() -> tuple:
    from agents.factory import encoder_identity

    enc = FakeText()
    return enc, (enc, *encoder_identity(enc))


def _quorums(profile: Profile) -> dict[int, int]:
    out = {int(a): quorum(a, profile.u_replicas) for a in Arch}
    out |= {ARCH_N_SWEEP + i: k for i, k in enumerate(profile.agents)}
    return out


def _compare(result, reference: dict[int, list[int]]) -> dict[int, int]:
    return {a: int(np.sum(result.actions(a) != np.array(ref))) for a, ref in reference.items()}


@pytest.fixture(scope="module")
def main_set(tmp_path_factory) -> ModelSet:
    root = handmade_set(tmp_path_factory.mktemp("main"))
    return ModelSet(root, json.loads((root / "bench.json").read_text()))


def test_every_architecture_equals_the_node_pipeline(main_set):
    ms = main_set
    stream = _stream(240)
    enc, text = _fake_text()
    specs = main_specs(ms.uni_best, ms.rules, PROFILE) + replica_specs(PROFILE)
    result = score_offchain(ms, stream, profile=PROFILE, text=TextCache(enc), regret_round_size=16)
    archs = sorted(result.scores)
    assert archs == [*range(9), *(ARCH_N_SWEEP + i for i in range(len(PROFILE.agents)))]
    hedge = RegretWeights(ms.meta["hedge"]["eta"], list(ms.meta["hedge"]["log_w"]))
    reference = node_pipeline_actions(ms.manifest, specs, stream, archs, text=text, uni_best=ms.uni_best,
                                      hedge=hedge, round_size=16, quorums=_quorums(PROFILE))
    assert _compare(result, reference) == dict.fromkeys(archs, 0)
    # The comparison has teeth: actions vary, architectures disagree, the unreadable task is never finalized.
    for a in archs:
        assert len(set(result.actions(a)[:-1].tolist())) >= 2, a
    assert result.actions(Arch.M_FIXED)[-1] == NOT_FINALIZED
    assert not np.array_equal(result.actions(Arch.M_FIXED), result.actions(Arch.M_REGRET))
    assert not np.array_equal(result.actions(Arch.M_LEARNED), result.actions(Arch.E_D))
    assert not np.array_equal(result.actions(Arch.M_LEARNED), result.actions(Arch.M_LEARNED_P))
    assert not np.array_equal(result.actions(Arch.M_FIXED), result.actions(ARCH_N_SWEEP + 2))  # replicas double two votes
    assert np.array_equal(result.actions(Arch.U), result.actions(Arch.U_REP))
    # M-regret's weights moved between rounds, and the correctness is against the labels.
    assert len({tuple(w) for w in result.regret_weights}) > 3
    assert np.array_equal(result.correct(Arch.M_RULES), result.actions(Arch.M_RULES) == stream.labels)


def test_a_different_round_size_changes_m_regret_and_the_reference_notices(main_set):
    """M-regret's rounds matter: the scorer's actions under 16-task rounds are compared with the
    reference under 40-task rounds and must differ somewhere (else the M-regret check is idle)."""
    ms = main_set
    stream = _stream(240)
    enc, text = _fake_text()
    specs = main_specs(ms.uni_best, ms.rules, PROFILE)
    hedge = RegretWeights(ms.meta["hedge"]["eta"], list(ms.meta["hedge"]["log_w"]))
    result = score_offchain(ms, stream, [Arch.M_REGRET], profile=PROFILE, text=TextCache(enc), regret_round_size=16)
    other = node_pipeline_actions(ms.manifest, specs, stream, [Arch.M_REGRET], text=text, uni_best=ms.uni_best,
                                  hedge=hedge, round_size=40)
    assert _compare(result, other)[Arch.M_REGRET] > 0


@pytest.mark.parametrize("dtype", ["i8", "binary"])
def test_ed_sets_decode_their_published_encoding(tmp_path, dtype):
    """An E-d sweep set: agents publish d-dim embeddings as i8 or sign bits; the head reads them
    decoded from those bytes (a head fed the unquantized vectors would decide otherwise)."""
    root = handmade_set(tmp_path / "ed", kind="ed", d=8, dtype=dtype, seed=1)
    ms = ModelSet(root, json.loads((root / "bench.json").read_text()))
    stream = _stream(160, seed=5)
    enc, text = _fake_text()
    result = score_offchain(ms, stream, text=TextCache(enc))
    assert sorted(result.scores) == [Arch.E_D]
    reference = node_pipeline_actions(ms.manifest, ed_specs(), stream, [Arch.E_D], text=text, uni_best=None,
                                      quorums={int(Arch.E_D): 4})
    assert _compare(result, reference) == {int(Arch.E_D): 0}
    assert len(set(result.actions(Arch.E_D).tolist())) >= 2


def test_the_chain_rule():
    t = np.array([[3, 2, 1], [1, 2, 3], [2, 2, 1], [3, 1, 3], [0, 0, 0], [1, 5, 1], [5, 4, 5], [0, 0, 7]])
    assert finalized_actions(t).tolist() == [0, 2, 1, 1, 1, 1, 1, 2]


def test_weights_follow_the_runner():
    w = offchain.chain_weights(Arch.UNI_BEST, "risk")
    assert (w[2], w[0], w[1], w[3]) == (10_000, 0, 0, 0)
    assert offchain.chain_weights(Arch.M_RULES, "risk")[3] == 10_000
    assert offchain.chain_weights(Arch.M_RULES, "risk")[0] == 0
    fixed = offchain.chain_weights(Arch.M_FIXED, "risk")
    assert [fixed[r] for r in range(5)] == [5000, 3000, 2000, 0, 0]
    assert offchain.chain_weights(Arch.U_REP, None)[4] == 10_000


def test_a_changed_model_file_is_refused(tmp_path):
    root = handmade_set(tmp_path / "set")
    meta = json.loads((root / "bench.json").read_text())
    stream = _stream(4)
    enc, _ = _fake_text()
    path = root / "onnx" / "risk.onnx"
    blob = path.read_bytes()
    path.write_bytes(blob + b"\0")
    with pytest.raises(ModelError, match="risk.*manifest entry"):
        score_offchain(ModelSet(root, meta), stream, text=TextCache(enc))
    path.write_bytes(blob)
    meta["files"]["u"]["model_id"] = "0x" + "ab" * 32  # what the set recorded (and the nodes registered)
    with pytest.raises(ModelError, match="'u'.*recorded model id"):
        score_offchain(ModelSet(root, meta), stream, text=TextCache(enc))


def test_a_manifest_path_reads_the_sets_bench_json(main_set, tmp_path):
    enc, _ = _fake_text()
    stream = _stream(20)
    by_set = score_offchain(main_set, stream, [Arch.UNI_BEST, Arch.M_RULES], text=TextCache(enc))
    by_path = score_offchain(main_set.manifest, stream, [Arch.UNI_BEST, Arch.M_RULES], text=TextCache(enc))
    assert all(np.array_equal(by_set.actions(a), by_path.actions(a)) for a in (Arch.UNI_BEST, Arch.M_RULES))
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("manifest.json", "onnx"):
        (bare / f).symlink_to(main_set.directory / f)
    with pytest.raises(ValueError, match="Uni-best"):
        score_offchain(bare, stream, text=TextCache(enc))
    given = score_offchain(bare, stream, [Arch.UNI_BEST, Arch.M_RULES], uni_best=main_set.uni_best,
                           rules=main_set.rules, text=TextCache(enc))
    assert np.array_equal(given.actions(Arch.M_RULES), by_set.actions(Arch.M_RULES))


def test_honest_nodes_only(main_set):
    enc, _ = _fake_text()
    specs = [s.with_mode("byzantine") if s.name == "market" else s
             for s in main_specs(main_set.uni_best, main_set.rules, PROFILE)]
    with pytest.raises(ValueError, match="byzantine"):
        score_offchain(main_set, _stream(4), specs=specs, text=TextCache(enc))


def test_text_cache_gives_the_encoders_rows(tmp_path, monkeypatch):
    """MiniLM through the cache equals MiniLM called as the agents call it, bit for bit, on the
    headline lists of real tasks (sentiment's runs of 32 rows and U's of 16)."""
    from models.minilm.runtime import load_default

    real = load_default("f32", threads=1)
    cache = TextCache(real)
    calls = [list(pl.decode(raw).headlines) for raw in synthetic_stream(30, 11, 0.5).payloads]
    # Two lists that U's runs of 16 cut otherwise than sentiment's 32: a narrower first run, a row alone.
    calls = [c for c in calls if c] + [["a"] * 17 + ["b c d e f g h"], ["q r"] * 16 + ["s t u v w x y z"]]
    cache.prefill(calls, 32)
    before = cache.stats["rows_computed"]
    u = cache.view(16)
    real16 = load_default("f32", threads=1, batch_size=16)
    for c in calls:
        assert np.array_equal(cache.view(32).embed(c), real.embed(c))
        assert np.array_equal(u.embed(c), real16.embed(c))
    assert cache.stats["rows_computed"] > before  # U's runs of 16 split the long lists otherwise
    # Saved and loaded under the same fingerprint, the rows are the same; under another, ignored.
    cache.save(tmp_path / "text.npz")
    again = TextCache(real)
    assert again.load(tmp_path / "text.npz") == len(cache) > 0
    assert all(np.array_equal(again.view(32).embed(c), real.embed(c)) for c in calls[:5])
    monkeypatch.setattr(TextCache, "fingerprint", lambda self: "another machine")
    assert TextCache(real).load(tmp_path / "text.npz") == 0


@pytest.mark.slow
def test_a_trained_set_with_minilm_equals_the_node_pipeline(tmp_path):
    """A tiny trained main set (the bench's own training) and the real MiniLM, every architecture
    of the main table and the N sweep's first points, a few hundred tasks."""
    from node.experiment.config import TINY
    from node.experiment.modelsets import ensure_main_set

    profile = replace(TINY, agents=(2, 4))
    ms = ensure_main_set("tiny", 0, 0.5, 200, TINY.train, root=tmp_path)
    stream = _stream(220, seed=0)
    result = score_offchain(ms, stream, profile=profile, text=TextCache.minilm(), regret_round_size=24)
    archs = sorted(result.scores)
    specs = main_specs(ms.uni_best, ms.rules, profile)
    hedge = RegretWeights(ms.meta["hedge"]["eta"], list(ms.meta["hedge"]["log_w"]))
    reference = node_pipeline_actions(ms.manifest, specs, stream, archs, text=None, uni_best=ms.uni_best,
                                      hedge=hedge, round_size=24, quorums=_quorums(profile))
    assert _compare(result, reference) == dict.fromkeys(archs, 0)
    assert result.model_ids["minilm-f32"].startswith("0x") and result.model_ids["market"] == ms.model_id("market")


@pytest.mark.slow
def test_a_trained_binary_ed_set_equals_the_node_pipeline(tmp_path):
    """An E-d sweep set trained by the bench (8-d agents published as sign bits) and MiniLM."""
    from node.experiment.config import TINY
    from node.experiment.modelsets import ensure_ed_set

    ms = ensure_ed_set("tiny", 0, 0.5, 100, TINY.train, 8, "binary", root=tmp_path)
    stream = _stream(150, seed=2)
    result = score_offchain(ms, stream, text=TextCache.minilm())
    reference = node_pipeline_actions(ms.manifest, ed_specs(), stream, [Arch.E_D], text=None, uni_best=None,
                                      quorums={int(Arch.E_D): 4})
    assert _compare(result, reference) == {int(Arch.E_D): 0}
    assert len(set(result.actions(Arch.E_D).tolist())) >= 2


def test_the_same_set_and_tasks_score_the_same_actions_twice(main_set):
    """The measurement tier is a function of the model files and the tasks: two scorings with
    caches built from nothing give the same actions for every architecture, byte for byte."""
    stream = _stream(120)
    first = score_offchain(main_set, stream, profile=PROFILE, text=TextCache(_fake_text()[0]), regret_round_size=16)
    again = score_offchain(main_set, stream, profile=PROFILE, text=TextCache(_fake_text()[0]), regret_round_size=16)
    assert sorted(first.scores) == sorted(again.scores)
    for a in first.scores:
        assert first.actions(a).tobytes() == again.actions(a).tobytes(), a
    assert first.regret_weights.tobytes() == again.regret_weights.tobytes()
