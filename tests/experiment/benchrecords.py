"""Synthetic unit records, shaped like the ones the runner writes, for report and resume tests.

`full_records` writes, per seed of the main table and of the alpha sweep, the evaluation record
(`eval/s{seed}`, `eval/alpha/{alpha:g}/s{seed}`: labels, ceilings and their decisions, the
generator's parameters, the chain sample) and units whose `eval.actions` are the off-chain action
on every evaluation task and whose chain `tasks` are the sample, each with its `eval_i` and, as on
an honest chain, the off-chain action (`chain_check` without mismatches). `eval_set=False` writes
the older records: chain tasks only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from node.experiment.config import ARCH_N_SWEEP, Profile
from node.experiment.plan import ALPHA_ARCHS, SCENARIOS, TRANSPORT_ARCHS
from node.experiment.report.metrics import encode_actions as digits  # the records' own format
from node.protocol.enums import ARCH_NAMES, Arch

SKILLS = {0: 0.45, 1: 0.5, 2: 0.55, 3: 0.6, 4: 0.55, 5: 0.6, 6: 0.7, 7: 0.7, 8: 0.62}
"""Each architecture's chance to decide a task right (wrong: the label + 2, mod 3)."""
ABLATION_SKILLS = (0.66, 0.68)
"""E-through's and U-concat's chance to decide a task right."""
LATENT, OBSERVATION = 0.9, 0.8
"""The ceilings' chance to decide a task right."""


def decide(labels: np.ndarray, skill: float, rng: np.random.Generator) -> np.ndarray:
    return np.where(rng.random(len(labels)) < skill, labels, (labels + 2) % 3)


def task(i: int, arch: int, label: int, action: int | None, oracle: int, rng: np.random.Generator, *,
         gas: int = 300_000, eval_i: int | None = None) -> dict[str, Any]:
    t = {"i": i, "task_id": 1000 + i, "action": action, "decisions": 3, "label": int(label), "oracle": int(oracle),
         "ret": float(rng.normal(0, 0.01)), "latency_s": float(0.3 + rng.random()), "blocks": 4,
         "gas": float(gas + 1000 * arch), "calldata_bytes": 1200.0 + arch, "txs": 5.0,
         "publications": {"decision": 3}}
    if eval_i is not None:
        t["eval_i"] = eval_i
    return t


def unit(key: str, arch: int, n: int, rng: np.random.Generator, *, skill: float = 0.6, gas: int = 300_000,
         cpu: float | None = 0.5, **meta: Any) -> dict[str, Any]:
    """A unit of chain tasks only (the older records, and the sweeps without an evaluation set)."""
    labels = rng.integers(0, 3, n)
    oracle = np.where(rng.random(n) < 0.85, labels, (labels + 1) % 3)
    actions = decide(labels, skill, rng)
    tasks = [task(i, arch, labels[i], int(actions[i]), oracle[i], rng, gas=gas) for i in range(n)]
    return {"key": key, "arch": arch, "quorum": 3, "tasks": tasks, "wall_s": 2.0, "cpu_s": cpu, "throughput": 8.0,
            "owner_gas": 0, "owner_txs": 0, "hedge": None, "model_bytes": 90_000_000, "models": ["market"],
            "offchain": {"M-fixed": {"accuracy": skill}}, **meta}


def eval_record(key: str, seed: int, alpha: float, n_eval: int, n_chain: int, rng: np.random.Generator, *,
                late_fusion_cap: float | None = None) -> dict[str, Any]:
    labels = rng.integers(0, 3, n_eval)
    latent = np.where(rng.random(n_eval) < LATENT, labels, (labels + 1) % 3)
    observation = np.where(rng.random(n_eval) < OBSERVATION, labels, (labels + 1) % 3)
    return {"key": key, "seed": seed, "alpha": alpha, "n": n_eval, "labels": digits(labels),
            "ceilings": {"latent": float(np.mean(latent == labels)),
                         "observation": float(np.mean(observation == labels)),
                         "observation_expected": OBSERVATION, "late_fusion_cap": late_fusion_cap},
            "ceiling_actions": {"latent": digits(latent), "observation": digits(observation)},
            "dataset": {"n": n_eval, "seed": seed, "alpha": alpha, "noise": {"market": 1.0}, "redundancy": 0.0,
                        "label_noise": 0.25, "regime": "test"},
            "chain_sample": {"block": 7, "block_hash": "0x" + "5a" * 32,
                             "indices": sorted(int(i) for i in rng.choice(n_eval, n_chain, replace=False))},
            "offchain_s": 1.0}


