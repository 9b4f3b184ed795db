"""The semantic-alignment curve: E-d with a market agent trained apart, unaligned and aligned on K anchors.

Per alignment seed, starting from that seed's main model set (its market, sentiment and risk agents
and its e-d16 head, trained on the reference market agent's space):

- `ensure_alignment_set` trains a second market agent *apart*: the same architecture and the
  setting validation chose for the main set's market agent, on the same data, from another seed
  (`APART_SEED_OFFSET`: other initial weights, another data order), exported to ONNX under a model
  id of its own; and a third market agent apart of *another architecture* (`APART_ARCH_NAME`,
  `other_architecture`: `OTHER_HIDDEN_FACTOR` times the hidden width, the same depth, embedding dim
  and optimiser setting, the same apart seed), exported likewise; each manifest entry records its
  architecture (hidden width, depth, embedding dim), and the set refuses two equal ones.
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
- The same curve is computed for the other variants (`variants`, off chain only): each apart agent
  (same architecture, other architecture) through each map (`METHODS`: orthogonal Procrustes, or
  CCA, `fit_procrustes(..., method="cca")`: scikit-learn's CCA with min(K - 1, 16) canonical pairs,
  the map its linear prediction of the reference vector from the apart one, low rank and not
  orthogonal), on the same first K usable anchors of that agent, K = 0 raw. `MAIN_VARIANT` (same
  architecture, Procrustes) is the record's own `by_k`, the one the chain part registers. CKA
  "after" is always linear CKA of the mapped vectors against the reference's on the evaluation
  tasks: for Procrustes it equals the CKA before; a CCA map is not orthogonal (nor a rotation and a
  scaling), so it changes CKA, up where its prediction keeps the reference's directions and down
  where its rank or its fit on few anchors loses them. `variants_record` is the record's form.

The chain part (the same-architecture agent, Procrustes only) runs in the runner's alignment session, on a deployment of its own with node
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
APART_ARCH_NAME = "market-apart-arch"
"""The apart agent of another architecture (`other_architecture`): off-chain curve only."""
OTHER_HIDDEN_FACTOR = 2
"""The other architecture's hidden width, in multiples of the main market agent's."""
VARIANTS = (("same-arch", APART_NAME), ("other-arch", APART_ARCH_NAME))
"""The apart agents of the curve's variants: (label, manifest entry)."""
METHODS = ("procrustes", "cca")
"""The maps of the curve's variants (`models.align.fit_procrustes`' methods)."""
MAIN_VARIANT = "same-arch/procrustes"
"""The variant whose curve is the record's own `by_k` (the one the chain part registers)."""
LAYOUT = 3
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


def other_architecture(hp: dict[str, Any]) -> dict[str, Any]:
    """The setting of the apart agent of another architecture: the main market agent's (`hp`, the
    one validation chose) with `OTHER_HIDDEN_FACTOR` times its hidden width (the depth, the embedding
    dim, which the E-d head needs, and the optimiser's setting stay)."""
    return {**hp, "hidden": int(hp["hidden"]) * OTHER_HIDDEN_FACTOR}


def _train_apart(cfg, seed: int, budget, main: Any, directory: Path) -> dict[str, Any]:
    from models.data.splits import make_splits
    from models.manifest import load_manifest, upsert_entries
    from models.train import tuning_of
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
    arch_hp = other_architecture(hp)
    entries, tuning, archs = [], {}, {}
    for name, setting in ((APART_NAME, hp), (APART_ARCH_NAME, arch_hp)):
        entry, fitted, arch = _train_one(name, setting, splits, k, budget, apart_seed, names, main.name, directory)
        entries.append(entry)
        tuning[name], archs[name] = tuning_of(fitted, budget), arch
    if archs[APART_NAME] == archs[APART_ARCH_NAME]:
        raise ModelError(f"{APART_ARCH_NAME} has the architecture of {APART_NAME}: {archs[APART_NAME]}")
    upsert_entries([*copied, *entries], directory / "manifest.json")
    return {"files": _files(directory / "manifest.json"), "apart_seed": apart_seed, "hp": hp,
            "arch_hp": arch_hp, "architectures": archs, "detail": {"tuning": tuning}}


