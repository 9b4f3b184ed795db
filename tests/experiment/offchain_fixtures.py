"""What tests/experiment/test_offchain.py compares: small model sets and the node pipeline, one task at a time.

- `handmade_set`: a model set without training: small random ONNX graphs with the inputs and
  outputs of the real ones (the agents' `features -> embedding, probs`, the M-learned and E-d heads,
  U), feature standardization baked in so decisions vary, a manifest and a bench.json. Built in
  well under a second.
- `FakeText`: a deterministic text encoder (a pseudo-random unit vector per text) with a model id.
- `node_pipeline_actions`: the action the chain would finalize per task, composed the way the
  nodes and TaskBoard compose it, task by task and architecture by architecture: every node builds
  its own agent (`agents.factory.build_agent`, the node's options), runs `agent.run` on each task of
  each architecture it serves, publishes its embedding (where the specs say so) as bytes and then
  its decision; the fusion node reads its peers merged from those events as `NodeRuntime._peers`
  does (checking it would not wait: its quorum of peer decisions is in); the tallies and the
  finalized action follow TaskBoard's rule, written here from the Solidity source, with the weights
  a bench session's board holds and M-regret's Hedge rounds as `ArchJob` runs them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from models.data.embed import HashEmbedder
from node.protocol.enums import AGENT_ROLES, Action, Arch, Role

FEATURES = {"market": 26, "sentiment": 1152, "risk": 10}
"""The real feature widths (`models.data.features.FEATURE_DIMS`: sentiment is 3 headline slots of 384)."""


class FakeText(HashEmbedder):
    """HashEmbedder with the identity an encoder needs (`agents.factory.encoder_identity`)."""

    model_id = hashlib.sha256(b"chorus-tests/fake-minilm").digest()
    name = "fake-minilm"


# -- hand-made ONNX model sets -----------------------------------------------------------------------


def _graph(name: str, inputs: dict[str, int], outputs: list[str], nodes: list, inits: dict[str, np.ndarray], path: Path,
           out_dims: dict[str, int]) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, ["batch", d]) for k, d in inputs.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, ["batch", out_dims[k]]) for k in outputs],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def _stats(n: int = 200, seed: int = 99) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean and scale of each modality's features on generated tasks (what the nets standardize with)."""
    from models.data.features import flow_features, market_features, text_features
    from models.data.synthetic import generate

    ds = generate(n, seed, regime="train")
    rows = {"market": [], "sentiment": [], "risk": []}
    for i in range(len(ds)):
        s = ds[i]
        if len(s.prices) >= 8:
            rows["market"].append(market_features(s.prices, s.volumes))
        if s.headlines:
            rows["sentiment"].append(text_features(list(s.headlines), FakeText()))
        if len(s.flows):
            rows["risk"].append(flow_features(s.flows))
    return {k: (np.mean(v, axis=0), np.std(v, axis=0) + 1e-3) for k, v in rows.items()}


