"""Node throughput benchmark: tasks/s and submit-to-finalized latency of N real node processes,
beside raw Anvil throughput measured in the same run, and their ratio.

- Raw Anvil: `raw_txs` signed transactions (plain transfers, fixed gas and fees) sent one by one
  from this Python process through the chain layer's client (`Web3Client.send`: sign locally, then
  eth_sendRawTransaction, which returns once Anvil accepted it), after one warm-up transfer;
  rate = transactions / (first send to the last one's receipt). The nodes are up and idle meanwhile.
- Pipeline: a burst of `n_tasks` submitTask calls sent from this process back to back with
  consecutive nonces (each signed and sent as soon as the previous one was accepted; no wait for
  its receipt; every receipt is checked afterwards), then the nodes publish and finalize.
  Throughput = tasks / (first submission to last finalization); chain tx/s = every transaction
  mined in the blocks from the first submission to the last finalization (submissions,
  publications, finalizations, anything else) / the same duration. A task's latency runs from
  the moment its submission was accepted by the RPC to the first poll (every 10 ms) that saw its
  TaskFinalized log; the burst's latencies include queueing behind the other tasks, so a second,
  paced run (one task at a time) gives the latency without it.

Both run on the same Anvil (auto-mine: one block per transaction). Anvil's cost per transaction
grows with the length of the chain, so the raw measurement brackets the burst: half of `raw_txs`
just before it, half just after it (before the paced run), and the raw rate is the mean of the two
(both are printed). Timings go in this report, never in pass/fail tests.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from node.chain.api import Fees
from node.protocol import payload as pl
from node.protocol.errors import ChainError
from node.protocol.enums import Arch

log = logging.getLogger(__name__)

RAW_KEY_INDEX = 19  # a dev key no node and no submitter uses


@dataclass
class BenchResult:
    nodes: int
    roles: list[str]
    arch: int
    tasks: int
    duration_s: float
    tasks_per_s: float
    latency_p50_s: float
    latency_p95_s: float
    latency_max_s: float
    chain_txs: int
    txs_per_task: float
    pipeline_tx_per_s: float
    raw_txs: int
    raw_tx_per_s: float
    """The mean of `raw_before_tx_per_s` and `raw_after_tx_per_s`."""
    raw_before_tx_per_s: float
    raw_after_tx_per_s: float
    ratio_tasks_to_raw: float
    ratio_txs_to_raw: float
    mining: str
    reverted: dict[str, int] = field(default_factory=dict)
    """TaskBoard calls mined and reverted during the burst, by function name."""
    reverted_gas: int = 0
    paced_tasks: int = 0
    paced_latency_p50_s: float = float("nan")
    paced_latency_p95_s: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure_raw(rpc_url: str, n_tx: int = 500, key_index: int = RAW_KEY_INDEX) -> float:
    """Raw tx/s: `n_tx` signed transfers sent one by one from this process, until the last receipt."""
    from node.chain.api import Fees
    from node.chain.client import Web3Client
    from node.chain.settings import dev_account

    client = Web3Client(rpc_url, dev_account(key_index))
    fees = client.suggest_fees()
    fees = Fees(fees.max_fee_per_gas * 2, fees.max_priority_fee_per_gas)  # room for base-fee growth
    to = dev_account(key_index - 1).address
    client.send(to, b"", value=1, gas=21_000, fees=fees)  # warm-up: nonce fetch, HTTP session
    start = time.perf_counter()
    last = None
    for _ in range(n_tx):
        last = client.send(to, b"", value=1, gas=21_000, fees=fees)
    client.wait(last, timeout=120)
    return n_tx / (time.perf_counter() - start)


def run_pipeline(contracts: Any, n_tasks: int, arch: int, quorum: int, *, timeout_s: float = 300.0,
                 poll_s: float = 0.01, on_progress: Callable[[int], None] | None = None
                 ) -> tuple[list[float], float, list[int]]:
    """Submit `n_tasks` and wait for all to finalize: (latencies s, duration s, task ids).

    The submissions go out back to back with consecutive nonces, each signed and sent as soon as
    the previous one was accepted by the RPC (no wait for its receipt). The gas limit of a
    submission is the estimate (gas margin included) of the first payload of its length: a
    submission that would revert raises before anything is sent. TaskBoard's TaskSubmitted and
    TaskFinalized logs are polled every `poll_s` seconds, also while the submissions go out; a
    task's latency runs from the moment its submission was accepted to the poll that first saw its
    TaskFinalized log. Once all are finalized, every submission's receipt is checked."""
    from node.chain.events import TaskFinalized, TaskSubmitted

    client = contracts.client
    board = contracts.addresses["TaskBoard"]
    interface = contracts.interfaces["TaskBoard"]
    topics = [[interface.event_topic("TaskSubmitted"), interface.event_topic("TaskFinalized")]]
    from_block = client.block_number() + 1
    deadline = client.block_timestamp() + 3600
    calls = [contracts.calldata("TaskBoard", "submitTask",
                                pl.encode(pl.example_payload(10_000 + i, asset=("ETH", "BTC", "SOL", "LINK")[i % 4])),
                                int(arch), deadline, quorum) for i in range(n_tasks)]
    gas_by_length: dict[int, int] = {}
    for data in calls:
        if len(data) not in gas_by_length:
            gas_by_length[len(data)] = math.ceil(client.estimate_gas(board, data) * client.fee_policy.gas_margin)
    fees = client.suggest_fees()
    fees = Fees(fees.max_fee_per_gas * 2, fees.max_priority_fee_per_gas)  # room for base-fee growth

    sent_at: dict[str, float] = {}  # tx hash -> when the RPC accepted the submission
    task_of: dict[str, int] = {}  # tx hash -> the task id its TaskSubmitted log gave
    finalized_at: dict[int, float] = {}  # task id -> when its TaskFinalized log was first seen
    cursor = from_block
    next_poll = 0.0

    def poll() -> None:
        nonlocal cursor, next_poll
        head = client.block_number()
        if head >= cursor:
            logs = client.get_logs(address=board, topics=topics, from_block=cursor, to_block=head)
            now = time.perf_counter()
            for event in contracts.decode_logs(logs):
                if isinstance(event, TaskSubmitted):
                    task_of[event.tx_hash.lower()] = event.task_id
                elif isinstance(event, TaskFinalized):
                    finalized_at.setdefault(event.task_id, now)
            cursor = head + 1
        next_poll = time.perf_counter() + poll_s

    start = time.perf_counter()
    for data in calls:
        tx = client.send(board, data, gas=gas_by_length[len(data)], fees=fees)
        sent_at[tx.tx_hash.lower()] = time.perf_counter()
        if time.perf_counter() >= next_poll:
            poll()
    give_up = time.perf_counter() + timeout_s
    while True:
        ours = [task_of[h] for h in sent_at if h in task_of]
        done = sum(1 for t in ours if t in finalized_at)
        if on_progress is not None:
            on_progress(done)
        if len(ours) == len(sent_at) and done == len(ours):
            break
        if time.perf_counter() > give_up:
            failed = [r for r in client.get_receipts(list(sent_at)) if r is not None and not r.succeeded]
            if failed:
                raise client.explain_failure(failed[0])
            missing = sorted(t for t in ours if t not in finalized_at)
            raise TimeoutError(f"{len(sent_at) - len(ours)} submissions not mined and {len(missing)} tasks not "
                               f"finalized after {timeout_s:.0f}s: {missing[:10]}")
        time.sleep(max(0.0, next_poll - time.perf_counter()))
        poll()
    for receipt in client.get_receipts(list(sent_at)):  # every submission mined and succeeded
        if receipt is None or not receipt.succeeded:
            raise ChainError(f"submission {receipt.tx_hash if receipt else '?'} failed or vanished")
    latencies = [finalized_at[task_of[h]] - sent_at[h] for h in sent_at]
    duration = max(finalized_at[task_of[h]] for h in sent_at) - start
    return latencies, duration, sorted(task_of[h] for h in sent_at)


