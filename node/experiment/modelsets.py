"""Model sets: the models one seed (or one sweep point) deploys, trained, exported and cached.

A main set is what `models.train.train_deployables` trains (the three agents with 16-d
embeddings, the M-learned stackers, the E-d head, U), exported to ONNX with parity checks into a
manifest of its own, plus what the bench picks on the validation split for the architectures the
chain fuses: the Uni-best agent, M-rules' thresholds, M-regret's Hedge rate and starting weights.
An E-d set holds agents with d-dim embeddings published as `dtype`, and the E-d head for them.
An ablation set holds, on a main set's data, E-through's agents and head (trained end to end through
the bottleneck, then deployed as independent agents) and U-concat (U without attention) as `u`.
An alignment set holds one market agent trained apart from a main set's (another seed, the same
architecture and setting: `node.experiment.alignment`).

Sets are cached under `models/artifacts/bench/<profile>/<name>-<hash>/` (the hash covers the data
config, the seed and the budget); `bench.json` is written last, so an interrupted training is
simply redone and a finished one is never repeated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from node.experiment.config import TrainBudget
from node.protocol.enums import AGENT_ROLES

log = logging.getLogger(__name__)

META = "bench.json"
Progress = Callable[[str], None]


def bench_root() -> Path:
    from models.manifest import ARTIFACTS_DIR

    return ARTIFACTS_DIR / "bench"


@dataclass
class ModelSet:
    """A trained, exported set of models and what the bench needs to know about it."""

    directory: Path
    meta: dict[str, Any]

    @property
    def manifest(self) -> Path:
        return self.directory / "manifest.json"

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def uni_best(self) -> str:
        return self.meta["uni_best"]

    @property
    def rules(self) -> str:
        r = self.meta["rules"]
        return f"{r['risk_veto']},{r['lead']}"

    def files(self) -> dict[str, dict[str, Any]]:
        return self.meta["files"]

    def model_bytes(self, names: list[str]) -> int:
        return int(sum(self.files()[n]["bytes"] for n in names if n in self.files()))

    def model_id(self, name: str) -> str:
        return self.files()[name]["model_id"]


def dataset_config(alpha: float, n_test: int, budget: TrainBudget, data: Path | None = None, latent_dim: int = 1):
    from models.data.splits import FileConfig, SyntheticConfig

    if data is not None:
        return FileConfig(path=str(data))
    return SyntheticConfig(n_train=budget.n_train, n_val=budget.n_val, n_test=n_test, alpha=alpha,
                           latent_dim=latent_dim)


def _latent_part(latent_dim: int) -> dict[str, int]:
    """The cache key's latent_dim: only when it is not 1, so the sets cached before it stay valid."""
    return {} if latent_dim == 1 else {"latent_dim": int(latent_dim)}


def _train_budget(budget: TrainBudget):
    from models.train import Budget

    return Budget(epochs=budget.epochs, trials=budget.trials, patience=budget.patience, folds=budget.folds)


AGENT_ENCODER = "slots-mean"
"""How the trained agent encoders read a slotted input (`models.train.AGENT_POOL`: the sentiment
agent pools its headline slots by masked mean); in every key, so a set whose sentiment agent was one
flat MLP on the slots (FEATURES_VERSION 2 before the slot agent) is not reused. Change with AGENT_POOL."""


def _key(**parts: Any) -> str:
    """A set's cache key: its parts and the version of the headline embeddings it trained on (a set
    trained on the batch-filled cache of version 1 is not reused)."""
    from models.data.embed import CACHE_VERSION
    from models.data.features import FEATURES_VERSION

    blob = json.dumps({**parts, "text_cache": CACHE_VERSION, "features": FEATURES_VERSION, "agents": AGENT_ENCODER},
                      sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def _data_fingerprint(data: Path | None) -> str | None:
    if data is None:
        return None
    h = hashlib.sha256()
    with open(data, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _load(directory: Path) -> ModelSet | None:
    path = directory / META
    if not path.is_file():
        return None
    try:
        return ModelSet(directory, json.loads(path.read_text()))
    except ValueError:
        return None


def _write_meta(directory: Path, meta: dict[str, Any]) -> None:
    tmp = directory / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=float) + "\n")
    os.replace(tmp, directory / META)


