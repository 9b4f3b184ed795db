"""results.json, computed from the run's unit records: the main table, the sweeps, the honesty checks.

Everything here is a pure function of the checkpoint's records (plus the run's options and the
environment), so a resumed run, or `chorus bench --report-only`, gives the same results; the
markdown (`node.experiment.report.render`) and the plots are drawn from them.

results.json layout: `architectures.<name>.<metric>` for the eight architectures (`arch_id` is
TaskBoard's id, `name` the report's, `node.protocol.enums.ARCH_NAMES`), `oracle`,
`sweeps.{alpha,agents,ed,robustness}`, `honesty`, `environment`, `run`. Intervals are
`<metric>_ci` (95% half-widths over seeds).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from node.experiment.config import MODULAR, RunOptions
from node.experiment.report import metrics as M
from node.experiment.report.environment import environment
from node.protocol.enums import ARCH_NAMES, Arch

QUALITY_KEYS = ("accuracy", "macro_f1", "pnl", "sharpe", "gap_to_oracle", "finalized_rate")
OFFCHAIN_NAME = {"Uni-best": "Uni-best", "M-rules": "M-rules", "M-fixed": "M-fixed", "M-learned": "M-learned/dec",
                 "M-regret": "M-regret", "E-d": "E-16/f32/frozen", "U": "U", "U-rep": "U"}
"""The off-chain score (models.train on the same test tasks) each on-chain architecture reproduces."""
SCENARIO_TITLES = {"noise-market": "noise on prices/volumes", "noise-sentiment": "noise on headlines",
                   "noise-risk": "noise on flows", "byzantine": "one byzantine agent", "offline": "one agent offline"}



def _by_prefix(records: dict[str, dict], prefix: str) -> dict[str, dict]:
    return {k: v for k, v in records.items() if k.startswith(prefix)}


def _seed_quality(record: dict) -> dict[str, float]:
    q = M.quality(record["tasks"])
    if "oracle_accuracy" in q:
        q["gap_to_oracle"] = q["oracle_accuracy"] - q["accuracy"]
    return q


# -- the main table ----------------------------------------------------------------------------------


def architectures(records: dict[str, dict], seeds: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per architecture name: quality over seeds with intervals, costs, model bytes; and the oracle."""
    out: dict[str, Any] = {}
    oracle_rows = []
    for arch, name in ARCH_NAMES.items():
        units = [(s, records.get(f"main/s{s}/a{arch}")) for s in seeds]
        units = [(s, u) for s, u in units if u is not None]
        per_seed = []
        tasks_all, tasks_alone = [], []
        for seed, u in units:
            alone = u.get("isolated", u.get("cpu_s") is not None)
            q = _seed_quality(u)
            q["seed"] = seed
            q["isolated"] = alone
            q["cpu_s_per_task"] = (u["cpu_s"] / len(u["tasks"])) if alone and u.get("cpu_s") is not None else None
            q["throughput_tasks_per_s"] = u.get("throughput") if alone else None
            q["offchain_accuracy"] = (u.get("offchain") or {}).get(OFFCHAIN_NAME[name], {}).get("accuracy")
            per_seed.append(q)
            tasks_all += u["tasks"]
            tasks_alone += u["tasks"] if alone else []
            if arch == Arch.M_FIXED and "oracle_accuracy" in q:  # the oracle once per seed
                oracle_rows.append({"accuracy": q["oracle_accuracy"], "macro_f1": q["oracle_macro_f1"],
                                    "pnl": q.get("oracle_pnl"), "sharpe": q.get("oracle_sharpe"), "seed": seed})
        entry: dict[str, Any] = {"arch_id": arch, "name": name, "seeds": len(per_seed)}
        entry.update(M.summarize_seeds(per_seed, (*QUALITY_KEYS, "cpu_s_per_task", "throughput_tasks_per_s",
                                                  "offchain_accuracy")))
        entry.update(M.costs(tasks_all))
        # Latency only where the architecture ran alone (see Profile.cost_seeds).
        timing = M.costs(tasks_alone or tasks_all)
        entry.update(latency_p50_s=timing.get("latency_p50_s"), latency_p95_s=timing.get("latency_p95_s"),
                     blocks_p50=timing.get("blocks_p50"), cost_seeds=sum(1 for q in per_seed if q["isolated"]))
        paced = [records.get(f"paced/s{s}/a{arch}") for s in seeds]
        lat = [t["latency_s"] for p in paced if p for t in p["tasks"] if t.get("latency_s") is not None]
        entry["latency_idle_p50_s"] = M.percentile(lat, 50)
        entry["latency_idle_p95_s"] = M.percentile(lat, 95)
        entry["model_bytes"] = units[0][1].get("model_bytes") if units else None
        entry["models"] = units[0][1].get("models") if units else None
        entry["tasks_per_seed"] = len(units[0][1]["tasks"]) if units else 0
        if arch == Arch.UNI_BEST:
            entry["uni_best_agents"] = [u.get("uni_best") for _, u in units]
        entry["per_seed"] = per_seed
        out[name] = entry
    oracle = {"seeds": len(oracle_rows), **M.summarize_seeds(oracle_rows, ("accuracy", "macro_f1", "pnl", "sharpe")),
              "per_seed": oracle_rows,
              "definition": "the generator's Bayes decision given the latent state (label rule applied to it)"}
    return out, oracle