@dataclass(frozen=True)
class ChainTally:
    """What a block range holds: every transaction, and TaskBoard calls that reverted by function."""

    txs: int
    reverted: dict[str, int]
    reverted_gas: int


def count_chain_txs(contracts: Any, from_block: int, to_block: int) -> ChainTally:
    """Transactions in a block range, with the TaskBoard calls among them that reverted (a revert
    still costs its gas: a node that loses a race it should not have entered burns it)."""
    client = contracts.client
    board = contracts.addresses["TaskBoard"].lower()
    by_selector = {f.selector: name for name, f in contracts.interfaces["TaskBoard"].functions.items()}
    total, reverted_gas = 0, 0
    reverted: dict[str, int] = {}
    for number in range(from_block, to_block + 1):
        block = client.request("eth_getBlockByNumber", [hex(number), True])
        for tx in block["transactions"]:
            total += 1
            if (tx.get("to") or "").lower() != board:
                continue
            receipt = client.request("eth_getTransactionReceipt", [tx["hash"]])
            if int(receipt["status"], 16) == 1:
                continue
            name = by_selector.get(bytes.fromhex(tx["input"][2:10]), "unknown")
            reverted[name] = reverted.get(name, 0) + 1
            reverted_gas += int(receipt["gasUsed"], 16)
    return ChainTally(total, reverted, reverted_gas)