def _files(manifest: Path) -> dict[str, dict[str, Any]]:
    from models.manifest import load_manifest

    out = {}
    for name, entry in load_manifest(manifest).items():
        path = entry.file(manifest.parent)
        out[name] = {"path": str(path), "bytes": path.stat().st_size, "model_id": "0x" + entry.sha256,
                     "dim": entry.dim, "dtype": entry.dtype}
    return out


def _save_eval(splits, path: Path) -> None:
    te = splits.test
    np.savez(path, names=np.array(te.names), mask=te.mask, y=te.y, n_classes=te.n_classes,
             **{f"x_{k}": te.x[k] for k in te.names})


def _cached_or_trained(directory: Path, train: Callable[[], dict[str, Any]], **meta_extra: Any) -> ModelSet:
    """The model set in `directory` if a finished one is there, else `train()` into it, its meta
    completed with `meta_extra` and the training time, and written last (marking it finished)."""
    cached = _load(directory)
    if cached is not None:
        return cached
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    meta = train()
    meta.update(**meta_extra, train_s=time.perf_counter() - t0)
    _write_meta(directory, meta)
    return ModelSet(directory, meta)


# -- main sets ----------------------------------------------------------------------------------------


def ensure_main_set(profile_name: str, seed: int, alpha: float, n_test: int, budget: TrainBudget,
                    data: Path | None = None, progress: Progress | None = None, root: Path | None = None,
                    latent_dim: int = 1) -> ModelSet:
    """The seed's deployed models at synergy `alpha` (trained and exported unless cached)."""
    key = main_key(seed, alpha, n_test, budget, data, latent_dim)
    directory = (root or bench_root()) / profile_name / f"main-a{alpha:g}-s{seed}-{key}"
    return _cached_or_trained(
        directory, lambda: _train_main(dataset_config(alpha, n_test, budget, data, latent_dim), seed,
                                       _train_budget(budget), directory, progress),
        kind="main", seed=seed, alpha=alpha, budget=asdict(budget), **_latent_part(latent_dim))


def main_key(seed: int, alpha: float, n_test: int, budget: TrainBudget, data: Path | None = None,
             latent_dim: int = 1) -> str:
    """The cache key of a main set (latent_dim in it only when it is not 1)."""
    return _key(kind="main", seed=seed, alpha=alpha, n_test=n_test, budget=asdict(budget),
                data=_data_fingerprint(data), **_latent_part(latent_dim))


def _train_main(cfg, seed: int, budget, directory: Path, progress: Progress | None) -> dict[str, Any]:
    from models import fusion
    from models.data.splits import config_to_dict, make_splits
    from models.export import export_all
    from models.train import (
        AGENT_DIM,
        _torch_threads,
        agent_outputs,
        evaluate_split,
        save_checkpoint,
    )

    splits = make_splits(cfg, seed)
    res = evaluate_split(splits, budget, seed, ((AGENT_DIM, "f32", "frozen"),), progress)
    ckpt = directory / "checkpoints"
    names = list(splits.train.names)
    common = {"dataset": config_to_dict(cfg), "seed": seed, "budget": asdict(budget), "names": names,
              "test_scores": res.scores, "publish_dtype": "f32"}
    for name, model in res.models.items():
        save_checkpoint(ckpt / f"{name}.pt", model, {**common, "name": name})
    _save_eval(splits, ckpt / "eval.npz")

    # What the chain-fused architectures need, picked on the validation split.
    with _torch_threads(1):
        out_va = agent_outputs([res.models[n] for n in names], splits.val)
    act, conf = out_va.decisions
    y = splits.val.y
    grid = fusion.RULE_GRID[:budget.trials]
    rule_acc = [float(np.mean(fusion.m_rules(act, conf, out_va.mask, p) == y)) for p in grid]
    rules = grid[int(np.argmax(rule_acc))]
    etas = fusion.HEDGE_ETAS[:budget.trials]
    hedge_acc = [float(np.mean(fusion.Hedge(len(names), eta).run(act, conf, out_va.mask, y) == y)) for eta in etas]
    eta = etas[int(np.argmax(hedge_acc))]
    hedge = fusion.Hedge(len(names), eta)
    hedge.run(act, conf, out_va.mask, y)  # the weights the test stream starts from
    if progress:
        progress("export")
    export_all(ckpt, directory / "onnx", directory / "manifest.json", int8=False)
    return {
        "uni_best": res.detail["uni_best_agent"],
        "rules": asdict(rules),
        "hedge": {"eta": eta, "log_w": hedge.log_w.tolist(), "weights_bps": hedge.weights_bps().tolist()},
        "offchain": res.scores,
        "detail": {k: v for k, v in res.detail.items() if k != "hedge_weights"},
        "files": _files(directory / "manifest.json"),
    }


