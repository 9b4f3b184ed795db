"""ABI encoding and decoding from an artifact's ABI: calls, return values, events, custom errors.

Built on eth_abi directly (no web3 contract objects): encoding a call is a selector plus
`eth_abi.encode`, which keeps the hot path (sign and send a publication) cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import eth_abi
from eth_utils import (
    abi_to_signature,
    collapse_if_tuple,
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    to_checksum_address,
)

from node.protocol.errors import ArtifactError, ContractRevert

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string): a revert string
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256): assert, overflow, bad enum, ...


def _types(params: Sequence[dict[str, Any]]) -> list[str]:
    return [collapse_if_tuple(p) for p in params]


def _names(params: Sequence[dict[str, Any]]) -> list[str]:
    return [p.get("name") or f"arg{i}" for i, p in enumerate(params)]


def _normalize(abi_type: str, value: Any) -> Any:
    """Checksum addresses so decoded values compare equal to what callers hold."""
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type.endswith("]") and isinstance(value, (list, tuple)):
        inner = abi_type[: abi_type.rindex("[")]
        return tuple(_normalize(inner, v) for v in value)
    return value


def _decode_named(params: Sequence[dict[str, Any]], data: bytes) -> dict[str, Any]:
    types = _types(params)
    values = eth_abi.decode(types, data)
    return {n: _normalize(t, v) for n, t, v in zip(_names(params), types, values)}


@dataclass(frozen=True)
class Function:
    """One ABI function: selector, input and output types."""

    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_names: tuple[str, ...]
    state_mutability: str

    def encode(self, args: Sequence[Any]) -> bytes:
        """Calldata: selector + ABI-encoded arguments."""
        if len(args) != len(self.inputs):
            raise TypeError(f"{self.name} takes {len(self.inputs)} arguments, got {len(args)}")
        return self.selector + eth_abi.encode(self.inputs, list(args))

    def decode_output(self, data: bytes) -> tuple[Any, ...]:
        """Return values of an eth_call, addresses checksummed."""
        values = eth_abi.decode(self.outputs, data)
        return tuple(_normalize(t, v) for t, v in zip(self.outputs, values))


@dataclass(frozen=True)
class DecodedLog:
    """An event decoded from a log: its name, its arguments by ABI name, and where it came from."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: str
    log_index: int


