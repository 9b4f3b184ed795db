"""The web3.py backend of `ChainClient`: local signing, nonces, EIP-1559 fees, receipts, reverts.

- Signing is local (eth-account, whose eth-keys uses the coincurve backend when it is installed:
  `signing_backend()` says which). The RPC node never holds our key: no eth_sendTransaction.
- One `NonceManager` per sender. Its lock is held from nonce choice until the node accepted the
  raw transaction, so one key's transactions reach the node strictly in nonce order, even from
  many threads. Anvil's auto-mine can strand transactions that arrive out of nonce order
  (foundry-rs/foundry#10122); ordered sends avoid that on any node, at the cost of serialising
  one key's sends (receipts are still awaited in parallel).
- Reads are retried with exponential backoff on connection errors, each failed try logged at
  WARNING with its method and duration. A raw-transaction send is retried too: the same signed
  bytes have the same hash, so a resend is idempotent ("already known", or "nonce too low" for a
  hash the node already has, both count as accepted). A JSON-RPC error reply to a read (e.g.
  -32602 BlockOutOfRangeError from eth_getLogs after a reorg) is raised as `RpcErrorReply`.
- `watch` (`node.chain.rpcwatch.RpcWatch`) times how long the client has waited for any answer.
- Transport: a plain-HTTP RPC URL (a local node, the devnet) is served over one keep-alive
  `http.client` connection per thread (`KeepAliveHTTPProvider`, ~0.2 ms per call instead of
  ~1 ms through `requests`); https, credentials in the URL or a proxy keep web3's `requests`
  transport. The hot reads and the raw send (`block_number`, `get_receipt(s)`, `get_logs`,
  `estimate_gas`, `send_raw`) go out as raw JSON-RPC and are parsed here, without web3's
  formatters; `request_batch` sends several reads in one JSON-RPC batch (one round trip).
- A transaction that would revert is caught by gas estimation and raised as `ContractRevert`
  before it is sent; a mined failure (status 0) is replayed with eth_call at its block to get the
  revert data.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from eth_utils import to_checksum_address
from web3 import HTTPProvider, Web3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TransactionNotFound,
    Web3RPCError,
)

from node.chain.abi import RevertDecoder
from node.chain.api import BlockId, ChainClient, Fees, Log, Receipt, SentTx
from node.chain.rpcwatch import RpcWatch
from node.chain.settings import GETH_MIN_BUMP_PERCENT
from node.protocol.errors import (
    ChainError,
    ConfigError,
    ContractRevert,
    NonceTaken,
    RpcErrorReply,
    RpcUnavailable,
    safe_url,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from node.chain.settings import ChainSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

_BUSY_STATUSES = frozenset({429, 502, 503, 504})
"""HTTP statuses that say "not now" (rate limited, a gateway without its upstream): retried like a
dropped connection, never taken for an answer."""


class RpcBusy(ConnectionError):
    """The RPC's HTTP front answered one of `_BUSY_STATUSES` instead of a JSON-RPC reply."""


_CONNECTION_ERRORS = (requests.ConnectionError, requests.Timeout, ProviderConnectionError, RequestTimedOut,
                      ConnectionError, TimeoutError)


def _busy_as_no_answer(fn: Callable[[], T]) -> T:
    """`fn()`, with an HTTP 429/502/503/504 from the provider raised as `RpcBusy` (retryable)."""
    try:
        return fn()
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in _BUSY_STATUSES:
            raise RpcBusy(f"HTTP {status} {exc.response.reason or ''}".strip()) from None
        raise


@functools.cache
def signing_backend() -> str:
    """Name of the ECC backend eth-keys signs with ('CoinCurveECCBackend' when coincurve is installed).

    eth-keys picks coincurve (libsecp256k1) by itself when it is importable, unless the
    ECC_BACKEND_CLASS environment variable says otherwise; the pure-Python fallback is ~50x slower.
    """
    from eth_keys.backends import get_backend

    name = type(get_backend()).__name__
    if name != "CoinCurveECCBackend":
        log.warning("eth-keys signs with %s, not coincurve: signing will be slow (pip install coincurve)", name)
    return name


