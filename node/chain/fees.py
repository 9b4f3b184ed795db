"""What a transaction costs in money: on Ethereum L1, on an OP Stack chain (Fjord and later) and on Arbitrum.

The fee model of the bench (`chorus bench`'s "What a task costs", `chorus gas`). It lives under
`node.chain` because both the experiment (which records each transaction's compressed sizes) and the
bench commands use it, and those two layers may not import each other; `node.bench.fees` is the
bench's entry point to it.

Inputs, per transaction: its gas used and its signed, RLP-encoded bytes (what `eth_getRawTransactionByHash`
returns, the bytes a rollup's batcher posts). From the bytes: their FastLZ length (`flz_compress_len`,
a port of op-geth's `FlzCompressLen`) and their Brotli length (`brotli_len`).

The three chains (every price a field of `Prices`):

- Ethereum L1: `gas * l1_gas_price`.
- OP Stack after Fjord (op-geth `core/types/rollup_cost.go`, `NewL1CostFuncFjord`; the Fjord
  execution-engine spec, "L1-Cost fees, FastLZ estimator"):
      estimatedSize = max(minTransactionSize, intercept + fastlzCoef * fastlzSize / 1e6)   [bytes]
      l1DataFee = estimatedSize * (16 * baseFeeScalar * l1BaseFee + blobBaseFeeScalar * l1BlobBaseFee) / 1e6
  with the Fjord constants intercept = -42_585_600 / 1e6, fastlzCoef = 836_500 / 1e6 and
  minTransactionSize = 100 bytes (op-geth scales the size by 1e6 and divides the product by 1e12:
  the same number), plus the L2 execution fee `gas * op_l2_gas_price`. The operator fee of Isthmus
  (zero on OP Mainnet and Base) is left out.
- Arbitrum (Nitro, `arbos/l1pricing/l1pricing.go`, `getPosterUnitsWithoutCache` / `GetPosterInfo`):
  the L1 component is `16 * brotliSize * pricePerUnit`, where brotliSize is the length of the signed
  transaction compressed alone with Brotli at the chain's level (1 since ArbOS 20, which raised it from
  0), 16 calldata units a byte (`params.TxDataNonZeroGasEIP2028`) and pricePerUnit the L1 pricer's
  price of a unit; plus the L2 execution fee `gas * arbitrum_l2_gas_price`. (Arbitrum charges the L1
  part as extra gas at the L2 base fee; the product is the same wei.)

The L2 execution gas on both rollups is taken to be the gas the transaction used on the bench's
chain: both run the EVM with Ethereum's gas schedule.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from node.protocol.errors import ConfigError, RpcErrorReply

log = logging.getLogger(__name__)

GWEI = 10**9
WEI_PER_ETH = 10**18

# Fjord's linear regression from the FastLZ size to the size in a Brotli batch, scaled by 1e6
# (op-geth core/types/rollup_cost.go: L1CostIntercept, L1CostFastlzCoef, MinTransactionSize; the
# same constants are costIntercept, costFastlzCoef and minTransactionSize in the GasPriceOracle
# predeploy since Fjord).
FJORD_INTERCEPT = -42_585_600
FJORD_FASTLZ_COEF = 836_500
FJORD_MIN_TX_SIZE = 100
FJORD_SCALE = 1_000_000

ARBITRUM_UNITS_PER_BYTE = 16
"""Arbitrum's calldata units per compressed byte (Nitro: `l1Bytes * params.TxDataNonZeroGasEIP2028`)."""
ARBITRUM_BROTLI_LEVEL = 1
"""The Brotli level ArbOS compresses a transaction at to price it (ArbOS 20 set it from 0 to 1)."""
BROTLI_WINDOW_BITS = 22
"""Brotli's default window (lgwin 22), the one Nitro's arbcompress uses."""


# -- FastLZ ---------------------------------------------------------------------------------------

def _flz_hash(v: int) -> int:
    return (((2654435769 * v) & 0xFFFFFFFF) >> 19) & 0x1FFF


