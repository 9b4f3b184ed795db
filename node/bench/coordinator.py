"""Coordinator benchmark: throughput, latency p50/p95 and peak RSS of a real `chorus coordinator run`
process under concurrent /embed and /decide requests, with micro-batching off (`--max-batch 1`) and
on (`--max-batch 32`), f32 and int8 models.

One coordinator process per configuration is started against a throw-away devnet (each registers
on chain like in production, with its own key); all run side by side, idle but for their chain
polling while another is measured. Each is warmed up, then driven by `concurrency` clients from this
process (asyncio + httpx, keep-alive connections) in interleaved rounds (the configs in rotating
order), so load drift on a shared machine hits every config alike:

- `/embed x1`: one headline per request;
- `/embed x32`: 32 headlines per request;
- `/decide`: one chorus.task/1 payload per request (2 headlines, a 32-point series, 8 flows).

Throughput = requests (and items: texts or payloads) / wall time from the first request sent to
the last answer, summed over rounds; latency = each request's round trip, pooled over rounds. The
server's mean batch size is read from its own /metrics. Idle RSS = VmRSS once healthy; peak RSS =
VmHWM of the coordinator process (/proc/<pid>/status) after all the load.
Client and server share the machine's cores: the numbers are for this box, load included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from node.bench.throughput import percentile
from node.protocol.enums import Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    """One coordinator process: its max batch, U model and MiniLM variant."""

    name: str
    max_batch: int
    int8: bool = False
    text_int8: bool = False

    def args(self, threads: int) -> tuple[str, ...]:
        return ("--max-batch", str(self.max_batch), "--threads", str(threads),
                "--int8" if self.int8 else "--f32", "--text-int8" if self.text_int8 else "--text-f32")


DEFAULT_CONFIGS = (
    Config("f32, max-batch 1", 1),
    Config("f32, max-batch 32", 32),
    Config("int8, max-batch 32", 32, int8=True, text_int8=True),
)


@dataclass
class LoadResult:
    config: str
    scenario: str
    requests: int
    items: int
    concurrency: int
    duration_s: float
    requests_per_s: float
    items_per_s: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_server_batch: float
    """Mean requests per onnxruntime call on the server during this scenario."""


@dataclass
class ProcessResult:
    config: str
    models: str
    startup_s: float
    idle_rss_mb: float
    """VmRSS once healthy, before any request."""
    peak_rss_mb: float
    """VmHWM: the most resident memory the coordinator process ever had."""
    rss_mb: float
    loads: list[LoadResult] = field(default_factory=list)


@dataclass
class CoordinatorBench:
    threads: int
    concurrency: int
    cpus: int
    rounds: int
    results: list[ProcessResult]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def proc_status_mb(pid: int, key: str) -> float:
    """A `kB` line of /proc/<pid>/status (VmHWM, VmRSS) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(f"{key} not in /proc/{pid}/status")


def _batch_stats(metrics_text: str, route: str) -> tuple[float, float]:
    """(sum, count) of chorus_coordinator_batch_size for `route` from a /metrics body."""
    out = []
    for suffix in ("sum", "count"):
        m = re.search(rf'^chorus_coordinator_batch_size_{suffix}{{route="{route}"}} ([0-9.e+]+)$', metrics_text,
                      re.MULTILINE)
        out.append(float(m.group(1)) if m else 0.0)
    return out[0], out[1]


