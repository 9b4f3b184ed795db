"""`chorus node run`: one agent node process (market, sentiment, risk or fusion)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    node = typer.Typer(help="Run an agent node.", no_args_is_help=True)

    @node.command("run")
    def run(
        role: Optional[str] = typer.Option(None, "--role", help="market, sentiment, risk or fusion."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML file with settings (flat keys)."),
        host: Optional[str] = typer.Option(None, "--host", help="API bind address (default 127.0.0.1)."),
        port: Optional[int] = typer.Option(None, "--port", help="API port (default 8700)."),
        rpc_url: Optional[str] = typer.Option(None, "--rpc-url", help="JSON-RPC URL (default: the deployment's)."),
        chain_id: Optional[int] = typer.Option(None, "--chain-id", help="Expected chain id."),
        dev_key_index: Optional[int] = typer.Option(None, "--dev-key-index",
                                                    help="Sign with Anvil dev key N (chain 31337 only)."),
        keystore: Optional[Path] = typer.Option(None, "--keystore", help="Encrypted JSON keystore."),
        password_file: Optional[Path] = typer.Option(None, "--password-file", help="File holding the keystore password."),
        deployment: Optional[Path] = typer.Option(None, "--deployment", help="Deployment JSON (default .chorus/devnet.json)."),
        db: Optional[Path] = typer.Option(None, "--db", help="SQLite state file."),
        confirmations: Optional[int] = typer.Option(None, "--confirmations", help="Blocks to wait before acting on a log."),
        poll_interval: Optional[float] = typer.Option(None, "--poll-interval", help="Seconds between polls when idle."),
        model_name: Optional[str] = typer.Option(None, "--model", help="Manifest entry of the trained model."),
    ) -> None:
        """Register (if needed), follow the TaskBoard, publish this agent's outputs, serve the HTTP API.

        Settings: flags > CHORUS_* environment > --config TOML > defaults. The keystore password
        comes from CHORUS_KEYSTORE_PASSWORD or --password-file, never from a flag.
        """
        from node.errors import ChorusError
        from node.node_settings import load_node_settings
        from node.runner import run_node

        try:
            settings = load_node_settings(
                config, role=role, host=host, port=port, rpc_url=rpc_url, chain_id=chain_id,
                dev_key_index=dev_key_index, keystore_path=keystore, keystore_password_file=password_file,
                deployment_file=deployment, db_path=db, confirmations=confirmations, poll_interval_s=poll_interval,
                model_name=model_name,
            )
            code = run_node(settings)
        except ChorusError as exc:
            typer.echo(f"node failed: {exc}", err=True)
            raise typer.Exit(1) from None
        raise typer.Exit(code)

    app.add_typer(node, name="node")
