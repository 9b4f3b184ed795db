"""Payload fetches off the node's loop: a bounded pool of worker threads, a total deadline per
fetch, and a cap on fetches in flight per origin.

The node's loop is the only thread that sends its transactions, so it must never wait on a
submitter's server. It asks `PayloadFetcher.poll(task_id, uri)` each time it reaches a task whose
payload is behind a URI: the first call starts the fetch on a worker, later calls return None
while it runs, and one call returns its bytes or its PayloadError. The loop goes on with the other
tasks meanwhile, so a server that never answers delays only the tasks whose payloads it holds.

Bounds, each a node setting:
- `workers` fetches run at once; a task beyond that waits its turn (its clock has not started).
- `per_origin` of them at most go to one origin (scheme, host, port), so one slow server cannot
  take every worker: the others stay free for other servers.
- `deadline_s` bounds a fetch from its start to its answer: past it the task's payload is refused
  ("did not arrive within ...") even if a read is still trickling in. The worker itself is freed
  when the read's own timeout fires (the fetch function checks the deadline between chunks);
  until then it still counts against its origin, so a hanging server keeps at most `per_origin`
  workers.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from node.protocol.errors import PayloadError
from node.protocol.payload import redact_uri

log = logging.getLogger(__name__)


def origin_of(uri: str) -> str:
    """The (scheme, host, port) a URI is served from, as one string; "" for file:// and the like."""
    p = urllib.parse.urlsplit(uri)
    if p.scheme not in ("http", "https"):
        return ""
    try:
        port = p.port or (443 if p.scheme == "https" else 80)
    except ValueError:
        port = 0
    return f"{p.scheme}://{p.hostname or ''}:{port}"


@dataclass
class _Job:
    future: Future[bytes]
    origin: str
    started: float


class PayloadFetcher:
    """Runs `fetch(uri)` on worker threads; `poll` is called from one thread (the node's loop)."""

    def __init__(self, fetch: Callable[[str], bytes], *, workers: int = 4, per_origin: int = 2,
                 deadline_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if workers < 1 or per_origin < 1 or deadline_s <= 0:
            raise ValueError("workers and per_origin must be >= 1 and deadline_s > 0")
        self._fetch = fetch
        self.workers = workers
        self.per_origin = per_origin
        self.deadline_s = deadline_s
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="payload-fetch")
        self._jobs: dict[int, _Job] = {}
        self._orphans: list[_Job] = []  # given up on or forgotten, still running on a worker

    def poll(self, task_id: int, uri: str) -> bytes | PayloadError | None:
        """The payload's bytes, or the reason it cannot be had, once the fetch is over; None while
        it runs or waits for a free worker."""
        job = self._jobs.get(task_id)
        if job is None:
            self._start(task_id, uri)
            return None
        if job.future.done():
            del self._jobs[task_id]
            exc = job.future.exception()
            if exc is None:
                return job.future.result()
            if isinstance(exc, PayloadError):
                return exc
            log.warning("task %d: payload fetch failed unexpectedly: %s", task_id, type(exc).__name__)
            return PayloadError(f"payload fetch from {redact_uri(uri)} failed: {type(exc).__name__}")
        waited = self._clock() - job.started
        if waited > self.deadline_s:
            del self._jobs[task_id]
            self._orphans.append(job)
            return PayloadError(f"payload at {redact_uri(uri)} did not arrive within {self.deadline_s:g}s")
        return None

    def forget(self, task_id: int) -> None:
        """Stop caring about a task's fetch (the task is done, gone, or its row was reset)."""
        job = self._jobs.pop(task_id, None)
        if job is not None and not job.future.cancel():
            self._orphans.append(job)

    def in_flight(self) -> int:
        """Fetches running on a worker now, those given up on included."""
        self._reap()
        return len(self._jobs) + len(self._orphans)

    def close(self) -> None:
        """Stop accepting work; running fetches end on their own timeouts (worker threads are not joined)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start(self, task_id: int, uri: str) -> None:
        origin = origin_of(uri)
        self._reap()
        running = list(self._jobs.values()) + self._orphans
        if len(running) >= self.workers:
            return  # every worker is busy: the deadline starts when a worker picks the fetch up
        if origin and sum(1 for j in running if j.origin == origin) >= self.per_origin:
            return  # this origin has its share of workers already
        self._jobs[task_id] = _Job(self._pool.submit(self._fetch, uri), origin, self._clock())

    def _reap(self) -> None:
        self._orphans = [j for j in self._orphans if not j.future.done()]
