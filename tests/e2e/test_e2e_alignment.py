"""Alignment end to end, in-process against the session Anvil: two market nodes whose encoders were
trained apart (`models.train.train_agent`, seeds 0 and 1: two model ids) publish embeddings of K
anchor tasks; a fusion node (NodeRuntime over the real chain, its E-d head expecting the first
encoder's space) refuses the second's vectors while no map is registered (2 embeddings used, the
WARNING logged); the aligner fits the Procrustes map second -> first from the anchors' events,
writes it to the fusion node's alignments directory and registers it; the fusion node then fuses
the second agent's vectors through it (3 embeddings used, 1 aligned), asking the registry once.

What is not real here: the nodes run in this process (stepped in turn, not as `chorus node run`
processes), the encoders run through torch rather than an exported ONNX file, the sentiment and risk
peers are the test publishing through the facade, and the E-d head is a fixed linear softmax: it
shows which vectors reach the head, not accuracy."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit import run_until

from agents.base import Action
from agents.fusion import FusionAgent, TrainedHead
from agents.market import MarketAgent
from agents.onnx import AgentModel
from node.chain.events import AlignmentInfo, TaskSubmitted
from node.chain.nodechain import NodeChain
from node.protocol import payload as pl
from node.protocol.codec import decode_vector, encode_vector
from node.protocol.enums import Arch, Encoding, Modality, Role
from node.runtime.alignments import fit_and_register
from node.runtime.node import NodeRuntime
from node.runtime.settings import NodeSettings
from node.runtime.store import Store

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # trains two tiny encoders; no node processes

REF_KEY, OTHER_KEY, SENTIMENT_KEY, RISK_KEY, FUSION_KEY = 1, 2, 3, 4, 5
K = 40  # anchors (the encoders are 16-d)
DIM = 16


class TorchEncoder:
    """An AgentNet behind the `OnnxModel` interface the market agent calls (`run(features=x)`)."""

    input_names = ["features"]

    def __init__(self, net: Any) -> None:
        self.net = net.eval()

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            emb, logits = self.net(torch.from_numpy(np.asarray(inputs["features"], np.float32)))
        return {"embedding": emb.numpy(), "probs": torch.softmax(logits, dim=-1).numpy()}


def _model_id(net: Any) -> bytes:
    h = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    return h.digest()


@pytest.fixture(scope="module")
def encoders() -> dict[str, AgentModel]:
    from models.data.embed import HashEmbedder
    from models.data.splits import SyntheticConfig, make_splits
    from models.train import Budget, train_agent

    splits = make_splits(SyntheticConfig(n_train=300, n_val=150, n_test=300, alpha=1.0), 0, HashEmbedder())
    out = {}
    for name, seed in (("market-seed0", 0), ("market-seed1", 1)):
        net = train_agent(splits.train, splits.val, 0, Budget(epochs=3, folds=2, patience=2), seed=seed).model
        assert net.cfg.embed_dim == DIM
        out[name] = AgentModel(name=name, model_id=_model_id(net), dim=DIM, encoding=Encoding.F32,
                               path=Path(f"{name}.onnx"), model=TorchEncoder(net))
    assert out["market-seed0"].model_id != out["market-seed1"].model_id  # trained apart: two spaces
    return out


class LinearHead:
    """probs = softmax(x W): a stand-in E-d head that records what it was given."""

    def __init__(self) -> None:
        self.w = np.random.default_rng(3).normal(size=(3 * DIM, 3)).astype(np.float32)
        self.inputs: list[dict[str, np.ndarray]] = []

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        self.inputs.append(inputs)
        z = inputs["embeddings"] @ self.w
        e = np.exp(z - z.max())
        return {"probs": e / e.sum()}


def _node(chain: Any, role: str, key: int, agent: Any, tmp_path: Path, **extra: Any) -> NodeRuntime:
    settings = NodeSettings(role=role, port=9400 + key, dev_key_index=key, chain_id=31337, rpc_url=chain.rpc_url,
                            finalize_grace_s=0.0, **extra)
    runtime = NodeRuntime(settings, NodeChain(chain.client(key), chain.contracts(key)),
                          Store(tmp_path / f"{role}-{key}.sqlite"), agent, deployment=chain.deployment)
    runtime.bootstrap()
    return runtime




def test_the_fusion_node_fuses_a_second_encoder_only_once_its_map_is_registered(
        chain: Any, encoders: dict[str, AgentModel], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    board = chain.contracts(0)
    ref_model, other_model = encoders["market-seed0"], encoders["market-seed1"]
    ref = _node(chain, "market", REF_KEY, MarketAgent(ref_model), tmp_path)
    other = _node(chain, "market", OTHER_KEY, MarketAgent(other_model), tmp_path)
    for m in (ref_model, other_model):
        assert board.model(m.model_id).dim == DIM  # each node registered its own space

    # the sentiment and risk peers: registered in spaces of their own, published by hand below
    peer_ids = {Role.SENTIMENT: hashlib.sha256(b"sentiment-space").digest(),
                Role.RISK: hashlib.sha256(b"risk-space").digest()}
    peers = {}
    for role, key, modality in ((Role.SENTIMENT, SENTIMENT_KEY, Modality.TEXT), (Role.RISK, RISK_KEY, Modality.SERIES)):
        board.register_model(peer_ids[role], DIM, Encoding.F32, role.label)
        peers[role] = chain.contracts(key)
        peers[role].register_agent(int(role), int(modality), f"http://127.0.0.1:{9400 + key}", peer_ids[role], DIM)

    # K anchor tasks: both market nodes publish their embeddings (and decisions; quorum 2 closes them)
    deadline = chain.timestamp() + 3600
    anchors = [board.submit_task(pl.encode(pl.example_payload(100 + i)), int(Arch.E_D), deadline, 2)
               .event(TaskSubmitted).task_id for i in range(K)]
    run_until([ref, other], lambda: all(board.task_info(t).status == 2 for t in anchors), rounds=200)
    assert all(board.published(t, ref.address).embedding and board.published(t, other.address).embedding
               for t in anchors)

    head = LinearHead()
    spaces = ((ref_model.model_id, DIM, Encoding.F32), (peer_ids[Role.SENTIMENT], DIM, Encoding.F32),
              (peer_ids[Role.RISK], DIM, Encoding.F32))
    alignments = tmp_path / "alignments"
    alignments.mkdir()
    fusion = _node(chain, "fusion", FUSION_KEY, FusionAgent(embeddings_head=TrainedHead("e-d16", head, spaces)),
                   tmp_path, alignments_dir=alignments, alignment_retry_s=0)
    resolver = fusion.agent.alignments
    assert resolver is not None and resolver.directory == alignments

    def fused_task(seed: int) -> tuple[int, str]:
        """An E-d task the second market node (not the first) and the hand peers answer; the fusion
        node's note on it."""
        task_id = board.submit_task(pl.encode(pl.example_payload(seed)), int(Arch.E_D), chain.timestamp() + 3600,
                                    4).event(TaskSubmitted).task_id
        rng = np.random.default_rng(seed)
        for role, contracts in peers.items():
            contracts.publish_embedding(task_id, peer_ids[role], int(Encoding.F32),
                                        encode_vector(rng.normal(size=DIM).astype(np.float32), Encoding.F32))
            contracts.publish_decision(task_id, int(Action.HOLD), 5000)
        run_until([other, fusion], lambda: (fusion.store.get_task(task_id) is not None
                                             and fusion.store.get_task(task_id).note is not None), rounds=200)
        return task_id, fusion.store.get_task(task_id).note

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    # before the map: the second encoder's vector is refused, the rest fused
    _, note = fused_task(1)
    assert note == "e-d16 head over 2 embeddings"
    assert head.inputs[-1]["mask"].tolist() == [[0.0, 1.0, 1.0]]
    refusals = [w for w in warnings() if "no alignment is registered" in w]
    assert refusals == [f"embeddings of model 0x{other_model.model_id.hex()[:12]} are not fused into the space of "
                        f"0x{ref_model.model_id.hex()[:12]}: no alignment is registered for the pair"]

    # the aligner: anchors from the chain's EmbeddingPublished events, map second -> first, registered
    fitted = fit_and_register(board, reference=ref.address, agent=other.address, task_ids=anchors,
                              directory=alignments, from_block=chain.deployment.deploy_block)
    assert (fitted.from_model, fitted.to_model) == (other_model.model_id, ref_model.model_id)
    assert board.alignment(other_model.model_id, ref_model.model_id) == AlignmentInfo(
        fitted.map_id, DIM, DIM, board.client.address)
    assert (alignments / fitted.map_id.hex()).read_bytes() == fitted.map.to_bytes()

    # after it: the second encoder's vector is mapped and fused
    task_id, note = fused_task(2)
    assert note == "e-d16 head over 3 embeddings (1 aligned)"
    assert head.inputs[-1]["mask"].tolist() == [[1.0, 1.0, 1.0]]
    lookups = resolver.lookups
    fused_task(3)
    assert resolver.lookups == lookups  # known pair: no registry call per task

    # what reached the head is the second encoder's vector mapped by the registered map, and it is
    # nearer the first encoder's own embedding of that task than the unmapped vector is
    payload = pl.example_payload(3)
    features = MarketAgent(ref_model).features(payload)[None, :]
    own = ref_model(features)["embedding"][0]
    raw = other_model(features)["embedding"][0]
    given = head.inputs[-1]["embeddings"][0, :DIM]
    np.testing.assert_allclose(given, fitted.map.apply(raw), rtol=1e-4, atol=1e-5)
    assert np.linalg.norm(given - own) < np.linalg.norm(raw - own)
    on_chain = [e for e in board.events(chain.deployment.deploy_block, names=["EmbeddingPublished"])
                if e.agent.lower() == other.address.lower() and e.task_id == task_id]
    np.testing.assert_allclose(decode_vector(on_chain[0].vector, Encoding.F32, DIM),
                               other_model(MarketAgent(other_model).features(pl.example_payload(2))[None, :])
                               ["embedding"][0], rtol=1e-5)  # published in its own space, unchanged
    assert not any(str(alignments) in r.getMessage() for r in caplog.records)
