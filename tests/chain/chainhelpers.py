"""Small builders shared by the chain tests (register a model and agents, open a task)."""

from __future__ import annotations

import hashlib

from node.chain.contracts import ChorusContracts
from node.chain.events import TaskSubmitted
from node.protocol.enums import Arch, Encoding, Modality, Role

DIM = 8


def model_id(label: str) -> bytes:
    """A model id the way the protocol makes them: sha256 of (here, stand-in) file bytes."""
    return hashlib.sha256(label.encode()).digest()


def setup_agents(chain, dim: int = DIM) -> tuple[ChorusContracts, ChorusContracts, ChorusContracts, bytes]:
    """Owner (key 0), an embedding market agent (key 1) and a decisions-only sentiment agent (key 2)."""
    owner = chain.contracts(0)
    mid = model_id(f"model-{dim}")
    owner.register_model(mid, dim, Encoding.F32, f"test-{dim}")
    market = chain.contracts(1)
    market.register_agent(Role.MARKET, Modality.SERIES, "http://127.0.0.1:9001", mid, dim)
    sentiment = chain.contracts(2)
    sentiment.register_agent(Role.SENTIMENT, Modality.TEXT, "http://127.0.0.1:9002")
    return owner, market, sentiment, mid


def open_task(contracts: ChorusContracts, *, quorum: int = 1, reward: int = 0, ttl: int = 3600,
              arch: int = Arch.M_FIXED, payload: bytes = b"task payload") -> int:
    deadline = contracts.client.block_timestamp() + ttl
    return contracts.submit_task(payload, arch, deadline, quorum, reward).event(TaskSubmitted).task_id