# --- transport --------------------------------------------------------------------------------


class KeepAliveHTTPProvider(HTTPProvider):
    """web3's `HTTPProvider` with a lean transport for plain-HTTP RPC URLs (a local node, a devnet).

    `requests` costs ~0.8 ms of CPU per call on top of the socket work (it re-reads the proxy
    environment and .netrc on every request); here each thread keeps one `http.client` keep-alive
    connection and a JSON-RPC call costs ~0.2 ms. Everything else is web3's (encoding, decoding,
    batches). An https URL, one with credentials in it, or one the environment routes through a
    proxy keeps web3's own `requests` transport. Failures are the ones the client already treats as
    "no answer": `ConnectionError` (refused, reset, closed), `TimeoutError`, and
    `requests.HTTPError` for a non-2xx status (so 429/502/503/504 are retried as before).
    """

    def __init__(self, endpoint_uri: str, *, timeout: float, **kwargs: Any) -> None:
        super().__init__(endpoint_uri, request_kwargs={"timeout": timeout}, **kwargs)
        self._timeout = timeout
        self._local = threading.local()
        self._lean = _lean_target(str(endpoint_uri))

    def _make_request(self, method: Any, request_data: bytes) -> bytes:
        if self._lean is None:
            return super()._make_request(method, request_data)
        return self._post(request_data)

    def make_batch_request(self, batch_requests: list[tuple[Any, Any]]) -> Any:
        if self._lean is None:
            return super().make_batch_request(batch_requests)
        response = self.decode_rpc_response(self._post(self.encode_batch_rpc_request(batch_requests)))
        if not isinstance(response, list):
            return response  # one error object for the whole batch
        return sorted(response, key=lambda r: r.get("id") if isinstance(r.get("id"), int) else -1)

    def _post(self, body: bytes) -> bytes:
        import http.client

        host, port, path = self._lean  # type: ignore[misc]
        for fresh_try in (False, True):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
                self._local.conn = conn
            try:
                conn.request("POST", path, body=body, headers=_JSON_HEADERS)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self._drop()
                if reused and not fresh_try:
                    continue  # the server closed an idle keep-alive connection: one fresh try
                raise ConnectionError(str(exc) or type(exc).__name__) from None
            except (TimeoutError, ConnectionError):
                self._drop()
                raise
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise ConnectionError(f"{type(exc).__name__}: {exc}") from None
            if response.will_close:
                self._drop()
            if not 200 <= response.status < 300:
                failed = requests.Response()
                failed.status_code, failed.reason, failed.url = response.status, response.reason, self.endpoint_uri
                raise requests.HTTPError(f"{response.status} {response.reason} for {safe_url(str(self.endpoint_uri))}",
                                         response=failed)
            return data
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()


_JSON_HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}


