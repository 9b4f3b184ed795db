"""`chorus align fit`: fit the map between two agents' embedding spaces from anchor tasks on chain,
write it to an alignments directory and register it in ModelRegistry (`node.runtime.alignments`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def _task_ids(text: str) -> list[int]:
    """"3,4,5" or "3-5" (or a mix: "1,3-5") -> task ids in that order."""
    ids: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep:
            ids.extend(range(int(lo), int(hi) + 1))
        else:
            ids.append(int(part))
    return ids


def register(app: typer.Typer) -> None:
    align = typer.Typer(help="Alignments between embedding spaces.", no_args_is_help=True)

    @align.command("fit")
    def fit(
        reference: str = typer.Option(..., "--reference", help="Address of the agent whose space is the target."),
        agent: str = typer.Option(..., "--agent", help="Address of the agent whose space is mapped."),
        tasks: str = typer.Option(..., "--tasks", help="Anchor task ids both agents published embeddings for: "
                                                      "\"1,2,3\" or \"1-40\"."),
        directory: Path = typer.Option(..., "--dir", help="Alignments directory the map is written to (by map id)."),
        scale: bool = typer.Option(False, "--scale", help="Also fit one global scale factor."),
        do_register: bool = typer.Option(True, "--register/--no-register",
                                         help="Send ModelRegistry.registerAlignment (default) or only write the map."),
        deployment: Optional[Path] = typer.Option(None, "--deployment", help="Deployment JSON (default .chorus/devnet.json)."),
        dev_key_index: Optional[int] = typer.Option(None, "--dev-key-index", min=0,
                                                    help="Register with Anvil dev key N (default on the devnet: 0)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Read both agents' EmbeddingPublished events for the anchor tasks, fit the Procrustes map
        agent -> reference, write it under its id to --dir and register it (once per pair)."""
        from node.cli.task import _contracts
        from node.protocol.errors import ChorusError
        from node.runtime.alignments import fit_and_register

        try:
            ids = _task_ids(tasks)
        except ValueError:
            typer.echo(f"--tasks must be ids like \"1,2,3\" or \"1-40\", got {tasks!r}", err=True)
            raise typer.Exit(2) from None
        try:
            contracts, dep, _ = _contracts(deployment, dev_key_index, signing=do_register)
            fitted = fit_and_register(contracts, reference=reference, agent=agent, task_ids=ids, directory=directory,
                                      from_block=dep.deploy_block, scale=scale, register=do_register)
        except (OSError, ChorusError) as exc:
            typer.echo(f"align failed: {exc}", err=True)
            raise typer.Exit(1) from None
        out = {"map_id": "0x" + fitted.map_id.hex(), "from_model": "0x" + fitted.from_model.hex(),
               "to_model": "0x" + fitted.to_model.hex(), "in_dim": fitted.map.in_dim, "out_dim": fitted.map.out_dim,
               "method": fitted.map.method, "anchors": fitted.anchors, "cka": round(fitted.cka, 4),
               "residual": round(fitted.residual, 6), "file": fitted.path.name, "tx_hash": fitted.tx_hash}
        if as_json:
            typer.echo(json.dumps(out, indent=2))
        else:
            typer.echo(f"map {out['map_id']} ({fitted.map.method}, {fitted.map.in_dim} -> {fitted.map.out_dim}) "
                       f"fitted on {fitted.anchors} anchors (CKA {fitted.cka:.3f}, residual {fitted.residual:.4f}), "
                       f"written to {directory / fitted.path.name}"
                       + (f", registered in {fitted.tx_hash}" if fitted.tx_hash else ", not registered"))

    app.add_typer(align, name="align")
