"""Payload fetches off the loop: the pool's bounds, the total deadline, and servers that hang or trickle."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testkit import loopback_server, wait_until

from node.protocol import payload as pl
from node.protocol.errors import PayloadError
from node.runtime.fetcher import PayloadFetcher, origin_of


class Gate:
    """A fetch function whose calls block until released, recording which URIs ran."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[str] = []

    def __call__(self, uri: str) -> bytes:
        self.started.append(uri)
        if not self.release.wait(10):
            raise PayloadError("gate never opened")
        if "fail" in uri:
            raise PayloadError("GET failed: ConnectError")
        if "bug" in uri:
            raise RuntimeError("boom")
        return uri.encode()


def poll_until_done(fetcher: PayloadFetcher, task_id: int, uri: str) -> bytes | PayloadError:
    got: list[bytes | PayloadError] = []

    def done() -> bool:
        result = fetcher.poll(task_id, uri)
        if result is not None:
            got.append(result)
        return bool(got)

    wait_until(done, 5, f"the fetch of {uri}")
    return got[0]


def test_a_fetch_runs_on_a_worker_and_its_result_comes_back_once() -> None:
    gate = Gate()
    fetcher = PayloadFetcher(gate, workers=2)
    assert fetcher.poll(1, "http://a:1/x") is None  # started, not done: the loop goes on
    assert fetcher.poll(1, "http://a:1/x") is None
    gate.release.set()
    assert poll_until_done(fetcher, 1, "http://a:1/x") == b"http://a:1/x"
    assert gate.started == ["http://a:1/x"]  # polled several times, fetched once
    fetcher.close()


def test_errors_come_back_as_payload_errors_without_raising_in_the_loop() -> None:
    gate = Gate()
    gate.release.set()
    fetcher = PayloadFetcher(gate)
    fetcher.poll(1, "http://a:1/fail")
    fetcher.poll(2, "http://b:1/bug")
    assert "ConnectError" in str(poll_until_done(fetcher, 1, "http://a:1/fail"))
    bug = poll_until_done(fetcher, 2, "http://b:1/bug")
    assert isinstance(bug, PayloadError) and "RuntimeError" in str(bug)
    fetcher.close()


def test_one_origin_gets_at_most_its_share_of_workers() -> None:
    gate = Gate()
    fetcher = PayloadFetcher(gate, workers=4, per_origin=2)
    for task_id in range(1, 6):
        fetcher.poll(task_id, f"http://slow:80/{task_id}")
    fetcher.poll(9, "http://good:80/9")
    wait_until(lambda: len(gate.started) == 3, 5, "three fetches started")
    assert sorted(gate.started) == ["http://good:80/9", "http://slow:80/1", "http://slow:80/2"]
    assert fetcher.in_flight() == 3
    gate.release.set()
    fetcher.close()


def test_the_deadline_counts_from_the_start_and_frees_the_task_not_the_worker() -> None:
    gate = Gate()
    now = [0.0]
    fetcher = PayloadFetcher(gate, workers=1, per_origin=1, deadline_s=10, clock=lambda: now[0])
    fetcher.poll(1, "http://slow:80/1")
    fetcher.poll(2, "http://other:80/2")  # no free worker: waits, its clock not started
    now[0] = 10.5
    late = fetcher.poll(1, "http://slow:80/1")
    assert isinstance(late, PayloadError) and "did not arrive within 10s" in str(late)
    assert fetcher.poll(2, "http://other:80/2") is None and fetcher.in_flight() == 1  # the hung worker still counts
    gate.release.set()
    wait_until(lambda: fetcher.in_flight() == 0, 5, "the hung worker freed")
    assert fetcher.poll(2, "http://other:80/2") is None  # now it starts...
    assert poll_until_done(fetcher, 2, "http://other:80/2") == b"http://other:80/2"  # ...with a full deadline
    fetcher.close()


def test_origins_include_the_port_and_ignore_the_path() -> None:
    assert origin_of("http://127.0.0.1:8000/a?t=1") == origin_of("http://127.0.0.1:8000/b")
    assert origin_of("http://127.0.0.1:8000/a") != origin_of("http://127.0.0.1:8001/a")
    assert origin_of("https://h/x") == "https://h:443"
    assert origin_of("file:///tmp/x") == ""


@pytest.fixture
def trickle_server() -> Iterator[str]:
    """A loopback server that answers 200 and then sends one byte every 0.3 s, forever."""
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not stop.wait(0.3):
                try:
                    conn.sendall(b"{")
                except OSError:
                    return

    with loopback_server(lambda conn: threading.Thread(target=serve, args=(conn,), daemon=True).start()) as url:
        yield url
    stop.set()


def test_a_trickling_server_is_cut_off_at_the_deadline_not_the_read_timeout(trickle_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(PayloadError, match="did not finish within 1s"):
        pl.fetch(f"{trickle_server}/p.json?token=secret", timeout_s=5, deadline_s=1)
    took = time.monotonic() - started
    print(f"trickling server cut off after {took:.2f}s (deadline 1s, read timeout 5s)")
    assert took < 5  # each read arrived within its timeout: only the deadline could stop it


def test_a_fifo_or_directory_behind_file_uri_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(PayloadError, match="regular file"):
        pl.fetch(fifo.as_uri(), allow_file=[tmp_path])  # a blocking open would hang here forever
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(PayloadError, match="regular file"):
        pl.fetch((tmp_path / "dir.json").as_uri(), allow_file=[tmp_path])
