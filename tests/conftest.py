"""Shared pytest fixtures: one Anvil per test session, the protocol deployed once, every chain test
isolated by evm_snapshot / evm_revert (ape's pattern).

- `chain_session` (session): starts Anvil on a free port from node_modules and deploys the
  contracts with dev key 0. Anvil is stopped by a finalizer, by atexit, and (Linux) by the kernel
  if pytest itself dies; it runs in its own process group.
- `chain` (function): the same `Chain`, with the test wrapped in a snapshot that is reverted
  afterwards. Tests that do not ask for `chain` never start Anvil.

Nothing is skipped: missing Anvil or artifacts fail the tests that need them, with the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from node.chain.artifacts import Artifact, check_fresh, load_protocol_artifacts
from node.chain.client import Web3Client
from node.chain.contracts import ChorusContracts, revert_decoder
from node.chain.deploy import Deployment, deploy
from node.devnet.anvil import Anvil, DevnetError
from node.protocol.errors import ArtifactError
from node.chain.settings import dev_account

SETUP_HINT = "run `make setup` (npm ci for anvil/forge, then forge build for the artifacts)"
DEV_ACCOUNTS = 30
CHAIN_FIXTURES = {"chain"}


@dataclass
class Chain:
    """The session's chain: Anvil, the deployment, and one client per dev key (created lazily)."""

    anvil: Anvil
    deployment: Deployment
    artifacts: dict[str, Artifact]
    _clients: dict[int, Web3Client] = field(default_factory=dict)

    @property
    def rpc_url(self) -> str:
        return self.anvil.rpc_url

    def client(self, index: int = 0) -> Web3Client:
        """The client signing with dev key `index` (0 deployed the contracts and owns TaskBoard)."""
        if index not in self._clients:
            self._clients[index] = Web3Client(self.rpc_url, dev_account(index), decoder=revert_decoder(self.artifacts),
                                              retries=1, receipt_timeout=20)
        return self._clients[index]

    def contracts(self, index: int = 0) -> ChorusContracts:
        """The facade acting as dev key `index`."""
        return ChorusContracts.from_deployment(self.client(index), self.deployment, self.artifacts)

    def rpc(self, method: str, *params: Any) -> Any:
        return self.client(0).request(method, params)

    def timestamp(self) -> int:
        return self.client(0).block_timestamp()

    def increase_time(self, seconds: int) -> None:
        """Move the chain clock forward and mine a block at the new time."""
        self.rpc("evm_increaseTime", seconds)
        self.rpc("evm_mine")

    def forget_nonces(self) -> None:
        """After evm_revert every cached nonce is wrong: read them again on next use."""
        for client in self._clients.values():
            client.nonces.reset()


@pytest.fixture(scope="session")
def chain_session(request: pytest.FixtureRequest) -> Iterator[Chain]:
    try:
        check_fresh()
        artifacts = load_protocol_artifacts()
    except ArtifactError as exc:
        pytest.fail(f"{exc}\n-> {SETUP_HINT}", pytrace=False)
    try:
        anvil = Anvil.start(accounts=DEV_ACCOUNTS, die_with_parent=True).stop_at_exit()
    except DevnetError as exc:
        pytest.fail(f"cannot start anvil: {exc}\n-> {SETUP_HINT}", pytrace=False)
    request.addfinalizer(anvil.stop)
    deployer = Web3Client(anvil.rpc_url, dev_account(0), decoder=revert_decoder(artifacts))
    deployment = deploy(deployer, rpc_url=anvil.rpc_url, artifacts=artifacts)
    yield Chain(anvil, deployment, artifacts)


@pytest.fixture(autouse=True)
def _chain_isolation(request: pytest.FixtureRequest) -> Iterator[None]:
    """Wrap every test that uses `chain` in evm_snapshot / evm_revert."""
    if not CHAIN_FIXTURES & set(request.fixturenames):
        yield
        return
    session: Chain = request.getfixturevalue("chain_session")
    snapshot = session.rpc("evm_snapshot")
    try:
        yield
    finally:
        session.rpc("evm_setAutomine", True)  # a test may have paused mining
        if not session.rpc("evm_revert", snapshot):
            raise RuntimeError(f"evm_revert({snapshot}) failed: later tests would see this test's state")
        session.forget_nonces()


@pytest.fixture
def chain(chain_session: Chain) -> Chain:
    """The session chain, isolated: whatever the test does is reverted after it."""
    return chain_session