def eval_unit(key: str, arch: int, ev: dict[str, Any], actions: np.ndarray, rng: np.random.Generator, *,
              cpu: float | None = 0.5, **meta: Any) -> dict[str, Any]:
    """A unit of the two-tier records: off-chain actions on the whole evaluation set, the chain sample
    as its tasks (M-regret: the set's first tasks, in order), each finalized as off chain."""
    labels = np.frombuffer(ev["labels"].encode(), dtype=np.uint8) - ord("0")
    latent = np.frombuffer(ev["ceiling_actions"]["latent"].encode(), dtype=np.uint8) - ord("0")
    n_chain = len(ev["chain_sample"]["indices"])
    indices = list(range(n_chain)) if arch == Arch.M_REGRET else ev["chain_sample"]["indices"]
    tasks = [task(i, arch, labels[e], None if actions[e] < 0 else int(actions[e]), latent[e], rng, eval_i=e)
             for i, e in enumerate(indices)]
    return {"key": key, "arch": arch, "quorum": 3, "tasks": tasks, "wall_s": 2.0, "cpu_s": cpu, "throughput": 8.0,
            "owner_gas": 0, "owner_txs": 0, "hedge": None, "model_bytes": 90_000_000, "models": ["market"],
            "offchain": {"M-fixed": {"accuracy": 0.5}},
            "eval": {"n": ev["n"], "actions": digits(actions), "accuracy": float(np.mean(actions == labels))},
            "chain_check": {"sampled": len(tasks), "mismatches": []}, **meta}