def run_benchmark(n_nodes: int = 4, n_tasks: int = 40, arch: int = Arch.M_FIXED, raw_txs: int = 500,
                  paced_tasks: int = 10, state: Path | None = None, on_progress: Callable[[str, int, int], None] | None = None
                  ) -> BenchResult:
    """Start a devnet and `n_nodes` node processes, measure, tear everything down."""
    from node.chain.artifacts import load_protocol_artifacts
    from node.chain.client import Web3Client
    from node.chain.contracts import ChorusContracts, revert_decoder
    from node.chain.deploy import Deployment
    from node.chain.settings import dev_account
    from node.devnet.anvil import devnet_down, devnet_up, free_port
    from node.devnet.cluster import default_roles, free_base_port, start_nodes, stop_nodes

    tmp = tempfile.TemporaryDirectory(prefix="chorus-bench-") if state is None else None
    directory = Path(tmp.name) if tmp is not None else Path(state)  # type: ignore[union-attr]
    roles = default_roles(n_nodes)
    devnet_up(port=free_port(), state=directory)
    file = directory / "devnet.json"
    try:
        notify = on_progress or (lambda stage, done, total: None)
        notify("starting nodes", 0, n_nodes)
        start_nodes(file, roles, base_port=free_base_port(n_nodes, start=19700), timeout=180, die_with_parent=True)
        notify("starting nodes", n_nodes, n_nodes)
        deployment = Deployment.load(file)
        artifacts = load_protocol_artifacts()
        client = Web3Client(deployment.rpc_url, dev_account(0), decoder=revert_decoder(artifacts))
        contracts = ChorusContracts.from_deployment(client, deployment, artifacts)

        half = max(1, raw_txs // 2)
        notify("raw anvil", 0, 2 * half)
        raw_before = measure_raw(deployment.rpc_url, half)
        notify("raw anvil", half, 2 * half)

        first_block = client.block_number() + 1
        latencies, duration, _ = run_pipeline(contracts, n_tasks, arch, quorum=n_nodes,
                                              on_progress=lambda done: notify("tasks finalized", done, n_tasks))
        last_block = client.block_number()
        raw_after = measure_raw(deployment.rpc_url, half)  # the same chain length as the burst's end
        notify("raw anvil", 2 * half, 2 * half)
        raw_rate = (raw_before + raw_after) / 2
        tally = count_chain_txs(contracts, first_block, last_block)
        chain_txs = tally.txs
        paced: list[float] = []
        for i in range(paced_tasks):  # one task at a time: latency without queueing
            lat, _, _ = run_pipeline(contracts, 1, arch, quorum=n_nodes)
            paced += lat
            notify("paced tasks", i + 1, paced_tasks)
        mining = json.loads(file.read_text()).get("mining", "auto")
    finally:
        stop_nodes(file)
        devnet_down(state=directory)
        if tmp is not None:
            tmp.cleanup()
    tasks_per_s = n_tasks / duration
    pipeline_tx_per_s = chain_txs / duration
    return BenchResult(
        nodes=n_nodes, roles=roles, arch=arch, tasks=n_tasks, duration_s=duration, tasks_per_s=tasks_per_s,
        latency_p50_s=percentile(latencies, 50), latency_p95_s=percentile(latencies, 95),
        latency_max_s=max(latencies), chain_txs=chain_txs, txs_per_task=chain_txs / n_tasks,
        pipeline_tx_per_s=pipeline_tx_per_s, raw_txs=2 * half, raw_tx_per_s=raw_rate,
        raw_before_tx_per_s=raw_before, raw_after_tx_per_s=raw_after,
        ratio_tasks_to_raw=tasks_per_s / raw_rate, ratio_txs_to_raw=pipeline_tx_per_s / raw_rate, mining=mining,
        reverted=tally.reverted, reverted_gas=tally.reverted_gas,
        paced_tasks=paced_tasks, paced_latency_p50_s=percentile(paced, 50), paced_latency_p95_s=percentile(paced, 95),
    )


def format_result(r: BenchResult) -> str:
    lines = [
        f"Chorus node benchmark: N={r.nodes} nodes ({', '.join(r.roles)}), {r.tasks} tasks, arch {r.arch}, "
        f"quorum {r.nodes}, Anvil {r.mining}-mining",
        f"  pipeline   {r.tasks_per_s:8.2f} tasks/s   latency submit->finalized p50 {r.latency_p50_s * 1000:7.1f} ms"
        f"   p95 {r.latency_p95_s * 1000:7.1f} ms   max {r.latency_max_s * 1000:7.1f} ms",
        f"             {r.chain_txs} chain txs ({r.txs_per_task:.2f} per task) = {r.pipeline_tx_per_s:.1f} tx/s",
        f"             reverted: {', '.join(f'{n} {k}' for k, n in sorted(r.reverted.items())) or 'none'}"
        f" ({r.reverted_gas:,} gas)",
        (f"  paced      one task at a time ({r.paced_tasks} tasks): latency p50 {r.paced_latency_p50_s * 1000:7.1f} ms"
         f"   p95 {r.paced_latency_p95_s * 1000:7.1f} ms") if r.paced_tasks else "  paced      not run (--paced 0)",
        f"  raw anvil  {r.raw_tx_per_s:8.1f} tx/s  ({r.raw_txs} signed transfers sent one by one from one process: "
        f"{r.raw_before_tx_per_s:.1f} tx/s before the burst, {r.raw_after_tx_per_s:.1f} after it)",
        f"  ratio      tasks/s : raw tx/s = {r.ratio_tasks_to_raw:.4f}   "
        f"pipeline tx/s : raw tx/s = {r.ratio_txs_to_raw:.3f}",
    ]
    return "\n".join(lines)
