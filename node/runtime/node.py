"""The agent node process: settings -> key -> register -> watch -> dispatch -> publish.

`NodeRuntime` is the node minus process concerns (it can run in a test's thread against a fake
chain); `run_node` adds them: the HTTP API in a thread, SIGTERM/SIGINT handling, exit status.

One loop, one thread, on purpose: every transaction of the node's key goes out from here in nonce
order; the API thread only reads the store (and, as a task's aggregator, writes the signed decisions it
is sent: `POST /tasks/{id}/reports`). Per iteration:
1. the watcher stores new events (or rolls back after a reorg);
2. the outbox settles sent transactions (receipts, rebroadcasts, fee bumps);
3. tasks at quorum are finalized (the node whose decision reached quorum at once, the others
   only after their grace periods, one after another; see `node.runtime.closing`);
4. each task still to do is handled, oldest first, for at most `task_slice_s` before the loop
   reads the chain again (so a burst of tasks never holds back the finalizations): skip (closed,
   wrong architecture, past deadline), reject (payload), wait (its payload is being fetched on a
   worker thread, or fusion without its peers), or run the agent and publish;
5. the reward share of each finalized task the node contributed to is claimed, once (claimReward
   through the outbox; what settles a share for good is written to the store).
With `transport = "report"` (`node.runtime.reports`), an agent's decision-only publication is
signed and posted to the task's aggregator instead (step 4 then waits for it on chain, and
publishes it itself after `report_fallback_s` of chain time; a fusion agent fuses the signed
decisions its peers handed to the aggregator, read from it), and between steps 2 and 3 the node,
as the aggregator of some tasks, submits the signed decisions it holds in one submitReport each.
On SIGTERM the loop finishes the task in hand, waits a bounded time for its receipts, and exits.

Health is honest while the loop is blocked: `/health` reads how long the RPC has left a request
without an answer (`ChainPort.silent_for`, kept by the chain client), so a silent RPC turns the
node `degraded` once that wait passes the `rpc_silent_after_s` setting (1 s by default), long before
the request's timeout and retries run out.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agents.base import Agent, Decision, PeerOutput, TaskInput
from node.chain.deploy import Deployment
from node.chain.nodechain import BlockHeader
from node.protocol.enums import AGENT_ROLES, PROBABILITY_ARCHS, ZERO_MODEL_ID, Role
from node.protocol.errors import ChainError, ChorusError, ConfigError, ContractRevert, PayloadError, RpcUnavailable, safe_url
from node.protocol.payload import TaskPayload, fetch, verify
from node.runtime.alignments import AlignmentResolver
from node.runtime.batching import DecisionBatcher, Embedding
from node.runtime.closing import Closer, explain_revert
from node.runtime.fetcher import PayloadFetcher
from node.runtime.metrics import NodeMetrics
from node.runtime.outbox import Outbox, Settled, tx_body
from node.runtime.ports import ChainPort
from node.runtime.reports import ReportDesk
from node.runtime.sendlog import OPEN_SEND_STATES, PUBLICATION_KINDS, SendKind, SendRecord, SendState
from node.runtime.settings import NodeSettings
from node.runtime.store import TODO_STATES, ChainState, HeldReport, Store, TaskRecord, TaskState
from node.runtime.watcher import ReorgRace, Watcher

log = logging.getLogger(__name__)

VERSION = "chorus-node/1"
_ALREADY_DONE = {"DuplicateDecision": SendKind.DECISION, "DuplicateEmbedding": SendKind.EMBEDDING}
_TOO_LATE = {"AlreadyFinalized", "PastDeadline"}
_TODO_LIMIT = 100_000
_FUSE_BEFORE_DEADLINE_S = 10  # fusion's last call: time to publish before `deadline_margin_s` closes in


class _Fetching:
    """The type of `_FETCHING`: a task whose payload is still on its way."""


_FETCHING = _Fetching()


@dataclass
class HealthState:
    started_at: float = field(default_factory=time.time)
    registered: bool = False
    head: int | None = None
    head_timestamp: int | None = None
    rpc_down_since: float | None = None
    last_error: str | None = None
    last_ok: float | None = None


class NodeRuntime:
    """The node's logic over a chain (`node.chain.nodechain.NodeChain` or a fake) and a store."""

    def __init__(self, settings: NodeSettings, chain: ChainPort, store: Store, agent: Agent, *,
                 deployment: Deployment, metrics: NodeMetrics | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.silent_after_s = settings.rpc_silent_after_s
        self.chain = chain
        self.store = store
        self.agent = agent
        self.deployment = deployment
        self.metrics = metrics or NodeMetrics(settings.role)
        self.clock = clock
        self.health_state = HealthState(started_at=clock())
        self.stopping = threading.Event()
        self.board = chain.address_of("TaskBoard")
        self.watcher = Watcher(chain, store, start_block=deployment.deploy_block, confirmations=settings.confirmations,
                               max_range=settings.max_block_range, reorg_depth=settings.reorg_depth,
                               metrics=self.metrics)
        self.outbox = Outbox(chain, store, self.metrics, bump_after_s=settings.bump_after_s,
                             may_resend=self._may_resend, clock=clock)
        self.closer = Closer(chain, store, self.outbox, self.metrics, settings, clock)
        self.reports = ReportDesk(enabled=settings.transport == "report", chain=chain, store=store,  # type: ignore[arg-type]
                                  outbox=self.outbox, address=chain.address, chain_id=deployment.chain_id,
                                  board=self.board, model_id=agent.identity.model_id if agent is not None else ZERO_MODEL_ID,
                                  start_block=deployment.deploy_block, fallback_s=settings.report_fallback_s,
                                  deadline_margin_s=settings.deadline_margin_s, max_range=settings.max_block_range,
                                  clock=clock)
        self.batcher = DecisionBatcher(enabled=settings.transport == "batch", wait_s=settings.batch_wait_s,
                                       max_items=settings.batch_max, clock=clock)
        self._payloads: dict[int, TaskPayload] = {}
        self.fetcher = PayloadFetcher(self._fetch_uri, workers=settings.payload_workers,
                                      per_origin=settings.payload_per_origin, deadline_s=settings.payload_deadline_s)
        use_alignments = getattr(agent, "use_alignments", None) if agent is not None else None
        if callable(use_alignments):  # the fusion agent: maps into its E-d head's spaces, checked here
            use_alignments(AlignmentResolver(lambda src, dst: chain.contracts.alignment(src, dst),  # type: ignore[attr-defined]
                                             settings.alignments_dir, retry_s=settings.alignment_retry_s))

    # -- identity and health (read by the API thread) ---------------------------------------------

    @property
    def address(self) -> str:
        return self.chain.address

    def info(self) -> dict[str, Any]:
        ident = self.agent.identity
        return dict(
            address=self.address, role=self.settings.role, endpoint=self.settings.endpoint_url,
            model_id="0x" + ident.model_id.hex(), model_name=ident.model_name, decider=ident.decider, model_backend=ident.backend,
            embedding_dim=ident.dim, embedding_encoding=ident.encoding.label,
            chain_id=self.deployment.chain_id, contracts=dict(self.deployment.contracts),
            last_processed_block=self.store.cursor(), confirmations=self.settings.confirmations, version=VERSION,
        )

    def health(self) -> dict[str, Any]:
        """The node's health; `degraded` as soon as the RPC fails a round or leaves a request
        unanswered for more than `silent_after_s` (the loop may still be blocked in it)."""
        h = self.health_state
        down_since, last_error = h.rpc_down_since, h.last_error
        silent = self.chain.silent_for()
        if silent > self.silent_after_s and down_since is None:
            down_since = self.clock() - silent
            last_error = f"RpcUnavailable: no answer from the RPC for {silent:.1f}s"
        reachable = down_since is None and h.last_ok is not None
        status = "ok" if reachable and h.registered else ("degraded" if down_since is not None else "starting")
        return dict(status=status, chain_reachable=reachable, registered=h.registered, head_block=h.head,
                    last_processed_block=self.store.cursor(), rpc_down_since=down_since,
                    last_error=last_error, uptime_s=round(self.clock() - h.started_at, 3))

    def accept_report(self, task_id: int, decision: Any) -> dict[str, Any]:
        """`POST /tasks/{id}/reports` (the API thread): hold another agent's signed decision for a task
        this node aggregates; `node.runtime.reports.ReportRefused` says why not."""
        return self.reports.accept(task_id, decision)

    def held_reports(self, task_id: int) -> dict[str, Any]:
        """`GET /tasks/{id}/reports` (the API thread): the signed decisions held for a task, which a
        fusion agent reads to fuse under reports; `ReportRefused` says why not."""
        return self.reports.held(task_id)

    # -- start-up ---------------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Tie the store to this deployment, register on chain if needed, settle old sends."""
        # Anvil makes the same addresses on every fresh chain: the deploy block's hash (which
        # covers its timestamp) tells two devnets apart.
        deploy_header = self.chain.header(self.deployment.deploy_block)
        namespace = {"chain_id": self.deployment.chain_id, "task_board": self.board.lower(),
                     "deploy_block": self.deployment.deploy_block,
                     "deploy_block_hash": deploy_header.hash if deploy_header else None,
                     "address": self.address.lower()}
        if self.store.bind(namespace):
            log.warning("state file %s belonged to another deployment or key: started afresh", self.store.path)
        self.ensure_registered()
        # Batches of a previous run still open: their tasks are not batched again while they may be mined.
        self.batcher.restore((b.id, tx_body(b.attempts[-1].raw)[1]) for b in self.store.open_sends()
                             if b.kind == SendKind.BATCH and b.attempts)
        settled = self.outbox.poll()  # what happened to the transactions of a previous run
        self._on_settled(settled)
        if settled:
            log.info("recovered %d transactions from the send log", len(settled))

    def ensure_registered(self) -> None:
        ident = self.agent.identity
        contracts = self.chain.contracts
        info = self.chain.agent_info()
        if info.active:
            if info.role != int(ident.role):
                raise ConfigError(f"{self.address} is registered as {Role(info.role).label}, "
                                  f"not {ident.role.label}: use another key")
            if bytes(info.model_id) != ident.model_id or info.dim != ident.dim:
                raise ConfigError(f"{self.address} is registered with model 0x{bytes(info.model_id).hex()[:16]} "
                                  f"dim {info.dim}, this node runs 0x{ident.model_id.hex()[:16]} dim {ident.dim}: "
                                  f"deregister it or use another key")
            if self.store.get_meta("endpoint") != self.settings.endpoint_url:
                contracts.update_endpoint(self.settings.endpoint_url)
                self.store.set_meta("endpoint", self.settings.endpoint_url)
                log.info("endpoint updated on chain to %s", self.settings.endpoint_url)
            log.info("already registered as %s agent %s", ident.role.label, self.address)
            self.health_state.registered = True
            return
        record = contracts.agent(self.address)
        if record.stake > 0:
            raise ConfigError(f"{self.address} deregistered (stake unlocks at {record.unlock_at}); "
                              "withdraw before registering again, or use another key")
        if ident.model_id != ZERO_MODEL_ID and not contracts.is_model_registered(ident.model_id):
            try:
                contracts.register_model(ident.model_id, ident.dim, int(ident.encoding), ident.model_name[:64])
                log.info("registered model %s (0x%s, dim %d)", ident.model_name, ident.model_id.hex()[:16], ident.dim)
            except ContractRevert as exc:
                if exc.error_name != "ModelAlreadyRegistered":  # another node of the same model was first
                    raise
        stake = self.settings.stake_wei if self.settings.stake_wei is not None else contracts.min_stake()
        try:
            result = contracts.register_agent(int(ident.role), int(ident.modality), self.settings.endpoint_url,
                                              ident.model_id, ident.dim, stake)
            log.info("registered as %s agent %s (stake %d wei, gas %d)", ident.role.label, self.address,
                     stake, result.gas_used)
        except ContractRevert as exc:
            if exc.error_name != "AlreadyRegistered":
                raise
        self.store.set_meta("endpoint", self.settings.endpoint_url)
        self.health_state.registered = True

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Loop until `stop` (or `self.stopping`) is set; RPC outages are waited out with backoff."""
        stop = stop or self.stopping
        backoff = self.settings.poll_interval_s
        while not stop.is_set() and not self.stopping.is_set():
            try:
                busy = self.step()
            except (RpcUnavailable, ReorgRace, ChainError) as exc:
                self.rpc_failed(exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max_s)
                continue
            backoff = self.settings.poll_interval_s
            if not busy:
                stop.wait(self.settings.poll_interval_s)

    def scrub(self, text: str) -> str:
        """`text` without the full RPC URL (hosted providers put API keys in its path)."""
        url = self.settings.rpc_url
        return text.replace(url, safe_url(url)) if url else text

    def rpc_failed(self, exc: Exception, backoff: float) -> None:
        """Record a failed round with the chain (health, metrics, one warning per outage); the
        caller waits `backoff` seconds before the next try."""
        h = self.health_state
        h.last_error = self.scrub(f"{type(exc).__name__}: {exc}")[:300]
        if isinstance(exc, ReorgRace):
            log.info("chain moved while reading a batch (%s); retrying", exc)
            return
        self.metrics.rpc_errors.labels(operation="poll").inc()
        if h.rpc_down_since is None:
            # The outage began with the first request left unanswered, not when the client gave up.
            h.rpc_down_since = self.clock() - self.chain.silent_for()
            log.warning("RPC %s unreachable or failing (%s); retrying with backoff up to %.0fs",
                        safe_url(self.settings.rpc_url), self.scrub(str(exc)), self.settings.backoff_max_s)
        else:
            log.info("RPC still failing after %.0fs; next try in %.1fs", self.clock() - h.rpc_down_since, backoff)

    def rpc_ok(self, head: BlockHeader) -> None:
        """Record a round that reached the chain, whose head is `head` (ends an outage, also one
        that was over before any request gave up)."""
        h = self.health_state
        silence = self.chain.take_silence()
        if h.rpc_down_since is not None or silence > self.silent_after_s:
            outage = max(silence, 0.0 if h.rpc_down_since is None else self.clock() - h.rpc_down_since)
            log.warning("RPC %s reachable again after %.1fs; resuming from block %s",
                        safe_url(self.settings.rpc_url), outage, self.store.cursor())
            h.rpc_down_since = None
        h.head, h.head_timestamp, h.last_ok = head.number, head.timestamp, self.clock()

    def step(self) -> bool:
        """One iteration; True when it did something (the caller polls again without sleeping)."""
        result = self.watcher.poll()
        self.rpc_ok(result.head)
        if result.rollback is not None:
            for task_id in result.rollback.tasks_rechecked:
                self._forget_payload(task_id)
                self.reports.forget(task_id)
                self.batcher.forget(task_id)
            if self.reports.enabled:
                self.reports.directory.rollback(result.rollback.to_block)
            self.chain.resync_nonce()
        if result.new_tasks:
            self.metrics.tasks_seen.inc(len(result.new_tasks))
            for task_id in result.new_tasks:
                self._forget_payload(task_id)
                self.reports.forget(task_id)
                self.batcher.forget(task_id)
        finalized = [e for e in result.events if e.name == "TaskFinalized"]
        if finalized:
            self.metrics.tasks_finalized.inc(len(finalized))
        self._on_settled(self.outbox.poll())
        reported = False
        if self.reports.enabled:
            self.reports.directory.catch_up(self.store.cursor())
            if not self.stopping.is_set():
                reported = self.reports.aggregate(result.head)
        if self.settings.finalize and not self.stopping.is_set():
            self.closer.finalize_ready(result.head)
        worked, more = False, False
        slice_ends = self.clock() + self.settings.task_slice_s
        # Every task to do, not the oldest hundred: tasks waiting on a slow payload server or on
        # their peers must not keep newer ones from being reached.
        for task in self.store.todo_tasks(limit=_TODO_LIMIT):
            if self.stopping.is_set():
                break  # the task in hand is done; the rest waits for the next run
            if worked and self.clock() > slice_ends:
                more = True  # read the chain again (finalize what reached quorum), then go on
                break
            worked |= self._handle_safely(task, result.head)
        if self.batcher.enabled and not self.stopping.is_set():
            worked |= self._flush_batch()
        if self.settings.claim_rewards and not self.stopping.is_set():
            self.closer.claim_ready()
        return worked or more or reported or bool(result.events) or not result.caught_up

    # -- tasks ------------------------------------------------------------------------------------

    def _handle_safely(self, task: TaskRecord, head: BlockHeader) -> bool:
        try:
            return self._handle(task, head)
        except (RpcUnavailable, ChainError) as exc:
            if isinstance(exc, ContractRevert):
                self._on_revert(task.id, SendKind.DECISION, exc)
                return True
            raise  # the loop backs off; the task stays to do
        except ChorusError as exc:
            self._fail(task.id, type(exc).__name__, str(exc))
            return True
        except Exception as exc:  # a bug in an agent must not take the node down
            log.exception("task %d: unexpected error", task.id)
            self._fail(task.id, "internal", f"{type(exc).__name__}: {exc}")
            return True

    def _handle(self, task: TaskRecord, head: BlockHeader) -> bool:
        s = self.settings
        own = self.store.own_report(task.id) if self.reports.enabled else None
        if own is not None and (self.address.lower() in self.reports.decided_on_chain(task.id)):
            # Its signed decision is on chain (a report, or its own fallback publication).
            self._update_publication_status(task.id, decision_on_chain=True)
            return True
        if self.batcher.covers(task.id):
            return False  # held for the next batch, or in one not settled yet
        if task.chain_status != ChainState.OPEN:
            self._set(task.id, TaskState.SKIPPED, error=f"task is {task.chain_status} on chain")
            return False
        if task.arch not in s.archs:
            self._set(task.id, TaskState.SKIPPED, error=f"architecture {task.arch} is not served by this node")
            return False
        if task.deadline is not None and head.timestamp > task.deadline - s.deadline_margin_s:
            self._set(task.id, TaskState.SKIPPED, error=f"too close to or past its deadline ({task.deadline})")
            return False
        if own is not None:
            return self._await_report(task, own, head)
        payload = self._payload(task)
        if payload is _FETCHING:
            return False  # on a worker; the loop goes on with the other tasks
        if payload is None:
            return True
        peers = self._peers(task)
        if self.agent.waits_for_peers and not self._peers_ready(task, peers, head):
            if task.status != TaskState.WAITING:
                self._set(task.id, TaskState.WAITING, started_at=self.clock())
            return False
        if self.agent.waits_for_peers and self.reports.enabled:
            on_chain = self.reports.decided_on_chain(task.id)
            signed = [p for p in peers if p.action is not None and p.agent.lower() not in on_chain]
            log.info("task %d: fusing %d peer decisions, %d of them signed and read from the aggregator", task.id,
                     sum(p.action is not None for p in peers), len(signed))
        output = self.agent.run(TaskInput(task.id, task.arch, payload, tuple(peers)))
        if output.probs is not None and task.arch in PROBABILITY_ARCHS:
            # It publishes its probabilities: its decision is the one TaskBoard reads from them.
            output = replace(output, decision=Decision.from_bps(output.probs))
        else:
            output = replace(output, probs=None)
        wanted = [SendKind.DECISION]
        if output.embedding is not None and task.arch in s.embedding_archs and self.agent.identity.publishes_embeddings:
            wanted.insert(0, SendKind.EMBEDDING)
        self.store.update_task(task.id, action=int(output.decision.action), confidence=output.decision.confidence,
                               embedding_bytes=len(output.embedding.to_bytes()) if SendKind.EMBEDDING in wanted else None,
                               started_at=task.started_at or self.clock(), note=output.note or None,
                               commitment="0x" + output.commitment.hex() if output.commitment else None)
        if (self.reports.enabled and wanted == [SendKind.DECISION] and output.probs is None
                and self.store.live_send(task.id, SendKind.DECISION) is None and not self.store.sends(task_id=task.id)):
            # Transport report: signed and handed to the aggregator; published here only on fallback
            # (a fusion agent's too: it fused its peers' signed decisions, which go in the same report).
            own = self.reports.hand_in(task, int(output.decision.action), output.decision.confidence)
            self._set(task.id, TaskState.WAITING)
            log.info("task %d: %s %s (confidence %d) signed for the aggregator (%s)", task.id,
                     "holding" if own.post_status == "held" else "posting", output.decision.action.label,
                     output.decision.confidence, own.post_status)
            return True
        if (self.batcher.enabled and output.probs is None and task.id not in self.batcher.single
                and task.status != TaskState.RECHECK and not self.store.sends(task_id=task.id)):
            # Transport batch: held for the next publishDecisions (and publishEmbeddings), with the
            # other tasks' publications.
            emb = output.embedding if SendKind.EMBEDDING in wanted else None
            self.batcher.hold(task.id, int(output.decision.action), output.decision.confidence,
                              None if emb is None else Embedding(emb.model_id, int(emb.encoding), emb.to_bytes()))
            self._set(task.id, TaskState.WAITING)
            return True
        todo = [k for k in wanted if self.store.live_send(task.id, k) is None]
        on_chain: set[str] = set()
        if todo and (task.status == TaskState.RECHECK or self.store.sends(task_id=task.id)):
            # An earlier send vanished (reorg, dropped) or a previous life of this node was cut
            # short: ask the chain what stands. For a first send the gas estimate is the check
            # (a duplicate reverts there, and is never sent).
            published = self.chain.published(task.id)
            on_chain = {k for k in todo if getattr(published, k)}
            todo = [k for k in todo if k not in on_chain]
        for kind in todo:
            if kind == SendKind.EMBEDDING:
                emb = output.embedding
                data = self.chain.calldata("TaskBoard", "publishEmbedding", task.id, emb.model_id,
                                           int(emb.encoding), emb.to_bytes())
            elif output.probs is not None:
                data = self.chain.calldata("TaskBoard", "publishProbabilities", task.id, list(output.probs))
            else:
                data = self.chain.calldata("TaskBoard", "publishDecision", task.id, int(output.decision.action),
                                           output.decision.confidence)
            try:
                self.outbox.send(kind=kind, to=self.board, data=data, task_id=task.id)
            except ContractRevert as exc:
                if exc.error_name in _ALREADY_DONE:  # on chain already: go on with the next kind
                    on_chain.add(_ALREADY_DONE[exc.error_name])
                    continue
                self._on_revert(task.id, kind, exc)
                return True
        self._update_publication_status(task.id, decision_on_chain=SendKind.DECISION in on_chain)
        log.info("task %d: %s %s (confidence %d)%s", task.id, "published" if todo else "already published",
                 output.decision.action.label, output.decision.confidence,
                 f" + embedding ({len(output.embedding.to_bytes())} bytes)" if SendKind.EMBEDDING in todo else "")
        return True

    def _await_report(self, task: TaskRecord, own: HeldReport, head: BlockHeader) -> bool:
        """A decision signed for the aggregator and not on chain yet: wait for the report, or publish it
        with publishDecision once `report_fallback_s` of chain time has passed (or at once when the
        aggregator refused it)."""
        if self.store.live_send(task.id, SendKind.DECISION) is not None:
            return False  # the fallback is sent; its receipt settles the task
        reason = self.reports.fallback_due(task, own, head)
        if reason is None:
            self.reports.repost(own)  # after a restart, a decision never posted
            if task.status != TaskState.WAITING:
                self._set(task.id, TaskState.WAITING)
            return False
        log.info("task %d: publishing the decision itself: %s", task.id, reason)
        data = self.chain.calldata("TaskBoard", "publishDecision", task.id, own.decision.action,
                                   own.decision.confidence)
        try:
            self.outbox.send(kind=SendKind.DECISION, to=self.board, data=data, task_id=task.id)
        except ContractRevert as exc:
            self._on_revert(task.id, SendKind.DECISION, exc)
            return True
        self._update_publication_status(task.id)
        return True

    def _payload(self, task: TaskRecord) -> TaskPayload | None | _Fetching:
        """The task's verified payload; None after marking the task rejected; `_FETCHING` while its
        URI is being fetched on a worker thread (ask again on a later pass)."""
        cached = self._payloads.get(task.id)
        if cached is not None:
            return cached
        try:
            expected = bytes.fromhex((task.payload_hash or "").removeprefix("0x"))
            if task.uri:
                got = self.fetcher.poll(task.id, task.uri)
                if got is None:
                    return _FETCHING
                if isinstance(got, PayloadError):
                    raise got
                raw = got
            else:
                raw = self.store.inline_payload(task.id) or b""
            payload = verify(raw, expected)
        except (PayloadError, ValueError) as exc:
            message = str(exc) if isinstance(exc, PayloadError) else f"bad payload hash: {exc}"
            log.warning("task %d rejected: %s", task.id, message)
            self.metrics.tasks_failed.labels(reason="payload").inc()
            self._set(task.id, TaskState.REJECTED, error=message[:500])
            return None
        self._payloads[task.id] = payload
        return payload

    def _fetch_uri(self, uri: str) -> bytes:
        """One payload fetch, on a worker thread of `self.fetcher` (it touches neither store nor chain)."""
        s = self.settings
        return fetch(uri, allow_hosts=s.payload_allowed_hosts, allow_file=s.payload_allow_file,
                     timeout_s=s.payload_timeout_s, deadline_s=s.payload_deadline_s)

    def _forget_payload(self, task_id: int) -> None:
        self._payloads.pop(task_id, None)
        self.fetcher.forget(task_id)

    def _peers(self, task: TaskRecord) -> list[PeerOutput]:
        """Other agents' outputs for the task (one entry per agent, decision and embedding merged): what
        the chain holds and, for an agent that fuses under reports, the checked signed decisions the
        task's aggregator holds (`ReportDesk.peer_decisions`)."""
        by_agent: dict[str, dict[str, Any]] = {}
        me = self.address.lower()
        for ev in self.store.task_events(task.id):
            if ev.agent is None or ev.agent.lower() == me:
                continue
            slot = by_agent.setdefault(ev.agent, {"agent": ev.agent})
            if ev.name == "DecisionPublished":
                slot.update(role=ev.role, action=ev.action, confidence=ev.confidence)
            elif ev.name == "ProbabilitiesPublished":
                slot.update(probs=ev.probs)
            elif ev.name == "EmbeddingPublished":
                slot.update(model_id=bytes.fromhex((ev.model_id or "").removeprefix("0x")), encoding=ev.encoding,
                            vector=ev.vector)
        if self.reports.enabled and self.agent.waits_for_peers:
            decided = {a.lower() for a, slot in by_agent.items() if "action" in slot}
            for signed, entry in self.reports.peer_decisions(task):
                if signed.agent.lower() not in decided:
                    slot = by_agent.setdefault(signed.agent, {"agent": signed.agent})
                    slot.update(role=entry.role, action=signed.action, confidence=signed.confidence)
        return [PeerOutput(**slot) for slot in by_agent.values()]

    def _peers_ready(self, task: TaskRecord, peers: list[PeerOutput], head: BlockHeader) -> bool:
        decided = sum(1 for p in peers if p.action is not None and p.role in AGENT_ROLES)
        # At most one decision per modality agent, and no more than the quorum leaves room for
        # besides fusion's own. A row filled from its TaskSubmitted event always has its quorum
        # (TaskBoard refuses 0); one written by hand has none: wait for every modality agent.
        agents = len(AGENT_ROLES)
        expected = agents if task.quorum is None else max(1, min(task.quorum - 1, agents))
        if decided >= expected:
            return True
        waited = self.clock() - (task.started_at or task.seen_at or self.clock())
        near_deadline = (task.deadline is not None
                         and head.timestamp >= task.deadline - self.settings.deadline_margin_s - _FUSE_BEFORE_DEADLINE_S)
        patience = self.settings.fusion_wait_s
        if near_deadline or (patience is not None and waited >= patience):
            log.info("task %d: deciding with %d of %d peer decisions (waited %.0fs)", task.id, decided, expected, waited)
            return True
        return False

    def _set(self, task_id: int, status: TaskState, **changes: Any) -> None:
        self.store.update_task(task_id, status=status, **changes)
        if status not in TODO_STATES:
            self._forget_payload(task_id)  # done with it: keep memory flat

    def _fail(self, task_id: int, reason: str, message: str) -> None:
        log.warning("task %d failed: %s", task_id, message)
        self.metrics.tasks_failed.labels(reason=reason[:40]).inc()
        self._set(task_id, TaskState.FAILED, error=message[:500])

    def _on_revert(self, task_id: int, kind: str, exc: ContractRevert) -> None:
        if exc.error_name in _ALREADY_DONE:
            log.info("task %d: %s already on chain", task_id, _ALREADY_DONE[exc.error_name])
            self._update_publication_status(task_id, decision_on_chain=exc.error_name == "DuplicateDecision")
        elif exc.error_name in _TOO_LATE:
            log.info("task %d: too late to publish (%s)", task_id, exc.error_name)
            self._set(task_id, TaskState.SKIPPED, error=str(exc)[:500])
        else:
            self._fail(task_id, exc.error_name, f"{kind} reverted: {exc}")

    def _update_publication_status(self, task_id: int, *, decision_on_chain: bool = False) -> None:
        """PUBLISHED once the decision (and whatever else was sent) is mined; PUBLISHING while a send
        is open. Without any decision send (a node killed between its embedding and its decision)
        the task goes back to work, so the decision is still sent."""
        sends = [s for s in self.store.sends(task_id=task_id)
                 if s.kind in PUBLICATION_KINDS and s.status != SendState.DROPPED]
        if not decision_on_chain and not any(s.kind == SendKind.DECISION for s in sends):
            task = self.store.get_task(task_id)
            if task is not None and task.status in (TaskState.PUBLISHING, TaskState.PUBLISHED):
                self._set(task_id, TaskState.NEW)
            return
        if any(s.status in OPEN_SEND_STATES for s in sends):
            self._set(task_id, TaskState.PUBLISHING)
            return
        if any(s.status == SendState.REVERTED for s in sends):
            return  # handled by _on_settled
        task = self.store.get_task(task_id)
        if task is None or task.status == TaskState.PUBLISHED:
            return
        now = self.clock()
        self._set(task_id, TaskState.PUBLISHED, published_at=now)
        if sends or decision_on_chain:
            self.metrics.tasks_processed.inc()
            if task.seen_at is not None:
                self.metrics.publish_latency.observe(max(0.0, now - task.seen_at))

    def _on_settled(self, settled: list[Settled]) -> None:
        for item in settled:
            send = item.send
            if send.kind == SendKind.BATCH:
                self._on_batch_settled(item)
                continue
            if send.task_id is None:
                continue
            if send.kind in (SendKind.CLAIM, SendKind.FINALIZE):
                self.closer.on_settled(item)
            elif send.kind == SendKind.REPORT:
                self.reports.on_settled(item, lambda it: explain_revert(self.chain, it))
            elif send.status == SendState.MINED:
                self._update_publication_status(send.task_id)
            elif send.status == SendState.REVERTED:
                self._on_revert(send.task_id, send.kind, explain_revert(self.chain, item))
            elif send.status == SendState.DROPPED:
                task = self.store.get_task(send.task_id)
                if task is not None and task.chain_status == ChainState.OPEN and \
                        task.status in (TaskState.PUBLISHING, TaskState.PUBLISHED):
                    self._set(send.task_id, TaskState.RECHECK, error="publication dropped; will check the chain again")

    def _flush_batch(self) -> bool:
        """Send the held publications once the batch is due: the embeddings in one publishEmbeddings
        per (model id, encoding), then the decisions in one publishDecisions. True when it did."""
        if not self.batcher.due():
            return False
        batch = self.batcher.take()
        tasks = [h.task_id for h in batch]
        for model_id, encoding, held in self.batcher.embedding_groups(batch):
            ids = [h.task_id for h in held]
            data = self.chain.calldata("TaskBoard", "publishEmbeddings", ids, model_id, encoding,
                                       b"".join(h.embedding.vector for h in held if h.embedding is not None))
            if not self._send_batch(data, ids, "embeddings"):
                self.batcher.fail(tasks)  # their decisions wait: all of the batch goes one by one
                self._batch_back([t for t in tasks if not self.batcher.covers(t)])
                return True
        data = self.chain.calldata("TaskBoard", "publishDecisions", self.batcher.items(batch))
        if not self._send_batch(data, tasks, "decisions"):
            self.batcher.fail(tasks)
            self._batch_back([t for t in tasks if not self.batcher.covers(t)])
        return True

    def _send_batch(self, data: bytes, tasks: list[int], what: str) -> bool:
        try:
            send = self.outbox.send(kind=SendKind.BATCH, to=self.board, data=data)
        except ContractRevert as exc:
            # One task the chain refuses (closed meanwhile, a publication there already): each goes
            # its own way, and its own transaction says what became of it.
            log.info("batch of %d %s refused at estimation (%s); publishing them one by one", len(tasks), what,
                     exc.error_name)
            return False
        self.batcher.sent(send.id, tasks)
        log.info("tasks %s: %d %s in one transaction (%s)", ",".join(map(str, tasks)), len(tasks), what, send.tx_hash)
        return True

    def _on_batch_settled(self, item: Settled) -> None:
        send = item.send
        if send.status in OPEN_SEND_STATES:
            return
        mined = send.status == SendState.MINED
        published, refused = self.batcher.settled(send.id, mined)
        for task_id in published:  # all or nothing: every publication of its batches is on chain
            self._update_publication_status(task_id, decision_on_chain=True)
        if not mined:
            reason = send.status.value
            if send.status == SendState.REVERTED:
                try:
                    reason = explain_revert(self.chain, item).error_name
                except ChainError:
                    reason = "Reverted"
            log.info("a batch %s (%s); its tasks publish one by one", send.status.value, reason)
        if refused:
            self._batch_back(refused)

    def _batch_back(self, tasks: list[int]) -> None:
        """Tasks of a batch the chain did not take: back to work, each published on its own."""
        self.batcher.refuse(tasks)
        for task_id in tasks:
            task = self.store.get_task(task_id)
            if task is not None and task.status == TaskState.WAITING:
                self._set(task_id, TaskState.NEW)

    def _may_resend(self, send: SendRecord) -> bool:
        """A vanished publication is rebroadcast only while its task is the one it was made for."""
        if send.task_id is None:
            return True
        task = self.store.get_task(send.task_id)
        if send.kind == SendKind.CLAIM:  # a claim stays good while its task is finalized
            return task is not None and task.chain_status == ChainState.FINALIZED
        return task is not None and task.status != TaskState.RECHECK and task.chain_status == ChainState.OPEN


# -- the process --------------------------------------------------------------------------------------


def load_deployment(settings: NodeSettings) -> Deployment:
    """The deployment record the settings point to (`.chorus/devnet.json` by default)."""
    path = settings.resolved_deployment_file()
    if not path.is_file():
        raise ConfigError(f"no deployment file at {path}: run `chorus devnet up` or set CHORUS_DEPLOYMENT_FILE")
    return Deployment.load(path)


def effective_settings(settings: NodeSettings, deployment: Deployment) -> NodeSettings:
    """Take the RPC URL and chain id from the deployment where the settings leave them unset."""
    changes: dict[str, Any] = {}
    if "rpc_url" not in settings.model_fields_set and deployment.rpc_url:
        changes["rpc_url"] = deployment.rpc_url
    if settings.chain_id is None:
        changes["chain_id"] = deployment.chain_id
    return settings.model_copy(update=changes) if changes else settings


def build_runtime(settings: NodeSettings, agent: Agent | None = None) -> NodeRuntime:
    """Everything but the API server and signals: deployment, chain, key, store, agent (built from
    the settings' role unless given, e.g. the coordinator's, which its HTTP service shares)."""
    from agents.factory import build_agent_from
    from node.chain.nodechain import connect_node_chain

    deployment = load_deployment(settings)
    settings = effective_settings(settings, deployment)
    chain = connect_node_chain(settings, deployment)
    if agent is None:
        t0 = time.perf_counter()
        agent = build_agent_from(settings.agent_config())
        log.info("%s loaded in %.2fs", agent.describe(), time.perf_counter() - t0)
    store = Store(settings.resolved_db_path())
    runtime = NodeRuntime(settings, chain, store, agent, deployment=deployment)
    log.info("node %s (%s) on chain %d via %s, state %s", runtime.address, settings.role, deployment.chain_id,
             safe_url(settings.rpc_url), store.path)
    return runtime


class ApiServer:
    """uvicorn serving the node's API from a background thread."""

    def __init__(self, runtime: NodeRuntime, host: str, port: int, routers: Sequence[Any] = ()) -> None:
        import uvicorn

        from node.runtime.api import create_app

        config = uvicorn.Config(create_app(runtime, extra_routers=routers), host=host, port=port,
                                log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"the HTTP API could not start on {self.server.config.host}:{self.server.config.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def run_node(settings: NodeSettings, *, runtime: NodeRuntime | None = None, routers: Sequence[Any] = ()) -> int:
    """The `chorus node run` process (also `chorus coordinator run`, which passes its runtime and its
    extra API routes). Returns the exit status."""
    runtime = runtime or build_runtime(settings)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("%s received: finishing the task in hand, then exiting", signal.Signals(signum).name)
        stop.set()
        runtime.stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    api = ApiServer(runtime, settings.host, settings.port, routers)
    api.start()
    log.info("API on http://%s:%d (docs at /docs)", settings.host, settings.port)
    try:
        while not stop.is_set():
            try:
                runtime.bootstrap()
                break
            except (RpcUnavailable, ChainError) as exc:
                runtime.rpc_failed(exc, settings.backoff_max_s)
                stop.wait(min(settings.backoff_max_s, 2.0))
        runtime.run(stop)
        if not runtime.outbox.drain(settings.shutdown_grace_s):
            log.warning("exiting with %d transactions unconfirmed; the next start checks them",
                        len(runtime.store.open_sends()))
    finally:
        api.stop()
        runtime.fetcher.close()
        runtime.reports.close()
        runtime.store.close()
    log.info("node stopped")
    return 0

