"""Width sweep at latent_dim m > 1: where squeezing starts, if it does (issue 11, deliver 3).

The argument Chorus tests says that a low-dimensional interface "squeezes" distinct meanings
together. At latent_dim 1 nothing can be squeezed (each modality's signal is one number); at m = 8
(`models.data.synthetic`, "Latent dimension") each modality carries an m-dimensional latent and the
label reads bilinear cross-modal forms of them, so a narrow interface can lose what the label needs.

What is measured, per seed (the splits made once: `SyntheticConfig(latent_dim, alpha, n_train,
n_val, n_test)`, `make_splits`), for every width w:

- **U** with its shared width fixed to w: d_model = w (the tokens, the residual stream and the
  attention all have width w), with the largest head count <= the default that divides w
  (`models.train.heads_for`); the other hyper-parameters (lr, weight decay, dropout) are tuned over
  the same first `budget.trials` entries of `models.train.SEARCH` every other model tries, chosen on
  validation (`train_u(..., width=w)`).
- **E-through** with bottleneck d = w: every agent's encoder trained end to end through its d-dim
  tanh embedding into the E-d head (`train_ed_joint`, dtype f32), the encoders' and head's MLP width
  tuned over the same settings.

Both are scored on the seed's test set (accuracy: the fraction of test tasks whose argmax is the
label). Over seeds: the mean with its 95% two-level bootstrap interval (seeds resampled, then tasks
within each seed: `node.experiment.report.metrics.boot_mean`), and, per model, the paired difference
of each width against the widest, task by task on the same tasks (`paired_difference`). Fractions
throughout, as in results.json; an interval is a [lo, hi] list.

Caveat on U at w <= 2: U normalises every token over its d_model features (LayerNorm). At d_model
1 a LayerNorm's output is its bias, whatever the input, so U's prediction is constant; at 2 it keeps
only the sign of the difference of the two features. A drop of U there is that architecture at that
width, not evidence of squeezing alone; the rendered section says so.

Training CPU seconds (`time.process_time` around each model's training, one torch thread) are
reported per model and width (mean per seed). The observation ceiling is not reported: at
latent_dim > 1 `models.data.ceiling` computes only an upper bound (`measurement_bound`); the latent
oracle's accuracy on the same tasks is reported as the (unreachable) reference instead.

Results are cached per (seed, width) as JSON under `root` (default: the bench's model-set root,
`bench_root() / "width"`), keyed by every parameter that changes them; a second run reuses them.
Same seed and parameters give identical figures (training is seeded as `models.train` does it and
runs on one torch thread); only the CPU seconds vary between fresh runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from node.experiment.report.metrics import boot_mean, correctness, encode_actions, excludes_zero, paired_difference

WIDTHS = (1, 2, 4, 16, 64)
"""The widths of issue 11: U's d_model and E-through's bottleneck d."""
MODELS = ("U", "E-through")
U_SEED, E_SEED = 29, 23
"""Offsets of the training seeds from the split seed (those `models.train.evaluate_split` uses)."""
SWEEP_BUDGET = {"epochs": 8, "trials": 4, "patience": 3}
"""The full profile's tuning budget (fields of `models.train.Budget`; the rest at their defaults)."""
CONSTANT_MARK = "‡"
"""Marks a row whose model predicts one class on every test task."""
CACHE_VERSION = 4
"""Bumped when what a cached record holds, or how it is computed, changes (2: trained on headline
embeddings computed one text at a time, `models.data.embed`; 3: on per-headline sentiment features,
`models.data.features.FEATURES_VERSION` 2; 4: E-through's sentiment encoder reads the headline slots,
`models.nets.AgentNetConfig.slots`)."""

Progress = Callable[[str], None]


def _default_budget():
    from models.train import Budget

    return Budget(**SWEEP_BUDGET)


def _embedder_name(embedder: Any) -> str:
    if embedder is None:
        return "default"
    return f"{type(embedder).__module__}.{type(embedder).__qualname__}:{getattr(embedder, 'dim', '')}"