# -- sweeps -------------------------------------------------------------------------------------------


def _arch_accuracy(units: list[dict]) -> dict[str, float]:
    qs = [_seed_quality(u) for u in units]
    return M.summarize_seeds(qs, ("accuracy", "macro_f1", "gap_to_oracle", "oracle_accuracy"))


def alpha_sweep(records: dict[str, dict], opts: RunOptions, archs_main: dict[str, Any]) -> dict[str, Any]:
    p = opts.profile
    seeds = opts.seeds()
    points = []
    alphas = sorted({p.alpha, *p.alphas})
    for alpha in alphas:
        per_arch: dict[str, Any] = {}
        per_seed_units: dict[int, dict[int, dict]] = defaultdict(dict)
        for arch, name in ARCH_NAMES.items():
            keys = ([f"main/s{s}/a{arch}" for s in seeds] if alpha == p.alpha else
                    [f"alpha/{alpha:g}/s{s}/a{arch}" for s in seeds])
            units = [(int(k.split("/s")[1].split("/")[0]), records[k]) for k in keys if k in records]
            if not units:
                continue
            per_arch[name] = _arch_accuracy([u for _, u in units])
            for s, u in units:
                per_seed_units[s][arch] = u
        if not per_arch:
            continue
        # Gap per seed: U minus the best modular architecture of that seed; then mean and interval.
        gaps, best_names = [], []
        for s, by_arch in per_seed_units.items():
            if Arch.U not in by_arch or not any(a in by_arch for a in MODULAR):
                continue
            acc = {a: M.quality(u["tasks"])["accuracy"] for a, u in by_arch.items()}
            best = max((a for a in MODULAR if a in acc), key=lambda a: acc[a])
            gaps.append(acc[Arch.U] - acc[best])
            best_names.append(ARCH_NAMES[best])
        gap, gap_ci = M.interval(gaps)
        oracle = next((v for v in per_arch.values() if "oracle_accuracy" in v), {})
        points.append({"alpha": alpha, "seeds": len(per_seed_units), "architectures": per_arch,
                       "oracle_accuracy": oracle.get("oracle_accuracy"), "gap_u_minus_best_modular": gap,
                       "gap_u_minus_best_modular_ci": gap_ci, "best_modular_per_seed": best_names,
                       "main_table": alpha == p.alpha})
    return {"points": points, "reduced": p.reduced, "alphas": alphas,
            "definition": "gap = accuracy(U) - accuracy(best modular architecture of the same seed), "
                          "modular = M-rules, M-fixed, M-learned, M-regret, E-d; the best is picked after the fact "
                          "on the seed's test tasks, which favours the modular side; mean and 95% interval over seeds"}


def agents_sweep(records: dict[str, dict], opts: RunOptions) -> dict[str, Any]:
    p = opts.profile
    points = []
    for n in p.agents:
        units = [records[k] for k in _by_prefix(records, f"n/{n}/")]
        if not units:
            continue
        tasks = [t for u in units for t in u["tasks"]]
        q = M.quality(tasks)
        cpu = [u["cpu_s"] / len(u["tasks"]) for u in units if u.get("cpu_s") is not None and u["tasks"]]
        points.append({"n": n, "roles": units[0].get("roles"), "accuracy": q["accuracy"], **M.costs(tasks),
                       "cpu_s_per_task": float(np.mean(cpu)) if cpu else None,
                       "throughput_tasks_per_s": units[0].get("throughput"),
                       "model_bytes": units[0].get("model_bytes"), "tasks": len(tasks)})
    return {"points": points, "reduced": p.reduced, "arch": "M-fixed fusion on chain (default per-role weights), "
            "N agents in the role cycle market, sentiment, risk, fusion, then replicas; quorum N"}


