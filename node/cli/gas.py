"""`chorus gas`: the gas of each publication against the floor the protocol's rules impose.

The measurement and the floor arithmetic are `node.bench.gas`; this module prints them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from node.bench.gas import GasRow


def _print_table(rows: Sequence[GasRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Publication gas vs protocol floor (21000 + max(calldata + logs + sstores, EIP-7623))")
    for column in ("op", "d", "encoding", "calldata B", "gas", "floor", "ratio"):
        table.add_column(column, justify="left" if column in ("op", "encoding") else "right")
    for r in rows:
        table.add_row(r.op, "-" if r.d is None else str(r.d), r.encoding or "-", str(r.calldata_bytes),
                      f"{r.gas:,}", f"{r.floor:,}", f"{r.ratio:.3f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    @app.command("gas")
    def gas(
        as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
        rpc_url: str | None = typer.Option(
            None, "--rpc-url", help="A dev chain (id 31337) to measure on; default: a throwaway Anvil."),
        seed: int = typer.Option(0, "--seed", help="Seed of the random vectors and ids."),
    ) -> None:
        """Measure publishDecision / publishEmbedding gas against the protocol's floor."""
        from rich.console import Console

        from node.bench.gas import run
        from node.protocol.errors import ChorusError

        try:
            with Console(stderr=True).status("deploying and measuring publications..."):
                rows = run(rpc_url, seed)
        except ChorusError as exc:
            typer.echo(f"chorus gas failed: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps([r.public() for r in rows], indent=2))
        else:
            _print_table(rows)
