"""The node runtime in-process against the session's Anvil: register, publish, fuse, finalize;
reorgs (snapshot/revert and anvil_reorg); a crash between persisting and broadcasting; bad
payloads; the finalize race; reward claims (once, across restarts)."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from testkit import forward_rpc, loopback_server, reply_json, run_until, sample, wait_until

from agents.base import Encoding
from agents.factory import build_agent
from node.protocol import payload as pl
from node.chain.events import (
    DecisionPublished,
    EmbeddingPublished,
    RewardClaimed,
    TaskSubmitted,
)
from node.chain.nodechain import NodeChain
from node.runtime.settings import NodeSettings
from node.runtime.node import NodeRuntime
from node.runtime.sendlog import SendState
from node.runtime.store import ChainState, ClaimState, Store, TaskState


class HashEncoder:
    """Deterministic stand-in for MiniLM (words -> fixed random vectors), 16-d."""

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            v = np.zeros(16)
            for word in text.lower().split():
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
                v += np.random.default_rng(seed).standard_normal(16)
            rows.append(v / (np.linalg.norm(v) + 1e-12))
        return np.asarray(rows, dtype=np.float32)


ENCODER = (HashEncoder(), hashlib.sha256(b"hash-encoder-16").digest(), "hash-encoder-16", Encoding.F32)
KEYS = {"market": 1, "sentiment": 2, "risk": 3, "fusion": 4}


def make_node(chain, role: str, tmp_path: Path, **overrides) -> NodeRuntime:
    key = KEYS[role]
    settings = NodeSettings(role=role, port=9100 + key, dev_key_index=key, chain_id=31337, rpc_url=chain.rpc_url,
                            finalize_grace_s=overrides.pop("finalize_grace_s", 0.0), **overrides)
    agent = build_agent(role, use_trained=False, text_encoder=ENCODER)
    store = Store(tmp_path / f"{role}.sqlite")
    runtime = NodeRuntime(settings, NodeChain(chain.client(key), chain.contracts(key)), store, agent,
                          deployment=chain.deployment)
    runtime.bootstrap()
    return runtime


def submit(chain, raw: bytes | None = None, *, quorum: int = 1, arch: int = 2) -> int:
    contracts = chain.contracts(0)
    raw = raw if raw is not None else pl.encode(pl.example_payload(1))
    deadline = chain.timestamp() + 600
    return contracts.submit_task(raw, arch, deadline, quorum).event(TaskSubmitted).task_id




def publications(chain, task_id: int, kind=DecisionPublished) -> list:
    return [e for e in chain.contracts(0).events(chain.deployment.deploy_block, "latest")
            if isinstance(e, kind) and e.task_id == task_id]


def test_a_node_registers_once(chain, tmp_path: Path) -> None:
    node = make_node(chain, "market", tmp_path)
    info = chain.contracts(0).agent_info(node.address)
    assert info.active and info.role == 0
    again = make_node(chain, "market", tmp_path / "again")  # a restart: no second registration
    assert again.health()["registered"] is True


def test_four_agents_publish_fuse_and_finalize(chain, tmp_path: Path) -> None:
    nodes = [make_node(chain, role, tmp_path) for role in ("market", "sentiment", "risk", "fusion")]
    task_id = submit(chain, quorum=4, arch=5)
    board = chain.contracts(0)
    run_until(nodes, lambda: board.task_info(task_id).status == 2)
    decisions = publications(chain, task_id)
    assert sorted(d.role for d in decisions) == [0, 1, 2, 3]
    assert decisions[-1].role == 3  # fusion waited for its peers
    embeddings = publications(chain, task_id, EmbeddingPublished)
    assert [len(e.vector) for e in embeddings] == [16 * 4]  # the sentiment agent's E-d embedding
    run_until(nodes, lambda: all(n.store.get_task(task_id).chain_status == ChainState.FINALIZED for n in nodes))
    for node in nodes:
        task = node.store.get_task(task_id)
        assert task.status == TaskState.PUBLISHED and task.final_action is not None
        tallies = json.loads(task.final_tallies)  # the contract's, from its TaskFinalized event
        assert len(tallies) == 3 and max(tallies) > 0 and tallies.index(max(tallies)) == task.final_action
        sends = node.store.sends(task_id=task_id)
        assert len([s for s in sends if s.kind == "decision"]) == 1
    finalizers = [n for n in nodes if n.store.sends(task_id=task_id, kind="finalize")]
    assert len(finalizers) == 1  # the node whose decision reached quorum


def test_reorg_by_snapshot_revert_forgets_vanished_outputs(chain, tmp_path: Path) -> None:
    node = make_node(chain, "market", tmp_path, finalize=False)
    node.step()  # a cursor below the fork
    snapshot = chain.rpc("evm_snapshot")
    task_id = submit(chain)
    run_until([node], lambda: node.store.get_task(task_id) is not None
              and node.store.get_task(task_id).status == TaskState.PUBLISHED)
    assert len(publications(chain, task_id)) == 1

    assert chain.rpc("evm_revert", snapshot)
    chain.forget_nonces()
    chain.rpc("evm_mine")
    chain.rpc("evm_mine")  # the new branch is longer than the fork point
    node.step()
    task = node.store.get_task(task_id)
    assert task.status == TaskState.RECHECK and task.chain_status == ChainState.GONE  # not kept as done
    assert sample(node.metrics, "chorus_reorgs_total") >= 1

    other = pl.encode(pl.example_payload(99))
    again = submit(chain, other)  # the same id, another task
    assert again == task_id
    run_until([node], lambda: node.store.get_task(task_id).status == TaskState.PUBLISHED)
    assert node.store.get_task(task_id).payload_hash == "0x" + pl.payload_hash(other).hex()
    assert len(publications(chain, task_id)) == 1


def test_anvil_reorg_of_recent_blocks_is_detected(chain, tmp_path: Path) -> None:
    node = make_node(chain, "market", tmp_path, finalize=False)
    task_id = submit(chain)
    run_until([node], lambda: node.store.get_task(task_id) is not None
              and node.store.get_task(task_id).status == TaskState.PUBLISHED)
    # Replace the last 3 blocks (submission and publication) with empty ones at the same height.
    chain.rpc("anvil_reorg", 3, [])
    chain.forget_nonces()
    node.step()
    task = node.store.get_task(task_id)
    assert task.status == TaskState.RECHECK and task.chain_status == ChainState.GONE
    assert node.store.task_events(task_id) == []


def test_killed_between_persist_and_broadcast_no_duplicate_after_restart(chain, tmp_path: Path) -> None:
    node = make_node(chain, "market", tmp_path, finalize=False)
    task_id = submit(chain)

    class Killed(BaseException):
        pass

    def die(raw: bytes, tx_hash: str) -> None:
        raise Killed  # the process dies after the send log was written

    node.chain.send_raw = die
    with pytest.raises(Killed):
        for _ in range(5):
            node.step()
    (prepared,) = node.store.open_sends()
    assert prepared.status == SendState.PREPARED and publications(chain, task_id) == []

    chain.forget_nonces()
    restarted = make_node(chain, "market", tmp_path)  # same state file, fresh process objects
    run_until([restarted], lambda: restarted.store.get_task(task_id).status == TaskState.PUBLISHED)
    (decision,) = publications(chain, task_id)
    assert decision.tx_hash == prepared.tx_hash  # the very transaction written before the crash
    assert len(restarted.store.sends(task_id=task_id, kind="decision")) == 1


def test_killed_between_embedding_and_decision_the_decision_still_goes_out(chain, tmp_path: Path) -> None:
    node = make_node(chain, "sentiment", tmp_path, finalize=False)
    task_id = submit(chain, arch=5)  # E-d: an embedding, then the decision
    real_send = node.chain.send_raw

    class Killed(BaseException):
        pass

    def embedding_then_die(raw: bytes, tx_hash: str) -> None:
        if node.store.live_send(task_id, "decision") is not None:
            raise Killed  # the decision is on disk, the process dies before broadcasting it
        real_send(raw, tx_hash)

    node.chain.send_raw = embedding_then_die
    with pytest.raises(Killed):
        for _ in range(5):
            node.step()
    assert len(publications(chain, task_id, EmbeddingPublished)) == 1 and publications(chain, task_id) == []

    chain.forget_nonces()
    restarted = make_node(chain, "sentiment", tmp_path)
    run_until([restarted], lambda: restarted.store.get_task(task_id).status == TaskState.PUBLISHED)
    assert len(publications(chain, task_id)) == 1 and len(publications(chain, task_id, EmbeddingPublished)) == 1
    assert [s.kind for s in restarted.store.sends(task_id=task_id) if s.kind != "finalize"] == ["embedding", "decision"]


def test_killed_after_the_embedding_before_the_decision_was_even_built(chain, tmp_path: Path) -> None:
    node = make_node(chain, "sentiment", tmp_path, finalize=False)
    task_id = submit(chain, arch=5)
    real_send = node.outbox.send

    class Killed(BaseException):
        pass

    def die_before_decision(*, kind: str, **kwargs):
        if kind == "decision":
            raise Killed  # nothing of the decision on disk
        return real_send(kind=kind, **kwargs)

    node.outbox.send = die_before_decision
    with pytest.raises(Killed):
        for _ in range(5):
            node.step()
    chain.forget_nonces()
    restarted = make_node(chain, "sentiment", tmp_path)  # settles the embedding first
    assert restarted.store.get_task(task_id).status != TaskState.PUBLISHED
    run_until([restarted], lambda: restarted.store.get_task(task_id).status == TaskState.PUBLISHED)
    assert len(publications(chain, task_id)) == 1 and len(publications(chain, task_id, EmbeddingPublished)) == 1


def test_bad_payloads_are_rejected_and_the_node_carries_on(chain, tmp_path: Path, caplog) -> None:
    node = make_node(chain, "market", tmp_path, payload_allow_file=[tmp_path])  # file:// is off by default
    board = chain.contracts(0)
    deadline = chain.timestamp() + 600
    malformed = submit(chain, b"this is not json")
    good_file = tmp_path / "p.json"
    good_file.write_bytes(pl.encode(pl.example_payload(5)))
    mismatch = board.submit_task_uri(b"\x01" * 32, good_file.as_uri(), 2, deadline, 1).event(TaskSubmitted).task_id
    off_list = board.submit_task_uri(pl.payload_hash(good_file.read_bytes()), "http://192.0.2.1/p.json", 2,
                                     deadline, 1).event(TaskSubmitted).task_id
    by_uri = board.submit_task_uri(pl.payload_hash(good_file.read_bytes()), good_file.as_uri(), 2,
                                   deadline, 1).event(TaskSubmitted).task_id
    with caplog.at_level(logging.WARNING, logger="node.runtime.node"):
        run_until([node], lambda: node.store.get_task(by_uri) is not None
                  and node.store.get_task(by_uri).status == TaskState.PUBLISHED)
    for task_id, reason in ((malformed, "not UTF-8 JSON"), (mismatch, "does not match"), (off_list, "not allowed")):
        task = node.store.get_task(task_id)
        assert task.status == TaskState.REJECTED and reason in task.error
        assert publications(chain, task_id) == []
    assert sum("rejected" in r.getMessage() for r in caplog.records) == 3
    assert sample(node.metrics, "chorus_tasks_failed_total", reason="payload") == 3


def test_losing_the_finalize_race_is_quiet(chain, tmp_path: Path, caplog) -> None:
    market = make_node(chain, "market", tmp_path)
    risk = make_node(chain, "risk", tmp_path)
    task_id = submit(chain, quorum=2)
    market.step()
    # risk's decision reaches quorum, which risk's watcher sees on a later step: risk finalizes
    # (stepped until it has, not a fixed two steps: under load a receipt can take a step longer)
    run_until([risk], lambda: chain.contracts(0).task_info(task_id).status == 2, rounds=10)
    head = market.chain.header("latest")
    with caplog.at_level(logging.WARNING):
        market.closer.finalize_ready(head)  # market's view is stale: it tries, estimation says AlreadyFinalized
    assert market.store.sends(task_id=task_id, kind="finalize") == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    market.step()
    assert market.store.get_task(task_id).chain_status == ChainState.FINALIZED


def balance_change(chain, address: str, block: int) -> int:
    """How much `address`'s balance moved in block `block` (auto-mining: one transaction per block)."""
    def at(n: int) -> int:
        return int(chain.rpc("eth_getBalance", address, hex(n)), 16)
    return at(block) - at(block - 1)


