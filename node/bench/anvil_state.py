"""What a block costs Anvil as its state grows: CPU per mined (empty) block at several state sizes,
each as a ratio to the smallest, all measured in one run.

A long bench keeps one Anvil for the whole run, and every task it submits stays in the contracts'
storage, so the chain's state only grows. This benchmark shows what that does to the chain's CPU:

1. For each size, a fresh Anvil (interval mining, `block_time`, Chorus' usual flags) gets `slots`
   storage slots on one account (`anvil_setStorageAt`, batched): the words a long bench stores.
2. For `seconds`, nothing is sent: Anvil mines empty blocks on its interval. Its CPU time (user +
   system, from the process table) over the blocks it mined gives CPU ms per block; its resident
   memory is read at the end; then it is stopped.

Each block's cost is dominated by work over the whole state (Anvil 1.7 recomputes the state root
from every account and slot, and copies the state for its history), so CPU per block grows about
linearly with the number of slots, and CPU per second of chain time is that times the block rate.
Timings go in this report, never in pass/fail tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil

DEFAULT_SIZES = (0, 40_000, 80_000, 160_000)


@dataclass
class SizeResult:
    slots: int
    blocks: int
    cpu_s: float
    cpu_ms_per_block: float
    core_share: float
    """CPU seconds per second of mining: the share of one core Anvil needs at this state."""
    rss_mib: float


def _rpc(url: str, calls: list[tuple[str, list[Any]]], timeout: float = 120.0) -> list[Any]:
    """`rpc_batch`'s results; any error reply raises."""
    from node.devnet.anvil import rpc_batch

    replies = rpc_batch(url, calls, timeout=timeout)
    errors = [r.get("error") or "no reply" for r in replies if "result" not in r]
    if errors:
        raise RuntimeError(f"anvil refused {calls[0][0]}: {errors[0]}")
    return [r["result"] for r in replies]


def measure_size(slots: int, *, seconds: float, block_time: float,
                 on_progress: Callable[[str, int, int], None] | None = None) -> SizeResult:
    """Start one Anvil, give it `slots` storage slots, time `seconds` of idle mining, stop it."""
    from node.devnet.anvil import Anvil

    anvil = Anvil.start(block_time=block_time, die_with_parent=True)
    try:
        url = anvil.rpc_url
        address = "0x" + "c0" * 20
        batch = 2000
        for start in range(0, slots, batch):
            _rpc(url, [("anvil_setStorageAt", [address, hex(i + 1), "0x" + f"{i + 1:064x}"])
                       for i in range(start, min(slots, start + batch))])
            if on_progress:
                on_progress(f"{slots:,} slots: state", min(slots, start + batch), slots)
        if slots:  # the state really holds them: the last slot reads back
            got = _rpc(url, [("eth_getStorageAt", [address, hex(slots), "latest"])])[0]
            if int(got, 16) != slots:
                raise RuntimeError(f"anvil did not keep the state: slot {slots} reads {got}")
        process = psutil.Process(anvil.pid)
        first = int(_rpc(url, [("eth_blockNumber", [])])[0], 16)
        cpu0, t0 = sum(process.cpu_times()[:2]), time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            time.sleep(min(1.0, seconds - elapsed))
            if on_progress:
                on_progress(f"{slots:,} slots: mining", int(min(elapsed + 1, seconds)), int(seconds))
        cpu, wall = sum(process.cpu_times()[:2]) - cpu0, time.monotonic() - t0
        blocks = int(_rpc(url, [("eth_blockNumber", [])])[0], 16) - first
        return SizeResult(slots=slots, blocks=blocks, cpu_s=round(cpu, 3),
                          cpu_ms_per_block=round(1000 * cpu / max(blocks, 1), 3), core_share=round(cpu / wall, 3),
                          rss_mib=round(process.memory_info().rss / 2**20, 1))
    finally:
        anvil.stop()


@dataclass
class AnvilStateResult:
    seconds: float
    block_time: float
    sizes: list[SizeResult]

    def ratios(self) -> list[float]:
        base = self.sizes[0].cpu_ms_per_block
        return [s.cpu_ms_per_block / base if base > 0 else float("nan") for s in self.sizes]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio_to_smallest": [round(r, 1) for r in self.ratios()]}


def run_benchmark(sizes: Sequence[int] = DEFAULT_SIZES, seconds: float = 15.0, block_time: float = 0.25,
                  on_progress: Callable[[str, int, int], None] | None = None) -> AnvilStateResult:
    sizes = sorted(set(int(s) for s in sizes))
    return AnvilStateResult(seconds=seconds, block_time=block_time,
                            sizes=[measure_size(s, seconds=seconds, block_time=block_time, on_progress=on_progress)
                                   for s in sizes])


def format_result(r: AnvilStateResult) -> str:
    lines = [f"Anvil CPU per empty block against its state: a block every {r.block_time:g} s, {r.seconds:g} s per size"]
    for s, ratio in zip(r.sizes, r.ratios()):
        lines.append(f"  {s.slots:>9,} slots  {s.cpu_ms_per_block:8.2f} CPU ms/block ({s.blocks} blocks)"
                     f"   {100 * s.core_share:5.1f} % of a core   RSS {s.rss_mib:,.0f} MiB   {ratio:7.1f}x the smallest")
    return "\n".join(lines)
