"""The report's PNG plots (matplotlib, Agg backend: no display needed).

Each function takes the results dict and writes one file; `make_plots` returns {name: file name}
for the plots it could draw (a sweep that was not run has no plot).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from node.protocol.enums import ARCH_NAMES

log = logging.getLogger(__name__)

COLORS = {"Uni-best": "#8c8c8c", "M-rules": "#c49c94", "M-fixed": "#ff7f0e", "M-learned": "#2ca02c",
          "M-regret": "#bcbd22", "E-d": "#17becf", "U": "#1f77b4", "U-rep": "#9467bd", "M-learned-p": "#98df8a"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ok(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _err(values: list[float], cis: list[Any]) -> list[list[float]]:
    """matplotlib's 2 x N yerr (in points) from [lo, hi] intervals or ± half-widths (None: 0)."""
    lo, hi = [], []
    for v, ci in zip(values, cis, strict=True):
        if isinstance(ci, (list, tuple)) and _ok(ci[0]) and _ok(ci[1]):
            lo.append(max(0.0, v - 100 * ci[0]))
            hi.append(max(0.0, 100 * ci[1] - v))
        else:
            half = 100 * ci if _ok(ci) and not isinstance(ci, (list, tuple)) else 0.0
            lo.append(half)
            hi.append(half)
    return [lo, hi]


