"""Settings of one agent node process: `ChainSettings` (RPC, chain id, key source, fees) plus the
node's own fields.

Sources, strongest first: command-line flags (passed as overrides), `CHORUS_*` environment
variables, a TOML file (`--config FILE`, flat keys named like the fields), the defaults. Where the
RPC URL or chain id are not set explicitly they come from the deployment file (`.chorus/devnet.json`
by default), which also names the contracts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from node.chain.settings import ChainSettings, get_settings, state_dir
from node.protocol.enums import COORDINATOR_ARCHS, EXPERIMENT_ARCHS, Arch, Role
from node.protocol.errors import ConfigError

if TYPE_CHECKING:
    from agents.registry import AgentConfig

__all__ = ["COORDINATOR_ARCHS", "DEFAULT_ARCHS", "NodeSettings", "load_node_settings"]

DEFAULT_ARCHS = tuple(int(a) for a in (*Arch, *EXPERIMENT_ARCHS) if a not in COORDINATOR_ARCHS)
"""Architectures agent nodes serve: all but the coordinator's (U, U-rep), on which TaskBoard weighs
only role coordinator, as it weighs the coordinator 0 everywhere else: each side would only spend
gas on the other's tasks."""
_ARCH_IDS = frozenset(int(a) for a in (*Arch, *EXPERIMENT_ARCHS))


