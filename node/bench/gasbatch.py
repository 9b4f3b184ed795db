"""The gas of batched publications and signed reports against the protocol's floor (`chorus gas`).

What is measured, on a fresh deployment (dev keys sign; one fresh task per item, so every storage
write is a real first publication):

- `publishDecisions xN`, N in {1, 8, 32}: one decisions-only market agent (dev key 1), N tasks.
- `publishEmbeddings xN`, N in {1, 8, 32}: one agent with a 384-d model (dev key 2), N f32 vectors
  of seeded random bytes.
- `report xN`, N in {3, 8, 16} signers (dev keys 3..18, roles market / sentiment / risk in turn,
  each with the 384-d model): `submitReport` from a registered aggregator (dev key 0) on a task
  whose quorum is N, so it finalizes in the same transaction. Beside it, the same N decisions
  published one by one (`publishDecision`) and then `finalize`d, on a task of their own: the
  `individual_*` fields.

The floor is `node.bench.gas`'s, `21000 + max(calldata + logs + sstores, 10 * tokens)`, with the
SSTOREs the state change needs (cold): per batched item a flags slot set from zero (22,100) and the
task's hot slot rewritten (5,000); per report signer a flags slot set (22,100), plus once the hot
slot, and for the finalization the task's funds slot (5,000: the share; the fused action is not
stored, and the reward divides evenly, so no remainder moves `escrowed` or ETH). `gas_per_item`
and `floor_per_item` divide the transaction's figures by N (the 21,000 base shared), so their
ratio is the row's ratio.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from node.bench.gas import (
    SSTORE_RESET_COLD,
    SSTORE_SET_COLD,
    TX_BASE,
    GasRow,
    calldata_cost,
    calldata_floor,
    gas_floor,
    log_cost,
    on_chain,
)

BATCH_SIZES = (1, 8, 32)
REPORT_SIGNERS = (3, 8, 16)
EMBED_DIM = 384
REWARD = 48 * 10**15  # divisible by every signer count: finalizing leaves no remainder

# Dev keys: 0 deploys and aggregates, 1 decides in batches, 2 embeds in batches, 3.. sign reports.
AGGREGATOR_KEY, DECIDER_KEY, EMBEDDER_KEY, FIRST_SIGNER_KEY = 0, 1, 2, 3

ITEM_SSTORES = SSTORE_SET_COLD + SSTORE_RESET_COLD
"""A batched item on a fresh task: its flags slot set from zero, the task's hot slot rewritten."""

FINALIZE_SSTORES = 2 * SSTORE_RESET_COLD
"""`finalize`: the task's hot slot (status) and funds (share) rewritten."""


def report_sstores(signers: int, finalizes: bool = True) -> int:
    """A report: one flags slot per signer, the hot slot once, and funds if it finalizes."""
    return signers * SSTORE_SET_COLD + SSTORE_RESET_COLD + (SSTORE_RESET_COLD if finalizes else 0)


def batch_floor(sstores: int, data: bytes, logs: Any) -> int:
    """`node.bench.gas`'s floor of one transaction with `sstores` gas of storage writes."""
    return TX_BASE + max(calldata_cost(data) + log_cost(logs) + sstores, calldata_floor(data))