def ed_sweep(records: dict[str, dict], opts: RunOptions, archs_main: dict[str, Any]) -> dict[str, Any]:
    from node.protocol.codec import vector_nbytes

    p = opts.profile
    seeds = opts.seeds()[:max(1, p.ed_seeds)]
    points = []
    for d in p.dims:
        for dtype in p.dtypes:
            if (d, dtype) == (16, "f32"):
                keys = [f"main/s{s}/a{Arch.E_D}" for s in seeds]
                units = [records[k] for k in keys if k in records]
                units = [{**u, "tasks": u["tasks"][:p.ed_tasks]} for u in units]
            else:
                units = [records[f"ed/{d}-{dtype}/s{s}"] for s in seeds if f"ed/{d}-{dtype}/s{s}" in records]
            if not units:
                continue
            tasks = [t for u in units for t in u["tasks"]]
            qs = M.summarize_seeds([_seed_quality(u) for u in units], ("accuracy", "macro_f1"))
            points.append({"d": d, "dtype": dtype, "seeds": len(units), **qs, **M.costs(tasks),
                           "vector_bytes": vector_nbytes(d, dtype), "model_bytes": units[0].get("model_bytes"),
                           "main_table": (d, dtype) == (16, "f32")})
    arch_points = [{"name": name, "accuracy": a.get("accuracy"), "gas_per_task": a.get("gas_per_task")}
                   for name, a in archs_main.items() if a.get("accuracy") is not None]
    frontier = pareto([(f"E-{x['d']}/{x['dtype']}", x["accuracy"], x["gas_per_task"]) for x in points] +
                      [(a["name"], a["accuracy"], a["gas_per_task"]) for a in arch_points if a["name"] != "E-d"])
    return {"points": points, "architectures": arch_points, "frontier": frontier, "reduced": p.reduced,
            "definition": "E-d with agents publishing d-dim embeddings as dtype and a head trained on them; "
                          "frontier = points no other point beats on both accuracy (higher) and gas (lower)"}


def pareto(points: list[tuple[str, float, float]]) -> list[str]:
    """Names of the points on the accuracy-vs-gas frontier (max accuracy, min gas)."""
    ok = [(n, a, g) for n, a, g in points if a is not None and g is not None and not math.isnan(a)]
    out = []
    for n, a, g in ok:
        dominated = any((a2 >= a and g2 <= g) and (a2 > a or g2 < g) for _, a2, g2 in ok)
        if not dominated:
            out.append(n)
    return sorted(out, key=lambda name: next(g for n, _, g in ok if n == name))