def _params(seed: int, width: int, alpha: float, latent_dim: int, n_train: int, n_val: int, n_test: int,
            budget, embedder: Any) -> dict[str, Any]:
    return {"version": CACHE_VERSION, "seed": int(seed), "width": int(width), "alpha": float(alpha),
            "latent_dim": int(latent_dim), "n_train": int(n_train), "n_val": int(n_val), "n_test": int(n_test),
            "budget": asdict(budget), "embedder": _embedder_name(embedder), "u_seed": U_SEED, "e_seed": E_SEED}


def cache_path(root: Path, params: dict[str, Any]) -> Path:
    """Where one (seed, width) record lives: named by seed and width, keyed by every parameter."""
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return root / "width" / f"m{params['latent_dim']}-a{params['alpha']:g}-s{params['seed']}-w{params['width']}-{key}.json"


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if rec.get("params") == params else None


def _tuning(result, budget, width: int, **shape: int) -> dict[str, Any]:
    """`models.train.tuning_of` with the width; `hp` holds only what was tuned (U's `hidden` is not:
    its d_model is the width)."""
    from models.train import tuning_of

    t = tuning_of(result, budget)
    if shape:
        t["hp"].pop("hidden", None)
    return t | {"width": int(width), **shape}


def train_width(splits, width: int, budget, seed: int) -> dict[str, dict[str, Any]]:
    """U at d_model = `width` and E-through at d = `width` on one seed's splits, scored on its test
    set: {model: {"pred" (test predictions, `encode_actions`), "accuracy", "cpu_s", "tuning"}}."""
    from models.train import _call_logits, _inputs, _torch_threads, heads_for, predict_logits, train_ed_joint, train_u

    tr, va, te = splits.train, splits.val, splits.test
    out: dict[str, dict[str, Any]] = {}
    with _torch_threads(1):
        for name in MODELS:
            start = time.process_time()
            if name == "U":
                fit = train_u(tr, va, budget, seed + U_SEED, width=width)
                tuning = _tuning(fit, budget, width, n_heads=heads_for(int(width)))
            else:
                fit = train_ed_joint(tr, va, int(width), "f32", budget, seed + E_SEED)
                tuning = _tuning(fit, budget, width)
            cpu = time.process_time() - start
            pred = predict_logits(fit.model, _inputs(te), _call_logits).argmax(1)
            out[name] = {"pred": encode_actions(pred), "accuracy": float(np.mean(pred == te.y)), "cpu_s": float(cpu),
                         "tuning": tuning}
    return out


def width_sweep(seeds: Sequence[int], widths: Sequence[int] = WIDTHS, alpha: float = 0.5, latent_dim: int = 8,
                n_train: int = 5000, n_val: int = 1000, n_test: int = 5000, budget=None, root: Path | None = None,
                progress: Progress | None = None, embedder=None) -> dict[str, Any]:
    """U's shared width and E-through's bottleneck d over `widths`, on the same tasks per seed.

    `budget`: a `models.train.Budget` (default: `SWEEP_BUDGET`, the full profile's). `embedder`: the
    headline embedder (default MiniLM; tests pass `HashEmbedder`). Returns a JSON-able dict:
    {"latent_dim", "alpha", "widths", "seeds", "n_train", "n_eval_tasks", "budget", "rows": {model:
    [{"width", "accuracy", "accuracy_ci" [lo, hi], "per_seed" [...], "constant" (True when the model
    predicts one class on every test task of every seed)}]}, "diffs": {model: [{"width",
    "vs_width" (the widest), "diff", "ci" [lo, hi]}]} (one per width but the widest), "cpu_s": {model:
    {width: mean training CPU seconds per seed}}, "cpu_s_total", "latent_oracle" {"accuracy",
    "accuracy_ci"}, "ceiling" (None: only a bound exists at latent_dim > 1), "tuning" {model: {width:
    [per seed]}}, "definition"}.
    """
    from models.data.splits import SyntheticConfig, make_splits

    if root is None:
        from node.experiment.modelsets import bench_root

        root = bench_root()
    budget = budget or _default_budget()
    widths = sorted({int(w) for w in widths})
    if not widths or widths[0] < 1:
        raise ValueError(f"widths must be positive integers, got {widths}")
    seeds = [int(s) for s in seeds]
    cfg = SyntheticConfig(n_train=n_train, n_val=n_val, n_test=n_test, alpha=float(alpha), latent_dim=int(latent_dim))
    step = progress or (lambda _msg: None)

    records: dict[tuple[int, int], dict[str, Any]] = {}
    for seed in seeds:
        splits = None
        for w in widths:
            params = _params(seed, w, alpha, latent_dim, n_train, n_val, n_test, budget, embedder)
            path = cache_path(Path(root), params)
            rec = _read(path, params)
            if rec is None:
                if splits is None:
                    splits = make_splits(cfg, seed, embedder)
                te = splits.test
                rec = {"params": params, "labels": encode_actions(te.y),
                       "oracle": None if te.oracle is None else encode_actions(te.oracle),
                       "models": train_width(splits, w, budget, seed)}
                _write_atomic(path, rec)
                step(f"width {w}, seed {seed}: trained")
            else:
                step(f"width {w}, seed {seed}: cached")
            records[seed, w] = rec
    return _aggregate(records, seeds, widths, alpha, latent_dim, n_train, n_test, budget)


