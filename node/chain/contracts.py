"""`ChorusContracts`: a typed facade over ModelRegistry, AgentRegistry and TaskBoard.

One method per contract function of docs/protocol.md. Transactions return a `TxResult` (the
receipt and its decoded events); views return dataclasses from `node.chain.events`. Reverts
raise `ContractRevert(error_name, args)`. The facade signs with its client's key; use
`with_client` to act as another agent on the same deployment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from node.chain.abi import ContractInterface, DecodedLog, RevertDecoder
from node.chain.api import BlockId, ChainClient, Log, Receipt, SentTx
from node.chain.artifacts import PROTOCOL_CONTRACTS, Artifact, load_protocol_artifacts
from node.chain.deploy import Deployment
from node.chain.events import (
    AgentInfo,
    AgentRecord,
    AlignmentInfo,
    ChainEvent,
    DecisionReported,
    ModelInfo,
    Published,
    Tallies,
    TaskInfo,
    to_event,
)
from node.protocol.enums import ZERO_MODEL_ID
from node.protocol.reports import SignedDecision, pack_decision, report_args

E = TypeVar("E", bound=ChainEvent)


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction and the protocol events it emitted."""

    receipt: Receipt
    events: tuple[ChainEvent | DecodedLog, ...]

    @property
    def tx_hash(self) -> str:
        return self.receipt.tx_hash

    @property
    def gas_used(self) -> int:
        return self.receipt.gas_used

    def event(self, kind: type[E]) -> E:
        """The single event of type `kind`; LookupError if there is none or several."""
        found = [e for e in self.events if isinstance(e, kind)]
        if len(found) != 1:
            raise LookupError(f"expected one {kind.__name__} in {self.tx_hash}, found {len(found)}")
        return found[0]


def revert_decoder(artifacts: Mapping[str, Artifact]) -> RevertDecoder:
    """Selector -> custom error table over all protocol contracts."""
    return RevertDecoder(a.abi for a in artifacts.values())