def robustness(records: dict[str, dict], opts: RunOptions) -> dict[str, Any]:
    p = opts.profile
    seeds = opts.seeds()[:p.robust_seeds]
    scenarios: dict[str, Any] = {}
    for scenario, title in SCENARIO_TITLES.items():
        per_arch: dict[str, Any] = {}
        points = {}
        for arch, name in ARCH_NAMES.items():
            pert, clean, seed_acc, seed_change = [], [], [], []
            for s in seeds:
                u = records.get(f"robust/{scenario}/s{s}/a{arch}")
                m = records.get(f"main/s{s}/a{arch}")
                if u is None or m is None:
                    continue
                idx = {t["i"] for t in u["tasks"]}
                same = [t for t in m["tasks"] if t["i"] in idx]
                pert += u["tasks"]
                clean += same
                seed_acc.append(M.quality(u["tasks"])["accuracy"])
                seed_change.append(seed_acc[-1] - M.quality(same)["accuracy"])
            if not pert:
                continue
            qp, qc = M.quality(pert), M.quality(clean)
            _, acc_ci = M.interval(seed_acc)
            change, change_ci = M.interval(seed_change)
            lat = [t["latency_s"] for t in pert if t.get("latency_s") is not None]
            per_arch[name] = {"accuracy": qp["accuracy"], "accuracy_ci": acc_ci, "clean_accuracy": qc["accuracy"],
                              "change_vs_clean": change, "change_vs_clean_ci": change_ci,
                              "relative": M.relative_robustness(qp["accuracy"], qc["accuracy"]),
                              "finalized_rate": qp["finalized_rate"], "tasks": len(pert),
                              "latency_p50_s": M.percentile(lat, 50)}
            points[name] = (qc["accuracy"], qp["accuracy"])
        for name, eff in M.effective_robustness(points).items():
            per_arch[name]["effective"] = eff
        if per_arch:
            scenarios[scenario] = {"title": title, "architectures": per_arch}
    probes = [records[k] for k in _by_prefix(records, "probe/mismatch/")]
    mismatch = None
    if probes:
        pr = probes[0]
        ed = [records.get(f"robust/offline/s{s}/a{Arch.E_D}") for s in seeds]
        ed_tasks = [t for u in ed if u for t in u["tasks"]]
        mismatch = {"probe_tx": pr["probe"], "node_rejections": pr.get("node_rejections"),
                    "node_errors": pr.get("node_errors"),
                    "ed_accuracy_under_mismatch": M.quality(ed_tasks)["accuracy"] if ed_tasks else None,
                    "rejected": pr["probe"].get("error") == "ModelMismatch" and pr["probe"].get("status") == 0}
    return {"scenarios": scenarios, "model_mismatch": mismatch, "seeds": len(seeds), "noise_level": p.noise,
            "reduced": p.reduced,
            "definitions": {
                "relative": "accuracy under the perturbation / clean accuracy on the same tasks",
                "effective": "accuracy under the perturbation minus the linear trend (least squares across "
                             "architectures) of perturbed on clean accuracy, evaluated at the clean accuracy",
                "noise": f"observation noise x{p.noise:g} on one modality of the test tasks (models trained clean)",
                "byzantine": "the market agent and the first U coordinator publish the opposite action "
                             "(hold -> sell) at full confidence",
                "offline": "the market agent and the first U coordinator are offline; tasks finalize after "
                           "their deadline with the decisions present, or never (counted as hold)",
                "mismatch": "the market agent publishes its embeddings under an unregistered model id; the "
                            "chain rejects them (ModelMismatch), so for E-d it contributes nothing"}}


# -- honesty ---------------------------------------------------------------------------------------------


WEAK_CHECK_SLACK = 0.2
"""Above this sum of half-widths (accuracy, 20 pts) the alpha=0 agreement check is reported as weak."""


