"""report.md and the summary table, rendered from results.json's content (`node.experiment.report.results`).

`write_report` writes the three outputs of a run folder: results.json, report.md and the PNGs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from node.experiment.config import RunOptions
from node.experiment.report.results import build_results, write_json
from node.protocol.enums import ARCH_NAMES


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
    out.append(f"Profile **{prof['name']}**{' (reduced sweeps: a subset of the full profile grid, marked below)' if prof['reduced'] else ''}, "
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
    names = list(ARCH_NAMES.values())
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
    names = list(ARCH_NAMES.values())
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


def write_report(records: dict[str, dict], opts: RunOptions, out: Path, run: dict[str, Any],
                 env: dict[str, Any] | None = None) -> dict[str, Any]:
    """results.json, report.md and the PNGs into `out`; returns the results."""
    from node.experiment.report.plots import make_plots

    results = build_results(records, opts, run, env)
    plots = make_plots(results, out)
    write_json(results, out / "results.json")
    (out / "report.md").write_text(render_markdown(results, plots))
    return results
