"""A fake chain for the node's unit tests: real signing, a geth-like transaction pool, scripted
blocks and events. Where a real chain adds nothing (backoff, replacement rules, crash windows).

`FakeChain` is the outbox's `SendPort`, `ScriptedSource` the watcher's `EventSource`, and
`FakeNodeChain` both plus the rest of the runtime's `ChainPort` (node.runtime.ports). A
`ScriptedSource` can fall silent (`go_silent`: reads block, like an RPC that stops answering) and
answers an out-of-range read as Anvil does (-32602 BlockOutOfRangeError)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from node.chain.api import Fees, Receipt
from node.chain.client import NonceManager
from node.chain.contracts import TxResult
from node.chain.events import AgentInfo, AgentRecord, ChainEvent, Published
from node.chain.nodechain import BlockHeader, SignedTx
from node.chain.rpcwatch import RpcWatch
from node.chain.settings import GETH_MIN_BUMP_PERCENT
from node.protocol.enums import ZERO_MODEL_ID
from node.protocol.errors import ChainError, ContractRevert, NonceTaken, RpcErrorReply, RpcUnavailable

GETH_PRICE_BUMP = GETH_MIN_BUMP_PERCENT  # percent, geth's txpool.pricebump default


def geth_accepts_replacement(old: Fees, new: Fees, bump: int = GETH_PRICE_BUMP) -> bool:
    """geth's legacypool rule: both caps strictly higher and at least `bump`% higher (floored)."""
    if new.max_fee_per_gas <= old.max_fee_per_gas or new.max_priority_fee_per_gas <= old.max_priority_fee_per_gas:
        return False
    threshold_fee = old.max_fee_per_gas * (100 + bump) // 100
    threshold_tip = old.max_priority_fee_per_gas * (100 + bump) // 100
    return new.max_fee_per_gas >= threshold_fee and new.max_priority_fee_per_gas >= threshold_tip


def anvil_accepts_replacement(old: Fees, new: Fees) -> bool:
    """Anvil's looser rule: any higher price replaces."""
    return new.max_fee_per_gas > old.max_fee_per_gas


@dataclass
class PoolTx:
    tx_hash: str
    raw: bytes
    nonce: int
    fees: Fees