def _correct(rec: dict[str, Any], model: str) -> np.ndarray:
    return correctness(rec["models"][model]["pred"], rec["labels"])


def _aggregate(records: dict[tuple[int, int], dict[str, Any]], seeds: list[int], widths: list[int], alpha: float,
               latent_dim: int, n_train: int, n_test: int, budget) -> dict[str, Any]:
    widest = widths[-1]
    rows: dict[str, list[dict[str, Any]]] = {}
    diffs: dict[str, list[dict[str, Any]]] = {}
    cpu: dict[str, dict[str, float]] = {}
    tuning: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for model in MODELS:
        rows[model], diffs[model], cpu[model], tuning[model] = [], [], {}, {}
        ref = [_correct(records[s, widest], model) for s in seeds]
        for w in widths:
            corr = [_correct(records[s, w], model) for s in seeds]
            acc, ci = boot_mean(corr)
            preds = [records[s, w]["models"][model]["pred"] for s in seeds]
            rows[model].append({"width": w, "accuracy": acc, "accuracy_ci": ci,
                                "per_seed": [float(c.mean()) for c in corr],
                                "constant": all(len(set(p)) == 1 for p in preds)})
            if w != widest:
                d, dci = paired_difference(corr, ref)
                diffs[model].append({"width": w, "vs_width": widest, "diff": d, "ci": dci})
            cpu[model][str(w)] = float(np.mean([records[s, w]["models"][model]["cpu_s"] for s in seeds]))
            tuning[model][str(w)] = [records[s, w]["models"][model]["tuning"] for s in seeds]
    oracle = [records[s, widest]["oracle"] for s in seeds]
    latent = None
    if all(o is not None for o in oracle):
        acc, ci = boot_mean([correctness(o, records[s, widest]["labels"]) for s, o in zip(seeds, oracle)])
        latent = {"accuracy": acc, "accuracy_ci": ci}
    return {
        "latent_dim": int(latent_dim), "alpha": float(alpha), "widths": widths, "seeds": seeds, "n_train": int(n_train),
        "n_eval_tasks": int(n_test), "budget": asdict(budget), "rows": rows, "diffs": diffs, "cpu_s": cpu,
        "cpu_s_total": float(sum(sum(v.values()) for v in cpu.values()) * len(seeds)),
        "latent_oracle": latent, "ceiling": None,
        "ceiling_note": (f"not reported: at latent_dim {latent_dim} only an upper bound on the observation ceiling "
                         "is computed (models.data.ceiling.measurement_bound)") if latent_dim > 1 else
                        "not computed by the sweep",
        "tuning": tuning,
        "definition": ("U with d_model = width (heads: the largest count <= 4 dividing it) and E-through with "
                       "bottleneck d = width, each tuned over the same settings on validation and scored on the "
                       "seed's test tasks; accuracy is the mean over seeds with its 95% two-level bootstrap "
                       "interval, each width's difference against the widest is paired task by task"),
    }