def test_rewards_are_claimed_once_and_a_restart_does_not_claim_again(chain, tmp_path: Path) -> None:
    nodes = [make_node(chain, role, tmp_path) for role in ("market", "risk")]
    reward = 10**15 + 1  # odd: 1 wei of remainder goes to whoever finalizes
    board = chain.contracts(0)
    deadline = chain.timestamp() + 600
    task_id = board.submit_task(pl.encode(pl.example_payload(1)), 2, deadline, 2, reward).event(TaskSubmitted).task_id
    run_until(nodes, lambda: all((t := n.store.get_task(task_id)) is not None and t.claim_status == ClaimState.CLAIMED
                                 for n in nodes))
    share = reward // 2
    for node in nodes:
        (claim,) = node.store.sends(task_id=task_id, kind="claim")
        assert node.store.get_task(task_id).claimed_wei == str(share)
        assert balance_change(chain, node.address, claim.block_number) == share - claim.gas_used * claim.effective_gas_price
    (finalizer,) = [n for n in nodes if n.store.sends(task_id=task_id, kind="finalize")]
    (final,) = finalizer.store.sends(task_id=task_id, kind="finalize")
    assert balance_change(chain, finalizer.address, final.block_number) == 1 - final.gas_used * final.effective_gas_price
    assert board.escrowed() == 0

    restarted = make_node(chain, "market", tmp_path)  # the same state file
    fresh = make_node(chain, "risk", tmp_path / "lost")  # state file lost: the chain answers AlreadyClaimed
    run_until([restarted, fresh], lambda: (t := fresh.store.get_task(task_id)) is not None
              and t.claim_status is not None)
    for _ in range(3):
        restarted.step()
        fresh.step()
    assert fresh.store.get_task(task_id).claim_status == "AlreadyClaimed" and fresh.store.sends(kind="claim") == []
    assert len(restarted.store.sends(task_id=task_id, kind="claim")) == 1
    claims = [e for e in board.events(chain.deployment.deploy_block, "latest") if isinstance(e, RewardClaimed)]
    assert sorted(e.agent.lower() for e in claims) == sorted(n.address.lower() for n in nodes)