class NodeSettings(ChainSettings):
    """Everything one `chorus node run` process needs."""

    model_config = SettingsConfigDict(**{**ChainSettings.model_config, "toml_file": None})

    role: str = "market"
    """Which agent this node runs: market, sentiment, risk, fusion or coordinator (a kind of
    `agents.registry.ROLE_AGENTS`)."""

    host: str = "127.0.0.1"
    """Interface the HTTP API binds to (loopback by default: the API is for operators, not the world)."""

    port: int = Field(default=8700, ge=1, le=65535)
    """Port of the HTTP API."""

    endpoint: str | None = None
    """URL registered on chain as the agent's endpoint; default `http://{host}:{port}`."""

    db_path: Path | None = None
    """SQLite state file; default `.chorus/nodes/{role}-{port}.sqlite`."""

    deployment_file: Path | None = None
    """JSON with the contract addresses (`chorus devnet up` writes `.chorus/devnet.json`)."""

    confirmations: int = Field(default=0, ge=0, le=1000)
    """Blocks a log must be buried under before the node acts on it (0 on a dev chain)."""

    poll_interval_s: float = Field(default=0.1, gt=0, le=60)
    """Seconds between two polls of the chain when idle."""

    max_block_range: int = Field(default=2000, ge=1)
    """Most blocks one eth_getLogs request covers."""

    reorg_depth: int = Field(default=128, ge=1)
    """How many processed block hashes are kept to find the fork point after a reorg."""

    backoff_max_s: float = Field(default=10.0, gt=0)
    """Longest wait between retries while the RPC is unreachable."""

    rpc_silent_after_s: float = Field(default=1.0, gt=0, le=600)
    """A request left this long without an answer turns `/health` degraded, while the loop still
    waits for it (its timeout and retries run much longer). The default sits above the slowest
    normal answer on a busy machine (a large eth_getLogs), so health does not flicker; two poll
    intervals is the fastest honest setting."""

    stake_wei: int | None = Field(default=None, ge=0)
    """Stake sent with the registration; default the registry's minStake."""

    model_name: str | None = None
    """Manifest entry of the agent's trained ONNX model; default the role name."""

    use_trained_model: bool = True
    """Use the trained ONNX model when the manifest has it (else the simple numpy model)."""

    manifest: Path | None = None
    """Model manifest the agent's trained models come from; default the project's
    (`models/artifacts/manifest.json`). The bench gives each model set its own."""

    text_manifest: Path | None = None
    """Model manifest MiniLM comes from (sentiment, coordinator); default the project's, whichever
    `manifest` is (the bench's model sets hold no MiniLM)."""

    agent_mode: str = "honest"
    """What runs behind the role (a mode of `agents.registry.AGENT_MODES`): honest, byzantine (the
    opposite action at full confidence), wrong-model (embeddings under an unregistered model id) or
    slow (the honest answer after `agent_delay_s`)."""

    agent_delay_s: float = Field(default=0.0, ge=0, le=3600)
    """agent_mode slow: seconds the agent waits before answering (> 0 there, 0 in every other mode)."""

    fusion_rules: str | None = None
    """Fusion: "risk_veto,lead", M-rules thresholds (fractions) with which the node decides tasks of
    architecture M-rules; unset: the plain fusion agent decides them."""

    alignments_dir: Path | None = None
    """Fusion: directory of alignment maps (`models.align` bytes, each file named by its map id's
    64 hex digits). A peer's embedding in a model other than the E-d head's is fused only through
    the map registered on chain for that pair (`ModelRegistry.alignment`) whose bytes are here and
    check out (sha256 = map id, registered dims); unset: such embeddings are absent."""

    alignment_retry_s: float = Field(default=30.0, ge=0, le=86_400)
    """Fusion: seconds before a pair refused (no alignment registered, no file, a bad file) is
    looked at again; a map found and checked is kept for good (registrations are immutable)."""

    archs: list[int] = Field(default_factory=lambda: list(DEFAULT_ARCHS))
    """Architecture ids this node publishes for; tasks of other architectures are skipped.
    Default 0-5 and 8-15, or 6-7 (U, U-rep) for role coordinator."""

    embedding_archs: list[int] = Field(default_factory=lambda: [int(Arch.E_D)])
    """Architectures for which the node also publishes its embedding (E-d)."""

    finalize: bool = True
    """Call TaskBoard.finalize once quorum is reached (any node may; races are handled)."""

    finalize_grace_s: float = Field(default=3.0, ge=0)
    """The node whose decision reached quorum finalizes at once; the agent r decisions before it
    waits r times this long (from when it saw quorum) before finalizing in its place, and a node with
    no decision on the task one grace more than all of them."""

    task_slice_s: float = Field(default=1.0, gt=0, le=60)
    """How long one pass of the loop works through tasks (publishing) before it reads the chain
    again for new events, receipts and tasks to finalize."""

    claim_rewards: bool = True
    """Call TaskBoard.claimReward once for every finalized task this node contributed to (embedding or
    decision) whose share is above zero; without it, rewards stay escrowed until claimed by hand."""

    fusion_wait_s: float | None = Field(default=None, ge=0)
    """Fusion: unset (the default), wait until the quorum's peer decisions are on chain, or until the
    task's deadline is near (by chain time: `deadline_margin_s` + 10 s before it), then fuse; the
    decision then depends on the chain alone, never on how fast the peers were. A number of seconds
    also fuses on a partial set once that long has passed since the task was started: the robustness
    scenarios' setting (an agent slow or offline), not the default."""

    deadline_margin_s: int = Field(default=5, ge=0)
    """Do not start publishing for a task closer than this to its deadline."""

    bump_after_s: float = Field(default=15.0, gt=0)
    """Replace a transaction with higher fees when it is not mined after this long."""

    payload_allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    """Hosts a task's http(s) payload URI may point to."""

    payload_allow_file: list[Path] = Field(default_factory=list)
    """Directories a task's file:// payload URI may name a file in (symlinks and `..` resolved
    first); empty, the default, refuses file:// URIs. `chorus devnet up` allows its payloads folder."""

    payload_timeout_s: float = Field(default=5.0, gt=0)
    """Timeout of connecting to a payload server and of each read from it."""

    payload_deadline_s: float = Field(default=10.0, gt=0)
    """Time a payload fetch may take from its start to its last byte; past it the task is rejected
    (a server that answers a byte at a time is cut off too)."""

    payload_workers: int = Field(default=4, ge=1, le=64)
    """Payload fetches run on this many worker threads, never on the node's loop."""

    payload_per_origin: int = Field(default=2, ge=1, le=64)
    """At most this many of those fetches go to one server (scheme, host, port) at once, so a slow
    server leaves the other workers to the others."""

    transport: Literal["tx", "report", "batch"] = "tx"
    """How an agent's decision reaches the chain: "tx", its own publishDecision (the default);
    "report", signed (EIP-712) and posted to the task's aggregator, which publishes the decisions it
    holds in one submitReport (docs/node.md, "Signed reports"); "batch", its own decisions of several
    tasks in one publishDecisions (docs/node.md, "Batched publication"). Embeddings and probabilities
    always go by their own transactions."""

    batch_wait_s: float = Field(default=1.0, ge=0, le=600)
    """transport "batch": seconds (the node's clock) a decision waits for others to share its
    publishDecisions; 0 sends what one pass of the loop decided."""

    batch_max: int = Field(default=32, ge=1, le=256)
    """transport "batch": decisions in one publishDecisions at most (it goes at once when full)."""

    report_fallback_s: float = Field(default=20.0, ge=0, le=86_400)
    """transport "report": seconds of chain time (block timestamps) after the task's submission block
    after which an agent whose signed decision is not on chain yet publishes it itself; the aggregator
    sends what it holds below quorum after half of it."""

    shutdown_grace_s: float = Field(default=10.0, ge=0)
    """On SIGTERM: how long to wait for the receipts of transactions already sent."""

    @field_validator("archs", "embedding_archs")
    @classmethod
    def _arch_ids(cls, value: list[int]) -> list[int]:
        bad = [a for a in value if a not in _ARCH_IDS]
        if bad:
            raise ValueError(f"architecture ids must be {min(_ARCH_IDS)}..{max(_ARCH_IDS)}, got {bad}")
        return value

    @field_validator("role", "agent_mode")
    @classmethod
    def _known_kind(cls, value: str, info: ValidationInfo) -> str:
        from agents.factory import AGENT_MODES, ROLE_AGENTS

        registry = ROLE_AGENTS if info.field_name == "role" else AGENT_MODES
        if value not in registry:
            raise ValueError(registry.unknown(value))
        return value

    @field_validator("manifest", "text_manifest")
    @classmethod
    def _manifest_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no model manifest at {value}")
        return value

    @field_validator("alignments_dir")
    @classmethod
    def _alignments_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"no alignments directory at {value}")
        return value

    @field_validator("fusion_rules")
    @classmethod
    def _rules(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_rules(value)
        return value

    @model_validator(mode="after")
    def _coordinator_archs(self) -> NodeSettings:
        if self.role == Role.COORDINATOR.label and "archs" not in self.model_fields_set:
            self.archs = [int(a) for a in COORDINATOR_ARCHS]
        return self

    @model_validator(mode="after")
    def _mode_options(self) -> NodeSettings:
        if self.agent_mode == "slow" and self.agent_delay_s <= 0:
            raise ValueError("agent_mode slow needs agent_delay_s > 0")
        if self.agent_mode != "slow" and self.agent_delay_s > 0:
            raise ValueError(f"agent_delay_s is for agent_mode slow, not {self.agent_mode}")
        if self.fusion_rules is not None and self.role != Role.FUSION.label:
            raise ValueError(f"fusion_rules is for role fusion, not {self.role}")
        return self

    def agent_config(self) -> AgentConfig:
        """What the node's agent is built from (`agents.factory.build_agent_from`)."""
        from agents.registry import AgentConfig

        return AgentConfig(self.role, model_name=self.model_name, use_trained=self.use_trained_model,
                           manifest_path=self.manifest, text_manifest_path=self.text_manifest,
                           mode=self.agent_mode, delay_s=self.agent_delay_s,
                           fusion_rules=None if self.fusion_rules is None else _parse_rules(self.fusion_rules))

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls), file_secret_settings

    @property
    def endpoint_url(self) -> str:
        return self.endpoint or f"http://{self.host}:{self.port}"

    def resolved_db_path(self, root: Path | None = None) -> Path:
        return self.db_path or state_dir(root) / "nodes" / f"{self.role}-{self.port}.sqlite"

    def resolved_deployment_file(self, root: Path | None = None) -> Path:
        return self.deployment_file or state_dir(root) / "devnet.json"


def load_node_settings(config_file: Path | None = None, *, settings_cls: type[NodeSettings] = NodeSettings,
                       **overrides: Any) -> NodeSettings:
    """Build NodeSettings (or the subclass `settings_cls`): `overrides` (flags; None values ignored) >
    env > TOML `config_file` > defaults."""
    cls: type[NodeSettings] = settings_cls
    if config_file is not None:
        if not Path(config_file).is_file():
            raise ConfigError(f"config file {config_file} does not exist")
        cls = type(settings_cls.__name__, (settings_cls,), {"model_config": {**settings_cls.model_config,
                                                                             "toml_file": Path(config_file)}})
    try:
        return get_settings(cls, **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"cannot read config file {config_file}: {exc}") from None


def _parse_rules(text: str) -> tuple[float, float]:
    """"risk_veto,lead" -> (risk_veto, lead); ValueError unless two finite numbers >= 0."""
    try:
        risk_veto, lead = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"fusion_rules must be \"risk_veto,lead\" (two numbers), got {text!r}") from None
    if not all(math.isfinite(x) and x >= 0 for x in (risk_veto, lead)):
        raise ValueError(f"fusion_rules thresholds must be finite and >= 0, got {text!r}")
    return risk_veto, lead
