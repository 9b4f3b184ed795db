"""Alignment end to end with real node processes: a devnet (Anvil, the protocol deployed), two
`chorus node run --role market` processes whose encoders were trained apart (`models.train.train_agent`
seeds 0 and 1, exported to ONNX, each node with its own manifest: two model ids) and a
`chorus node run --role fusion --alignments DIR` process whose E-d head expects the first encoder's
space. Both market nodes answer K anchor tasks; then only the second answers, with the sentiment and
risk peers published by the test. Before the map: the fusion node fuses 2 embeddings and logs why the
third is refused; the aligner (`fit_and_register`) fits the map from the anchors' events, writes it
to the fusion node's directory and registers it; after: 3 embeddings, 1 aligned.

The E-d head is a tiny ONNX linear softmax with fixed weights (which vectors reach it is the point,
not its accuracy); the sentiment and risk "agents" are the test sending through the facade."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit import tiny_head

from node.protocol.enums import Action, Arch, Encoding, Modality, Role

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

DIM = 16
K = 24
REF_KEY, OTHER_KEY, FUSION_KEY, SENTIMENT_KEY, RISK_KEY = 1, 2, 3, 4, 5


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Manifests: `ref` and `other` (one market encoder each, trained apart) and `fusion` (the ref
    encoder's entry, stand-in sentiment and risk spaces, the e-d16 head over the three)."""
    pytest.importorskip("torch")
    from models import export as ex
    from models.data.embed import HashEmbedder
    from models.data.splits import SyntheticConfig, make_splits
    from models.manifest import ManifestEntry, sha256_file, upsert_entries
    from models.train import Budget, train_agent

    root = tmp_path_factory.mktemp("align-models")
    splits = make_splits(SyntheticConfig(n_train=300, n_val=150, n_test=300, alpha=1.0), 0, HashEmbedder())
    out: dict[str, Path] = {}
    entries: dict[str, Any] = {}
    for name, seed in (("ref", 0), ("other", 1)):
        net = train_agent(splits.train, splits.val, 0, Budget(epochs=3, folds=2, patience=2), seed=seed).model
        graph = ex.Graph("market", ex._AgentGraph(net), {"features": splits.test.x["market"][:64]},
                         ["embedding", "probs"], DIM, "f32", {"seed": seed})
        path = root / name / "market.onnx"
        path.parent.mkdir()
        ex.export_graph(graph, path)
        entries[name] = ex._entry(graph, path, path.parent)
        upsert_entries([entries[name]], path.parent / "manifest.json")
        out[name] = path.parent / "manifest.json"
    assert entries["ref"].model_id != entries["other"].model_id

    fusion = root / "fusion"
    fusion.mkdir()
    shutil.copy(root / "ref" / "market.onnx", fusion / "market.onnx")
    fused = [entries["ref"]]
    for name in ("sentiment", "risk"):  # the hand peers' spaces (files only hashed)
        (fusion / f"{name}.onnx").write_bytes(f"{name} space".encode())
        fused.append(ManifestEntry(name, f"{name}.onnx", sha256_file(fusion / f"{name}.onnx"), DIM, "f32",
                                   ["features"], ["embedding", "probs"]))
    tiny_head(fusion / "e-d16.onnx", {"embeddings": 3 * DIM, "mask": 3})
    fused.append(ManifestEntry("e-d16", "e-d16.onnx", sha256_file(fusion / "e-d16.onnx"), 3, "f32",
                               ["embeddings", "mask"], ["probs"],
                               {"agents": ["market", "sentiment", "risk"], "embedding_dim": DIM,
                                "embedding_dtype": "f32"}))
    upsert_entries(fused, fusion / "manifest.json")
    out["fusion"] = fusion / "manifest.json"
    return out


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Path]:
    from node.devnet.anvil import devnet_down, devnet_up, free_port

    try:
        devnet_up(port=free_port(), state=tmp_path)
        yield tmp_path / "devnet.json"
    finally:
        devnet_down(state=tmp_path)