def _lean_target(url: str) -> tuple[str, int, str] | None:
    """(host, port, path) when `url` can use the lean transport: plain http, no credentials, no proxy."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return None
    if requests.utils.get_environ_proxies(url):
        return None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


# --- fees -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeePolicy:
    """How fees and gas limits are chosen."""

    base_fee_multiplier: int = 2  # maxFee = multiplier * baseFee + tip
    priority_fee_wei: int | None = None  # None: ask the node once (eth_maxPriorityFeePerGas)
    gas_margin: float = 1.2  # gas limit = estimate * margin
    bump_percent: int = GETH_MIN_BUMP_PERCENT  # replacements raise both caps by more (fee_bump_percent)
    fee_cache_s: float = 0.25  # reuse the base fee this long (it moves <= 12.5% per block)


def fees_for(base_fee: int, tip: int, multiplier: int = 2) -> Fees:
    """EIP-1559 caps for a block with `base_fee`: maxFee = multiplier * baseFee + tip."""
    return Fees(max_fee_per_gas=multiplier * base_fee + tip, max_priority_fee_per_gas=tip)


def min_replacement(value: int, percent: int = GETH_MIN_BUMP_PERCENT) -> int:
    """Smallest value a replacement may carry: strictly more than `percent`% above `value`.

    geth's pool accepts a replacement only if both fee caps rise by at least 10%; adding 1 wei on
    top of the floored 10% keeps rounding from ever landing below the threshold.
    """
    return value + value * percent // 100 + 1


def bump_fees(old: Fees, current: Fees | None = None, percent: int = GETH_MIN_BUMP_PERCENT) -> Fees:
    """Fees for replacing a transaction that carried `old`: each cap at least `min_replacement` of
    the old one, and no lower than what the market asks now (`current`)."""
    tip = min_replacement(old.max_priority_fee_per_gas, percent)
    max_fee = min_replacement(old.max_fee_per_gas, percent)
    if current is not None:
        tip = max(tip, current.max_priority_fee_per_gas)
        max_fee = max(max_fee, current.max_fee_per_gas)
    return Fees(max_fee_per_gas=max(max_fee, tip), max_priority_fee_per_gas=tip)


# --- nonces -----------------------------------------------------------------------------------


class NonceManager:
    """Hands out one sender's nonces to concurrent threads without gaps or duplicates.

    The first nonce comes from `eth_getTransactionCount(address, "pending")`; after that the
    count is local. `reserve()` holds the lock while the caller signs and sends; the nonce is
    consumed only if the body returns normally, so a failed send leaves no gap.
    """

    def __init__(self, fetch_pending: Callable[[], int]) -> None:
        self._fetch = fetch_pending
        self._lock = threading.RLock()
        self._next: int | None = None

    @contextmanager
    def reserve(self) -> Iterator[int]:
        """Yield the next nonce under the sender's lock; commit it when the body succeeds."""
        with self._lock:
            if self._next is None:
                self._next = self._fetch()
            nonce = self._next
            yield nonce
            self._next = nonce + 1

    def resync(self) -> int:
        """Forget the local count and re-read the pending count (after "nonce too low")."""
        with self._lock:
            self._next = self._fetch()
            return self._next

    def reset(self) -> None:
        """Re-read the count on next use (after a chain revert, e.g. evm_revert in tests)."""
        with self._lock:
            self._next = None


def _rpc_message(exc: Web3RPCError) -> str:
    response = exc.rpc_response or {}
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return str(exc.message)


def _is_nonce_conflict(message: str) -> bool:
    m = message.lower()
    return "nonce too low" in m or "nonce is too low" in m or "replacement transaction underpriced" in m


def _is_already_known(message: str) -> bool:
    m = message.lower()
    return "already known" in m or "already imported" in m or "known transaction" in m


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


def _revert_data(exc: ContractLogicError) -> str | None:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    return data if isinstance(data, str) else None


# --- the client -------------------------------------------------------------------------------


