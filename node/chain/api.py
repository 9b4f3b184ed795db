"""The chain client interface, split from its backend (ape's `api/` pattern).

Everything above the chain layer (agents, the node, the facade in `node.chain.contracts`) talks
to a `ChainClient`; `node.chain.client.Web3Client` implements it over JSON-RPC, and tests may pass
a fake where a real chain adds nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

BlockId = int | str  # a number, or "latest" / "pending" / "earliest" / "safe" / "finalized"


@dataclass(frozen=True)
class Log:
    """One log entry as the chain returns it."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes = field(repr=False)
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Receipt:
    """A mined transaction's receipt."""

    tx_hash: str
    block_number: int
    status: int  # 1 success, 0 reverted
    gas_used: int
    effective_gas_price: int
    sender: str
    to: str | None
    contract_address: str | None
    logs: tuple[Log, ...] = field(repr=False)

    @property
    def succeeded(self) -> bool:
        return self.status == 1


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fee caps of one transaction."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True)
class SentTx:
    """A signed transaction the node accepted into its pool; enough to wait for or replace it."""

    tx_hash: str
    sender: str
    nonce: int
    to: str | None
    data: bytes = field(repr=False)
    value: int
    gas: int
    fees: Fees


class ChainClient(ABC):
    """Send and read through one chain, signing locally with one key."""

    @property
    @abstractmethod
    def address(self) -> str:
        """Checksummed address of the signing key."""

    @abstractmethod
    def chain_id(self) -> int:
        """The chain id the RPC reports."""

    @abstractmethod
    def block_number(self) -> int:
        """The latest block number."""

    @abstractmethod
    def block_timestamp(self, block: BlockId = "latest") -> int:
        """The timestamp of `block` (seconds); deadlines are compared with it on chain."""

    @abstractmethod
    def call(self, to: str, data: bytes, *, value: int = 0, block: BlockId = "latest") -> bytes:
        """eth_call from this client's address; a revert raises ContractRevert."""

    @abstractmethod
    def send(self, to: str | None, data: bytes, *, value: int = 0, gas: int | None = None,
             fees: Fees | None = None) -> SentTx:
        """Sign and send a transaction (`to=None` deploys); returns once the node accepted it.

        Without `gas`, the gas is estimated first, so a transaction that would revert raises
        ContractRevert here and is never sent.
        """

    @abstractmethod
    def wait(self, tx: SentTx | str, *, timeout: float | None = None) -> Receipt:
        """Wait for the receipt; status 0 raises ContractRevert (decoded by replaying the call)."""

    @abstractmethod
    def replace(self, tx: SentTx, *, fees: Fees | None = None) -> SentTx:
        """Resend `tx` (same nonce, recipient, data, value) with higher fees: a stuck-tx bump."""

    @abstractmethod
    def get_receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt if the transaction is mined, else None. Never raises on a failed tx."""

    @abstractmethod
    def get_logs(self, *, address: str | Sequence[str] | None = None,
                 topics: Sequence[bytes | Sequence[bytes] | None] | None = None,
                 from_block: BlockId = 0, to_block: BlockId = "latest") -> list[Log]:
        """eth_getLogs."""

    def transact(self, to: str | None, data: bytes, *, value: int = 0, gas: int | None = None,
                 timeout: float | None = None) -> Receipt:
        """send + wait."""
        return self.wait(self.send(to, data, value=value, gas=gas), timeout=timeout)
