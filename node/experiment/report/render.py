"""results.json, report.md and the summary table, computed from the run's unit records.

Everything here is a pure function of the checkpoint's records (plus the run's options and the
environment), so a resumed run, or `chorus bench --report-only`, renders the same report.

results.json layout: `architectures.<name>.<metric>` for the eight architectures of DESIGN.md
(`arch_id` is TaskBoard's id), `oracle`, `sweeps.{alpha,agents,ed,robustness}`, `honesty`,
`environment`, `run`. Intervals are `<metric>_ci` (95% half-widths over seeds).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from node.experiment.report import metrics as M
from node.experiment.config import ARCHS, MODULAR, RunOptions

QUALITY_KEYS = ("accuracy", "macro_f1", "pnl", "sharpe", "gap_to_oracle", "finalized_rate")
OFFCHAIN_NAME = {"Uni-best": "Uni-best", "M-rules": "M-rules", "M-fixed": "M-fixed", "M-learned": "M-learned/dec",
                 "M-regret": "M-regret", "E-d": "E-16/f32/frozen", "U": "U", "U-rep": "U"}
"""The off-chain score (models.train on the same test tasks) each on-chain architecture reproduces."""
SCENARIO_TITLES = {"noise-market": "noise on prices/volumes", "noise-sentiment": "noise on headlines",
                   "noise-risk": "noise on flows", "byzantine": "one byzantine agent", "offline": "one agent offline"}


def _by_prefix(records: dict[str, dict], prefix: str) -> dict[str, dict]:
    return {k: v for k, v in records.items() if k.startswith(prefix)}


def _unit(records: dict[str, dict], key: str) -> dict | None:
    return records.get(key)


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
    for arch, name in ARCHS.items():
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
            if arch == 2 and "oracle_accuracy" in q:
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
        if arch == 0:
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
        for arch, name in ARCHS.items():
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
            if 6 not in by_arch or not any(a in by_arch for a in MODULAR):
                continue
            acc = {a: M.quality(u["tasks"])["accuracy"] for a, u in by_arch.items()}
            best = max((a for a in MODULAR if a in acc), key=lambda a: acc[a])
            gaps.append(acc[6] - acc[best])
            best_names.append(ARCHS[best])
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
                units = [records[f"main/s{s}/a5"] for s in seeds if f"main/s{s}/a5" in records]
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
        for arch, name in ARCHS.items():
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
        ed = [records.get(f"robust/offline/s{s}/a5") for s in seeds]
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
        diffs = [M.quality(records[f"{prefix}/s{s}/a6"]["tasks"])["accuracy"]
                 - M.quality(records[f"{prefix}/s{s}/a3"]["tasks"])["accuracy"]
                 for s in seeds if f"{prefix}/s{s}/a6" in records and f"{prefix}/s{s}/a3" in records]
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
        same_decisions.append((ARCHS[u["arch"]], a == b, _seed_quality(main)["accuracy"], _seed_quality(u)["accuracy"]))
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


# -- environment -----------------------------------------------------------------------------------------


def environment(opts: RunOptions) -> dict[str, Any]:
    from importlib import metadata

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "hostname": platform.node(),
        "packages": {p: version(p) for p in ("chorus", "torch", "onnxruntime", "numpy", "scikit-learn", "web3",
                                             "eth-account", "tokenizers", "matplotlib")},
        "anvil": _anvil_version(), "chain_client": _chain_client(opts.rpc_url), "seed": opts.seed,
        "git_commit": _git_commit(), "git_dirty": _git_dirty(),
    }


def _chain_client(rpc_url: str | None) -> str | None:
    """`web3_clientVersion` of the run's RPC when it was given (the private Anvil is gone by now and is
    the `anvil` entry); None when the chain does not answer it."""
    if rpc_url is None:
        return None
    import requests

    try:
        response = requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "web3_clientVersion",
                                                "params": []}, timeout=5)
        version = response.json().get("result")
        return str(version)[:200] if version else None
    except (requests.RequestException, ValueError, AttributeError):
        return None


def _anvil_version() -> str | None:
    import subprocess

    from node.devnet.anvil import DevnetError, find_anvil

    try:
        out = subprocess.run([str(find_anvil()), "--version"], capture_output=True, text=True, timeout=10,
                             check=False)
        return out.stdout.strip().splitlines()[0] if out.stdout else None
    except (DevnetError, OSError, subprocess.SubprocessError, IndexError):
        return None


def _git_dirty() -> bool | None:
    """Whether the working tree has uncommitted changes (the commit alone then does not say what ran)."""
    import subprocess

    from node.chain.settings import find_project_root

    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, timeout=10, cwd=find_project_root(), check=False)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _git_commit() -> str | None:
    import subprocess

    from node.chain.settings import find_project_root

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=find_project_root(), check=False)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


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


# -- markdown ------------------------------------------------------------------------------------------------


def _pct(x: Any, ci: Any = None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    s = f"{100 * x:.{digits}f}"
    if ci is not None and not (isinstance(ci, float) and math.isnan(ci)):
        s += f" ± {100 * ci:.{digits}f}"
    return s


def _num(x: Any, fmt: str = "{:,.0f}") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return fmt.format(x)


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, a in results["architectures"].items():
        rows.append([name, _pct(a.get("accuracy"), a.get("accuracy_ci")), _pct(a.get("macro_f1"), a.get("macro_f1_ci")),
                     _pct(a.get("gap_to_oracle")), _num(a.get("sharpe"), "{:+.3f}"), _num(a.get("gas_per_task")),
                     _num(a.get("calldata_bytes_per_task")), _num(a.get("txs_per_task"), "{:.1f}"),
                     f"{_num(a.get('latency_p50_s'), '{:.2f}')} / {_num(a.get('latency_p95_s'), '{:.2f}')}",
                     _num(a.get("throughput_tasks_per_s"), "{:.1f}"),
                     _num(None if a.get("cpu_s_per_task") is None else 1000 * a["cpu_s_per_task"], "{:.0f}"),
                     _num(None if a.get("model_bytes") is None else a["model_bytes"] / 1e6, "{:.2f}")])
    o = results["oracle"]
    rows.append(["Oracle", _pct(o.get("accuracy"), o.get("accuracy_ci")), _pct(o.get("macro_f1"), o.get("macro_f1_ci")),
                 "0.0", _num(o.get("sharpe"), "{:+.3f}"), "", "", "", "", "", "", ""])
    return rows


SUMMARY_HEADER = ["architecture", "accuracy %", "macro-F1 %", "gap to oracle", "Sharpe", "gas", "calldata B",
                  "txs", "latency p50/p95 s", "tasks/s", "CPU ms", "model MB"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(results: dict[str, Any], plots: dict[str, str]) -> str:
    run, env = results["run"], results["environment"]
    prof = run["profile"]
    archs = results["architectures"]
    out = [f"# Chorus bench report — `{run['id']}`", ""]
    out.append(f"Profile **{prof['name']}**{' (reduced sweeps: a subset of DESIGN grid, marked below)' if prof['reduced'] else ''}, "
               f"base seed {run['seed']}, seeds {', '.join(map(str, run['seeds']))}; "
               f"{archs['U']['tasks_per_seed']} on-chain tasks per (seed, architecture) at synergy alpha={prof['alpha']:g}. "
               f"Finished {run.get('finished', '?')} on {env.get('cpu') or '?'} ({env.get('cores')} cores), "
               f"wall time {_num(run.get('wall_s'), '{:.0f}')} s. Data: {run.get('data') or 'synthetic market (models.data.synthetic)'}; "
               f"chain: {run.get('chain')}.")
    out += ["", ("Every figure below comes from the chain: tasks submitted with `TaskBoard.submitTask`, taken by real "
                 "node processes (agents, fusion node, U coordinators), fused and finalized on chain; quality is "
                 "computed from the `TaskFinalized` events joined off chain with the generator's labels by task id. "
                 "Costs come from the receipts of every transaction that touched a task."), ""]
    out += ["## Summary", "", _table(SUMMARY_HEADER, summary_rows(results)), ""]
    if plots.get("main"):
        out += [f"![accuracy per architecture]({plots['main']})", ""]
    out += [("Accuracy and macro-F1: mean ± 95% interval over seeds. Gap to oracle: oracle accuracy minus the "
            "architecture's, in points, on the same tasks. Gas, calldata bytes, transactions and CPU time are per "
            f"task; gas, bytes and transactions over all seeds, latency, tasks/s and CPU on the first "
            f"{prof.get('cost_seeds', 1)} seed(s), where each architecture ran alone on chain. Sharpe: mean/std of per-task PnL (position buy +1 / hold 0 / sell −1 "
            "times the task's next-period return; not annualised). Latency: `submitTask` sent → `TaskFinalized` seen, "
            f"at most 8 tasks of the architecture in flight, blocks every {prof.get('block_time', 0):g} s, nodes "
            "polling once per block; tasks/s over the architecture's batch. CPU: user+system time, during the "
            "batch, of the node processes that publish for the architecture, per task. Model MB: the ONNX files the "
            "architecture runs (MiniLM included where headlines are embedded; U-rep counts its k replicas)."), ""]
    rows = []
    for name, a in archs.items():
        rows.append([name, _pct(a.get("pnl"), a.get("pnl_ci"), 2), _num(a.get("sharpe"), "{:+.3f}") +
                     (f" ± {a['sharpe_ci']:.3f}" if a.get("sharpe_ci") is not None else ""),
                     _pct(a.get("finalized_rate")), _num(a.get("blocks_p50"), "{:.0f}"),
                     f"{_num(a.get('latency_idle_p50_s'), '{:.2f}')} / {_num(a.get('latency_idle_p95_s'), '{:.2f}')}",
                     _pct(a.get("offchain_accuracy")), ", ".join(a.get("models") or [])])
    out += ["### Decisions as trades, finality, and the off-chain reference", "",
            _table(["architecture", "PnL (sum, % of notional)", "Sharpe/task", "finalized %", "blocks submit→final",
                    "idle latency p50/p95 s", "off-chain accuracy %", "models"], rows), "",
            ("Idle latency: tasks sent one at a time on the first seed. Off-chain accuracy: the same trained models "
             "scored by `models.train` on the same tasks without the chain (M-learned: the stacker on published "
             "decisions; U-rep: U) — the chain reproduces it up to ONNX-vs-torch rounding of confidences."), ""]
    out += _alpha_section(results, plots) + _ed_section(results, plots) + _agents_section(results, plots)
    out += _robust_section(results, plots) + _honesty_section(results) + _env_section(results)
    return "\n".join(out) + "\n"


def _alpha_section(results: dict[str, Any], plots: dict[str, str]) -> list[str]:
    sw = results["sweeps"]["alpha"]
    out = ["## Synergy: the gap curve", ""]
    if not sw.get("points"):
        return out + [f"Not run ({sw.get('skipped', 'no points')}).", ""]
    if sw.get("reduced"):
        out += ["*Reduced sweep (quick profile): alpha in " + ", ".join(f"{a:g}" for a in sw["alphas"]) +
                "; the full profile runs 0, 0.25, 0.5, 0.75, 1 with 5 seeds.*", ""]
    if plots.get("alpha"):
        out += [f"![gap vs alpha]({plots['alpha']})", ""]
    names = list(ARCHS.values())
    rows = []
    for pt in sw["points"]:
        a = pt["architectures"]
        rows.append([f"{pt['alpha']:g}" + (" (main)" if pt["main_table"] else ""), str(pt["seeds"]),
                     *[_pct(a.get(n, {}).get("accuracy"), a.get(n, {}).get("accuracy_ci")) for n in names],
                     _pct(pt.get("oracle_accuracy")),
                     _pct(pt["gap_u_minus_best_modular"], pt["gap_u_minus_best_modular_ci"])])
    out += [_table(["alpha", "seeds", *names, "oracle", "U − best modular (pts)"], rows), "", sw["definition"] + ".", ""]
    return out


def _ed_section(results: dict[str, Any], plots: dict[str, str]) -> list[str]:
    sw = results["sweeps"]["ed"]
    out = ["## What travels on chain: the accuracy-vs-gas frontier", ""]
    if not sw.get("points"):
        return out + ["Not run.", ""]
    if sw.get("reduced"):
        out += ["*Reduced sweep (quick profile): d in " + ", ".join(sorted({str(p['d']) for p in sw['points']}, key=int)) +
                " x " + ", ".join(sorted({p['dtype'] for p in sw['points']})) + "; the full profile runs d in 4, 16, 64, "
                "384 x f32, i8, binary.*", ""]
    if plots.get("frontier"):
        out += [f"![accuracy vs gas]({plots['frontier']})", ""]
    rows = [[str(p["d"]), p["dtype"], str(p["vector_bytes"]), _pct(p.get("accuracy"), p.get("accuracy_ci")),
             _num(p.get("gas_per_task")), _num(p.get("calldata_bytes_per_task")), _num(p.get("txs_per_task"), "{:.1f}"),
             str(p["seeds"])] for p in sw["points"]]
    out += [_table(["d", "dtype", "bytes/vector", "E-d accuracy %", "gas/task", "calldata B/task", "txs/task", "seeds"],
                   rows), "", "On the frontier (best accuracy for its gas): " + ", ".join(sw["frontier"]) + ".", "",
            sw["definition"] + ".", ""]
    return out


def _agents_section(results: dict[str, Any], plots: dict[str, str]) -> list[str]:
    sw = results["sweeps"]["agents"]
    out = ["## Cost growth with the number of agents", ""]
    if not sw.get("points"):
        return out + ["Not run.", ""]
    if sw.get("reduced"):
        out += ["*Reduced sweep (quick profile): N in " + ", ".join(str(p["n"]) for p in sw["points"]) +
                "; the full profile runs N in 2, 4, 8, 16.*", ""]
    if plots.get("agents"):
        out += [f"![cost vs N]({plots['agents']})", ""]
    rows = [[str(p["n"]), _num(p.get("gas_per_task")), _num(p.get("calldata_bytes_per_task")),
             _num(p.get("txs_per_task"), "{:.1f}"),
             f"{_num(p.get('latency_p50_s'), '{:.2f}')} / {_num(p.get('latency_p95_s'), '{:.2f}')}", _num(p.get("throughput_tasks_per_s"), "{:.1f}"),
             _num(None if p.get("cpu_s_per_task") is None else 1000 * p["cpu_s_per_task"], "{:.0f}"),
             _pct(p.get("accuracy"))] for p in sw["points"]]
    out += [_table(["N", "gas/task", "calldata B/task", "txs/task", "latency p50/p95 s", "tasks/s", "CPU ms/task",
                    "accuracy %"], rows), "", sw["arch"] + ".", ""]
    return out


def _robust_section(results: dict[str, Any], plots: dict[str, str]) -> list[str]:
    sw = results["sweeps"]["robustness"]
    out = ["## Robustness", ""]
    if not sw.get("scenarios"):
        return out + ["Not run.", ""]
    first = next(iter(next(iter(sw["scenarios"].values()))["architectures"].values()))
    reduced = " (reduced: quick profile)" if sw["reduced"] else ""
    out += [(f"*{first['tasks']} tasks per scenario and architecture ({sw['seeds']} seed(s)){reduced}; the clean "
             "accuracy is on the same tasks, from the main table.*"), ""]
    if plots.get("robustness"):
        out += [f"![robustness]({plots['robustness']})", ""]
    names = list(ARCHS.values())
    rows = []
    for s in sw["scenarios"].values():
        a = s["architectures"]
        # The interval only where there are several seeds (one seed: 0, not shown).
        rows.append([s["title"], *[f"{_pct(a[n]['accuracy'], a[n].get('accuracy_ci') or None, digits=0)} "
                                   f"({_num(a[n]['relative'], '{:.2f}')}, "
                                   f"{_num(None if a[n].get('effective') is None else 100 * a[n]['effective'], '{:+.0f}')})"
                                   if n in a else "–" for n in names]])
    out += [_table(["scenario", *names], rows), "",
            "Cells: accuracy % (± its 95% interval over seeds, where there are several; relative robustness, "
            "effective robustness in points). " +
            " ".join(f"*{k}*: {v}." for k, v in sw["definitions"].items()), ""]
    mm = sw.get("model_mismatch")
    if mm:
        pr = mm["probe_tx"]
        out += ["### Model-id mismatch: the chain refuses it", "",
                (f"- A registered agent (model id `{pr['registered_model_id'][:18]}…`) sent `publishEmbedding` "
                 f"under model id `{pr['sent_model_id'][:18]}…`: transaction `{pr['tx_hash']}` was mined with status "
                 f"{pr.get('status')} and reverted with **{pr.get('error')}**"
                 f"({', '.join(f'{k}={str(v)[:18]}…' for k, v in (pr.get('args') or {}).items())}), "
                 f"gas {pr.get('gas_used')}."),
                (f"- The market node running with the wrong model id had {mm['node_rejections']} publications "
                 "refused by the chain (`ModelMismatch` at gas estimation, recorded as failed tasks in its API)."),
                f"- E-d accuracy with that agent's embeddings refused: {_pct(mm.get('ed_accuracy_under_mismatch'))} %.",
                f"- Refused as required: **{'yes' if mm['rejected'] else 'NO'}**.", ""]
    return out


def _honesty_section(results: dict[str, Any]) -> list[str]:
    h = results["honesty"]
    out = ["## Honesty checks", ""]
    for c in h["checks"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a"}[c["passed"]]
        out.append(f"- **{mark}** {c['name']}: {c['detail']}")
    out += ["", f"On-chain minus off-chain accuracy (points, mean over seeds): {h['info']['onchain_minus_offchain_accuracy_pts']}.", ""]
    return out


def _env_section(results: dict[str, Any]) -> list[str]:
    env, run = results["environment"], results["run"]
    pk = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    return ["## Environment", "",
            f"- CPU: {env.get('cpu')}, {env.get('cores')} cores, {env.get('memory_gib')} GiB; {env.get('platform')}",
            f"- Python {env.get('python')}; {pk}; local {env.get('anvil') or 'anvil ?'}"
            + (f"; the chain's client: {env['chain_client']}" if env.get("chain_client") else ""),
            (f"- git commit {env.get('git_commit')}{' (with uncommitted changes)' if env.get('git_dirty') else ''}; "
             f"base seed {env.get('seed')}"),
            "- Where the time went (s): " + _timing_summary(run.get("timings", {})), ""]


def _timing_summary(timings: dict[str, float]) -> str:
    """Per kind (`session_s`, `nodes_start_s`, ...): total and count; the details are in results.json."""
    kinds: dict[str, list[float]] = {}
    for key, value in timings.items():
        if isinstance(value, (int, float)):
            kinds.setdefault(key.split("/", 1)[0], []).append(float(value))
    names = {"chain_start_s": "chain start", "session_s": "sessions on chain", "nodes_start_s": "node start-up",
             "models_wait_s": "waiting for training", "prepare_wait_s": "waiting for a prepared session"}
    return ", ".join(f"{names.get(k, k)} {sum(v):.1f}" + (f" ({len(v)})" if len(v) > 1 else "")
                     for k, v in kinds.items()) + " (start-ups and training overlap the sessions)"


def make_run_info(opts: RunOptions, run_id: str, started: float, finished: float, timings: dict[str, float],
                  chain: str) -> dict[str, Any]:
    return {"id": run_id, "profile": opts.profile.to_dict(), "seed": opts.seed, "seeds": opts.seeds(),
            "data": str(opts.data) if opts.data else None, "chain": chain,
            "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"), "started_ts": started,
            "finished": dt.datetime.fromtimestamp(finished).isoformat(timespec="seconds"),
            "wall_s": finished - started, "timings": timings}


def write_report(records: dict[str, dict], opts: RunOptions, out: Path, run: dict[str, Any],
                 env: dict[str, Any] | None = None) -> dict[str, Any]:
    """results.json, report.md and the PNGs into `out`; returns the results."""
    from node.experiment.report.plots import make_plots

    results = build_results(records, opts, run, env)
    plots = make_plots(results, out)
    write_json(results, out / "results.json")
    (out / "report.md").write_text(render_markdown(results, plots))
    return results

