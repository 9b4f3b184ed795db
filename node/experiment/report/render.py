"""report.md and the summary table, rendered from results.json's content (`node.experiment.report.results`).

`write_report` writes the three outputs of a run folder: results.json, report.md and the PNGs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from node.experiment.config import RunOptions
from node.experiment.report.metrics import EQUIVALENCE_MARGIN, excludes_zero
from node.experiment.report.results import CHAIN, EVAL, alpha_points, build_results, write_json
from node.protocol.enums import ARCH_NAMES


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _pct(x: Any, ci: Any = None, digits: int = 1) -> str:
    """A fraction as percent; `ci` a number (± half-width) or a [lo, hi] interval."""
    if _nan(x):
        return "–"
    s = f"{100 * x:.{digits}f}"
    if isinstance(ci, (list, tuple)):
        if len(ci) == 2 and not (_nan(ci[0]) or _nan(ci[1])):
            s += f" [{100 * ci[0]:.{digits}f}, {100 * ci[1]:.{digits}f}]"
    elif not _nan(ci):
        s += f" ± {100 * ci:.{digits}f}"
    return s


def _interval(ci: Any, digits: int = 1) -> str:
    """[lo, hi] of a difference, in signed points ("" when there is none)."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and not (_nan(ci[0]) or _nan(ci[1])):
        return f"[{100 * ci[0]:+.{digits}f}, {100 * ci[1]:+.{digits}f}]"
    return ""


def _pts(x: Any, ci: Any = None, digits: int = 1) -> str:
    """A difference of fractions in signed points, with its [lo, hi] interval."""
    if _nan(x):
        return "–"
    return f"{100 * x:+.{digits}f}" + (f" {_interval(ci, digits)}" if _interval(ci, digits) else "")


def _num(x: Any, fmt: str = "{:,.0f}") -> str:
    if _nan(x):
        return "–"
    return fmt.format(x)


FALLBACK_MARK = "†"
"""Marks an accuracy measured on the chain sample only (records without an evaluation set)."""


def _wall(run: dict[str, Any]) -> str:
    """The run's wall time: that of the invocation that ran its units (not of a later one that only
    re-rendered a finished folder), or, for a resumed run, all its invocations' summed."""
    parts = run.get("invocations") or []
    if len(parts) > 1:
        each = ", ".join(f"{float(x['wall_s']):,.0f} s" for x in parts)
        return f"{float(run['wall_s_total']):,.0f} s over {len(parts)} invocations (a resumed run: {each})"
    if parts:
        return f"{float(parts[0]['wall_s']):.0f} s"
    return f"{_num(run.get('wall_s'), '{:.0f}')} s"


def _accuracy_cell(a: dict[str, Any]) -> str:
    cell = _pct(a.get("accuracy"), a.get("accuracy_ci"))
    return cell + (f" {FALLBACK_MARK}" if a.get("accuracy_source") == CHAIN else "")


def _chain_cell(a: dict[str, Any]) -> str:
    if a.get("chain_sampled") is None:
        return "–"
    return f"{a['chain_sampled']} / {a['chain_mismatches']}"


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, a in results["architectures"].items():
        rows.append([name, _accuracy_cell(a), _pct(a.get("macro_f1"), a.get("macro_f1_ci")),
                     _num(a.get("n_eval_tasks"), "{}"), _chain_cell(a), _num(a.get("gas_per_task")),
                     _num(a.get("calldata_bytes_per_task")), _num(a.get("txs_per_task"), "{:.1f}"),
                     f"{_num(a.get('latency_p50_s'), '{:.2f}')} / {_num(a.get('latency_p95_s'), '{:.2f}')}",
                     _num(a.get("throughput_tasks_per_s"), "{:.1f}"),
                     _num(None if a.get("cpu_s_per_task") is None else 1000 * a["cpu_s_per_task"], "{:.0f}"),
                     _num(None if a.get("model_bytes") is None else a["model_bytes"] / 1e6, "{:.2f}")])
    c = results.get("ceilings") or {}
    if c.get("source") == EVAL or c.get("latent") is not None:
        n = _num(c.get("n_eval_tasks"), "{}") if c.get("source") == EVAL else ""
        rows.append(["Oracle", _pct(c.get("latent"), c.get("latent_ci")) +
                     (f" {FALLBACK_MARK}" if c.get("source") == CHAIN else ""), "", n, "", "", "", "", "", "", "", ""])
    return rows


