"""The gas of each publication against the floor the protocol's rules impose (`chorus gas`).

What is measured. A fresh deployment; one model per d in {8, 32, 128, 384} (dtype f32), one agent
per model (dev keys 1..4) plus a decisions-only market agent (dev key 5). Each publication goes to
a task of its own, so every storage write is a real first publication, never a cheaper repeat:
publishDecision once, publishEmbedding for every d x encoding {f32, f16, i8, binary}. Vectors are
seeded random bytes, so calldata has the share of zero bytes real vectors have (about 1/256).

The floor of one transaction, in gas (post-Prague rules, EIP-2028/2929/7623):

    floor = 21000 + max(calldata + logs + sstores, 10 * tokens)

- `calldata` = 4 per zero byte + 16 per non-zero byte of the transaction's input (selector and
  ABI encoding included), `tokens` = zero bytes + 4 * non-zero bytes: since EIP-7623 a
  transaction pays at least 10 gas per token, whatever it executes.
- `logs` = for each log in the receipt: 375 + 375 per topic + 8 per data byte (LOG0..LOG4).
- `sstores` = the storage writes the protocol's state change cannot avoid, priced cold (first
  touch in the transaction): 22100 for a slot set from zero (20000 + 2100 cold access), 5000 for
  a non-zero slot rewritten (2900 + 2100). They are stated per operation in `SSTORES` below,
  from TaskBoard's storage layout (checked against the forge artifact's `storageLayout`, and
  against a trace of each publication in tests/chain/test_chain_gas_trace.py).

Everything else a real transaction spends (opcodes, memory, the registry call, the cold SLOADs
of checks) is overhead, so `ratio = gas / floor` >= 1 and close to 1 is good.

What it costs in money. Each row also carries its signed transaction's compressed sizes (FastLZ,
Brotli) and, at a `Prices` (`node.bench.fees`), its cost in US dollars on Ethereum L1, an OP Stack
chain (Fjord) and Arbitrum.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from node.protocol.enums import Encoding

if TYPE_CHECKING:
    from node.chain.api import Log
    from node.chain.fees import Prices, TxSize

R = TypeVar("R")

TX_BASE = 21_000
ZERO_BYTE, NONZERO_BYTE = 4, 16  # EIP-2028
FLOOR_PER_TOKEN = 10  # EIP-7623: tokens = zero + 4 * non-zero bytes
LOG_BASE, LOG_TOPIC, LOG_BYTE = 375, 375, 8
SSTORE_SET_COLD = 22_100  # zero -> non-zero, slot cold: 20000 + 2100
SSTORE_RESET_COLD = 5_000  # non-zero -> non-zero, slot cold: 2900 + 2100

# The SSTOREs each publication needs, as (the slot written, its Solidity state variable if it has one,
# gas). TaskBoard's storage layout (checked against the artifact's storageLayout where a label is
# given; tests/chain/test_chain_gas_trace.py also counts the SSTOREs in a trace of each publication):
#   flags(task, agent)  one slot per (task, agent) with the embedding / decision / claimed bits; a
#                       first publication sets it from zero. (Its slot is a hash TaskBoard computes
#                       itself, so it has no storageLayout label.)
#   _tasks[task].state  the task's hot slot: deadline, arch, status, decisions, contributors and the
#                       three tallies. Non-zero from submission on; an agent's first publication
#                       counts it as a contributor, a decision adds to a tally and the decision count.
SSTORES: dict[str, tuple[tuple[str, str | None, int], ...]] = {
    "publishEmbedding": (("flags(task, agent)", None, SSTORE_SET_COLD),
                         ("_tasks[task].state", "_tasks", SSTORE_RESET_COLD)),
    "publishDecision": (("flags(task, agent)", None, SSTORE_SET_COLD),
                        ("_tasks[task].state", "_tasks", SSTORE_RESET_COLD)),
}

DIMS = (8, 32, 128, 384)
ENCODINGS = Encoding.labels()


def calldata_cost(data: bytes) -> int:
    """Standard calldata gas: 4 per zero byte, 16 per non-zero byte."""
    zeros = data.count(0)
    return ZERO_BYTE * zeros + NONZERO_BYTE * (len(data) - zeros)


def calldata_floor(data: bytes) -> int:
    """EIP-7623 floor on calldata alone: 10 per token, a non-zero byte being 4 tokens."""
    zeros = data.count(0)
    return FLOOR_PER_TOKEN * (zeros + 4 * (len(data) - zeros))


def log_cost(logs: Iterable[Log]) -> int:
    """LOG opcode gas of the receipt's logs: 375 + 375 per topic + 8 per data byte each."""
    return sum(LOG_BASE + LOG_TOPIC * len(entry.topics) + LOG_BYTE * len(entry.data) for entry in logs)


def sstore_cost(op: str) -> int:
    """Gas of the storage writes `op` needs (see SSTORES)."""
    return sum(gas for _, _, gas in SSTORES[op])


def gas_floor(op: str, data: bytes, logs: Sequence[Log]) -> int:
    """21000 + max(calldata + logs + sstores, EIP-7623 floor) for one transaction."""
    return TX_BASE + max(calldata_cost(data) + log_cost(logs) + sstore_cost(op), calldata_floor(data))


