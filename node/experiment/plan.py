"""The experiment's plan: which node processes each kind of session runs, what each architecture
waits for and runs, and the sessions' shape; the runner (`node.experiment.runner`) executes it.

A unit is one measurement, keyed `main/s<seed>/a<arch>` (the main table), `paced/...` (latency
without queueing), `n/<N>/...`, `ed/<d>-<dtype>/...`, `alpha/<alpha>/...`,
`robust/<scenario>/...`, `transport/<transport>/...`, `ablation/[alpha/<alpha>/]...`,
`alignment/[chain/]s<seed>`, `rerun/...` or `probe/...`. Units are grouped in sessions that share
a model set and its node processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from node.experiment.config import ABLATION_ROWS, ARCH_N_SWEEP, MODULAR, Profile
from node.experiment.keys import ChainPlan
from node.experiment.nodes import NodeSet, NodeSpec
from node.protocol.enums import AGENT_ROLES, Arch, Role

ROLE_CYCLE = (*AGENT_ROLES, Role.FUSION)
"""The roles of the N sweep's agents, in order: the first four, then replicas of them."""
NOISE_SCENARIOS = tuple(f"noise-{m.label}" for m in AGENT_ROLES)
SCENARIOS = (*NOISE_SCENARIOS, "byzantine", "offline")
ALPHA_ARCHS = tuple(a for a in Arch if a is not Arch.U_REP)
"""The synergy sweep compares U with the modular architectures; U-rep adds nothing to it."""
RERUN_ARCHS = (Arch.M_LEARNED, Arch.U)
"""Architectures whose first-seed unit runs twice (the 'same seed, same decisions' check)."""
TRANSPORTS = ("report", "batch")
"""The transport sweep's transports besides per-agent transactions (the main table's `tx`): signed
reports, and batched publication (each agent's decisions on several tasks in one publishDecisions)."""
TRANSPORT_ARCHS = (Arch.UNI_BEST, Arch.M_RULES, Arch.M_FIXED, Arch.M_LEARNED, Arch.M_REGRET)
"""What the transport sweep runs: the architectures whose every publication is a decision, so that
one report reaches their quorum (under reports, the fusion agent of M-rules and M-learned fuses the
signed decisions its peers handed to the aggregator, and its own goes in the same report). E-d and
M-learned-p publish embeddings and probabilities, which go by per-agent transactions under every
transport."""
def transport_archs(transport: str) -> tuple[Arch, ...]:
    """What the transport sweep runs under `transport`: `TRANSPORT_ARCHS`, and under batched
    publication E-d too (its agents batch their embeddings as well as their decisions)."""
    return (*TRANSPORT_ARCHS, Arch.E_D) if transport == "batch" else TRANSPORT_ARCHS


BATCH_WAIT_S = 1.0
"""The transport sweep's `batch_wait_s`: how long an agent holds a decision for others to share its
publishDecisions (the sweep keeps up to `jobs.WINDOW` tasks in flight, submitted one block apart)."""
REPORT_FALLBACK_S = 60.0
"""The transport sweep's `report_fallback_s`: chain seconds a healthy report never needs, well
below the task deadline (so the fallback never decides a sweep task)."""


def quorum(arch: int, k: int) -> int:
    """Decisions a task of `arch` waits for: who publishes for it (see `main_specs`)."""
    return {Arch.UNI_BEST: 1, Arch.M_RULES: 4, Arch.M_FIXED: 3, Arch.M_LEARNED: 4, Arch.M_REGRET: 3, Arch.E_D: 4,
            Arch.U: 1, Arch.U_REP: k, Arch.M_LEARNED_P: 4}[arch]


def n_sweep_arch(i: int) -> int:
    """The experiment architecture id of the N sweep's `i`-th point."""
    return ARCH_N_SWEEP + i


def n_sweep_archs_of(node_index: int, agents: tuple[int, ...]) -> tuple[int, ...]:
    """The N-sweep architectures node `node_index` (in the role cycle) publishes for."""
    return tuple(n_sweep_arch(i) for i, n in enumerate(agents) if node_index < n)


FUSION_ARCHS = (Arch.M_RULES, Arch.M_LEARNED, Arch.M_LEARNED_P, Arch.E_D)
"""What the fusion node publishes for: the architectures whose decision is a fusion agent's."""


