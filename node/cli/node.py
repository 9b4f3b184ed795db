"""`chorus node run`: one agent node process (market, sentiment, risk or fusion), in its agent mode."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from node.cli.nodeopts import shared_node_options


def register(app: typer.Typer) -> None:
    node = typer.Typer(help="Run an agent node.", no_args_is_help=True)

    @node.command("run")
    @shared_node_options
    def run(
        role: Optional[str] = typer.Option(None, "--role", help="market, sentiment, risk or fusion."),
        port: Optional[int] = typer.Option(None, "--port", help="API port (default 8700)."),
        model_name: Optional[str] = typer.Option(None, "--model", help="Manifest entry of the trained model."),
        fusion_rules: Optional[str] = typer.Option(
            None, "--fusion-rules", help="Fusion: M-rules thresholds \"risk_veto,lead\" for M-rules tasks."),
        alignments: Optional[Path] = typer.Option(
            None, "--alignments", help="Fusion: directory of alignment maps (files named by map id) to fuse "
                                       "embeddings of other models through, where registered on chain."),
        *,
        config: Optional[Path] = None,
        overrides: Optional[dict] = None,
    ) -> None:
        """Register (if needed), follow the TaskBoard, publish this agent's outputs, serve the HTTP API.

        Settings: flags > CHORUS_* environment > --config TOML > defaults. The keystore password
        comes from CHORUS_KEYSTORE_PASSWORD or --password-file, never from a flag.
        """
        from node.protocol.errors import ChorusError
        from node.runtime.settings import load_node_settings
        from node.runtime.node import run_node

        try:
            settings = load_node_settings(config, role=role, port=port, model_name=model_name,
                                          fusion_rules=fusion_rules, alignments_dir=alignments,
                                          **(overrides or {}))
            code = run_node(settings)
        except ChorusError as exc:
            typer.echo(f"node failed: {exc}", err=True)
            raise typer.Exit(1) from None
        raise typer.Exit(code)

    app.add_typer(node, name="node")
