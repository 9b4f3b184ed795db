"""End to end, transport "report" with a fusion agent: a real Anvil, four real node processes
(market, sentiment, risk, fusion), all signing for each task's aggregator.

What must hold: an M-learned task (quorum 4: the three modality decisions and the fusion agent's,
fused from them) finalizes in ONE submitReport carrying all four signed decisions, so two
transactions touch it; the fusion agent read its peers' signed decisions from the aggregator (none
was on chain before the report), and the fallback (far away here) never ran.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testkit import NodeNetwork, report_network, wait_until

from node.chain.events import DecisionPublished, ReportSubmitted, TaskFinalized, TaskSubmitted
from node.protocol import payload as pl
from node.protocol.enums import Arch

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROLES = ["market", "sentiment", "risk", "fusion"]
FALLBACK_S = 600


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeNetwork]:
    with report_network(tmp_path_factory.mktemp("reportfusion"), ROLES, fallback_s=FALLBACK_S,
                        port_start=18900) as network:
        yield network


def test_a_fusion_agent_fuses_signed_decisions_and_one_report_carries_all_four(net: NodeNetwork) -> None:
    deadline = net.board.client.block_timestamp() + 900
    tasks = []
    for seed in range(4):  # each of the four nodes aggregates one (ids mod 4)
        raw = pl.encode(pl.example_payload(100 + seed, asset=("ETH", "BTC", "SOL")[seed % 3]))
        tasks.append(net.board.submit_task(raw, Arch.M_LEARNED, deadline, 4).event(TaskSubmitted).task_id)
    started = time.monotonic()

    def tails() -> str:
        return "\n".join(f"--- {n.role}:{n.port}\n{Path(n.log).read_text()[-1500:]}" for n in net.nodes)

    wait_until(lambda: all(net.board.task_info(t).status == 2 for t in tasks), 120,
               f"tasks {tasks} finalized", interval=0.2, detail=tails)
    fusion = next(n for n in net.nodes if n.role == "fusion")
    events = net.board.events(net.deployment.deploy_block, "latest")
    for task_id in tasks:
        mine = [e for e in events if getattr(e, "task_id", None) == task_id]
        [report] = [e for e in mine if isinstance(e, ReportSubmitted)]
        decisions = [e for e in mine if isinstance(e, DecisionPublished)]
        assert report.count == 4 and len(decisions) == 4, tails()
        assert {d.tx_hash for d in decisions} == {report.tx_hash}, "every decision came in the report"
        assert fusion.address in {d.agent for d in decisions}
        assert len({e.tx_hash for e in mine}) == 2, f"task {task_id}: more than submit + report: {mine}"
        assert next(e for e in mine if isinstance(e, TaskFinalized)).tx_hash == report.tx_hash
    fused = Path(fusion.log).read_text()
    for task_id in tasks:
        assert f"task {task_id}: fusing 3 peer decisions, 3 of them signed and read from the aggregator" in fused
    print(f"\nM-learned under reports: 4 tasks, 2 transactions each, all finalized "
          f"{time.monotonic() - started:.1f}s after the last submission")
