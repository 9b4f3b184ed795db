"""The fee model (`node.chain.fees`, `node.bench.fees`): FastLZ against op-geth's vectors, Brotli's
size, one hand-computed example per chain, the transaction bytes rebuilt from RPC fields, and the
errors of `Prices.load`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from node.bench.fees import (
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
    signed_bytes,
)
from node.protocol.errors import ConfigError

# op-geth core/types/rollup_cost_test.go, TestFlzCompressLen: a contract call on OP Mainnet
# (0x8eb9dd4eb6d33f4dc25fb015919e4b1e9f7542f9b0322bf6622e268cd116b594) compresses to 202 bytes, the
# marshalled empty legacy transaction to 31, 1000 equal bytes to 21.
CONTRACT_CALL = bytes.fromhex(
    "02f901550a758302df1483be21b88304743f94f80e51afb613d764fa61751affd3313c190a86bb870151bd62fd12adb8"
    "e41ef24f3f000000000000000000000000000000000000000000000000000000000000006e000000000000000000000000af88d065e77c8c"
    "c2239327c5edb3a432268e5831000000000000000000000000000000000000000000000000000000000003c1e50000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000a0000000"
    "00000000000000000000000000000000000000000000000000000000148c89ed219d02f1a5be012c689b4f5b731827bebe00000000000000"
    "0000000000c001a033fd89cb37c31b2cba46b6466e040c61fc9b2a3675a7f5f493ebd5ad77c497f8a07cdf65680e238392693019b4092f61"
    "0222e71b7cec06449cb922b93b6a12744e")
EMPTY_LEGACY_TX = bytes.fromhex("dd80808094095e7baea6a6c7c4c2dfeb977efac326af552d878080808080")


@pytest.mark.parametrize(("data", "expected"), [
    (b"", 0),
    (bytes([1]) * 1000, 21),
    (bytes(1000), 21),
    (EMPTY_LEGACY_TX, 31),
    (CONTRACT_CALL, 202),
    (bytes.fromhex("facade"), 4),  # op-alloy-flz's short vector: 3 literals and their control byte
])
def test_fastlz_length_matches_op_geth_vectors(data: bytes, expected: int) -> None:
    assert flz_compress_len(data) == expected


def test_fastlz_length_grows_with_bytes_that_never_repeat() -> None:
    lengths = [flz_compress_len(bytes(range(n))) for n in range(1, 257)]
    assert all(b > a for a, b in zip(lengths, lengths[1:], strict=False))


def test_brotli_length_is_the_length_of_brotlis_own_output() -> None:
    import brotli

    for data in (CONTRACT_CALL, bytes(1000), b"x"):
        assert brotli_len(data) == len(brotli.compress(data, quality=1, lgwin=22))
        assert brotli.decompress(brotli.compress(data, quality=1, lgwin=22)) == data
    assert brotli_len(b"") == 1  # the empty stream: one byte (ISLAST + ISEMPTY)
    assert brotli_len(b"x") == 1 + 4  # one uncompressed byte in a stream of its own: 4 bytes of framing
    assert brotli_len(bytes(1000)) <= 25 < brotli_len(bytes(1000), quality=0)  # level 1 finds the run, level 0 less so
    assert brotli_len(CONTRACT_CALL, quality=11) <= brotli_len(CONTRACT_CALL)


def test_fjord_l1_fee_matches_op_geths_solidity_parity_case() -> None:
    # op-geth TestFjordL1CostSolidityParity: l1BaseFee 2e6, blob base fee 3e6, scalars 20 / 15, FastLZ size 235
    # -> 105484 wei. By hand: size = -42_585_600 + 836_500 * 235 = 153_991_900 (x1e6);
    # 153_991_900 * (20 * 2e6 * 16 + 15 * 3e6) / 1e12 = 153_991_900 * 685e6 / 1e12 = 105_484.4
    assert fjord_size_scaled(235) == 153_991_900
    assert op_l1_data_fee_wei(235, 2 * 10**6, 3 * 10**6, 20, 15) == 105_484


def test_fjord_small_transactions_pay_the_100_byte_minimum() -> None:
    # op-geth TestFjordL1CostFuncMinimumBounds: FastLZ sizes up to 170 cost the 100-byte minimum (3203000 wei
    # at base fee 1000e6, blob base fee 10e6, scalars 2 / 3); 171 is above it
    for size in (0, 100, 150, 170):
        assert fjord_size_scaled(size) == 100_000_000
        assert op_l1_data_fee_wei(size, 1000 * 10**6, 10 * 10**6, 2, 3) == 3_203_000
    assert fjord_size_scaled(171) > 100_000_000


def test_one_hand_computed_example_per_chain() -> None:
    p = Prices(eth_usd=2000.0, l1_gas_price_gwei=10.0, op_l1_base_fee_gwei=10.0, op_l1_blob_base_fee_gwei=2.0,
               op_base_fee_scalar=1000, op_blob_base_fee_scalar=500_000, op_l2_gas_price_gwei=0.01,
               arbitrum_l1_price_per_unit_gwei=0.5, arbitrum_l2_gas_price_gwei=0.1)
    gas = 100_000
    # L1: 100,000 gas x 10 gwei = 1e6 gwei = 0.001 ETH = $2
    assert l1_cost_eth(gas, p) == pytest.approx(0.001)
    # OP: FastLZ 300 -> size -42.5856 + 0.8365 * 300 = 208.3644 bytes; a byte costs
    # (16 * 1000 * 10 + 500,000 * 2) / 1e6 = 1.16 gwei -> 241.70270 gwei; L2 100,000 x 0.01 = 1,000 gwei
    da = fjord_size_scaled(300) / 1e6
    assert da == pytest.approx(208.3644)
    assert op_cost_eth(gas, da, p) == pytest.approx((208.3644 * 1.16 + 1000) * 1e-9)
    # Arbitrum: Brotli 250 bytes x 16 units x 0.5 gwei = 2,000 gwei; L2 100,000 x 0.1 gwei = 10,000 gwei
    assert arbitrum_cost_eth(gas, 250, p) == pytest.approx(12_000e-9)
    usd = cost_usd(gas, da, 250, p)
    assert usd == pytest.approx({"l1": 2.0, "op": (208.3644 * 1.16 + 1000) * 1e-9 * 2000, "arbitrum": 0.024})


def test_the_integer_fjord_fee_and_the_float_one_agree() -> None:
    p = Prices(op_l1_base_fee_gwei=12.5, op_l1_blob_base_fee_gwei=3.0, op_base_fee_scalar=5227,
               op_blob_base_fee_scalar=1014213, op_l2_gas_price_gwei=0.0)
    wei = op_l1_data_fee_wei(400, int(12.5e9), int(3e9), 5227, 1014213)
    assert op_cost_eth(0, fjord_size_scaled(400) / 1e6, p) * 1e18 == pytest.approx(wei, rel=1e-12)


def test_signed_bytes_rebuilt_from_rpc_fields_are_the_signed_transaction() -> None:
    account = Account.from_key("0x" + "11" * 32)
    tx = {"type": 2, "chainId": 31337, "nonce": 7, "maxPriorityFeePerGas": 10**9, "maxFeePerGas": 3 * 10**9,
          "gas": 90_000, "to": to_checksum_address("0x" + "ab" * 20), "value": 5, "data": "0x" + "00ff" * 40, "accessList": []}
    signed = account.sign_transaction(tx)
    raw = bytes(signed.raw_transaction)
    fields = {"type": "0x2", "chainId": hex(31337), "nonce": "0x7", "maxPriorityFeePerGas": hex(10**9),
              "maxFeePerGas": hex(3 * 10**9), "gas": hex(90_000), "to": tx["to"], "value": "0x5", "input": tx["data"],
              "accessList": [], "yParity": hex(signed.v), "v": hex(signed.v), "r": hex(signed.r), "s": hex(signed.s)}
    assert signed_bytes(fields) == raw
    legacy = account.sign_transaction({"chainId": 31337, "nonce": 1, "gasPrice": 10**9, "gas": 21_000,
                                       "to": to_checksum_address("0x" + "cd" * 20), "value": 1, "data": b""})
    legacy_fields = {"type": "0x0", "nonce": "0x1", "gasPrice": hex(10**9), "gas": hex(21_000), "to": "0x" + "cd" * 20,
                     "value": "0x1", "input": "0x", "v": hex(legacy.v), "r": hex(legacy.r), "s": hex(legacy.s)}
    assert signed_bytes(legacy_fields) == bytes(legacy.raw_transaction)
    assert signed_bytes({"type": "0x4"}) is None


def test_tx_size_of_signed_bytes() -> None:
    s = TxSize.of(50_000, CONTRACT_CALL)
    assert (s.gas, s.raw_bytes, s.fastlz_bytes) == (50_000, len(CONTRACT_CALL), 202)
    assert s.brotli_bytes == brotli_len(CONTRACT_CALL)
    assert s.op_da_bytes == pytest.approx(-42.5856 + 0.8365 * 202)


def test_prices_load_overrides_some_keys_and_keeps_the_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"eth_usd": 2500, "op_base_fee_scalar": 2269}))
    p = Prices.load(path)
    assert p.eth_usd == 2500.0 and isinstance(p.eth_usd, float) and p.op_base_fee_scalar == 2269
    assert p.l1_gas_price_gwei == Prices().l1_gas_price_gwei
    assert Prices.load(path).to_dict()["eth_usd"] == 2500.0


@pytest.mark.parametrize(("content", "message"), [
    ({"eth_usd": 2500, "gas_price": 3}, "unknown price key(s) gas_price"),
    ({"eth_usd": "2500"}, "eth_usd must be a number"),
    ({"l1_gas_price_gwei": True}, "l1_gas_price_gwei must be a number"),
    ({"op_base_fee_scalar": 5227.5}, "op_base_fee_scalar must be an integer"),
    ({"arbitrum_l2_gas_price_gwei": -1}, "arbitrum_l2_gas_price_gwei must be >= 0"),
    ([1, 2], "expected a JSON object"),
])
def test_prices_load_names_the_bad_key(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Prices.load(path)


def test_prices_load_reports_a_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prices file"):
        Prices.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        Prices.load(tmp_path / "bad.json")


def test_the_sentence_states_every_price() -> None:
    p = Prices(eth_usd=2345.5, l1_gas_price_gwei=7.25, op_l1_base_fee_gwei=6.5, op_l1_blob_base_fee_gwei=0.125,
               op_base_fee_scalar=2269, op_blob_base_fee_scalar=1055762, op_l2_gas_price_gwei=0.0042,
               arbitrum_l1_price_per_unit_gwei=0.0375, arbitrum_l2_gas_price_gwei=0.0125)
    sentence = p.sentence()
    for text in ("$2,345.50", "7.25", "6.5", "0.125", "2269", "1055762", "0.0042", "0.0375", "0.0125"):
        assert text in sentence, text
