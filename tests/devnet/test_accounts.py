"""node.devnet.accounts: the submitter's dev key is no other devnet role's, and the README's
`cast send` example signs with it. The keys each role gets are read from the code paths that hand
them out (start_nodes, devnet_up, `chorus task submit`), with the processes and the chain faked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from node.chain.settings import dev_account
from node.devnet import accounts, cluster
from node.devnet.accounts import MAX_NODES, SUBMITTER_KEY, submitter
from node.protocol.errors import ChorusError, ConfigError

ROOT = Path(__file__).resolve().parents[2]


class _Stop(Exception):
    """Raised by the fakes once they have seen what they were looking for."""


def _node_keys_of_start_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int) -> list[int]:
    """The dev keys `start_nodes` gives `n` nodes (spawn_node faked: nothing starts)."""
    seen: list[int] = []

    def spawn(role: str, port: int, key_index: int, *args: Any, **kwargs: Any) -> cluster.NodeProc:
        seen.append(key_index)
        return cluster.NodeProc(role=role, address=dev_account(key_index).address, url=f"http://127.0.0.1:{port}",
                                pid=0, port=port, key_index=key_index, db="", log="")

    devnet_json = tmp_path / "devnet.json"
    devnet_json.write_text("{}")
    monkeypatch.setattr(cluster, "spawn_node", spawn)
    monkeypatch.setattr(cluster, "wait_healthy", lambda nodes, timeout: None)
    monkeypatch.setattr(cluster, "check_free", lambda ports: None)  # the ports are not the point here
    cluster.start_nodes(devnet_json, cluster.default_roles(n), base_port=40000)
    return seen


def _deployer_of_devnet_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The address `devnet_up` deploys from (Anvil, the artifacts and the client faked)."""
    import node.chain.artifacts
    import node.chain.client
    from node.devnet import anvil

    class FakeAnvil:
        rpc_url, pid = "http://127.0.0.1:1", 0

        def stop(self) -> bool:
            return True

    seen: list[str] = []

    def client(url: str, account: Any, **kwargs: Any) -> None:
        seen.append(account.address)
        raise _Stop

    monkeypatch.setattr(node.chain.artifacts, "check_fresh", lambda: None)
    monkeypatch.setattr(node.chain.artifacts, "load_protocol_artifacts", lambda: {})
    monkeypatch.setattr(node.chain.client, "Web3Client", client)
    monkeypatch.setattr(anvil.Anvil, "start", classmethod(lambda cls, **kwargs: FakeAnvil()))
    with pytest.raises(_Stop):
        anvil.devnet_up(port=anvil.free_port(), state=tmp_path)
    return seen[0]


def test_no_devnet_role_signs_with_the_submitters_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node_keys = _node_keys_of_start_nodes(tmp_path, monkeypatch, MAX_NODES)
    assert len(node_keys) == len(set(node_keys)) == MAX_NODES
    deployer = _deployer_of_devnet_up(tmp_path, monkeypatch)
    others = {dev_account(k).address for k in node_keys} | {deployer}
    assert submitter().address not in others
    assert submitter().address == dev_account(SUBMITTER_KEY).address
    # Anvil funds the submitter: its index is below the accounts the devnet asks for.
    assert SUBMITTER_KEY < accounts.DEV_ACCOUNTS


def test_a_devnet_never_starts_more_nodes_than_it_has_keys_for(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=f"at most {MAX_NODES} node processes"):
        _node_keys_of_start_nodes(tmp_path, monkeypatch, MAX_NODES + 1)
    from node.cli.main import app
    from node.devnet import anvil

    def never(**kwargs: Any) -> None:
        raise AssertionError("devnet up started a chain for more nodes than it has keys for")

    monkeypatch.setattr(anvil, "devnet_up", never)
    result = CliRunner().invoke(app, ["devnet", "up", "--agents", str(MAX_NODES), "--coordinator"])
    assert result.exit_code == 1 and f"at most {MAX_NODES} node processes" in result.output


def test_task_submit_signs_with_the_submitter_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from node.cli import task
    from node.cli.main import app

    seen: dict[str, Any] = {}

    def contracts(deployment: Any, dev_key_index: Any, *, signing: bool, default_dev_key: int = -1) -> Any:
        seen.update(dev_key_index=dev_key_index, default_dev_key=default_dev_key)
        raise ChorusError("stop here")

    monkeypatch.setattr(task, "_contracts", contracts)
    result = CliRunner().invoke(app, ["task", "submit", "--example"])
    assert result.exit_code == 1 and "stop here" in result.output
    assert seen == {"dev_key_index": None, "default_dev_key": SUBMITTER_KEY}


def test_the_readme_cast_example_signs_with_the_submitters_key() -> None:
    readme = (ROOT / "README.md").read_text()
    keys = re.findall(r"--private-key (0x[0-9a-fA-F]{64})", readme)
    assert keys, "README.md has no `cast send --private-key` example"
    assert set(keys) == {"0x" + submitter().key.hex()}
    named = {int(n) for n in re.findall(r"dev account (\d+)", readme)}
    assert named == {SUBMITTER_KEY}


def test_accounts_command_prints_the_submitter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import json

    import node.chain.settings
    from node.cli.main import app

    monkeypatch.setattr(node.chain.settings, "state_dir", lambda root=None: tmp_path)  # no devnet recorded
    result = CliRunner().invoke(app, ["devnet", "accounts", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    mine = [r for r in rows if r["role"] == "submitter"]
    assert [(r["key_index"], r["address"], r["private_key"]) for r in mine] == [
        (SUBMITTER_KEY, submitter().address, "0x" + submitter().key.hex())]
    assert all("private_key" not in r for r in rows if r["role"] != "submitter")
    key_only = CliRunner().invoke(app, ["devnet", "accounts", "--submitter-key"])
    assert key_only.output.strip() == "0x" + submitter().key.hex()