def main_specs(uni_best: str, rules: str, profile: Profile) -> list[NodeSpec]:
    """Market, sentiment, risk (all modular architectures, the Uni-best agent also arch 0), the
    fusion node (M-rules, M-learned, M-learned-p, E-d) and k U coordinators (`chorus coordinator run`; the first
    also serves U)."""
    specs = []
    for j, role in enumerate(r.label for r in AGENT_ROLES):
        archs = (Arch.UNI_BEST,) * (role == uni_best) + MODULAR + n_sweep_archs_of(j, profile.agents)
        specs.append(NodeSpec(role, role, archs, embedding_archs=(Arch.E_D,)))
    fusion = Role.FUSION.label
    specs.append(NodeSpec(fusion, fusion, FUSION_ARCHS + n_sweep_archs_of(3, profile.agents), rules=rules))
    for c in range(profile.u_replicas):
        specs.append(NodeSpec(f"coordinator-{c}", Role.COORDINATOR.label,
                              (Arch.U, Arch.U_REP) if c == 0 else (Arch.U_REP,)))
    return specs


def replica_specs(profile: Profile) -> list[NodeSpec]:
    """The extra agents of the N sweep beyond the first four: replicas of the role cycle."""
    top = max(profile.agents, default=0)
    out = []
    for j in range(len(ROLE_CYCLE), top):
        role = ROLE_CYCLE[j % len(ROLE_CYCLE)].label
        out.append(NodeSpec(f"{role}-{j // len(ROLE_CYCLE)}", role, n_sweep_archs_of(j, profile.agents),
                            embedding_archs=()))
    return out


def byzantine_specs(uni_best: str, rules: str, profile: Profile) -> list[NodeSpec]:
    """The main mix with the market agent and the first U coordinator lying."""
    specs = main_specs(uni_best, rules, replace(profile, agents=()))
    return [s.with_mode("byzantine") if s.name in (Role.MARKET.label, "coordinator-0") else s for s in specs]


def degraded_specs(uni_best: str, rules: str, profile: Profile) -> list[NodeSpec]:
    """The main mix with the market agent publishing for E-d only, under an unregistered model id
    (refused: for E-d as good as offline; for every other architecture it is offline), and the
    first U coordinator registered but silent (offline): U has no coordinator left, U-rep k-1."""
    out = []
    for s in main_specs(uni_best, rules, replace(profile, agents=())):
        if s.name == Role.MARKET.label:
            s = s.with_mode("wrong-model", archs=(Arch.E_D,))
        elif s.name == "coordinator-0":
            s = s.with_mode("honest", archs=())
        out.append(s)
    return out


def transport_specs(uni_best: str, rules: str, transport: str) -> list[NodeSpec]:
    """The transport sweep's nodes: the three modality agents (the Uni-best one also arch 0) and the
    fusion node (M-rules, M-learned; E-d where it runs), publishing for `transport_archs(transport)`
    under `transport`; under reports one of the four aggregates each task."""
    ed = (Arch.E_D,) if Arch.E_D in transport_archs(transport) else ()
    modular = (Arch.M_RULES, Arch.M_FIXED, Arch.M_LEARNED, Arch.M_REGRET, *ed)
    fusion = Role.FUSION.label
    extra = ({"report_fallback_s": REPORT_FALLBACK_S} if transport == "report"
             else {"batch_wait_s": BATCH_WAIT_S} if transport == "batch" else {})
    return [*(NodeSpec(r.label, r.label, (Arch.UNI_BEST,) * (r.label == uni_best) + modular,
                       embedding_archs=ed, transport=transport, **extra) for r in AGENT_ROLES),
            NodeSpec(fusion, fusion, (Arch.M_RULES, Arch.M_LEARNED, *ed), rules=rules, transport=transport, **extra)]


def ed_specs() -> list[NodeSpec]:
    """The E-d sweep's nodes: the three agents publishing embeddings, and the fusion node."""
    fusion = Role.FUSION.label
    return [*(NodeSpec(r.label, r.label, (Arch.E_D,), embedding_archs=(Arch.E_D,)) for r in AGENT_ROLES),
            NodeSpec(fusion, fusion, (Arch.E_D,))]


ABLATION_ARCHS = tuple(ABLATION_ROWS)
"""What an ablation session runs, on the nodes of `ablation_specs` and an ablation model set: E-d
with E-through's agents and head (the row E-through), U with U-concat's model (the row U-concat)."""


