"""`make demo`: a devnet of its own, the quick experiment through it, the summary table; then
everything it started is stopped again (on success, on error, on Ctrl-C and on SIGTERM).

    python -m scripts.demo                 # what `make demo` runs
    python -m scripts.demo --profile tiny  # a smaller run

The devnet is an Anvil on a free port; the bench deploys its contracts there and starts its own
node processes (agents, fusion node, U coordinators) per session. Node processes, Anvil and the
training process are also tied to this process with PR_SET_PDEATHSIG, so even a SIGKILL of the
demo leaves nothing running.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", help="bench profile (default quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/demo-<profile>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _raise_interrupt)

    from rich.console import Console

    from node.chain.settings import state_dir
    from node.devnet.anvil import Anvil
    from node.experiment.bench import BenchRequest, run_bench
    from node.experiment.chain import ANVIL_ACCOUNTS
    from node.experiment.config import get_profile
    from node.protocol.errors import ChorusError

    console = Console(width=max(Console().width, 130))  # the summary tables stay readable in CI logs
    out = args.out or Path("reports") / f"demo-{args.profile}"
    log_path = state_dir() / "demo-anvil.log"
    block_time = get_profile(args.profile).block_time or None
    anvil = Anvil.start(accounts=ANVIL_ACCOUNTS, log_path=log_path, die_with_parent=True, block_time=block_time)
    try:
        mining = f"a block every {block_time:g} s" if block_time else "auto-mine"
        console.print(f"[green]devnet up[/green] {anvil.rpc_url} (anvil pid {anvil.pid}, {mining}, log {log_path})")
        request = BenchRequest(profile=args.profile, seed=args.seed, out=out, rpc_url=anvil.rpc_url, fresh=True,
                               chain_label=f"the demo's anvil ({mining})")
        results = run_bench(request, console=console)
        return 0 if results is not None else 1
    except ChorusError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]demo interrupted[/yellow]")
        return 130
    finally:
        anvil.stop()
        console.print(f"devnet down (anvil pid {anvil.pid} stopped)")


if __name__ == "__main__":
    sys.exit(main())
