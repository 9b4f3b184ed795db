"""The agent kinds and modes a node can run, by name: what the node's settings select from.

Two registries, filled by decorators where each kind is defined:
- `ROLE_AGENTS`: for each role label (market, sentiment, risk, fusion, coordinator) the function
  that builds that role's agent from an `AgentConfig` (`agents.factory`);
- `AGENT_MODES`: for each mode (honest, byzantine, wrong-model, slow) the function that wraps the
  built agent (`agents.faults`).

A new kind is one more decorated function in a module the node imports; nothing is replaced from
outside. `agents.factory` imports every built-in kind, so importing it gives the full registries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from node.protocol.enums import Role
from node.protocol.errors import ConfigError

if TYPE_CHECKING:
    from agents.base import Agent

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class AgentConfig:
    """Everything that decides which agent a node builds (the runtime fills it from its settings)."""

    role: str
    """Role label: market, sentiment, risk, fusion or coordinator."""
    model_name: str | None = None
    """Manifest entry of the trained model; default the role's own (u for the coordinator)."""
    use_trained: bool = True
    """Use the trained ONNX model when the manifest has it (else the simple numpy model)."""
    manifest_path: Path | None = None
    """Manifest the agent's trained models come from; default the project's."""
    text_manifest_path: Path | None = None
    """Manifest MiniLM comes from (sentiment, coordinator); default the project's."""
    text_encoder: tuple[Any, ...] | None = None
    """(encoder, model id, name, encoding): a text encoder to use instead of MiniLM (tests)."""
    mode: str = "honest"
    """Mode wrapped around the role's agent (a name in `AGENT_MODES`)."""
    delay_s: float = 0.0
    """Mode slow: seconds the agent waits before it answers."""
    fusion_rules: tuple[float, float] | None = None
    """Fusion: M-rules thresholds (risk_veto, lead) for architecture M-rules; None: the plain fusion agent."""
    threads: int = 1
    """onnxruntime intra-op threads (the coordinator's sessions)."""
    text_kind: str = "f32"
    """Coordinator: the MiniLM variant, f32 (what U was trained on) or int8."""
    text_batch: int = 16
    """Coordinator: MiniLM rows per onnxruntime run."""


class Registry(Generic[F]):
    """Functions by name, added with `@registry.register(name)`; a lookup of an unknown name is a
    ConfigError that lists the known ones."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: make `name` build with the decorated function (a name is registered once)."""

        def add(func: F) -> F:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is already registered ({self._items[name].__qualname__})")
            self._items[name] = func
            return func

        return add

    def get(self, name: str) -> F:
        """The function registered for `name`; ConfigError naming the known ones otherwise."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        """What is said of a name nobody registered: the known ones."""
        return f"unknown {self.what} {name!r}; known: {', '.join(self.names())}"

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


ROLE_AGENTS: Registry[Callable[[AgentConfig], Agent]] = Registry("agent role")
AGENT_MODES: Registry[Callable[[Agent, AgentConfig], Agent]] = Registry("agent mode")


def role_agent(role: Role) -> Callable[[F], F]:
    """Decorator: the function that builds `role`'s agent from an AgentConfig."""
    return ROLE_AGENTS.register(role.label)


def agent_mode(name: str) -> Callable[[F], F]:
    """Decorator: a mode, `(agent, config) -> agent` wrapped around the role's agent."""
    return AGENT_MODES.register(name)