class Web3Client(ChainClient):
    """`ChainClient` over an HTTP JSON-RPC endpoint, signing locally with `account`."""

    def __init__(
        self,
        rpc_url: str,
        account: LocalAccount | None = None,
        *,
        decoder: RevertDecoder | None = None,
        fee_policy: FeePolicy | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        receipt_timeout: float = 60.0,
        chain_id: int | None = None,
    ) -> None:
        self.rpc_url = rpc_url
        self._account = account
        self.decoder = decoder or RevertDecoder([])
        self.fee_policy = fee_policy or FeePolicy()
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self.receipt_timeout = receipt_timeout
        # web3's own retry loop is off: retries are decided here, per kind of request.
        provider = KeepAliveHTTPProvider(rpc_url, timeout=timeout, exception_retry_configuration=None)
        self.w3 = Web3(provider, middleware=[])
        self._chain_id = chain_id  # None: asked on first use
        self._tip: int | None = self.fee_policy.priority_fee_wei
        self._fees: tuple[float, Fees] | None = None
        self._nonces = NonceManager(self._pending_nonce)
        self.watch = RpcWatch()
        if account is not None:
            signing_backend()  # warns once if signing would fall back to pure Python

    # -- identity --------------------------------------------------------------------------

    @property
    def account(self) -> LocalAccount:
        if self._account is None:
            raise ConfigError("this chain client has no signing key")
        return self._account

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def nonces(self) -> NonceManager:
        return self._nonces

    def with_account(self, account: LocalAccount) -> Web3Client:
        """A client for another key on the same RPC, sharing the revert decoder and policies."""
        other = Web3Client(self.rpc_url, account, decoder=self.decoder, fee_policy=self.fee_policy,
                           timeout=self._timeout, retries=self._retries, backoff=self._backoff,
                           receipt_timeout=self.receipt_timeout, chain_id=self._chain_id)
        other.w3 = self.w3  # one HTTP session pool
        other.watch = self.watch  # and one view of whether that RPC answers
        return other

    # -- plumbing ---------------------------------------------------------------------------

    def _attempt(self, fn: Callable[[], T]) -> T:
        """One request, timed by `watch`: a connection error is no answer, anything else is one."""
        return self.watch.timed(lambda: _busy_as_no_answer(fn), _CONNECTION_ERRORS)

    def _no_answer(self, what: str, exc: BaseException, started: float, attempt: int) -> float:
        """Log a try that got no answer; returns the backoff before the next one."""
        delay = self._backoff * 2**attempt
        last = attempt == self._retries
        log.warning("RPC %s: %s %s after %.2fs (try %d of %d)%s", safe_url(self.rpc_url), what, _short(exc),
                    time.monotonic() - started, attempt + 1, self._retries + 1,
                    "; giving up" if last else f"; retrying in {delay:.2f}s")
        return delay

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Run a request that is safe to repeat; connection errors are retried with backoff."""
        for attempt in range(self._retries + 1):
            started = time.monotonic()
            try:
                return self._attempt(fn)
            except _CONNECTION_ERRORS as exc:
                delay = self._no_answer(what, exc, started, attempt)
                if attempt == self._retries:
                    raise RpcUnavailable(f"RPC {safe_url(self.rpc_url)} unavailable ({what}): {_short(exc)}"
                                         + (f" after {self._retries} retries" if self._retries else "")) from None
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _read(self, what: str, fn: Callable[[], T]) -> T:
        """`_retrying` for a plain read: a JSON-RPC error reply becomes `RpcErrorReply` (a
        `ChainError` the caller can retry), never web3's own exception."""
        try:
            return self._retrying(what, fn)
        except TransactionNotFound:
            raise
        except Web3RPCError as exc:
            raise _error_reply(what, exc) from None

    def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """A raw JSON-RPC request (e.g. anvil's `evm_snapshot`); returns `result`; an error reply
        raises `RpcErrorReply`."""
        return self._retrying(method, lambda: self._reply(method, params))

    def _reply(self, method: str, params: Sequence[Any]) -> Any:
        """One raw request, not retried: `result`, or `RpcErrorReply` for an error reply."""
        return _result_of(method, self.w3.provider.make_request(method, list(params)))  # type: ignore[arg-type]

    def request_batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several raw requests in one JSON-RPC batch (one HTTP round trip), retried as a whole on
        connection errors (use it for reads only). Returns each call's `result` in order, or the
        `RpcErrorReply` of a call the node answered with an error (returned, not raised)."""
        if not calls:
            return []
        if len(calls) == 1:
            method, params = calls[0]
            try:
                return [self.request(method, params)]
            except RpcErrorReply as exc:
                return [exc]
        what = f"{'+'.join(dict.fromkeys(method for method, _ in calls))} (batch of {len(calls)})"
        batch = [(method, list(params)) for method, params in calls]
        responses = self._retrying(what, lambda: self.w3.provider.make_batch_request(batch))  # type: ignore[arg-type]
        if not isinstance(responses, list) or len(responses) != len(calls):
            error = responses.get("error") if isinstance(responses, dict) else responses
            raise RpcErrorReply(what, error.get("code") if isinstance(error, dict) else None,
                                str(error.get("message") if isinstance(error, dict) else error))
        out: list[Any] = []
        for (method, _), response in zip(calls, responses, strict=True):
            try:
                out.append(_result_of(method, response))
            except RpcErrorReply as exc:
                out.append(exc)
        return out

    # -- reads ------------------------------------------------------------------------------

    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self._read("eth_chainId", lambda: self.w3.eth.chain_id))
        return self._chain_id

    def block_number(self) -> int:
        return int(self.request("eth_blockNumber"), 16)

    def _block(self, block: BlockId) -> dict[str, Any]:
        raw = self.request("eth_getBlockByNumber", [_block_tag(block), False])
        if not raw:
            raise ChainError(f"block {block} not found")
        return raw  # type: ignore[no-any-return]

    def block_timestamp(self, block: BlockId = "latest") -> int:
        return int(self._block(block)["timestamp"], 16)

    def base_fee(self) -> int:
        """baseFeePerGas of the latest block."""
        return int(self._block("latest").get("baseFeePerGas") or "0x0", 16)

    def balance(self, address: str | None = None) -> int:
        addr = to_checksum_address(address or self.address)
        return int(self._read("eth_getBalance", lambda: self.w3.eth.get_balance(addr)))

    def _pending_nonce(self) -> int:
        addr = self.address
        return int(self._read("eth_getTransactionCount",
                                  lambda: self.w3.eth.get_transaction_count(addr, "pending")))

    def call(self, to: str, data: bytes, *, value: int = 0, block: BlockId = "latest") -> bytes:
        tx: dict[str, Any] = {"to": to_checksum_address(to), "data": _hex(data)}
        if self._account is not None:
            tx["from"] = self.address
        if value:
            tx["value"] = value
        try:
            return bytes(self._retrying("eth_call", lambda: self.w3.eth.call(tx, block)))  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise self.decoder.decode(_revert_data(exc)) from None
        except Web3RPCError as exc:
            raise ChainError(f"eth_call failed: {_rpc_message(exc)}") from None

    def estimate_gas(self, to: str | None, data: bytes, *, value: int = 0) -> int:
        """eth_estimateGas; a revert raises ContractRevert."""
        tx: dict[str, Any] = {"from": self.address, "data": _hex(data), "value": hex(value)}
        if to is not None:
            tx["to"] = _checksum(to)
        try:
            return int(self.request("eth_estimateGas", [tx]), 16)
        except RpcErrorReply as exc:
            revert = _revert_in(getattr(exc, "error", None))
            if revert is not None:
                raise self.decoder.decode(revert[0]) from None
            raise ChainError(f"gas estimation failed: {exc.rpc_message}") from None

    def suggest_fees(self) -> Fees:
        """Fees for a transaction now: 2 * latest baseFee + tip (cached for `fee_cache_s`)."""
        now = time.monotonic()
        cached = self._fees
        if cached is not None and now - cached[0] < self.fee_policy.fee_cache_s:
            return cached[1]
        if self._tip is None:
            self._tip = int(self._read("eth_maxPriorityFeePerGas", lambda: self.w3.eth.max_priority_fee))
        fees = fees_for(self.base_fee(), self._tip, self.fee_policy.base_fee_multiplier)
        self._fees = (now, fees)
        return fees

    def get_receipt(self, tx_hash: str) -> Receipt | None:
        raw = self.request("eth_getTransactionReceipt", [tx_hash])
        return None if raw is None else _receipt_json(raw)

    def get_receipts(self, tx_hashes: Sequence[str]) -> list[Receipt | None]:
        """The receipts of several transactions (None: not mined) in one batch request."""
        if not tx_hashes:
            return []
        results = self.request_batch([("eth_getTransactionReceipt", [h]) for h in tx_hashes])
        out: list[Receipt | None] = []
        for result in results:
            if isinstance(result, RpcErrorReply):
                raise result
            out.append(None if result is None else _receipt_json(result))
        return out

    def get_logs(self, *, address: str | Sequence[str] | None = None,
                 topics: Sequence[bytes | Sequence[bytes] | None] | None = None,
                 from_block: BlockId = 0, to_block: BlockId = "latest") -> list[Log]:
        params: dict[str, Any] = {"fromBlock": _block_tag(from_block), "toBlock": _block_tag(to_block)}
        if address is not None:
            params["address"] = (_checksum(address) if isinstance(address, str)
                                 else [_checksum(a) for a in address])
        if topics is not None:
            params["topics"] = [None if t is None else _hex(t) if isinstance(t, (bytes, bytearray))
                                else [_hex(x) for x in t] for t in topics]
        return [_log_json(entry) for entry in self.request("eth_getLogs", [params])]

    # -- writes -----------------------------------------------------------------------------

    def send(self, to: str | None, data: bytes, *, value: int = 0, gas: int | None = None,
             fees: Fees | None = None) -> SentTx:
        account = self.account
        if gas is None:
            gas = math.ceil(self.estimate_gas(to, data, value=value) * self.fee_policy.gas_margin)
        fees = fees or self.suggest_fees()
        chain_id = self.chain_id()
        recipient = to_checksum_address(to) if to is not None else None
        for _ in range(5):
            try:
                with self._nonces.reserve() as nonce:
                    tx = SentTx("", account.address, nonce, recipient, bytes(data), value, gas, fees)
                    return self._sign_and_send(tx, chain_id)
            except NonceTaken as exc:
                log.info("nonce %s of %s is taken (%s); resyncing", nonce, account.address, exc)
                self._nonces.resync()
        raise ChainError(f"could not find a free nonce for {account.address} after 5 tries")

    def replace(self, tx: SentTx, *, fees: Fees | None = None) -> SentTx:
        """Resend `tx` with the same nonce and fees raised past the replacement threshold.

        `fees` may ask for more; anything below `bump_fees(tx.fees)` is raised to it.
        """
        minimum = bump_fees(tx.fees, self.suggest_fees(), self.fee_policy.bump_percent)
        if fees is not None:
            minimum = Fees(max(fees.max_fee_per_gas, minimum.max_fee_per_gas),
                           max(fees.max_priority_fee_per_gas, minimum.max_priority_fee_per_gas))
        replacement = SentTx("", tx.sender, tx.nonce, tx.to, tx.data, tx.value, tx.gas, minimum)
        try:
            return self._sign_and_send(replacement, self.chain_id())
        except NonceTaken as exc:
            raise ChainError(f"cannot replace {tx.tx_hash}: {exc} (already mined, or bump too small)") from None

    def _sign_and_send(self, tx: SentTx, chain_id: int) -> SentTx:
        signed, raw = self.sign(tx, chain_id)
        self.send_raw(raw, signed.tx_hash)
        return signed

    def sign(self, tx: SentTx, chain_id: int | None = None) -> tuple[SentTx, bytes]:
        """Sign `tx` (an EIP-1559 transaction) locally: (`tx` with its hash filled in, raw bytes).

        Signing and broadcasting are separate so a caller can persist the signed bytes before
        they leave the process (the node's crash-safe send log does).
        """
        fields: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id() if chain_id is None else chain_id,
            "nonce": tx.nonce,
            "value": tx.value,
            "data": tx.data,
            "gas": tx.gas,
            "maxFeePerGas": tx.fees.max_fee_per_gas,
            "maxPriorityFeePerGas": tx.fees.max_priority_fee_per_gas,
        }
        if tx.to is not None:
            fields["to"] = to_checksum_address(tx.to)
        signed = self.account.sign_transaction(fields)
        tx_hash = _hex(signed.hash)
        return SentTx(tx_hash, tx.sender, tx.nonce, tx.to, tx.data, tx.value, tx.gas, tx.fees), bytes(signed.raw_transaction)

    def send_raw(self, raw: bytes, tx_hash: str) -> None:
        """eth_sendRawTransaction, retried on connection errors (a resend of the same bytes is
        idempotent: the node answers with the same hash or says it already knows it).

        Raises `NonceTaken` when the nonce is used by another transaction or a replacement is
        underpriced, `RpcUnavailable` when the RPC cannot be reached, `ChainError` otherwise."""
        params = ["0x" + bytes(raw).hex()]
        for attempt in range(self._retries + 1):
            started = time.monotonic()
            try:
                self._attempt(lambda: self._reply("eth_sendRawTransaction", params))
                return
            except _CONNECTION_ERRORS as exc:
                delay = self._no_answer(f"eth_sendRawTransaction {tx_hash}", exc, started, attempt)
                if attempt == self._retries:
                    raise RpcUnavailable(f"RPC {safe_url(self.rpc_url)} unavailable (eth_sendRawTransaction {tx_hash}): "
                                         f"{_short(exc)}") from None
                time.sleep(delay)
            except RpcErrorReply as exc:
                message = exc.rpc_message
                if _is_already_known(message):
                    return
                if _is_nonce_conflict(message):
                    if attempt > 0 and self._tx_known(tx_hash):
                        return  # our first attempt got through before the connection dropped
                    raise NonceTaken(message) from None
                raise ChainError(f"node rejected transaction {tx_hash}: {message}") from None

    def _tx_known(self, tx_hash: str) -> bool:
        return self.request("eth_getTransactionByHash", [tx_hash]) is not None

    def wait(self, tx: SentTx | str, *, timeout: float | None = None) -> Receipt:
        tx_hash = tx if isinstance(tx, str) else tx.tx_hash
        timeout = self.receipt_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        delay = 0.002
        while (receipt := self.get_receipt(tx_hash)) is None:
            if time.monotonic() >= deadline:
                raise ChainError(f"transaction {tx_hash} not mined within {timeout:g}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        if not receipt.succeeded:
            raise self.explain_failure(receipt)
        return receipt

    def explain_failure(self, receipt: Receipt) -> ContractRevert:
        """Decode why a mined transaction failed: replay it with eth_call at its block.

        The state after that block holds everything the failed call saw (a reverted transaction
        changes nothing but the nonce), except for later transactions of the same block.
        """
        tx = self._retrying("eth_getTransactionByHash", lambda: self.w3.eth.get_transaction(receipt.tx_hash))  # type: ignore[arg-type]
        call: dict[str, Any] = {"from": tx["from"], "data": _hex(tx["input"]), "value": tx["value"], "gas": tx["gas"]}
        if tx.get("to"):
            call["to"] = tx["to"]
        try:
            self._retrying("eth_call", lambda: self.w3.eth.call(call, receipt.block_number))  # type: ignore[arg-type]
        except ContractLogicError as exc:
            return self.decoder.decode(_revert_data(exc), tx_hash=receipt.tx_hash)
        except Web3RPCError as exc:
            message = _rpc_message(exc)
            if "outofgas" in message.lower().replace(" ", "").replace("_", ""):  # geth / anvil spellings
                return ContractRevert("OutOfGas", {"gas": tx["gas"]}, tx_hash=receipt.tx_hash)
            return ContractRevert("Reverted", {"reason": message}, tx_hash=receipt.tx_hash)
        if receipt.gas_used >= tx["gas"]:
            return ContractRevert("OutOfGas", {"gas": tx["gas"]}, tx_hash=receipt.tx_hash)
        return ContractRevert("Reverted", {}, tx_hash=receipt.tx_hash)


class _ErrorObject(RpcErrorReply):
    """An `RpcErrorReply` that keeps the reply's error object (its `data` holds revert data)."""

    def __init__(self, method: str, code: int | None, message: str, error: dict[str, Any]) -> None:
        super().__init__(method, code, message)
        self.error = error


def _result_of(method: str, response: Any) -> Any:
    """A JSON-RPC response's `result`; `RpcErrorReply` (with the error object) for an error reply."""
    if "error" in response:
        error = response["error"]
        if isinstance(error, dict):
            code = error.get("code")
            raise _ErrorObject(method, code if isinstance(code, int) else None, str(error.get("message")), error)
        raise RpcErrorReply(method, None, str(error))
    return response.get("result")


def _revert_in(error: Any) -> tuple[str | None] | None:
    """`(revert data or None,)` when a JSON-RPC error object says the call reverted (web3's rule:
    hex `data`, or a message saying "execution reverted", or code 3), else None."""
    if not isinstance(error, dict):
        return None
    data = error.get("data")
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str):
        return (data,)
    message = str(error.get("message") or "")
    if error.get("code") == 3 or "execution reverted" in message.lower() or "revert" == message.lower().strip():
        return (None,)
    return None


