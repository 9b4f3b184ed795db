"""Profiles of the experiment and the options of one run.

A profile fixes how much is measured: seeds, on-chain tasks per (seed, architecture), the
training set and budget, and the points of every sweep. `quick` is what `make demo` and CI run
(a few minutes on 2 cores; its sweeps are reduced and the report says so), `full` is the complete
grid (under an hour on 2 cores), `tiny` exists for tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from node.chain.fees import Prices
from node.protocol.enums import EXPERIMENT_ARCHS, Arch

MODULAR = (Arch.M_RULES, Arch.M_FIXED, Arch.M_LEARNED, Arch.M_LEARNED_P, Arch.M_REGRET, Arch.E_D)
"""The modular architectures (the three agents publish for each of them): the 'best modular' of
the gap curve is the best of these."""
ABLATION_ROWS = {Arch.E_D: "E-through", Arch.U: "U-concat"}
"""The ablation rows, by the architecture each runs as on chain (`plan.ABLATION_ARCHS`), with the
report's name for it."""


def ablation_prefix(alpha: float | None = None) -> str:
    """Where the ablation rows' records live: `ablation` beside the main table (units
    `ablation/s{seed}/a{arch}`, evaluation `eval/ablation/s{seed}`), `ablation/alpha/{alpha:g}`
    beside an alpha-sweep point."""
    return "ablation" if alpha is None else f"ablation/alpha/{alpha:g}"

ARCH_N_SWEEP = EXPERIMENT_ARCHS[0]
"""First experiment architecture id (9..15 are reserved for experiments): the N sweep uses
9 + i for its i-th point, fused on chain with the default per-role weights (the modular baseline)."""


@dataclass(frozen=True)
class TrainBudget:
    """What `models.train.Budget` gets, plus the dataset sizes a model set is trained on."""

    n_train: int = 1500
    n_val: int = 500
    epochs: int = 20
    trials: int = 1
    patience: int = 4
    folds: int = 3