@dataclass(frozen=True)
class GasRow:
    """One measured publication."""

    op: str
    d: int | None
    encoding: str | None
    gas: int
    floor: int
    ratio: float
    calldata_bytes: int
    size: TxSize | None = None
    """The signed transaction's sizes (`node.chain.fees.TxSize`); None where the RPC gave no bytes."""

    def public(self, prices: Prices | None = None) -> dict[str, Any]:
        """The row as `--json` prints it; with `prices`, also its signed bytes' sizes and `cost_usd`
        ({l1, op, arbitrum}, None without the bytes)."""
        from node.bench.fees import row_cost_usd

        row = asdict(self)
        row.pop("calldata_bytes")
        row.pop("size")
        if prices is not None:
            size = self.size
            row.update(signed_bytes=size.raw_bytes if size else None, fastlz_bytes=size.fastlz_bytes if size else None,
                       brotli_bytes=size.brotli_bytes if size else None, cost_usd=row_cost_usd(self, prices))
        return row


def _row(op: str, d: int | None, encoding: str | None, data: bytes, receipt: Any, client: Any = None) -> GasRow:
    from node.chain.fees import TxSize, raw_transaction

    floor = gas_floor(op, data, receipt.logs)
    raw = raw_transaction(client, receipt.tx_hash) if client is not None else None
    size = TxSize.of(receipt.gas_used, raw) if raw is not None else None
    return GasRow(op, d, encoding, receipt.gas_used, floor, round(receipt.gas_used / floor, 4), len(data), size)


def measure(rpc_url: str, *, seed: int = 0) -> list[GasRow]:
    """Deploy fresh contracts on `rpc_url` (a dev chain: dev keys sign) and measure every row."""
    from node.chain.artifacts import load_protocol_artifacts
    from node.chain.client import Web3Client
    from node.chain.contracts import ChorusContracts, revert_decoder
    from node.chain.deploy import deploy
    from node.chain.events import TaskSubmitted
    from node.chain.settings import dev_account, require_dev_chain
    from node.protocol.enums import Action, Arch, Modality, Role
    from node.protocol.errors import ArtifactError

    artifacts = load_protocol_artifacts()
    layout = artifacts["TaskBoard"].storage_slots()
    missing = {label for slots in SSTORES.values() for _, label, _ in slots if label} - set(layout)
    if layout and missing:
        raise ArtifactError(f"TaskBoard's storage layout has no {sorted(missing)}: update SSTORES in {__name__}")

    rng = random.Random(seed)
    admin = Web3Client(rpc_url, dev_account(0), decoder=revert_decoder(artifacts))
    require_dev_chain(admin.chain_id())
    deployment = deploy(admin, rpc_url=rpc_url, artifacts=artifacts)
    board = ChorusContracts.from_deployment(admin, deployment, artifacts)
    deadline = admin.block_timestamp() + 86_400

    def fresh_task() -> int:
        return board.submit_task(rng.randbytes(64), Arch.M_FIXED, deadline, 1).event(TaskSubmitted).task_id

    rows: list[GasRow] = []
    decider = board.with_client(admin.with_account(dev_account(5)))
    decider.register_agent(Role.MARKET, Modality.SERIES, "http://127.0.0.1:9105")
    task = fresh_task()
    data = board.calldata("TaskBoard", "publishDecision", task, Action.BUY, 7_500)
    result = decider.result(decider.send("TaskBoard", "publishDecision", task, Action.BUY, 7_500))
    rows.append(_row("publishDecision", None, None, data, result.receipt, admin))

    for index, d in enumerate(DIMS, start=1):
        model_id = rng.randbytes(32)
        board.register_model(model_id, d, Encoding.F32, f"gas-bench-{d}")
        agent = board.with_client(admin.with_account(dev_account(index)))
        agent.register_agent(Role.MARKET, Modality.SERIES, f"http://127.0.0.1:{9100 + index}", model_id, d)
        for name in ENCODINGS:
            encoding = Encoding.parse(name)
            vector = rng.randbytes(encoding.byte_length(d))
            task = fresh_task()
            data = board.calldata("TaskBoard", "publishEmbedding", task, model_id, encoding, vector)
            result = agent.result(agent.send("TaskBoard", "publishEmbedding", task, model_id, encoding, vector))
            rows.append(_row("publishEmbedding", d, name, data, result.receipt, admin))
    from node.bench.gasbatch import measure_batches  # batched publications and signed reports
    rows.extend(row.gas_row() for row in measure_batches(rpc_url, seed=seed))
    return rows


def run(rpc_url: str | None, seed: int = 0) -> list[GasRow]:
    """Measure on `rpc_url`, or on a throwaway Anvil started (and always stopped) here."""
    return on_chain(measure, rpc_url, seed)


def on_chain(measure_on: Callable[..., list[R]], rpc_url: str | None, seed: int = 0) -> list[R]:
    """`measure_on(rpc_url, seed=seed)` on `rpc_url`, or on a throwaway Anvil started (and always
    stopped) here."""
    if rpc_url is not None:
        return measure_on(rpc_url, seed=seed)
    from node.devnet.anvil import Anvil

    anvil = Anvil.start(die_with_parent=True)
    try:
        return measure_on(anvil.rpc_url, seed=seed)
    finally:
        anvil.stop()
