"""The one exception tree of Chorus.

`ChorusError` is the root; the HTTP layer maps it to JSON errors in a single handler.
"""

from __future__ import annotations

from typing import Any


class ChorusError(Exception):
    """Base of every error Chorus raises on purpose."""


class ConfigError(ChorusError):
    """Settings are missing, malformed or unsafe (a dev key on a non-dev chain, say)."""


class ArtifactError(ChorusError):
    """Contract artifacts are missing, unreadable or stale against their sources."""


class ModelError(ChorusError):
    """A model file is missing, has the wrong id, or an input has the wrong shape."""


class PayloadError(ChorusError):
    """A task payload is malformed, too large, or does not match its hash."""


class ChainError(ChorusError):
    """Talking to the chain failed: RPC unreachable, transaction dropped or reverted."""


class RpcUnavailable(ChainError):
    """The RPC endpoint did not answer (connection refused, timeout)."""


class RpcErrorReply(ChainError):
    """The RPC endpoint answered a read with a JSON-RPC error (say -32602 "BlockOutOfRangeError"
    from eth_getLogs after a reorg shortened the chain): the endpoint is up, the request may be
    retried once the caller has looked at the chain again."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        self.method = method
        self.code = code
        self.rpc_message = message
        super().__init__(f"{method} failed: {message}" + (f" (code {code})" if code is not None else ""))


class NonceTaken(ChainError):
    """The node already has or mined another transaction with this nonce (or a replacement does
    not pay enough more than the transaction it would replace)."""


class ContractRevert(ChainError):
    """A call or transaction reverted; `error_name` and `args` are decoded from the custom error."""

    def __init__(self, error_name: str, args: dict[str, Any] | tuple = (), *, data: str | None = None,
                 tx_hash: str | None = None) -> None:
        self.error_name = error_name
        self.error_args = args
        self.data = data
        self.tx_hash = tx_hash
        super().__init__(f"{error_name}({_fmt_args(args)})" + (f" in tx {tx_hash}" if tx_hash else ""))


def safe_url(url: str) -> str:
    """scheme://host:port only: RPC URLs of hosted providers carry API keys in the path or query."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<url>"
    hostport = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]  # drop user:password@
    return f"{scheme}://{hostport}"


def _fmt_args(args: dict[str, Any] | tuple) -> str:
    if isinstance(args, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in args.items())
    return ", ".join(_fmt(v) for v in args)


def _fmt(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    return repr(v) if isinstance(v, str) else str(v)
