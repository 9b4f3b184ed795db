"""How long a chain client has been waiting for its RPC to answer: the node's health reads it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class RpcWatch:
    """How long a client has been waiting for its RPC to answer anything.

    A request in flight, or one that ended without an answer (connection refused, timed out),
    keeps the wait going; any answer (a result, or a JSON-RPC error) ends it. Thread-safe: the
    node's health reads it on the API thread while the chain thread is blocked in a request, so a
    silent RPC shows after the wait, not after the client's timeout times its retries.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._inflight: dict[int, float] = {}
        self._tokens = 0
        self._waiting_since: float | None = None
        self._ended = 0.0

    def begin(self) -> int:
        """A request leaves now; returns the token to `end` it with."""
        with self._lock:
            now = self._clock()
            self._tokens += 1
            self._inflight[self._tokens] = now
            if self._waiting_since is None:
                self._waiting_since = now
            return self._tokens

    def end(self, token: int, *, answered: bool) -> None:
        """The request `token` came back, with an answer or without one (the wait goes on)."""
        with self._lock:
            self._inflight.pop(token, None)
            if not answered or self._waiting_since is None:
                return
            now = self._clock()
            self._ended = max(self._ended, now - self._waiting_since)
            # Requests still in flight wait from this answer on: the RPC spoke at `now`.
            self._waiting_since = now if self._inflight else None

    def timed(self, request: Callable[[], T], no_answer: tuple[type[BaseException], ...]) -> T:
        """Run `request`, timed: an exception in `no_answer` (a connection error, a timeout) means
        the RPC said nothing; anything else it raises, or returns, is an answer."""
        token = self.begin()
        try:
            result = request()
        except no_answer:
            self.end(token, answered=False)
            raise
        except BaseException:
            self.end(token, answered=True)
            raise
        self.end(token, answered=True)
        return result

    def silent_for(self) -> float:
        """Seconds since the client began waiting for an answer it has not had (0: not waiting)."""
        with self._lock:
            return 0.0 if self._waiting_since is None else max(0.0, self._clock() - self._waiting_since)

    def take_silence(self) -> float:
        """The longest wait an answer ended since the previous call (0 if none): the length of an
        outage that is over, including the part before any caller gave up."""
        with self._lock:
            ended, self._ended = self._ended, 0.0
            return ended
