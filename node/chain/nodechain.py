"""The chain as the node runtime uses it: block headers, the TaskBoard events it follows, a few
views, and a send path split into sign / persist / broadcast.

`NodeChain` adapts the chain layer (`Web3Client` + `ChorusContracts`); tests pass a fake with the
same methods. The split send path exists for crash safety: the node writes a signed transaction
to its send log *before* broadcasting it (see `node.runtime.outbox`), which `ChainClient.send` (sign and
send in one call) cannot offer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from node.chain.api import Fees, Receipt, SentTx
from node.chain.client import Web3Client
from node.chain.contracts import ChorusContracts
from node.chain.events import AgentInfo, ChainEvent, Published, TaskInfo
from node.protocol.errors import ChainError, ContractRevert
from node.protocol.reports import SignedDecision, sign_decision

if TYPE_CHECKING:
    from node.chain.deploy import Deployment
    from node.chain.settings import ChainSettings

log = logging.getLogger(__name__)

WATCHED_EVENTS = ("TaskSubmitted", "EmbeddingPublished", "DecisionPublished", "ProbabilitiesPublished", "TaskFinalized",
                  "TaskReclaimed")
"""TaskBoard events the node follows."""

REGISTRY_EVENTS = ("AgentRegistered", "EndpointUpdated", "AgentDeregistered", "StakeWithdrawn")
"""AgentRegistry events that say who is registered, active, and at which endpoint (signed reports)."""


@dataclass(frozen=True)
class BlockHeader:
    number: int
    hash: str
    timestamp: int


@dataclass(frozen=True)
class SignedTx:
    tx_hash: str
    raw: bytes = field(repr=False)
    nonce: int
    fees: Fees


class NodeChain:
    """The node's view of the chain over the chain layer's web3 client and contract facade."""

    def __init__(self, client: Web3Client, contracts: ChorusContracts) -> None:
        self.client = client
        self.contracts = contracts

    # -- identity -------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self.client.address

    def chain_id(self) -> int:
        return self.client.chain_id()

    def address_of(self, contract: str) -> str:
        return self.contracts.addresses[contract]

    # -- reads ----------------------------------------------------------------------------------

    def header(self, block: int | str = "latest") -> BlockHeader | None:
        """Number, hash and timestamp of a block; None when the chain has no such block (yet)."""
        tag = hex(block) if isinstance(block, int) else block
        return _header(self.client.request("eth_getBlockByNumber", [tag, False]))

    def headers(self, blocks: list[int | str]) -> list[BlockHeader | None]:
        """`header` of several blocks, in one batch request (one round trip)."""
        results = self.client.request_batch(
            [("eth_getBlockByNumber", [hex(b) if isinstance(b, int) else b, False]) for b in blocks])
        for result in results:
            if isinstance(result, ChainError):
                raise result
        return [_header(r) for r in results]

    def silent_for(self) -> float:
        """Seconds the RPC has left a request of this node without any answer (0: it answers).
        Thread-safe: the health check reads it while the chain thread waits on that request."""
        return self.client.watch.silent_for()

    def take_silence(self) -> float:
        """The longest wait for an answer that ended since the previous call (an outage now over)."""
        return self.client.watch.take_silence()

    def events(self, from_block: int, to_block: int) -> list[ChainEvent]:
        """The TaskBoard events the node follows, in chain order; a JSON-RPC error reply (a range
        past the head after a reorg) raises `RpcErrorReply`."""
        found = self.contracts.events(from_block, to_block, names=WATCHED_EVENTS)
        events = [e for e in found if isinstance(e, ChainEvent)]
        return sorted(events, key=lambda e: (e.block_number, e.log_index))

    def published(self, task_id: int, agent: str | None = None) -> Published:
        return self.contracts.published(task_id, agent or self.address)

    def task_info(self, task_id: int) -> TaskInfo:
        return self.contracts.task_info(task_id)

    def agent_info(self, agent: str | None = None) -> AgentInfo:
        return self.contracts.agent_info(agent or self.address)

    def registry_events(self, from_block: int, to_block: int) -> list[ChainEvent]:
        """AgentRegistry's registrations, endpoint updates, deregistrations and withdrawals, in chain order."""
        found = self.contracts.events(from_block, to_block, names=REGISTRY_EVENTS)
        events = [e for e in found if isinstance(e, ChainEvent)]
        return sorted(events, key=lambda e: (e.block_number, e.log_index))

    def sign_decision(self, task_id: int, action: int, confidence: int, model_id: bytes) -> SignedDecision:
        """This node's decision on a task, signed as EIP-712 typed data for `TaskBoard.submitReport`."""
        return sign_decision(self.client.account.key, chain_id=self.chain_id(), board=self.address_of("TaskBoard"),
                             task_id=task_id, action=action, confidence=confidence, model_id=model_id)

    # -- the split send path --------------------------------------------------------------------

    def calldata(self, contract: str, function: str, *args: Any) -> bytes:
        return self.contracts.calldata(contract, function, *args)

    def estimate_gas(self, to: str, data: bytes, *, value: int = 0) -> int:
        """Gas estimate; a call that would revert raises ContractRevert (nothing is sent)."""
        return self.client.estimate_gas(to, data, value=value)

    @property
    def gas_margin(self) -> float:
        return self.client.fee_policy.gas_margin

    @property
    def bump_percent(self) -> int:
        """How much a replacement raises both fee caps, strictly more than this (the fee policy's)."""
        return self.client.fee_policy.bump_percent

    def suggest_fees(self) -> Fees:
        return self.client.suggest_fees()

    @contextmanager
    def reserve_nonce(self) -> Iterator[int]:
        """The key's next nonce, held until the body returns (then consumed) or raises (then not)."""
        with self.client.nonces.reserve() as nonce:
            yield nonce

    def resync_nonce(self) -> int:
        return self.client.nonces.resync()

    def nonce_at(self, block: str = "latest") -> int:
        address = self.address
        return int(self.client.request("eth_getTransactionCount", [address, block]), 16)

    def sign(self, *, nonce: int, to: str, data: bytes, value: int, gas: int, fees: Fees) -> SignedTx:
        tx = SentTx("", self.address, nonce, to, data, value, gas, fees)
        signed, raw = self.client.sign(tx, self.chain_id())
        return SignedTx(signed.tx_hash, raw, nonce, fees)

    def send_raw(self, raw: bytes, tx_hash: str) -> None:
        """Broadcast signed bytes. Resending the same bytes is harmless ("already known");
        raises NonceTaken, RpcUnavailable or ChainError (see `Web3Client.send_raw`)."""
        self.client.send_raw(raw, tx_hash)

    def get_receipt(self, tx_hash: str) -> Receipt | None:
        return self.client.get_receipt(tx_hash)

    def get_receipts(self, tx_hashes: list[str]) -> list[Receipt | None]:
        """The receipts of several transactions (None: not mined), in one batch request."""
        return self.client.get_receipts(tx_hashes)

    def tx_known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction (pending or mined)."""
        return self.client.request("eth_getTransactionByHash", [tx_hash]) is not None

    def txs_known(self, tx_hashes: list[str]) -> list[bool]:
        """`tx_known` of several transactions, in one batch request."""
        results = self.client.request_batch([("eth_getTransactionByHash", [h]) for h in tx_hashes])
        for result in results:
            if isinstance(result, ChainError):
                raise result
        return [r is not None for r in results]

    def explain_failure(self, receipt: Receipt) -> ContractRevert:
        """Why a mined transaction failed (see `Web3Client.explain_failure`)."""
        return self.client.explain_failure(receipt)


def _header(raw: Any) -> BlockHeader | None:
    if not raw:
        return None
    return BlockHeader(int(raw["number"], 16), str(raw["hash"]), int(raw["timestamp"], 16))


def connect_node_chain(settings: ChainSettings, deployment: Deployment, *, signing: bool = True) -> NodeChain:
    """A NodeChain for `settings` (a node's, or any process's chain settings) on `deployment`."""
    from node.chain.artifacts import load_protocol_artifacts
    from node.chain.client import connect
    from node.chain.contracts import revert_decoder

    artifacts = load_protocol_artifacts(settings.artifacts_dir)
    client = connect(settings, decoder=revert_decoder(artifacts), signing=signing)
    if client.chain_id() != deployment.chain_id:
        raise ChainError(f"the RPC serves chain id {client.chain_id()}, the deployment is on {deployment.chain_id}")
    contracts = ChorusContracts.from_deployment(client, deployment, artifacts)
    return NodeChain(client, contracts)

