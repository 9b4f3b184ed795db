"""The fee model as the bench commands use it: what one publication costs on Ethereum L1, an OP
Stack chain (Fjord) and Arbitrum (`chorus gas`), and the prices they are read at.

The formulas, FastLZ and the `Prices` themselves are `node.chain.fees` (the experiment's per-task
accounting needs them too, and `node.experiment` and `node.bench` may not import each other);
this module re-exports them for the bench.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.chain.fees import (
    ARBITRUM_BROTLI_LEVEL,
    ARBITRUM_UNITS_PER_BYTE,
    CHAIN_TITLES,
    CHAINS,
    FJORD_FASTLZ_COEF,
    FJORD_INTERCEPT,
    FJORD_MIN_TX_SIZE,
    Prices,
    TxSize,
    arbitrum_cost_eth,
    brotli_len,
    cost_usd,
    fjord_size_scaled,
    flz_compress_len,
    l1_cost_eth,
    op_cost_eth,
    op_l1_data_fee_wei,
    raw_transaction,
    signed_bytes,
    tx_cost_usd,
)

if TYPE_CHECKING:
    from node.bench.gas import GasRow

__all__ = ["ARBITRUM_BROTLI_LEVEL", "ARBITRUM_UNITS_PER_BYTE", "CHAINS", "CHAIN_TITLES", "FJORD_FASTLZ_COEF",
           "FJORD_INTERCEPT", "FJORD_MIN_TX_SIZE", "Prices", "TxSize", "arbitrum_cost_eth", "brotli_len", "cost_usd",
           "fjord_size_scaled", "flz_compress_len", "l1_cost_eth", "op_cost_eth", "op_l1_data_fee_wei",
           "raw_transaction", "row_cost_usd", "signed_bytes", "tx_cost_usd"]


def row_cost_usd(row: GasRow, prices: Prices) -> dict[str, float] | None:
    """{l1, op, arbitrum}: US dollars for one measured publication; None where its signed bytes
    were not available (then only its gas is known)."""
    if row.size is None:
        return None
    return tx_cost_usd(row.size, prices)