class ChorusContracts:
    """The protocol's contracts on one chain, used through one `ChainClient`."""

    def __init__(self, client: ChainClient, addresses: Mapping[str, str],
                 interfaces: Mapping[str, ContractInterface]) -> None:
        self.client = client
        self.addresses = dict(addresses)
        self.interfaces = dict(interfaces)
        self._by_address = {addr.lower(): self.interfaces[name] for name, addr in self.addresses.items()}

    @classmethod
    def from_deployment(cls, client: ChainClient, deployment: Deployment,
                        artifacts: Mapping[str, Artifact] | None = None) -> ChorusContracts:
        artifacts = artifacts or load_protocol_artifacts()
        interfaces = {name: ContractInterface(name, artifacts[name].abi) for name in PROTOCOL_CONTRACTS}
        return cls(client, {n: deployment.address(n) for n in PROTOCOL_CONTRACTS}, interfaces)

    def with_client(self, client: ChainClient) -> ChorusContracts:
        """The same contracts, signing with another client's key."""
        return ChorusContracts(client, self.addresses, self.interfaces)

    # -- plumbing ---------------------------------------------------------------------------

    def calldata(self, contract: str, function: str, *args: Any) -> bytes:
        """ABI-encoded calldata for `contract.function(args)` (for batching or gas accounting)."""
        return self.interfaces[contract].encode_call(function, *args)

    def _call(self, contract: str, function: str, *args: Any, block: BlockId = "latest") -> tuple[Any, ...]:
        fn = self.interfaces[contract].function(function)
        out = self.client.call(self.addresses[contract], fn.encode(args), block=block)
        return fn.decode_output(out)

    def _one(self, contract: str, function: str, *args: Any) -> Any:
        (value,) = self._call(contract, function, *args)
        return value

    def send(self, contract: str, function: str, *args: Any, value: int = 0, gas: int | None = None) -> SentTx:
        """Sign and send without waiting (pipelining); pair with `result(tx)`."""
        return self.client.send(self.addresses[contract], self.calldata(contract, function, *args),
                                value=value, gas=gas)

    def result(self, tx: SentTx | str, timeout: float | None = None) -> TxResult:
        """Wait for `tx` and decode its events."""
        receipt = self.client.wait(tx, timeout=timeout)
        return TxResult(receipt, tuple(self.decode_logs(receipt.logs)))

    def _transact(self, contract: str, function: str, *args: Any, value: int = 0,
                  gas: int | None = None) -> TxResult:
        return self.result(self.send(contract, function, *args, value=value, gas=gas))

    def decode_logs(self, logs: Iterable[Log]) -> list[ChainEvent | DecodedLog]:
        """Typed events for the logs the protocol's contracts emitted; others are skipped. A
        report's packed `DecisionReported` comes out as the `DecisionPublished` it stands for (same
        fields, same log position): a decision reads the same whichever way it reached the chain."""
        events: list[ChainEvent | DecodedLog] = []
        for entry in logs:
            interface = self._by_address.get(entry.address.lower())
            decoded = interface.decode_log(entry) if interface else None
            if decoded is not None:
                event = to_event(decoded)
                events.append(event.decoded() if isinstance(event, DecisionReported) else event)
        return events

    def events(self, from_block: BlockId = 0, to_block: BlockId = "latest",
               names: Sequence[str] | None = None) -> list[ChainEvent | DecodedLog]:
        """The protocol's events in a block range (all contracts), optionally only `names`."""
        topics: list[bytes] | None = None
        if names:
            wanted = [*names, "DecisionReported"] if "DecisionPublished" in names else list(names)
            topics = [iface.event_topic(n) for n in wanted for iface in self.interfaces.values()
                      if n in iface.event_names]
        logs = self.client.get_logs(address=list(self.addresses.values()),
                                    topics=[topics] if topics else None,
                                    from_block=from_block, to_block=to_block)
        return self.decode_logs(logs)

    # -- ModelRegistry ----------------------------------------------------------------------

    def register_model(self, model_id: bytes, dim: int, dtype: int, name: str) -> TxResult:
        """Register an embedding space; emits ModelRegistered."""
        return self._transact("ModelRegistry", "register", model_id, dim, int(dtype), name)

    def model(self, model_id: bytes) -> ModelInfo:
        """The registered model (dim 0 when unknown)."""
        return ModelInfo(*self._call("ModelRegistry", "models", model_id))

    def is_model_registered(self, model_id: bytes) -> bool:
        return bool(self._one("ModelRegistry", "isRegistered", model_id))

    def register_alignment(self, from_model: bytes, to_model: bytes, map_id: bytes, in_dim: int, out_dim: int,
                           method: str) -> TxResult:
        """Record that the map whose sha256 is `map_id` takes embeddings of `from_model` into the space
        of `to_model` (both registered, dims theirs); once per pair. Emits AlignmentRegistered."""
        return self._transact("ModelRegistry", "registerAlignment", from_model, to_model, map_id, in_dim, out_dim,
                              method)

    def alignment(self, from_model: bytes, to_model: bytes) -> AlignmentInfo:
        """The registered alignment from `from_model` into `to_model` (zero map id when none)."""
        return AlignmentInfo(*self._call("ModelRegistry", "alignment", from_model, to_model))

    # -- AgentRegistry ----------------------------------------------------------------------

    def register_agent(self, role: int, modality: int, endpoint: str, model_id: bytes = ZERO_MODEL_ID,
                       dim: int = 0, stake: int | None = None) -> TxResult:
        """Register the client's address as an agent, staking `stake` (default: minStake)."""
        stake = self.min_stake() if stake is None else stake
        return self._transact("AgentRegistry", "register", int(role), int(modality), endpoint, model_id, dim,
                              value=stake)

    def update_endpoint(self, endpoint: str) -> TxResult:
        return self._transact("AgentRegistry", "updateEndpoint", endpoint)

    def deregister(self) -> TxResult:
        return self._transact("AgentRegistry", "deregister")

    def withdraw(self) -> TxResult:
        return self._transact("AgentRegistry", "withdraw")

    def agent_info(self, agent: str | None = None) -> AgentInfo:
        """What TaskBoard checks per publication, for `agent` (default: this client)."""
        return AgentInfo(*self._call("AgentRegistry", "agentInfo", agent or self.client.address))

    def agent_role(self, agent: str | None = None) -> tuple[bool, int]:
        """(active, role) of `agent`: what TaskBoard checks per decision."""
        active, role = self._call("AgentRegistry", "agentRole", agent or self.client.address)
        return bool(active), int(role)

    def agent(self, agent: str | None = None) -> AgentRecord:
        """The whole stored record of `agent` (default: this client)."""
        return AgentRecord(*self._call("AgentRegistry", "agents", agent or self.client.address))

    def min_stake(self) -> int:
        return int(self._one("AgentRegistry", "minStake"))

    def cooldown(self) -> int:
        return int(self._one("AgentRegistry", "cooldown"))

    def total_staked(self) -> int:
        return int(self._one("AgentRegistry", "totalStaked"))

    def model_registry_address(self) -> str:
        return str(self._one("AgentRegistry", "modelRegistry"))

    # -- TaskBoard --------------------------------------------------------------------------

    def submit_task(self, payload: bytes, arch: int, deadline: int, quorum: int, reward: int = 0) -> TxResult:
        """Submit a task with its payload inline; emits TaskSubmitted (with the new task id)."""
        return self._transact("TaskBoard", "submitTask", payload, int(arch), deadline, quorum, value=reward)

    def submit_task_uri(self, payload_hash: bytes, uri: str, arch: int, deadline: int, quorum: int,
                        reward: int = 0) -> TxResult:
        """Submit a task whose payload lives at `uri` (sha256 = `payload_hash`)."""
        return self._transact("TaskBoard", "submitTaskURI", payload_hash, uri, int(arch), deadline, quorum,
                              value=reward)

    def publish_embedding(self, task_id: int, model_id: bytes, encoding: int, vector: bytes) -> TxResult:
        return self._transact("TaskBoard", "publishEmbedding", task_id, model_id, int(encoding), vector)

    def publish_decision(self, task_id: int, action: int, confidence: int) -> TxResult:
        return self._transact("TaskBoard", "publishDecision", task_id, int(action), confidence)

    def publish_probabilities(self, task_id: int, probs: Sequence[int]) -> TxResult:
        """Sell, hold and buy probabilities in basis points (summing to 10,000, or all 0)."""
        return self._transact("TaskBoard", "publishProbabilities", task_id, [int(p) for p in probs])

    def publish_decisions(self, decisions: Iterable[tuple[int, int, int]]) -> TxResult:
        """Several of this agent's decisions, `(task_id, action, confidence)` each, in one transaction
        (`publishDecisions`, one packed word per item); any bad item reverts them all."""
        return self._transact("TaskBoard", "publishDecisions", [pack_decision(*d) for d in decisions])

    def publish_embeddings(self, task_ids: Sequence[int], model_id: bytes, encoding: int,
                           vectors: Sequence[bytes]) -> TxResult:
        """This agent's vectors for several tasks, one per task id, in one transaction (`publishEmbeddings`)."""
        return self._transact("TaskBoard", "publishEmbeddings", list(task_ids), model_id, int(encoding),
                              b"".join(vectors))

    def submit_report(self, task_id: int, decisions: Iterable[SignedDecision]) -> TxResult:
        """Publish decisions that agents signed off chain (`node.protocol.reports.sign_decision`) in one
        transaction from this client's agent, the aggregator; finalizes the task if they reach its quorum."""
        return self._transact("TaskBoard", "submitReport", task_id, report_args(decisions))

    def domain_separator(self) -> bytes:
        """The EIP-712 domain separator that signed decisions are checked under."""
        return bytes(self._one("TaskBoard", "domainSeparator"))

    def decision_digest(self, task_id: int, action: int, confidence: int, model_id: bytes, agent: str) -> bytes:
        """The digest the contract expects `agent` to have signed for this decision."""
        return bytes(self._one("TaskBoard", "decisionDigest", task_id, int(action), confidence, model_id, agent))

    def finalize(self, task_id: int) -> TxResult:
        """Fuse the decisions on chain and close the task; emits TaskFinalized."""
        return self._transact("TaskBoard", "finalize", task_id)

    def claim_reward(self, task_id: int) -> TxResult:
        return self._transact("TaskBoard", "claimReward", task_id)

    def reclaim(self, task_id: int) -> TxResult:
        return self._transact("TaskBoard", "reclaim", task_id)

    def set_weight(self, arch: int, role: int, weight: int) -> TxResult:
        return self._transact("TaskBoard", "setWeight", int(arch), int(role), weight)

    def transfer_ownership(self, new_owner: str) -> TxResult:
        return self._transact("TaskBoard", "transferOwnership", new_owner)

    def weight(self, arch: int, role: int) -> int:
        return int(self._one("TaskBoard", "weights", int(arch), int(role)))

    def owner(self) -> str:
        return str(self._one("TaskBoard", "owner"))

    def task(self, task_id: int) -> tuple[Any, ...]:
        """The raw packed task record (`tasks(taskId)`), as the contract lays it out."""
        return self._call("TaskBoard", "tasks", task_id)

    def task_info(self, task_id: int) -> TaskInfo:
        return TaskInfo(*self._call("TaskBoard", "taskInfo", task_id))

    def published(self, task_id: int, agent: str | None = None) -> Published:
        return Published(*self._call("TaskBoard", "published", task_id, agent or self.client.address))

    def tallies(self, task_id: int) -> Tallies:
        return Tallies(*self._call("TaskBoard", "tallies", task_id))

    def task_count(self) -> int:
        return int(self._one("TaskBoard", "taskCount"))

    def escrowed(self) -> int:
        return int(self._one("TaskBoard", "escrowed"))

    def registry_address(self) -> str:
        return str(self._one("TaskBoard", "registry"))