# -- E-d sets -----------------------------------------------------------------------------------------


def ensure_ed_set(profile_name: str, seed: int, alpha: float, n_test: int, budget: TrainBudget, d: int, dtype: str,
                  data: Path | None = None, progress: Progress | None = None, root: Path | None = None,
                  latent_dim: int = 1) -> ModelSet:
    """Agents with d-dim embeddings published as `dtype`, and the E-d head trained on them."""
    key = _key(kind="ed", seed=seed, alpha=alpha, n_test=n_test, budget=asdict(budget), d=d, dtype=dtype,
               data=_data_fingerprint(data), **_latent_part(latent_dim))
    directory = (root or bench_root()) / profile_name / f"ed{d}-{dtype}-a{alpha:g}-s{seed}-{key}"
    return _cached_or_trained(
        directory, lambda: _train_ed(dataset_config(alpha, n_test, budget, data, latent_dim), seed,
                                     _train_budget(budget), d, dtype, directory, progress),
        kind="ed", seed=seed, alpha=alpha, d=d, dtype=dtype, budget=asdict(budget), **_latent_part(latent_dim))


def _logits(model, *xs):
    out = model(*xs)
    return out[1] if isinstance(out, tuple) else out


def _train_ed(cfg, seed: int, budget, d: int, dtype: str, directory: Path, progress: Progress | None
              ) -> dict[str, Any]:
    from models.data.splits import config_to_dict, make_splits
    from models.export import export_all
    from models.train import (
        _torch_threads,
        agent_outputs,
        ed_inputs,
        metrics,
        predict_logits,
        save_checkpoint,
        train_agent,
        train_ed_head,
    )

    splits = make_splits(cfg, seed)
    tr, va, te = splits.train, splits.val, splits.test
    with _torch_threads(1):
        # The seeds evaluate_split gives its frozen d-dim agents and its E-d heads.
        agents = [train_agent(tr, va, k, budget, seed + 11 * k, embed_dim=d).model for k in range(len(tr.names))]
        if progress:
            progress(f"agents d={d}")
        o_tr, o_va, o_te = (agent_outputs(agents, fs) for fs in (tr, va, te))
        head = train_ed_head(o_tr, tr.y, o_va, va.y, dtype, budget, seed + 19)
        pred = predict_logits(head.model, ed_inputs(o_te, dtype), _logits).argmax(1)
    if progress:
        progress(f"E-{d} {dtype} head")
    ckpt = directory / "checkpoints"
    names = list(tr.names)
    common = {"dataset": config_to_dict(cfg), "seed": seed, "budget": asdict(budget), "names": names,
              "publish_dtype": dtype}
    for name, model in zip(names, agents, strict=True):
        save_checkpoint(ckpt / f"{name}.pt", model, {**common, "name": name})
    save_checkpoint(ckpt / f"e-d{d}.pt", head.model, {**common, "name": f"e-d{d}"})
    _save_eval(splits, ckpt / "eval.npz")
    export_all(ckpt, directory / "onnx", directory / "manifest.json", int8=False)
    return {"offchain": {"E-d": metrics(te.y, pred, te.n_classes)}, "files": _files(directory / "manifest.json"),
            "agents": names}