def _wait(what: str, check: Any, timeout: float, nodes: list[Any]) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    tails = "\n".join(f"--- {n.role} {n.port}\n" + Path(n.log).read_text()[-3000:] for n in nodes)
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def test_fusion_processes_refuse_then_fuse_through_a_registered_map(manifests: dict[str, Path], devnet: Path,
                                                                   tmp_path: Path) -> None:
    import httpx

    from node.chain.artifacts import load_artifact
    from node.chain.client import Web3Client
    from node.chain.contracts import ChorusContracts, revert_decoder
    from node.chain.deploy import Deployment
    from node.chain.events import TaskSubmitted
    from node.chain.settings import dev_account
    from node.devnet.anvil import free_port
    from node.devnet.cluster import spawn_node, wait_healthy
    from node.protocol import payload as pl
    from node.protocol.codec import encode_vector
    from node.runtime.alignments import fit_and_register

    deployment = Deployment.load(devnet)
    artifacts = {n: load_artifact(n) for n in ("ModelRegistry", "AgentRegistry", "TaskBoard")}

    def facade(key: int) -> ChorusContracts:
        client = Web3Client(deployment.rpc_url, dev_account(key), decoder=revert_decoder(artifacts))
        return ChorusContracts.from_deployment(client, deployment, artifacts)

    board = facade(0)
    alignments = tmp_path / "alignments"
    alignments.mkdir()
    nodes = []
    try:
        for role, key, manifest, extra, env in (
                ("market", REF_KEY, manifests["ref"], (), {}),
                ("market", OTHER_KEY, manifests["other"], (), {}),
                ("fusion", FUSION_KEY, manifests["fusion"], ("--alignments", str(alignments)),
                 {"CHORUS_ALIGNMENT_RETRY_S": "0"})):
            nodes.append(spawn_node(role, free_port(), key, devnet, die_with_parent=True,
                                    env={"CHORUS_MANIFEST": str(manifest), **env},
                                    extra_args=("--manifest", str(manifest), *extra)))
        wait_healthy(nodes, timeout=180)
        ref, other, fusion = nodes
        from models.manifest import load_manifest

        ref_id = load_manifest(manifests["ref"])["market"].model_id
        other_id = load_manifest(manifests["other"])["market"].model_id
        fused = load_manifest(manifests["fusion"])
        assert board.agent_info(ref.address).model_id == ref_id
        assert board.agent_info(other.address).model_id == other_id

        peers = {}
        for role, key, modality in ((Role.SENTIMENT, SENTIMENT_KEY, Modality.TEXT), (Role.RISK, RISK_KEY, Modality.SERIES)):
            mid = fused[role.label].model_id
            board.register_model(mid, DIM, Encoding.F32, role.label)
            peers[role] = (facade(key), mid)
            peers[role][0].register_agent(int(role), int(modality), f"http://127.0.0.1:{9600 + key}", mid, DIM)

        # K anchors: both market nodes answer, publishing their embeddings (quorum 3: the fusion node
        # waits for both markets' decisions, then decides)
        deadline = board.client.block_timestamp() + 3600
        anchors = [board.submit_task(pl.encode(pl.example_payload(200 + i)), int(Arch.E_D), deadline, 3)
                   .event(TaskSubmitted).task_id for i in range(K)]
        _wait("the anchors to be finalized", lambda: all(board.task_info(t).status == 2 for t in anchors), 180, nodes)
        _wait("both embeddings of every anchor", lambda: all(
            board.published(t, ref.address).embedding and board.published(t, other.address).embedding
            for t in anchors), 60, nodes)
        assert ref.stop(timeout=15)  # from here on, only the second encoder answers for the market

        def fused_note(seed: int) -> str:
            task_id = board.submit_task(pl.encode(pl.example_payload(seed)), int(Arch.E_D),
                                        board.client.block_timestamp() + 3600, 4).event(TaskSubmitted).task_id
            rng = np.random.default_rng(seed)
            for contracts, mid in peers.values():
                contracts.publish_embedding(task_id, mid, int(Encoding.F32),
                                            encode_vector(rng.normal(size=DIM).astype(np.float32), Encoding.F32))
                contracts.publish_decision(task_id, int(Action.HOLD), 5000)

            def note() -> str | None:
                r = httpx.get(f"{fusion.url}/tasks/{task_id}", timeout=2)
                return r.json()["output"]["note"] if r.status_code == 200 else None

            return _wait(f"the fusion node's decision on task {task_id}", note, 120, nodes)

        log = Path(fusion.log)
        assert fused_note(1) == "e-d16 head over 2 embeddings"
        refusal = (f"embeddings of model 0x{other_id.hex()[:12]} are not fused into the space of "
                   f"0x{ref_id.hex()[:12]}: no alignment is registered for the pair")
        assert log.read_text().count(refusal) == 1

        fitted = fit_and_register(board, reference=ref.address, agent=other.address, task_ids=anchors,
                                  directory=alignments, from_block=deployment.deploy_block)
        assert (fitted.from_model, fitted.to_model) == (other_id, ref_id)
        assert board.alignment(other_id, ref_id).map_id == fitted.map_id

        assert fused_note(2) == "e-d16 head over 3 embeddings (1 aligned)"
        assert fused_note(3) == "e-d16 head over 3 embeddings (1 aligned)"
        text = log.read_text()
        assert text.count(f"map 0x{fitted.map_id.hex()} (procrustes, {DIM} -> {DIM}) loaded and checked") == 1
        assert text.count(refusal) == 1 and str(alignments) not in text.replace(f"--alignments {alignments}", "")
    finally:
        for node in nodes:
            node.stop(timeout=15)
