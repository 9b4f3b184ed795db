"""The protocol, end to end, on a throwaway devnet: `python -m scripts.protocol_demo`.

Starts Anvil with the contracts, four agent nodes (market, sentiment, risk, fusion) and the edge
coordinator as separate processes; submits one example task per architecture family through
TaskBoard (M-fixed: the chain fuses; M-learned and E-d: the fusion agent decides; U: the
coordinator decides); waits until each is finalized on chain; prints what every task cost; and
stops everything it started, also on error or Ctrl-C. Its state lives in a temporary directory, so
it never touches a devnet you are running.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from node.protocol.enums import ARCH_NAMES, Arch, Role, TaskStatus

ARCHS = (Arch.M_FIXED, Arch.M_LEARNED, Arch.E_D, Arch.U)
"""One task per architecture family: the chain fuses, the fusion agent decides (two ways), U decides."""
ROLES = [r.label for r in Role]


def run(timeout: float) -> int:
    from rich.console import Console
    from rich.table import Table

    from node.chain.client import connect
    from node.chain.contracts import ChorusContracts
    from node.chain.deploy import Deployment
    from node.chain.events import TaskSubmitted
    from node.chain.settings import ChainSettings
    from node.cli.task import task_report
    from node.devnet.anvil import devnet_down, devnet_up, free_port
    from node.devnet.cluster import free_base_port, start_nodes, stop_nodes
    from node.protocol.payload import encode, example_payload

    console = Console()
    if not console.is_terminal:
        console.width = 120  # a log file or CI: room for the table
    with tempfile.TemporaryDirectory(prefix="chorus-demo-") as tmp:
        state = Path(tmp)
        try:
            with console.status("starting Anvil and deploying the contracts"):
                dev = devnet_up(port=free_port(), state=state)
            console.print(f"devnet {dev['rpc_url']} chain {dev['chain_id']}: "
                          + ", ".join(f"{k} {v}" for k, v in dev["contracts"].items()))
            devnet_json = state / "devnet.json"
            with console.status("starting 4 agent nodes and the coordinator (each registers on chain)"):
                nodes = start_nodes(devnet_json, ROLES, free_base_port(len(ROLES)), die_with_parent=True)
            for n in nodes:
                console.print(f"  {n.role:<11} {n.address}  {n.url}  pid {n.pid}")

            deployment = Deployment.load(devnet_json)
            settings = ChainSettings(rpc_url=deployment.rpc_url, chain_id=deployment.chain_id, dev_key_index=0)
            client = connect(settings)
            contracts = ChorusContracts.from_deployment(client, deployment)
            deadline = client.block_timestamp() + 600
            submitted: dict[int, tuple[int, float]] = {}
            for seed, arch in enumerate(ARCHS):
                quorum = 1 if arch == Arch.U else 4  # U: the coordinator alone decides; else every agent
                res = contracts.submit_task(encode(example_payload(seed)), arch, deadline, quorum, reward=10**15)
                task_id = res.event(TaskSubmitted).task_id
                submitted[task_id] = (arch, time.monotonic())
                console.print(f"submitted task {task_id} ({ARCH_NAMES[arch]}), tx {res.tx_hash}")

            done: dict[int, float] = {}
            limit = time.monotonic() + timeout
            with console.status("waiting for the nodes to publish and finalize"):
                while len(done) < len(submitted) and time.monotonic() < limit:
                    for task_id, (_, t0) in submitted.items():
                        if task_id not in done and contracts.task_info(task_id).status == TaskStatus.FINALIZED:
                            done[task_id] = time.monotonic() - t0
                    time.sleep(0.2)

            table = Table(title="Tasks through the chain")
            for col in ("task", "architecture", "status", "fused action", "publications", "gas (all txs)",
                        "submit to finalized"):
                table.add_column(col)
            for task_id, (arch, _) in submitted.items():
                report = task_report(contracts, devnet_json, task_id, deployment.deploy_block)
                chain = report["chain"]
                pubs = chain["publications"]
                txs = [chain.get("submitted_tx"), *(p["tx"] for p in pubs), chain.get("finalized_tx")]
                gas = sum(r.gas_used for r in (client.get_receipt(t) for t in txs if t) if r is not None)
                table.add_row(str(task_id), ARCH_NAMES[arch], str(chain.get("status")), str(chain.get("action", "-")),
                              str(len(pubs)), f"{gas:,}" if gas else "-",
                              f"{done[task_id]:.2f} s" if task_id in done else "not finalized")
            console.print(table)
            if len(done) < len(submitted):
                console.print(f"[red]{len(submitted) - len(done)} task(s) not finalized within {timeout:g} s[/red]")
                return 1
            return 0
        finally:
            for line in stop_nodes(state / "devnet.json"):
                console.print(line)
            console.print(devnet_down(state=state))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for finalization")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args.timeout)


if __name__ == "__main__":
    sys.exit(main())