def ablation_specs() -> list[NodeSpec]:
    """An ablation session's nodes: the three agents publishing embeddings for E-d, the fusion node
    (E-d) and one coordinator serving U."""
    return [*ed_specs(), NodeSpec("coordinator-0", Role.COORDINATOR.label, (Arch.U,))]


def alignment_specs(alignments_dir: Any) -> list[NodeSpec]:
    """An alignment session's nodes (`node.experiment.alignment.session_specs`): the apart market
    agent, the sentiment and risk agents, the fusion node with `alignments_dir`."""
    from node.experiment.alignment import session_specs

    return session_specs(alignments_dir)


ALIGNMENT_KEYS = 1
"""Keys an alignment session allocates besides its nodes': the agent of the reference market space."""


def model_names(arch: int, uni_best: str | None, k: int) -> tuple[list[str], int]:
    """(manifest names, copies) of the ONNX models `arch` runs; the MiniLM encoder is added by
    the caller wherever the sentiment agent or U runs."""
    agents = [r.label for r in AGENT_ROLES]
    if arch == Arch.UNI_BEST:
        return [uni_best], 1
    if arch == Arch.M_LEARNED:
        return [*agents, "m-learned-dec"], 1
    if arch == Arch.M_LEARNED_P:
        return [*agents, "m-learned"], 1
    if arch == Arch.E_D:
        return [*agents, "e-d16"], 1
    if arch in (Arch.U, Arch.U_REP):
        return ["u"], (k if arch == Arch.U_REP else 1)
    return agents, 1


@dataclass
class Ready:
    """A prepared session: its models, its own deployment and its running node processes."""

    models: Any
    board: Any = None
    nodes: NodeSet | None = None


@dataclass
class Session:
    """Units that share a model set and its node processes, and how to run them."""

    name: str
    units: list[str]
    model: Any = None
    """The model set (`modelsets.SetSpec`) the session runs, trained ahead in plan order."""
    specs: Callable[[Any], list[NodeSpec]] | None = None
    """The node processes for a model set (None: the session needs no chain)."""
    run: Callable[[Ready], None] = lambda ready: None
    setup: Callable[[Ready], Ready] | None = None
    """Runs first, in the main thread (owner transactions: the owner key is the main thread's)."""
    defer: bool = False
    """Run in a thread of its own (a session that mostly waits for deadlines): the next sessions
    go on meanwhile."""
    fusion_wait_s: float | None = None
    """Fusion nodes fuse on a partial set of peer decisions after this long (None: they wait for
    their quorum, so decisions never depend on timing). Only the offline scenario sets it."""


def unit_tasks(key: str, profile: Profile) -> int:
    """On-chain tasks the unit `key` submits."""
    p = profile
    if key.startswith("alignment/chain/"):
        return p.alignment_tasks
    if key.startswith("ablation/alpha/"):
        return p.alpha_tasks
    return {"main": p.tasks, "rerun": p.tasks, "paced": p.paced, "n": p.n_tasks, "alpha": p.alpha_tasks,
            "ed": p.ed_tasks, "robust": min(p.robust_tasks, p.tasks), "probe": 1,
            "transport": min(p.transport_tasks, p.tasks), "ablation": p.ablation_tasks,
            "alignment": p.alignment_chain_anchors}.get(key.split("/", 1)[0], 0)


def chain_plan(sessions: list[Session], profile: Profile) -> ChainPlan:
    """What `sessions` will do on chain, at most (deployments, node keys, tasks): what the
    funds check of a keystore run is computed from."""
    from types import SimpleNamespace

    # The count does not depend on the model set's Uni-best agent or rules.
    models = SimpleNamespace(uni_best=AGENT_ROLES[0].label, rules="0,0")
    boards = keys = tasks = busiest = 0
    for s in sessions:
        if s.specs is None:
            continue
        n_tasks = sum(unit_tasks(key, profile) for key in s.units)
        n_keys = len(s.specs(models)) + (s.setup is not None) + any(k.startswith("probe/") for k in s.units)
        n_keys += ALIGNMENT_KEYS * sum(k.startswith("alignment/chain/") for k in s.units)
        if any(k.startswith("n/") for k in s.units):
            n_keys += len(replica_specs(profile))
        boards, keys, tasks, busiest = boards + 1, keys + n_keys, tasks + n_tasks, max(busiest, n_tasks)
    return ChainPlan(boards, keys, tasks, busiest)