class TcpProxy:
    """127.0.0.1:port -> target port; `cut()` drops the listener and every connection, `restore()`
    listens again on the same port: the RPC going away and coming back. `stall()` keeps every
    connection open but forwards nothing (an RPC that hangs, like a SIGSTOPped Anvil), `resume()`
    forwards again."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self._socket, self._threading = socket, threading
        self.target = target_port
        self.port = 0
        self._conns: list = []
        self._listener = None
        self._lock = threading.Lock()
        self.stalled = False
        self.restore()

    def restore(self) -> None:
        s = self._socket.socket()
        s.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.port = s.getsockname()[1]
        with self._lock:
            self._listener = s
        self._threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if listener is not self._listener:  # accepted while `cut` ran: the RPC is gone
                    client.close()
                    return
                upstream = self._socket.create_connection(("127.0.0.1", self.target))
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def stall(self) -> None:
        self.stalled = True

    def resume(self) -> None:
        self.stalled = False

    def _pipe(self, src, dst) -> None:
        try:
            while data := src.recv(65536):
                if not self.stalled:  # stalled: swallowed, never answered
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            try:
                listener.shutdown(self._socket.SHUT_RDWR)  # wakes the blocked accept()
            except OSError:
                pass
            listener.close()
            for conn in self._conns:
                try:
                    conn.shutdown(self._socket.SHUT_RDWR)
                    conn.close()
                except OSError:
                    pass
            self._conns.clear()


def node_behind_proxy(chain, tmp_path: Path, port: int, *, retries: int, timeout: float,
                      **settings: float) -> tuple[TcpProxy, NodeRuntime]:
    """A market node (dev key 1) whose RPC goes through a TCP proxy the test can cut or stall."""
    from node.chain.client import Web3Client
    from node.chain.contracts import ChorusContracts, revert_decoder
    from node.chain.settings import dev_account

    proxy = TcpProxy(chain.anvil.port)
    url = f"http://127.0.0.1:{proxy.port}"
    client = Web3Client(url, dev_account(1), decoder=revert_decoder(chain.artifacts), retries=retries,
                        timeout=timeout)
    contracts = ChorusContracts.from_deployment(client, chain.deployment, chain.artifacts)
    node_settings = NodeSettings(role="market", port=port, dev_key_index=1, chain_id=31337, rpc_url=url,
                                 backoff_max_s=0.4, **settings)
    node = NodeRuntime(node_settings, NodeChain(client, contracts), Store(tmp_path / "m.sqlite"),
                       build_agent("market", use_trained=False), deployment=chain.deployment)
    return proxy, node


@contextlib.contextmanager
def looping(*nodes: NodeRuntime):
    """Each node's loop in a thread of its own for the block, stopped (and joined) when it ends,
    also when the test fails: a loop left running would share the next test's key."""
    stop = threading.Event()
    threads = [threading.Thread(target=node.run, args=(stop,), daemon=True) for node in nodes]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def test_the_node_rides_out_the_rpc_going_away_and_coming_back(chain, tmp_path: Path, caplog) -> None:
    proxy, node = node_behind_proxy(chain, tmp_path, 9201, retries=0, timeout=2, poll_interval_s=0.05)
    node.bootstrap()
    with caplog.at_level(logging.INFO, logger="node.runtime.node"), looping(node):
        proxy.cut()
        task_id = submit(chain)  # submitted while the node cannot reach its RPC
        wait_until(lambda: node.health()["status"] == "degraded", 10, "the node to report its RPC degraded")
        assert node.health()["chain_reachable"] is False
        proxy.restore()
        wait_until(lambda: (task := node.store.get_task(task_id)) is not None
                   and task.status == TaskState.PUBLISHED, 10, f"the node to resume and publish task {task_id}")
    messages = [r.getMessage() for r in caplog.records]
    assert any("unreachable or failing" in m for m in messages)
    assert any("reachable again" in m for m in messages)
    assert node.health()["status"] == "ok" and len(publications(chain, task_id)) == 1
    proxy.cut()


