"""Micro-batching: a queue and one worker thread that serves queued values in batches.

The coordinator runs one `MicroBatcher` per route (`node.coordinator.service`): the worker takes
the first waiting value, gathers more until it has `max_batch` or `max_wait_s` has passed (after
that it still takes what is already queued), calls `run_batch` once on all of them and resolves
each value's future with its own result. A batch that fails is retried one value at a time, so one
bad request fails alone; a future whose caller left before its batch ran is skipped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatchMetrics(Protocol):
    """What a batcher records (per route label): `CoordinatorMetrics` has these among others."""

    batch_size: Any
    batch_seconds: Any
    queue_depth: Any



class Overloaded(Exception):
    """The batcher's queue is full."""


@dataclass
class _Pending(Generic[T, R]):
    value: T
    future: Future[R]


_STOP = object()


class MicroBatcher(Generic[T, R]):
    """A queue and one worker thread: `run_batch(values) -> results` (same order, same length) is
    called on up to `max_batch` queued values at a time; `submit` returns each value's future."""

    def __init__(self, name: str, run_batch: Callable[[list[T]], Sequence[R]], *, max_batch: int = 32,
                 max_wait_s: float = 0.005, max_queue: int = 1024, metrics: BatchMetrics | None = None) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.name = name
        self.max_batch, self.max_wait_s = max_batch, max(0.0, max_wait_s)
        self.metrics = metrics
        self.batches = 0
        """Calls of `run_batch` so far (one onnxruntime call each, when it batches)."""
        self.items = 0
        """Values served so far."""
        self._run_batch = run_batch
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"batch-{name}", daemon=True)

    def start(self) -> MicroBatcher[T, R]:
        self._thread.start()
        return self

    def submit(self, value: T) -> Future[R]:
        """Queue one value; its future holds `run_batch`'s result for it (or its exception)."""
        if self._closed:
            raise RuntimeError(f"batcher {self.name} is closed")
        future: Future[R] = Future()
        try:
            self._queue.put_nowait(_Pending(value, future))
        except queue.Full:
            raise Overloaded(f"{self._queue.maxsize} {self.name} requests are already waiting") from None
        self._gauge()
        return future

    def close(self, timeout: float = 5.0) -> None:
        """Serve what is queued, then stop the worker."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.labels(route=self.name).set(self._queue.qsize())

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:  # past the deadline, still take what is already waiting
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._gauge()
            self._serve(batch)

    def _serve(self, batch: list[_Pending[T, R]]) -> None:
        live = [p for p in batch if p.future.set_running_or_notify_cancel()]  # a client that left is skipped
        if not live:
            return
        t0 = time.perf_counter()
        outcomes: list[tuple[bool, Any]] = []  # (ok, result or exception) per live request
        try:
            outcomes = [(True, r) for r in self._call([p.value for p in live])]
        except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
            if len(live) == 1:
                outcomes = [(False, exc)]
            else:  # one bad request must not fail the others: serve them one by one
                log.warning("%s batch of %d failed (%s); retrying one by one", self.name, len(live), exc)
                for p in live:
                    try:
                        outcomes.append((True, self._call([p.value])[0]))
                    except Exception as one:  # noqa: BLE001
                        outcomes.append((False, one))
        # Metrics first: a client that reads /metrics right after its answer sees its batch counted.
        if self.metrics is not None:
            self.metrics.batch_size.labels(route=self.name).observe(len(live))
            self.metrics.batch_seconds.labels(route=self.name).observe(time.perf_counter() - t0)
        for p, (ok, value) in zip(live, outcomes, strict=True):
            if ok:
                p.future.set_result(value)
            else:
                p.future.set_exception(value)

    def _call(self, values: list[T]) -> Sequence[R]:
        self.batches += 1
        self.items += len(values)
        results = self._run_batch(values)
        if len(results) != len(values):
            raise RuntimeError(f"{self.name}: batch of {len(values)} gave {len(results)} results")
        return results