@dataclass(frozen=True)
class BatchRow:
    """One measured batch or report."""

    op: str
    """`publishDecisions`, `publishEmbeddings` or `report`."""
    items: int
    """Decisions, vectors or signers in the transaction."""
    d: int | None
    encoding: str | None
    gas: int
    floor: int
    ratio: float
    gas_per_item: float
    floor_per_item: float
    calldata_bytes: int
    individual_gas: int | None = None
    """Reports: the same decisions as `items` publishDecision transactions plus a finalize."""
    individual_floor: int | None = None
    size: Any = None
    """The signed transaction's sizes (`node.chain.fees.TxSize`), as `GasRow.size`."""

    def gas_row(self) -> GasRow:
        """The row in `chorus gas`'s shape, the item count in the op name (`publishDecisions x8`)."""
        return GasRow(f"{self.op} x{self.items}", self.d, self.encoding, self.gas, self.floor, self.ratio,
                      self.calldata_bytes, self.size)

    def public(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("calldata_bytes")
        row.pop("size")
        return row


def _batch_row(op: str, items: int, d: int | None, encoding: str | None, data: bytes, receipt: Any,
               sstores: int, client: Any, individual: tuple[int, int] | None = None) -> BatchRow:
    from node.chain.fees import TxSize, raw_transaction

    floor = batch_floor(sstores, data, receipt.logs)
    gas = receipt.gas_used
    raw = raw_transaction(client, receipt.tx_hash)
    return BatchRow(op, items, d, encoding, gas, floor, round(gas / floor, 4), round(gas / items, 1),
                    round(floor / items, 1), len(data), *(individual or (None, None)),
                    TxSize.of(gas, raw) if raw is not None else None)


def measure_batches(rpc_url: str, *, seed: int = 0) -> list[BatchRow]:
    """Deploy fresh contracts on `rpc_url` (a dev chain) and measure every batch and report row."""
    from node.chain.artifacts import load_protocol_artifacts
    from node.chain.client import Web3Client
    from node.chain.contracts import ChorusContracts, revert_decoder
    from node.chain.deploy import deploy
    from node.chain.events import TaskSubmitted
    from node.chain.settings import dev_account, require_dev_chain
    from node.protocol.enums import Arch, Encoding, Modality, Role
    from node.protocol.reports import pack_decision, report_args, sign_decision

    artifacts = load_protocol_artifacts()
    rng = random.Random(seed)
    admin = Web3Client(rpc_url, dev_account(AGGREGATOR_KEY), decoder=revert_decoder(artifacts))
    chain_id = admin.chain_id()
    require_dev_chain(chain_id)
    deployment = deploy(admin, rpc_url=rpc_url, artifacts=artifacts)
    board = ChorusContracts.from_deployment(admin, deployment, artifacts)
    board_address = deployment.address("TaskBoard")
    deadline = admin.block_timestamp() + 86_400

    def fresh_task(quorum: int = 1, reward: int = 0) -> int:
        return board.submit_task(rng.randbytes(64), Arch.M_FIXED, deadline, quorum, reward).event(TaskSubmitted).task_id

    def agent(key: int) -> ChorusContracts:
        return board.with_client(admin.with_account(dev_account(key)))

    model_id = rng.randbytes(32)
    board.register_model(model_id, EMBED_DIM, Encoding.F32, f"gas-batch-{EMBED_DIM}")
    board.register_agent(Role.FUSION, Modality.NONE, "http://127.0.0.1:9200")
    decider, embedder = agent(DECIDER_KEY), agent(EMBEDDER_KEY)
    decider.register_agent(Role.MARKET, Modality.SERIES, "http://127.0.0.1:9201")
    embedder.register_agent(Role.MARKET, Modality.SERIES, "http://127.0.0.1:9202", model_id, EMBED_DIM)
    signers = [agent(FIRST_SIGNER_KEY + i) for i in range(max(REPORT_SIGNERS))]
    for i, signer in enumerate(signers):
        signer.register_agent((Role.MARKET, Role.SENTIMENT, Role.RISK)[i % 3], Modality.SERIES,
                              f"http://127.0.0.1:{9210 + i}", model_id, EMBED_DIM)

    rows: list[BatchRow] = []
    for n in BATCH_SIZES:
        items = [pack_decision(fresh_task(), i % 3, 7_500 + i) for i in range(n)]
        data = board.calldata("TaskBoard", "publishDecisions", items)
        receipt = decider.result(decider.send("TaskBoard", "publishDecisions", items)).receipt
        rows.append(_batch_row("publishDecisions", n, None, None, data, receipt, n * ITEM_SSTORES, admin))
    for n in BATCH_SIZES:
        tasks = [fresh_task() for _ in range(n)]
        vectors = rng.randbytes(n * Encoding.F32.byte_length(EMBED_DIM))
        args = (tasks, model_id, Encoding.F32, vectors)
        data = board.calldata("TaskBoard", "publishEmbeddings", *args)
        receipt = embedder.result(embedder.send("TaskBoard", "publishEmbeddings", *args)).receipt
        rows.append(_batch_row("publishEmbeddings", n, EMBED_DIM, "f32", data, receipt, n * ITEM_SSTORES, admin))
    for n in REPORT_SIGNERS:
        decisions = [(i % 3, 6_000 + i) for i in range(n)]
        # The same decisions one transaction each, then finalize.
        task = fresh_task(quorum=n, reward=REWARD)
        individual_gas = individual_floor = 0
        for signer, (action, confidence) in zip(signers, decisions):
            data = board.calldata("TaskBoard", "publishDecision", task, action, confidence)
            receipt = signer.result(signer.send("TaskBoard", "publishDecision", task, action, confidence)).receipt
            individual_gas += receipt.gas_used
            individual_floor += gas_floor("publishDecision", data, receipt.logs)
        data = board.calldata("TaskBoard", "finalize", task)
        receipt = board.result(board.send("TaskBoard", "finalize", task)).receipt
        individual_gas += receipt.gas_used
        individual_floor += batch_floor(FINALIZE_SSTORES, data, receipt.logs)
        # The report.
        task = fresh_task(quorum=n, reward=REWARD)
        signed = [sign_decision(signer.client.account.key, chain_id=chain_id, board=board_address, task_id=task,
                                action=action, confidence=confidence, model_id=model_id)
                  for signer, (action, confidence) in zip(signers, decisions)]
        data = board.calldata("TaskBoard", "submitReport", task, report_args(signed))
        receipt = board.result(board.send("TaskBoard", "submitReport", task, report_args(signed))).receipt
        rows.append(_batch_row("report", n, None, None, data, receipt, report_sstores(n), admin,
                               (individual_gas, individual_floor)))
    return rows


def run(rpc_url: str | None, seed: int = 0) -> list[BatchRow]:
    """Measure on `rpc_url`, or on a throwaway Anvil started (and always stopped) here."""
    return on_chain(measure_batches, rpc_url, seed)


def main() -> None:
    """`python -m node.bench.gasbatch [RPC_URL]`: print the rows as a table."""
    import sys

    rows = run(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"{'op':<18}{'N':>4}{'gas':>11}{'floor':>11}{'ratio':>7}{'gas/item':>11}{'floor/item':>11}"
          f"{'individual':>12}{'vs indiv.':>11}")
    for r in rows:
        individual = f"{r.individual_gas:>12,}" if r.individual_gas else f"{'-':>12}"
        saving = f"{r.gas / r.individual_gas:>11.3f}" if r.individual_gas else f"{'-':>11}"
        print(f"{r.op:<18}{r.items:>4}{r.gas:>11,}{r.floor:>11,}{r.ratio:>7.3f}{r.gas_per_item:>11,.0f}"
              f"{r.floor_per_item:>11,.0f}{individual}{saving}")


if __name__ == "__main__":
    main()
