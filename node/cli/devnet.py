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
    from node.devnet.accounts import MAX_NODES

    devnet = typer.Typer(help="A local Anvil chain with Chorus' contracts deployed.", no_args_is_help=True)

    @devnet.command("up")
    def up(
        port: int = typer.Option(8545, "--port", min=1, max=65535,
                                 help="Port of Anvil's JSON-RPC on 127.0.0.1 (the rpc_url in .chorus/devnet.json)."),
        block_time: str = typer.Option(
            "none", "--block-time",
            help="'none': auto-mine each transaction at once (default, fast); "
                 "SECONDS: interval mining, one block every SECONDS.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print devnet.json instead of a summary."),
        agents: int = typer.Option(0, "--agents", min=0,
                                   help="Also start N agent node processes (market, sentiment, risk, fusion, ...); "
                                        f"at most {MAX_NODES} nodes with the coordinator, one dev key each."),
        node_port: int = typer.Option(8701, "--node-port", min=1, max=65535,
                                      help="API port of the first node on 127.0.0.1; the next nodes (and the "
                                           "coordinator, last) take the ports after it, one each."),
        coordinator: bool = typer.Option(False, "--coordinator",
                                         help="Also start the edge coordinator (U / U-rep tasks, /embed, /decide) "
                                              "after the agent nodes."),
    ) -> None:
        """Start Anvil (chain id 31337), deploy the contracts with dev key 0, write .chorus/devnet.json.

        Every port it will bind (--port, then --node-port onwards for the nodes) is checked first; if one is in use it says which and starts nothing."""
        from rich.console import Console
        from rich.markup import escape

        from node.devnet.accounts import node_keys
        from node.devnet.anvil import devnet_up
        from node.devnet.cluster import default_roles, node_ports
        from node.protocol.enums import Role
        from node.protocol.errors import ChorusError

        seconds = _parse_block_time(block_time)
        err = Console(stderr=True)
        roles = default_roles(agents) + ([Role.COORDINATOR.label] if coordinator else [])
        try:
            node_keys(len(roles))  # a key each, none of them the deployer's or the submitter's
            with err.status("starting anvil and deploying contracts..."):
                state = devnet_up(port=port, block_time=seconds, also_binds=node_ports(roles, node_port))
        except ChorusError as exc:
            err.print(f"[red]devnet up failed:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1) from None
        if roles:
            from node.chain.settings import state_dir
            from node.devnet.anvil import devnet_down
            from node.devnet.cluster import start_nodes

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
        from node.devnet.accounts import SUBMITTER_KEY, submitter

        console = Console()
        console.print(f"[green]devnet up[/green] {state['rpc_url']} chain {state['chain_id']} "
                      f"(anvil pid {state['anvil']['pid']}, {state['mining']} mining)")
        for name, address in state["contracts"].items():
            console.print(f"  {name:<14} {address}")
        for node in state.get("nodes", []):
            console.print(f"  node {node['role']:<11} {node['url']}  {node['address']}  pid {node['pid']}")
        console.print(f"  submitter      {submitter().address}  (dev key {SUBMITTER_KEY}, no node signs with it; "
                      "`chorus devnet accounts` prints its key)")

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

    @devnet.command("accounts")
    def accounts(as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
                 key_only: bool = typer.Option(False, "--submitter-key",
                                               help="Print only the submitter's private key (for `cast send "
                                                    "--private-key`).")) -> None:
        """Which Anvil dev key signs for whom on the devnet: deployer (0), nodes (1, 2, ...), submitter (19).

        The submitter's key is for your own transactions (`chorus task submit`, `cast send`): no process the devnet starts signs with it, so its nonces are yours alone."""
        from node.chain.settings import dev_account, state_dir
        from node.devnet.accounts import DEPLOYER_KEY, FIRST_NODE_KEY, MAX_NODES, SUBMITTER_KEY
        from node.devnet.cluster import recorded_nodes
        from node.protocol.errors import ChorusError

        submitter = dev_account(SUBMITTER_KEY)
        if key_only:
            typer.echo("0x" + submitter.key.hex())
            return
        devnet_json = state_dir() / "devnet.json"
        try:
            nodes = recorded_nodes(devnet_json) if devnet_json.is_file() else []
        except ChorusError:  # an unreadable devnet.json: the fixed assignment still holds
            nodes = []
        rows = [{"key_index": DEPLOYER_KEY, "address": dev_account(DEPLOYER_KEY).address, "role": "deployer",
                 "use": "deploys the contracts and owns the TaskBoard"}]
        rows += [{"key_index": n.key_index, "address": n.address, "role": f"node {n.role}", "use": n.url}
                 for n in nodes]
        if not nodes:
            rows.append({"key_index": None, "address": None, "role": "nodes",
                         "use": f"dev keys {FIRST_NODE_KEY}..{FIRST_NODE_KEY + MAX_NODES - 1}, one per node "
                                "process in start order (none recorded now)"})
        rows.append({"key_index": SUBMITTER_KEY, "address": submitter.address, "role": "submitter",
                     "use": "yours: chorus task submit, cast send; no node signs with it",
                     "private_key": "0x" + submitter.key.hex()})
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        for row in rows:
            index = "" if row["key_index"] is None else str(row["key_index"])
            typer.echo(f"{index:>3}  {row['address'] or '':<42}  {row['role']:<16} {row['use']}")
        typer.echo(f"submitter private key (public dev key, chain 31337 only): {rows[-1]['private_key']}")

    app.add_typer(devnet, name="devnet")