def _block_tag(block: BlockId) -> str:
    return hex(block) if isinstance(block, int) else str(block)


@functools.lru_cache(maxsize=4096)
def _checksum(address: str) -> str:
    """`to_checksum_address`, remembered (a keccak256 per call; logs and receipts repeat a few addresses)."""
    return to_checksum_address(address)


def _log_json(raw: dict[str, Any]) -> Log:
    return Log(
        address=_checksum(raw["address"]),
        topics=tuple(bytes.fromhex(t[2:]) for t in raw["topics"]),
        data=bytes.fromhex(raw["data"][2:]),
        block_number=int(raw["blockNumber"], 16),
        tx_hash=raw["transactionHash"].lower(),
        log_index=int(raw["logIndex"], 16),
    )


def _receipt_json(raw: dict[str, Any]) -> Receipt:
    """A receipt from its JSON-RPC form (hex quantities)."""
    contract = raw.get("contractAddress")
    return Receipt(
        tx_hash=raw["transactionHash"].lower(),
        block_number=int(raw["blockNumber"], 16),
        status=int(raw["status"], 16),
        gas_used=int(raw["gasUsed"], 16),
        effective_gas_price=int(raw.get("effectiveGasPrice") or "0x0", 16),
        sender=_checksum(raw["from"]),
        to=_checksum(raw["to"]) if raw.get("to") else None,
        contract_address=_checksum(contract) if contract else None,
        logs=tuple(_log_json(entry) for entry in raw["logs"]),
    )