# -- ablation sets ------------------------------------------------------------------------------------


def ensure_ablation_set(profile_name: str, seed: int, alpha: float, n_test: int, budget: TrainBudget,
                        data: Path | None = None, progress: Progress | None = None, root: Path | None = None,
                        latent_dim: int = 1) -> ModelSet:
    """The ablation rows' models on a main set's data (same config and seed, so the same tasks):
    E-through's agents (encoders trained end to end through the 16-d bottleneck, deployed apart)
    with that E-d head, and U-concat (U's tokens concatenated, no attention) as `u`."""
    key = _key(kind="ablation", seed=seed, alpha=alpha, n_test=n_test, budget=asdict(budget),
               data=_data_fingerprint(data), **_latent_part(latent_dim))
    directory = (root or bench_root()) / profile_name / f"ablation-a{alpha:g}-s{seed}-{key}"
    return _cached_or_trained(
        directory, lambda: _train_ablation(dataset_config(alpha, n_test, budget, data, latent_dim), seed,
                                           _train_budget(budget), directory, progress),
        kind="ablation", seed=seed, alpha=alpha, budget=asdict(budget), **_latent_part(latent_dim))


def _train_ablation(cfg, seed: int, budget, directory: Path, progress: Progress | None) -> dict[str, Any]:
    from models.data.splits import config_to_dict, make_splits
    from models.export import export_all
    from models.train import (
        AGENT_DIM,
        _inputs,
        _torch_threads,
        metrics,
        predict_logits,
        save_checkpoint,
        through_agents,
        train_ed_joint,
        train_u,
        tuning_of,
    )

    splits = make_splits(cfg, seed)
    tr, va, te = splits.train, splits.val, splits.test
    with _torch_threads(1):
        # The seeds evaluate_split gives its E-through variant and U.
        joint = train_ed_joint(tr, va, AGENT_DIM, "f32", budget, seed + 23)
        agents = through_agents(joint.model, tr, va, joint.hp, budget, seed)
        if progress:
            progress(f"E-{AGENT_DIM} through the bottleneck")
        concat = train_u(tr, va, budget, seed + 29, mixer="concat")
        if progress:
            progress("U-concat")
        pred_e = predict_logits(joint.model, _inputs(te), _logits).argmax(1)
        pred_u = predict_logits(concat.model, _inputs(te), _logits).argmax(1)
    ckpt = directory / "checkpoints"
    names = list(tr.names)
    common = {"dataset": config_to_dict(cfg), "seed": seed, "budget": asdict(budget), "names": names,
              "publish_dtype": "f32"}
    for name, model in zip(names, agents, strict=True):
        save_checkpoint(ckpt / f"{name}.pt", model, {**common, "name": name, "trained": "through"})
    save_checkpoint(ckpt / f"e-d{AGENT_DIM}.pt", joint.model.head, {**common, "name": f"e-d{AGENT_DIM}",
                                                                   "trained": "through"})
    save_checkpoint(ckpt / "u.pt", concat.model, {**common, "name": "u", "mixer": "concat"})
    _save_eval(splits, ckpt / "eval.npz")
    if progress:
        progress("export")
    export_all(ckpt, directory / "onnx", directory / "manifest.json", int8=False)
    return {"offchain": {"E-d": metrics(te.y, pred_e, te.n_classes), "U": metrics(te.y, pred_u, te.n_classes)},
            "files": _files(directory / "manifest.json"), "agents": names,
            "detail": {"tuning": {f"e-d{AGENT_DIM}": tuning_of(joint, budget), "u": tuning_of(concat, budget)}}}


# -- building in the background ------------------------------------------------------------------------


@dataclass(frozen=True)
class SetSpec:
    """Which model set: everything its training depends on."""

    kind: str  # "main", "ed", "ablation" or "alignment" (`node.experiment.alignment`)
    profile: str
    seed: int
    alpha: float
    n_test: int
    budget: TrainBudget
    data: str | None = None
    d: int = 16
    dtype: str = "f32"
    latent_dim: int = 1
    """The synthetic market's latent dimension (`models.data.synthetic`); 1: the original generator."""

    @property
    def label(self) -> str:
        what = f"E-{self.d}/{self.dtype}" if self.kind == "ed" else self.kind
        return f"{what} a={self.alpha:g} s={self.seed}"