def test_a_hanging_rpc_turns_the_node_degraded_within_two_poll_intervals(chain, tmp_path: Path, caplog) -> None:
    poll = 0.2
    proxy, node = node_behind_proxy(chain, tmp_path, 9202, retries=1, timeout=1.0, poll_interval_s=poll,
                                    rpc_silent_after_s=poll)
    node.bootstrap()
    with caplog.at_level(logging.INFO, logger="node"), looping(node):
        wait_until(lambda: node.health()["status"] == "ok", 10, "the node to be healthy")
        proxy.stall()
        stalled_at = time.monotonic()
        task_id = submit(chain)  # straight to Anvil: the chain goes on without the node
        # A generous deadline, under the request's 1 s timeout x 2 tries it would otherwise take to
        # notice; the figure itself is printed.
        wait_until(lambda: node.health()["status"] == "degraded", 1.5, "the node to report its RPC silent")
        to_degraded = time.monotonic() - stalled_at
        assert node.health()["chain_reachable"] is False
        time.sleep(3.0)  # both tries of the request time out meanwhile: the loop's rounds fail too
        assert node.health()["status"] == "degraded"
        proxy.resume()
        outage = time.monotonic() - stalled_at
        wait_until(lambda: (task := node.store.get_task(task_id)) is not None
                   and task.status == TaskState.PUBLISHED, 15, f"the node to resume and publish task {task_id}")
    print(f"hanging RPC -> degraded in {to_degraded:.3f}s (poll interval {poll}s); outage {outage:.1f}s")
    messages = [r.getMessage() for r in caplog.records]
    timeouts = [r.getMessage() for r in caplog.records
                if r.name == "node.chain.client" and r.levelno == logging.WARNING and "timed out after 1." in r.getMessage()]
    assert timeouts and all(re.search(r": eth_\w+", m) for m in timeouts)  # each with its method and duration
    assert any("retrying in" in m for m in timeouts) and any("giving up" in m for m in timeouts)
    (back,) = [m for m in messages if "reachable again" in m]
    reported = float(re.search(r"after ([0-9.]+)s", back).group(1))
    assert outage - poll - 0.2 <= reported <= outage + 1.5, (reported, outage)  # the whole outage
    assert node.health()["status"] == "ok" and len(publications(chain, task_id)) == 1
    proxy.cut()


