"""`chorus devnet up|down|status`: a local Anvil with the protocol deployed.

Mining: auto-mine by default (fast; safe because Chorus sends each key's transactions in nonce
order, see `node.devnet.anvil`); `--block-time SECONDS` for interval mining.
"""

from __future__ import annotations

import json

import typer


def _parse_block_time(value: str) -> float | None:
    if value.lower() in ("none", "auto", "0", ""):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise typer.BadParameter("expected 'none' (auto-mine) or a number of seconds") from None
    if seconds <= 0:
        raise typer.BadParameter("block time must be positive, or 'none' for auto-mine")
    return seconds


def register(app: typer.Typer) -> None:
    devnet = typer.Typer(help="A local Anvil chain with Chorus' contracts deployed.", no_args_is_help=True)

    @devnet.command("up")
    def up(
        port: int = typer.Option(8545, "--port", help="Port Anvil listens on (127.0.0.1)."),
        block_time: str = typer.Option(
            "none", "--block-time",
            help="'none': auto-mine each transaction at once (default, fast); "
                 "SECONDS: interval mining, one block every SECONDS.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print devnet.json instead of a summary."),
        agents: int = typer.Option(0, "--agents", min=0,
                                   help="Also start N agent node processes (market, sentiment, risk, fusion, ...)."),
        node_port: int = typer.Option(8701, "--node-port", help="API port of the first node (+1 for each next)."),
        coordinator: bool = typer.Option(False, "--coordinator",
                                         help="Also start the edge coordinator (U / U-rep tasks, /embed, /decide) "
                                              "after the agent nodes."),
    ) -> None:
        """Start Anvil (chain id 31337), deploy the contracts with dev key 0, write .chorus/devnet.json."""
        from rich.console import Console

        from node.devnet.anvil import devnet_up
        from node.protocol.errors import ChorusError

        seconds = _parse_block_time(block_time)
        err = Console(stderr=True)
        try:
            with err.status("starting anvil and deploying contracts..."):
                state = devnet_up(port=port, block_time=seconds)
        except ChorusError as exc:
            err.print(f"[red]devnet up failed:[/red] {exc}")
            raise typer.Exit(1) from None
        if agents or coordinator:
            from node.chain.settings import state_dir
            from node.devnet.anvil import devnet_down
            from node.devnet.cluster import default_roles, start_nodes
            from node.protocol.enums import Role

            roles = default_roles(agents) + ([Role.COORDINATOR.label] if coordinator else [])
            try:
                with err.status(f"starting {len(roles)} nodes and waiting until they are healthy..."):
                    nodes = start_nodes(state_dir() / "devnet.json", roles, base_port=node_port)
            except ChorusError as exc:
                err.print(f"[red]nodes failed to start:[/red] {exc}")
                devnet_down()
                raise typer.Exit(1) from None
            state["nodes"] = [n.to_dict() for n in nodes]
        if as_json:
            typer.echo(json.dumps(state, indent=2))
            return
        console = Console()
        console.print(f"[green]devnet up[/green] {state['rpc_url']} chain {state['chain_id']} "
                      f"(anvil pid {state['anvil']['pid']}, {state['mining']} mining)")
        for name, address in state["contracts"].items():
            console.print(f"  {name:<14} {address}")
        for node in state.get("nodes", []):
            console.print(f"  node {node['role']:<11} {node['url']}  {node['address']}  pid {node['pid']}")

    @devnet.command("down")
    def down() -> None:
        """Stop the Anvil that `devnet up` started (by its recorded pid) and remove the state files."""
        from node.devnet.cluster import stop_nodes
        from node.devnet.anvil import devnet_down
        from node.protocol.errors import ChorusError
        from node.chain.settings import state_dir

        try:
            for line in stop_nodes(state_dir() / "devnet.json"):  # the nodes first: they read devnet.json
                typer.echo(line)
            typer.echo(devnet_down())
        except ChorusError as exc:
            typer.echo(f"devnet down failed: {exc}", err=True)
            raise typer.Exit(1) from None

    @devnet.command("status")
    def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
        """Show whether the devnet runs, where, and the contract addresses."""
        from node.devnet.cluster import nodes_status
        from node.devnet.anvil import devnet_status
        from node.chain.settings import state_dir

        st = devnet_status()
        nodes = nodes_status(state_dir() / "devnet.json")
        node_rows = [{**n.node.to_dict(), "running": n.running, "healthy": n.healthy,
                      "health": n.health} for n in nodes]
        if as_json:
            typer.echo(json.dumps({"running": st.running, "rpc_up": st.rpc_up, "problem": st.problem,
                                   "state": st.state, "nodes": node_rows}, indent=2))
        elif not st.running:
            typer.echo(f"devnet not running: {st.problem}")
        else:
            state = st.state or {}
            anvil = state.get("anvil", {})
            typer.echo(f"devnet running: {state.get('rpc_url')} chain {state.get('chain_id')} "
                       f"anvil pid {anvil.get('pid')} rpc {'up' if st.rpc_up else 'DOWN'}")
            for name, address in state.get("contracts", {}).items():
                typer.echo(f"  {name:<14} {address}")
            for n in nodes:
                health = "healthy" if n.healthy else (n.health or {}).get("status", "no answer")
                typer.echo(f"  node {n.node.role:<9} {n.node.url}  pid {n.node.pid} "
                           f"{'running' if n.running else 'NOT RUNNING'}, {health}")
        if not st.running or not st.rpc_up or not all(n.running and n.healthy for n in nodes):
            raise typer.Exit(1)

    app.add_typer(devnet, name="devnet")