def build(spec: SetSpec, root: str | None = None) -> tuple[str, dict[str, Any]]:
    """Train and export `spec` unless cached (under `root`, default `bench_root()`): (folder, meta)."""
    data = Path(spec.data) if spec.data else None
    where = Path(root) if root else None
    if spec.kind == "main":
        ms = ensure_main_set(spec.profile, spec.seed, spec.alpha, spec.n_test, spec.budget, data, root=where,
                             latent_dim=spec.latent_dim)
    elif spec.kind == "ablation":
        ms = ensure_ablation_set(spec.profile, spec.seed, spec.alpha, spec.n_test, spec.budget, data, root=where,
                                 latent_dim=spec.latent_dim)
    elif spec.kind == "alignment":
        from node.experiment.alignment import ensure_alignment_set

        ms = ensure_alignment_set(spec.profile, spec.seed, spec.alpha, spec.n_test, spec.budget, data, root=where,
                                  latent_dim=spec.latent_dim)
    else:
        ms = ensure_ed_set(spec.profile, spec.seed, spec.alpha, spec.n_test, spec.budget, spec.d, spec.dtype, data,
                           root=where, latent_dim=spec.latent_dim)
    return str(ms.directory), ms.meta


def _worker_init() -> None:  # pragma: no cover - runs in the worker
    import logging as _logging
    import signal
    import sys

    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # torch runs one thread too (models.train)
    try:
        os.nice(10)  # the chain work being measured comes first
    except OSError:
        pass
    if sys.platform.startswith("linux"):  # die with the bench, even when it is SIGKILLed
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    _logging.basicConfig(level=_logging.WARNING)


class Factory:
    """Model sets in plan order, trained ahead of need by `workers` background processes (one
    torch thread each, lower priority), so training overlaps the chain work of earlier sessions.
    A set's training depends only on its spec, so how many train at once changes no model."""

    def __init__(self, background: bool = True, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"training workers must be at least 1, got {workers}")
        self.background, self.workers = background, workers
        self._pool = None
        self._futures: dict[tuple[SetSpec, str | None], Any] = {}

    def prefetch(self, specs: list[SetSpec]) -> None:
        if not self.background:
            return
        for spec in specs:
            self._submit(spec)

    def prefetch_into(self, spec: SetSpec, root: str) -> None:
        """Train `spec` again into `root` (ignoring the cache there is none: `root` is fresh)."""
        if self.background:
            self._submit(spec, root)

    def _submit(self, spec: SetSpec, root: str | None = None):
        if (spec, root) in self._futures:
            return self._futures[(spec, root)]
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_init)
        future = self._pool.submit(build, spec, root)
        self._futures[(spec, root)] = future
        return future

    def get(self, spec: SetSpec, root: str | None = None) -> ModelSet:
        if not self.background:
            directory, meta = build(spec, root)
        else:
            directory, meta = self._submit(spec, root).result()
        return ModelSet(Path(directory), meta)

    def close(self) -> None:
        """Stop the background process, whatever it is doing (an unfinished set is redone next time)."""
        if self._pool is None:
            return
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)
        self._pool = None


def minilm_bytes() -> int:
    """Size of the MiniLM ONNX file the sentiment agents and U coordinators run (0 if absent)."""
    from models.manifest import ARTIFACTS_DIR, MANIFEST_PATH, load_manifest

    entry = load_manifest(MANIFEST_PATH).get("minilm-f32")
    if entry is None:
        return 0
    path = entry.file(ARTIFACTS_DIR)
    return path.stat().st_size if path.is_file() else 0


def role_models(role: str) -> list[str]:
    """Manifest names of the ONNX files an agent of `role` runs from its model set."""
    return [role] if role in {r.label for r in AGENT_ROLES} else []