def full_records(profile: Profile, seeds: list[int], n: int = 12, seed: int = 0, *, eval_set: bool = True,
                 n_eval: int = 400) -> dict[str, dict[str, Any]]:
    """Every unit a run of `profile` over `seeds` writes (sweeps included)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    counts = dict(profile.alpha_seed_counts)

    def sweep(alpha: float) -> list[int]:  # RunOptions.sweep_seeds(alpha): may go beyond `seeds`
        return [seeds[0] + i for i in range(counts.get(alpha, profile.alpha_seeds))]

    def add(record: dict[str, Any]) -> None:
        out[record["key"]] = record

    def table(prefix: str, eval_key: str, s: int, alpha: float, n_chain: int, skills: dict[int, float],
              meta: dict[int, dict[str, Any]], archs=tuple(ARCH_NAMES)) -> None:
        if not eval_set:
            for a in archs:
                add(unit(f"{prefix}/a{a}", a, n_chain, rng, skill=skills[a], **meta.get(a, {})))
            return
        ev = eval_record(eval_key, s, alpha, n_eval, n_chain, rng, late_fusion_cap=0.7 if alpha == 1 else None)
        add(ev)
        labels = np.frombuffer(ev["labels"].encode(), dtype=np.uint8).astype(np.int64) - ord("0")
        decided: dict[int, np.ndarray] = {}
        for a in archs:
            # U-rep's coordinators run U's model: the same decisions, as in a real run
            decided[a] = decided[Arch.U] if a == Arch.U_REP and Arch.U in decided else decide(labels, skills[a], rng)
            add(eval_unit(f"{prefix}/a{a}", a, ev, decided[a], rng, **meta.get(a, {})))

    for s in seeds:
        table(f"main/s{s}", f"eval/s{s}", s, profile.alpha, n, SKILLS,
              {a: {"seed": s, "uni_best": "market" if a == 0 else None} for a in ARCH_NAMES})
    for a in (3, 6):
        add({**out[f"main/s{seeds[0]}/a{a}"], "key": f"rerun/s{seeds[0]}/a{a}"})
    for a in ARCH_NAMES:
        add(unit(f"paced/s{seeds[0]}/a{a}", a, 1, rng))
    for i, k in enumerate(profile.agents):
        add(unit(f"n/{k}/s{seeds[0]}", ARCH_N_SWEEP + i, n, rng, gas=100_000 * k, agents=k, roles=["market"] * k))
    for alpha in profile.alphas:
        # at alpha 0, U is as good as M-learned; above it, better
        skills = {a: SKILLS[a] - 0.1 * (a == Arch.U) * (1 - alpha) for a in ARCH_NAMES}
        for s in sweep(alpha):
            table(f"alpha/{alpha:g}/s{s}", f"eval/alpha/{alpha:g}/s{s}", s, alpha, profile.alpha_tasks, skills,
                  {a: {"seed": s, "alpha": alpha} for a in ARCH_NAMES}, ALPHA_ARCHS)
    for d in profile.dims:
        for dtype in profile.dtypes:
            if (d, dtype) != (16, "f32"):
                for s in seeds[:profile.ed_seeds]:
                    add(unit(f"ed/{d}-{dtype}/s{s}", 5, n, rng, gas=200_000 + 100 * d, d=d, dtype=dtype))
    for s in seeds[:profile.robust_seeds]:
        for scenario in SCENARIOS:
            for a in ARCH_NAMES:
                r = unit(f"robust/{scenario}/s{s}/a{a}", a, min(n, profile.robust_tasks), rng, skill=0.4, cpu=None)
                for t, clean in zip(r["tasks"], out[f"main/s{s}/a{a}"]["tasks"], strict=False):
                    # the main table's tasks, perturbed: same labels, same evaluation index
                    t.update({k: clean[k] for k in ("i", "eval_i", "label") if k in clean})
                if scenario == "offline" and a == 6:
                    for t in r["tasks"]:
                        t["action"] = None
                add(r)
        add({"key": f"probe/mismatch/s{s}", "seed": s, "node_rejections": 3, "node_errors": ["ModelMismatch(...)"],
             "probe": {"tx_hash": "0x" + "ab" * 32, "mined": True, "status": 0, "gas_used": 33_000,
                       "error": "ModelMismatch", "args": {"expected": "0x01", "got": "0x02"},
                       "registered_model_id": "0x" + "01" * 32, "sent_model_id": "0x" + "02" * 32}})
    if profile.transport_tasks and eval_set:  # shared tasks are matched by their evaluation index
        for a in TRANSPORT_ARCHS:
            # the main unit's first tasks again under signed reports: the same decisions, one
            # submitReport instead of the agents' publications and finalize (2 transactions)
            main = out[f"main/s{seeds[0]}/a{a}"]
            tasks = [{**t, "task_id": 5000 + t["i"], "gas": t["gas"] * 0.6, "calldata_bytes": t["calldata_bytes"] * 0.8,
                      "txs": 2.0, "latency_s": t["latency_s"] + 0.5, "publications": {"decision": 3}}
                     for t in main["tasks"][:min(profile.transport_tasks, n)]]
            add({**main, "key": f"transport/report/s{seeds[0]}/a{a}", "tasks": tasks, "transport": "report",
                 "report_fallback_s": 60.0, "isolated": True,
                 "chain_check": {"sampled": len(tasks), "mismatches": []}})
            # and batched: the agents' decisions of several tasks in one publishDecisions each
            batched = [{**t, "task_id": 6000 + t["i"], "gas": t["gas"] * 0.8, "txs": 3.5,
                        "latency_s": t["latency_s"] + 2.0} for t in main["tasks"][:min(profile.transport_tasks, n)]]
            add({**main, "key": f"transport/batch/s{seeds[0]}/a{a}", "tasks": batched, "transport": "batch",
                 "batch_wait_s": 2.0, "isolated": True,
                 "chain_check": {"sampled": len(batched), "mismatches": []}})
    if eval_set:  # the ablation rows: the host table's evaluation tasks, a chain sample of their own
        hosts = [("ablation", "eval", s, profile.ablation_tasks, {}) for s in seeds[:profile.ablation_seeds]]
        hosts += [(f"ablation/alpha/{alpha:g}", f"eval/alpha/{alpha:g}", s, profile.alpha_tasks, {"alpha": alpha})
                  for alpha in profile.ablation_alphas for s in sweep(None)]  # the base seeds, as the runner
        for prefix, host, s, k, meta in hosts:
            main_ev = out[f"{host}/s{s}"]
            drawn = sorted(int(i) for i in rng.choice(main_ev["n"], min(k, main_ev["n"]), replace=False))
            ev = {**main_ev, "key": f"eval/{prefix}/s{s}", "chain_sample": {**main_ev["chain_sample"], "indices": drawn}}
            add(ev)
            labels = np.frombuffer(ev["labels"].encode(), dtype=np.uint8).astype(np.int64) - ord("0")
            for a, row, skill in ((Arch.E_D, "E-through", ABLATION_SKILLS[0]), (Arch.U, "U-concat", ABLATION_SKILLS[1])):
                add(eval_unit(f"{prefix}/s{s}/a{a}", a, ev, decide(labels, skill, rng), rng, seed=s, row=row, **meta))
    add({"key": "rerun/models", "seed": seeds[0], "model_ids_equal": {"u": True}, "all_equal": True})
    return out
