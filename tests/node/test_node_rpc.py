"""What the node learns from its chain client about the RPC: how long it has gone without an answer
(`RpcWatch`), a WARNING per try that got none (method and duration), and JSON-RPC error replies
raised as `RpcErrorReply` instead of web3's own exceptions."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest
from eth_account import Account
from testkit import wait_until

from node.chain.client import Web3Client
from node.chain.rpcwatch import RpcWatch
from node.protocol.errors import ChainError, RpcErrorReply, RpcUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_watch_counts_from_the_first_unanswered_request_to_the_next_answer() -> None:
    clock = Clock()
    watch = RpcWatch(clock)
    assert watch.silent_for() == 0.0
    quick = watch.begin()
    clock.now += 0.01
    watch.end(quick, answered=True)
    assert watch.silent_for() == 0.0 and watch.take_silence() == pytest.approx(0.01)

    lost = watch.begin()  # times out: no answer
    clock.now += 10.0
    watch.end(lost, answered=False)
    assert watch.silent_for() == pytest.approx(10.0)  # still waiting while nobody asks
    clock.now += 5.0
    retry = watch.begin()
    clock.now += 1.0
    assert watch.silent_for() == pytest.approx(16.0)
    watch.end(retry, answered=True)
    assert watch.silent_for() == 0.0
    assert watch.take_silence() == pytest.approx(16.0)  # the whole outage, not the last try
    assert watch.take_silence() == 0.0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose kernel completes the TCP handshake but whose server never reads or answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def test_a_silent_rpc_shows_while_the_request_still_waits(silent_port: int, caplog) -> None:
    client = Web3Client(f"http://127.0.0.1:{silent_port}", Account.create(), timeout=0.4, retries=1, backoff=0.05)
    failed: list[BaseException] = []

    def ask() -> None:
        try:
            client.block_number()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failed.append(exc)

    with caplog.at_level(logging.WARNING, logger="node.chain.client"):
        asking = threading.Thread(target=ask)
        asking.start()
        wait_until(lambda: client.watch.silent_for() > 0.2, 2, "the watch to see the request go unanswered")
        assert asking.is_alive()  # the caller is still inside its first try
        asking.join(timeout=5)
    assert len(failed) == 1 and isinstance(failed[0], RpcUnavailable)
    tries = [r for r in caplog.records if r.levelno == logging.WARNING and "eth_blockNumber" in r.getMessage()]
    assert len(tries) == 2  # each try, the retry included, with its method and how long it waited
    assert all("timed out after 0.4" in r.getMessage() for r in tries)
    assert "retrying in" in tries[0].getMessage() and "giving up" in tries[1].getMessage()
    assert client.watch.silent_for() >= 0.8  # nothing has answered since


def test_a_refused_connection_is_no_answer_either(caplog) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    client = Web3Client(f"http://127.0.0.1:{port}", Account.create(), retries=2, backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="node.chain.client"), pytest.raises(RpcUnavailable):
        client.chain_id()
    assert sum("eth_chainId connection refused after" in r.getMessage() for r in caplog.records) == 3
    assert client.watch.silent_for() > 0


def test_error_replies_are_chain_errors_not_web3_exceptions(chain) -> None:
    client = chain.client(0)
    head = client.block_number()
    with pytest.raises(RpcErrorReply) as excinfo:
        client.get_logs(from_block=head + 1, to_block=head + 5)  # the shape after a reorg shortened the chain
    assert isinstance(excinfo.value, ChainError) and excinfo.value.code == -32602
    assert "BlockOutOfRangeError" in str(excinfo.value)
    with pytest.raises(RpcErrorReply) as raw:
        client.request("chorus_noSuchMethod")
    assert raw.value.method == "chorus_noSuchMethod" and raw.value.code is not None
    assert client.watch.silent_for() == 0.0  # an error reply is an answer