def _agent_graph(path: Path, f: int, d: int, stats, rng) -> None:
    from onnx import helper

    mean, scale = stats
    h = 24
    inits = {"mean": mean, "inv": 1.0 / scale, "w1": rng.standard_normal((f, h)) / np.sqrt(f),
             "b1": rng.standard_normal(h) * 0.1, "we": rng.standard_normal((h, d)) / np.sqrt(h) * 1.5,
             "wl": rng.standard_normal((d, 3)) / np.sqrt(d) * 2.5, "bl": rng.standard_normal(3) * 0.2}
    nodes = [helper.make_node("Sub", ["features", "mean"], ["c"]), helper.make_node("Mul", ["c", "inv"], ["z"]),
             helper.make_node("MatMul", ["z", "w1"], ["a1"]), helper.make_node("Add", ["a1", "b1"], ["a2"]),
             helper.make_node("Tanh", ["a2"], ["h"]), helper.make_node("MatMul", ["h", "we"], ["e1"]),
             helper.make_node("Tanh", ["e1"], ["embedding"]), helper.make_node("MatMul", ["embedding", "wl"], ["l1"]),
             helper.make_node("Add", ["l1", "bl"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    _graph(path.stem, {"features": f}, ["embedding", "probs"], nodes, inits, path, {"embedding": d, "probs": 3})


def _head_graph(path: Path, inputs: dict[str, int], rng, scale: float = 2.0, w: np.ndarray | None = None) -> None:
    from onnx import helper

    width = sum(inputs.values())
    w = rng.standard_normal((width, 3)) / np.sqrt(width) * scale if w is None else w
    inits = {"w": w, "b": rng.standard_normal(3) * 0.2}
    nodes = [helper.make_node("Concat", list(inputs), ["x"], axis=1), helper.make_node("MatMul", ["x", "w"], ["l1"]),
             helper.make_node("Add", ["l1", "b"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    _graph(path.stem, inputs, ["probs"], nodes, inits, path, {"probs": 3})


def _u_graph(path: Path, stats, d: int, rng) -> None:
    from onnx import helper

    inputs = {**FEATURES, "mask": 3}
    nodes, inits, parts = [], {}, []
    for k in FEATURES:  # standardized where present, zero where absent (mask column)
        mean, scale = stats[k]
        j = list(FEATURES).index(k)
        inits |= {f"{k}_mean": mean, f"{k}_inv": 1.0 / scale, f"{k}_sel": np.eye(3)[:, j:j + 1]}
        nodes += [helper.make_node("Sub", [k, f"{k}_mean"], [f"{k}_c"]),
                  helper.make_node("Mul", [f"{k}_c", f"{k}_inv"], [f"{k}_z"]),
                  helper.make_node("MatMul", ["mask", f"{k}_sel"], [f"{k}_m"]),
                  helper.make_node("Mul", [f"{k}_z", f"{k}_m"], [f"{k}_x"])]
        parts.append(f"{k}_x")
    width = sum(FEATURES.values())
    inits |= {"w1": rng.standard_normal((width + 3, d)) / np.sqrt(width) * 1.5,
              "wl": rng.standard_normal((d, 3)) / np.sqrt(d) * 2.5, "bl": rng.standard_normal(3) * 0.2}
    nodes += [helper.make_node("Concat", [*parts, "mask"], ["x"], axis=1), helper.make_node("MatMul", ["x", "w1"], ["e1"]),
              helper.make_node("Tanh", ["e1"], ["embedding"]), helper.make_node("MatMul", ["embedding", "wl"], ["l1"]),
              helper.make_node("Add", ["l1", "bl"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    _graph("u", inputs, ["probs", "embedding"], nodes, inits, path, {"probs": 3, "embedding": d})


def handmade_set(root: Path, *, kind: str = "main", d: int = 16, dtype: str = "f32", seed: int = 0,
                 uni_best: str = "sentiment", rules: tuple[float, float] = (0.6, 0.5), eta: float = 0.5,
                 log_w: tuple[float, float, float] = (0.0, -0.4, -0.2)) -> Path:
    """A model set folder (manifest.json, onnx/, bench.json) of small random graphs; see the module docstring."""
    from models.manifest import ManifestEntry, sha256_file, upsert_entries

    rng = np.random.default_rng(seed)
    stats = _stats()
    onnx_dir = root / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    entries = []

    def add(name: str, dim: int, dt: str, inputs: list[str], outputs: list[str], extra: dict | None = None) -> None:
        path = onnx_dir / f"{name}.onnx"
        entries.append(ManifestEntry(name, f"onnx/{name}.onnx", sha256_file(path), dim, dt, inputs, outputs,
                                     extra or {}))

    for role, f in FEATURES.items():
        _agent_graph(onnx_dir / f"{role}.onnx", f, d, stats[role], rng)
        add(role, d, dtype, ["features"], ["embedding", "probs"])
    _head_graph(onnx_dir / f"e-d{d}.onnx", {"embeddings": 3 * d, "mask": 3}, rng)
    add(f"e-d{d}", 3, "f32", ["embeddings", "mask"], ["probs"],
        {"agents": list(FEATURES), "embedding_dim": d, "embedding_dtype": dtype})
    if kind == "main":
        # A learned vote: each agent's confidence pulls towards its action, with noise.
        w = rng.standard_normal((12, 3)) * 0.5
        for j, pull in enumerate((4.0, 3.0, 2.5)):
            w[3 * j:3 * j + 3] += np.eye(3) * pull
        _head_graph(onnx_dir / "m-learned-dec.onnx", {"scores": 9, "mask": 3}, rng, w=w)
        add("m-learned-dec", 3, "f32", ["scores", "mask"], ["probs"])
        _head_graph(onnx_dir / "m-learned.onnx", {"scores": 9, "mask": 3}, rng, w=w)
        add("m-learned", 3, "f32", ["scores", "mask"], ["probs"])
        _u_graph(onnx_dir / "u.onnx", stats, 16, rng)
        add("u", 16, "f32", [*FEATURES, "mask"], ["probs", "embedding"])
    manifest = root / "manifest.json"
    upsert_entries(entries, manifest)
    files = {e.name: {"path": str(root / e.path), "bytes": (root / e.path).stat().st_size, "model_id": "0x" + e.sha256,
                      "dim": e.dim, "dtype": e.dtype} for e in entries}
    meta: dict[str, Any] = {"kind": kind, "files": files}
    if kind == "main":
        from node.experiment.jobs import RegretWeights

        w = RegretWeights(eta, list(log_w))
        meta |= {"uni_best": uni_best, "rules": {"risk_veto": rules[0], "lead": rules[1]},
                 "hedge": {"eta": eta, "log_w": list(log_w), "weights_bps": list(w.weights_bps().values())}}
    else:
        meta |= {"d": d, "dtype": dtype, "agents": list(FEATURES)}
    (root / "bench.json").write_text(json.dumps(meta, indent=2))
    return root


# -- the node pipeline, one task at a time -------------------------------------------------------------


def _board_weights(arch: int, uni_best: str | None) -> dict[int, int]:
    """What a bench session's board holds for `arch`: TaskBoard's constructor (0.5/0.3/0.2 for 0..2
    and 9..15, fusion alone for 3..5 and 8, coordinator alone for 6, 7), then what the runner sets."""
    from node.experiment.runner import Bench

    w = dict.fromkeys((int(r) for r in Role), 0)
    if arch in (3, 4, 5, 8):
        w[int(Role.FUSION)] = 10_000
    elif arch in (6, 7):
        w[int(Role.COORDINATOR)] = 10_000
    else:
        w |= {int(Role.MARKET): 5000, int(Role.SENTIMENT): 3000, int(Role.RISK): 2000}
    if uni_best is not None:
        class Board:
            def set_weights(self, a: int, weights: dict[int, int]) -> list[str]:
                if int(a) == arch:
                    w.update({int(r): int(v) for r, v in weights.items()})
                return []

        Bench._weights(Board(), uni_best)
    return w


def _finalize(sell: int, hold: int, buy: int) -> int:
    """TaskBoard.finalize: `if (sell > hold && sell > buy) 0; else if (buy > hold && buy > sell) 2; else 1`."""
    if sell > hold and sell > buy:
        return 0
    if buy > hold and buy > sell:
        return 2
    return 1


def build_node_agents(manifest: Path, specs: list, text: Any | None) -> dict[str, Any]:
    """One agent per node, built as `chorus node run` builds it (text: (encoder, id, name, encoding)
    for a fake encoder; None: each sentiment node and coordinator loads MiniLM itself)."""
    from agents.factory import build_agent

    out = {}
    for spec in specs:
        rules = tuple(float(x) for x in spec.rules.split(",")) if spec.rules else None
        kw: dict[str, Any] = {"manifest_path": manifest}
        if spec.role in (Role.SENTIMENT.label, Role.COORDINATOR.label) and text is not None:
            kw["text_encoder"] = text
        if rules is not None:
            kw["fusion_rules"] = rules
        out[spec.name] = build_agent(spec.role, **kw)
    return out


def node_pipeline_actions(manifest: Path, specs: list, stream: Any, archs: list[int], *, text: Any | None,
                          uni_best: str | None, hedge: Any = None, round_size: int | None = None,
                          quorums: dict[int, int] | None = None, agents: dict[str, Any] | None = None
                          ) -> dict[int, list[int]]:
    """arch -> the finalized action of every task of `stream` (module docstring)."""
    from agents.base import Decision, PeerOutput, TaskInput
    from node.protocol.enums import PROBABILITY_ARCHS
    from node.protocol.errors import PayloadError
    from node.protocol.payload import payload_hash, verify

    agents = agents or build_node_agents(manifest, specs, text)
    address = {spec.name: f"0x{k + 1:040x}" for k, spec in enumerate(specs)}
    payloads = []
    for raw in stream.payloads:
        try:
            payloads.append(verify(raw, payload_hash(raw)))
        except PayloadError:
            payloads.append(None)  # every node rejects the task: no decision, never finalized
    out: dict[int, list[int]] = {}
    for arch in archs:
        serving = [s for s in specs if arch in s.archs]
        nodes = [s for s in serving if not agents[s.name].waits_for_peers] + \
                [s for s in serving if agents[s.name].waits_for_peers]  # fusion decides once its peers are in
        state = None if hedge is None or arch != Arch.M_REGRET else type(hedge)(hedge.eta, list(hedge.log_w))
        actions: list[int] = []
        round_events: list[tuple[int, list[dict]]] = []
        for i, payload in enumerate(payloads):
            if state is not None and i % round_size == 0:
                for j, events in round_events:  # ArchJob._learn: the round's labels are revealed
                    by_role = {e["role"]: e for e in events if e["name"] == "DecisionPublished" and e["role"] in AGENT_ROLES}
                    acts = [by_role[r]["action"] if r in by_role else Action.HOLD for r in AGENT_ROLES]
                    present = [r in by_role and by_role[r]["confidence"] > 0 for r in AGENT_ROLES]
                    state.update(acts, present, int(stream.labels[j]))
                round_events = []
                weights = {**_board_weights(arch, uni_best), **{int(r): w for r, w in state.weights_bps().items()},
                           int(Role.FUSION): 0}
            elif state is None:
                weights = _board_weights(arch, uni_best)
            events: list[dict] = []
            for spec in nodes if payload is not None else ():
                agent = agents[spec.name]
                peers: list[PeerOutput] = []
                if agent.waits_for_peers:  # NodeRuntime._peers: one entry per other agent, events merged
                    slots: dict[str, dict] = {}
                    for e in events:
                        if e["agent"] == address[spec.name]:
                            continue
                        slot = slots.setdefault(e["agent"], {"agent": e["agent"]})
                        if e["name"] == "DecisionPublished":
                            slot.update(role=e["role"], action=e["action"], confidence=e["confidence"])
                        elif e["name"] == "ProbabilitiesPublished":
                            slot.update(probs=e["probs"])
                        else:
                            slot.update(model_id=bytes.fromhex(e["model_id"].removeprefix("0x")),
                                        encoding=e["encoding"], vector=e["vector"])
                    peers = [PeerOutput(**s) for s in slots.values()]
                    decided = sum(1 for p in peers if p.action is not None and p.role in AGENT_ROLES)
                    quorum = (quorums or {}).get(arch)
                    expected = len(AGENT_ROLES) if quorum is None else max(1, min(quorum - 1, len(AGENT_ROLES)))
                    assert decided >= expected, f"task {i} arch {arch}: the fusion node would still wait"
                result = agent.run(TaskInput(i + 1, arch, payload, tuple(peers)))
                ident = agent.identity
                if result.embedding is not None and arch in spec.embedding_archs and ident.publishes_embeddings:
                    emb = result.embedding
                    events.append({"name": "EmbeddingPublished", "agent": address[spec.name],
                                   "model_id": "0x" + bytes(emb.model_id).hex(), "encoding": int(emb.encoding),
                                   "vector": emb.to_bytes()})
                decision = result.decision
                if result.probs is not None and arch in PROBABILITY_ARCHS:  # publishProbabilities
                    decision = Decision.from_bps(result.probs)
                events.append({"name": "DecisionPublished", "agent": address[spec.name], "role": int(ident.role),
                               "action": int(decision.action), "confidence": int(decision.confidence)})
                if result.probs is not None and arch in PROBABILITY_ARCHS:
                    events.append({"name": "ProbabilitiesPublished", "agent": address[spec.name],
                                   "probs": tuple(result.probs)})
            tally = [0, 0, 0]
            decisions = [e for e in events if e["name"] == "DecisionPublished"]
            if quorums is not None and arch in quorums and payload is not None:
                assert len(decisions) == quorums[arch], f"arch {arch}: {len(decisions)} decisions, quorum {quorums[arch]}"
            for e in decisions:
                tally[e["action"]] += weights[e["role"]] * e["confidence"]
            actions.append(_finalize(*tally) if decisions else -1)
            round_events.append((i, events))
        out[arch] = actions
    return out
