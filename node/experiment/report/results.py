"""results.json, computed from the run's unit records: the main table, the sweeps, the honesty checks.

Everything here is a pure function of the checkpoint's records (plus the run's options and the
environment), so a resumed run, or `chorus bench --report-only`, gives the same results; the
markdown (`node.experiment.report.render`) and the plots are drawn from them.

Two tiers. Each seed's evaluation set (the record `eval/s{seed}`: labels, ceilings, the chain
sample) is scored off chain by the very model files the nodes run, and every architecture's unit
carries its action on each of those tasks (`eval.actions`): that is the measurement. A random
sample of the same tasks ran through the chain (the unit's `tasks`, each with its `eval_i`); on
every one the finalized action must be the off-chain one: that is the chain check. Costs (gas,
bytes, transactions, latency, CPU) come from the chain sample. Units without `eval` (older
checkpoints) are scored on their chain tasks, and say so (`accuracy_source`).

results.json layout: `architectures.<name>` for the architectures (`arch_id` is TaskBoard's
id, `name` the report's, `node.protocol.enums.ARCH_NAMES`; the ablation rows E-through and U-concat,
where they ran, carry `ablation_of`, the architecture id they ran as), `ablations` (those rows and the
decomposition of U − M-learned into mechanisms), `alignment` (the semantic-alignment curve: E-d with a
market agent trained apart, against the anchors K; null when it did not run), `ceilings`, `comparisons`,
`chain_check`, `dataset`, `oracle`, `sweeps.{alpha,agents,ed,robustness}`, `transports`, `honesty`,
`environment`, `run`, `prices` (the fee model's, which give each architecture's
`cost_usd_per_task.{l1,op,arbitrum}`). Every figure of quality is a fraction in [0, 1] (differences too: 0.015 is
1.5 points). An interval given as a list, [lo, hi], is a 95% two-level bootstrap interval
(`metrics.hierarchical_bootstrap`); one given as a number is the half-width of a 95% t-interval of
the mean over seeds.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from node.chain.fees import CHAINS, Prices, cost_usd
from node.experiment.config import ABLATION_ROWS, MODULAR, RunOptions, ablation_prefix
from node.experiment.report import metrics as M
from node.experiment.report.environment import environment
from node.protocol.enums import ARCH_NAMES, Arch

OFFCHAIN_NAME = {"Uni-best": "Uni-best", "M-rules": "M-rules", "M-fixed": "M-fixed", "M-learned": "M-learned/dec",
                 "M-regret": "M-regret", "E-d": "E-16/f32/frozen", "U": "U", "U-rep": "U", "M-learned-p": "M-learned"}
"""The models.train score (the trained models on their own test split, in torch) each architecture
is compared with, for reference."""
SCENARIO_TITLES = {"noise-market": "noise on prices/volumes", "noise-sentiment": "noise on headlines",
                   "noise-risk": "noise on flows", "byzantine": "one byzantine agent", "offline": "one agent offline"}
EVAL = "offchain-eval"
CHAIN = "chain-sample"
PREREGISTERED = ("U", "M-learned-p")
"""The comparison named before any result: U against calibrated late fusion, M-learned-p (the learned
late fusion of the agents' published class probabilities)."""
CEILINGS = ("latent", "observation", "late_fusion_cap")
CEILING_DEFINITIONS = {
    "latent": "the label rule applied to the generator's latent state (no model sees it): the latent oracle",
    "observation": "the Bayes decision given the observations the agents see, from the generator's known "
                   "likelihoods: no decision from those observations beats it in expectation",
    "observation_expected": "the observation ceiling's expected accuracy, the mean over tasks of its largest "
                            "class posterior (lower variance than the hit rate; no interval)",
    "late_fusion_cap": "alpha = 1 only: the Bayes decision given each modality's sign-blind statistic, which caps "
                       "any fusion of per-modality messages that do not carry the latent's sign",
}


def _by_prefix(records: dict[str, dict], prefix: str) -> dict[str, dict]:
    return {k: v for k, v in records.items() if k.startswith(prefix)}


def _seed_quality(record: dict) -> dict[str, float]:
    q = M.quality(record["tasks"])
    if "oracle_accuracy" in q:
        q["gap_to_oracle"] = q["oracle_accuracy"] - q["accuracy"]
    return q


def _task_key(t: dict) -> int:
    """A chain task's place in its seed's evaluation set (older records: its place in the stream)."""
    return int(t["eval_i"]) if t.get("eval_i") is not None else int(t["i"])


def _chain_correct(tasks: Sequence[dict]) -> np.ndarray:
    """Per chain task 1.0 where the finalized action is the label (never finalized: hold)."""
    if not tasks:
        return np.zeros(0)
    return (M.actions_of(tasks) == M.labels_of(tasks)).astype(np.float64)


def _seed_of(key: str, record: dict) -> int | None:
    if record.get("seed") is not None:
        return int(record["seed"])
    m = re.search(r"/s(\d+)(/|$)", key)
    return int(m.group(1)) if m else None


def _one_or_list(values: list[int]) -> int | list[int] | None:
    if not values:
        return None
    return values[0] if len(set(values)) == 1 else values


# -- one table: the units of the main table, or of one alpha point, with their evaluation sets ----------


class Table:
    """The units of one table (the main one: `main/s{seed}/a{arch}`; an alpha point:
    `alpha/{alpha:g}/s{seed}/a{arch}`) and the evaluation records of its seeds (`eval/s{seed}`,
    `eval/alpha/{alpha:g}/s{seed}`)."""

    def __init__(self, records: dict[str, dict], seeds: Sequence[int], alpha: float | None = None,
                 prefix: str | None = None) -> None:
        self.alpha, self.prefix = alpha, prefix
        if prefix is not None:  # e.g. the ablation units, `ablation/s{seed}/a{arch}` with `eval/ablation/s{seed}`
            unit_key, eval_key = (lambda s, a: f"{prefix}/s{s}/a{a}"), (lambda s: f"eval/{prefix}/s{s}")
        elif alpha is None:
            unit_key, eval_key = (lambda s, a: f"main/s{s}/a{a}"), (lambda s: f"eval/s{s}")
        else:
            unit_key, eval_key = (lambda s, a: f"alpha/{alpha:g}/s{s}/a{a}"), (lambda s: f"eval/alpha/{alpha:g}/s{s}")
        self.evals = {s: records[eval_key(s)] for s in seeds if eval_key(s) in records}
        self.units = {arch: {s: records[unit_key(s, arch)] for s in seeds if unit_key(s, arch) in records}
                      for arch in ARCH_NAMES}
        self._labels: dict[int, np.ndarray] = {}

    def seeds(self, arch: int) -> list[int]:
        return sorted(self.units[arch])

    def labels(self, seed: int) -> np.ndarray | None:
        ev = self.evals.get(seed)
        if not ev or not ev.get("labels"):
            return None
        if seed not in self._labels:
            self._labels[seed] = M.decode_actions(ev["labels"])
        return self._labels[seed]

    def eval_actions(self, arch: int, seed: int) -> np.ndarray | None:
        """The architecture's off-chain action on every task of the seed's evaluation set (-1: none)."""
        unit, labels = self.units[arch].get(seed), self.labels(seed)
        if unit is None or labels is None:
            return None
        digits = (unit.get("eval") or {}).get("actions")
        if digits is None:
            digits = (self.evals[seed].get("actions") or {}).get(str(int(arch)))
        if digits is None:
            return None
        actions = M.decode_actions(digits)
        if len(actions) != len(labels):
            raise ValueError(f"{ARCH_NAMES[arch]} seed {seed}: {len(actions)} off-chain actions for an evaluation "
                             f"set of {len(labels)} labels")
        return actions

    def measured(self, arch: int, seeds: Sequence[int] | None = None) -> bool:
        """Whether every seed of the architecture has its off-chain actions on the evaluation set."""
        seeds = self.seeds(arch) if seeds is None else seeds
        return bool(seeds) and all(self.eval_actions(arch, s) is not None for s in seeds)

    def correct(self, arch: int) -> tuple[list[int], list[np.ndarray], str]:
        """Seeds, per-task correctness per seed, and where it comes from: the evaluation set when
        every seed has it, else the chain tasks."""
        seeds = self.seeds(arch)
        if self.measured(arch):
            return seeds, [M.correctness(self.eval_actions(arch, s), self.labels(s)) for s in seeds], EVAL
        return seeds, [_chain_correct(self.units[arch][s]["tasks"]) for s in seeds], CHAIN

    def paired(self, a: int, b: int, seeds: Sequence[int] | None = None
               ) -> tuple[list[int], list[np.ndarray], list[np.ndarray], str] | None:
        """Per-task correctness of a and of b on the same tasks, per common seed: the evaluation
        set when both have it on every common seed, else the chain tasks both ran (joined by
        evaluation index, or by stream index in older records)."""
        common = sorted(set(self.units[a]) & set(self.units[b]) & set(self.seeds(a) if seeds is None else seeds))
        if not common:
            return None
        if self.measured(a, common) and self.measured(b, common):
            va = [M.correctness(self.eval_actions(a, s), self.labels(s)) for s in common]
            vb = [M.correctness(self.eval_actions(b, s), self.labels(s)) for s in common]
            return common, va, vb, EVAL
        out_s, va, vb = [], [], []
        for s in common:
            ta = {_task_key(t): t for t in self.units[a][s]["tasks"]}
            tb = {_task_key(t): t for t in self.units[b][s]["tasks"]}
            keys = sorted(set(ta) & set(tb))
            if keys:
                out_s.append(s)
                va.append(_chain_correct([ta[k] for k in keys]))
                vb.append(_chain_correct([tb[k] for k in keys]))
        return (out_s, va, vb, CHAIN) if out_s else None

    def ceiling(self, name: str, seed: int) -> tuple[np.ndarray | None, bool]:
        """A ceiling's per-task correctness on the seed's evaluation set and whether it is per task
        (its decisions were recorded) or rebuilt from its rate (for the bootstrap of a rate)."""
        ev = self.evals.get(seed) or {}
        labels = self.labels(seed)
        digits = (ev.get("ceiling_actions") or {}).get(name)
        if digits is not None and labels is not None:
            return M.correctness(digits, labels), True
        rate = (ev.get("ceilings") or {}).get(name)
        n = ev.get("n") or (len(labels) if labels is not None else None)
        if rate is not None and n:
            return M.rate_vector(float(rate), int(n)), False
        return None, False

    def chain_oracle(self, arch: int, seed: int) -> np.ndarray | None:
        """The latent oracle's correctness on the architecture's chain tasks (the tasks carry it)."""
        tasks = self.units[arch][seed]["tasks"]
        if not tasks or any(t.get("oracle") is None for t in tasks):
            return None
        return (np.array([int(t["oracle"]) for t in tasks]) == M.labels_of(tasks)).astype(np.float64)


def _chain_counts(units: Sequence[dict]) -> tuple[int | None, int | None]:
    """Tasks compared with their off-chain action, and mismatches, over the units (None: no unit
    was checked)."""
    checks = [chain_check_of(u) for u in units]
    checks = [c for c in checks if c is not None]
    if not checks:
        return None, None
    return sum(c["sampled"] for c in checks), sum(len(c["mismatches"]) for c in checks)


def chain_check_of(unit: dict) -> dict[str, Any] | None:
    """The unit's chain check: every chain task's finalized action (never finalized: -1) against
    the unit's off-chain action on the same evaluation task, recomputed here from the records, and
    joined with what the runner recorded (`chain_check`), so a mismatch either side finds counts."""
    reported = unit.get("chain_check")
    actions = (unit.get("eval") or {}).get("actions")
    tasks = unit.get("tasks") or []
    found: dict[int, dict[str, int]] = {}
    sampled = 0
    if actions is not None and tasks and all(t.get("eval_i") is not None for t in tasks):
        off = M.decode_actions(actions)
        sampled = len(tasks)
        for t in tasks:
            i = int(t["eval_i"])
            chain = -1 if t["action"] is None else int(t["action"])
            offchain = int(off[i]) if 0 <= i < len(off) else -2  # -2: not a task of the evaluation set
            if chain != offchain:
                found[i] = {"i": i, "task_id": t["task_id"], "chain": chain, "offchain": offchain}
    if reported is None and not sampled:
        return None
    for m in (reported or {}).get("mismatches", []):
        found.setdefault(int(m["i"]), {k: m.get(k) for k in ("i", "task_id", "chain", "offchain")})
    sampled = max(sampled, int((reported or {}).get("sampled", 0)))
    return {"sampled": sampled, "mismatches": [found[i] for i in sorted(found)]}


# -- figures of one table -----------------------------------------------------------------------------


def accuracy_entry(table: Table, arch: int) -> dict[str, Any]:
    """Accuracy (the evaluation set's when measured, else the chain sample's) with its bootstrap
    interval, the evaluation set's size per seed, and the chain sample's own accuracy and check."""
    seeds, vecs, source = table.correct(arch)
    acc, ci = M.boot_mean(vecs)
    units = [table.units[arch][s] for s in seeds]
    chain_acc, chain_ci = M.boot_mean([_chain_correct(u["tasks"]) for u in units])
    sampled, mismatches = _chain_counts(units)
    return {"accuracy": acc, "accuracy_ci": ci, "accuracy_source": source,
            "n_eval_tasks": _one_or_list([len(v) for v in vecs]) if source == EVAL else None,
            "chain_sampled": sampled, "chain_mismatches": mismatches,
            "chain_accuracy": chain_acc, "chain_accuracy_ci": chain_ci, "seeds": len(seeds)}


def ceilings_of(table: Table) -> dict[str, Any]:
    """The latent oracle, the observation ceiling and (alpha = 1) the late-fusion cap: mean over
    the seeds' evaluation sets with the bootstrap interval; older records without an evaluation
    set: the latent oracle on the chain tasks."""
    out: dict[str, Any] = {"source": EVAL if table.evals else CHAIN, "seeds": len(table.evals)}
    per_seed = []
    for s, ev in sorted(table.evals.items()):
        c = ev.get("ceilings") or {}
        per_seed.append({"seed": s, "n": ev.get("n"), **{k: c.get(k) for k in (*CEILINGS, "observation_expected")}})
    for name in CEILINGS:
        vecs, per_task = [], True
        for s in sorted(table.evals):
            v, exact = table.ceiling(name, s)
            if v is not None:
                vecs.append(v)
                per_task &= exact
        if not table.evals and name == "latent":  # older records: the oracle the chain tasks carry
            arch = Arch.M_FIXED if table.units[Arch.M_FIXED] else next((a for a in ARCH_NAMES if table.units[a]), None)
            if arch is not None:
                vecs = [v for s in table.seeds(arch) if (v := table.chain_oracle(arch, s)) is not None]
        if vecs:
            out[name], out[f"{name}_ci"] = M.boot_mean(vecs)
            out[f"{name}_per_task"] = per_task
        else:
            out[name], out[f"{name}_ci"] = None, None
    expected = [p["observation_expected"] for p in per_seed if p.get("observation_expected") is not None]
    out["observation_expected"] = float(np.mean(expected)) if expected else None
    out["n_eval_tasks"] = _one_or_list([p["n"] for p in per_seed if p.get("n")])
    out["per_seed"] = per_seed
    methods: dict[str, str] = {}  # latent_dim > 1 only: how each ceiling was computed (`ceilings_for`)
    for _, ev in sorted(table.evals.items()):
        for name, method in (ev.get("ceiling_methods") or {}).items():
            methods.setdefault(name, method)
    if methods:
        out["methods"] = methods
    return out


def versus_ceiling(table: Table, arch: int, name: str) -> dict[str, Any] | None:
    """The architecture minus a ceiling, task by task on the same evaluation tasks, mean over
    seeds with the bootstrap interval of the paired difference (unpaired when the ceiling is known
    only as a rate). Without an evaluation set, the latent oracle on the chain tasks (paired)."""
    seeds = table.seeds(arch)
    if table.measured(arch):
        arch_v, ceil_v, paired = [], [], True
        for s in seeds:
            v, exact = table.ceiling(name, s)
            if v is None:
                continue
            arch_v.append(M.correctness(table.eval_actions(arch, s), table.labels(s)))
            ceil_v.append(v)
            paired &= exact
        if not arch_v:
            return None
        diff, ci = (M.paired_difference if paired else M.unpaired_difference)(arch_v, ceil_v)
        return {"diff": diff, "ci": ci, "paired": paired, "source": EVAL, "seeds": len(arch_v)}
    if name != "latent" or table.evals:
        return None
    pairs = [(_chain_correct(table.units[arch][s]["tasks"]), o) for s in seeds
             if (o := table.chain_oracle(arch, s)) is not None]
    if not pairs:
        return None
    diff, ci = M.paired_difference([a for a, _ in pairs], [o for _, o in pairs])
    return {"diff": diff, "ci": ci, "paired": True, "source": CHAIN, "seeds": len(pairs)}


def comparison(table: Table, a: str, b: str, *, preregistered: bool = False) -> dict[str, Any] | None:
    """{a, b, diff, ci}: correctness of a minus correctness of b on the same tasks, mean over
    seeds, with the two-level bootstrap interval of the per-task differences."""
    ids = {name: arch for arch, name in ARCH_NAMES.items()}
    got = table.paired(ids[a], ids[b])
    if got is None:
        return None
    seeds, va, vb, source = got
    diff, ci = M.paired_difference(va, vb)
    return {"a": a, "b": b, "diff": diff, "ci": ci, "excludes_zero": M.excludes_zero(ci), "source": source,
            "seeds": len(seeds), "tasks_per_seed": _one_or_list([len(v) for v in va]),
            "preregistered": preregistered}


INTERFACE = ("M-learned-p", "M-learned")
"""The price of the decision-only interface: the same learned late fusion on the agents' class
probabilities minus on their decisions."""


def comparisons_of(table: Table) -> list[dict[str, Any]]:
    """The pre-registered comparison (U - M-learned-p) first, then U against every other
    architecture, then M-learned-p - M-learned (the decision-only interface's price)."""
    out = []
    first = comparison(table, *PREREGISTERED, preregistered=True)
    if first:
        out.append(first)
    for name in ARCH_NAMES.values():
        if name not in PREREGISTERED and (c := comparison(table, "U", name)) is not None:
            out.append(c)
    if (c := comparison(table, *INTERFACE)) is not None:
        out.append(c)
    return out


def gap_to_best_modular(table: Table) -> dict[str, Any]:
    """U minus the best modular architecture of each seed (picked after the fact on that seed's
    tasks, which favours the modular side), paired per task, mean over seeds, bootstrap interval."""
    diffs_u, diffs_b, best_names = [], [], []
    for s in table.seeds(Arch.U):
        cands = [a for a in MODULAR if s in table.units[a]]
        if not cands:
            continue
        accs = {}
        for a in cands:
            got = table.paired(Arch.U, a, [s])
            if got is not None:
                accs[a] = (float(np.mean(got[2][0])), got)
        if not accs:
            continue
        best = max(accs, key=lambda a: accs[a][0])
        _, va, vb, _ = accs[best][1]
        diffs_u.append(va[0])
        diffs_b.append(vb[0])
        best_names.append(ARCH_NAMES[best])
    if not diffs_u:
        return {"gap_u_minus_best_modular": None, "gap_u_minus_best_modular_ci": None, "best_modular_per_seed": []}
    gap, ci = M.paired_difference(diffs_u, diffs_b)
    return {"gap_u_minus_best_modular": gap, "gap_u_minus_best_modular_ci": ci, "best_modular_per_seed": best_names}


# -- ablations -------------------------------------------------------------------------------------


ABLATION_PREFIX = "ablation"
ABLATION_DEFINITIONS = {
    "E-through": "E-d whose agents' encoders were trained end to end through the 16-d bottleneck with the E-d head "
                 "(gradient crossed the modules once, at training), then deployed as independent agents that "
                 "publish their embeddings; E-d's are trained alone (frozen)",
    "U-concat": "U's modality tokens concatenated with the presence mask into an MLP, trained end to end the same "
                "way: U without cross-modal attention, served by the coordinator as U is",
}
DECOMPOSITION = (
    ("cross-modal attention", ("main", "U"), ("ablation", "U-concat")),
    ("one model rather than modules meeting at a 16-d bottleneck (both trained end to end)",
     ("ablation", "U-concat"), ("ablation", "E-through")),
    ("end-to-end training of the agents", ("ablation", "E-through"), ("main", "E-d")),
    ("interface: embeddings rather than class probabilities", ("main", "E-d"), ("main", "M-learned-p")),
    ("interface: class probabilities rather than decisions", ("main", "M-learned-p"), ("main", "M-learned")),
)
"""The gap between U and M-learned, step by step: each step a paired difference (first minus
second) on the same evaluation tasks; the steps add up to U − M-learned."""


def _arch_of(table_name: str, row: str) -> int:
    if table_name == ABLATION_PREFIX:
        return next(a for a, n in ABLATION_ROWS.items() if n == row)
    return next(a for a, n in ARCH_NAMES.items() if n == row)


def paired_across(ta: Table, a: int, tb: Table, b: int, seeds: Sequence[int] | None = None
                  ) -> tuple[list[int], list[np.ndarray], list[np.ndarray]] | None:
    """Per-task correctness of `a` in table `ta` and of `b` in table `tb` on the seeds (of `seeds`,
    default all) both measured on the same evaluation set (same labels, task for task); None when
    no seed qualifies."""
    seeds = sorted(set(ta.units[a]) & set(tb.units[b]) & (set(seeds) if seeds is not None else set(ta.units[a])))
    out_s, va, vb = [], [], []
    for s in seeds:
        xa, xb, la, lb = ta.eval_actions(a, s), tb.eval_actions(b, s), ta.labels(s), tb.labels(s)
        if xa is None or xb is None or la is None or lb is None:
            continue
        if len(la) != len(lb) or not np.array_equal(la, lb):
            raise ValueError(f"seed {s}: the ablation and main-table evaluation sets differ; they must be the same tasks")
        out_s.append(s)
        va.append(M.correctness(xa, la))
        vb.append(M.correctness(xb, lb))
    return (out_s, va, vb) if out_s else None


def _ablation_point(records: dict[str, dict], seeds: list[int], host: Table, alpha: float | None) -> dict[str, Any]:
    """The ablation rows beside one table (`host`: the main table, or an alpha-sweep point's) and
    the decomposition of U − M-learned on its evaluation tasks. Empty when no ablation unit ran there."""
    table = Table(records, seeds, prefix=ablation_prefix(alpha))
    if not any(table.units[a] for a in ABLATION_ROWS):
        return {}
    per_arch, _ = architectures(records, seeds, table)
    rows = {}
    for arch, row in ABLATION_ROWS.items():
        if table.units[arch]:
            entry = dict(per_arch[ARCH_NAMES[arch]])
            entry.update(name=row, ablation_of=ARCH_NAMES[arch], definition=ABLATION_DEFINITIONS[row])
            rows[row] = entry
    tables = {"main": host, ABLATION_PREFIX: table}
    # Every step on the seeds both ablation rows ran, so that the steps add up to U − M-learned there.
    common = sorted(set.intersection(*(set(table.units[a]) for a in ABLATION_ROWS)))
    steps = []
    for mechanism, (t1, r1), (t2, r2) in DECOMPOSITION:
        got = paired_across(tables[t1], _arch_of(t1, r1), tables[t2], _arch_of(t2, r2), common)
        if got is None:
            continue
        s, va, vb = got
        diff, ci = M.paired_difference(va, vb)
        steps.append({"mechanism": mechanism, "a": r1, "b": r2, "diff": diff, "ci": ci,
                      "excludes_zero": M.excludes_zero(ci), "seeds": len(s),
                      "tasks_per_seed": _one_or_list([len(v) for v in va]), "source": EVAL})
    return {"rows": rows, "decomposition": steps,
            "seeds": len({s for a in ABLATION_ROWS for s in table.units[a]})}


def ablations(records: dict[str, dict], seeds: list[int], main: Table, alphas: Sequence[float] = (),
              sweep_seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """The ablation rows (E-through, U-concat: accuracy on the main table's evaluation tasks, chain
    check, costs) and the decomposition of U − M-learned into mechanisms, each step paired per task
    with its two-level bootstrap interval; `by_alpha` the same beside each alpha-sweep point of
    `alphas` where they ran. Empty when no ablation unit ran beside the main table."""
    out = _ablation_point(records, seeds, main, None)
    if not out:
        return {}
    out["definitions"] = ABLATION_DEFINITIONS
    sweep_seeds = list(seeds if sweep_seeds is None else sweep_seeds)
    by_alpha = {}
    for alpha in alphas:
        point = _ablation_point(records, sweep_seeds, Table(records, sweep_seeds, alpha=alpha), alpha)
        if point:
            by_alpha[f"{alpha:g}"] = {"alpha": alpha, **point}
    if by_alpha:
        out["by_alpha"] = by_alpha
    return out


# -- alignment ---------------------------------------------------------------------------------------


ALIGNMENT_PREFIX = "alignment"
ALIGNMENT_CHECK = ("alignment: the map fitted from the chain's anchors is the off-chain one, the fusion node loads it, "
                   "and fuses through it as the off-chain replay does")
ALIGNMENT_DEFINITIONS = {
    "reference": "E-d as the main table runs it (the seed's market agent, the one its E-d head was trained on)",
    "dropped": "the market agent swapped for one trained apart, no map registered: the fusion node refuses its "
               "vector (another model id) and fuses the other two; the agent's own decision still counts",
    "k0": "the apart agent's vector fused raw, as if it were in the reference space (what mixing spaces "
          "without a map would give; the chain's fusion node never does this)",
    "k": "the apart agent's vector through the orthogonal Procrustes map fitted on K anchors",
    "cka": "linear CKA between the apart agent's (mapped) embeddings and the reference's on the evaluation tasks; "
           "invariant to an orthogonal map, so Procrustes leaves it unchanged by construction",
    "residual": "mean squared distance of the apart agent's (mapped) embeddings to the reference's on the "
                "evaluation tasks, over the reference's variance (0: the same vectors)",
    "per_anchor_publication": "gas of one publishEmbedding of a 16-d f32 anchor embedding, mean over the chain "
                              "anchors' receipts",
    "anchors_by_k": "K x 2 agents (reference and apart both answer every anchor) x per_anchor_publication; the "
                    "anchors' submitTask gas is not included",
    "variants": "the apart agent of the same architecture or of another (a wider encoder: the same depth and "
                "embedding dim, another hidden width), mapped by orthogonal Procrustes or by CCA (its linear "
                "prediction of the reference vector, low rank and not orthogonal) fitted on the same K anchors; "
                "same-arch/procrustes is the curve above",
    "cka_variants": "linear CKA of the mapped vectors against the reference's: the map leaves it as before for "
                    "Procrustes (orthogonal), while CCA's map can raise or lower it",
}


def alignment(records: dict[str, dict], opts: RunOptions) -> dict[str, Any] | None:
    """The alignment curve (`node.experiment.alignment`): E-d accuracy on the main table's evaluation
    tasks with the reference market agent, with the apart one unaligned (refused; fused raw at K = 0)
    and aligned on K anchors, each difference paired per task with its two-level bootstrap interval;
    CKA and residual per K (mean over seeds, t-interval half-width); the anchors' and the map
    registration's gas from the chain receipts; the chain part's check. `variants`: the other
    curves (the apart agent of either architecture, Procrustes or CCA; those every unit holds),
    each per K with its accuracy, its difference paired per task against the reference, CKA and
    residual. None when no unit ran."""
    units = {s: records[f"{ALIGNMENT_PREFIX}/s{s}"] for s in opts.seeds() if f"{ALIGNMENT_PREFIX}/s{s}" in records}
    if not units:
        return None
    seeds = sorted(units)
    correct = {s: {name: M.correctness(digits, u["labels"]) for name, digits in u["actions"].items()}
               for s, u in units.items()}
    ref = [correct[s]["reference"] for s in seeds]

    def versus(vals: list[np.ndarray]) -> dict[str, Any]:
        """Accuracy of per-seed correctness `vals`, and its difference from the reference paired per task."""
        acc, ci = M.boot_mean(vals)
        diff, dci = M.paired_difference(vals, ref)
        return {"accuracy": acc, "accuracy_ci": ci,
                "diff_vs_reference": {"diff": diff, "ci": dci, "excludes_zero": M.excludes_zero(dci)}}

    def point(k: int, vals: list[np.ndarray], by_k: list[dict[str, Any]]) -> dict[str, Any]:
        """One K of a curve: `versus`, and CKA and residual over the seeds' `by_k` entries."""
        cka, cka_ci = M.interval([b["cka"] for b in by_k])
        res, res_ci = M.interval([b["residual"] for b in by_k])
        return {"k": k, **versus(vals), "cka": cka, "cka_ci": cka_ci, "residual": res, "residual_ci": res_ci}

    ks = [k for k in opts.profile.alignment_ks if all(str(k) in units[s]["actions"] for s in seeds)]
    curve = [point(k, [correct[s][str(k)] for s in seeds], [units[s]["by_k"][str(k)] for s in seeds]) for k in ks]
    acc, ci = M.boot_mean(ref)
    cka0, cka0_ci = M.interval([u["cka_before"] for u in units.values()])
    res0, res0_ci = M.interval([u["residual_before"] for u in units.values()])
    chains = [u["chain"] for u in units.values() if u.get("chain")]
    per_pub = M.interval([c["per_anchor_publication"] for c in chains])[0] if chains else None
    register = M.interval([c["register_alignment"] for c in chains])[0] if chains else None
    gas = {"per_anchor_publication": per_pub, "register_alignment": register,
           "anchors_by_k": {str(k): None if per_pub is None else 2 * k * per_pub for k in ks},
           "source": "receipts of the alignment sessions' chain anchors" if chains else None}
    chain = None
    if chains:
        bad = [s for s, u in units.items() if u.get("chain") and not (u["chain"]["map_equal"]
                                                                      and u["chain"]["resolver_loaded"])]
        sampled, mismatches, sampled_seeds = 0, 0, []
        for s in seeds:
            cc = chain_check_of(records.get(f"{ALIGNMENT_PREFIX}/chain/s{s}") or {})
            if cc is not None:
                sampled += cc["sampled"]
                mismatches += len(cc["mismatches"])
                sampled_seeds += [s] if cc["sampled"] else []
        chain = {"seeds": len(chains), "anchors_per_seed": _one_or_list([c["anchors"] for c in chains]),
                 "publications": sum(len(c["publish_gas"]) for c in chains),
                 "maps_equal": all(c["map_equal"] for c in chains),
                 "resolver_loaded": all(c["resolver_loaded"] for c in chains), "maps_differ": len(bad),
                 "sampled": sampled, "sampled_seeds": sampled_seeds, "mismatches": mismatches,
                 "map_ids": {str(s): u["chain"]["map_id"] for s, u in units.items() if u.get("chain")}}
    replay = [u.get("reference_equals_main_ed") for u in units.values()]
    variants = {}
    common = set.intersection(*(set(u.get("variants") or {}) for u in units.values()))
    for name in [n for n in units[seeds[0]].get("variants") or {} if n in common]:  # the curve's order
        vs = {s: units[s]["variants"][name] for s in seeds}
        points = [point(k, [M.correctness(vs[s]["actions"][str(k)], units[s]["labels"]) for s in seeds],
                        [vs[s]["by_k"][str(k)] for s in seeds])
                  for k in opts.profile.alignment_ks if all(str(k) in v["actions"] for v in vs.values())]
        first = vs[seeds[0]]
        variants[name] = {"apart": first["apart"], "method": first["method"], "curve": points,
                          "cka_before": M.interval([v["cka_before"] for v in vs.values()])[0],
                          "residual_before": M.interval([v["residual_before"] for v in vs.values()])[0]}
    return {"ks": ks, "seeds": len(seeds), "method": "procrustes", "anchors": units[seeds[0]]["anchors"]["source"],
            "tasks_per_seed": _one_or_list([u["n"] for u in units.values()]),
            "curve": curve, "reference": {"accuracy": acc, "accuracy_ci": ci},
            "dropped": versus([correct[s]["dropped"] for s in seeds]) if all("dropped" in correct[s] for s in seeds)
            else None,
            "cka_before": cka0, "cka_before_ci": cka0_ci, "residual_before": res0, "residual_before_ci": res0_ci,
            "gas": gas, "chain": chain, "variants": variants, "hidden": _apart_hidden(units[seeds[0]]),
            "reference_equals_main_ed": None if any(r is None for r in replay) else all(replay),
            "apart_seed_offset": _apart_offset(), "source": EVAL, "definitions": ALIGNMENT_DEFINITIONS}


def _apart_offset() -> int:
    from node.experiment.alignment import APART_SEED_OFFSET

    return APART_SEED_OFFSET


def _apart_hidden(unit: dict[str, Any]) -> dict[str, int]:
    """The hidden width of each apart agent (by variant label), from the setting it trained with."""
    from node.experiment.alignment import VARIANTS

    tuning = (unit.get("apart") or {}).get("tuning") or {}
    return {label: int(tuning[name]["hp"]["hidden"]) for label, name in VARIANTS
            if (tuning.get(name) or {}).get("hp")}


def alignment_check(align: dict[str, Any] | None) -> dict[str, Any] | None:
    """Fatal like the chain check: the chain's map must be the off-chain one (same anchors, same
    bytes), the resolver must load it, every aligned E-d task through the chain must finalize the
    off-chain replay's action (those tasks are in the run's chain check too), and the curve's
    reference replay must be the main table's E-d, task for task."""
    if not align or (align.get("chain") is None and align.get("reference_equals_main_ed") is None):
        return None
    chain, replay = align.get("chain"), align.get("reference_equals_main_ed")
    parts, ok = [], True
    if chain is not None:
        ok &= chain["maps_differ"] == 0 and chain["mismatches"] == 0
        parts.append(f"{chain['sampled']} aligned E-d tasks through the chain, {chain['mismatches']} mismatches")
        parts.append(f"{chain['seeds']} seeds, {chain['publications']} anchor publications: maps "
                     f"{'equal' if chain['maps_equal'] else 'DIFFER'}, "
                     f"{'loaded by the resolver' if chain['resolver_loaded'] else 'NOT loaded by the resolver'}")
    if replay is not None:
        ok &= bool(replay)
        parts.append("reference replay " + ("equals" if replay else "DIFFERS from") + " the main table's E-d")
    return {"name": ALIGNMENT_CHECK, "passed": bool(ok), "detail": "; ".join(parts), "fatal": True}


# -- the main table ----------------------------------------------------------------------------------


QUALITY_KEYS = ("macro_f1", "pnl", "sharpe", "gap_to_oracle", "finalized_rate")


def architectures(records: dict[str, dict], seeds: list[int], table: Table | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per architecture name: accuracy with its interval (the evaluation set's), the chain sample's
    figures (accuracy, PnL, Sharpe, finality, costs), model bytes; and the latent oracle."""
    table = table or Table(records, seeds)
    out: dict[str, Any] = {}
    oracle_rows = []
    for arch, name in ARCH_NAMES.items():
        units = [(s, table.units[arch][s]) for s in table.seeds(arch)]
        entry: dict[str, Any] = {"arch_id": arch, "name": name}
        entry.update(accuracy_entry(table, arch))
        measured = entry["accuracy_source"] == EVAL
        per_seed = []
        tasks_all, tasks_alone = [], []
        for seed, u in units:
            alone = u.get("isolated", u.get("cpu_s") is not None)
            q = _seed_quality(u)
            q = {"seed": seed, "chain_accuracy": q.pop("accuracy"), **q, "isolated": alone}
            q["accuracy"] = q["chain_accuracy"]
            if measured:
                actions, labels = table.eval_actions(arch, seed), table.labels(seed)
                q["chain_macro_f1"], q["chain_gap_to_oracle"] = q.get("macro_f1"), q.pop("gap_to_oracle", None)
                q["accuracy"] = M.accuracy(labels, actions)
                q["macro_f1"] = M.macro_f1(labels, actions)
                q["n_eval"] = len(labels)
                latent = (table.evals[seed].get("ceilings") or {}).get("latent")
                q["gap_to_oracle"] = None if latent is None else latent - q["accuracy"]
            sampled, mismatches = _chain_counts([u])
            q.update(chain_sampled=sampled, chain_mismatches=mismatches)
            q["cpu_s_per_task"] = (u["cpu_s"] / len(u["tasks"])) if alone and u.get("cpu_s") is not None else None
            q["throughput_tasks_per_s"] = u.get("throughput") if alone else None
            q["train_reference_accuracy"] = (u.get("offchain") or {}).get(OFFCHAIN_NAME[name], {}).get("accuracy")
            per_seed.append(q)
            tasks_all += u["tasks"]
            tasks_alone += u["tasks"] if alone else []
            if arch == Arch.M_FIXED and "oracle_accuracy" in q:  # the oracle on the chain tasks, once per seed
                oracle_rows.append({"accuracy": q["oracle_accuracy"], "macro_f1": q["oracle_macro_f1"],
                                    "pnl": q.get("oracle_pnl"), "sharpe": q.get("oracle_sharpe"), "seed": seed})
        entry.update(M.summarize_seeds(per_seed, (*QUALITY_KEYS, "cpu_s_per_task", "throughput_tasks_per_s",
                                                  "train_reference_accuracy")))
        entry.update(M.costs(tasks_all))
        # Latency only where the architecture ran alone (see Profile.cost_seeds).
        timing = M.costs(tasks_alone or tasks_all)
        entry.update(latency_p50_s=timing.get("latency_p50_s"), latency_p95_s=timing.get("latency_p95_s"),
                     blocks_p50=timing.get("blocks_p50"), cost_seeds=sum(1 for q in per_seed if q["isolated"]))
        paced = [records.get(f"paced/s{s}/a{arch}") for s in seeds] if table.prefix is None else []
        lat = [t["latency_s"] for p in paced if p for t in p["tasks"] if t.get("latency_s") is not None]
        idle = table.prefix is None  # idle latency: the main table's paced units only
        entry["latency_idle_p50_s"] = M.percentile(lat, 50) if idle else None
        entry["latency_idle_p95_s"] = M.percentile(lat, 95) if idle else None
        entry["model_bytes"] = units[0][1].get("model_bytes") if units else None
        entry["models"] = units[0][1].get("models") if units else None
        entry["tasks_per_seed"] = len(units[0][1]["tasks"]) if units else 0
        if arch == Arch.UNI_BEST:
            entry["uni_best_agents"] = [u.get("uni_best") for _, u in units]
        entry["per_seed"] = per_seed
        out[name] = entry
    oracle = {"seeds": len(oracle_rows), **M.summarize_seeds(oracle_rows, ("accuracy", "macro_f1", "pnl", "sharpe")),
              "per_seed": oracle_rows, "source": CHAIN,
              "definition": "the generator's Bayes decision given the latent state (label rule applied to it), "
                            "on the chain tasks (PnL and Sharpe need their returns); on the evaluation set it is "
                            "ceilings.latent"}
    oracle.pop("accuracy_ci", None)
    if oracle_rows:
        m_fixed = [table.chain_oracle(Arch.M_FIXED, r["seed"]) for r in oracle_rows]
        oracle["accuracy"], oracle["accuracy_ci"] = M.boot_mean([v for v in m_fixed if v is not None])
    return out, oracle


def dataset_of(table: Table) -> dict[str, Any] | None:
    """The generator's parameters of the evaluation sets (per seed where they differ beyond the seed)."""
    sets = [(s, ev.get("dataset")) for s, ev in sorted(table.evals.items()) if ev.get("dataset")]
    if not sets:
        return None
    first = {k: v for k, v in sets[0][1].items() if k != "seed"}
    same = all({k: v for k, v in d.items() if k != "seed"} == first for _, d in sets)
    out: dict[str, Any] = {**first, "seeds": [s for s, _ in sets]}
    if not same:
        out["per_seed"] = {str(s): d for s, d in sets}
    return out


# -- sweeps -------------------------------------------------------------------------------------------


SWEEP_KEYS = ("accuracy", "accuracy_ci", "accuracy_source", "n_eval_tasks", "chain_sampled", "chain_mismatches",
              "chain_accuracy", "chain_accuracy_ci", "seeds")


def table_point(table: Table) -> dict[str, Any]:
    """One table's architectures (accuracy and the chain check), ceilings (with every architecture
    against the observation ceiling), the pre-registered comparison and the gap to the best modular."""
    per_arch = {name: accuracy_entry(table, arch) for arch, name in ARCH_NAMES.items() if table.units[arch]}
    ceil = ceilings_of(table)
    ceil["versus_observation"] = {name: v for arch, name in ARCH_NAMES.items() if table.units[arch]
                                  and (v := versus_ceiling(table, arch, "observation")) is not None}
    ceil["versus_latent"] = {name: v for arch, name in ARCH_NAMES.items() if table.units[arch]
                             and (v := versus_ceiling(table, arch, "latent")) is not None}
    return {"architectures": per_arch, "ceilings": ceil, "u_minus_late_fusion": comparison(table, *PREREGISTERED),
            **gap_to_best_modular(table),
            "seeds": len({s for arch in ARCH_NAMES for s in table.units[arch]})}


def alpha_point_key(alpha: float) -> str:
    return f"{alpha:g}"


def alpha_points(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """The alpha sweep's points in alpha order (`sweeps.alpha.<alpha>`)."""
    return [sweep[alpha_point_key(a)] for a in sweep.get("alphas", []) if alpha_point_key(a) in sweep]


def alpha_sweep(records: dict[str, dict], opts: RunOptions, main_point: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """`sweeps.alpha.<alpha>`: each alpha's architectures and ceilings (the main table's alpha from
    the main table's records); `alphas` lists the points in order."""
    p = opts.profile
    out: dict[str, Any] = {"alphas": [], "reduced": p.reduced,
                           "definition": "gap = U minus the best modular architecture of the same seed (M-rules, "
                                         "M-fixed, M-learned, M-regret, E-d; the best picked after the fact on the "
                                         "seed's tasks, which favours the modular side), paired per task, mean over "
                                         "seeds with its two-level bootstrap interval"}
    for alpha in sorted({p.alpha, *p.alphas}):
        main = alpha == p.alpha
        point = main_point if main and main_point is not None else table_point(
            Table(records, opts.sweep_seeds(alpha), None if main else alpha))
        if not point["architectures"]:
            continue
        out[alpha_point_key(alpha)] = {"alpha": alpha, **point, "oracle_accuracy": point["ceilings"].get("latent"),
                                       "main_table": main}
        out["alphas"].append(alpha)
    return out


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
            "N agents in the role cycle market, sentiment, risk, fusion, then replicas; quorum N; accuracy on "
            "the chain tasks"}


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
            qs = M.summarize_seeds([_seed_quality(u) for u in units], ("macro_f1",))
            acc, acc_ci = M.boot_mean([_chain_correct(u["tasks"]) for u in units])
            points.append({"d": d, "dtype": dtype, "seeds": len(units), "accuracy": acc, "accuracy_ci": acc_ci,
                           **qs, **M.costs(tasks), "vector_bytes": vector_nbytes(d, dtype),
                           "model_bytes": units[0].get("model_bytes"), "main_table": (d, dtype) == (16, "f32")})
    arch_points = [{"name": name, "accuracy": a.get("accuracy"), "accuracy_source": a.get("accuracy_source"),
                    "gas_per_task": a.get("gas_per_task")}
                   for name, a in archs_main.items() if a.get("accuracy") is not None]
    frontier = pareto([(f"E-{x['d']}/{x['dtype']}", x["accuracy"], x["gas_per_task"]) for x in points] +
                      [(a["name"], a["accuracy"], a["gas_per_task"]) for a in arch_points if a["name"] != "E-d"])
    return {"points": points, "architectures": arch_points, "frontier": frontier, "reduced": p.reduced,
            "definition": "E-d with agents publishing d-dim embeddings as dtype and a head trained on them, "
                          "accuracy on its chain tasks; the other architectures at their main-table accuracy; "
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


def _clean_pairs(table: Table, arch: int, seed: int, perturbed: dict
                 ) -> tuple[np.ndarray, np.ndarray | None, str | None] | None:
    """The perturbed unit's per-task correctness and the clean correctness on the same tasks: the
    off-chain clean action at each task's evaluation index when the main unit has an evaluation set
    and the tasks' labels are its labels there, else the main unit's chain task of the same stream
    index when the labels agree (older records); None for the clean side when neither holds, rather
    than a comparison on other tasks."""
    main = table.units[arch].get(seed)
    tasks = perturbed["tasks"]
    if main is None or not tasks:
        return None
    pert = _chain_correct(tasks)
    y = M.labels_of(tasks)
    actions, labels = table.eval_actions(arch, seed), table.labels(seed)
    if actions is not None and all(t.get("eval_i") is not None for t in tasks):
        idx = np.array([int(t["eval_i"]) for t in tasks])
        if idx.min() >= 0 and idx.max() < len(labels) and np.array_equal(labels[idx], y):
            return pert, (actions[idx] == labels[idx]).astype(np.float64), EVAL
    clean = {int(t["i"]): t for t in main["tasks"]}
    same = [clean.get(int(t["i"])) for t in tasks]
    if all(c is not None and int(c["label"]) == int(t["label"]) for c, t in zip(same, tasks, strict=True)):
        return pert, _chain_correct(same), CHAIN
    return pert, None, None


def robustness(records: dict[str, dict], opts: RunOptions, table: Table | None = None) -> dict[str, Any]:
    p = opts.profile
    seeds = opts.seeds()[:p.robust_seeds]
    table = table or Table(records, opts.seeds())
    scenarios: dict[str, Any] = {}
    for scenario, title in SCENARIO_TITLES.items():
        per_arch: dict[str, Any] = {}
        points = {}
        for arch, name in ARCH_NAMES.items():
            pert, clean, sources, tasks = [], [], set(), []
            for s in seeds:
                u = records.get(f"robust/{scenario}/s{s}/a{arch}")
                got = None if u is None else _clean_pairs(table, arch, s, u)
                if got is None:
                    continue
                pert.append(got[0])
                clean.append(got[1])
                sources.add(got[2])
                tasks += u["tasks"]
            if not pert:
                continue
            acc, acc_ci = M.boot_mean(pert)
            entry = {"accuracy": acc, "accuracy_ci": acc_ci, "clean_accuracy": None, "clean_source": None,
                     "change_vs_clean": None, "change_vs_clean_ci": None, "relative": None,
                     "finalized_rate": M.quality(tasks)["finalized_rate"], "tasks": len(tasks),
                     "latency_p50_s": M.percentile([t["latency_s"] for t in tasks if t.get("latency_s") is not None],
                                                   50)}
            if all(c is not None for c in clean):  # the clean side on the very same tasks, every seed
                clean_acc = M.seed_mean(clean)
                change, change_ci = M.paired_difference(pert, clean)
                entry.update(clean_accuracy=clean_acc, clean_source=sources.pop() if len(sources) == 1 else "mixed",
                             change_vs_clean=change, change_vs_clean_ci=change_ci,
                             relative=M.relative_robustness(acc, clean_acc))
                points[name] = (clean_acc, acc)
            per_arch[name] = entry
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
                "clean": "the clean accuracy is on the same tasks: the architecture's off-chain action on the "
                         "clean evaluation task (clean_source offchain-eval), or in older records its chain task "
                         "of the same stream index (chain-sample); the labels must agree task by task, else no "
                         "clean figure is given",
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


# -- the chain check -------------------------------------------------------------------------------------


def chain_check(records: dict[str, dict]) -> dict[str, Any]:
    """Every unit of the run that has a chain sample of an evaluation set: tasks compared and each
    task whose finalized action differs from the off-chain one (seed, architecture, evaluation
    index, task id, both actions; -1 = no action). Also the block each sample was drawn from and the
    units whose chain tasks are not the drawn sample (`off_sample`; M-regret, an online learner,
    runs the set's first tasks by design and is not listed)."""
    sampled, units, mismatches = 0, 0, []
    for key, r in records.items():
        cc = chain_check_of(r)
        if cc is None:
            continue
        units += 1
        sampled += cc["sampled"]
        alpha = re.search(r"(?:^|/)alpha/([^/]+)/", key)
        for m in cc["mismatches"]:
            mismatches.append({"key": key, "seed": _seed_of(key, r), "alpha": float(alpha.group(1)) if alpha else None,
                               "arch": r.get("row") or ARCH_NAMES.get(r.get("arch"), str(r.get("arch"))),
                               "arch_id": r.get("arch"),
                               "eval_i": m["i"], "task_id": m["task_id"], "chain": m["chain"],
                               "offchain": m["offchain"]})
    samples, off_sample = [], []
    for key, ev in records.items():
        m = re.fullmatch(r"eval/((ablation/)?(?:alpha/([^/]+)/)?)s(\d+)", key)
        cs = ev.get("chain_sample") if m else None
        if not cs:
            continue
        seed = m.group(4)
        samples.append({"key": key, "seed": int(seed), "alpha": float(m.group(3)) if m.group(3) else None,
                        "ablation": bool(m.group(2)),
                        "block": cs.get("block"), "block_hash": cs.get("block_hash"), "k": len(cs.get("indices", []))})
        drawn = set(cs.get("indices", []))
        prefix = f"{m.group(1)}s{seed}/" if m.group(1) else f"main/s{seed}/"
        for arch in ARCH_NAMES:
            u = records.get(f"{prefix}a{arch}")
            if u is None or arch == Arch.M_REGRET or not u.get("tasks"):  # M-regret runs the set's first tasks
                continue
            if any(t.get("eval_i") is None for t in u["tasks"]) or {int(t["eval_i"]) for t in u["tasks"]} != drawn:
                off_sample.append(f"{prefix}a{arch}")
    return {"units": units, "sampled": sampled, "mismatches": mismatches, "samples": samples,
            "off_sample": off_sample,
            "definition": "on every chain task the finalized action (-1: never finalized) must equal the action "
                          "the same model files give off chain on that evaluation task (-1: no action); any "
                          "difference fails the run"}


# -- transports ------------------------------------------------------------------------------------------


TRANSPORT_CHECK = "same decisions under every transport"
TRANSPORT_TITLES = {"tx": "per-agent transactions", "report": "signed report", "batch": "batched"}


def transports(records: dict[str, dict], opts: RunOptions) -> dict[str, Any]:
    """The transport sweep: per (architecture, transport) on the first seed's shared chain tasks
    (those its `transport/<t>/s<seed>/a<arch>` unit ran, which the main unit ran too, same payloads):
    gas, calldata bytes and transactions per task, latency p50 and accuracy; for each transport but
    `tx` (the main table's per-agent transactions) the ratio of its gas to theirs on the same tasks.
    The check: every shared task finalized the same action under every transport."""
    seed = opts.seeds()[0]
    prices = prices_of(opts)
    rows: list[dict[str, Any]] = []
    compared, mismatches, names = 0, [], []
    found = [(k, r) for k, r in records.items() if re.fullmatch(rf"transport/[^/]+/s{seed}/a\d+", k)]
    for arch in ARCH_NAMES:  # those the sweep ran (`plan.TRANSPORT_ARCHS`)
        main = records.get(f"main/s{seed}/a{arch}")
        units = [(k.split("/")[1], r) for k, r in found if int(r.get("arch", -1)) == arch]
        if main is None or not units:
            continue
        by_eval = {int(t["eval_i"]): t for t in main["tasks"] if t.get("eval_i") is not None}
        shared = sorted({int(t["eval_i"]) for _, u in units for t in u["tasks"] if t.get("eval_i") is not None}
                        & set(by_eval))
        if not shared:
            continue

        def row(transport: str, tasks: list[dict]) -> dict[str, Any]:
            c = M.costs(tasks)
            right = [t.get("action") is not None and int(t["action"]) == int(t["label"]) for t in tasks]
            return {"arch": ARCH_NAMES[arch], "arch_id": arch, "transport": transport, "seed": seed,
                    "tasks": len(tasks), "gas_per_task": c.get("gas_per_task"),
                    "calldata_bytes_per_task": c.get("calldata_bytes_per_task"), "txs_per_task": c.get("txs_per_task"),
                    "latency_p50_s": c.get("latency_p50_s"), "accuracy": float(np.mean(right)) if right else None,
                    "cost_usd_per_task": cost_usd_per_task(c, prices)}

        base = row("tx", [by_eval[e] for e in shared])
        base["gas_ratio"] = 1.0
        rows.append(base)
        for transport, u in sorted(units, key=lambda x: x[0]):
            mine = {int(t["eval_i"]): t for t in u["tasks"] if t.get("eval_i") is not None}
            r = row(transport, [mine[e] for e in shared if e in mine])
            r["gas_ratio"] = (r["gas_per_task"] / base["gas_per_task"]) if base["gas_per_task"] else None
            r["report_fallback_s"] = u.get("report_fallback_s")
            r["batch_wait_s"] = u.get("batch_wait_s")
            rows.append(r)
            names.append(transport)
            for e in shared:
                if e not in mine:
                    continue
                compared += 1
                a, b = by_eval[e].get("action"), mine[e].get("action")
                a, b = -1 if a is None else int(a), -1 if b is None else int(b)
                if a != b:
                    mismatches.append({"arch": ARCH_NAMES[arch], "arch_id": arch, "transport": transport, "seed": seed,
                                       "eval_i": e, "tx": a, "action": b,
                                       "task_id": mine[e].get("task_id")})
    ran = bool(rows)
    detail = (f"{compared} shared tasks compared over {len(rows) - len(names)} architectures, {len(mismatches)} differ"
              if ran else "no transport sweep in this run")
    if mismatches:
        detail += ": " + "; ".join(f"{m['arch']} seed {m['seed']}, eval task {m['eval_i']}: per-agent "
                                   f"{m['tx']}, {m['transport']} {m['action']}" for m in mismatches[:10])
    check = {"name": TRANSPORT_CHECK, "passed": (False if mismatches else True) if compared else None,
             "detail": detail, "fatal": True, "compared": compared, "mismatches": mismatches}
    return {"seed": seed, "transports": ["tx", *sorted(set(names))], "rows": rows, "check": check,
            "titles": TRANSPORT_TITLES,
            "not_run": {"E-d under signed reports": "its embeddings go by per-agent transactions there",
                        "M-learned-p": "its probabilities go by per-agent transactions under every transport",
                        "U, U-rep": "a coordinator's decision is one transaction already"},
            "definition": "the first seed's shared chain tasks (the same payloads and evaluation tasks under every "
                          "transport); gas, calldata bytes and transactions per task from the receipts of every "
                          "transaction that touched a task (one that touched n tasks, a batch, 1/n to each); latency submitTask sent -> TaskFinalized seen, one "
                          "architecture at a time; gas_ratio = gas per task / the same tasks' gas under per-agent "
                          "transactions"}


# -- honesty ---------------------------------------------------------------------------------------------


ALPHA0_CHECK = ("alpha=0 equivalence test, a result rather than a check of the instrument: U and M-learned-p "
                "within ±1.5 pts (paired 95% interval)")
CEILING_CHECK = "no architecture above the observation ceiling (the Bayes oracle on what the agents observe)"
LATENT_CHECK = "no architecture above the latent oracle (older records: chain tasks, no observation ceiling)"
CHAIN_CHECK = "chain check: every sampled task finalized its off-chain action"
VERDICT_PASSED = {"equivalent": None, "different": None, "inconclusive": None}
"""The alpha=0 test reports its verdict and fails nothing: the theory says calibrated late fusion of
per-modality posteriors can match U there, but M-learned fuses the published decisions, so a
difference measures the decision-only interface rather than a fault of the run."""


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _ci_pts(ci: Sequence[float] | None) -> str:
    return "[–]" if not ci or ci[0] is None or math.isnan(ci[0]) else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def mismatch_text(m: dict[str, Any]) -> str:
    where = f"seed {m['seed']}" + ("" if m.get("alpha") is None else f", alpha {m['alpha']:g}")
    return (f"{m['arch']} {where}, eval task {m['eval_i']} (task {m['task_id']}): chain {m['chain']}, "
            f"off chain {m['offchain']}")


def alpha0_check(sweep_alpha: dict[str, Any]) -> dict[str, Any]:
    point = sweep_alpha.get(alpha_point_key(0.0))
    cmp = (point or {}).get("u_minus_late_fusion")
    if cmp is None:
        return {"name": ALPHA0_CHECK, "passed": None, "verdict": None, "detail": "no alpha=0 point in this run"}
    verdict = M.equivalence(cmp["ci"])
    detail = (f"U − M-learned-p {_pts(cmp['diff'])} pts, 95% {_ci_pts(cmp['ci'])}, margin ±"
              f"{100 * M.EQUIVALENCE_MARGIN:.1f}: {verdict} ({cmp['seeds']} seeds × {cmp['tasks_per_seed']} tasks, "
              f"{cmp['source']})")
    if verdict == "inconclusive":
        detail += " — the interval is wider than the margin allows a verdict on; more tasks sharpen it"
    return {"name": ALPHA0_CHECK, "passed": VERDICT_PASSED[verdict], "verdict": verdict, "detail": detail,
            "diff": cmp["diff"], "ci": cmp["ci"], "margin": M.EQUIVALENCE_MARGIN}


def ceiling_check(points: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """Over the main table and every alpha point: fails when an architecture's paired difference to
    the observation ceiling has its whole interval above 0 (older records: the latent oracle)."""
    which = "versus_observation" if any(pt["ceilings"].get("versus_observation") for _, pt in points) else "versus_latent"
    rows = [(where, name, v) for where, pt in points for name, v in pt["ceilings"].get(which, {}).items()]
    if not rows:
        return None
    above = [(w, n, v) for w, n, v in rows if v["ci"][0] is not None and v["ci"][0] > 0]
    where, name, v = max(rows, key=lambda r: r[2]["diff"])
    detail = (f"closest: {name} ({where}) {_pts(v['diff'])} pts vs the ceiling, 95% {_ci_pts(v['ci'])}"
              f"{'' if v['paired'] else ' (unpaired: the ceiling known as a rate only)'}")
    if above:
        detail = "ABOVE: " + ", ".join(f"{n} ({w}) {_pts(x['diff'])} {_ci_pts(x['ci'])}" for w, n, x in above)
    return {"name": CEILING_CHECK if which == "versus_observation" else LATENT_CHECK, "passed": not above,
            "detail": detail, "above": [{"where": w, "arch": n, **x} for w, n, x in above]}


def honesty(records: dict[str, dict], opts: RunOptions, archs_main: dict[str, Any], main_point: dict[str, Any],
            sweep_alpha: dict[str, Any], chain: dict[str, Any], transport: dict[str, Any] | None = None,
            align: dict[str, Any] | None = None) -> dict[str, Any]:
    checks = [alpha0_check(sweep_alpha)]
    if (c := alignment_check(align)) is not None:
        checks.append(c)
    seeds = opts.seeds()
    # No architecture above the observation ceiling (beyond its paired interval), wherever measured.
    points = [("main table", main_point)] + [(f"alpha {pt['alpha']:g}", pt) for pt in alpha_points(sweep_alpha)
                                             if not pt["main_table"]]
    if (c := ceiling_check(points)) is not None:
        checks.append(c)
    # The chain check: it fails the run, not only --strict.
    if chain["units"]:
        bad = chain["mismatches"]
        detail = f"{chain['sampled']} tasks compared in {chain['units']} units, {len(bad)} mismatches"
        if bad:
            detail += ": " + "; ".join(mismatch_text(m) for m in bad[:10]) + (" ..." if len(bad) > 10 else "")
        checks.append({"name": CHAIN_CHECK, "passed": False if bad else (True if chain["sampled"] else None),
                       "detail": detail,
                       "fatal": True})
    # A transport carries decisions, never changes one: fatal like the chain check.
    if transport is not None and transport["check"]["passed"] is not None:
        c = transport["check"]
        checks.append({k: c[k] for k in ("name", "passed", "detail", "fatal")})
    # Same seed, same numbers: on-chain rerun and retraining.
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
        detail = "; ".join(f"{n}: decisions {'identical' if s else 'DIFFER'} (chain accuracy {100 * x:.1f} vs "
                           f"{100 * y:.1f})" for n, s, x, y in same_decisions)
        if models:
            detail += f"; retrained seed {models['seed']} models: " + (
                "identical model ids" if models["all_equal"] else
                "DIFFERENT model ids: " + ", ".join(k for k, v in models["model_ids_equal"].items() if not v))
        checks.append({"name": "same seed, same numbers (rerun on chain, retrain from scratch)", "passed": bool(ok),
                       "detail": detail})
    # Info: the chain sample's accuracy against models.train's score of the same models.
    rows = []
    for name, a in archs_main.items():
        if a.get("train_reference_accuracy") is not None and a.get("chain_accuracy") is not None:
            rows.append(f"{name} {100 * (a['chain_accuracy'] - a['train_reference_accuracy']):+.1f}")
    info = {"chain_minus_train_reference_accuracy_pts": ", ".join(rows)}
    fatal = [c["name"] for c in checks if c.get("fatal") and c["passed"] is False]
    return {"checks": checks, "all_passed": all(c["passed"] is not False for c in checks),
            "fatal_failures": fatal, "info": info}


# -- assembly ----------------------------------------------------------------------------------------------


COLLAPSED_SHARE = 0.99
"""M-regret 'collapses onto one agent' when that agent holds this share of its weight or more."""


def tuning(records: dict[str, dict], seeds: list[int]) -> dict[str, Any]:
    """What validation chose, per seed of the main table (from its evaluation record): each trained
    model's setting and epochs, M-rules' thresholds, M-regret's rate, and whether M-regret's
    weights collapse onto one agent (then it decides as that agent alone, i.e. as Uni-best)."""
    per_seed = []
    for seed in seeds:
        t = (records.get(f"eval/s{seed}") or {}).get("tuning")
        if not t:
            continue
        regret = dict(t.get("m-regret") or {})
        weights = regret.get("start_weights_bps") or []
        total = sum(weights)
        if total:
            top = max(range(len(weights)), key=lambda i: weights[i])
            regret["collapsed_onto"] = top if weights[top] / total >= COLLAPSED_SHARE else None
        main = records.get(f"main/s{seed}/a{int(Arch.M_REGRET)}") or {}
        end = (main.get("hedge") or {}).get("log_w")
        if end:
            w = np.exp(np.asarray(end) - max(end))
            w = w / w.sum()
            regret["end_weights"] = [float(x) for x in w]
            top = int(np.argmax(w))
            regret["ended_on"] = top if w[top] >= COLLAPSED_SHARE else None
        per_seed.append({"seed": seed, "models": t.get("models") or {}, "m-rules": t.get("m-rules"),
                         "m-regret": regret})
    return {"per_seed": per_seed, "collapsed_share": COLLAPSED_SHARE}


def cost_usd_per_task(entry: dict[str, Any], prices: Prices) -> dict[str, float | None]:
    """{l1, op, arbitrum}: US dollars per task from an architecture's mean gas and compressed sizes
    (`node.chain.fees`; every formula is linear in its per-task sums, so the mean's cost is the mean
    cost). The rollups' are None for records made before the sizes were measured."""
    gas = entry.get("gas_per_task")
    if gas is None:
        return {chain: None for chain in CHAINS}
    da, brotli = entry.get("op_da_bytes_per_task"), entry.get("brotli_bytes_per_task")
    usd = cost_usd(gas, da or 0.0, brotli or 0.0, prices)
    return {"l1": usd["l1"], "op": usd["op"] if da is not None else None,
            "arbitrum": usd["arbitrum"] if brotli is not None else None}


def prices_of(opts: RunOptions) -> Prices:
    return getattr(opts, "prices", None) or Prices()


def build_results(records: dict[str, dict], opts: RunOptions, run: dict[str, Any],
                  env: dict[str, Any] | None = None) -> dict[str, Any]:
    seeds = opts.seeds()
    table = Table(records, seeds)
    archs, oracle = architectures(records, seeds, table)
    prices = prices_of(opts)
    for entry in archs.values():
        entry["cost_usd_per_task"] = cost_usd_per_task(entry, prices)
    main_point = table_point(table)
    sweep_alpha = (alpha_sweep(records, opts, main_point) if opts.data is None else
                   {"alphas": [], "skipped": "not synthetic data"})
    sweeps = {"alpha": sweep_alpha, "agents": agents_sweep(records, opts), "ed": ed_sweep(records, opts, archs),
              "robustness": robustness(records, opts, table)}
    chain = chain_check(records)
    transport = transports(records, opts)
    ceilings = {**main_point["ceilings"], "definitions": CEILING_DEFINITIONS}
    ablation = ablations(records, seeds, table, [a for a in opts.profile.ablation_alphas if opts.data is None],
                         opts.sweep_seeds())
    for row, entry in (ablation.get("rows") or {}).items():
        entry["cost_usd_per_task"] = cost_usd_per_task(entry, prices)
        archs[row] = entry
    align = alignment(records, opts)
    width = (records.get("width") or {}).get("section")
    return {"run": run, "architectures": archs, "ceilings": ceilings, "comparisons": comparisons_of(table),
            "ablations": ablation, "alignment": align, "width": width,
            "chain_check": chain, "dataset": dataset_of(table), "oracle": oracle, "sweeps": sweeps,
            "transports": transport,
            "honesty": honesty(records, opts, archs, main_point, sweep_alpha, chain, transport, align),
            "tuning": tuning(records, seeds),
            "prices": {**prices.to_dict(), "description": prices.sentence()},
            "conventions": {"fractions": "every accuracy, ceiling and difference is a fraction in [0, 1] "
                                         "(0.015 = 1.5 points)",
                            "intervals": "a [lo, hi] list is a 95% two-level bootstrap interval "
                                         f"({M.BOOTSTRAP_RESAMPLES} resamples of seeds, then of tasks within each "
                                         "drawn seed); a number is the half-width of a 95% t-interval over seeds",
                            "equivalence_margin": M.EQUIVALENCE_MARGIN},
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
        if isinstance(v, np.bool_):
            return bool(v)
        return v

    path.write_text(json.dumps(clean(results), indent=2) + "\n")


def make_run_info(opts: RunOptions, run_id: str, started: float, finished: float, timings: dict[str, float],
                  chain: str) -> dict[str, Any]:
    return {"id": run_id, "profile": opts.profile.to_dict(), "seed": opts.seed, "seeds": opts.seeds(),
            "data": str(opts.data) if opts.data else None, "chain": chain,
            "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"), "started_ts": started,
            "finished": dt.datetime.fromtimestamp(finished).isoformat(timespec="seconds"),
            "wall_s": finished - started, "timings": timings}
