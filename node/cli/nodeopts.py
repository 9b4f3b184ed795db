"""The options `chorus node run` and `chorus coordinator run` share, declared once.

Both commands run a node process (the coordinator is a node with a model server on top), so they
take the same settings flags. `shared_node_options` adds them to a typer command and hands the
command `config` (the TOML path) and `overrides` (settings field -> flag value, None when unset).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

# (parameter name, NodeSettings field or None, type, typer option)
_SHARED: tuple[tuple[str, str | None, Any, Any], ...] = (
    ("config", None, Optional[Path], typer.Option(None, "--config", help="TOML file with settings (flat keys).")),
    ("host", "host", Optional[str], typer.Option(None, "--host", help="API bind address (default 127.0.0.1).")),
    ("rpc_url", "rpc_url", Optional[str],
     typer.Option(None, "--rpc-url", help="JSON-RPC URL (default: the deployment's).")),
    ("chain_id", "chain_id", Optional[int], typer.Option(None, "--chain-id", help="Expected chain id.")),
    ("dev_key_index", "dev_key_index", Optional[int],
     typer.Option(None, "--dev-key-index", help="Sign with Anvil dev key N (chain 31337 only).")),
    ("keystore", "keystore_path", Optional[Path], typer.Option(None, "--keystore", help="Encrypted JSON keystore.")),
    ("password_file", "keystore_password_file", Optional[Path],
     typer.Option(None, "--password-file", help="File holding the keystore password.")),
    ("deployment", "deployment_file", Optional[Path],
     typer.Option(None, "--deployment", help="Deployment JSON (default .chorus/devnet.json).")),
    ("db", "db_path", Optional[Path], typer.Option(None, "--db", help="SQLite state file.")),
    ("confirmations", "confirmations", Optional[int],
     typer.Option(None, "--confirmations", help="Blocks to wait before acting on a log.")),
    ("poll_interval", "poll_interval_s", Optional[float],
     typer.Option(None, "--poll-interval", help="Seconds between polls when idle.")),
    ("manifest", "manifest", Optional[Path],
     typer.Option(None, "--manifest", help="Model manifest of the agent's trained models (default the project's).")),
    ("text_manifest", "text_manifest", Optional[Path],
     typer.Option(None, "--text-manifest", help="Model manifest MiniLM comes from (default the project's).")),
    ("agent_mode", "agent_mode", Optional[str],
     typer.Option(None, "--agent-mode", help="honest (default), byzantine, wrong-model or slow.")),
    ("agent_delay", "agent_delay_s", Optional[float],
     typer.Option(None, "--agent-delay", help="Seconds a slow agent waits before answering (--agent-mode slow).")),
    ("transport", "transport", Optional[str],
     typer.Option(None, "--transport", help="tx (default: publishDecision), report (signed, via the task's "
                                            "aggregator) or batch (several tasks' decisions in one publishDecisions).")),
    ("batch_wait", "batch_wait_s", Optional[float],
     typer.Option(None, "--batch-wait", help="Transport batch: seconds a decision waits for others to share its transaction.")),
    ("report_fallback", "report_fallback_s", Optional[float],
     typer.Option(None, "--report-fallback",
                  help="Chain seconds after a task's submission before a reported decision is published individually.")),
)


def shared_node_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a typer command the shared node options after its own; it is called with its own
    parameters plus `config` and `overrides`."""
    own = [p for name, p in inspect.signature(func).parameters.items() if name not in ("config", "overrides")]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=tp)
              for name, _, tp, option in _SHARED]

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        config = kwargs.pop("config")
        overrides = {field: kwargs.pop(name) for name, field, _, _ in _SHARED if field is not None}
        return func(config=config, overrides=overrides, **kwargs)

    command.__signature__ = inspect.Signature(own + shared)  # type: ignore[attr-defined]
    # Typer resolves the command's own (string) annotations from here; the shared ones are in the signature.
    command.__annotations__ = {k: v for k, v in func.__annotations__.items() if k not in ("config", "overrides")}
    return command
