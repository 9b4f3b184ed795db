"""The semantic-alignment curve: E-d with a market agent trained apart, unaligned and aligned on K anchors.

Per alignment seed, starting from that seed's main model set (its market, sentiment and risk agents
and its e-d16 head, trained on the reference market agent's space):

- `ensure_alignment_set` trains a second market agent *apart*: the same architecture and the
  setting validation chose for the main set's market agent, on the same data, from another seed
  (`APART_SEED_OFFSET`: other initial weights, another data order), exported to ONNX under a model
  id of its own.
- `alignment_curve` replays E-d off chain on the seed's evaluation tasks (the main table's, so
  every difference is paired task by task) with the ONNX files, as `node.experiment.offchain` does:
  with the reference market agent (the main table's E-d), with the agent trained apart and *no*
  map (the fusion node refuses its vector, as on chain: `dropped`), with its vector fused raw as if
  it were in the reference space (K = 0: what mixing without a map would give; the chain's fusion
  node never does this), and through the orthogonal Procrustes map (`models.align.fit_procrustes`)
  fitted on the first K anchors for each K > 0. The anchors are the seed's validation tasks
  (`anchor_stream`: public, disjoint from the evaluation tasks, which are the test split), the
  first K of them on which both market agents publish an embedding. Every variant is finalized as
  TaskBoard would (the market agent's own decision, the others', the fusion node's, weighted).
- It also measures how alike the two spaces are on the evaluation tasks: linear CKA of the apart
  agent's embeddings (raw, then mapped) against the reference's, and the residual (mean squared
  distance to the reference's vectors over their variance). CKA is invariant to an orthogonal map
  (and to translation and isotropic scaling), so Procrustes leaves it unchanged by construction:
  the residual is what a map changes.

The chain part runs in the runner's alignment session, on a deployment of its own with node
processes (`session_specs`): the apart market agent, the seed's sentiment and risk agents, and the
fusion node running the seed's E-d head with an alignments directory. `register_on_chain` registers
the reference market space and one agent key for it, submits the first `k` anchors (under
`ANCHOR_ARCH`, which the fusion node does not serve), has that key publish the reference agent's
embedding of each while the apart market node publishes its own (`publishEmbedding`, the gas
measured from the receipts), then `node.runtime.alignments.fit_and_register` fits the map from those
events, writes it to the fusion node's directory and registers it (`registerAlignment`, its gas
too). The map fitted from the chain must be the one fitted off chain on the same anchors (same
bytes, same map id); then a chain sample of the evaluation tasks runs as E-d tasks, and each
finalized action must be the off-chain replay's through that map (the run's chain check).
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from node.experiment.config import TrainBudget
from node.experiment.nodes import NodeSpec
from node.protocol.enums import EXPERIMENT_ARCHS, Arch, Role

APART_SEED_OFFSET = 1000
"""The apart market agent trains from seed `seed + 11 * k + APART_SEED_OFFSET` (the main set's from
`seed + 11 * k`, k the market's index): other initial weights and another data order."""
APART_NAME = "market-apart"
"""The apart agent's manifest entry in its set (a market node runs it with `--model market-apart`);
the set also holds copies of the main set's market, sentiment, risk and e-d16 entries, so the fusion
node's head keeps the reference spaces."""
COPIED = ("market", "sentiment", "risk", "e-d16")
"""The main set's entries an alignment set carries (files copied, the same bytes, the same ids)."""
ANCHOR_ARCH = EXPERIMENT_ARCHS[-1]
"""The architecture id the chain anchors are submitted under: the market node publishes its
embedding for it, the fusion node does not serve it (so it never asks the registry for the pair
before the map is registered)."""
LAYOUT = 2
"""Version of the alignment set's folder layout (in its cache key)."""
ANCHOR_SOURCE = ("the seed's validation split (public, disjoint from the evaluation tasks, which are its test "
                 "split): the first K tasks on which both market agents publish an embedding")


# -- the model set ------------------------------------------------------------------------------------


def ensure_alignment_set(profile_name: str, seed: int, alpha: float, n_test: int, budget: TrainBudget,
                         data: Path | None = None, progress: Any = None, root: Path | None = None,
                         latent_dim: int = 1) -> Any:
    """The apart market agent for the seed's main set (trained and exported unless cached); its
    meta names the main set it was trained against."""
    from node.experiment import modelsets as msets

    main = msets.ensure_main_set(profile_name, seed, alpha, n_test, budget, data, progress, root, latent_dim)
    key = msets._key(kind="alignment", main=main.name, offset=APART_SEED_OFFSET, layout=LAYOUT)
    directory = (root or msets.bench_root()) / profile_name / f"align-a{alpha:g}-s{seed}-{key}"
    return msets._cached_or_trained(
        directory, lambda: _train_apart(msets.dataset_config(alpha, n_test, budget, data, latent_dim), seed,
                                        msets._train_budget(budget), main, directory),
        kind="alignment", seed=seed, alpha=alpha, budget=asdict(budget), main_set=main.name,
        **msets._latent_part(latent_dim))


def _train_apart(cfg, seed: int, budget, main: Any, directory: Path) -> dict[str, Any]:
    from models import export as ex
    from models.data.splits import make_splits
    from models.manifest import load_manifest, upsert_entries
    from models.train import _torch_threads, save_checkpoint, train_agent, tuning_of
    from node.experiment.modelsets import _files
    from node.protocol.errors import ModelError

    splits = make_splits(cfg, seed)
    names = list(splits.train.names)
    k = names.index(Role.MARKET.label)
    hp = main.meta["detail"]["tuning"][Role.MARKET.label]["hp"]
    copied = []
    for name, entry in load_manifest(main.manifest).items():
        if name in COPIED:
            (directory / entry.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry.file(main.manifest.parent), directory / entry.path)
            copied.append(entry)
    if len(copied) != len(COPIED):
        raise ModelError(f"main set {main.name} lacks some of {COPIED}")
    apart_seed = seed + 11 * k + APART_SEED_OFFSET
    with _torch_threads(1):
        fitted = train_agent(splits.train, splits.val, k, budget, apart_seed, hps=[hp])
    net = fitted.model
    save_checkpoint(directory / "checkpoints" / f"{APART_NAME}.pt", net,
                    {"seed": apart_seed, "name": APART_NAME, "names": names, "publish_dtype": "f32",
                     "trained": "apart", "main_set": main.name})
    te = splits.test
    rows = te.mask[:, k] > 0
    sample = np.ascontiguousarray(te.x[Role.MARKET.label][rows][:256], dtype=np.float32)
    graph = ex.Graph(APART_NAME, ex._AgentGraph(net), {"features": sample}, ["embedding", "probs"],
                     net.cfg.embed_dim, "f32",
                     {"kind": type(net).__name__, "seed": apart_seed, "modality": Role.MARKET.label,
                      "trained": "apart"})
    path = directory / "onnx" / f"{APART_NAME}.onnx"
    ex.export_graph(graph, path)
    diff = ex.parity(graph, path)
    if diff > ex.PARITY_ATOL:
        raise ModelError(f"{APART_NAME} (apart): onnxruntime differs from torch by {diff:.2e}")
    graph.extra.update(opset=ex.OPSET, parity_atol=ex.PARITY_ATOL, parity_max_abs_diff=diff)
    upsert_entries([*copied, ex._entry(graph, path, directory)], directory / "manifest.json")
    return {"files": _files(directory / "manifest.json"), "apart_seed": apart_seed, "hp": hp,
            "detail": {"tuning": {APART_NAME: tuning_of(fitted, budget)}}}


@dataclass(frozen=True)
class AlignedNodeSpec(NodeSpec):
    """A node spec with the two `chorus node run` options an alignment session needs."""

    model: str | None = None
    """`--model`: the manifest entry the agent runs (the apart market agent)."""
    alignments: str | None = None
    """`--alignments`: the fusion node's directory of alignment maps."""

    def settings_args(self) -> list[str]:
        return [*super().settings_args(), *(["--model", self.model] if self.model else []),
                *(["--alignments", self.alignments] if self.alignments else [])]


def session_specs(alignments_dir: Path) -> list[NodeSpec]:
    """The alignment session's nodes: the apart market agent (E-d, and the anchors' architecture,
    publishing its embedding for both), the sentiment and risk agents (E-d), the fusion node (E-d)
    with its alignments directory (created here: the node checks it exists)."""
    Path(alignments_dir).mkdir(parents=True, exist_ok=True)
    market, fusion = Role.MARKET.label, Role.FUSION.label
    return [AlignedNodeSpec(market, market, (Arch.E_D, ANCHOR_ARCH), embedding_archs=(Arch.E_D, ANCHOR_ARCH),
                            model=APART_NAME),
            *(NodeSpec(r.label, r.label, (Arch.E_D,), embedding_archs=(Arch.E_D,))
              for r in (Role.SENTIMENT, Role.RISK)),
            AlignedNodeSpec(fusion, fusion, (Arch.E_D,), alignments=str(alignments_dir))]


def anchor_stream(cfg, seed: int, n: int) -> list[bytes]:
    """The payloads of the seed's first `n` validation tasks (`models.data.splits.make_splits`' draw)."""
    from models.data.splits import ROLES
    from models.data.synthetic import generate
    from node.experiment.tasks import encode_sample

    noise = dict(zip(ROLES, cfg.noise)) if isinstance(cfg.noise, (tuple, list)) else cfg.noise
    kw = dict(alpha=cfg.alpha, noise=noise, missing_rate=cfg.missing_rate, redundancy=cfg.redundancy,
              shift=cfg.shift, label_noise=cfg.label_noise)
    if cfg.latent_dim != 1:
        kw["latent_dim"] = cfg.latent_dim
    ds = generate(cfg.n_train + cfg.n_val, seed, regime="train", **kw)
    n = min(n, cfg.n_val)
    return [encode_sample(ds[cfg.n_train + i]) for i in range(n)]


# -- the curve ----------------------------------------------------------------------------------------


def identity_map(dim: int) -> Any:
    """The map that fuses a vector as it is (K = 0: mixing spaces without a map)."""
    from models.align import AlignmentMap

    return AlignmentMap("procrustes", dim, dim, np.eye(dim), np.zeros(dim), np.zeros(dim))


def _wire(agent: Any, vectors: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """The vectors as a reader decodes them from the agent's EmbeddingPublished events."""
    from agents.base import Embedding, decode_vector

    enc, dim = agent.model.encoding, agent.model.dim
    return [None if v is None else decode_vector(Embedding(v, agent.model.model_id, enc).to_bytes(), enc, dim)
            for v in vectors]


def _residual(mapped: np.ndarray, target: np.ndarray) -> float:
    variance = float(np.mean((target - target.mean(axis=0)) ** 2)) or 1.0
    return float(np.mean((mapped - target) ** 2)) / variance


def alignment_curve(main_manifest: Path, apart_manifest: Path, stream: Any, anchors: list[bytes],
                    ks: tuple[int, ...], text: Any) -> dict[str, Any]:
    """The curve on `stream` (module docstring): finalized E-d actions with the reference market
    agent (`reference`), with the apart one and no map (`dropped`), and per K (`by_k`: K = 0 raw, else
    through the Procrustes map on the first K usable anchors) with the map's id, CKA and residual on
    the evaluation tasks; plus the anchor embeddings' wire vectors (`anchor_vectors`) and model ids."""
    from agents.factory import build_agent
    from models.align import fit_procrustes, linear_cka
    from node.experiment import offchain as oc
    from node.experiment import plan

    specs = plan.ed_specs()
    scorer = oc._Scorer(main_manifest, specs, text)
    by_role = {Role.parse(s.role): s for s in specs}
    market_spec, fusion_spec = by_role[Role.MARKET], by_role[Role.FUSION]
    apart = build_agent(Role.MARKET.label, manifest_path=apart_manifest, model_name=APART_NAME)
    reference = scorer.agent(market_spec)
    if apart.model is None or reference.model is None:
        raise ValueError("both market agents must run a trained ONNX model")
    ref_id, apart_id = bytes(reference.model.model_id), bytes(apart.model.model_id)
    if ref_id == apart_id:
        raise ValueError("the apart market agent has the reference's model id: nothing to align")

    payloads = oc._decode_all(stream.payloads)
    labels = np.asarray(stream.labels, dtype=np.int64)
    n = len(payloads)
    headlines = [p.headlines for p in payloads if p is not None and p.headlines]
    for batch in scorer.text_batches.values():
        text.prefill(headlines, batch)
    decisions: dict[str, Any] = {}
    for spec in specs:
        role = Role.parse(spec.role)
        if role in (Role.MARKET, Role.RISK):
            decisions[spec.role] = oc._feature_agent(scorer.agent(spec), payloads)
        elif role == Role.SENTIMENT:
            decisions[spec.role] = oc._sentiment_agent(scorer.agent(spec), payloads)
    swapped = {**decisions, market_spec.role: oc._feature_agent(apart, payloads)}
    apart_scorer = copy.copy(scorer)
    apart_scorer.agents = {**scorer.agents, scorer._agent_key(market_spec): apart}

    publishers = [oc._Publisher(s, Role.parse(s.role)) for s in specs]
    peers = [p for p in publishers if p.role != Role.FUSION]
    embedders = [s for s in specs if Arch.E_D in s.embedding_archs]
    fusion = scorer.agent(fusion_spec)
    ok = np.array([p is not None for p in payloads], dtype=bool)
    weights = oc.chain_weights(Arch.E_D, None)

    def finalize(pubs: dict[str, Any], sc: Any, resolver: Any) -> np.ndarray:
        fusion.use_alignments(resolver)
        try:
            fused = oc._fusion(fusion, Arch.E_D, peers, embedders, pubs, sc, payloads)
        finally:
            fusion.use_alignments(None)
        tallies = oc._tallies([(p.role, fused if p.role == Role.FUSION else pubs[p.spec.role]) for p in publishers],
                              weights, n)
        return np.where(ok, oc.finalized_actions(tallies), oc.NOT_FINALIZED)

    # The two spaces on the evaluation tasks, where both agents published a vector.
    ref_vecs = _wire(reference, decisions[market_spec.role].vectors)
    apart_vecs = _wire(apart, swapped[market_spec.role].vectors)
    both = [i for i in range(n) if ref_vecs[i] is not None and apart_vecs[i] is not None]
    x_ref = np.stack([ref_vecs[i] for i in both]).astype(np.float64)
    x_apart = np.stack([apart_vecs[i] for i in both]).astype(np.float64)

    # The anchors: both agents' published vectors, the first K where both published.
    anchor_payloads = oc._decode_all(anchors)
    a_ref = _wire(reference, oc._feature_agent(reference, anchor_payloads).vectors)
    a_apart = _wire(apart, oc._feature_agent(apart, anchor_payloads).vectors)
    usable = [i for i in range(len(anchors)) if a_ref[i] is not None and a_apart[i] is not None]

    out: dict[str, Any] = {
        "n": n, "labels": labels, "reference": finalize(decisions, scorer, None),
        "dropped": finalize(swapped, apart_scorer, lambda f, t: None),
        "cka_before": linear_cka(x_apart, x_ref), "residual_before": _residual(x_apart, x_ref),
        "cka_tasks": len(both), "model_ids": {"reference": "0x" + ref_id.hex(), "apart": "0x" + apart_id.hex()},
        "anchors_usable": len(usable), "anchor_indices": usable, "by_k": {},
    }
    dim = int(reference.model.dim)
    for k in ks:
        if k > len(usable):
            continue
        if k == 0:
            amap = identity_map(dim)
        else:
            src = np.stack([a_apart[i] for i in usable[:k]])
            dst = np.stack([a_ref[i] for i in usable[:k]])
            amap = fit_procrustes(src, dst)
        maps = {(apart_id, ref_id): amap}
        mapped = amap.apply(x_apart)
        out["by_k"][int(k)] = {
            "actions": finalize(swapped, apart_scorer, lambda f, t, maps=maps: maps.get((bytes(f), bytes(t)))),
            "map_id": None if k == 0 else "0x" + amap.map_id.hex(),
            "cka": linear_cka(mapped, x_ref), "residual": _residual(mapped, x_ref)}
    out["anchor_vectors"] = {"reference": [a_ref[i] for i in usable], "apart": [a_apart[i] for i in usable]}
    return out


# -- the chain part -----------------------------------------------------------------------------------


def register_on_chain(board: Any, key: Any, market: str, anchors: list[bytes], model_ids: dict[str, str],
                      reference_vectors: list[np.ndarray], k: int, deadline_s: int, directory: Path,
                      timeout_s: float = 120.0) -> dict[str, Any]:
    """On the session's deployment (its nodes running, module docstring): the reference space and
    one agent for it (`key`, publishing the reference market agent's vectors: what its node would),
    the first `k` anchors submitted under `ANCHOR_ARCH` (quorum 2: both agents' decisions), the apart market node (`market`, its
    address) publishing its own embedding of each; then the map fitted from the events, written to
    the fusion node's `directory` and registered. Gas from the receipts."""
    from node.protocol.codec import encode_vector
    from node.protocol.enums import Action, Encoding
    from node.protocol.errors import ConfigError
    from node.runtime.alignments import AlignmentResolver, anchor_embeddings, fit_and_register

    c = board.contracts
    ref_id = bytes.fromhex(model_ids["reference"].removeprefix("0x"))
    dim = len(reference_vectors[0])
    if not c.is_model_registered(ref_id):
        c.register_model(ref_id, dim, int(Encoding.F32), "market-reference")
    reference = board.register_probe_agent(key, ref_id, dim)
    from_block = board.block_number()
    # Quorum 2: the apart market node's decision and the reference key's, sent after its embedding,
    # so no anchor finalizes (and refuses embeddings) before both spaces published theirs.
    task_ids = [t.task_id for t in board.submit(anchors[:k], ANCHOR_ARCH, 2, deadline_s, indices=list(range(k)))]
    agent = c.with_client(board.client.with_account(key.account))
    ref_gas = []
    for t, v in zip(task_ids, reference_vectors[:k], strict=True):
        ref_gas.append(int(agent.publish_embedding(t, ref_id, int(Encoding.F32),
                                                   encode_vector(np.asarray(v, np.float32), Encoding.F32)).gas_used))
        agent.publish_decision(t, int(Action.HOLD), 1)  # an anchor's decision is never scored
    end = time.monotonic() + timeout_s
    while True:  # the apart market node answers the anchors on its own
        try:
            anchor_embeddings(c, market, task_ids, from_block=from_block)
            break
        except ConfigError:
            if time.monotonic() > end:
                raise
            time.sleep(0.5)
    hashes = [ev.tx_hash for ev in c.events(from_block=from_block, names=["EmbeddingPublished"])
              if ev.agent.lower() == market.lower() and ev.task_id in set(task_ids)]
    node_gas = [int(ch.gas) for ch in board.tx_charges(hashes).values()]
    fitted = fit_and_register(c, reference=reference, agent=market, task_ids=task_ids, directory=directory,
                              from_block=from_block)
    charge = board.tx_charges([fitted.tx_hash])[fitted.tx_hash]
    loaded = AlignmentResolver(c.alignment, directory)(fitted.from_model, fitted.to_model)
    publish = ref_gas + node_gas
    return {"anchors": k, "task_ids": task_ids, "publish_gas": publish,
            "per_anchor_publication": float(np.mean(publish)) if publish else None,
            "register_alignment": int(charge.gas), "map_id": "0x" + fitted.map_id.hex(),
            "from_model": "0x" + fitted.from_model.hex(), "to_model": "0x" + fitted.to_model.hex(),
            "cka_anchors": fitted.cka, "residual_anchors": fitted.residual,
            "resolver_loaded": loaded is not None and loaded.map_id == fitted.map_id}
