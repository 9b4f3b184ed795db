"""Synthetic unit records, shaped like the ones the runner writes, for report and resume tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from node.experiment.config import Profile
from node.experiment.plan import SCENARIOS
from node.protocol.enums import ARCH_NAMES


def unit(key: str, arch: int, n: int, rng: np.random.Generator, *, skill: float = 0.6, gas: int = 300_000,
         cpu: float | None = 0.5, **meta: Any) -> dict[str, Any]:
    labels = rng.integers(0, 3, n)
    oracle = np.where(rng.random(n) < 0.85, labels, (labels + 1) % 3)
    actions = np.where(rng.random(n) < skill, labels, (labels + 2) % 3)
    tasks = [{"i": i, "task_id": 1000 + i, "action": int(actions[i]), "decisions": 3, "label": int(labels[i]),
              "oracle": int(oracle[i]), "ret": float(rng.normal(0, 0.01)), "latency_s": float(0.3 + rng.random()),
              "blocks": 4, "gas": float(gas + 1000 * arch), "calldata_bytes": 1200.0 + arch, "txs": 5.0,
              "publications": {"decision": 3}} for i in range(n)]
    return {"key": key, "arch": arch, "quorum": 3, "tasks": tasks, "wall_s": 2.0, "cpu_s": cpu, "throughput": 8.0,
            "owner_gas": 0, "owner_txs": 0, "hedge": None, "model_bytes": 90_000_000, "models": ["market"],
            "offchain": {"M-fixed": {"accuracy": skill}}, **meta}


def full_records(profile: Profile, seeds: list[int], n: int = 12, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Every unit a run of `profile` over `seeds` writes (sweeps included)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}

    def add(record: dict[str, Any]) -> None:
        out[record["key"]] = record

    skills = {0: 0.45, 1: 0.5, 2: 0.55, 3: 0.6, 4: 0.55, 5: 0.6, 6: 0.7, 7: 0.7}
    for s in seeds:
        for a in ARCH_NAMES:
            add(unit(f"main/s{s}/a{a}", a, n, rng, skill=skills[a], seed=s, uni_best="market" if a == 0 else None))
    for a in (3, 6):
        add({**out[f"main/s{seeds[0]}/a{a}"], "key": f"rerun/s{seeds[0]}/a{a}"})
    for a in ARCH_NAMES:
        add(unit(f"paced/s{seeds[0]}/a{a}", a, 1, rng))
    for i, k in enumerate(profile.agents):
        add(unit(f"n/{k}/s{seeds[0]}", 8 + i, n, rng, gas=100_000 * k, agents=k, roles=["market"] * k))
    for alpha in profile.alphas:
        for s in seeds[:profile.alpha_seeds]:
            for a in ARCH_NAMES:
                add(unit(f"alpha/{alpha:g}/s{s}/a{a}", a, n, rng, skill=skills[a] - 0.1 * (a == 6) * (1 - alpha)))
    for d in profile.dims:
        for dtype in profile.dtypes:
            if (d, dtype) != (16, "f32"):
                for s in seeds[:profile.ed_seeds]:
                    add(unit(f"ed/{d}-{dtype}/s{s}", 5, n, rng, gas=200_000 + 100 * d, d=d, dtype=dtype))
    for s in seeds[:profile.robust_seeds]:
        for scenario in SCENARIOS:
            for a in ARCH_NAMES:
                r = unit(f"robust/{scenario}/s{s}/a{a}", a, min(n, profile.robust_tasks), rng, skill=0.4, cpu=None)
                if scenario == "offline" and a == 6:
                    for t in r["tasks"]:
                        t["action"] = None
                add(r)
        add({"key": f"probe/mismatch/s{s}", "seed": s, "node_rejections": 3, "node_errors": ["ModelMismatch(...)"],
             "probe": {"tx_hash": "0x" + "ab" * 32, "mined": True, "status": 0, "gas_used": 33_000,
                       "error": "ModelMismatch", "args": {"expected": "0x01", "got": "0x02"},
                       "registered_model_id": "0x" + "01" * 32, "sent_model_id": "0x" + "02" * 32}})
    add({"key": "rerun/models", "seed": seeds[0], "model_ids_equal": {"u": True}, "all_equal": True})
    return out