@pytest.mark.parametrize(("how", "rounds_between"), [("evm_revert", 0), ("evm_revert", 2), ("anvil_reorg", 0)],
                         ids=["revert-then-new-tasks-in-one-poll", "revert-seen-first", "anvil-reorg-same-height"])
def test_a_deep_revert_over_finalized_and_open_tasks_loses_none_and_reused_ids_are_new_tasks(
        chain, tmp_path: Path, how: str, rounds_between: int) -> None:
    nodes = [make_node(chain, role, tmp_path) for role in ("market", "risk")]
    for node in nodes:
        node.step()  # cursors below the fork
    board = chain.contracts(0)
    snapshot = chain.rpc("evm_snapshot")
    fork = chain.client(0).block_number()
    before = [pl.encode(pl.example_payload(i)) for i in (1, 2, 3, 4)]
    finalized = [submit(chain, raw, quorum=2) for raw in before[:2]]
    run_until(nodes, lambda: all((t := n.store.get_task(i)) is not None and t.chain_status == ChainState.FINALIZED
                                 for n in nodes for i in finalized))
    unfinalized = [submit(chain, raw, quorum=3) for raw in before[2:]]  # two nodes: never at quorum
    run_until(nodes, lambda: all((t := n.store.get_task(i)) is not None and t.status == TaskState.PUBLISHED
                                 for n in nodes for i in unfinalized))
    depth = chain.client(0).block_number() - fork

    if how == "evm_revert":
        assert chain.rpc("evm_revert", snapshot)
    else:  # the same height on another branch: every block since the fork replaced by an empty one
        chain.rpc("anvil_reorg", depth, [])
        assert chain.client(0).block_number() == fork + depth
    chain.forget_nonces()
    for _ in range(rounds_between):
        for node in nodes:
            node.step()  # the nodes see the rollback before any new task
    # The same ids again, two with the payloads they had (each node's decision is then signed again
    # byte for byte: same nonce, same calldata), two with others.
    after = [before[0], pl.encode(pl.example_payload(11)), before[2], pl.encode(pl.example_payload(13))]
    reused = [submit(chain, raw, quorum=2) for raw in after]
    assert reused == finalized + unfinalized
    run_until(nodes, lambda: all(n.store.get_task(i).chain_status == ChainState.FINALIZED for n in nodes for i in reused),
              rounds=80)

    lost = [i for i in reused if board.task_info(i).status != 2]
    for task_id, raw in zip(reused, after):
        decisions = {d.agent.lower(): d for d in publications(chain, task_id)}
        assert len(publications(chain, task_id)) == len(nodes) and set(decisions) == {n.address.lower() for n in nodes}
        for node in nodes:
            task = node.store.get_task(task_id)
            assert task.payload_hash == "0x" + pl.payload_hash(raw).hex() and task.status == TaskState.PUBLISHED
            on_chain = decisions[node.address.lower()]
            assert (on_chain.action, on_chain.confidence) == (task.action, task.confidence)  # this task's output
            assert len(node.store.sends(task_id=task_id, kind="decision", statuses=[SendState.MINED])) == 1
    resigned = sum(1 for n in nodes for i in reused
                   if [s.status for s in n.store.sends(task_id=i, kind="decision")] == [SendState.MINED])
    print(f"{how}: {depth} blocks over {len(finalized)} finalized + {len(unfinalized)} open tasks; "
          f"{len(reused)} ids reused, {len(reused) - len(lost)} processed and finalized, {len(lost)} lost; "
          f"{resigned} of {len(reused) * len(nodes)} decisions reused their dropped send record")
    assert lost == []