def honesty(records: dict[str, dict], opts: RunOptions, archs_main: dict[str, Any], oracle: dict[str, Any],
            sweep_alpha: dict[str, Any]) -> dict[str, Any]:
    checks = []
    seeds = opts.seeds()
    # 1. alpha = 0: M-learned and U within their intervals.
    point = next((pt for pt in sweep_alpha.get("points", []) if pt["alpha"] == 0.0), None)
    if point and "U" in point["architectures"] and "M-learned" in point["architectures"]:
        u, ml = point["architectures"]["U"], point["architectures"]["M-learned"]
        gap = u["accuracy"] - ml["accuracy"]
        slack = u.get("accuracy_ci", 0) + ml.get("accuracy_ci", 0)
        # The paired view: U minus M-learned per seed (same tasks), and how much the check can see.
        prefix = "main" if opts.profile.alpha == 0.0 else "alpha/0"
        pairs = [(f"{prefix}/s{s}/a{Arch.U}", f"{prefix}/s{s}/a{Arch.M_LEARNED}") for s in seeds]
        diffs = [M.quality(records[a]["tasks"])["accuracy"] - M.quality(records[b]["tasks"])["accuracy"]
                 for a, b in pairs if a in records and b in records]
        paired, paired_ci = M.interval(diffs)
        detail = (f"U {100 * u['accuracy']:.1f} ± {100 * u.get('accuracy_ci', 0):.1f}, M-learned "
                  f"{100 * ml['accuracy']:.1f} ± {100 * ml.get('accuracy_ci', 0):.1f} ({point['seeds']} seeds); "
                  f"paired U − M-learned {100 * paired:+.1f} ± {100 * paired_ci:.1f} pts")
        if slack > WEAK_CHECK_SLACK:
            detail += (f" — a weak check here: the intervals add up to ±{100 * slack:.0f} pts, so only a large "
                       "disagreement could fail it (more seeds or tasks, e.g. --profile full, sharpen it)")
        checks.append({"name": "alpha=0: M-learned and U agree within their 95% intervals",
                       "passed": abs(gap) <= slack, "detail": detail,
                       "paired_u_minus_m_learned": paired, "paired_u_minus_m_learned_ci": paired_ci})
    else:
        checks.append({"name": "alpha=0: M-learned and U agree within their 95% intervals", "passed": None,
                       "detail": "no alpha=0 point in this run"})
    # 2. No architecture above the oracle (beyond the paired interval).
    worst = None
    for name, a in archs_main.items():
        diffs = [q["accuracy"] - q["oracle_accuracy"] for q in a.get("per_seed", []) if "oracle_accuracy" in q]
        if not diffs:
            continue
        mean, ci = M.interval(diffs)
        if worst is None or mean > worst[1]:
            worst = (name, mean, ci, max(diffs))
    if worst is not None:
        name, mean, ci, top = worst
        checks.append({"name": "no architecture above the oracle",
                       "passed": mean - ci <= 0,
                       "detail": f"closest: {name}, mean {100 * mean:+.1f} pts vs oracle (95% ± {100 * ci:.1f}); "
                                 f"largest single seed {100 * top:+.1f} pts on {archs_main[name]['tasks_per_seed']} tasks"})
    # 3. Same seed, same numbers: on-chain rerun and retraining.
    rerun_units = _by_prefix(records, f"rerun/s{seeds[0]}/")
    same_decisions = []
    for key, u in rerun_units.items():
        main = records.get(key.replace("rerun/", "main/"))
        if main is None:
            continue
        a = [t["action"] for t in sorted(main["tasks"], key=lambda t: t["i"])]
        b = [t["action"] for t in sorted(u["tasks"], key=lambda t: t["i"])]
        same_decisions.append((ARCH_NAMES[u["arch"]], a == b, _seed_quality(main)["accuracy"], _seed_quality(u)["accuracy"]))
    models = records.get("rerun/models")
    if same_decisions or models:
        ok = all(s for _, s, _, _ in same_decisions) and (models is None or models.get("all_equal"))
        detail = "; ".join(f"{n}: decisions {'identical' if s else 'DIFFER'} (accuracy {100 * x:.1f} vs {100 * y:.1f})"
                           for n, s, x, y in same_decisions)
        if models:
            detail += f"; retrained seed {models['seed']} models: " + (
                "identical model ids" if models["all_equal"] else
                "DIFFERENT model ids: " + ", ".join(k for k, v in models["model_ids_equal"].items() if not v))
        checks.append({"name": "same seed, same numbers (rerun on chain, retrain from scratch)", "passed": bool(ok),
                       "detail": detail})
    # Info: on-chain figures against the off-chain scores of the same models on the same tasks.
    rows = []
    for name, a in archs_main.items():
        if a.get("offchain_accuracy") is not None and a.get("accuracy") is not None:
            rows.append(f"{name} {100 * (a['accuracy'] - a['offchain_accuracy']):+.1f}")
    info = {"onchain_minus_offchain_accuracy_pts": ", ".join(rows)}
    return {"checks": checks, "all_passed": all(c["passed"] is not False for c in checks), "info": info}


# -- assembly ----------------------------------------------------------------------------------------------


def build_results(records: dict[str, dict], opts: RunOptions, run: dict[str, Any],
                  env: dict[str, Any] | None = None) -> dict[str, Any]:
    seeds = opts.seeds()
    archs, oracle = architectures(records, seeds)
    sweeps = {"alpha": alpha_sweep(records, opts, archs) if opts.data is None else {"points": [], "skipped":
                                                                                        "not synthetic data"},
              "agents": agents_sweep(records, opts), "ed": ed_sweep(records, opts, archs),
              "robustness": robustness(records, opts)}
    return {"run": run, "architectures": archs, "oracle": oracle, "sweeps": sweeps,
            "honesty": honesty(records, opts, archs, oracle, sweeps["alpha"]),
            "environment": env if env is not None else environment(opts)}


def write_json(results: dict[str, Any], path: Path) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating,)):
            return clean(float(v))
        return v

    path.write_text(json.dumps(clean(results), indent=2) + "\n")



def make_run_info(opts: RunOptions, run_id: str, started: float, finished: float, timings: dict[str, float],
                  chain: str) -> dict[str, Any]:
    return {"id": run_id, "profile": opts.profile.to_dict(), "seed": opts.seed, "seeds": opts.seeds(),
            "data": str(opts.data) if opts.data else None, "chain": chain,
            "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"), "started_ts": started,
            "finished": dt.datetime.fromtimestamp(finished).isoformat(timespec="seconds"),
            "wall_s": finished - started, "timings": timings}
