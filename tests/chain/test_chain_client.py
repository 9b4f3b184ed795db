"""The web3 client: concurrent nonces, fee bumps, RPC failures, local signing."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.chain.api import Fees
from node.chain.client import NonceManager, Web3Client, bump_fees, fees_for, min_replacement, signing_backend
from node.protocol.enums import Encoding
from node.devnet.anvil import free_port
from node.protocol.errors import ChainError, RpcErrorReply, RpcUnavailable
from node.chain.settings import dev_account

from chainhelpers import model_id

# --- fees: arithmetic -------------------------------------------------------------------------

fee = st.integers(min_value=0, max_value=10**15)


@given(fee, fee)
def test_bump_raises_both_caps_past_ten_percent(max_fee: int, tip: int) -> None:
    old = Fees(max(max_fee, tip), tip)
    new = bump_fees(old)
    # geth: new >= old * 110 / 100 for both caps; we add 1 wei so rounding never lands on the line.
    assert new.max_fee_per_gas * 100 >= old.max_fee_per_gas * 110
    assert new.max_priority_fee_per_gas * 100 >= old.max_priority_fee_per_gas * 110
    assert new.max_fee_per_gas > old.max_fee_per_gas
    assert new.max_priority_fee_per_gas > old.max_priority_fee_per_gas
    assert new.max_fee_per_gas >= new.max_priority_fee_per_gas


@given(fee, fee, fee, fee)
def test_bump_follows_a_rising_market(old_fee: int, old_tip: int, now_fee: int, now_tip: int) -> None:
    old, now = Fees(max(old_fee, old_tip), old_tip), Fees(max(now_fee, now_tip), now_tip)
    new = bump_fees(old, now)
    assert new.max_fee_per_gas >= now.max_fee_per_gas and new.max_priority_fee_per_gas >= now.max_priority_fee_per_gas


def test_min_replacement_examples() -> None:
    assert min_replacement(0) == 1
    assert min_replacement(9) == 10  # 9 * 1.1 = 9.9
    assert min_replacement(100) == 111
    assert fees_for(base_fee=7, tip=2) == Fees(16, 2)


# --- nonces -----------------------------------------------------------------------------------


def test_nonce_manager_no_gaps_no_duplicates_under_threads() -> None:
    fetches = []
    manager = NonceManager(lambda: fetches.append(1) or 40)
    seen: list[int] = []
    lock = threading.Lock()

    def take(i: int) -> None:
        try:
            with manager.reserve() as nonce:
                if i % 7 == 0:
                    raise RuntimeError("send failed")  # a failed send must not burn the nonce
                with lock:
                    seen.append(nonce)
        except RuntimeError:
            pass

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(take, range(100)))
    assert sorted(seen) == list(range(40, 40 + len(seen)))
    assert len(fetches) == 1


def test_fifty_concurrent_sends_from_one_key_all_mined(chain) -> None:
    client = chain.client(6)
    c = chain.contracts(6)
    start = client.nonces.resync()
    ids = [model_id(f"concurrent-{i}") for i in range(50)]

    def register(mid: bytes):
        sent = c.send("ModelRegistry", "register", mid, 4, Encoding.F32, "c")
        return sent, c.result(sent)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(register, ids))
    nonces = sorted(sent.nonce for sent, _ in results)
    assert nonces == list(range(start, start + 50))
    assert all(result.receipt.succeeded for _, result in results)
    assert client.w3.eth.get_transaction_count(client.address, "latest") == start + 50
    assert all(c.is_model_registered(mid) for mid in ids)


def test_resync_after_another_sender_used_the_key(chain, caplog: pytest.LogCaptureFixture) -> None:
    mine = chain.client(12)
    other = Web3Client(chain.rpc_url, dev_account(12))  # same key, separate nonce cache
    to = chain.client(13).address
    mine.transact(to, b"", value=1)  # caches nonce n+1
    other.transact(to, b"", value=1)  # takes n+1 behind our back
    with caplog.at_level("INFO", logger="node.chain.client"):
        receipt = mine.transact(to, b"", value=1)  # "nonce too low" -> resync -> n+2
    assert receipt.succeeded
    assert "resyncing" in caplog.text
    assert mine.w3.eth.get_transaction_count(mine.address) == mine.w3.eth.get_transaction_count(mine.address, "pending")


def test_replacement_with_bumped_fees_lands_instead_of_the_original(chain) -> None:
    client = chain.client(14)
    to = chain.client(15).address
    chain.rpc("evm_setAutomine", False)
    original = client.send(to, b"", value=1, gas=21_000)
    replacement = client.replace(original)
    assert replacement.nonce == original.nonce and replacement.tx_hash != original.tx_hash
    assert replacement.fees.max_fee_per_gas >= min_replacement(original.fees.max_fee_per_gas)
    assert replacement.fees.max_priority_fee_per_gas >= min_replacement(original.fees.max_priority_fee_per_gas)
    chain.rpc("evm_mine")
    chain.rpc("evm_setAutomine", True)
    assert client.wait(replacement, timeout=5).succeeded
    assert client.get_receipt(original.tx_hash) is None
    block = client.w3.eth.get_block("latest", full_transactions=False)
    assert [tx.hex().removeprefix("0x") for tx in block["transactions"]] == [replacement.tx_hash[2:]]


def test_receipt_wait_times_out(chain) -> None:
    client = chain.client(16)
    chain.rpc("evm_setAutomine", False)
    sent = client.send(chain.client(15).address, b"", value=1, gas=21_000)
    with pytest.raises(ChainError, match="not mined within"):
        client.wait(sent, timeout=0.2)


# --- RPC failures -----------------------------------------------------------------------------


def test_dead_port_raises_rpc_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = Web3Client(url, dev_account(0), retries=2, backoff=0.01)
    with pytest.raises(RpcUnavailable, match="connection refused") as info:
        client.block_number()
    assert url in str(info.value)
    with pytest.raises(RpcUnavailable):
        client.send("0x" + "11" * 20, b"", value=1)


def test_silent_server_times_out_as_rpc_unavailable() -> None:
    with socket.socket() as server:  # accepts connections (backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        client = Web3Client(url, timeout=0.2, retries=0)
        with pytest.raises(RpcUnavailable, match="timed out"):
            client.chain_id()


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_http_front_is_retried_then_rpc_unavailable_never_a_raw_http_error(chain, status: int,
                                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A rate-limiting gateway (429) or one without its upstream (503) answers `busy` twice, then
    passes requests on: the client retries like a dropped connection; with fewer retries than
    refusals it gives up as RpcUnavailable, which the node waits out."""
    import http.server

    from testkit import forward_rpc, reply_json

    refusals = [2]

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if refusals[0] > 0:
                refusals[0] -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            reply_json(self, forward_rpc(chain.rpc_url, body, timeout=10))

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with caplog.at_level("WARNING", logger="node.chain.client"):
            assert Web3Client(url, retries=2, backoff=0.01).block_number() == chain.client(0).block_number()
        assert sum(f"HTTP {status}" in r.getMessage() for r in caplog.records) == 2
        refusals[0] = 2
        with pytest.raises(RpcUnavailable, match=f"HTTP {status}"):
            Web3Client(url, retries=1, backoff=0.01).block_number()
    finally:
        server.shutdown()
        server.server_close()


