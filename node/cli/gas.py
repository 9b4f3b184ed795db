"""`chorus gas`: the gas of each publication against the floor the protocol's rules impose, and
what it costs in US dollars on Ethereum L1, an OP Stack chain (Fjord) and Arbitrum.

The measurement and the floor arithmetic are `node.bench.gas`, the fee model `node.bench.fees`;
this module prints them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from node.bench.fees import Prices
    from node.bench.gas import GasRow


def _usd(x: float | None) -> str:
    return "-" if x is None else f"${x:.2g}"


def _print_table(rows: Sequence[GasRow], prices: Prices) -> None:
    from rich.console import Console
    from rich.table import Table

    from node.bench.fees import CHAINS, row_cost_usd

    console = Console()
    table = Table(title="Publication gas vs protocol floor (21000 + max(calldata + logs + sstores, EIP-7623))")
    for column in ("op", "d", "encoding", "calldata B", "gas", "floor", "ratio"):
        table.add_column(column, justify="left" if column in ("op", "encoding") else "right")
    for r in rows:
        table.add_row(r.op, "-" if r.d is None else str(r.d), r.encoding or "-", str(r.calldata_bytes),
                      f"{r.gas:,}", f"{r.floor:,}", f"{r.ratio:.3f}")
    console.print(table)
    costs = Table(title="What each publication costs in US$ on Ethereum L1, an OP Stack chain (Fjord) and Arbitrum",
                  caption=f"Prices: {prices.sentence()}.")
    for column in ("publish", "d", "enc", "FastLZ B", "Brotli B", "L1 $", "OP $", "Arb $"):
        costs.add_column(column, justify="left" if column in ("publish", "enc") else "right")
    for r in rows:
        usd = row_cost_usd(r, prices) or {}
        costs.add_row(r.op.removeprefix("publish"), "-" if r.d is None else str(r.d), r.encoding or "-",
                      "-" if r.size is None else str(r.size.fastlz_bytes),
                      "-" if r.size is None else str(r.size.brotli_bytes), *(_usd(usd.get(c)) for c in CHAINS))
    console.print(costs)


def register(app: typer.Typer) -> None:
    @app.command("gas")
    def gas(
        as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
        rpc_url: str | None = typer.Option(
            None, "--rpc-url", help="A dev chain (id 31337) to measure on; default: a throwaway Anvil."),
        seed: int = typer.Option(0, "--seed", help="Seed of the random vectors and ids."),
        prices_file: Path | None = typer.Option(  # noqa: B008
            None, "--prices", metavar="FILE",
            help="JSON object of fee-model prices (any of the keys of `chorus bench --prices`); default: the "
                 "model's stated defaults."),
    ) -> None:
        """Measure publishDecision / publishEmbedding gas against the protocol's floor, and price each on
        Ethereum L1, an OP Stack chain (Fjord) and Arbitrum."""
        from rich.console import Console

        from node.bench.fees import Prices
        from node.bench.gas import run
        from node.protocol.errors import ChorusError

        try:
            prices = Prices.load(prices_file) if prices_file is not None else Prices()
            with Console(stderr=True).status("deploying and measuring publications..."):
                rows = run(rpc_url, seed)
        except ChorusError as exc:
            typer.echo(f"chorus gas failed: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps([r.public(prices) for r in rows], indent=2))
        else:
            _print_table(rows, prices)
