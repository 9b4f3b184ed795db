"""The aligner (`node.runtime.alignments.fit_and_register`) against the session Anvil: two market agents
in spaces one rotation apart publish embeddings of K anchor tasks; the map second -> reference is
fitted from their EmbeddingPublished events, written under its id, registered; the fusion node's
resolver over the real registry then loads it, and the fusion agent fuses the second agent's vectors
through it."""

from __future__ import annotations

import numpy as np
import pytest

from agents.base import Action, PeerOutput, TaskInput
from agents.fusion import FusionAgent, TrainedHead
from node.chain.events import AlignmentInfo, TaskSubmitted
from node.protocol.codec import encode_vector
from node.protocol.enums import Arch, Encoding, Modality, Role
from node.protocol.errors import ConfigError, ContractRevert
from node.protocol.payload import example_payload
from node.runtime.alignments import AlignmentResolver, anchor_embeddings, fit_and_register, map_file_name

from chainhelpers import model_id

DIM = 8
K = 12


def _setup(chain):
    owner = chain.contracts(0)
    ref_id, other_id = model_id("aligner-ref"), model_id("aligner-other")
    owner.register_model(ref_id, DIM, Encoding.F32, "market-seed-0")
    owner.register_model(other_id, DIM, Encoding.F32, "market-seed-1")
    ref, other = chain.contracts(1), chain.contracts(3)
    ref.register_agent(Role.MARKET, Modality.SERIES, "http://127.0.0.1:9101", ref_id, DIM)
    other.register_agent(Role.MARKET, Modality.SERIES, "http://127.0.0.1:9103", other_id, DIM)
    return owner, ref, other, ref_id, other_id


def _open(contracts, n: int) -> list[int]:
    deadline = contracts.client.block_timestamp() + 3600
    return [contracts.submit_task(f"anchor {i}".encode(), int(Arch.E_D), deadline, 3).event(TaskSubmitted).task_id
            for i in range(n)]


def test_fit_and_register_from_published_anchors_then_the_fusion_node_uses_the_map(chain, tmp_path) -> None:
    owner, ref, other, ref_id, other_id = _setup(chain)
    rng = np.random.default_rng(7)
    rotation, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    inputs = rng.normal(size=(K + 1, DIM))
    ref_vecs = inputs.astype(np.float32)
    other_vecs = (inputs @ rotation.T + 0.3).astype(np.float32)  # the same inputs, another space
    tasks = _open(owner, K + 1)
    for t, a, b in zip(tasks, ref_vecs, other_vecs, strict=True):
        ref.publish_embedding(t, ref_id, int(Encoding.F32), encode_vector(a, Encoding.F32))
        other.publish_embedding(t, other_id, int(Encoding.F32), encode_vector(b, Encoding.F32))
    anchors, held_out = tasks[:K], tasks[K]

    got_id, got = anchor_embeddings(other, other.client.address, anchors)
    assert got_id == other_id and np.allclose(got, other_vecs[:K])

    lookup = lambda src, dst: owner.alignment(src, dst)  # noqa: E731
    resolver = AlignmentResolver(lookup, tmp_path, retry_s=0)
    assert resolver(other_id, ref_id) is None  # nothing registered yet

    fitted = fit_and_register(owner, reference=ref.client.address, agent=other.client.address, task_ids=anchors,
                              directory=tmp_path)
    assert (fitted.from_model, fitted.to_model, fitted.anchors) == (other_id, ref_id, K)
    assert fitted.cka > 0.99 and fitted.residual < 1e-6
    assert fitted.path == tmp_path / map_file_name(fitted.map_id) and fitted.path.read_bytes() == fitted.map.to_bytes()
    assert owner.alignment(other_id, ref_id) == AlignmentInfo(fitted.map_id, DIM, DIM, owner.client.address)
    # the held-out task maps onto the reference's vector: the map generalises off its anchors
    np.testing.assert_allclose(fitted.map.apply(other_vecs[K]), ref_vecs[K], atol=1e-4)

    assert resolver(other_id, ref_id) == fitted.map
    calls = resolver.lookups
    head_model = type("Head", (), {"run": lambda self, **kw: {"probs": np.array([[0.1, 0.2, 0.7]])}})()
    spaces = ((ref_id, DIM, Encoding.F32), (model_id("s"), DIM, Encoding.F32), (model_id("r"), DIM, Encoding.F32))
    agent = FusionAgent(embeddings_head=TrainedHead("e-d8", head_model, spaces))
    agent.use_alignments(resolver)
    peer = PeerOutput(agent=other.client.address, role=int(Role.MARKET), action=int(Action.BUY), confidence=9000,
                      model_id=other_id, encoding=int(Encoding.F32),
                      vector=encode_vector(other_vecs[K], Encoding.F32))
    for _ in range(3):
        out = agent.run(TaskInput(held_out, int(Arch.E_D), example_payload(1), (peer,)))
        assert out.note == "e-d8 head over 1 embeddings (1 aligned)"
    assert resolver.lookups == calls  # no registry call per task

    with pytest.raises(ContractRevert) as err:  # a pair is registered once
        fit_and_register(owner, reference=ref.client.address, agent=other.client.address, task_ids=anchors,
                         directory=tmp_path)
    assert err.value.error_name == "AlignmentAlreadyRegistered"