class ContractInterface:
    """Encoder/decoder for one contract's ABI."""

    def __init__(self, name: str, abi: Iterable[dict[str, Any]]) -> None:
        self.name = name
        self.abi = list(abi)
        self.functions: dict[str, Function] = {}
        self._constructor_inputs: list[str] = []
        self._events: dict[bytes, dict[str, Any]] = {}
        for item in self.abi:
            kind = item.get("type")
            if kind == "function":
                if item["name"] in self.functions:
                    raise ArtifactError(f"{name}.{item['name']} is overloaded; the facade expects unique names")
                self.functions[item["name"]] = Function(
                    name=item["name"],
                    selector=function_abi_to_4byte_selector(item),
                    inputs=tuple(_types(item.get("inputs", []))),
                    outputs=tuple(_types(item.get("outputs", []))),
                    output_names=tuple(_names(item.get("outputs", []))),
                    state_mutability=item.get("stateMutability", "nonpayable"),
                )
            elif kind == "constructor":
                self._constructor_inputs = _types(item.get("inputs", []))
            elif kind == "event" and not item.get("anonymous"):
                self._events[event_abi_to_log_topic(item)] = item

    def function(self, name: str) -> Function:
        """The ABI function `name`; ArtifactError if the contract has none (docs and code drifted)."""
        try:
            return self.functions[name]
        except KeyError:
            raise ArtifactError(f"{self.name} has no function {name}; rebuild the artifacts") from None

    def encode_call(self, name: str, *args: Any) -> bytes:
        """Calldata for `name(args)`."""
        return self.function(name).encode(args)

    def encode_constructor(self, *args: Any) -> bytes:
        """ABI-encoded constructor arguments (append to the creation bytecode)."""
        if len(args) != len(self._constructor_inputs):
            raise TypeError(f"{self.name} constructor takes {len(self._constructor_inputs)} arguments")
        return eth_abi.encode(self._constructor_inputs, list(args))

    def event_topic(self, name: str) -> bytes:
        """topic0 of event `name`."""
        for topic, item in self._events.items():
            if item["name"] == name:
                return topic
        raise ArtifactError(f"{self.name} has no event {name}")

    @property
    def event_names(self) -> list[str]:
        return [item["name"] for item in self._events.values()]

    def event_inputs(self, name: str) -> list[dict[str, Any]]:
        """The ABI inputs of event `name`."""
        return list(self._events[self.event_topic(name)]["inputs"])

    def decode_log(self, log: Any) -> DecodedLog | None:
        """Decode a log this contract's ABI knows; None for a log it does not (another contract's)."""
        topics = [bytes(t) for t in log.topics]
        item = self._events.get(topics[0]) if topics else None
        if item is None:
            return None
        indexed = [p for p in item["inputs"] if p.get("indexed")]
        plain = [p for p in item["inputs"] if not p.get("indexed")]
        if len(indexed) != len(topics) - 1:
            return None  # same signature, different indexing: not ours
        args: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:]):
            kind = collapse_if_tuple(param)
            if kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("):
                args[param["name"]] = topic  # dynamic indexed values are only their keccak256
            else:
                args[param["name"]] = _normalize(kind, eth_abi.decode([kind], topic)[0])
        args.update(_decode_named(plain, bytes(log.data)))
        ordered = {p["name"]: args[p["name"]] for p in item["inputs"]}
        return DecodedLog(item["name"], ordered, log.address, log.block_number, log.tx_hash, log.log_index)


class RevertDecoder:
    """Decodes revert data into `ContractRevert(error_name, args)` using every custom error known.

    Errors are keyed by their 4-byte selector; two contracts declaring the same error (same
    signature) share one entry. Selector clashes between different signatures are refused.
    """

    def __init__(self, abis: Iterable[Iterable[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                selector = function_abi_to_4byte_selector(item)
                known = self._errors.get(selector)
                if known is not None and abi_to_signature(known) != abi_to_signature(item):
                    raise ArtifactError(f"error selector clash: {abi_to_signature(known)} vs {abi_to_signature(item)}")
                self._errors[selector] = item

    @property
    def error_names(self) -> set[str]:
        return {e["name"] for e in self._errors.values()}

    def selector(self, error_name: str) -> bytes:
        """Selector of the custom error `error_name`."""
        for selector, item in self._errors.items():
            if item["name"] == error_name:
                return selector
        raise KeyError(error_name)

    def decode(self, data: bytes | str | None, *, tx_hash: str | None = None) -> ContractRevert:
        """Build the ContractRevert for revert `data` (bytes or 0x-hex; None or empty: no data)."""
        raw = _as_bytes(data)
        hex_data = "0x" + raw.hex()
        if len(raw) < 4:
            return ContractRevert("Reverted", {}, data=hex_data, tx_hash=tx_hash)
        selector, body = raw[:4], raw[4:]
        try:
            if selector == ERROR_STRING_SELECTOR:
                (message,) = eth_abi.decode(["string"], body)
                return ContractRevert("Error", {"message": message}, data=hex_data, tx_hash=tx_hash)
            if selector == PANIC_SELECTOR:
                (code,) = eth_abi.decode(["uint256"], body)
                return ContractRevert("Panic", {"code": code}, data=hex_data, tx_hash=tx_hash)
            item = self._errors.get(selector)
            if item is not None:
                args = _decode_named(item.get("inputs", []), body)
                return ContractRevert(item["name"], args, data=hex_data, tx_hash=tx_hash)
        except eth_abi.exceptions.DecodingError:
            pass
        return ContractRevert("UnknownError", {"selector": "0x" + selector.hex()}, data=hex_data, tx_hash=tx_hash)


def _as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    text = data.strip()
    if text.startswith("Reverted "):
        text = text[len("Reverted "):]
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        return b""
