"""The fee model's input from a real chain: Anvil's `eth_getRawTransactionByHash` gives the signed
bytes, and the rebuild from `eth_getTransactionByHash`'s fields (for an RPC without it) gives the
same bytes, so both paths compress to the same sizes. (An Anvil of its own: no contracts needed.)"""

from __future__ import annotations

from node.chain.client import Web3Client
from node.chain.fees import TxSize, raw_transaction, signed_bytes
from node.chain.settings import dev_account
from node.devnet.anvil import Anvil


def test_the_raw_bytes_and_the_rebuilt_ones_agree() -> None:
    anvil = Anvil.start(die_with_parent=True)
    try:
        client = Web3Client(anvil.rpc_url, dev_account(3), retries=1, receipt_timeout=20)
        other = dev_account(4).address
        sent = [client.send(other, b"", value=1, gas=21_000),
                client.send(other, bytes(4) + bytes(range(200)) * 2, gas=200_000)]
        for tx in sent:
            client.wait(tx)
            raw = client.request("eth_getRawTransactionByHash", [tx.tx_hash])
            assert isinstance(raw, str) and raw.startswith("0x")
            signed = bytes.fromhex(raw[2:])
            fields = client.request("eth_getTransactionByHash", [tx.tx_hash])
            assert signed_bytes(dict(fields)) == signed
            assert raw_transaction(client, tx.tx_hash) == signed
            size = TxSize.of(21_000, signed)
            assert 0 < size.fastlz_bytes <= size.raw_bytes + size.raw_bytes // 32 + 1
            assert size.op_da_bytes >= 100
        assert TxSize.of(0, signed).fastlz_bytes < len(signed)  # the repeated 200 bytes compress
    finally:
        anvil.stop()