def flz_compress_len(data: bytes) -> int:
    """The length of `data` compressed with FastLZ (level 1), without building the output.

    A port of op-geth's `FlzCompressLen` (core/types/rollup_cost.go), itself from Solady's
    `LibZip.flzCompress` (js/solady.js): the size OP Stack chains price a transaction by since Fjord.
    Checked against op-geth's TestFlzCompressLen vectors in tests/test_fees.py."""
    ib = data
    size = len(ib)
    table = [0] * 8192
    n = 0

    def u24(i: int) -> int:
        return ib[i] | (ib[i + 1] << 8) | (ib[i + 2] << 16)

    def literals(run: int) -> int:
        # 32 literals per 33 bytes (a control byte each); a remainder costs itself plus one
        extra = 0x21 * (run // 0x20)
        run %= 0x20
        return extra + (run + 1 if run else 0)

    def match(length: int) -> int:
        length -= 1
        return 3 * (length // 262) + (3 if length % 262 >= 6 else 2)

    anchor = 0
    limit = size - 13 if size >= 13 else 0
    ip = anchor + 2
    while ip < limit:
        ref = 0
        while True:
            seq = u24(ip)
            h = _flz_hash(seq)
            ref = table[h]
            table[h] = ip
            distance = ip - ref
            if ip >= limit:
                break
            ip += 1
            if distance <= 0x1FFF and seq == u24(ref):
                break
        if ip >= limit:
            break
        ip -= 1
        if ip > anchor:
            n += literals(ip - anchor)
        # the match length: bytes equal from ref+3 / ip+3 on, plus the first one that differs,
        # never past limit + 9
        p, q, end = ref + 3, ip + 3, limit + 9
        length = 0
        while length < end - q:
            if ib[p + length] != ib[q + length]:
                length += 1
                break
            length += 1
        n += match(length)
        ip += length
        table[_flz_hash(u24(ip))] = ip
        ip += 1
        table[_flz_hash(u24(ip))] = ip
        ip += 1
        anchor = ip
    return n + literals(size - anchor)


def brotli_len(data: bytes, quality: int = ARBITRUM_BROTLI_LEVEL) -> int:
    """The length of `data` compressed alone with Brotli at `quality` (Arbitrum's level by default)."""
    import brotli

    return len(brotli.compress(bytes(data), quality=quality, lgwin=BROTLI_WINDOW_BITS))


def fjord_size_scaled(fastlz_size: int) -> int:
    """Fjord's estimated size in a batch, in bytes x 1e6: max(100e6, -42_585_600 + 836_500 * fastlzSize)."""
    return max(FJORD_MIN_TX_SIZE * FJORD_SCALE, FJORD_INTERCEPT + FJORD_FASTLZ_COEF * int(fastlz_size))


def op_l1_data_fee_wei(fastlz_size: int, l1_base_fee_wei: int, l1_blob_base_fee_wei: int,
                       base_fee_scalar: int, blob_base_fee_scalar: int) -> int:
    """The Fjord L1 data fee in wei, in op-geth's integer arithmetic:
    estimatedSizeScaled * (16 * baseFeeScalar * l1BaseFee + blobBaseFeeScalar * l1BlobBaseFee) / 1e12."""
    scaled_fee = 16 * base_fee_scalar * l1_base_fee_wei + blob_base_fee_scalar * l1_blob_base_fee_wei
    return fjord_size_scaled(fastlz_size) * scaled_fee // (FJORD_SCALE * FJORD_SCALE)


@dataclass(frozen=True)
class TxSize:
    """What the fee model reads off one signed transaction."""

    gas: int
    raw_bytes: int
    """Length of the signed, RLP-encoded transaction."""
    fastlz_bytes: int
    brotli_bytes: int
    op_da_bytes: float
    """Fjord's estimated size in a batch (bytes, at least 100): what the OP Stack prices."""

    @classmethod
    def of(cls, gas: int, raw: bytes) -> TxSize:
        flz = flz_compress_len(raw)
        return cls(int(gas), len(raw), flz, brotli_len(raw), fjord_size_scaled(flz) / FJORD_SCALE)


def signed_bytes(tx: dict[str, Any]) -> bytes | None:
    """The signed, RLP-encoded bytes of a transaction rebuilt from `eth_getTransactionByHash`'s
    fields (hex strings), for an RPC without `eth_getRawTransactionByHash` (Anvil and geth have it):
    legacy (EIP-155), EIP-2930 and EIP-1559 transactions, encoded as their signing rules give them
    (EIP-2718 type byte + RLP); None for another type."""
    import rlp

    def num(key: str) -> int:
        return int(tx.get(key) or "0x0", 16)

    def data(key: str) -> bytes:
        value = tx.get(key) or "0x"
        return bytes.fromhex(value[2:])

    def access_list() -> list[list[Any]]:
        return [[bytes.fromhex(e["address"][2:]), [bytes.fromhex(k[2:]) for k in e.get("storageKeys", [])]]
                for e in tx.get("accessList") or []]

    kind = num("type")
    to = data("to")
    if kind == 0:  # v carries the chain id (EIP-155)
        return rlp.encode([num("nonce"), num("gasPrice"), num("gas"), to, num("value"), data("input"), num("v"),
                           num("r"), num("s")])
    sig = [num("yParity") if tx.get("yParity") is not None else num("v"), num("r"), num("s")]
    if kind == 1:
        body = [num("chainId"), num("nonce"), num("gasPrice"), num("gas"), to, num("value"), data("input"),
                access_list(), *sig]
        return b"\x01" + rlp.encode(body)
    if kind == 2:
        body = [num("chainId"), num("nonce"), num("maxPriorityFeePerGas"), num("maxFeePerGas"), num("gas"), to,
                num("value"), data("input"), access_list(), *sig]
        return b"\x02" + rlp.encode(body)
    log.warning("transaction %s has type %d: its signed bytes are not rebuilt", tx.get("hash"), kind)
    return None


def raw_transaction(client: Any, tx_hash: str) -> bytes | None:
    """A mined transaction's signed bytes from `client` (a `node.chain.client.Web3Client`):
    `eth_getRawTransactionByHash`, else rebuilt from `eth_getTransactionByHash` (`signed_bytes`)."""
    try:
        raw = client.request("eth_getRawTransactionByHash", [tx_hash])
    except RpcErrorReply:
        raw = None
    if isinstance(raw, str) and raw.startswith("0x"):
        return bytes.fromhex(raw[2:])
    tx = client.request("eth_getTransactionByHash", [tx_hash])
    return signed_bytes(dict(tx)) if tx else None


# -- prices ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prices:
    """Every price the fee model uses, with defaults. A JSON file with any subset of these keys
    overrides them (`Prices.load`, `chorus bench --prices FILE`, `chorus gas --prices FILE`).

    The defaults are round, stated assumptions of the order these prices had in 2025, not live
    readings: read today's from the chains (the sources below) and pass them in a file.

    - `eth_usd` = 3000: US dollars per ether (2025 assumption; any exchange's ETH/USD).
    - `l1_gas_price_gwei` = 1: what an Ethereum L1 transaction pays per gas, base fee plus tip
      (2025 assumption; `eth_gasPrice` on mainnet, or a gas tracker).
    - `op_l1_base_fee_gwei` = 1: the L1 base fee an OP Stack chain has last seen (the L1Block
      predeploy's `basefee()`); the same 2025 assumption as the L1 gas price.
    - `op_l1_blob_base_fee_gwei` = 1e-9 (1 wei): the L1 blob base fee (L1Block's `blobBaseFee()`);
      1 wei is EIP-4844's minimum (MIN_BASE_FEE_PER_BLOB_GAS), where it sat for much of 2024-2025.
    - `op_base_fee_scalar` = 5227 and `op_blob_base_fee_scalar` = 1014213: the chain's Ecotone
      scalars, scaled by 1e6 (GasPriceOracle's `baseFeeScalar()` / `blobBaseFeeScalar()`); the values
      OP Mainnet has used since its Ecotone upgrade (2024, per its chain configuration).
    - `op_l2_gas_price_gwei` = 0.001: the OP chain's L2 gas price, base fee plus tip (2025
      assumption; `eth_gasPrice` on the chain).
    - `arbitrum_l1_price_per_unit_gwei` = 0.005: ArbOS's L1 price of one calldata unit (16 units a
      compressed byte; ArbGasInfo's `getL1BaseFeeEstimate()` / `getPricesInWei()[1]`). An assumption:
      the per-byte price OP's default scalars give for the same L1 prices (0.0836 gwei a byte / 16),
      both chains posting blobs.
    - `arbitrum_l2_gas_price_gwei` = 0.01: Arbitrum One's L2 base fee at its floor, ArbOS's
      minimum base fee on Arbitrum One (docs.arbitrum.io, "Gas and fees"; 2025).
    """

    eth_usd: float = 3000.0
    l1_gas_price_gwei: float = 1.0
    op_l1_base_fee_gwei: float = 1.0
    op_l1_blob_base_fee_gwei: float = 1e-9
    op_base_fee_scalar: int = 5227
    op_blob_base_fee_scalar: int = 1014213
    op_l2_gas_price_gwei: float = 0.001
    arbitrum_l1_price_per_unit_gwei: float = 0.005
    arbitrum_l2_gas_price_gwei: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"prices: {f.name} must be a number, got {value!r}")
            if f.type in ("int", int) and not isinstance(value, int):
                raise ConfigError(f"prices: {f.name} must be an integer (a scalar scaled by 1e6), got {value!r}")
            if value < 0:
                raise ConfigError(f"prices: {f.name} must be >= 0, got {value!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "prices") -> Prices:
        """Defaults overridden by `data`; an unknown key or a value of the wrong type is a ConfigError naming it."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a JSON object of prices, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown price key(s) {', '.join(unknown)}; known: {', '.join(known)}")
        for key, value in data.items():
            want_int = known[key].type in ("int", int)
            ok = (isinstance(value, int) if want_int else isinstance(value, (int, float))) and not isinstance(value, bool)
            if not ok:
                kind = "an integer" if want_int else "a number"
                raise ConfigError(f"{source}: {key} must be {kind}, got {value!r}")
        return cls(**{k: (v if known[k].type in ("int", int) else float(v)) for k, v in data.items()})

    @classmethod
    def load(cls, path: Path | str) -> Prices:
        """Prices from a JSON file (an object with any of the fields' names as keys)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"prices file {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"prices file {path}: not JSON ({exc})") from None
        return cls.from_dict(data, source=f"prices file {path}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    # per-unit prices in ether
    @property
    def op_eth_per_da_byte(self) -> float:
        """Ether per byte of Fjord's estimated size: (16 * baseFeeScalar * l1BaseFee + blobScalar * blobBaseFee) / 1e6."""
        return ((16 * self.op_base_fee_scalar * self.op_l1_base_fee_gwei
                 + self.op_blob_base_fee_scalar * self.op_l1_blob_base_fee_gwei) / FJORD_SCALE * GWEI / WEI_PER_ETH)

    @property
    def arbitrum_eth_per_brotli_byte(self) -> float:
        return ARBITRUM_UNITS_PER_BYTE * self.arbitrum_l1_price_per_unit_gwei * GWEI / WEI_PER_ETH

    def sentence(self) -> str:
        """Every price parameter in one sentence, for the report."""
        return (f"ETH at ${self.eth_usd:,.2f}; Ethereum L1 gas at {self.l1_gas_price_gwei:g} gwei; "
                f"OP Stack (Fjord): L1 base fee {self.op_l1_base_fee_gwei:g} gwei, L1 blob base fee "
                f"{self.op_l1_blob_base_fee_gwei:g} gwei, baseFeeScalar {self.op_base_fee_scalar}, "
                f"blobBaseFeeScalar {self.op_blob_base_fee_scalar}, L2 gas at {self.op_l2_gas_price_gwei:g} gwei; "
                f"Arbitrum: L1 price per calldata unit {self.arbitrum_l1_price_per_unit_gwei:g} gwei "
                f"({ARBITRUM_UNITS_PER_BYTE} units per Brotli-{ARBITRUM_BROTLI_LEVEL} byte), L2 gas at "
                f"{self.arbitrum_l2_gas_price_gwei:g} gwei")


# -- costs ----------------------------------------------------------------------------------------

CHAINS = ("l1", "op", "arbitrum")
CHAIN_TITLES = {"l1": "Ethereum L1", "op": "OP Stack (Fjord)", "arbitrum": "Arbitrum"}


def l1_cost_eth(gas: float, prices: Prices) -> float:
    return gas * prices.l1_gas_price_gwei * GWEI / WEI_PER_ETH


def op_cost_eth(gas: float, op_da_bytes: float, prices: Prices) -> float:
    """L1 data fee on Fjord's estimated size(s) plus L2 execution. `op_da_bytes` may be a sum over
    transactions (each already floored at 100 bytes), so the fee of a task is its transactions' sum."""
    return op_da_bytes * prices.op_eth_per_da_byte + gas * prices.op_l2_gas_price_gwei * GWEI / WEI_PER_ETH


def arbitrum_cost_eth(gas: float, brotli_bytes: float, prices: Prices) -> float:
    return brotli_bytes * prices.arbitrum_eth_per_brotli_byte + gas * prices.arbitrum_l2_gas_price_gwei * GWEI / WEI_PER_ETH


def cost_usd(gas: float, op_da_bytes: float, brotli_bytes: float, prices: Prices) -> dict[str, float]:
    """{l1, op, arbitrum}: US dollars for `gas` and the sizes (one transaction's, or sums over several)."""
    return {"l1": l1_cost_eth(gas, prices) * prices.eth_usd,
            "op": op_cost_eth(gas, op_da_bytes, prices) * prices.eth_usd,
            "arbitrum": arbitrum_cost_eth(gas, brotli_bytes, prices) * prices.eth_usd}


def tx_cost_usd(size: TxSize, prices: Prices) -> dict[str, float]:
    return cost_usd(size.gas, size.op_da_bytes, size.brotli_bytes, prices)
