"""`chorus coordinator run`: the edge coordinator (role 4; U and U-rep tasks; /embed and /decide)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from node.cli.nodeopts import shared_node_options


def register(app: typer.Typer) -> None:
    coordinator = typer.Typer(help="Run the edge coordinator (U model + MiniLM on onnxruntime).",
                              no_args_is_help=True)

    @coordinator.command("run")
    @shared_node_options
    def run(
        int8: Optional[bool] = typer.Option(None, "--int8/--f32", help="Run u-int8 instead of u (default f32)."),
        text_int8: Optional[bool] = typer.Option(None, "--text-int8/--text-f32",
                                                 help="MiniLM int8 for /embed and U's text features (default f32, "
                                                      "what U was trained on)."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                              help="onnxruntime intra-op threads per session (default 1)."),
        max_batch: Optional[int] = typer.Option(None, "--max-batch", min=1,
                                                help="Most requests per onnxruntime call (default 32)."),
        max_wait_ms: Optional[float] = typer.Option(None, "--max-wait-ms", min=0,
                                                    help="How long a batch waits to fill (default 5 ms)."),
        port: Optional[int] = typer.Option(None, "--port", help="API port (default 8800)."),
        model_name: Optional[str] = typer.Option(None, "--model", help="Manifest entry of the U model (overrides --int8)."),
        *,
        config: Optional[Path] = None,
        overrides: Optional[dict] = None,
    ) -> None:
        """Register as coordinator (if needed), publish U's decisions on U / U-rep tasks, and serve the
        node API plus POST /embed and POST /decide (micro-batched).

        Settings: flags > CHORUS_* environment (e.g. CHORUS_THREADS, CHORUS_MAX_BATCH) > --config TOML >
        defaults. The keystore password comes from CHORUS_KEYSTORE_PASSWORD or --password-file.
        """
        from node.protocol.errors import ChorusError

        try:
            code = run_coordinator(
                config, int8=int8, text_model=None if text_int8 is None else ("int8" if text_int8 else "f32"),
                threads=threads, max_batch=max_batch, max_wait_ms=max_wait_ms, port=port, model_name=model_name,
                **(overrides or {}),
            )
        except ChorusError as exc:
            typer.echo(f"coordinator failed: {exc}", err=True)
            raise typer.Exit(1) from None
        raise typer.Exit(code)

    app.add_typer(coordinator, name="coordinator")


def run_coordinator(config: Path | None = None, **overrides: object) -> int:
    """Load the settings and models, then run the node loop with /embed and /decide mounted."""
    import logging
    import time

    from agents.factory import build_agent_from
    from node.coordinator.service import CoordinatorMetrics, CoordinatorService, CoordinatorSettings, build_router
    from node.runtime.settings import load_node_settings
    from node.runtime.node import build_runtime, run_node

    log = logging.getLogger("node.coordinator.service")
    settings = load_node_settings(config, settings_cls=CoordinatorSettings, **overrides)
    t0 = time.perf_counter()
    agent = build_agent_from(settings.agent_config())
    log.info("%s loaded in %.2fs (%d intra-op threads; batches of up to %d, waiting up to %g ms)",
             agent.describe(), time.perf_counter() - t0, settings.threads, settings.max_batch, settings.max_wait_ms)
    runtime = build_runtime(settings, agent=agent)
    # The service's metrics go on the node's registry: one GET /metrics for both.
    service = CoordinatorService(agent, settings, CoordinatorMetrics(runtime.metrics.registry)).start()
    try:
        return run_node(settings, runtime=runtime, routers=[build_router(service)])
    finally:
        service.close()