def render_width(section: dict[str, Any]) -> list[str]:
    """report.md lines of the width sweep: the table, the CPU line and the conclusion (a sentence per
    difference whose interval excludes zero, else one saying no width effect is resolved)."""
    # report.render imports this module to wire the section in: its formatters are imported here.
    from node.experiment.report.render import _interval, _pct, _pts, _table

    m = section.get("latent_dim")
    out = [f"## Width at m = {m} (squeezing)", ""]
    rows = section.get("rows") or {}
    if not rows or not any(rows.values()):
        return out + ["Not run.", ""]
    seeds = section.get("seeds") or []
    widths = section["widths"]
    widest = widths[-1]
    out += [(f"U with its shared width (d_model) fixed, and E-through with its bottleneck d, at each width, on "
             f"the same {section.get('n_eval_tasks')} test tasks per seed (latent_dim {m}, alpha "
             f"{section.get('alpha'):g}, {section.get('n_train')} training tasks, {len(seeds)} seed"
             f"{'' if len(seeds) == 1 else 's'}). Accuracy in percent with its 95% two-level bootstrap interval; "
             f"each width's difference against width {widest} of the same model, paired task by task, in points."), ""]
    by = {model: {r["width"]: r for r in rows.get(model, [])} for model in MODELS}
    dif = {model: {d["width"]: d for d in (section.get("diffs") or {}).get(model, [])} for model in MODELS}

    def diff_cell(model: str, w: int) -> str:
        if w == widest:
            return "reference"
        d = dif[model].get(w)
        return _pts(d["diff"], d["ci"]) if d else "–"

    def acc_cell(model: str, w: int) -> str:
        r = by[model].get(w, {})
        return _pct(r.get("accuracy"), r.get("accuracy_ci")) + (f" {CONSTANT_MARK}" if r.get("constant") else "")

    table = [[str(w), acc_cell("U", w), diff_cell("U", w), acc_cell("E-through", w), diff_cell("E-through", w)]
             for w in widths]
    out += [_table(["width", "U accuracy % [95% CI]", f"U − U at {widest}, pts [95% CI]",
                    "E-through accuracy % [95% CI]", f"E-through − E-through at {widest}, pts [95% CI]"], table), ""]
    if any(r.get("constant") for model in MODELS for r in rows.get(model, [])):
        out += [f"{CONSTANT_MARK} The model predicts one class on every test task (of every seed).", ""]
    if section.get("latent_oracle"):
        lo = section["latent_oracle"]
        out += [(f"Latent oracle on the same tasks: {_pct(lo.get('accuracy'), lo.get('accuracy_ci'))} %. "
                 f"Observation ceiling: {section.get('ceiling_note', 'not reported')}."), ""]
    cpu = section.get("cpu_s") or {}
    if cpu:
        parts = [f"{model} " + ", ".join(f"{cpu[model][str(w)]:.1f}" for w in widths if str(w) in cpu[model])
                 for model in MODELS if model in cpu]
        out += [f"Training CPU seconds per seed (one torch thread), at widths {', '.join(map(str, widths))}: "
                + "; ".join(parts) + f". The sweep's total: {section.get('cpu_s_total', 0.0):.0f} s.", ""]
    if any(w <= 2 for w in widths) and "U" in rows:
        out += [("U at d_model 1 and 2: its LayerNorms normalise each token over d_model features, which at 1 "
                 "leaves only the bias (a constant prediction) and at 2 only a sign, so U's figures there measure "
                 "that architecture at that width, not squeezing alone."), ""]
    said = []
    for model in MODELS:
        for w in widths:
            d = dif[model].get(w)
            if d and excludes_zero(d["ci"]):
                const = " (at that width it predicts one class on every task)" if by[model].get(w, {}).get(
                    "constant") else ""
                said.append(f"{model} at width {w} is {'more' if d['diff'] > 0 else 'less'} accurate than at "
                            f"width {widest} by {abs(100 * d['diff']):.1f} points (95% interval "
                            f"{_interval(d['ci'])}){const}.")
    out += [" ".join(said) if said else
            f"No interval excludes zero: no width effect is resolved between widths {widths[0]} and {widest}.", ""]
    return out


__all__ = ["SWEEP_BUDGET", "WIDTHS", "cache_path", "render_width", "train_width", "width_sweep"]
