"""Deploy the protocol (ModelRegistry, AgentRegistry, TaskBoard) to any chain, with any key."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from web3.utils.address import get_create_address

from node.chain.abi import ContractInterface
from node.chain.api import ChainClient, SentTx
from node.chain.artifacts import PROTOCOL_CONTRACTS, Artifact, load_protocol_artifacts
from node.protocol.errors import ChainError, ConfigError

log = logging.getLogger(__name__)

DEFAULT_MIN_STAKE = 10**16  # 0.01 ether
DEFAULT_COOLDOWN = 3600  # seconds between deregister and withdraw


@dataclass(frozen=True)
class Deployment:
    """Where the protocol lives on one chain."""

    chain_id: int
    rpc_url: str
    contracts: dict[str, str]  # contract name -> checksummed address
    deploy_block: int  # first block to scan for the protocol's events
    deployer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # anything a caller wants to keep beside it

    def address(self, name: str) -> str:
        try:
            return self.contracts[name]
        except KeyError:
            raise ConfigError(f"deployment has no {name} (it has {sorted(self.contracts)})") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        try:
            return cls(chain_id=int(data["chain_id"]), rpc_url=str(data["rpc_url"]),
                       contracts=dict(data["contracts"]), deploy_block=int(data["deploy_block"]),
                       deployer=str(data.get("deployer", "")),
                       extra={k: v for k, v in data.items()
                              if k not in {"chain_id", "rpc_url", "contracts", "deploy_block", "deployer", "extra"}}
                       | dict(data.get("extra", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed deployment record: {exc}") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read deployment {path}: {exc}") from None


def _send_creation(client: ChainClient, artifact: Artifact, *args: Any) -> tuple[SentTx, str]:
    """Send `artifact`'s creation transaction; its address follows from the sender and nonce."""
    data = artifact.bytecode + ContractInterface(artifact.name, artifact.abi).encode_constructor(*args)
    sent = client.send(None, data)
    return sent, get_create_address(sent.sender, sent.nonce)


def deploy(client: ChainClient, *, rpc_url: str, min_stake: int = DEFAULT_MIN_STAKE,
           cooldown: int = DEFAULT_COOLDOWN, owner: str | None = None,
           artifacts: dict[str, Artifact] | None = None) -> Deployment:
    """Deploy ModelRegistry, AgentRegistry(modelRegistry, minStake, cooldown) and
    TaskBoard(agentRegistry, owner) from `client`'s key; `owner` defaults to the deployer.

    The three creations are sent back to back (each address is known from the deployer's nonce,
    and no constructor calls another contract), then awaited: one block time, not three, on an
    interval-mined chain.
    """
    artifacts = artifacts or load_protocol_artifacts()
    missing = [n for n in PROTOCOL_CONTRACTS if n not in artifacts]
    if missing:
        raise ConfigError(f"artifacts missing for {missing}")
    models_tx, models = _send_creation(client, artifacts["ModelRegistry"])
    agents_tx, agents = _send_creation(client, artifacts["AgentRegistry"], models, min_stake, cooldown)
    board_tx, board = _send_creation(client, artifacts["TaskBoard"], agents, owner or client.address)
    receipts = {}
    for name, sent, expected in (("ModelRegistry", models_tx, models), ("AgentRegistry", agents_tx, agents),
                                 ("TaskBoard", board_tx, board)):
        receipt = client.wait(sent)
        if receipt.contract_address != expected:
            raise ChainError(f"{name} landed at {receipt.contract_address}, expected {expected} "
                             f"(tx {receipt.tx_hash}): was the deployer's key used elsewhere meanwhile?")
        log.info("deployed %s at %s (block %d, gas %d)", name, expected, receipt.block_number, receipt.gas_used)
        receipts[name] = receipt
    return Deployment(
        chain_id=client.chain_id(),
        rpc_url=rpc_url,
        contracts={"ModelRegistry": models, "AgentRegistry": agents, "TaskBoard": board},
        deploy_block=receipts["ModelRegistry"].block_number,
        deployer=client.address,
        extra={"min_stake": min_stake, "cooldown": cooldown},
    )