@dataclass
class FakeChain:
    """One key's view of a chain. `automine` mines each accepted transaction at once."""

    automine: bool = True
    replacement_rule: str = "geth"
    down: bool = False
    estimate_reverts: Exception | None = None
    account: object = field(default_factory=Account.create)
    base_fees: Fees = field(default_factory=lambda: Fees(2_000_000_000, 1_000_000_000))
    mined_nonce: int = 0  # the account's nonce at "latest"
    block: int = 1
    pool: dict[int, PoolTx] = field(default_factory=dict)
    receipts: dict[str, Receipt] = field(default_factory=dict)
    broadcasts: list[str] = field(default_factory=list)
    on_broadcast: object = None  # callable(tx_hash) run before the pool sees the tx
    bump_percent: int = GETH_MIN_BUMP_PERCENT

    def __post_init__(self) -> None:
        self.nonces = NonceManager(lambda: self.mined_nonce + self._contiguous())

    # -- SendPort ---------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self.account.address

    gas_margin = 1.2

    def estimate_gas(self, to: str, data: bytes, *, value: int = 0) -> int:
        self._check_up()
        if self.estimate_reverts is not None:
            raise self.estimate_reverts
        return 50_000

    def suggest_fees(self) -> Fees:
        self._check_up()
        return self.base_fees

    @contextmanager
    def reserve_nonce(self) -> Iterator[int]:
        with self.nonces.reserve() as nonce:
            yield nonce

    def resync_nonce(self) -> int:
        return self.nonces.resync()

    def nonce_at(self, block: str = "latest") -> int:
        self._check_up()
        return self.mined_nonce if block == "latest" else self.mined_nonce + self._contiguous()

    def sign(self, *, nonce: int, to: str, data: bytes, value: int, gas: int, fees: Fees) -> SignedTx:
        signed = self.account.sign_transaction({
            "type": 2, "chainId": 31337, "nonce": nonce, "to": to, "value": value, "data": data, "gas": gas,
            "maxFeePerGas": fees.max_fee_per_gas, "maxPriorityFeePerGas": fees.max_priority_fee_per_gas})
        return SignedTx("0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction), nonce, fees)

    def send_raw(self, raw: bytes, tx_hash: str) -> None:
        self._check_up()
        if self.on_broadcast is not None:
            self.on_broadcast(tx_hash)
        fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        nonce = int(fields["nonce"])
        fees = Fees(int(fields["maxFeePerGas"]), int(fields["maxPriorityFeePerGas"]))
        if tx_hash in self.receipts or any(p.tx_hash == tx_hash for p in self.pool.values()):
            return  # already known
        if nonce < self.mined_nonce:
            raise NonceTaken("nonce too low")
        old = self.pool.get(nonce)
        if old is not None:
            ok = geth_accepts_replacement(old.fees, fees) if self.replacement_rule == "geth" \
                else anvil_accepts_replacement(old.fees, fees)
            if not ok:
                raise NonceTaken("replacement transaction underpriced")
        self.pool[nonce] = PoolTx(tx_hash, raw, nonce, fees)
        self.broadcasts.append(tx_hash)
        if self.automine:
            self.mine()

    def get_receipt(self, tx_hash: str) -> Receipt | None:
        self._check_up()
        return self.receipts.get(tx_hash)

    def tx_known(self, tx_hash: str) -> bool:
        self._check_up()
        return tx_hash in self.receipts or any(p.tx_hash == tx_hash for p in self.pool.values())

    # -- chain control ------------------------------------------------------------------------------

    def _contiguous(self) -> int:
        n = 0
        while self.mined_nonce + n in self.pool:
            n += 1
        return n

    def mine(self, status: int = 1) -> list[str]:
        """Mine every ready pool transaction (nonce order) into one block each."""
        mined = []
        while self.mined_nonce in self.pool:
            tx = self.pool.pop(self.mined_nonce)
            self.block += 1
            self.receipts[tx.tx_hash] = Receipt(tx.tx_hash, self.block, status, 45_000, tx.fees.max_fee_per_gas,
                                                self.address, None, None, ())
            self.mined_nonce += 1
            mined.append(tx.tx_hash)
        return mined

    def forget(self, tx_hash: str) -> None:
        """Drop a transaction from the pool (a node restart without persistence)."""
        self.pool = {n: p for n, p in self.pool.items() if p.tx_hash != tx_hash}

    def _check_up(self) -> None:
        if self.down:
            raise RpcUnavailable("RPC http://127.0.0.1:1 unavailable: connection refused")


@dataclass
class ScriptedSource:
    """Blocks (number -> hash) and events, for the watcher; `replace_from` fakes a reorg."""

    blocks: dict[int, str] = field(default_factory=dict)
    log: list[ChainEvent] = field(default_factory=list)
    down: bool = False
    mutate_between_reads: bool = False
    before_events: Callable[[], None] | None = None  # run as a range read begins (the chain moving under it)
    silent_timeout_s: float = 10.0  # how long a read waits while silent before it times out
    calls: int = 0
    _answering: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self._answering.set()

    def go_silent(self) -> None:
        """Reads block from now on (until `answer_again` or `silent_timeout_s`), as with an RPC
        whose TCP connection stays open but never answers."""
        self._answering.clear()

    def answer_again(self) -> None:
        self._answering.set()

    def _wait_for_answer(self) -> None:
        if not self._answering.wait(self.silent_timeout_s):
            raise RpcUnavailable("RPC unavailable: timed out")

    def add_block(self, events: list[ChainEvent] = (), tag: str = "a") -> int:
        number = max(self.blocks, default=0) + 1
        self.blocks[number] = f"0x{tag}{number:063x}"[:66]
        for i, ev in enumerate(events):
            object.__setattr__(ev, "block_number", number)
            object.__setattr__(ev, "log_index", i)
            self.log.append(ev)
        return number

    def replace_from(self, number: int, tag: str = "b") -> None:
        """Drop blocks >= number and their events (the caller adds new ones)."""
        self.blocks = {n: h for n, h in self.blocks.items() if n < number}
        self.log = [e for e in self.log if e.block_number < number]

    def header(self, block: int | str = "latest") -> BlockHeader | None:
        self.calls += 1
        self._wait_for_answer()
        if self.down:
            raise RpcUnavailable("RPC unavailable: connection refused")
        number = max(self.blocks, default=0) if block == "latest" else int(block)
        if number not in self.blocks:
            return None
        return BlockHeader(number, self.blocks[number], 1_700_000_000 + number)

    def events(self, from_block: int, to_block: int) -> list[ChainEvent]:
        self._wait_for_answer()
        if self.before_events is not None:
            self.before_events()
        if self.down:
            raise RpcUnavailable("RPC unavailable: connection refused")
        head = max(self.blocks, default=0)
        if to_block > head:
            raise RpcErrorReply("eth_getLogs", -32602,
                                f"BlockOutOfRangeError: block height is {head} but requested was {to_block}")
        found = [e for e in self.log if from_block <= e.block_number <= to_block]
        if self.mutate_between_reads:
            self.blocks[to_block] = "0x" + "f" * 64
            self.mutate_between_reads = False
        return found


@dataclass
class FakeRegistrar:
    """The registry calls of start-up, in memory; `calls` records each one sent."""

    address: str
    models: set[bytes] = field(default_factory=set)
    record: AgentRecord | None = None
    info: AgentInfo | None = None
    calls: list[str] = field(default_factory=list)

    def _mined(self, what: str) -> TxResult:
        self.calls.append(what)
        tx_hash = "0x" + f"{len(self.calls):064x}"
        return TxResult(Receipt(tx_hash, 1, 1, 100_000, 1, self.address, None, None, ()), ())

    def agent(self, agent: str | None = None) -> AgentRecord:
        return self.record or AgentRecord(0, 0, 0, 0, 0, False, ZERO_MODEL_ID)

    def min_stake(self) -> int:
        return 10**16

    def is_model_registered(self, model_id: bytes) -> bool:
        return model_id in self.models

    def register_model(self, model_id: bytes, dim: int, dtype: int, name: str) -> TxResult:
        self.models.add(model_id)
        return self._mined("register_model")

    def register_agent(self, role: int, modality: int, endpoint: str, model_id: bytes = ZERO_MODEL_ID,
                       dim: int = 0, stake: int | None = None) -> TxResult:
        self.record = AgentRecord(stake or self.min_stake(), 0, role, modality, dim, True, model_id)
        self.info = AgentInfo(True, role, dim, model_id)
        return self._mined("register_agent")

    def update_endpoint(self, endpoint: str) -> TxResult:
        return self._mined("update_endpoint")


@dataclass
class FakeNodeChain(FakeChain):
    """FakeChain (the send path) + ScriptedSource (blocks and events) + what the runtime asks besides."""

    board: str = field(default_factory=lambda: Account.create().address)
    source: ScriptedSource = field(default_factory=ScriptedSource)
    claims: list[int] = field(default_factory=list)  # task ids of every claimReward calldata built
    estimates: int = 0
    revert_reason: ContractRevert | None = None  # what explain_failure says; None: it cannot tell

    def __post_init__(self) -> None:
        super().__post_init__()
        self.contracts = FakeRegistrar(self.address)
        self.watch = RpcWatch()

    def _watched(self, read: Callable[[], object]) -> object:
        """A read timed by `watch` as the web3 client times its requests (no answer: RpcUnavailable)."""
        return self.watch.timed(read, (RpcUnavailable,))

    def silent_for(self) -> float:
        return self.watch.silent_for()

    def take_silence(self) -> float:
        return self.watch.take_silence()

    def address_of(self, contract: str) -> str:
        return self.board

    def calldata(self, contract: str, function: str, *args: object) -> bytes:
        if function == "claimReward":
            self.claims.append(int(args[0]))
        return f"{function}{args}".encode()

    def estimate_gas(self, to: str, data: bytes, *, value: int = 0) -> int:
        self.estimates += 1
        return super().estimate_gas(to, data, value=value)

    def agent_info(self, agent: str | None = None) -> AgentInfo:
        return self.contracts.info or AgentInfo(False, 0, 0, ZERO_MODEL_ID)

    def published(self, task_id: int, agent: str | None = None) -> Published:
        return Published(False, False, False)

    def explain_failure(self, receipt: Receipt) -> ContractRevert:
        if self.revert_reason is None:
            raise ChainError(f"no revert data for {receipt.tx_hash}")
        return self.revert_reason

    def header(self, block: int | str = "latest") -> BlockHeader | None:
        return self._watched(lambda: self.source.header(block))  # type: ignore[return-value]

    def events(self, from_block: int, to_block: int) -> list[ChainEvent]:
        return self._watched(lambda: self.source.events(from_block, to_block))  # type: ignore[return-value]
