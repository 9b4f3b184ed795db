"""The experiment's execution, session by session and unit by unit, resumable.

What runs is the plan (`node.experiment.plan`: the sessions, their node processes and units);
each unit is written to the run folder's checkpoint (`node.experiment.checkpoint`) as soon as it
is finished. A session whose units are all in the checkpoint is skipped without starting
anything, so a killed run started again with the same options redoes only what was not finished
(on a fresh devnet: costs and decisions do not depend on which chain the earlier units ran on).

Within a session of the main table the architectures run one after the other, so each one's CPU
time, latency and throughput are its own; sweeps that only compare quality run their
architectures' tasks concurrently.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from node.experiment import tasks as task_streams
from node.experiment.checkpoint import CHECKPOINT, Checkpoint
from node.experiment.config import ABLATION_ROWS, RunOptions, ablation_prefix
from node.experiment.jobs import WINDOW, ArchJob, RegretWeights, run_jobs
from node.experiment.nodes import NodeSet, Zygote
from node.experiment.report.metrics import correctness, decode_actions, encode_actions
from node.experiment.plan import (
    ABLATION_ARCHS,
    ALPHA_ARCHS,
    BATCH_WAIT_S,
    NOISE_SCENARIOS,
    REPORT_FALLBACK_S,
    RERUN_ARCHS,
    ROLE_CYCLE,
    TRANSPORTS,
    Ready,
    Session,
    ablation_specs,
    alignment_specs,
    byzantine_specs,
    chain_plan,
    degraded_specs,
    ed_specs,
    main_specs,
    model_names,
    n_sweep_arch,
    quorum,
    replica_specs,
    transport_archs,
    transport_specs,
)
from node.protocol.enums import AGENT_ROLES, Arch, Role

log = logging.getLogger(__name__)

UNIT_TIMEOUT_S = 240.0
LOOKAHEAD = 1
"""Sessions prepared ahead (models, deployment, node processes started and idle)."""
MAX_IN_FLIGHT = 16
"""Tasks open at once when several architectures run together."""


# -- the run ------------------------------------------------------------------------------------------


@dataclass
class Ui:
    """Progress reporting (rich bars in the CLI, nothing in tests)."""

    start_units: Callable[[int], None] = lambda total: None
    unit_done: Callable[[str], None] = lambda key: None
    status: Callable[[str], None] = lambda text: None
    start_tasks: Callable[[str, int], None] = lambda what, total: None
    task_done: Callable[[], None] = lambda: None


@dataclass
class Bench:
    """One run: its plan of sessions, executed unit by unit into the checkpoint."""

    opts: RunOptions
    out: Path
    ui: Ui = field(default_factory=Ui)
    background: bool = True
    """Train model sets in a background process, and start the next session's node processes,
    while the current session runs on chain."""
    keys: Any = None
    """Who signs (`keys.BenchKeys`): None, the dev keys (chain 31337 only)."""
    signing: dict[str, Any] | None = None
    """Keystore mode, after the run: funder, node keys, funds sent and returned (`BenchChain.signing`)."""
    chain: Any = None
    zygote: Zygote | None = None
    node_sets: list[NodeSet] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from node.experiment.modelsets import Factory

        self.checkpoint = Checkpoint(self.out / CHECKPOINT)
        self.profile = self.opts.profile
        self.seeds = self.opts.seeds()
        self.synthetic = self.opts.data is None
        self.factory = Factory(background=self.background, workers=self.profile.train_workers)
        self._lock = threading.Lock()
        self._evals: dict[tuple[int, float], Any] = {}
        self._pending: dict[str, Evaluation] = {}
        self._samples: dict[int, list[int]] = {}
        self._evaluations: dict[int, Evaluation] = {}
        self._scoring: ThreadPoolExecutor | None = None
        self._logliks: dict[tuple[int, int], Any] = {}
        self._texts: Any = None  # the run's MiniLM cache (`_text_cache`), loaded on first use
        self._cancel = threading.Event()
        """Set when the run stops early: a deferred session in its thread gives up at once."""

    def spec(self, seed: int, alpha: float | None = None, n_test: int | None = None, kind: str = "main",
             d: int = 16, dtype: str = "f32"):
        from node.experiment.modelsets import SetSpec

        p = self.profile
        return SetSpec(kind, p.name, seed, p.alpha if alpha is None else alpha, p.tasks if n_test is None else n_test,
                       p.train, str(self.opts.data) if self.opts.data else None, d, dtype, self.opts.latent_dim)

    # -- plan ------------------------------------------------------------------------------------

    def sessions(self) -> list[Session]:
        p, seeds = self.profile, self.seeds
        out = []
        main = lambda ms: main_specs(ms.uni_best, ms.rules, p)
        for n, seed in enumerate(seeds):
            units = [f"eval/s{seed}", *(f"main/s{seed}/a{a}" for a in Arch)]
            if n == 0:
                if self.opts.rerun_check:
                    units += [f"rerun/s{seed}/a{a}" for a in RERUN_ARCHS]
                if p.paced:
                    units += [f"paced/s{seed}/a{a}" for a in Arch]
                if self.opts.sweeps:
                    units += [f"n/{k}/s{seed}" for k in p.agents]
            robust = self.opts.sweeps and n < p.robust_seeds
            if robust and self.synthetic:
                units += [f"robust/{s}/s{seed}/a{a}" for s in NOISE_SCENARIOS for a in Arch]
            out.append(Session(f"main-s{seed}", units, self.spec(seed), main,
                               lambda ready, seed=seed, first=(n == 0): self._main_session(ready, seed, first)))
            if n < p.ablation_seeds and self.synthetic:
                out.append(self._ablation_plan(seed))
            if n < p.alignment_seeds and self.synthetic:
                out.append(Session(f"alignment-s{seed}", [f"alignment/s{seed}", f"alignment/chain/s{seed}"],
                                   self.spec(seed, kind="alignment"),
                                   lambda ms, seed=seed: alignment_specs(self._alignments_dir(seed)),
                                   lambda ready, seed=seed: self._alignment_session(ready, seed)))
            if n == 0 and p.transport_tasks:
                for transport in [t for t in TRANSPORTS if t in p.transports]:
                    out.append(Session(f"transport-{transport}-s{seed}",
                                       [f"transport/{transport}/s{seed}/a{a}" for a in transport_archs(transport)],
                                       self.spec(seed), lambda ms, t=transport: transport_specs(ms.uni_best, ms.rules, t),
                                       lambda ready, seed=seed, t=transport: self._transport_session(ready, seed, t)))
            if robust:
                out.append(Session(f"byzantine-s{seed}", [f"robust/byzantine/s{seed}/a{a}" for a in Arch],
                                   self.spec(seed), lambda ms: byzantine_specs(ms.uni_best, ms.rules, p),
                                   lambda ready, seed=seed: self._scenario_session(ready, seed, "byzantine")))
                out.append(Session(f"degraded-s{seed}", [f"robust/offline/s{seed}/a{a}" for a in Arch] +
                                   [f"probe/mismatch/s{seed}"], self.spec(seed),
                                   lambda ms: degraded_specs(ms.uni_best, ms.rules, p),
                                   lambda ready, seed=seed: self._scenario_session(ready, seed, "offline"),
                                   setup=lambda ready, seed=seed: self._degraded_setup(ready, seed), defer=True,
                                   fusion_wait_s=p.fusion_wait_s))
        if self.opts.sweeps:
            if self.synthetic:
                beside = set(self.opts.sweep_seeds())  # the ablation rows' seeds at every point
                for alpha in p.alphas:
                    if alpha == p.alpha:
                        continue
                    for seed in self.opts.sweep_seeds(alpha):
                        units = [f"eval/alpha/{alpha:g}/s{seed}", *(f"alpha/{alpha:g}/s{seed}/a{a}" for a in ALPHA_ARCHS)]
                        out.append(Session(f"alpha-{alpha:g}-s{seed}", units, self.spec(seed, alpha, p.alpha_tasks),
                                           lambda ms: main_specs(ms.uni_best, ms.rules, replace(p, u_replicas=1)),
                                           lambda ready, alpha=alpha, seed=seed: self._alpha_session(ready, alpha, seed)))
                        if alpha in p.ablation_alphas and seed in beside:
                            out.append(self._ablation_plan(seed, alpha))
            for d in p.dims:
                for dtype in p.dtypes:
                    if (d, dtype) == (16, "f32"):
                        continue  # the main table's E-d
                    for seed in seeds[:p.ed_seeds]:
                        out.append(Session(f"ed-{d}-{dtype}-s{seed}", [f"ed/{d}-{dtype}/s{seed}"],
                                           self.spec(seed, kind="ed", d=d, dtype=dtype), lambda ms: ed_specs(),
                                           lambda ready, d=d, dtype=dtype, seed=seed: self._ed_session(ready, d, dtype,
                                                                                                       seed)))
        if self.opts.sweeps and p.width_seeds and self.synthetic:  # first: it runs beside everything else
            out.insert(0, Session("width", ["width"], None, None, lambda ready: self._width_session(), defer=True))
        if self.opts.rerun_check:
            out.append(Session("retrain", ["rerun/models"], None, None, lambda ready: self._retrain_check()))
        return out

    def _width_session(self) -> None:
        """The width sweep (off chain, `node.experiment.width`), in a process of its own (one torch
        thread) so it runs beside the chain sessions; its (seed, width) results are cached."""
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        from node.experiment.modelsets import _train_budget
        from node.experiment.width import width_sweep

        if self.checkpoint.done("width"):
            return
        p = self.profile
        seeds = [self.opts.seed + i for i in range(p.width_seeds)]
        self.ui.status(f"width sweep (off chain): widths {', '.join(map(str, p.widths))} x {len(seeds)} seeds, "
                       f"latent_dim {p.width_latent_dim}")
        with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
            section = pool.submit(width_sweep, seeds, tuple(p.widths), p.alpha, p.width_latent_dim, p.train.n_train,
                                  p.train.n_val, p.eval_tasks, _train_budget(p.train)).result()
        self._add({"key": "width", "section": section})

    def run(self) -> None:
        """Run every session that still has unfinished units; the chain starts only if needed."""
        plan = self.sessions()
        self.ui.start_units(sum(len(s.units) for s in plan))
        for s in plan:
            for key in s.units:
                if self.checkpoint.done(key):
                    self.ui.unit_done(key)
        todo = [s for s in plan if not all(self.checkpoint.done(k) for k in s.units)]
        if not todo:
            return
        from threadpoolctl import threadpool_limits

        try:
            # One BLAS thread: the nodes need the cores, and a BLAS pool shared by the main and the
            # preparing thread has been seen to spin forever.
            with threadpool_limits(limits=1):
                self._run_sessions(todo)
        finally:
            if self._scoring is not None:  # an evaluation no unit waited for still writes its record
                self._scoring.shutdown(wait=True, cancel_futures=self._cancel.is_set())
            self.factory.close()

    def _run_sessions(self, todo: list[Session]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from node.experiment.chain import BenchChain
        from node.experiment.keys import KEYS_DIR

        on_chain = [s for s in todo if s.specs is not None]
        work = self.out / ".work"
        if on_chain:
            shutil.rmtree(work, ignore_errors=True)
            t0 = time.perf_counter()
            self.ui.status("starting the chain")
            plan = chain_plan(on_chain, self.profile)
            self.chain = BenchChain.start(work, self.opts.rpc_url, self.profile.block_time, keys=self.keys,
                                          keys_dir=self.out / KEYS_DIR, node_keys=plan.keys)
            try:  # before any training or transaction: a keystore run the funder cannot pay stops here
                self.chain.return_leftovers()
                self.chain.check_funds(plan)
                self.timings["chain_start_s"] = time.perf_counter() - t0
                if hasattr(os, "fork") and sys.platform.startswith("linux"):
                    self.zygote = Zygote()
            except BaseException:
                self.chain.stop()
                raise
        self.factory.prefetch([s.model for s in todo if s.model is not None])
        if any(s.name == "retrain" for s in todo):
            shutil.rmtree(self.out / ".retrain", ignore_errors=True)
            self.factory.prefetch_into(self.spec(self.seeds[0]), str(self.out / ".retrain"))
        preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
        background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="deferred")
        pending: dict[int, Any] = {}
        deferred: list[Any] = []
        try:
            for i, s in enumerate(todo):
                if i not in pending:
                    pending[i] = preparer.submit(self._prepare, s)
                if self.background:  # the next sessions' node processes start while this one runs
                    ahead, j = 0, i + 1
                    while ahead < LOOKAHEAD and j < len(todo):
                        if j not in pending:
                            pending[j] = preparer.submit(self._prepare, todo[j])
                        ahead += 0 if todo[j].defer else 1  # a deferred session does not hold the line
                        j += 1
                self.ui.status(f"{s.name}: preparing (models, contracts, node processes)")
                t0 = time.perf_counter()
                ready = pending.pop(i).result()
                self.timings[f"prepare_wait_s/{s.name}"] = time.perf_counter() - t0
                if s.setup is not None and ready is not None:
                    ready = s.setup(ready)
                if s.defer:
                    deferred.append(background.submit(self._session, s, ready))
                    continue
                self._session(s, ready)
            for future in deferred:
                future.result()
        except BaseException:
            self._cancel.set()
            raise
        finally:
            self.factory.close()  # unblocks a preparation waiting for its models
            for future in pending.values():
                future.cancel()
            preparer.shutdown(wait=True)
            background.shutdown(wait=True)
            with self._lock:
                sets = list(self.node_sets)
            for node_set in sets:
                self._stop(node_set)
            if self.zygote is not None:
                self.zygote.close()
            if self.chain is not None:
                try:
                    self.ui.status("returning the generated keys' funds" if self.chain.keystore else "stopping")
                    self.chain.return_funds()
                    self.signing = self.chain.signing()
                finally:
                    self.chain.stop()
            shutil.rmtree(work, ignore_errors=True)

    def _session(self, s: Session, ready: Ready | None) -> None:
        t0 = time.perf_counter()
        try:
            self.ui.status(f"session {s.name}")
            s.run(ready)
        finally:
            self.timings[f"session_s/{s.name}"] = time.perf_counter() - t0
            if ready is not None and ready.nodes is not None:
                self._stop(ready.nodes)

    def _prepare(self, s: Session) -> Ready | None:
        """Models (waiting for their training), a fresh deployment, the node processes."""
        if s.model is None:
            return None
        t0 = time.perf_counter()
        ms = self.factory.get(s.model)
        self.timings[f"models_wait_s/{s.name}"] = time.perf_counter() - t0
        if s.specs is None:
            return Ready(ms)
        t0 = time.perf_counter()
        board = self.chain.new_board(s.name)
        specs = s.specs(ms)
        # Nodes poll once per block: faster finds nothing new, and idle polling costs every node CPU.
        node_set = NodeSet.start(board, specs, ms.manifest, s.name, fusion_wait_s=s.fusion_wait_s,
                                 poll_s=self.profile.block_time or None, zygote=self.zygote)
        with self._lock:
            self.node_sets.append(node_set)
        self.timings[f"nodes_start_s/{s.name}"] = time.perf_counter() - t0
        return Ready(ms, board, node_set)

    def _stop(self, node_set: NodeSet) -> None:
        node_set.stop()
        with self._lock:
            if node_set in self.node_sets:
                self.node_sets.remove(node_set)

    # -- helpers ---------------------------------------------------------------------------------

    def _add(self, record: dict[str, Any]) -> None:
        record.setdefault("finished", time.time())
        self.checkpoint.add(record)
        self.ui.unit_done(record["key"])

    def stream(self, seed: int, n: int, alpha: float | None = None, noise: Any = 1.0):
        alpha = self.profile.alpha if alpha is None else alpha
        if self.synthetic:
            return task_streams.synthetic_stream(n, seed, alpha, noise=noise, latent_dim=self.opts.latent_dim)
        return task_streams.file_stream(self.opts.data, seed, n)  # type: ignore[arg-type]

    @staticmethod
    def _weights(board, uni_best: str) -> None:
        """Per-architecture fusion weights that are not the constructor's defaults."""
        best = Role.parse(uni_best)
        board.set_weights(Arch.UNI_BEST, {r: (10000 if r == best else 0) for r in ROLE_CYCLE})
        board.set_weights(Arch.M_RULES, {**dict.fromkeys(AGENT_ROLES, 0), Role.FUSION: 10000})

    def _job(self, key: str, arch: int, stream, *, hedge: RegretWeights | None = None, rounds: int = 3,
             window: int | None = None, deadline_s: int | None = None, degraded: bool = False,
             quorum_: int | None = None, meta: dict | None = None) -> ArchJob:
        p = self.profile
        round_size = max(4, -(-len(stream) // rounds)) if hedge is not None else None
        # Degraded tasks finalize only after their deadline: all in flight at once, one wait.
        window = window or (len(stream) if degraded else WINDOW)
        return ArchJob(key, arch, stream, quorum_ or quorum(arch, p.u_replicas), deadline_s or p.deadline_s,
                       window=window, round_size=round_size, hedge=hedge, expect_unfinalized=degraded,
                       meta=meta or {})

    def _run_one(self, ready: Ready, job: ArchJob, sets: list[NodeSet] | None = None) -> None:
        """One job alone: its CPU time and throughput are its own."""
        sets = sets or [ready.nodes]
        self.ui.status(f"{job.key}: {len(job.stream)} tasks")
        self.ui.start_tasks(job.key, len(job.stream))
        # The CPU of the processes that publish for the architecture (the others only poll).
        cpu0 = sum(s.cpu_seconds(job.arch) for s in sets)
        run_jobs(ready.board, [job], timeout_s=UNIT_TIMEOUT_S, logs=lambda: "\n".join(s.log_tail() for s in sets),
                 on_task=self.ui.task_done, cancel=self._cancel)
        self._attach(job)
        self._add(job.record(ready.board, sum(s.cpu_seconds(job.arch) for s in sets) - cpu0))

    def _run_together(self, ready: Ready, jobs: list[ArchJob], extra: Callable[[ArchJob], dict] | None = None,
                      timeout_s: float = UNIT_TIMEOUT_S, cap: bool = True) -> None:
        """Several jobs at once (quality only: CPU and throughput are not attributed)."""
        if not jobs:
            return
        label = jobs[0].key.rsplit("/", 1)[0]
        self.ui.status(f"{label}: {len(jobs)} architectures x {len(jobs[0].stream)} tasks")
        self.ui.start_tasks(label, sum(len(j.stream) for j in jobs))
        run_jobs(ready.board, jobs, timeout_s=timeout_s, max_in_flight=MAX_IN_FLIGHT if cap else None,
                 logs=ready.nodes.log_tail, on_task=self.ui.task_done, cancel=self._cancel)
        for job in jobs:
            self._attach(job)
            record = job.record(ready.board, None)
            if extra is not None:
                record.update(extra(job))
            self._add(record)

    def _hedge(self, ms, seed: int) -> RegretWeights:
        """M-regret's weights: where this seed's M-regret left them, else the validation start."""
        record = self.checkpoint.get(f"main/s{seed}/a{Arch.M_REGRET}")
        if record and record.get("hedge"):
            return RegretWeights(record["hedge"]["eta"], list(record["hedge"]["log_w"]))
        return RegretWeights(ms.meta["hedge"]["eta"], list(ms.meta["hedge"]["log_w"]))

    def _arch_meta(self, ms, arch: int) -> dict[str, Any]:
        from node.experiment.modelsets import minilm_bytes

        uni_best = ms.meta.get("uni_best")  # an ablation set has none (it runs no Uni-best)
        names, copies = model_names(arch, uni_best, self.profile.u_replicas)
        text = "sentiment" in names or "u" in names
        return {"model_bytes": copies * (ms.model_bytes(names) + (minilm_bytes() if text else 0)),
                "models": names, "model_copies": copies, "model_set": ms.name,
                "uni_best": uni_best if arch == Arch.UNI_BEST else None}

    # -- sessions ----------------------------------------------------------------------------------

    def _evaluate(self, ready: Ready, seed: int, alpha: float | None, key: str, archs: list[int],
                  regret_round: int | None, sample: int, u_replicas: int | None = None,
                  background: bool = False) -> Evaluation:
        """Tier (a): the seed's evaluation set scored off chain by the session's model files, and
        the chain sample drawn from the hash of a block mined after the nodes registered them
        (now, before any chain task). The scoring runs in a worker thread when `background` (the
        chain sample's tasks go on meanwhile; never where CPU time and latency are measured);
        its record `key` is written when it ends, so a resumed run reuses sample and actions."""
        done = self.checkpoint.get(key)
        if done is not None:
            return Evaluation(done["chain_sample"]["indices"], _done(done))
        p, ms = self.profile, ready.models
        evals = self.eval_stream(seed, alpha)
        head = ready.board.client.request("eth_getBlockByNumber", ["latest", False])
        drawn = task_streams.chain_sample(head["hash"], len(evals), sample)
        sampled = {"block": int(head["number"], 16), "block_hash": head["hash"], "indices": drawn.tolist()}
        profile = replace(p, agents=(), u_replicas=p.u_replicas if u_replicas is None else u_replicas)

        def score() -> dict[str, Any]:
            from node.experiment.offchain import score_offchain

            t0 = time.perf_counter()
            if not background:
                self.ui.status(f"{key}: scoring {len(evals)} tasks off chain ({len(archs)} architectures)")
            result = score_offchain(ms, evals, archs, profile=profile, text=self._text_cache(),
                                    regret_round_size=regret_round)
            record: dict[str, Any] = {
                "key": key, "seed": seed, "alpha": p.alpha if alpha is None else alpha, "n": len(evals),
                "labels": encode_actions(evals.labels),
                "actions": {str(a): encode_actions(result.actions(a)) for a in archs},
                "model_ids": result.model_ids, "regret_round_size": result.regret_round_size,
                "chain_sample": sampled, "stream": evals.description, "background": background,
                "tuning": _tuning(ms.meta, p.train),
            }
            record.update(self._ceilings(seed, evals))
            record["offchain_s"] = time.perf_counter() - t0
            self._add(record)
            self._save_text_cache()
            return record

        return Evaluation(sampled["indices"], self._scorer().submit(score) if background else _done(score()))

    def _scorer(self) -> ThreadPoolExecutor:
        """The one thread off-chain scoring runs in (one at a time: it shares the text cache)."""
        if self._scoring is None:
            self._scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offchain")
        return self._scoring

    def _ceilings(self, seed: int, evals) -> dict[str, Any]:
        """The latent oracle and, for the synthetic market, the observation-level Bayes ceiling
        (and at alpha = 1 the late-fusion cap) on the evaluation set."""
        out: dict[str, Any] = {"ceilings": {}, "ceiling_actions": {}}
        if evals.oracle is not None:
            out["ceilings"]["latent"] = float(np.mean(evals.oracle == evals.labels))
            out["ceiling_actions"]["latent"] = encode_actions(evals.oracle)
        ds = evals.dataset  # the synthetic market's generated tasks (None for a file: no ceilings)
        if ds is None:
            return out
        from models.data import ceiling

        if ceiling.latent_dim(ds) > 1:  # no exact grid: `ceilings_for`, each ceiling with its method
            return self._ceilings_dims(ds, out)
        # The observations, hence their likelihoods, do not depend on alpha: once per seed.
        loglik = self._logliks.get((seed, len(ds)))
        if loglik is None:
            loglik = self._logliks[(seed, len(ds))] = ceiling.modality_loglik(ds)
        decisions, prob = ceiling.observation_ceiling(ds, loglik=loglik)
        hit, expected = ceiling.accuracy(ds, decisions, prob)
        out["ceilings"].update(observation=hit, observation_expected=expected, late_fusion_cap=None)
        out["ceiling_actions"]["observation"] = encode_actions(decisions)
        if float(ds.params["alpha"]) == 1.0:
            cap, cap_prob = ceiling.late_fusion_cap(ds, loglik=loglik)
            out["ceilings"]["late_fusion_cap"] = ceiling.accuracy(ds, cap, cap_prob)[0]
        out["dataset"] = {k: v for k, v in ds.params.items() if isinstance(v, (int, float, str, bool)) or v is None}
        return out

    @staticmethod
    def _ceilings_dims(ds, out: dict[str, Any]) -> dict[str, Any]:
        """`_ceilings` at latent_dim > 1: `models.data.ceiling.ceilings_for` (the observation ceiling an
        upper bound, `measurement_bound`), each ceiling's method in `ceiling_methods`."""
        from models.data import ceiling

        found = ceiling.ceilings_for(ds)
        obs, cap = found.get("observation"), found.get("late_fusion_cap")
        out["ceilings"].update(observation=None if obs is None else obs["accuracy"],
                               observation_expected=None if obs is None else obs["expected"],
                               late_fusion_cap=None if cap is None else cap["accuracy"])
        for name in ("observation", "late_fusion_cap"):
            if found.get(name) is not None:
                out["ceiling_actions"][name] = encode_actions(found[name]["decisions"])
        out["ceiling_methods"] = {name: c["method"] for name, c in found.items() if c is not None}
        out["dataset"] = {k: v for k, v in ds.params.items() if isinstance(v, (int, float, str, bool)) or v is None}
        return out

    def eval_stream(self, seed: int, alpha: float | None = None):
        """The seed's evaluation set at `alpha` (generated once per run)."""
        key = (seed, self.profile.alpha if alpha is None else alpha)
        with self._lock:
            if key not in self._evals:
                self._evals[key] = self.stream(seed, self.profile.eval_tasks, alpha=alpha)
            return self._evals[key]

    def _text_cache(self):
        """One MiniLM cache for every off-chain evaluation of the run, kept on disk between runs."""
        if self._texts is None:
            from node.experiment.modelsets import bench_root
            from node.experiment.offchain import TextCache

            self._texts = TextCache.minilm()
            self._texts_path = bench_root() / "text-cache.npz"
            self._texts.load(self._texts_path)
        return self._texts

    def _save_text_cache(self) -> None:
        if self._texts is not None:
            self._texts.save(self._texts_path)

    def _sample(self, seed: int) -> list[int]:
        """The chain sample of the seed's main evaluation set (its record is written by then, or
        being written by the scoring thread: the sample itself is known at once)."""
        ev = self._samples.get(seed)
        if ev is not None:
            return ev
        return self.checkpoint.get(f"eval/s{seed}")["chain_sample"]["indices"]

    def _checked(self, job: ArchJob, ev: Evaluation) -> ArchJob:
        """`job`, on a chain sample of `ev`'s evaluation set: when its record is written, it gets
        the off-chain actions its chain tasks must have finalized (`_attach`)."""
        self._pending[job.key] = ev
        return job

    def _attach(self, job: ArchJob) -> None:
        """Before `job`'s record: wait for its evaluation, give it the expected actions and the
        architecture's large-set figure."""
        ev = self._pending.pop(job.key, None)
        if ev is None:
            return
        record = ev.result()
        digits = record["actions"][str(int(job.arch))]
        job.expected = decode_actions(digits)[[job.stream.eval_index(i) for i in range(len(job.stream))]]
        job.meta["eval"] = {"n": record["n"], "actions": digits,
                            "accuracy": float(correctness(digits, record["labels"]).mean())}

    def _main_session(self, ready: Ready, seed: int, first: bool) -> None:
        p, ms = self.profile, ready.models
        regret_round = max(4, -(-p.tasks // 3))  # `_job`'s rounds of M-regret on the chain (rounds=3)
        # The first `cost_seeds` seeds run one architecture at a time, so latency, throughput and
        # CPU time are each architecture's own (and score off chain first, not meanwhile); the
        # others run them together (quality and per-task gas, bytes and transactions do not
        # depend on it).
        isolated = seed in self.seeds[:p.cost_seeds]
        ev = self._evaluate(ready, seed, None, f"eval/s{seed}", list(Arch), regret_round, p.tasks,
                            background=not isolated)
        self._samples[seed] = ev.indices
        self._evaluations[seed] = ev
        evals = self.eval_stream(seed)
        stream = evals.subset(ev.indices)
        # M-regret learns online: its chain tasks are the evaluation set's first, in order, so the
        # chain's Hedge weights follow the off-chain replay's round by round.
        regret_stream = evals.head(p.tasks)
        self._weights(ready.board, ms.uni_best)
        jobs = []
        for arch in Arch:
            if self.checkpoint.done(key := f"main/s{seed}/a{arch}"):
                continue
            chain = regret_stream if arch == Arch.M_REGRET else stream
            jobs.append(self._checked(self._job(key, arch, chain, hedge=self._hedge(ms, seed) if arch == Arch.M_REGRET else None,
                                                meta={**self._arch_meta(ms, arch), "offchain": ms.meta["offchain"],
                                                      "seed": seed, "isolated": isolated}), ev))
        if isolated:
            for job in jobs:
                self._run_one(ready, job)
        else:
            self._run_together(ready, jobs)
        if first and self.opts.rerun_check:
            for a in RERUN_ARCHS:
                if not self.checkpoint.done(f"rerun/s{seed}/a{a}"):
                    self._run_one(ready, self._job(f"rerun/s{seed}/a{a}", a, stream, meta={"seed": seed}))
        if first and p.paced:
            for a in Arch:
                if not self.checkpoint.done(f"paced/s{seed}/a{a}"):
                    self._run_one(ready, self._job(f"paced/s{seed}/a{a}", a, stream.head(p.paced), window=1,
                                                   hedge=self._hedge(ms, seed) if a == Arch.M_REGRET else None,
                                                   rounds=p.paced, meta={"seed": seed}))
        if first and self.opts.sweeps:
            self._n_sweep(ready, seed, stream)
        if self.opts.sweeps and seed in self.seeds[:p.robust_seeds]:
            self._robustness(ready, seed)

    def _transport_session(self, ready: Ready, seed: int, transport: str) -> None:
        """The first `transport_tasks` of the main table's chain tasks again, one architecture at a
        time as on the cost seed, on node processes running `transport`: the same payloads, hence
        the same decisions, at the transport's own gas, bytes, transactions and latency. M-regret
        starts from the validation weights and learns in the main unit's rounds, as it did there."""
        p, ms = self.profile, ready.models
        n = min(p.transport_tasks, p.tasks)
        ev = self._evaluations.get(seed) or Evaluation(self._sample(seed), _done(self.checkpoint.get(f"eval/s{seed}")))
        evals = self.eval_stream(seed)
        self._weights(ready.board, ms.uni_best)
        for arch in transport_archs(transport):
            key = f"transport/{transport}/s{seed}/a{arch}"
            if self.checkpoint.done(key):
                continue
            regret = arch == Arch.M_REGRET
            stream = (evals.head(p.tasks) if regret else evals.subset(ev.indices)).head(n)
            hedge = RegretWeights(ms.meta["hedge"]["eta"], list(ms.meta["hedge"]["log_w"])) if regret else None
            job = self._job(key, arch, stream, hedge=hedge,
                            meta={"seed": seed, "transport": transport, "isolated": True,
                                  **({"report_fallback_s": REPORT_FALLBACK_S} if transport == "report" else
                                     {"batch_wait_s": BATCH_WAIT_S} if transport == "batch" else {})})
            if regret:
                job.round_size = max(4, -(-p.tasks // 3))  # the main unit's rounds (`_main_session`)
            self._run_one(ready, self._checked(job, ev))

    def _n_sweep(self, ready: Ready, seed: int, stream) -> None:
        p, ms, nodes = self.profile, ready.models, ready.nodes
        todo = [(i, n) for i, n in enumerate(p.agents) if not self.checkpoint.done(f"n/{n}/s{seed}")]
        if not todo:
            return
        extra = replica_specs(p) if any(n > 4 for _, n in todo) else []
        if extra:
            self.ui.status(f"n sweep: starting {len(extra)} replica agents")
            nodes.add(ready.board, extra)
        try:
            for i, n in todo:
                roles = [ROLE_CYCLE[j % len(ROLE_CYCLE)].label for j in range(n)]
                names = [r for r in roles if Role.parse(r) in AGENT_ROLES]
                meta = {"agents": n, "roles": roles, "seed": seed,
                        "model_bytes": ms.model_bytes(names) + _minilm() * roles.count("sentiment")}
                self._run_one(ready, self._job(f"n/{n}/s{seed}", n_sweep_arch(i), stream.head(p.n_tasks),
                                               quorum_=n, meta=meta))
        finally:
            if extra:
                nodes.remove([s.name for s in extra])

    def _scenario_jobs(self, ms, seed: int, scenario: str, stream, degraded: bool = False) -> list[ArchJob]:
        p = self.profile
        out = []
        for arch in Arch:
            key = f"robust/{scenario}/s{seed}/a{arch}"
            if not self.checkpoint.done(key):
                out.append(self._job(key, arch, stream, hedge=self._hedge(ms, seed) if arch == Arch.M_REGRET else None,
                                     rounds=1, deadline_s=p.degraded_deadline_s if degraded else None,
                                     degraded=degraded, meta={"seed": seed, "scenario": scenario,
                                                              "mismatch": degraded and arch == Arch.E_D}))
        return out

    def _degraded_setup(self, ready: Ready, seed: int) -> Ready:
        """In the main thread: the owner's weights (M-regret's as the clean run left them); then the
        session goes on in a thread of its own, submitting from a key of its own."""
        ms = ready.models
        self._weights(ready.board, ms.uni_best)
        ready.board.set_weights(Arch.M_REGRET, {**self._hedge(ms, seed).weights_bps(), Role.FUSION: 0})
        return Ready(ms, ready.board.for_thread(), ready.nodes)

    def _robustness(self, ready: Ready, seed: int) -> None:
        """Noise on one modality at a time (the honest nodes of the main session)."""
        p = self.profile
        if not self.synthetic:
            return
        n = min(p.robust_tasks, p.tasks)
        jobs = []
        for m in AGENT_ROLES:
            # The chain sample's first tasks with one modality noisier: the same tasks, labels and
            # latent state as the clean evaluation set (noise changes observations only).
            noisy = self.stream(seed, p.eval_tasks, noise=task_streams.noise_on(m.label, p.noise)).subset(
                self._sample(seed)[:n])
            jobs += self._scenario_jobs(ready.models, seed, f"noise-{m.label}", noisy)
        self._run_together(ready, jobs)

    def _scenario_session(self, ready: Ready, seed: int, scenario: str) -> None:
        """Byzantine, or offline + model mismatch: the session's node processes were started in
        that mode (see `byzantine_specs`, `degraded_specs`), on the seed's main models."""
        p, ms = self.profile, ready.models
        clean = self.eval_stream(seed).subset(self._sample(seed))
        n = min(p.robust_tasks, p.tasks)
        degraded = scenario == "offline"
        if not degraded:
            self._weights(ready.board, ms.uni_best)
        jobs = self._scenario_jobs(ms, seed, scenario, clean.head(n), degraded=degraded)
        self._run_together(ready, jobs, cap=not degraded, timeout_s=UNIT_TIMEOUT_S + p.degraded_deadline_s)
        probe_key = f"probe/mismatch/s{seed}"
        if degraded and not self.checkpoint.done(probe_key):
            self._add(self._probe(ready, seed, clean))

    def _probe(self, ready: Ready, seed: int, stream) -> dict[str, Any]:
        """Show the chain refusing a vector under a model id other than the agent's registered one:
        the wrong-model node's own refused publications (from its API), and one mined reverted
        transaction from a registered probe agent."""
        from agents.faults import wrong_model_id
        from node.experiment.chain import vector_for
        from node.protocol.enums import Encoding

        node_errors = [t.get("error") or "" for t in ready.nodes.failed_tasks(Role.MARKET.label)]
        key = self.chain.allocate_keys(1, ready.board)[0]
        market = ready.models.files()[Role.MARKET.label]
        model_id = bytes.fromhex(market["model_id"][2:])
        probe = ready.board.register_probe_agent(key, model_id, int(market["dim"]))
        task = ready.board.submit(stream.payloads[:1], Arch.E_D, quorum(Arch.E_D, self.profile.u_replicas),
                                  self.profile.deadline_s, indices=[0])[0]
        result = ready.board.probe_model_mismatch(key, task.task_id, wrong_model_id(model_id), int(Encoding.F32),
                                                  vector_for(int(market["dim"])))
        return {"key": f"probe/mismatch/s{seed}", "seed": seed,
                "probe": {**result, "agent": probe, "registered_model_id": "0x" + model_id.hex(),
                          "sent_model_id": "0x" + wrong_model_id(model_id).hex()},
                "node_rejections": len([e for e in node_errors if "ModelMismatch" in e]),
                "node_errors": node_errors[:5]}

    def _alpha_session(self, ready: Ready, alpha: float, seed: int) -> None:
        p, ms = self.profile, ready.models
        regret_round = max(4, -(-p.alpha_tasks // 2))  # rounds=2 below
        ev = self._evaluate(ready, seed, alpha, f"eval/alpha/{alpha:g}/s{seed}", list(ALPHA_ARCHS), regret_round,
                            p.alpha_tasks, u_replicas=1, background=True)
        evals = self.eval_stream(seed, alpha)
        stream = evals.subset(ev.indices)
        self._weights(ready.board, ms.uni_best)
        jobs = [self._checked(self._job(f"alpha/{alpha:g}/s{seed}/a{a}", a,
                                        evals.head(p.alpha_tasks) if a == Arch.M_REGRET else stream, rounds=2,
                                        hedge=RegretWeights(ms.meta["hedge"]["eta"], list(ms.meta["hedge"]["log_w"]))
                                        if a == Arch.M_REGRET else None,
                                        quorum_=quorum(a, 1),
                                        meta={"seed": seed, "alpha": alpha, "offchain": ms.meta["offchain"]}), ev)
                for a in ALPHA_ARCHS if not self.checkpoint.done(f"alpha/{alpha:g}/s{seed}/a{a}")]
        self._run_together(ready, jobs)

    def _ablation_plan(self, seed: int, alpha: float | None = None) -> Session:
        """The session of the ablation rows beside the main table (`alpha` None) or beside that
        alpha-sweep point, on its seed's model set of kind "ablation" (the host table's data)."""
        prefix = ablation_prefix(alpha)
        name = f"ablation-s{seed}" if alpha is None else f"ablation-a{alpha:g}-s{seed}"
        spec = self.spec(seed, kind="ablation") if alpha is None else self.spec(seed, alpha, self.profile.alpha_tasks,
                                                                                kind="ablation")
        return Session(name, [f"eval/{prefix}/s{seed}", *(f"{prefix}/s{seed}/a{a}" for a in ABLATION_ARCHS)], spec,
                       lambda ms: ablation_specs(), lambda ready: self._ablation_session(ready, seed, alpha))

    def _ablation_session(self, ready: Ready, seed: int, alpha: float | None = None) -> None:
        """The ablation rows on the main table's evaluation set, or with `alpha` on that alpha-sweep
        point's (same seed, same tasks, so every difference with a row of that table is paired task
        by task): E-through as E-d and U-concat as U, each on its own model set, through both tiers."""
        p, ms = self.profile, ready.models
        prefix = ablation_prefix(alpha)
        ev = self._evaluate(ready, seed, alpha, f"eval/{prefix}/s{seed}", list(ABLATION_ARCHS), None,
                            p.ablation_tasks if alpha is None else p.alpha_tasks, u_replicas=1, background=True)
        stream = self.eval_stream(seed, alpha).subset(ev.indices)
        jobs = []
        for arch in ABLATION_ARCHS:
            if self.checkpoint.done(key := f"{prefix}/s{seed}/a{arch}"):
                continue
            jobs.append(self._checked(self._job(key, arch, stream, quorum_=quorum(arch, 1), meta={
                **self._arch_meta(ms, arch), "seed": seed, "row": ABLATION_ROWS[arch],
                **({} if alpha is None else {"alpha": alpha}), "offchain": ms.meta["offchain"]}), ev))
        self._run_together(ready, jobs)

    def _alignments_dir(self, seed: int) -> Path:
        """The alignment session's fusion node's directory of maps (in the run's scratch folder)."""
        return self.out / ".work" / "alignments" / f"s{seed}"

    def _alignment_session(self, ready: Ready, seed: int) -> None:
        """The alignment curve on the main table's evaluation set (`node.experiment.alignment`): E-d
        with the seed's market agent swapped for one trained apart, unaligned and through Procrustes
        maps fitted on K anchors, scored off chain by the ONNX files. Then on chain, on the session's
        nodes (the apart market agent, the seed's sentiment and risk agents, the fusion node with an
        alignments directory): `alignment_chain_anchors` anchors published by both market spaces,
        the map fitted from those events and registered (the anchors' and the registration's gas),
        checked against the map fitted off chain on the same anchors; and `alignment_tasks` of the
        evaluation set through the chain, each finalized action checked against the off-chain
        replay through that map (the run's chain check)."""
        from node.experiment.alignment import (ANCHOR_SOURCE, alignment_curve, anchor_stream, by_k_record,
                                               register_on_chain, variants_record)
        from node.experiment.modelsets import dataset_config

        key, chain_key = f"alignment/s{seed}", f"alignment/chain/s{seed}"
        if self.checkpoint.done(key) and self.checkpoint.done(chain_key):
            return
        p, apart = self.profile, ready.models
        main = self.factory.get(self.spec(seed))
        evals = self.eval_stream(seed)
        cfg = dataset_config(p.alpha, p.tasks, p.train, None, self.opts.latent_dim)
        anchors = anchor_stream(cfg, seed, max((*p.alignment_ks, p.alignment_chain_anchors)))
        k_chain = p.alignment_chain_anchors

        def score() -> dict[str, Any]:
            self.ui.status(f"{key}: E-d with market agents trained apart, {len(evals)} tasks, "
                           f"{len(p.alignment_ks)} anchor counts x 4 (agent, map) variants off chain")
            t0 = time.perf_counter()
            out = alignment_curve(main.manifest, apart.manifest, evals, anchors,
                                  tuple(sorted({*p.alignment_ks, k_chain})), self._text_cache())
            out["offchain_s"] = time.perf_counter() - t0
            self._save_text_cache()
            return out

        curve = self._scorer().submit(score).result()
        usable = curve["anchor_indices"]
        vectors = curve["anchor_vectors"]
        chain = None
        if k_chain in curve["by_k"] and k_chain >= 2:
            self.ui.status(f"{key}: {k_chain} anchors published in both market spaces, the map registered")
            chain = register_on_chain(ready.board, self.chain.allocate_keys(1, ready.board)[0],
                                      ready.nodes.address(Role.MARKET.label), [anchors[i] for i in usable],
                                      curve["model_ids"], vectors["reference"], k_chain, p.deadline_s,
                                      self._alignments_dir(seed))
            chain["offchain_map_id"] = curve["by_k"][k_chain]["map_id"]
            chain["map_equal"] = chain["map_id"] == chain["offchain_map_id"]
        main_eval = self.checkpoint.get(f"eval/s{seed}")
        main_ed = None if main_eval is None else main_eval["actions"].get(str(int(Arch.E_D)))
        reference = encode_actions(curve["reference"])
        labels = encode_actions(curve["labels"])
        if not self.checkpoint.done(key):
            main_curve = by_k_record(curve["by_k"])
            self._add({
                "key": key, "seed": seed, "n": curve["n"], "labels": labels,
                "actions": {"reference": reference, "dropped": encode_actions(curve["dropped"]),
                            **main_curve["actions"]},
                "ks": main_curve["ks"], "by_k": main_curve["by_k"],
                "variants": variants_record(curve),
                "cka_before": curve["cka_before"], "residual_before": curve["residual_before"],
                "cka_tasks": curve["cka_tasks"], "model_ids": curve["model_ids"],
                "anchors": {"source": ANCHOR_SOURCE, "drawn": len(anchors), "usable": len(usable)},
                "reference_equals_main_ed": None if main_ed is None else main_ed == reference,
                "apart": {"seed": apart.meta.get("apart_seed"), "hp": apart.meta.get("hp"),
                          "tuning": (apart.meta.get("detail") or {}).get("tuning"), "model_set": apart.name,
                          "main_set": main.name},
                "chain": chain, "offchain_s": curve["offchain_s"], "stream": evals.description,
            })
        if chain is None or not chain["map_equal"] or self.checkpoint.done(chain_key):
            return  # a map other than the off-chain one: the check fails the run; nothing to replay
        # The chain sample, drawn from a block mined after the map was registered.
        head = ready.board.client.request("eth_getBlockByNumber", ["latest", False])
        drawn = task_streams.chain_sample(head["hash"], len(evals), min(p.alignment_tasks, len(evals))).tolist()
        digits = encode_actions(curve["by_k"][k_chain]["actions"])
        ev = Evaluation(drawn, _done({"n": curve["n"], "labels": labels, "actions": {str(int(Arch.E_D)): digits}}))
        job = self._job(chain_key, Arch.E_D, evals.subset(drawn), quorum_=quorum(Arch.E_D, 1),
                        meta={"seed": seed, "row": f"E-d aligned (K = {k_chain})", "anchors": k_chain,
                              "map_id": chain["map_id"], "chain_sample": {"block": int(head["number"], 16),
                                                                          "block_hash": head["hash"],
                                                                          "indices": drawn}})
        self._run_one(ready, self._checked(job, ev))

    def _ed_session(self, ready: Ready, d: int, dtype: str, seed: int) -> None:
        from node.experiment.modelsets import minilm_bytes

        p, ms = self.profile, ready.models
        stream = self.stream(seed, p.tasks).head(p.ed_tasks)
        names = [*(r.label for r in AGENT_ROLES), f"e-d{d}"]
        self._run_one(ready, self._job(f"ed/{d}-{dtype}/s{seed}", Arch.E_D, stream,
                                       meta={"seed": seed, "d": d, "dtype": dtype, "offchain": ms.meta["offchain"],
                                             "model_bytes": ms.model_bytes(names) + minilm_bytes(),
                                             "model_set": ms.name}))

    def _retrain_check(self) -> None:
        """Train the first seed's main set again from scratch in a scratch folder: the same seed must
        give byte-identical ONNX files, i.e. the same model ids (with the rerun units, which repeat
        on-chain decisions, this is the 'same seed, same numbers' check)."""
        spec = self.spec(self.seeds[0])
        self.ui.status("retraining the first seed's models from scratch (determinism check)")
        cached = self.factory.get(spec)
        scratch = self.out / ".retrain"
        try:
            fresh = self.factory.get(spec, root=str(scratch))
            same = {name: fresh.files().get(name, {}).get("model_id") == f["model_id"]
                    for name, f in cached.files().items()}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._add({"key": "rerun/models", "seed": self.seeds[0], "model_ids_equal": same,
                   "all_equal": all(same.values())})


@dataclass(frozen=True)
class Evaluation:
    """An evaluation set's chain sample (positions in it), and its off-chain record, maybe still
    being computed in the scoring thread."""

    indices: list[int]
    future: Future

    def result(self) -> dict[str, Any]:
        return self.future.result()


def _done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _tuning(meta: dict[str, Any], budget) -> dict[str, Any]:
    """What validation chose for the model set: each trained model's setting and epochs, M-rules'
    thresholds and M-regret's learning rate with how many were tried, and M-regret's start weights."""
    from models import fusion

    tried = max(1, int(budget.trials))
    hedge = meta.get("hedge") or {}
    return {"models": (meta.get("detail") or {}).get("tuning") or {},
            "m-rules": {"chosen": meta.get("rules"), "settings_tried": min(tried, len(fusion.RULE_GRID))},
            "m-regret": {"eta": hedge.get("eta"), "settings_tried": min(tried, len(fusion.HEDGE_ETAS)),
                         "start_weights_bps": hedge.get("weights_bps")}}


def _minilm() -> int:
    from node.experiment.modelsets import minilm_bytes

    return minilm_bytes()