@pytest.fixture
def hanging_server():
    """A loopback HTTP server that accepts every connection, reads the request and never answers."""
    held: list[socket.socket] = []
    with loopback_server(held.append) as url:
        yield url
    for conn in held:
        conn.close()


def published_after(node: NodeRuntime, task_id: int, timeout: float = 30) -> float:
    """Seconds from now until the node has published `task_id`, stepping it as its loop would."""
    start = time.monotonic()

    def published() -> bool:
        node.step()
        task = node.store.get_task(task_id)
        return task is not None and task.status == TaskState.PUBLISHED

    wait_until(published, timeout, f"task {task_id} published", interval=node.settings.poll_interval_s)
    return time.monotonic() - start


def test_a_payload_server_that_never_answers_delays_only_its_own_tasks(chain, tmp_path: Path, hanging_server: str,
                                                                        caplog) -> None:
    node = make_node(chain, "market", tmp_path, finalize=False, payload_timeout_s=3, payload_deadline_s=3)
    board = chain.contracts(0)
    deadline = chain.timestamp() + 600
    quiet = published_after(node, submit(chain, pl.encode(pl.example_payload(20))))  # no slow server around
    raw = pl.encode(pl.example_payload(21))
    hung = [board.submit_task_uri(pl.payload_hash(raw), f"{hanging_server}/{i}.json?token=secret", 2, deadline, 1)
            .event(TaskSubmitted).task_id for i in range(6)]
    good = submit(chain, pl.encode(pl.example_payload(22)))
    loaded = published_after(node, good)
    print(f"good task published {quiet:.2f}s after submission alone, {loaded:.2f}s behind {len(hung)} tasks whose "
          f"payload server never answers ({loaded - quiet:+.2f}s)")
    # Published while every hung fetch was still running: one sleeping fetch on the loop would
    # have taken its 3 s deadline first.
    assert all(node.store.get_task(i).status not in (TaskState.REJECTED, TaskState.PUBLISHED) for i in hung)
    assert loaded - quiet < 2.0
    assert node.fetcher.in_flight() == node.settings.payload_per_origin  # one server, its share of workers
    with caplog.at_level(logging.WARNING, logger="node.runtime.node"):
        def all_rejected() -> bool:
            node.step()
            return all(node.store.get_task(i).status == TaskState.REJECTED for i in hung)

        wait_until(all_rejected, 60, "every hung task rejected at its deadline", interval=0.1)
    errors = {node.store.get_task(i).error for i in hung}
    # Whichever fires first: the fetch's read timeout on the worker, or the deadline on the loop.
    assert all(re.search(r"did not arrive within 3s|failed: ReadTimeout", e) and "secret" not in e for e in errors), errors
    assert publications(chain, hung[0]) == []