def test_signing_is_local_and_uses_coincurve(chain, monkeypatch: pytest.MonkeyPatch) -> None:
    assert signing_backend() == "CoinCurveECCBackend"
    client = chain.client(17)
    methods: list[str] = []
    make_request = client.w3.provider.make_request

    def spy(method, params):
        methods.append(method)
        return make_request(method, params)

    monkeypatch.setattr(client.w3.provider, "make_request", spy)
    receipt = client.transact(chain.client(15).address, b"", value=1)
    assert receipt.sender == client.address
    assert "eth_sendRawTransaction" in methods and "eth_sendTransaction" not in methods


def test_a_batch_answers_each_call_in_order_with_error_replies_in_place(chain) -> None:
    client = chain.client(0)
    head = client.block_number()
    number, missing, chain_id = client.request_batch(
        [("eth_blockNumber", []), ("chorus_noSuchMethod", []), ("eth_chainId", [])])
    assert int(number, 16) == head and int(chain_id, 16) == client.chain_id()
    assert isinstance(missing, RpcErrorReply) and missing.method == "chorus_noSuchMethod"
    tx = client.send(chain.client(15).address, b"", value=1, gas=21_000)
    client.wait(tx)
    mined, unknown = client.get_receipts([tx.tx_hash, "0x" + "00" * 32])
    assert mined is not None and mined.tx_hash == tx.tx_hash and mined.succeeded and unknown is None
    assert client.get_receipts([]) == [] and client.request_batch([]) == []


def test_an_idle_keep_alive_connection_the_server_closed_is_reopened_without_a_retry(chain, caplog) -> None:
    """An HTTP/1.1 front that closes each connection after its answer (without saying so): the next
    request finds its kept-alive connection dead, and one fresh connection answers it; no try is
    lost, so nothing is logged as a missing answer."""
    import http.server

    from testkit import forward_rpc, reply_json

    class Closing(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            reply_json(self, forward_rpc(chain.rpc_url, body, timeout=10))
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Closing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = Web3Client(f"http://127.0.0.1:{server.server_address[1]}", retries=0)
        with caplog.at_level("WARNING", logger="node.chain.client"):
            numbers = [client.block_number() for _ in range(5)]
        assert numbers == [chain.client(0).block_number()] * 5
        assert not [r for r in caplog.records if r.name == "node.chain.client"]
    finally:
        server.shutdown()
        server.server_close()