def test_the_aligner_refuses_unusable_anchors(chain, tmp_path) -> None:
    owner, ref, other, ref_id, other_id = _setup(chain)
    tasks = _open(owner, 3)
    vec = encode_vector(np.ones(DIM, np.float32), Encoding.F32)
    for t in tasks:
        ref.publish_embedding(t, ref_id, int(Encoding.F32), vec)
    other.publish_embedding(tasks[0], other_id, int(Encoding.F32), vec)
    with pytest.raises(ConfigError, match=r"no embedding for anchor tasks \[.*\]"):
        fit_and_register(owner, reference=ref.client.address, agent=other.client.address, task_ids=tasks,
                         directory=tmp_path)
    with pytest.raises(ConfigError, match="at least 2"):
        fit_and_register(owner, reference=ref.client.address, agent=other.client.address, task_ids=tasks[:1],
                         directory=tmp_path)
    with pytest.raises(ConfigError, match="nothing to align"):
        fit_and_register(owner, reference=ref.client.address, agent=ref.client.address, task_ids=tasks,
                         directory=tmp_path)
    assert owner.alignment(other_id, ref_id).map_id == bytes(32) and not list(tmp_path.iterdir())


def test_chorus_align_fit_writes_and_registers_the_map(chain, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from node.cli.align import _task_ids
    from node.cli.main import app

    assert _task_ids("1,3-5, 9") == [1, 3, 4, 5, 9]
    owner, ref, other, ref_id, other_id = _setup(chain)
    rng = np.random.default_rng(3)
    rotation, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    tasks = _open(owner, K)
    for t, x in zip(tasks, rng.normal(size=(K, DIM)), strict=True):
        ref.publish_embedding(t, ref_id, int(Encoding.F32), encode_vector(x.astype(np.float32), Encoding.F32))
        other.publish_embedding(t, other_id, int(Encoding.F32),
                                encode_vector((x @ rotation).astype(np.float32), Encoding.F32))
    dep = tmp_path / "devnet.json"
    chain.deployment.save(dep)
    maps = tmp_path / "maps"
    args = ["align", "fit", "--reference", ref.client.address, "--agent", other.client.address,
            "--tasks", f"{tasks[0]}-{tasks[-1]}", "--dir", str(maps), "--deployment", str(dep), "--dev-key-index", "0"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    info = owner.alignment(other_id, ref_id)
    assert out["map_id"] == "0x" + info.map_id.hex() and out["anchors"] == K and out["cka"] > 0.99
    assert (maps / info.map_id.hex()).is_file() and out["file"] == info.map_id.hex()
    again = CliRunner().invoke(app, args)  # once per pair
    assert again.exit_code == 1 and "AlignmentAlreadyRegistered" in again.output
    bad = CliRunner().invoke(app, [*args[:6], "--tasks", "x", *args[8:]])
    assert bad.exit_code == 2