def _train_one(name: str, hp: dict[str, Any], splits: Any, k: int, budget: Any, apart_seed: int,
               names: list[str], main_set: str, directory: Path) -> tuple[Any, Any, dict[str, int]]:
    """One apart market agent trained with the setting `hp` and exported to ONNX under `name`
    (parity with torch checked); its manifest entry records its architecture."""
    from models import export as ex
    from models.train import _torch_threads, save_checkpoint, train_agent
    from node.protocol.errors import ModelError

    with _torch_threads(1):
        fitted = train_agent(splits.train, splits.val, k, budget, apart_seed, hps=[hp])
    net = fitted.model
    arch = {"hidden": int(net.cfg.hidden), "depth": int(net.cfg.depth), "embed_dim": int(net.cfg.embed_dim)}
    save_checkpoint(directory / "checkpoints" / f"{name}.pt", net,
                    {"seed": apart_seed, "name": name, "names": names, "publish_dtype": "f32",
                     "trained": "apart", "main_set": main_set, "architecture": arch})
    te = splits.test
    rows = te.mask[:, k] > 0
    sample = np.ascontiguousarray(te.x[Role.MARKET.label][rows][:256], dtype=np.float32)
    graph = ex.Graph(name, ex._AgentGraph(net), {"features": sample}, ["embedding", "probs"],
                     net.cfg.embed_dim, "f32",
                     {"kind": type(net).__name__, "seed": apart_seed, "modality": Role.MARKET.label,
                      "trained": "apart", "architecture": arch})
    path = directory / "onnx" / f"{name}.onnx"
    ex.export_graph(graph, path)
    diff = ex.parity(graph, path)
    if diff > ex.PARITY_ATOL:
        raise ModelError(f"{name} (apart): onnxruntime differs from torch by {diff:.2e}")
    graph.extra.update(opset=ex.OPSET, parity_atol=ex.PARITY_ATOL, parity_max_abs_diff=diff)
    return ex._entry(graph, path, directory), fitted, arch


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
    the evaluation tasks; plus the anchor embeddings' wire vectors (`anchor_vectors`) and model ids.
    `variants` holds the other curves (`VARIANTS` x `METHODS` but `MAIN_VARIANT`), each with its
    apart agent's model id, CKA and residual before any map, and its own `by_k`; the other
    architecture's only where `apart_manifest` has its entry (`APART_ARCH_NAME`)."""
    from agents.factory import build_agent
    from models.align import fit_procrustes, linear_cka
    from models.manifest import load_manifest
    from node.experiment import offchain as oc
    from node.experiment import plan

    specs = plan.ed_specs()
    scorer = oc._Scorer(main_manifest, specs, text)
    by_role = {Role.parse(s.role): s for s in specs}
    market_spec, fusion_spec = by_role[Role.MARKET], by_role[Role.FUSION]
    reference = scorer.agent(market_spec)
    present = load_manifest(Path(apart_manifest))
    aparts = {label: build_agent(Role.MARKET.label, manifest_path=apart_manifest, model_name=name)
              for label, name in VARIANTS if name in present or name == APART_NAME}
    if reference.model is None or any(a.model is None for a in aparts.values()):
        raise ValueError("every market agent must run a trained ONNX model")
    ref_id = bytes(reference.model.model_id)
    if any(bytes(a.model.model_id) == ref_id for a in aparts.values()):
        raise ValueError("an apart market agent has the reference's model id: nothing to align")

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

    ref_vecs = _wire(reference, decisions[market_spec.role].vectors)
    anchor_payloads = oc._decode_all(anchors)
    a_ref = _wire(reference, oc._feature_agent(reference, anchor_payloads).vectors)
    dim = int(reference.model.dim)

    def space(apart: Any) -> dict[str, Any]:
        """The apart agent's decisions swapped in, its vectors against the reference's on the
        evaluation tasks where both published one, and its anchors (the first where both did)."""
        swapped = {**decisions, market_spec.role: oc._feature_agent(apart, payloads)}
        sc = copy.copy(scorer)
        sc.agents = {**scorer.agents, scorer._agent_key(market_spec): apart}
        vecs = _wire(apart, swapped[market_spec.role].vectors)
        both = [i for i in range(n) if ref_vecs[i] is not None and vecs[i] is not None]
        a_apart = _wire(apart, oc._feature_agent(apart, anchor_payloads).vectors)
        usable = [i for i in range(len(anchors)) if a_ref[i] is not None and a_apart[i] is not None]
        return {"agent": apart, "id": bytes(apart.model.model_id), "swapped": swapped, "scorer": sc,
                "x": np.stack([vecs[i] for i in both]).astype(np.float64),
                "x_ref": np.stack([ref_vecs[i] for i in both]).astype(np.float64), "tasks": len(both),
                "anchors": a_apart, "usable": usable}

    def curve(sp: dict[str, Any], method: str) -> dict[int, dict[str, Any]]:
        """Per K: E-d through the `method` map fitted on the first K usable anchors (K = 0: raw),
        the map's id, CKA and residual of the mapped vectors against the reference's."""
        by_k = {}
        for k in ks:
            if k > len(sp["usable"]):
                continue
            if k == 0:
                amap = identity_map(dim)
            else:
                src = np.stack([sp["anchors"][i] for i in sp["usable"][:k]])
                dst = np.stack([a_ref[i] for i in sp["usable"][:k]])
                amap = fit_procrustes(src, dst, method=method)
            maps = {(sp["id"], ref_id): amap}
            mapped = amap.apply(sp["x"])
            by_k[int(k)] = {
                "actions": finalize(sp["swapped"], sp["scorer"],
                                    lambda f, t, maps=maps: maps.get((bytes(f), bytes(t)))),
                "map_id": None if k == 0 else "0x" + amap.map_id.hex(),
                "cka": linear_cka(mapped, sp["x_ref"]), "residual": _residual(mapped, sp["x_ref"])}
        return by_k

    spaces = {label: space(agent) for label, agent in aparts.items()}
    main = spaces["same-arch"]
    usable = main["usable"]
    out: dict[str, Any] = {
        "n": n, "labels": labels, "reference": finalize(decisions, scorer, None),
        "dropped": finalize(main["swapped"], main["scorer"], lambda f, t: None),
        "cka_before": linear_cka(main["x"], main["x_ref"]), "residual_before": _residual(main["x"], main["x_ref"]),
        "cka_tasks": main["tasks"], "model_ids": {"reference": "0x" + ref_id.hex(), "apart": "0x" + main["id"].hex()},
        "anchors_usable": len(usable), "anchor_indices": usable, "by_k": curve(main, "procrustes"), "variants": {},
    }
    for label, sp in spaces.items():
        for method in METHODS:
            name = f"{label}/{method}"
            if name == MAIN_VARIANT:
                continue
            out["variants"][name] = {
                "apart": label, "method": method, "model_id": "0x" + sp["id"].hex(), "cka_tasks": sp["tasks"],
                "cka_before": linear_cka(sp["x"], sp["x_ref"]), "residual_before": _residual(sp["x"], sp["x_ref"]),
                "anchors_usable": len(sp["usable"]), "by_k": curve(sp, method)}
    out["anchor_vectors"] = {"reference": [a_ref[i] for i in usable], "apart": [main["anchors"][i] for i in usable]}
    return out


def by_k_record(by_k: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """A curve's `by_k` as the alignment unit's record keeps it: `ks`, and per K (string keys) the
    finalized actions (`report.metrics.encode_actions`) and the map's id, CKA and residual."""
    from node.experiment.report.metrics import encode_actions

    return {"ks": sorted(by_k), "actions": {str(k): encode_actions(p["actions"]) for k, p in by_k.items()},
            "by_k": {str(k): {f: p[f] for f in ("map_id", "cka", "residual")} for k, p in by_k.items()}}


def variants_record(curve: dict[str, Any]) -> dict[str, Any]:
    """`curve["variants"]` as the alignment unit's record keeps it (`variants`): per variant its
    apart agent, method, model id, CKA and residual before any map, and its `by_k_record`."""
    return {name: {**{f: v[f] for f in ("apart", "method", "model_id", "cka_tasks", "cka_before",
                                        "residual_before", "anchors_usable")}, **by_k_record(v["by_k"])}
            for name, v in curve.get("variants", {}).items()}


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