def _error_reply(method: str, exc: Web3RPCError) -> RpcErrorReply:
    response = exc.rpc_response or {}
    error = response.get("error") if isinstance(response, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return RpcErrorReply(method, code if isinstance(code, int) else None, _rpc_message(exc))


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(exc, (requests.Timeout, TimeoutError, RequestTimedOut)) or "timed out" in text.lower():
        return "timed out"
    return text[:200]


def connect(settings: ChainSettings, *, decoder: RevertDecoder | None = None,
            signing: bool = True) -> Web3Client:
    """A `Web3Client` for `settings`: checks the chain id and the key policy, loads the key.

    `decoder` defaults to one built from the protocol's artifacts (ArtifactError if not built).
    With `signing=False` no key is loaded (read-only use).
    """
    if decoder is None:
        from node.chain.artifacts import load_protocol_artifacts

        decoder = RevertDecoder(a.abi for a in load_protocol_artifacts(settings.artifacts_dir).values())
    policy = FeePolicy(base_fee_multiplier=settings.base_fee_multiplier, priority_fee_wei=settings.priority_fee_wei,
                       gas_margin=settings.gas_margin, bump_percent=settings.fee_bump_percent)
    client = Web3Client(settings.rpc_url, decoder=decoder, fee_policy=policy, timeout=settings.rpc_timeout_s,
                        retries=settings.rpc_retries, receipt_timeout=settings.receipt_timeout_s)
    actual = client.chain_id()
    if settings.chain_id is not None and settings.chain_id != actual:
        raise ConfigError(f"RPC {safe_url(settings.rpc_url)} serves chain id {actual}, settings expect {settings.chain_id}")
    return client.with_account(settings.load_account(actual)) if signing else client