def scenarios(n_requests: int) -> list[tuple[str, str, list[dict[str, Any]], int]]:
    """(name, route, request kwargs, items per request) of the three loads."""
    from models.minilm.heldout import HELDOUT_SENTENCES
    from node.protocol.payload import encode, example_payload

    texts = list(HELDOUT_SENTENCES)
    one = [{"json": {"texts": [texts[i % len(texts)]]}} for i in range(n_requests)]
    many = [{"json": {"texts": [texts[(i * 32 + j) % len(texts)] for j in range(32)]}}
            for i in range(max(1, n_requests // 8))]
    decide = [{"content": encode(example_payload(i, asset=("ETH", "BTC", "SOL")[i % 3])),
               "headers": {"content-type": "application/json"}} for i in range(n_requests)]
    return [("/embed x1", "/embed", one, 1), ("/embed x32", "/embed", many, 32), ("/decide", "/decide", decide, 1)]


async def drive(url: str, route: str, requests: list[dict[str, Any]], concurrency: int) -> tuple[float, list[float]]:
    """Send every request with at most `concurrency` in flight; (wall seconds, per-request ms)."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        async def one(kwargs: dict[str, Any]) -> None:
            async with sem:
                t0 = time.perf_counter()
                response = await client.post(route, **kwargs)
                latencies.append((time.perf_counter() - t0) * 1e3)
                response.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(r) for r in requests))
        return time.perf_counter() - t0, latencies


@dataclass
class _Running:
    config: Config
    proc: Any
    startup_s: float
    idle_rss_mb: float
    models: str = ""
    samples: dict[str, list[tuple[float, list[float], float, float]]] = field(default_factory=dict)
    """scenario -> per round (seconds, latencies ms, batch-size sum, onnxruntime calls)."""


def _start(config: Config, devnet_file: Path, state: Path, key_index: int, threads: int) -> _Running:
    import httpx

    from node.devnet.cluster import free_base_port, spawn_node, wait_healthy

    t0 = time.perf_counter()
    proc = spawn_node(Role.COORDINATOR.label, free_base_port(1, start=18900 + 10 * key_index), key_index, devnet_file,
                      state_dir=state, die_with_parent=True, extra_args=config.args(threads))
    try:
        wait_healthy([proc], timeout=180)
    except BaseException:
        proc.stop(timeout=10)
        raise
    running = _Running(config, proc, time.perf_counter() - t0, proc_status_mb(proc.pid, "VmRSS"))
    info = httpx.get(f"{proc.url}/info", timeout=5).json()
    text = httpx.post(f"{proc.url}/embed", json={"texts": ["x"]}, timeout=30).json()["model"]
    running.models = f"{info['model_name']} + {text}"
    return running


def _round(run: _Running, name: str, route: str, requests: list[dict[str, Any]], concurrency: int) -> None:
    import httpx

    before = _batch_stats(httpx.get(f"{run.proc.url}/metrics").text, route.strip("/"))
    seconds, latencies = asyncio.run(drive(run.proc.url, route, requests, concurrency))
    after = _batch_stats(httpx.get(f"{run.proc.url}/metrics").text, route.strip("/"))
    run.samples.setdefault(name, []).append((seconds, latencies, after[0] - before[0], after[1] - before[1]))


def _summary(run: _Running, name: str, per_request: int, concurrency: int) -> LoadResult:
    rounds = run.samples[name]
    seconds = sum(r[0] for r in rounds)
    latencies = [ms for r in rounds for ms in r[1]]
    calls = sum(r[3] for r in rounds)
    n = len(latencies)
    return LoadResult(run.config.name, name, n, n * per_request, concurrency, round(seconds, 3),
                      round(n / seconds, 1), round(n * per_request / seconds, 1), round(percentile(latencies, 50), 2),
                      round(percentile(latencies, 95), 2), round(max(latencies), 2),
                      round(sum(r[2] for r in rounds) / calls, 2) if calls else float("nan"))


def run_bench(configs: Sequence[Config] = DEFAULT_CONFIGS, *, threads: int = 1, concurrency: int = 32,
              n_requests: int = 128, rounds: int = 3) -> CoordinatorBench:
    """A devnet in a temporary directory and one coordinator process per config (each its own key),
    all started first; then, per scenario, `rounds` rounds of `n_requests` requests that visit the
    configs in rotating order, so load drift on the machine hits every config alike."""
    from node.devnet.anvil import devnet_down, devnet_up, free_port

    with tempfile.TemporaryDirectory(prefix="chorus-bench-coordinator-") as tmp:
        state = Path(tmp)
        devnet_up(port=free_port(), state=state)
        running: list[_Running] = []
        try:
            for i, config in enumerate(configs):
                running.append(_start(config, state / "devnet.json", state / "nodes", 1 + i, threads))
            plan = scenarios(n_requests)
            for name, route, requests, _ in plan:
                for run in running:  # warm-up: kernels, arenas, connections
                    asyncio.run(drive(run.proc.url, route, requests[:concurrency], concurrency))
                for r in range(rounds):
                    for run in running[r % len(running):] + running[:r % len(running)]:
                        _round(run, name, route, requests, concurrency)
                        log.info("%s %s round %d done", run.config.name, name, r + 1)
            results = [ProcessResult(run.config.name, run.models, round(run.startup_s, 2),
                                     round(run.idle_rss_mb, 1), round(proc_status_mb(run.proc.pid, "VmHWM"), 1),
                                     round(proc_status_mb(run.proc.pid, "VmRSS"), 1),
                                     [_summary(run, name, per, concurrency) for name, _, _, per in plan])
                       for run in running]
        finally:
            for run in running:
                run.proc.stop(timeout=15)
            devnet_down(state=state)
    return CoordinatorBench(threads, concurrency, os.cpu_count() or 1, rounds, results)


def print_report(bench: CoordinatorBench) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 130))
    table = Table(title=f"Coordinator under load ({bench.concurrency} concurrent clients, {bench.threads} "
                        f"onnxruntime thread(s) per session, {bench.rounds} interleaved rounds, {bench.cpus} CPUs "
                        f"shared by client and server)")
    for col in ("config", "route", "requests", "req/s", "items/s", "p50 ms", "p95 ms", "server batch"):
        table.add_column(col, justify="left" if col in ("config", "route") else "right")
    for p in bench.results:
        for r in p.loads:
            table.add_row(p.config, r.scenario, str(r.requests), f"{r.requests_per_s:.1f}", f"{r.items_per_s:.1f}",
                          f"{r.p50_ms:.1f}", f"{r.p95_ms:.1f}", f"{r.mean_server_batch:.1f}")
    console.print(table)
    mem = Table(title="Coordinator process memory (/proc/<pid>/status)")
    for col in ("config", "models", "start-up s", "idle RSS MB", "peak RSS MB (VmHWM)", "RSS MB after"):
        mem.add_column(col, justify="left" if col in ("config", "models") else "right")
    for p in bench.results:
        mem.add_row(p.config, p.models, f"{p.startup_s:.1f}", f"{p.idle_rss_mb:.1f}", f"{p.peak_rss_mb:.1f}",
                    f"{p.rss_mb:.1f}")
    console.print(mem)
    by = {(p.config, r.scenario): r for p in bench.results for r in p.loads}
    for scenario in ("/embed x1", "/decide"):
        off, on = by.get((DEFAULT_CONFIGS[0].name, scenario)), by.get((DEFAULT_CONFIGS[1].name, scenario))
        if off and on:
            console.print(f"micro-batching on {scenario}: {on.requests_per_s / off.requests_per_s:.2f}x the "
                          f"throughput of max-batch 1, p95 {on.p95_ms:.0f} ms vs {off.p95_ms:.0f} ms")
