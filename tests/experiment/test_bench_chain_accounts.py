"""The bench's private Anvil funds a dev account for every node key the run's plan allocates, so
the deployer's own balance (which funds keys beyond them, 100 ether each) never runs dry: a full
run with a 10-seed alpha sweep allocates about 525 keys, and with 400 accounts its last sessions
failed with 'Insufficient funds'."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.experiment.chain import ANVIL_ACCOUNTS, NODE_KEY_START, BenchChain
from node.experiment.config import RunOptions, get_profile
from node.experiment.plan import chain_plan
from node.experiment.runner import Bench

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_every_planned_node_key_is_a_funded_dev_account(tmp_path: Path) -> None:
    n = ANVIL_ACCOUNTS + 40
    chain = BenchChain.start(tmp_path / "work", node_keys=n)
    try:
        assert chain.accounts == NODE_KEY_START + n + 1
        deployer = chain.deployer()
        before = deployer.balance()
        keys = chain.allocate_keys(n)
        assert deployer.balance() == before  # none of them needed the deployer's ether
        assert deployer.balance(keys[-1].address) == deployer.balance(keys[0].address) > 0
    finally:
        chain.stop()


def test_the_full_profile_plans_more_keys_than_the_default_accounts(tmp_path: Path) -> None:
    opts = RunOptions(profile=get_profile("full"), out=tmp_path)
    sessions = [s for s in Bench(opts, tmp_path, background=False).sessions() if s.specs is not None]
    assert chain_plan(sessions, opts.profile).keys > ANVIL_ACCOUNTS
