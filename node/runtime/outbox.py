"""The node's send path: every transaction is signed, written to the send log, then broadcast.

Guarantees, with the send log in `node.runtime.sendlog`:
- A transaction is on disk (nonce, raw bytes, hash) before the RPC sees it. A node killed at any
  point finds it on restart and looks for *that* transaction (receipt, pool) before doing anything
  else; if the chain never got it and its nonce is still free, the same bytes are broadcast again
  (same hash, so at most one of them can ever be mined). A second publication for the same
  (task, kind) is never built while one is open or mined.
- One key's transactions reach the RPC in nonce order (the chain layer's nonce lock is held from
  nonce choice to broadcast), so Anvil's auto-mine cannot strand them (foundry-rs/foundry#10122).
- A transaction not mined after `bump_after_s` is replaced (same nonce) with both fee caps raised
  by strictly more than the chain's `bump_percent` (the `fee_bump_percent` setting, at least
  geth's replacement rule: +10% on maxFeePerGas *and* maxPriorityFeePerGas), which also
  satisfies Anvil's looser rule. Every replacement is written down before it is sent;
  any of the attempts may be the one that gets mined.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from node.chain.api import Fees, Receipt
from node.chain.client import bump_fees
from node.chain.nodechain import SignedTx
from node.protocol.errors import ChainError, NonceTaken, RpcUnavailable
from node.runtime.metrics import NodeMetrics
from node.runtime.sendlog import SendRecord, SendState
from node.runtime.store import Store

log = logging.getLogger(__name__)


class SendPort(Protocol):
    """What the outbox needs from the chain (`node.chain.nodechain.NodeChain`, or a fake in tests)."""

    @property
    def gas_margin(self) -> float: ...

    @property
    def bump_percent(self) -> int: ...

    def estimate_gas(self, to: str, data: bytes, *, value: int = 0) -> int: ...

    def suggest_fees(self) -> Fees: ...

    def reserve_nonce(self) -> AbstractContextManager[int]: ...  # the next nonce, consumed if the body returns

    def resync_nonce(self) -> int: ...

    def nonce_at(self, block: str = "latest") -> int: ...

    def sign(self, *, nonce: int, to: str, data: bytes, value: int, gas: int, fees: Fees) -> SignedTx: ...

    def send_raw(self, raw: bytes, tx_hash: str) -> None: ...

    def get_receipt(self, tx_hash: str) -> Receipt | None: ...

    # Optional, several in one round trip: `get_receipts(tx_hashes) -> list[Receipt | None]` and
    # `txs_known(tx_hashes) -> list[bool]`.

    def tx_known(self, tx_hash: str) -> bool: ...


@dataclass(frozen=True)
class Settled:
    """A send whose fate the last `poll` learned."""

    send: SendRecord
    receipt: Receipt | None


class Outbox:
    """Sign, persist, broadcast; then follow each transaction until it is mined or known dropped."""

    def __init__(self, chain: SendPort, store: Store, metrics: NodeMetrics | None = None, *,
                 bump_after_s: float = 15.0, max_attempts: int = 10,
                 may_resend: Callable[[SendRecord], bool] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.chain = chain
        self.store = store
        self.metrics = metrics
        self.bump_after_s = bump_after_s
        self.max_attempts = max_attempts
        self._may_resend = may_resend or (lambda send: True)
        self._clock = clock

    # -- sending --------------------------------------------------------------------------------

    def send(self, *, kind: str, to: str, data: bytes, task_id: int | None = None, value: int = 0) -> SendRecord:
        """Estimate gas (a revert raises ContractRevert, nothing is written), then sign, persist and
        broadcast. An unreachable RPC leaves the send PREPARED for `poll` to rebroadcast."""
        gas = math.ceil(self.chain.estimate_gas(to, data, value=value) * self.chain.gas_margin)
        for _ in range(3):
            try:
                return self._send_once(kind=kind, to=to, data=data, task_id=task_id, value=value, gas=gas)
            except NonceTaken as exc:
                log.info("nonce taken while sending %s for task %s (%s); resyncing", kind, task_id, exc)
                self.chain.resync_nonce()
        raise ChainError(f"could not send {kind} for task {task_id}: no free nonce after 3 tries")

    def _send_once(self, *, kind: str, to: str, data: bytes, task_id: int | None, value: int, gas: int) -> SendRecord:
        with self.chain.reserve_nonce() as nonce:
            fees = self.chain.suggest_fees()
            signed = self.chain.sign(nonce=nonce, to=to, data=data, value=value, gas=gas, fees=fees)
            send_id = self.store.record_send(task_id=task_id, kind=kind, nonce=nonce, tx_hash=signed.tx_hash,
                                             raw=signed.raw, max_fee_per_gas=fees.max_fee_per_gas,
                                             max_priority_fee_per_gas=fees.max_priority_fee_per_gas)
            try:
                self.chain.send_raw(signed.raw, signed.tx_hash)
            except NonceTaken:
                self.store.mark_send(send_id, SendState.DROPPED, error="nonce already used")
                raise  # the nonce is not consumed: the context manager sees the exception
            except RpcUnavailable as exc:
                # It may or may not have arrived; the bytes are on disk and `poll` finds out.
                log.warning("RPC unreachable while sending %s for task %s (tx %s): will retry", kind, task_id,
                            signed.tx_hash)
                if self.metrics:
                    self.metrics.rpc_errors.labels(operation="send").inc()
                self.store.mark_send(send_id, SendState.PREPARED, error=str(exc)[:200])
                return self.store.get_send(send_id)  # type: ignore[return-value]
            self.store.mark_send(send_id, SendState.SENT, sent_at=self._clock())
        log.debug("sent %s for task %s: %s nonce %d", kind, task_id, signed.tx_hash, nonce)
        return self.store.get_send(send_id)  # type: ignore[return-value]

    # -- following ------------------------------------------------------------------------------

    def poll(self) -> list[Settled]:
        """Check every open send once: receipt -> MINED/REVERTED; vanished -> rebroadcast or DROPPED;
        stuck -> fee bump. Returns the sends that settled (mined, reverted or dropped)."""
        settled: list[Settled] = []
        resync = False
        open_sends = self.store.open_sends()
        receipts = self._receipts([a.tx_hash for send in open_sends for a in send.attempts])
        found = {send.id: next((receipts[a.tx_hash] for a in reversed(send.attempts) if receipts.get(a.tx_hash)), None)
                 for send in open_sends}
        known = self._known([a.tx_hash for send in open_sends if found[send.id] is None for a in send.attempts])
        for send in open_sends:
            receipt = found[send.id]
            if receipt is not None:
                settled.append(Settled(self._settle(send, receipt), receipt))
                continue
            if any(known[a.tx_hash] for a in send.attempts):
                if send.status == SendState.PREPARED:
                    self.store.mark_send(send.id, SendState.SENT, sent_at=self._clock())
                self._maybe_bump(send)
                continue
            # Neither mined nor pending: lost in a crash before broadcast, a node restart, or a reorg.
            dropped = self._recover_vanished(send)
            if dropped is not None:
                settled.append(Settled(dropped, None))
                resync = True
        if resync:
            self.chain.resync_nonce()
        if self.metrics:
            self.metrics.pending_sends.set(len(open_sends) - len(settled))
        return settled

    def _receipts(self, tx_hashes: list[str]) -> dict[str, Receipt | None]:
        """The receipts of `tx_hashes` (None: not mined): one batch request when the chain offers
        `get_receipts`, else one request each."""
        if not tx_hashes:
            return {}
        batch = getattr(self.chain, "get_receipts", None)
        found = batch(tx_hashes) if batch is not None else [self.chain.get_receipt(h) for h in tx_hashes]
        return dict(zip(tx_hashes, found, strict=True))

    def _known(self, tx_hashes: list[str]) -> dict[str, bool]:
        """Whether the RPC has each of `tx_hashes` (pending or mined): one batch request when the
        chain offers `txs_known`, else one request each."""
        if not tx_hashes:
            return {}
        batch = getattr(self.chain, "txs_known", None)
        found = batch(tx_hashes) if batch is not None else [self.chain.tx_known(h) for h in tx_hashes]
        return dict(zip(tx_hashes, found, strict=True))

    def _settle(self, send: SendRecord, receipt: Receipt) -> SendRecord:
        status = SendState.MINED if receipt.succeeded else SendState.REVERTED
        self.store.mark_send(send.id, status, tx_hash=receipt.tx_hash, block_number=receipt.block_number,
                             gas_used=receipt.gas_used, effective_gas_price=receipt.effective_gas_price,
                             mined_at=self._clock())
        if self.metrics:
            self.metrics.transactions.labels(kind=send.kind).inc()
            self.metrics.gas_used.labels(kind=send.kind).inc(receipt.gas_used)
        return self.store.get_send(send.id)  # type: ignore[return-value]

    def _recover_vanished(self, send: SendRecord) -> SendRecord | None:
        """Rebroadcast the send's own bytes if its nonce is still free and it may still go out;
        else mark it DROPPED (returned)."""
        latest = send.attempts[-1]
        if not self._may_resend(send):
            self.store.mark_send(send.id, SendState.DROPPED, error="not resent: its task changed (reorg)")
            log.info("dropped %s for task %s (tx %s): its task changed", send.kind, send.task_id, latest.tx_hash)
            return self.store.get_send(send.id)
        if self.chain.nonce_at("latest") > send.nonce:
            # The nonce is used and none of our attempts has a receipt: another transaction took it.
            self.store.mark_send(send.id, SendState.DROPPED, error="nonce used by another transaction")
            log.warning("dropped %s for task %s (tx %s): nonce %d used elsewhere", send.kind, send.task_id,
                        latest.tx_hash, send.nonce)
            return self.store.get_send(send.id)
        try:
            self.chain.send_raw(latest.raw, latest.tx_hash)
        except NonceTaken as exc:
            self.store.mark_send(send.id, SendState.DROPPED, error=f"rebroadcast refused: {exc}"[:200])
            return self.store.get_send(send.id)
        log.info("rebroadcast %s for task %s: tx %s (nonce %d)", send.kind, send.task_id, latest.tx_hash, send.nonce)
        self.store.mark_send(send.id, SendState.SENT, sent_at=self._clock())
        return None

    def _maybe_bump(self, send: SendRecord) -> None:
        latest = send.attempts[-1]
        age = self._clock() - (latest.created_at or self._clock())
        if age < self.bump_after_s or len(send.attempts) >= self.max_attempts:
            return
        to, data, value, gas = tx_body(latest.raw)
        old = Fees(int(latest.max_fee_per_gas or 0), int(latest.max_priority_fee_per_gas or 0))
        fees = bump_fees(old, self.chain.suggest_fees(), self.chain.bump_percent)
        signed = self.chain.sign(nonce=send.nonce, to=to, data=data, value=value, gas=gas, fees=fees)
        self.store.add_attempt(send.id, tx_hash=signed.tx_hash, raw=signed.raw, max_fee_per_gas=fees.max_fee_per_gas,
                               max_priority_fee_per_gas=fees.max_priority_fee_per_gas)
        try:
            self.chain.send_raw(signed.raw, signed.tx_hash)
        except NonceTaken as exc:
            # An earlier attempt was mined meanwhile (its receipt shows on the next poll).
            log.info("replacement of %s refused (%s); an earlier attempt is probably mined", latest.tx_hash, exc)
            return
        if self.metrics:
            self.metrics.fee_bumps.inc()
        log.info("bumped fees of %s for task %s after %.0fs: %s -> %s (maxFee %d, tip %d)", send.kind, send.task_id,
                 age, latest.tx_hash, signed.tx_hash, fees.max_fee_per_gas, fees.max_priority_fee_per_gas)

    def drain(self, timeout_s: float, interval_s: float = 0.1) -> bool:
        """Poll until no send is open or `timeout_s` passed (used at shutdown). True when drained."""
        deadline = time.monotonic() + timeout_s
        while self.store.open_sends():
            if time.monotonic() >= deadline:
                return False
            try:
                self.poll()
            except ChainError as exc:
                log.warning("while draining sends: %s", exc)
            time.sleep(interval_s)
        return True


def tx_body(raw: bytes) -> tuple[str, bytes, int, int]:
    """(to, data, value, gas) of a signed EIP-1559 transaction: what a replacement must repeat."""
    from eth_account.typed_transactions import TypedTransaction
    from eth_utils import to_checksum_address
    from hexbytes import HexBytes

    fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    return to_checksum_address(fields["to"]), bytes(fields["data"]), int(fields["value"]), int(fields["gas"])