def test_a_burst_of_tasks_is_finalized_without_a_reverted_finalize(chain, tmp_path: Path) -> None:
    """Four nodes, each looping in its own thread with the default grace and slice, against a burst:
    the node whose decision reached quorum finalizes, and no stand-in sends a finalize that reverts."""
    grace = NodeSettings.model_fields["finalize_grace_s"].default
    nodes = [make_node(chain, role, tmp_path, finalize_grace_s=grace) for role in ("market", "sentiment", "risk", "fusion")]
    for node in nodes:
        node.step()
    with looping(*nodes):
        ids = [submit(chain, pl.encode(pl.example_payload(100 + i)), quorum=4) for i in range(60)]
        board = chain.contracts(0)
        wait_until(lambda: all(board.task_info(i).status == 2 for i in ids), 240, "all 60 tasks finalized",
                   interval=0.5)
        wait_until(lambda: all(not n.store.open_sends() for n in nodes), 30, "every send settled")
    finalizes = [s for n in nodes for i in ids for s in n.store.sends(task_id=i, kind="finalize")]
    reverted = [s for s in finalizes if s.status == SendState.REVERTED]
    by_task = collections.Counter(s.task_id for s in finalizes if s.status == SendState.MINED)
    print(f"60-task burst on 4 nodes: {len(finalizes)} finalize sent, {len(reverted)} reverted")
    assert reverted == [] and all(by_task[i] == 1 for i in ids)


def fusion_after(chain, tmp_path: Path, *, deadline_in: int = 600, **fusion_settings) -> tuple[NodeRuntime, int]:
    """A market and a fusion node on a task whose quorum (4) waits for two agents that never come:
    returns the fusion node after the market agent has published and fusion has stepped a while."""
    market = make_node(chain, "market", tmp_path)
    fusion = make_node(chain, "fusion", tmp_path, **fusion_settings)
    board = chain.contracts(0)
    task_id = board.submit_task(pl.encode(pl.example_payload(7)), 5, chain.timestamp() + deadline_in, 4).event(
        TaskSubmitted).task_id
    run_until([market], lambda: market.store.get_task(task_id).status == TaskState.PUBLISHED)
    for _ in range(5):
        fusion.step()
        time.sleep(0.05)
    return fusion, task_id


def test_fusion_waits_for_its_quorum_of_peers_however_long_they_take(chain, tmp_path: Path) -> None:
    fusion, task_id = fusion_after(chain, tmp_path)  # fusion_wait_s unset: the default
    assert fusion.store.get_task(task_id).status == TaskState.WAITING
    fusion.store.update_task(task_id, started_at=time.time() - 3600)  # an hour of waiting, as far as it knows
    for _ in range(3):
        fusion.step()
    assert fusion.store.get_task(task_id).status == TaskState.WAITING
    assert [d.role for d in publications(chain, task_id)] == [0]  # the market agent's only


def test_fusion_on_a_partial_set_only_when_told_to_or_at_the_deadline(chain, tmp_path: Path) -> None:
    impatient, task_id = fusion_after(chain, tmp_path / "impatient", fusion_wait_s=0.0)  # the robustness setting
    assert sorted(d.role for d in publications(chain, task_id)) == [0, 3]
    margin = NodeSettings.model_fields["deadline_margin_s"].default
    late, task_id = fusion_after(chain, tmp_path / "late", deadline_in=margin + 10)  # in its last call at once (chain time)
    assert late.store.get_task(task_id).status == TaskState.PUBLISHED, late.store.get_task(task_id)
    assert sorted(d.role for d in publications(chain, task_id)) == [0, 3]


