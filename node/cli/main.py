"""The `chorus` command line.

Each command group lives in its own module under `node.cli`; modules import their heavy
dependencies (web3, onnxruntime, torch) inside the command functions so `chorus --help` is instant.
"""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(
    name="chorus",
    help="Chorus: an on-chain agent protocol and the experiment that measures what decentralized "
    "modularity costs against a unified representation layer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module under node.cli, group name or None for top-level commands registered by the module)
_COMMAND_MODULES = [
    "devnet",
    "gas",
    "node",
    "task",
    "models",
    "coordinator",
    "bench",
    "align",
]


@app.callback()
def _main(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-v info, -vv debug)."),
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"node.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"node.cli.{name}":
                continue  # not built yet
            raise
        module.register(app)


_register()

if __name__ == "__main__":
    app()
