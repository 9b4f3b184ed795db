"""End to end, transport "report": a real Anvil mining a block a second (chain time moves without
traffic, as on a live chain), four real node processes (market, sentiment, risk and a second
market agent: quorum 3 still reachable with one of them dead) signing their decisions for each
task's aggregator.

What must hold: every M-fixed task (quorum 3) finalizes in one submitReport, so two transactions
touch it (its submission and the report); with the aggregator SIGKILLed, a task it aggregates still
finalizes, through the others' own publishDecision after `report_fallback_s` of chain time.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testkit import NodeNetwork, report_network, wait_until

from node.chain.events import DecisionPublished, ReportSubmitted, TaskFinalized, TaskSubmitted
from node.devnet.cluster import NodeProc
from node.protocol import payload as pl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROLES = ["market", "sentiment", "risk", "market"]
QUORUM = 3
FALLBACK_S = 5
M_FIXED = 2


class ReportNet(NodeNetwork):
    """The report network, with what this test reads of it."""

    def aggregator(self, task_id: int) -> NodeProc:
        """The rule of docs/protocol.md: the registered agents (these four) by address, taskId mod n."""
        ordered = sorted(self.nodes, key=lambda n: int(n.address, 16))
        return ordered[task_id % len(ordered)]

    def submit(self, seed: int) -> tuple[int, float]:
        raw = pl.encode(pl.example_payload(seed, asset=("ETH", "BTC", "SOL")[seed % 3]))
        deadline = self.board.client.block_timestamp() + 900
        task_id = self.board.submit_task(raw, M_FIXED, deadline, QUORUM).event(TaskSubmitted).task_id
        return task_id, time.monotonic()

    def events_of(self, task_id: int) -> list:
        return [e for e in self.board.events(self.deployment.deploy_block, "latest")
                if getattr(e, "task_id", None) == task_id]

    def wait_finalized(self, submitted: dict[int, float], timeout: float) -> dict[int, float]:
        """Seconds from each task's submission to its finalization, as seen by polling the chain."""
        took: dict[int, float] = {}

        def all_done() -> bool:
            for task_id, t0 in submitted.items():
                if task_id not in took and self.board.task_info(task_id).status == 2:
                    took[task_id] = time.monotonic() - t0
            return len(took) == len(submitted)

        def tails() -> str:
            return "\n".join(f"--- {n.role}:{n.port}\n{Path(n.log).read_text()[-1200:]}" for n in self.nodes)

        wait_until(all_done, timeout, f"tasks {sorted(submitted)} finalized", interval=0.1, detail=tails)
        return took


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReportNet]:
    with report_network(tmp_path_factory.mktemp("reportnet"), ROLES, fallback_s=FALLBACK_S,
                        port_start=18800) as network:
        yield ReportNet(network.deployment, network.board, network.nodes)


def test_reports_finalize_in_one_transaction_and_a_dead_aggregator_costs_only_the_fallback(net: ReportNet) -> None:
    # Four tasks: each node aggregates one (ids mod 4).
    first = dict(net.submit(seed) for seed in range(4))
    took = net.wait_finalized(first, timeout=60)
    for task_id in first:
        events = net.events_of(task_id)
        report = [e for e in events if isinstance(e, ReportSubmitted)]
        assert len(report) == 1 and report[0].aggregator == net.aggregator(task_id).address, events
        assert report[0].count >= QUORUM
        assert len({e.tx_hash for e in events}) == 2, f"task {task_id}: more than submit + report: {events}"
        assert next(e for e in events if isinstance(e, TaskFinalized)).tx_hash == report[0].tx_hash

    # SIGKILL the aggregator of the next task id; it stays registered, so the rule still picks it.
    next_id = net.board.task_count() + 1
    victim = net.aggregator(next_id)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait_exit(10)
    later = dict(net.submit(seed) for seed in range(4, 8))
    assert next_id in later
    took_later = net.wait_finalized(later, timeout=90)

    alive = {n.address for n in net.nodes if n is not victim}
    for task_id in later:
        events = net.events_of(task_id)
        decisions = [e for e in events if isinstance(e, DecisionPublished)]
        assert {d.agent for d in decisions} <= alive and len(decisions) >= QUORUM
        reports = [e for e in events if isinstance(e, ReportSubmitted)]
        if net.aggregator(task_id) is victim:
            assert reports == [], events
            assert len({d.tx_hash for d in decisions}) == len(decisions)  # each agent its own publishDecision
            submitted = next(e for e in events if isinstance(e, TaskSubmitted)).block_number
            final = next(e for e in events if isinstance(e, TaskFinalized)).block_number
            chain_s = net.board.client.block_timestamp(final) - net.board.client.block_timestamp(submitted)
            assert chain_s >= FALLBACK_S
            print(f"\ntask {task_id} (dead aggregator): {len({e.tx_hash for e in events})} transactions, "
                  f"finalized {took_later[task_id]:.1f}s after submission ({chain_s}s of chain time)")
        else:
            assert len(reports) == 1 and len({e.tx_hash for e in events}) == 2, events
    with_reports = [took[t] for t in first] + [took_later[t] for t in later if net.aggregator(t) is not victim]
    print(f"reports: 2 transactions per task, finalized {min(with_reports):.1f}-{max(with_reports):.1f}s "
          f"after submission")