SUMMARY_HEADER = ["architecture", "accuracy % [95% CI]", "macro-F1 %", "eval tasks/seed",
                  "chain sampled / mismatches", "gas", "calldata B", "txs", "latency p50/p95 s", "tasks/s", "CPU ms",
                  "model MB"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _preregistered_statement() -> str:
    return ("**Pre-registered comparison** (named before any result): U against calibrated late fusion, "
            "M-learned-p, as the difference in accuracy U − M-learned-p, paired task by task on the same evaluation "
            "tasks, mean over seeds, with its 95% two-level bootstrap interval. M-learned-p fuses the agents' "
            "published class probabilities (three numbers per agent, `publishProbabilities`); M-learned fuses "
            "their published *decisions* only (action and confidence), so M-learned-p − M-learned is the price "
            "of the decision-only interface. Every other architecture is compared with U the same way; at "
            f"alpha = 0 the question is equivalence within ±{100 * EQUIVALENCE_MARGIN:.1f} points.")


def _trained_on(prof: dict[str, Any]) -> str:
    train = prof.get("train") or {}
    if not train.get("n_train"):
        return ""
    val = f" ({train['n_val']:,} for validation)" if isinstance(train.get("n_val"), int) else ""
    return f"every model trained on {train['n_train']:,} tasks{val}. "


def render_markdown(results: dict[str, Any], plots: dict[str, str]) -> str:
    run, env = results["run"], results["environment"]
    prof = run["profile"]
    archs = results["architectures"]
    measured = [n for n, a in archs.items() if a.get("accuracy_source") == EVAL]
    fallback = [n for n, a in archs.items() if a.get("accuracy_source") == CHAIN]
    n_eval = next((archs[n]["n_eval_tasks"] for n in measured), None)
    out = [f"# Chorus bench report — `{run['id']}`", ""]
    out.append(f"Profile **{prof['name']}**{' (reduced sweeps: a subset of the full profile grid, marked below)' if prof['reduced'] else ''}, "
               f"base seed {run['seed']}, seeds {', '.join(map(str, run['seeds']))}; "
               + (f"{_num(n_eval, '{}')} evaluation tasks per seed scored off chain, of which " if measured else "")
               + f"{archs['U']['tasks_per_seed']} on-chain tasks per (seed, architecture) at synergy alpha={prof['alpha']:g}; "
               + _trained_on(prof) +
               f"Finished {run.get('finished', '?')} on {env.get('cpu') or '?'} ({env.get('cores')} cores), "
               f"wall time {_wall(run)}. Data: {run.get('data') or 'synthetic market (models.data.synthetic)'}; "
               f"chain: {run.get('chain')}.")
    out += ["", ("Two tiers. **The measurement**: each seed's evaluation set is scored off chain by the very ONNX "
                 "files the nodes run, decided and fused as the nodes and TaskBoard do; accuracy, macro-F1, the "
                 "ceilings and the comparisons come from it. **The proof**: a random sample of those tasks, drawn "
                 "from the hash of a block mined after the models were registered, went through the chain "
                 "(`TaskBoard.submitTask`, real node processes, fusion and finalization on chain), and on every "
                 "sampled task the finalized action must equal the off-chain one (the chain check below). PnL, "
                 "Sharpe, finality and every cost (gas, bytes, transactions, latency, CPU) come from the chain "
                 "sample, from the receipts of every transaction that touched a task."), ""]
    if fallback:
        out += [(f"{FALLBACK_MARK} {', '.join(fallback)}: these records carry no off-chain evaluation set, so the "
                 "accuracy shown is the chain sample's (the decisions finalized on chain), with its wider interval."), ""]
    out += [_preregistered_statement(), ""]
    out += ["## Summary", "", _table(SUMMARY_HEADER, summary_rows(results)), ""]
    if plots.get("main"):
        out += [f"![accuracy per architecture]({plots['main']})", ""]
    out += [("Accuracy: mean over seeds with its 95% two-level bootstrap interval (seeds resampled, then tasks "
             "within each drawn seed); a task with no action counts as wrong. Macro-F1: mean ± 95% t-interval "
             "over seeds. Eval tasks/seed: the evaluation set of each seed. Chain sampled / mismatches: tasks "
             "that went through the chain, over all seeds, and how many finalized another action than off chain "
             "(M-regret, which learns online, runs the set's first tasks in order). Oracle: the latent oracle on "
             "the same tasks. Gas, calldata bytes, transactions and CPU time are per "
             f"task; gas, bytes and transactions over all seeds, latency, tasks/s and CPU on the first "
             f"{prof.get('cost_seeds', 1)} seed(s), where each architecture ran alone on chain. Latency: `submitTask` sent → `TaskFinalized` seen, "
             f"at most 8 tasks of the architecture in flight, blocks every {prof.get('block_time', 0):g} s, nodes "
             "polling once per block; tasks/s over the architecture's batch. CPU: user+system time, during the "
             "batch, of the node processes that publish for the architecture, per task. Model MB: the ONNX files the "
             "architecture runs (MiniLM included where headlines are embedded; U-rep counts its k replicas)."), ""]
    rows = []
    for name, a in archs.items():
        rows.append([name, _pct(a.get("chain_accuracy"), a.get("chain_accuracy_ci")),
                     _pct(a.get("pnl"), a.get("pnl_ci"), 2), _num(a.get("sharpe"), "{:+.3f}") +
                     (f" ± {a['sharpe_ci']:.3f}" if a.get("sharpe_ci") is not None else ""),
                     _pct(a.get("finalized_rate")), _num(a.get("blocks_p50"), "{:.0f}"),
                     f"{_num(a.get('latency_idle_p50_s'), '{:.2f}')} / {_num(a.get('latency_idle_p95_s'), '{:.2f}')}",
                     _pct(a.get("train_reference_accuracy")), ", ".join(a.get("models") or [])])
    out += ["### The chain sample: decisions as trades, finality, and the training reference", "",
            _table(["architecture", "chain accuracy % [95% CI]", "PnL (sum, % of notional)", "Sharpe/task",
                    "finalized %", "blocks submit→final", "idle latency p50/p95 s", "models.train accuracy %",
                    "models"], rows), "",
            ("Chain accuracy: the decisions finalized on chain, on the sampled tasks only (hence the wide interval); "
             "a task that never finalized counts as hold. Sharpe: mean/std of per-task PnL (position buy +1 / hold "
             "0 / sell −1 times the task's next-period return; not annualised), on the chain sample. Idle latency: "
             "tasks sent one at a time on the first seed. models.train accuracy: the trained models scored by "
             "`models.train` on its own test split in torch (M-learned: the stacker on published decisions; U-rep: "
             "U), for reference."), ""]
    out += _task_costs_section(results, plots) + _transports_section(results)
    out += _comparison_section(results) + _ablation_section(results) + _alignment_section(results)
    out += _width_section(results)
    out += _ceilings_section(results) + _chain_section(results)
    out += _alpha_section(results, plots) + _ed_section(results, plots) + _agents_section(results, plots)
    out += _robust_section(results, plots) + _tuning_section(results) + _honesty_section(results)
    out += _dataset_section(results)
    out += _env_section(results)
    return "\n".join(out) + "\n"


def _usd(x: Any) -> str:
    if x is None or _nan(x):
        return "–"
    return f"${x:.3g}" if x < 1 else f"${x:,.2f}"


def _task_costs_section(results: dict[str, Any], plots: dict[str, str]) -> list[str]:
    """What a task costs in money on Ethereum L1, an OP Stack chain and Arbitrum (`node.chain.fees`)."""
    from node.chain.fees import CHAIN_TITLES, CHAINS

    archs = results["architectures"]
    prices = results.get("prices") or {}
    out = ["## What a task costs", ""]
    rows = [[name, *(_usd((a.get("cost_usd_per_task") or {}).get(c)) for c in CHAINS), _num(a.get("gas_per_task")),
             _num(a.get("calldata_bytes_per_task")), _num(a.get("fastlz_bytes_per_task")),
             _num(a.get("brotli_bytes_per_task"))] for name, a in archs.items()]
    out += [_table(["architecture", *(f"{CHAIN_TITLES[c]} $/task" for c in CHAINS), "gas", "calldata B",
                    "FastLZ B", "Brotli B"], rows), ""]
    if plots.get("task_costs"):
        out += [f"![US$ per task on each chain]({plots['task_costs']})", ""]
    out += [("Every transaction that touched a task (the chain sample's, over all seeds; M-regret's weight updates "
             "shared among its tasks) priced on three chains from its gas and its signed bytes: Ethereum L1 = gas × "
             "gas price; OP Stack (Fjord) = the L1 data fee of Fjord's estimated size, max(100, −42.5856 + "
             "0.8365 × FastLZ bytes), at (16 × baseFeeScalar × L1 base fee + blobBaseFeeScalar × blob base fee) / 1e6 "
             "per byte, plus gas × L2 gas price; Arbitrum = 16 × Brotli bytes (level 1) × the L1 price of a "
             "calldata unit, plus gas × L2 gas price. FastLZ and Brotli B: the compressed sizes of the task's "
             "signed transactions, each compressed alone, summed. docs/experiment.md gives each formula's source. "
             f"Prices: {prices.get('description', 'the defaults')}. They are stated assumptions, not live "
             "readings; `chorus bench --prices FILE` (with --report-only to re-render) prices the same records "
             "with others."), ""]
    return out


def _conclusion(c: dict[str, Any]) -> str | None:
    """One sentence, only when the comparison's interval excludes zero."""
    if not excludes_zero(c.get("ci")):
        return None
    better, worse = (c["a"], c["b"]) if c["diff"] > 0 else (c["b"], c["a"])
    return (f"{better} is more accurate than {worse} by {abs(100 * c['diff']):.1f} points "
            f"(95% interval of {c['a']} − {c['b']}: {_interval(c['ci'])} points).")


def _comparison_section(results: dict[str, Any]) -> list[str]:
    comps = results.get("comparisons") or []
    out = ["## Comparison", ""]
    if not comps:
        return out + ["No pair of architectures ran on the same tasks.", ""]
    pre = [c for c in comps if c.get("preregistered")]
    out += [("Accuracy of a minus accuracy of b, task by task on the same tasks, mean over seeds, in points, "
             "with the 95% two-level bootstrap interval of the paired differences. The pre-registered comparison "
             "comes first; the last row, M-learned-p − M-learned, is the price of publishing decisions instead of "
             "class probabilities."), ""]
    rows = [[("**" if c.get("preregistered") else "") + f"{c['a']} − {c['b']}" + ("** (pre-registered)" if c.get("preregistered") else ""),
             _pts(c["diff"], c["ci"]), "yes" if excludes_zero(c["ci"]) else "no", str(c["seeds"]),
             _num(c.get("tasks_per_seed"), "{}"), c["source"]] for c in comps]
    out += [_table(["a − b", "difference, pts [95% CI]", "interval excludes 0", "seeds", "tasks/seed", "tasks"],
                   rows), ""]
    if not pre:
        out += ["The pre-registered comparison (U − M-learned-p) could not be computed: one of the two did not run.", ""]
    sentences = [s for c in comps if (s := _conclusion(c))]
    out += [" ".join(sentences) if sentences else
            "No interval excludes zero: no difference between these architectures is claimed.", ""]
    return out


def _ablation_section(results: dict[str, Any]) -> list[str]:
    """The ablation rows and the decomposition of U − M-learned into mechanisms (none if not run)."""
    ab = results.get("ablations") or {}
    if not ab.get("rows"):
        return []
    out = ["## Which mechanism costs what (ablations)", "",
           (f"Two rows that change one mechanism each, on the main table's evaluation tasks ({ab.get('seeds')} "
            f"seed{'' if ab.get('seeds') == 1 else 's'}), through both tiers like every row (scored off chain by the files the nodes run; a chain "
            "sample checked task by task):"), ""]
    out += [f"- **{name}** ({r.get('ablation_of')} on chain): {r.get('definition')}." for name, r in ab["rows"].items()]
    out += [""]
    rows = [[name, _accuracy_cell(r), _chain_cell(r), _num(r.get("gas_per_task")), _num(r.get("txs_per_task"), "{:.1f}")]
            for name, r in ab["rows"].items()]
    out += [_table(["row", "accuracy % [95% CI]", "chain sampled / mismatches", "gas", "txs"], rows), ""]
    steps = ab.get("decomposition") or []
    if steps:
        out += [("The gap between U and M-learned, one mechanism at a time: each step is a minus b, paired task by "
                 "task on the same evaluation tasks, mean over seeds, with its 95% two-level bootstrap interval; "
                 "the steps add up to U − M-learned."), ""]
        out += [_table(["mechanism", "a − b", "difference, pts [95% CI]", "interval excludes 0", "seeds"],
                       [[st["mechanism"], f"{st['a']} − {st['b']}", _pts(st["diff"], st["ci"]),
                         "yes" if excludes_zero(st["ci"]) else "no", str(st["seeds"])] for st in steps]), ""]
        said = [f"{st['mechanism'][0].upper()}{st['mechanism'][1:]} ({st['a']} − {st['b']}): {_pts(st['diff'])} "
                f"points, 95% interval {_interval(st['ci'])}: {st['a']} is "
                f"{'more' if st['diff'] > 0 else 'less'} accurate than {st['b']}."
                for st in steps if excludes_zero(st["ci"])]
        out += [" ".join(said) if said else "No step's interval excludes zero: no mechanism's effect is claimed.", ""]
    out += _ablation_alpha_part(results, steps)
    return out


def _ablation_alpha_part(results: dict[str, Any], main_steps: list[dict[str, Any]]) -> list[str]:
    """The decomposition beside the alpha-sweep points where the ablation rows ran too, one column
    per alpha with the main table's between them (none if they ran beside the main table only)."""
    by_alpha = (results.get("ablations") or {}).get("by_alpha") or {}
    if not by_alpha or not main_steps:
        return []
    main_alpha = float(((results.get("run") or {}).get("profile") or {}).get("alpha", 0.5))
    points = sorted([(float(v["alpha"]), v.get("decomposition") or [], v) for v in by_alpha.values()] +
                    [(main_alpha, main_steps, None)], key=lambda t: t[0])
    out = [(f"The same steps at alpha {', '.join(f'{a:g}' for a, _, _ in points)} (the main table's alpha "
            f"{main_alpha:g}; elsewhere the alpha sweep's seeds and evaluation tasks, the ablation rows beside them "
            "through both tiers):"), ""]
    by_mech = [{st["mechanism"]: st for st in steps} for _, steps, _ in points]
    rows = [[st["mechanism"], f"{st['a']} − {st['b']}",
             *[_pts(m[st["mechanism"]]["diff"], m[st["mechanism"]]["ci"]) if st["mechanism"] in m else "–"
               for m in by_mech]] for st in main_steps]
    out += [_table(["mechanism", "a − b", *[f"alpha {a:g}, pts [95% CI]" for a, _, _ in points]], rows), ""]
    rows_line = []
    for a, _, v in points:
        if v is None:
            continue
        cells = ", ".join(f"{name} {_accuracy_cell(r)} ({_chain_cell(r)} chain)" for name, r in (v.get("rows") or {}).items())
        rows_line.append(f"alpha {a:g} ({v.get('seeds')} seed{'' if v.get('seeds') == 1 else 's'}): {cells}")
    if rows_line:
        out += ["Ablation rows beside the sweep: " + "; ".join(rows_line) + ".", ""]
    said = [f"at alpha {a:g}, {st['mechanism']} ({st['a']} − {st['b']}) {_pts(st['diff'])} points, 95% interval "
            f"{_interval(st['ci'])}" for a, steps, v in points if v is not None for st in steps if excludes_zero(st["ci"])]
    out += [("Resolved away from the main table's alpha: " + "; ".join(said) + ".") if said else
            "Away from the main table's alpha no step's interval excludes zero.", ""]
    return out


def _width_section(results: dict[str, Any]) -> list[str]:
    """The width sweep (`node.experiment.width`), when the run had one."""
    section = results.get("width")
    if not section:
        return []
    from node.experiment.width import render_width

    return render_width(section)


def _alignment_section(results: dict[str, Any]) -> list[str]:
    """The semantic-alignment curve: E-d with a market agent trained apart, against the anchors K
    (none if not run)."""
    al = results.get("alignment") or {}
    if not al.get("curve"):
        return []
    seeds = al.get("seeds")
    d = al.get("definitions") or {}
    ref = al.get("reference") or {}
    out = ["## Semantic alignment (trained-apart agents)", "",
           (f"E-d with the seed's market agent swapped for one trained apart (the same architecture and setting, "
            f"another seed: other initial weights and data order; its own model id), on the main table's evaluation "
            f"tasks ({_num(al.get('tasks_per_seed'), '{}')} per seed, {seeds} seed{'' if seeds == 1 else 's'}), "
            f"scored off chain by the ONNX files. The fusion node fuses another space only through a map registered "
            f"in ModelRegistry; the map is the orthogonal Procrustes map into the reference agent's space fitted "
            f"on K anchors: {al.get('anchors')}. The reference, E-d as the main table runs it: "
            f"{_pct(ref.get('accuracy'), ref.get('accuracy_ci'))} %."), ""]
    rows = []
    dropped = al.get("dropped")
    if dropped:
        dv = dropped["diff_vs_reference"]
        rows.append(["no map (refused)", _pct(dropped["accuracy"], dropped["accuracy_ci"]), _pts(dv["diff"], dv["ci"]),
                     "yes" if excludes_zero(dv["ci"]) else "no", "–", "–", "–"])
    gas = al.get("gas") or {}
    by_k = gas.get("anchors_by_k") or {}
    for c in al["curve"]:
        dv = c["diff_vs_reference"]
        rows.append([f"K = {c['k']}" + (" (raw, no map)" if c["k"] == 0 else ""), _pct(c["accuracy"], c["accuracy_ci"]),
                     _pts(dv["diff"], dv["ci"]), "yes" if excludes_zero(dv["ci"]) else "no",
                     _num(c.get("cka"), "{:.3f}") + (f" ± {c['cka_ci']:.3f}" if not _nan(c.get("cka_ci")) else ""),
                     _num(c.get("residual"), "{:.3f}"), _num(by_k.get(str(c["k"])))])
    out += [_table(["apart market agent", "E-d accuracy % [95% CI]", "− reference, pts [95% CI]",
                    "interval excludes 0", "CKA", "residual", "anchor gas"], rows), ""]
    out += [(f"Before any map, linear CKA between the two agents' spaces is {_num(al.get('cka_before'), '{:.3f}')} and the "
             f"residual {_num(al.get('residual_before'), '{:.3f}')}. CKA: {d.get('cka', '')}. Residual: "
             f"{d.get('residual', '')}. K = 0: {d.get('k0', '')}. No map (refused): {d.get('dropped', '')}."), ""]
    if gas.get("per_anchor_publication") is not None:
        out += [(f"Gas: one anchor publication (publishEmbedding, 16-d f32) costs {_num(gas['per_anchor_publication'])} "
                 f"gas; publishing K anchors costs K × 2 agents × that (the anchor gas column), and registering the map "
                 f"(registerAlignment) {_num(gas.get('register_alignment'))} gas, once per pair of spaces."), ""]
    chain = al.get("chain")
    if chain:
        out += [(f"On chain, on {chain['seeds']} seed{'' if chain['seeds'] == 1 else 's'}: "
                 f"{_num(chain['anchors_per_seed'], '{}')} anchors per seed published by both market agents "
                 f"({chain['publications']} publications), the map fitted from those events and registered; it was "
                 f"{'the same map (bytes and id) as' if chain['maps_equal'] else 'NOT the same map as'} the one fitted "
                 f"off chain on the same anchors, and an alignment resolver (the fusion node's, in process) "
                 f"{'loaded it from the registry' if chain['resolver_loaded'] else 'did NOT load it'}. Then "
                 f"{chain.get('sampled', 0)} evaluation tasks ran through the chain as E-d tasks, the fusion node fusing "
                 f"the apart agent's vectors through the registered map: {chain.get('mismatches', 0)} finalized an action "
                 "other than the off-chain replay's (a mismatch fails the run)."), ""]
    said = []
    for c in al["curve"]:
        dv = c["diff_vs_reference"]
        if excludes_zero(dv["ci"]):
            said.append(f"At K = {c['k']} E-d with the apart agent is {'more' if dv['diff'] > 0 else 'less'} accurate "
                        f"than with the reference agent by {abs(100 * dv['diff']):.1f} points "
                        f"(95% interval {_interval(dv['ci'])}).")
    if dropped and excludes_zero(dropped["diff_vs_reference"]["ci"]):
        dv = dropped["diff_vs_reference"]
        said.insert(0, f"Refusing the apart agent's vector (no map) makes E-d {'more' if dv['diff'] > 0 else 'less'} "
                       f"accurate by {abs(100 * dv['diff']):.1f} points (95% interval {_interval(dv['ci'])}).")
    out += [" ".join(said) if said else
            "No interval excludes zero: no difference from the reference agent is claimed at any K.", ""]
    return out + _alignment_variants(al)


def _alignment_variants(al: dict[str, Any]) -> list[str]:
    """The other curves (apart agent of either architecture x Procrustes or CCA): their paired
    differences against the reference at each K, and a sentence only where an interval excludes 0."""
    variants = al.get("variants") or {}
    if not variants:
        return []
    d = al.get("definitions") or {}
    ks = sorted({c["k"] for v in variants.values() for c in v["curve"]})
    rows, said = [], []
    for name, v in variants.items():
        at = {c["k"]: c for c in v["curve"]}
        rows.append([name, *(_pts(at[k]["diff_vs_reference"]["diff"], at[k]["diff_vs_reference"]["ci"])
                             if k in at else "–" for k in ks),
                     _num(v.get("cka_before"), "{:.3f}"),
                     " / ".join(_num(at[k].get("cka"), "{:.3f}") if k in at else "–" for k in ks)])
        for k in ks:
            dv = at[k]["diff_vs_reference"] if k in at else None
            if dv is not None and excludes_zero(dv["ci"]):
                said.append(f"{name} at K = {k}: E-d {'more' if dv['diff'] > 0 else 'less'} accurate than with the "
                            f"reference agent by {abs(100 * dv['diff']):.1f} points (95% interval {_interval(dv['ci'])}).")
    hidden = al.get("hidden") or {}
    widths = (" Hidden width: " + ", ".join(f"{label} {w}" for label, w in hidden.items()) + ".") if hidden else ""
    out = ["Variants (off chain): " + d.get("variants", "") + "." + widths + " Each cell is E-d accuracy minus the reference's, "
           "in points, paired per task [95% CI]. CKA after the map: " + d.get("cka_variants", "") + ".", ""]
    out += [_table(["apart agent / map", *(f"K = {k}" for k in ks), "CKA before",
                    "CKA after (" + ", ".join(f"K = {k}" for k in ks) + ")"], rows), ""]
    out += [" ".join(said) if said else "No variant's interval excludes zero at any K: no difference is claimed.", ""]
    return out


CEILING_TITLES = {"latent": "latent oracle", "observation": "observation ceiling", "late_fusion_cap": "late-fusion cap"}


def _is_exact(method: str | None) -> bool:
    """Whether a ceiling was computed exactly (every ceiling at latent_dim 1; only bounds above it)."""
    return not method or method.startswith(("exact", "latent oracle"))


def _ceiling_title(key: str, title: str, method: str | None) -> str:
    """The ceiling's name, with how it was computed where that is not the exact method (latent_dim > 1)."""
    if _is_exact(method):
        return title
    how = re.sub(r"^upper bound \(([^)]*)\):\s*", r"\1, ", method)
    return f"{title} (upper bound: {how})"


def _ceilings_section(results: dict[str, Any]) -> list[str]:
    c = results.get("ceilings") or {}
    out = ["## Ceilings", ""]
    rows = []
    methods = c.get("methods") or {}
    for key, title in CEILING_TITLES.items():
        if c.get(key) is not None:
            method = methods.get(key)
            rows.append([_ceiling_title(key, title, method), _pct(c[key], c.get(f"{key}_ci")),
                         "its decisions" if c.get(f"{key}_per_task") else "its rate",
                         c["definitions"][key] if _is_exact(method) else method])  # a bound: what was computed
    if c.get("observation_expected") is not None:
        rows.append(["observation ceiling, expected", _pct(c["observation_expected"]), "–",
                     c["definitions"]["observation_expected"]])
    if not rows:
        return out + ["No ceiling could be computed on these tasks (no latent state, no known likelihoods).", ""]
    out += [_table(["ceiling", "accuracy % [95% CI]", "bootstrap of", "definition"], rows), ""]
    if c.get("source") == CHAIN:
        out += [f"{FALLBACK_MARK} On the chain tasks: these records carry no evaluation set.", ""]
    versus = c.get("versus_observation") or {}
    if versus:
        rows = [[name, _pts(v["diff"], v["ci"]), "paired" if v["paired"] else "unpaired"] for name, v in versus.items()]
        out += ["Each architecture minus the observation ceiling, on the same tasks (points, 95% interval):", "",
                _table(["architecture", "architecture − observation ceiling", "bootstrap"], rows), ""]
        below = [n for n, v in versus.items() if excludes_zero(v["ci"]) and v["diff"] < 0]
        above = [n for n, v in versus.items() if excludes_zero(v["ci"]) and v["diff"] > 0]
        if below:
            out += [f"Below the observation ceiling, beyond the interval: {', '.join(below)}.", ""]
        if above:
            out += [f"**Above the observation ceiling, beyond the interval: {', '.join(above)}** — which no decision "
                    "from these observations can be in expectation: a fault of the instrument (see the honesty "
                    "checks).", ""]
    return out


def _action(a: Any) -> str:
    return {0: "sell", 1: "hold", 2: "buy", -1: "none"}.get(a, str(a))


def _where(alpha: float | None) -> str:
    return "main" if alpha is None else f"alpha {alpha:g}"


def _chain_section(results: dict[str, Any]) -> list[str]:
    cc = results.get("chain_check") or {}
    out = ["## Chain check", ""]
    if not cc.get("units"):
        return out + ["These records carry no chain sample of an evaluation set: nothing to compare.", ""]
    bad = cc["mismatches"]
    out += [(f"{cc['sampled']} sampled tasks in {cc['units']} units went through the chain; on "
             f"{cc['sampled'] - len(bad)} the finalized action equals the off-chain one, on {len(bad)} it does not."
             + (" The run fails." if bad else "")), ""]
    samples = cc.get("samples") or []
    if samples:
        blocks = ", ".join(f"{'ablation' if x.get('ablation') else _where(x['alpha'])} seed {x['seed']}: block {x['block']} "
                           f"(`{str(x['block_hash'])[:12]}…`)" for x in samples[:6])
        out += [(f"Each sample was drawn from the hash of a block mined after the session's models were registered "
                 f"({blocks}{', ...' if len(samples) > 6 else ''}).")
                + (f" Units whose chain tasks are not their drawn sample: {', '.join(cc['off_sample'])}."
                   if cc.get("off_sample") else " Every unit ran its drawn sample (M-regret: the set's first tasks, "
                                                 "in order, as an online learner must)."), ""]
    al_chain = (results.get("alignment") or {}).get("chain") or {}
    if al_chain.get("sampled"):
        al_seeds = [str(x) for x in al_chain.get("sampled_seeds") or []]
        out += [(f"The alignment sessions' {al_chain['sampled']} chain tasks (E-d through the registered map, from "
                 f"the alignment seed{'' if len(al_seeds) == 1 else 's'} {', '.join(al_seeds)}) are in these counts; "
                 "each session's sample was drawn from the hash of a block mined after its map was registered."), ""]
    if bad:
        out += [_table(["unit", "seed", "alpha", "architecture", "eval task", "task id", "chain", "off chain"],
                       [[m["key"], str(m["seed"]), "–" if m["alpha"] is None else f"{m['alpha']:g}", m["arch"],
                         str(m["eval_i"]), str(m["task_id"]), _action(m["chain"]), _action(m["offchain"])]
                        for m in bad]), ""]
    out += [cc.get("definition", "").capitalize() + ".", ""]
    return out


def _dataset_section(results: dict[str, Any]) -> list[str]:
    ds = results.get("dataset")
    if not ds:
        return []
    items = ", ".join(f"{k} {v}" for k, v in ds.items() if k not in ("per_seed",))
    return ["## Evaluation data", "", f"Generator parameters of the evaluation sets: {items}." +
            (" They differ between seeds beyond the seed (see results.json)." if ds.get("per_seed") else ""), ""]


def _alpha_section(results: dict[str, Any], plots: dict[str, str]) -> list[str]:
    sw = results["sweeps"]["alpha"]
    points = alpha_points(sw)
    out = ["## Synergy: the gap curve", ""]
    if not points:
        return out + [f"Not run ({sw.get('skipped', 'no points')}).", ""]
    if sw.get("reduced"):
        out += ["*Reduced sweep (quick profile): alpha in " + ", ".join(f"{a:g}" for a in sw["alphas"]) +
                "; the full profile runs 0, 0.25, 0.5, 0.75, 1 with 10 seeds or more.*", ""]
    if plots.get("alpha"):
        out += [f"![gap vs alpha]({plots['alpha']})", ""]
    names = list(ARCH_NAMES.values())
    rows = []
    for pt in points:
        a, c = pt["architectures"], pt["ceilings"]
        n_eval = next((x["n_eval_tasks"] for x in a.values() if x.get("n_eval_tasks")), None)
        rows.append([f"{pt['alpha']:g}" + (" (main)" if pt["main_table"] else ""),
                     f"{pt['seeds']} × {_num(n_eval, '{}')}" if n_eval else str(pt["seeds"]),
                     *[_accuracy_cell(a[n]) if n in a else "–" for n in names],
                     _pct(c.get("latent")), _pct(c.get("observation")), _pct(c.get("late_fusion_cap")),
                     _pts(pt["gap_u_minus_best_modular"], pt["gap_u_minus_best_modular_ci"]),
                     _pts((pt.get("u_minus_late_fusion") or {}).get("diff"), (pt.get("u_minus_late_fusion") or {}).get("ci"))])
    out += [_table(["alpha", "seeds × tasks", *names, "latent oracle", "observation ceiling", "late-fusion cap",
                    "U − best modular (pts)", "U − M-learned-p (pts)"], rows), "",
            ("Accuracy % with its 95% two-level bootstrap interval; ceilings on the same evaluation tasks "
             "(the late-fusion cap at alpha = 1 only). " + sw["definition"] + "; U − M-learned-p paired the same way."),
            ""]
    sentences = []
    for pt in points:
        for key, label in (("gap_u_minus_best_modular", "the best modular architecture"),):
            if excludes_zero(pt.get(f"{key}_ci")):
                sign = "above" if pt[key] > 0 else "below"
                sentences.append(f"At alpha {pt['alpha']:g}, U is {sign} {label} by {abs(100 * pt[key]):.1f} points "
                                 f"({_interval(pt[f'{key}_ci'])}).")
    if sentences:
        out += [" ".join(sentences), ""]
    return out


def _transports_section(results: dict[str, Any]) -> list[str]:
    """Per (architecture, transport) on the first seed's shared chain tasks: costs, latency, accuracy."""
    tr = results.get("transports") or {}
    out = ["## Transports", ""]
    if not tr.get("rows"):
        return out + ["Not run.", ""]
    from node.chain.fees import CHAIN_TITLES, CHAINS

    titles = tr.get("titles") or {}
    rows = [[r["arch"], titles.get(r["transport"], r["transport"]), str(r["tasks"]), _num(r.get("gas_per_task")),
             _num(r.get("calldata_bytes_per_task")), _num(r.get("txs_per_task"), "{:.1f}"),
             _num(r.get("latency_p50_s"), "{:.2f}"), _pct(r.get("accuracy")),
             _num(r.get("gas_ratio"), "{:.2f}"), *(_usd((r.get("cost_usd_per_task") or {}).get(c)) for c in CHAINS)]
            for r in tr["rows"]]
    c = tr["check"]
    mark = {True: "PASS", False: "FAIL", None: "n/a"}[c["passed"]]
    fallback = next((r.get("report_fallback_s") for r in tr["rows"] if r.get("report_fallback_s")), None)
    wait = next((r.get("batch_wait_s") for r in tr["rows"] if r.get("batch_wait_s") is not None), None)
    batched = any(r["transport"] == "batch" for r in tr["rows"])
    out += [_table(["architecture", "transport", "tasks", "gas/task", "calldata B/task", "txs/task", "latency p50 s",
                    "accuracy %", "gas / per-agent gas", *(f"{CHAIN_TITLES[c]} $/task" for c in CHAINS)], rows), "",
            (f"Seed {tr['seed']}: the main table's first chain tasks (M-regret: the evaluation set's first, in its "
             "main rounds) sent again to node processes running each transport, on a deployment of their own, one "
             "architecture at a time; the per-agent rows are the main table's units on those same tasks. Signed "
             "report: each agent signs its decision (EIP-712) and posts it to the task's aggregator (the fusion agent "
             "of M-rules and M-learned first reads its peers' signed decisions from it), which submits one "
             "`submitReport` that finalizes at the quorum"
             + (f" (fallback to the agents' own transactions after {fallback:g} s of chain time)" if fallback else "")
             + (". Batched: each agent holds its publications"
                + (f" up to {wait:g} s" if wait is not None else "")
                + " and sends those of several tasks in one `publishDecisions` (E-d's embeddings first, in one "
                "`publishEmbeddings`), a batch's gas shared among its tasks; each task still has its own "
                "`finalize`" if batched else "")
             + ". Gas / per-agent gas: the ratio of gas per task on the same tasks; $/task: priced as in \"What a "
             "task costs\". M-regret's weight updates are "
             "shared among each unit's tasks, and its main unit has more of them, so its ratio flatters per-agent "
             "transactions a little. Not run: "
             + "; ".join(f"{k} ({v})" for k, v in (tr.get("not_run") or {}).items()) + "."), "",
            f"**{mark}** {c['name']}: {c['detail']}.", ""]
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
        rows.append([s["title"], *[f"{_pct(a[n]['accuracy'], a[n].get('accuracy_ci') if sw['seeds'] > 1 else None, digits=0)} "
                                   f"({_num(a[n]['relative'], '{:.2f}')}, "
                                   f"{_num(None if a[n].get('effective') is None else 100 * a[n]['effective'], '{:+.0f}')})"
                                   if n in a else "–" for n in names]])
    out += [_table(["scenario", *names], rows), "",
            "Cells: accuracy % on the chain tasks of the scenario ([95% two-level bootstrap interval] where there "
            "are several seeds; relative robustness, effective robustness in points). " +
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


def _tuning_section(results: dict[str, Any]) -> list[str]:
    """What validation chose for every seed's models (never the test or evaluation tasks)."""
    per_seed = (results.get("tuning") or {}).get("per_seed") or []
    if not per_seed:
        return []
    from node.protocol.enums import AGENT_ROLES

    roles = [r.label for r in AGENT_ROLES]
    out = ["## Tuning", "", "Chosen on each seed's validation split. Trained models: the setting kept among those tried "
           "(hidden width, learning rate, weight decay, dropout) and the epochs it trained for before early "
           "stopping (its weights are those of its best validation loss); "
           "M-rules' thresholds and M-regret's learning rate from their grids.", "",
           "| seed | model | settings tried | chosen | epochs trained (of max) | validation accuracy % |",
           "| --- | --- | --- | --- | --- | --- |"]
    for row in per_seed:
        for name, t in sorted(row["models"].items()):
            hp = t.get("hp") or {}
            chosen = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in hp.items())
            out.append(f"| {row['seed']} | {name} | {t.get('settings_tried')} | {chosen} | {t.get('epochs')} "
                       f"(of {t.get('max_epochs')}) | {_pct(t.get('val_acc'))} |")
        rules = row.get("m-rules") or {}
        if rules.get("chosen"):
            chosen = ", ".join(f"{k} {v:g}" for k, v in rules["chosen"].items())
            out.append(f"| {row['seed']} | M-rules thresholds | {rules.get('settings_tried')} | {chosen} | | |")
        regret = row.get("m-regret") or {}
        if regret.get("eta") is not None:
            out.append(f"| {row['seed']} | M-regret learning rate | {regret.get('settings_tried')} | "
                       f"eta {regret['eta']:g} | | |")
    for row in per_seed:
        regret = row.get("m-regret") or {}
        for what, key in (("starts", "collapsed_onto"), ("ends", "ended_on")):
            if regret.get(key) is not None:
                out.append("")
                out.append(f"Seed {row['seed']}: M-regret {what} with {COLLAPSE_WORDS} on the {roles[regret[key]]} "
                           "agent: it then decides as that agent alone (as Uni-best does), because Hedge's "
                           "multiplicative update drives the weight of every agent that errs more often towards zero.")
    return out + [""]


COLLAPSE_WORDS = "99% or more of its weight"


def _honesty_section(results: dict[str, Any]) -> list[str]:
    h = results["honesty"]
    out = ["## Honesty checks", ""]
    for c in h["checks"]:
        mark = c["verdict"].upper() if c.get("verdict") else {True: "PASS", False: "FAIL", None: "n/a"}[c["passed"]]
        out.append(f"- **{mark}** {c['name']}: {c['detail']}" + (" (a failure fails the run)" if c.get("fatal") else ""))
    info = h.get("info", {}).get("chain_minus_train_reference_accuracy_pts")
    if info:
        out += ["", f"Chain-sample minus models.train accuracy (points, mean over seeds; the chain sample is small): {info}."]
    return out + [""]


def _env_section(results: dict[str, Any]) -> list[str]:
    env, run = results["environment"], results["run"]
    pk = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    return ["## Environment", "",
            f"- CPU: {env.get('cpu')}, {env.get('cores')} cores, {env.get('memory_gib')} GiB; {env.get('platform')}",
            f"- Python {env.get('python')}; {pk}; local {env.get('anvil') or 'anvil ?'}"
            + (f"; the chain's client: {env['chain_client']}" if env.get("chain_client") else ""),
            (f"- git commit {env.get('git_commit')}{' (with uncommitted changes)' if env.get('git_dirty') else ''}; "
             f"base seed {env.get('seed')}"),
            "- Where the time went (s" + (f", the last of {n} invocations" if (n := len(run.get("invocations") or [])) > 1 else "")
            + "): " + _timing_summary(run.get("timings", {})), ""]


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