class FaultyRpc:
    """An HTTP JSON-RPC proxy to Anvil that misbehaves on a seeded share of requests: it stalls
    some for 10-15 s before forwarding them (the client has usually given up by then, so a sent
    transaction may still arrive), drops the connection of others without an answer, and answers
    HTTP 429 (rate limited) to others. `faults` counts what it did."""

    def __init__(self, target: str, *, seed: int, stall: float = 0.02, drop: float = 0.03, limit: float = 0.04,
                 max_stalls: int = 6) -> None:
        import http.server
        import random

        self.faults = collections.Counter()
        rng = random.Random(seed)
        lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    roll, pause = rng.random(), rng.uniform(10, 15)
                    fault = ("stall" if roll < stall and proxy.faults["stall"] < max_stalls else
                             "drop" if roll < stall + drop else "429" if roll < stall + drop + limit else None)
                    if fault:
                        proxy.faults[fault] += 1
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "429":
                    self.send_response(429)
                    self.send_header("Content-Length", "0")
                    self.send_header("Retry-After", "1")
                    self.end_headers()
                    return
                if fault == "stall":
                    time.sleep(pause)
                answer = forward_rpc(target, body)
                try:
                    reply_json(self, answer)
                except OSError:
                    pass  # the client gave up on a stalled request

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def decide_through(chain, tmp_path: Path, raws: list[bytes], arch: int, *, rpc: FaultyRpc | None = None,
                   **settings) -> dict[bytes, tuple]:
    """Four nodes (market, sentiment, risk, fusion), each looping in its own thread, through `rpc`
    or straight to Anvil, on one task per payload: payload -> (final action, each role's decision)."""
    from node.chain.client import Web3Client
    from node.chain.contracts import ChorusContracts, revert_decoder
    from node.chain.settings import dev_account

    nodes = []
    for role, key in KEYS.items():
        url = rpc.url if rpc else chain.rpc_url
        client = Web3Client(url, dev_account(key), decoder=revert_decoder(chain.artifacts), timeout=10, retries=3,
                            backoff=0.2)
        node_settings = NodeSettings(role=role, port=9300 + key, dev_key_index=key, chain_id=31337, rpc_url=url,
                                     backoff_max_s=1.0, **settings)
        runtime = NodeRuntime(node_settings, NodeChain(client, ChorusContracts.from_deployment(
            client, chain.deployment, chain.artifacts)), Store(tmp_path / f"{role}.sqlite"),
            build_agent(role, use_trained=False, text_encoder=ENCODER), deployment=chain.deployment)
        nodes.append(runtime)
    stop = threading.Event()

    def live(node: NodeRuntime) -> None:
        while not stop.is_set():
            try:
                node.bootstrap()
                break
            except Exception:  # noqa: BLE001 - a fault during start-up: try again, as run_node does
                stop.wait(0.5)
        node.run(stop)

    threads = [threading.Thread(target=live, args=(n,), daemon=True) for n in nodes]
    for thread in threads:
        thread.start()
    board = chain.contracts(0)
    try:
        ids = [board.submit_task(raw, arch, chain.timestamp() + 3600, 4).event(TaskSubmitted).task_id for raw in raws]
        wait_until(lambda: all(board.task_info(i).status == 2 for i in ids), 300, f"{len(ids)} tasks finalized",
                   interval=0.5, detail=lambda: str(rpc.faults if rpc else ""))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a node loop did not stop"
    out = {}
    for raw, task_id in zip(raws, ids):
        roles = {d.role: (d.action, d.confidence) for d in publications(chain, task_id)}
        out[raw] = (board.task_info(task_id).action, roles)
    return out


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_a_faulty_rpc_changes_no_decision(chain, tmp_path: Path) -> None:
    """Stalls of 10-15 s, dropped connections and 429s on the nodes' RPC change timings only: every
    task gets the same final action and every agent the same decision as on a clean RPC."""
    raws = [pl.encode(pl.example_payload(300 + i)) for i in range(8)]
    clean = decide_through(chain, tmp_path / "clean", raws, arch=5)
    rpc = FaultyRpc(chain.rpc_url, seed=7)
    try:
        started = time.monotonic()
        faulty = decide_through(chain, tmp_path / "faulty", raws, arch=5, rpc=rpc)
        took = time.monotonic() - started
    finally:
        rpc.close()
    print(f"faulty RPC ({dict(rpc.faults)}): {len(raws)} tasks in {took:.0f}s, "
          f"{sum(clean[r] != faulty[r] for r in raws)} differing from the clean run")
    assert rpc.faults["stall"] and rpc.faults["drop"] and rpc.faults["429"]
    assert faulty == clean