def plot_main(results: dict[str, Any], path: Path) -> bool:
    plt = _plt()
    archs = results["architectures"]
    names = [n for n in ARCH_NAMES.values() if _ok(archs.get(n, {}).get("accuracy"))]
    if not names:
        return False
    fig, ax = plt.subplots(figsize=(8, 3.8))
    acc = [100 * archs[n]["accuracy"] for n in names]
    ax.bar(names, acc, yerr=_err(acc, [archs[n].get("accuracy_ci") for n in names]), capsize=4,
           color=[COLORS[n] for n in names])
    ceil = results.get("ceilings") or {}
    for key, style, label in (("latent", "--", "latent oracle"), ("observation", "-.", "observation ceiling")):
        if _ok(ceil.get(key)):
            ax.axhline(100 * ceil[key], color="k", ls=style, lw=1, label=f"{label} {100 * ceil[key]:.1f}%")
    if any(_ok(ceil.get(k)) for k in ("latent", "observation")):
        ax.legend(loc="lower right", fontsize=8)
    ax.axhline(100 / 3, color="0.6", ls=":", lw=1)
    measured = all(archs[n].get("accuracy_source") == "offchain-eval" for n in names)
    n_eval = archs[names[0]].get("n_eval_tasks")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Off chain on {n_eval if not isinstance(n_eval, list) else min(n_eval)} tasks per seed, chain-checked "
                 f"({archs[names[0]]['seeds']} seeds, 95% bootstrap intervals)" if measured else
                 f"Decisions as finalized on chain ({archs[names[0]]['seeds']} seeds, 95% bootstrap intervals)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_alpha(results: dict[str, Any], path: Path) -> bool:
    from node.experiment.report.results import alpha_points

    points = alpha_points(results["sweeps"]["alpha"])
    if len(points) < 2:
        return False
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    alphas = [p["alpha"] for p in points]
    for name in ("M-fixed", "M-learned", "E-d", "U"):
        ys = [p["architectures"].get(name, {}).get("accuracy") for p in points]
        if all(_ok(y) for y in ys):
            vals = [100 * y for y in ys]
            cis = [p["architectures"][name].get("accuracy_ci") for p in points]
            ax1.errorbar(alphas, vals, yerr=_err(vals, cis), marker="o", capsize=3, label=name, color=COLORS[name])
    for key, style, label in (("latent", "k--", "latent oracle"), ("observation", "k-.", "observation ceiling")):
        ys = [p["ceilings"].get(key) for p in points]
        if all(_ok(y) for y in ys):
            ax1.plot(alphas, [100 * y for y in ys], style, lw=1, label=label)
    ax1.set_xlabel("synergy alpha")
    ax1.set_ylabel("accuracy (%)")
    ax1.legend(fontsize=8)
    ok = [p for p in points if _ok(p.get("gap_u_minus_best_modular"))]
    gaps = [100 * p["gap_u_minus_best_modular"] for p in ok]
    ax2.errorbar([p["alpha"] for p in ok], gaps, yerr=_err(gaps, [p.get("gap_u_minus_best_modular_ci") for p in ok]),
                 marker="o", capsize=3, color=COLORS["U"])
    ax2.axhline(0, color="0.5", lw=1)
    ax2.set_xlabel("synergy alpha")
    ax2.set_ylabel("U − best modular (accuracy points)")
    ax2.set_title("the gap curve")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_frontier(results: dict[str, Any], path: Path) -> bool:
    sw = results["sweeps"]["ed"]
    archs = [a for a in sw.get("architectures", []) if _ok(a.get("accuracy")) and _ok(a.get("gas_per_task"))]
    points = [p for p in sw.get("points", []) if _ok(p.get("accuracy")) and _ok(p.get("gas_per_task"))]
    if not archs and not points:
        return False
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    labels: dict[tuple[float, float], list[str]] = {}
    for a in archs:
        if a["name"] == "E-d":
            continue
        ax.scatter(a["gas_per_task"], 100 * a["accuracy"], color=COLORS[a["name"]], s=50, zorder=3)
        labels.setdefault((a["gas_per_task"], 100 * a["accuracy"]), []).append(a["name"])
    markers = {"f32": "o", "f16": "s", "i8": "^", "binary": "D"}
    for p in points:
        ax.scatter(p["gas_per_task"], 100 * p["accuracy"], color=COLORS["E-d"], marker=markers.get(p["dtype"], "o"),
                   s=45, zorder=3)
        near = next((k for k in labels if abs(math.log(k[0] / p["gas_per_task"])) < 0.04
                     and abs(k[1] - 100 * p["accuracy"]) < 0.6), (p["gas_per_task"], 100 * p["accuracy"]))
        labels.setdefault(near, []).append(f"E-{p['d']}/{p['dtype']}")
    for (x, y), names in labels.items():  # one label per spot: overlapping points share it
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(5, 3), fontsize=7)
    frontier = set(sw.get("frontier") or [])
    pts = [(a["gas_per_task"], 100 * a["accuracy"]) for a in archs if a["name"] in frontier]
    pts += [(p["gas_per_task"], 100 * p["accuracy"]) for p in points if f"E-{p['d']}/{p['dtype']}" in frontier]
    if len(pts) > 1:
        pts.sort()
        ax.step([x for x, _ in pts], [y for _, y in pts], where="post", color="k", lw=1, ls="--", label="frontier")
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("gas per task (all transactions touching it)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs gas")
    for dtype in sorted({p["dtype"] for p in points}):
        row = sorted((p["d"], p["gas_per_task"]) for p in points if p["dtype"] == dtype)
        ax2.plot([d for d, _ in row], [g for _, g in row], marker=markers.get(dtype, "o"), label=dtype,
                 color=COLORS["E-d"], alpha={"f32": 1.0, "f16": 0.8, "i8": 0.6, "binary": 0.4}.get(dtype, 1.0))
    if points:
        ax2.set_xscale("log", base=2)
        ds = sorted({p["d"] for p in points})
        ax2.set_xticks(ds, [str(d) for d in ds])
        ax2.set_xlabel("embedding width d")
        ax2.set_ylabel("gas per E-d task")
        ax2.set_title("what the embeddings cost")
        ax2.legend(title="dtype", fontsize=8)
    else:
        ax2.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_agents(results: dict[str, Any], path: Path) -> bool:
    points = results["sweeps"]["agents"].get("points") or []
    if not points:
        return False
    plt = _plt()
    ns = [p["n"] for p in points]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    for ax, key, label in zip(axes, ("gas_per_task", "calldata_bytes_per_task", "txs_per_task", "latency_p50_s"),
                              ("gas / task", "calldata bytes / task", "transactions / task", "latency p50 (s)"),
                              strict=True):
        ys = [p.get(key) for p in points]
        ax.plot(ns, [y if _ok(y) else float("nan") for y in ys], marker="o", color=COLORS["M-fixed"])
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("agents N")
        ax.set_title(label, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_robustness(results: dict[str, Any], path: Path) -> bool:
    scenarios = results["sweeps"]["robustness"].get("scenarios") or {}
    if not scenarios:
        return False
    import numpy as np

    plt = _plt()
    names = list(ARCH_NAMES.values())
    labels = ["clean"] + [s["title"] for s in scenarios.values()]
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / len(names)
    x = np.arange(len(labels))
    for i, name in enumerate(names):
        first = next((s["architectures"][name] for s in scenarios.values() if name in s["architectures"]), None)
        ys = [first["clean_accuracy"] if first and _ok(first["clean_accuracy"]) else float("nan")]
        ys += [s["architectures"].get(name, {}).get("accuracy", float("nan")) for s in scenarios.values()]
        ax.bar(x + i * width - 0.4 + width / 2, [100 * y for y in ys], width, label=name, color=COLORS[name])
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("accuracy on chain (%)")
    ax.axhline(100 / 3, color="0.6", ls=":", lw=1)
    ax.legend(ncol=4, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_task_costs(results: dict[str, Any], path: Path) -> bool:
    """US dollars per task on each chain (`cost_usd_per_task`), one group of bars per architecture, log scale."""
    import numpy as np

    from node.chain.fees import CHAIN_TITLES, CHAINS

    archs = results["architectures"]
    names = [n for n in ARCH_NAMES.values() if any(_ok(v) and v > 0 for v in
                                                   (archs.get(n, {}).get("cost_usd_per_task") or {}).values())]
    if not names:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(CHAINS)
    x = np.arange(len(names))
    for i, (chain, color) in enumerate(zip(CHAINS, ("#444444", "#e4572e", "#2d7dd2"), strict=True)):
        ys = [archs[n]["cost_usd_per_task"].get(chain) for n in names]
        ax.bar(x + i * width - 0.4 + width / 2, [y if _ok(y) and y > 0 else float("nan") for y in ys], width,
               label=CHAIN_TITLES[chain], color=color)
    ax.set_yscale("log")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("US$ per task (log scale)")
    ax.legend(fontsize=8, ncol=len(CHAINS), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


PLOTS = {"main": ("accuracy.png", plot_main), "alpha": ("gap_vs_alpha.png", plot_alpha),
         "frontier": ("accuracy_vs_gas.png", plot_frontier), "agents": ("cost_vs_agents.png", plot_agents),
         "robustness": ("robustness.png", plot_robustness), "task_costs": ("cost_per_task_usd.png", plot_task_costs)}


def make_plots(results: dict[str, Any], out: Path) -> dict[str, str]:
    drawn = {}
    for name, (filename, fn) in PLOTS.items():
        try:
            if fn(results, out / filename):
                drawn[name] = filename
        except Exception:  # a plot must never cost the report
            log.exception("plot %s failed", name)
    return drawn


CPU_GROUPS = {"agents": "Uni-best", "stackers": "M-learned", "e-d": "E-d", "u": "U"}
"""The CPU groups of `learning_curves` (models.train.TRAINING_STEPS), each drawn in one architecture's colour."""


def _check_curves(result: Any) -> list[dict[str, Any]]:
    """The points of a `learning_curves` result, or a ValueError that says what is wrong with it."""
    points = result.get("points") if isinstance(result, dict) else None
    if not isinstance(points, list) or not points:
        raise ValueError("learning-curve result needs a non-empty 'points' list")
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            raise ValueError(f"learning-curve point {i} is not a dict")
        missing = [k for k in ("alpha", "n_train", "summary") if k not in p]
        if missing:
            raise ValueError(f"learning-curve point {i} lacks {', '.join(repr(k) for k in missing)}")
        if not isinstance(p["summary"], dict) or not p["summary"]:
            raise ValueError(f"learning-curve point {i}: 'summary' must be a non-empty dict of architectures")
        for arch, s in p["summary"].items():
            if not isinstance(s, dict) or "accuracy" not in s:
                raise ValueError(f"learning-curve point {i}: summary[{arch!r}] lacks 'accuracy'")
        if not isinstance(p["n_train"], (int, float)) or p["n_train"] <= 0:
            raise ValueError(f"learning-curve point {i}: 'n_train' must be a positive number, got {p['n_train']!r}")
        if "cpu_s" in p and not isinstance(p["cpu_s"], dict):
            raise ValueError(f"learning-curve point {i}: 'cpu_s' must be a dict of groups")
    return points


def plot_learning_curves(result: dict[str, Any], path: Path, cpu: bool = True) -> None:
    """`learning_curves`' result as a PNG at `path`: one column per alpha, accuracy (%) against
    training tasks (log scale) for every architecture with its 95% interval, the Oracle dashed; and,
    when `cpu` and the points carry `cpu_s`, a second row with the CPU seconds of each training group.

    Raises ValueError on a malformed result (before drawing anything), OSError if `path` cannot be written.
    """
    points = _check_curves(result)
    alphas = sorted({float(p["alpha"]) for p in points})
    names: list[str] = []
    for p in points:  # the result's own order (ARCH_ORDER, then the Oracle)
        names += [n for n in p["summary"] if n not in names]
    archs = [n for n in names if n != "Oracle"]
    e_variants = [n for n in archs if n.startswith("E-") and n not in COLORS]
    fallback = iter(c for c in ("#d62728", "#e377c2", "#7f7f7f", "#8c564b", "#aec7e8", "#ffbb78", "#ff9896",
                                "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5") if c not in COLORS.values())
    colors = {n: COLORS.get(n) or (COLORS["E-d"] if e_variants == [n] else next(fallback, "k")) for n in archs}
    groups = [g for g in CPU_GROUPS if any(g in (p.get("cpu_s") or {}) for p in points)] if cpu else []

    plt = _plt()
    rows = 2 if groups else 1
    fig, axes = plt.subplots(rows, len(alphas), figsize=(4.6 * len(alphas) + 1.2, 3.8 + 2.6 * (rows - 1)),
                             sharex="col", squeeze=False, gridspec_kw={"height_ratios": [3, 2][:rows]})
    for col, alpha in enumerate(alphas):
        pts = sorted((p for p in points if float(p["alpha"]) == alpha), key=lambda p: p["n_train"])
        ns = [p["n_train"] for p in pts]
        ax = axes[0][col]
        for name in archs:
            have = [(p["n_train"], p["summary"][name]) for p in pts if _ok(p["summary"].get(name, {}).get("accuracy"))]
            if not have:
                continue
            vals = [100 * s["accuracy"] for _, s in have]
            ax.errorbar([n for n, _ in have], vals, yerr=_err(vals, [s.get("accuracy_ci") for _, s in have]),
                        marker="o", ms=4, capsize=3, lw=1.3, label=name, color=colors[name])
        oracle = [(p["n_train"], 100 * p["summary"]["Oracle"]["accuracy"]) for p in pts
                  if _ok(p["summary"].get("Oracle", {}).get("accuracy"))]
        if len(oracle) == 1:  # one size: a dashed line still shows
            ax.axhline(oracle[0][1], color="k", ls="--", lw=1, label="Oracle")
        elif oracle:
            ax.plot([n for n, _ in oracle], [y for _, y in oracle], "k--", lw=1, label="Oracle")
        ax.axhline(100 / 3, color="0.6", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xticks(ns, [f"{n:,}" for n in ns], fontsize=8)
        ax.minorticks_off()
        ax.set_title(f"alpha {alpha:g}", fontsize=10)
        if col == 0:
            ax.set_ylabel("accuracy (%)")
        if groups:
            cax = axes[1][col]
            positive = True
            for g in groups:
                ys = [(p.get("cpu_s") or {}).get(g) for p in pts]
                ys = [float(y) if _ok(y) else float("nan") for y in ys]
                positive &= all(y > 0 for y in ys if not math.isnan(y))
                cax.plot(ns, ys, marker="o", ms=4, lw=1.3, label=g, color=COLORS[CPU_GROUPS[g]])
            if positive:
                cax.set_yscale("log")
            cax.set_xscale("log")
            cax.set_xticks(ns, [f"{n:,}" for n in ns], fontsize=8)
            cax.minorticks_off()
            if col == 0:
                cax.set_ylabel("CPU s of training")
        axes[-1][col].set_xlabel("training tasks")
    handles, labels = axes[0][0].get_legend_handles_labels()
    seen = set(labels)
    for ax in axes[0][1:]:  # an architecture missing at the first alpha still gets its legend entry
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in seen:
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    if "Oracle" in labels:  # last, after the architectures (matplotlib lists lines before error bars)
        i = labels.index("Oracle")
        handles.append(handles.pop(i))
        labels.append(labels.pop(i))
    axes[0][-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    if groups:
        axes[1][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False, title="CPU",
                           title_fontsize=8)
    seeds = result.get("seeds")
    n_seeds = len(seeds) if isinstance(seeds, list) else seeds
    fig.suptitle("Learning curves off chain" + (f" ({n_seeds} seeds x {result['n_test']:,} test tasks, "
                                                 "95% t-intervals over seeds)"
                                                 if n_seeds and isinstance(result.get("n_test"), int) else ""),
                 fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