@dataclass(frozen=True)
class Profile:
    """How much one run measures."""

    name: str
    seeds: int = 5
    """Seeds of the main table (each seed: its own data, models, node processes and tasks)."""
    tasks: int = 24
    """On-chain tasks per (seed, architecture) in the main table: the chain sample of the seed's
    evaluation set (M-regret, an online learner, runs its first `tasks` tasks in order instead)."""
    eval_tasks: int = 2000
    """Tasks per seed of the main table scored off chain by the very model files the nodes run:
    the measurement, of which the chain sample is the check."""
    alpha: float = 0.5
    """Synergy of the main table's data."""
    train: TrainBudget = field(default_factory=TrainBudget)
    train_workers: int = 1
    """Background processes that train the model sets ahead of need (one torch thread each, at
    lower priority than the node processes). The full profile's alpha sweep waits on training, not
    on the chain, so it trains two sets at a time."""
    u_replicas: int = 2
    """k of U-rep: coordinators running the same model id."""
    cost_seeds: int = 1
    """Seeds whose main-table architectures run one at a time: latency, throughput and CPU time are
    measured there; the other seeds run the architectures together (quality, gas, bytes, txs)."""
    paced: int = 2
    """Tasks per architecture sent one at a time on the first seed (latency without queueing)."""
    alphas: tuple[float, ...] = (0.0, 1.0)
    """Synergy sweep points besides `alpha` (the main table is the point at `alpha`)."""
    alpha_seeds: int = 5
    """Seeds of each alpha-sweep point: seed, seed + 1, ... (`RunOptions.sweep_seeds`), the first of
    them the main table's; it may exceed `seeds` (each point's model sets are its own). The seed-to-
    seed spread of the trained models, not the evaluation tasks, sets the sweep's intervals."""
    alpha_seed_counts: tuple[tuple[float, int], ...] = ()
    """Points that run on more (or fewer) seeds than `alpha_seeds`: (alpha, seeds) pairs, seeds again
    seed, seed + 1, ... A point's interval narrows as one over the square root of its seeds, and the
    spread between seeds differs by point and architecture (the decision stacker's at high synergy
    is two to three times the others'), so the seeds go where the spread is. The ablation rows beside
    a point run on its first `alpha_seeds` seeds only."""
    alpha_tasks: int = 16
    agents: tuple[int, ...] = (2, 4)
    """N sweep: agent processes per task (roles market, sentiment, risk, fusion, then replicas)."""
    n_tasks: int = 12
    dims: tuple[int, ...] = (16, 384)
    dtypes: tuple[str, ...] = ("f32", "binary")
    ed_tasks: int = 16
    ed_seeds: int = 1
    robust_tasks: int = 12
    robust_seeds: int = 1
    noise: float = 3.0
    """Observation-noise multiplier of the noisy modality in the noise scenarios (1.0 = clean)."""
    block_time: float = 0.25
    """Seconds between blocks of the private Anvil (interval mining, like an L2 sequencer); 0 auto-mines
    one block per transaction. Latency figures include it."""
    deadline_s: int = 600
    """Seconds from submission to a task's deadline in normal operation."""
    degraded_deadline_s: int = 24
    """Deadline of the tasks of the offline / model-mismatch scenarios: they finalize after it."""
    fusion_wait_s: float = 8.0
    """Offline scenario only: how long a fusion node waits for missing peers before fusing what is
    there. Everywhere else fusion waits for its quorum of peer decisions, so no decision depends on
    timing."""
    transport_tasks: int = 0
    """Transport sweep (0 = off): the first seed's first chain-sample tasks run again by the
    modular architectures on node processes with `transport = "report"` (signed reports, one
    `submitReport` per task) and `transport = "batch"` (batched publication), to compare their costs
    with per-agent transactions."""
    transports: tuple[str, ...] = ("report", "batch")
    """The transport sweep's transports besides per-agent transactions (`plan.TRANSPORTS`, in order)."""
    ablation_seeds: int = 0
    """Seeds (the main table's first) whose ablation session runs (0 = none): E-through and
    U-concat scored on the seed's evaluation set, `ablation_tasks` of it through the chain
    (`plan.ABLATION_ARCHS`)."""
    ablation_tasks: int = 12
    ablation_alphas: tuple[float, ...] = ()
    """Alpha-sweep points (of `alphas`) where the ablation rows run too, on the sweep's seeds and
    evaluation sets, `alpha_tasks` of them through the chain: the decomposition of U − M-learned at
    those alphas as well as at the main table's."""
    alignment_seeds: int = 0
    """Seeds (the main table's first) whose alignment session runs (0 = none): E-d with a market
    agent trained apart, unaligned and through a Procrustes map fitted on K anchors, scored on the
    seed's evaluation set (`node.experiment.alignment`)."""
    alignment_ks: tuple[int, ...] = (0, 5, 25, 100, 400)
    """The anchor counts K of the alignment curve (0: the apart agent's vectors fused raw)."""
    alignment_chain_anchors: int = 25
    """Anchors the alignment session publishes on chain (both market agents, one publishEmbedding
    each) before fitting and registering the map from the events."""
    alignment_tasks: int = 12
    """Evaluation tasks per alignment seed through the chain after the map is registered: E-d with
    the apart market agent fused through it, each finalized action checked against the off-chain
    replay."""
    width_seeds: int = 0
    """Seeds of the width sweep (0 = none; off chain: `node.experiment.width`): U's shared width and
    E-through's bottleneck d over `widths` on the synthetic market at latent_dim `width_latent_dim`
    and the main table's alpha, each seed's test set `eval_tasks` tasks, trained with the profile's
    budget."""
    widths: tuple[int, ...] = (1, 2, 4, 16, 64)
    width_latent_dim: int = 8
    reduced: bool = True
    """Whether the sweeps are a reduced grid (quick, tiny) rather than the full one."""

    def __post_init__(self) -> None:
        for alpha, n in self.alpha_seed_counts:
            if alpha not in self.alphas or alpha == self.alpha:
                raise ValueError(f"alpha_seed_counts names alpha {alpha:g}, which is not a sweep point "
                                 f"(alphas: {', '.join(f'{a:g}' for a in self.alphas) or 'none'})")
            if n < 1:
                raise ValueError(f"alpha_seed_counts: alpha {alpha:g} needs at least 1 seed, got {n}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


QUICK = Profile(
    name="quick", seeds=4, tasks=9, eval_tasks=2500, train=TrainBudget(n_train=5000, n_val=500, epochs=4, patience=3),
    u_replicas=2, paced=0, alphas=(0.0, 1.0), alpha_seeds=2, alpha_tasks=8, agents=(2, 4), n_tasks=8,
    dims=(16, 384), dtypes=("f32", "binary"), ed_tasks=8, ed_seeds=1, robust_tasks=6, robust_seeds=1,
    degraded_deadline_s=14, fusion_wait_s=5.0, transport_tasks=5, transports=("report",), ablation_seeds=4,
    ablation_tasks=6, alignment_seeds=0, alignment_chain_anchors=8, alignment_tasks=6,
)
FULL = Profile(
    name="full", seeds=10, tasks=100, eval_tasks=5000,
    train=TrainBudget(n_train=5000, n_val=1000, epochs=20, patience=3, trials=4), train_workers=2,
    u_replicas=3, cost_seeds=1, paced=4, alphas=(0.0, 0.25, 0.75, 1.0), alpha_seeds=10,
    alpha_seed_counts=((0.0, 12), (0.75, 24), (1.0, 15)), alpha_tasks=12,
    agents=(2, 4, 8, 16), n_tasks=12, dims=(4, 16, 64, 384), dtypes=("f32", "i8", "binary"), ed_tasks=12, ed_seeds=2,
    robust_tasks=12, robust_seeds=2, reduced=False, transport_tasks=24, ablation_seeds=5,
    ablation_tasks=24, ablation_alphas=(0.0, 1.0), alignment_seeds=5, alignment_chain_anchors=25, alignment_tasks=24,
    width_seeds=3,
)
"""Every architecture on 10 seeds x 5,000 evaluation tasks with 100 of them through the chain (on 5
seeds U's interval was ±1.3 points: its seeds' models spread from 55.9 to 59.5 %), and
every alpha-sweep point on 10 seeds or more (the main table's seed numbers; 12 at alpha 0, 24 at
0.75 and 15 at 1, where the previous full run's seed-to-seed spread left an interval wider than
±1.0 point on 10) x 5,000 off chain; the sweeps' chain samples are smaller (12 tasks per architecture and point), the E-d and robustness grids run
on 2 seeds; the ablation rows
(E-through, U-concat) on the first 5 seeds' 5,000, with 24 of them through the chain, and at alpha 0 and 1
on the sweep's seeds and tasks (12 through the chain); the alignment curve
on the first 5 seeds' 5,000, its map fitted and registered from 25 anchors published on chain and 24 of
the tasks through the chain fused through it; the width sweep (off chain) at latent_dim 8 on 3 seeds.
Sized to finish in under an hour on 2 cores."""
TINY = Profile(
    name="tiny", seeds=2, tasks=6, eval_tasks=200, train=TrainBudget(n_train=400, n_val=150, epochs=4, patience=2, folds=2),
    u_replicas=2, paced=1, alphas=(), alpha_seeds=0, alpha_tasks=0, agents=(2,), n_tasks=4, dims=(), dtypes=(),
    ed_tasks=0, ed_seeds=0, robust_tasks=4, robust_seeds=1, degraded_deadline_s=20, fusion_wait_s=6.0,
    transport_tasks=3,
)
MECHANISMS = Profile(
    name="mechanisms", seeds=5, tasks=24, eval_tasks=5000, train=FULL.train, train_workers=2, u_replicas=2,
    cost_seeds=1, paced=0, alphas=(0.0, 1.0), alpha_seeds=5, alpha_tasks=12, agents=(), n_tasks=0, dims=(), dtypes=(),
    ed_tasks=0, ed_seeds=0, robust_tasks=0, robust_seeds=0, transport_tasks=0, transports=(), ablation_seeds=5,
    ablation_tasks=24, ablation_alphas=(0.0, 1.0), reduced=True,
)
"""The decomposition alone (which mechanism costs what), for a second data set beside the full
profile's: every architecture and the ablation rows (E-through, U-concat) at alpha 0, 0.5 and 1 on
5 seeds x 5,000 evaluation tasks, with the full profile's training budget, 24 tasks per (seed,
architecture) through the chain at 0.5 and 12 at 0 and 1; no cost, robustness, transport, N or
d x dtype sweeps. Made for `--latent-dim 8`, where the full profile's grid would not fit in an
hour beside its own."""
PROFILES = {p.name: p for p in (TINY, QUICK, FULL, MECHANISMS)}


def get_profile(name: str, **overrides: Any) -> Profile:
    """A profile by name, with fields replaced by `overrides` (None values ignored)."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(profile, **changes) if changes else profile


@dataclass(frozen=True)
class RunOptions:
    """One `chorus bench` invocation."""

    profile: Profile
    seed: int = 0
    """Base seed: seed i of the run is `seed + i`."""
    out: Path = Path("reports")
    rpc_url: str | None = None
    """Any EVM JSON-RPC (chain id 31337: the dev keys sign; any other chain needs a funder keystore,
    see `node.experiment.keys`); None starts a private Anvil."""
    data: Path | None = None
    """The user's own tasks (CSV/Parquet, `models.data.loader`); None: the synthetic market."""
    sweeps: bool = True
    """Run the sweeps (alpha, N, d x dtype, robustness) after the main table."""
    rerun_check: bool = True
    """Re-run one unit at the end and compare its decisions (the determinism honesty check)."""
    latent_dim: int = 1
    """Dimension m of each modality's latent in the synthetic market (`models.data.synthetic`,
    "Latent dimension"); 1: the original generator, byte for byte."""
    prices: Prices | None = None
    """The fee model's prices (`node.chain.fees.Prices`, `chorus bench --prices FILE`); None: its
    defaults. They price the report's costs only, so a run can be re-rendered with others."""

    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.profile.seeds)]

    def sweep_seeds(self, alpha: float | None = None) -> list[int]:
        """The seeds of alpha-sweep point `alpha` (`Profile.alpha_seed_counts`, else `alpha_seeds`);
        without `alpha`, the `alpha_seeds` every point has (those of the ablation rows beside them)."""
        counts = dict(self.profile.alpha_seed_counts)
        n = counts.get(alpha, self.profile.alpha_seeds) if alpha is not None else self.profile.alpha_seeds
        return [self.seed + i for i in range(n)]
