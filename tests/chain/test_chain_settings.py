"""Settings: key sources, the dev-key policy, secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from node.chain.client import connect
from node.protocol.errors import ConfigError
from node.chain.settings import ChainSettings, dev_account, get_settings

ANVIL_KEY_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_dev_key_is_anvils_first_account() -> None:
    account = get_settings(dev_key_index=0, chain_id=31337).load_account()
    assert account.address == ANVIL_KEY_0 == dev_account(0).address


@pytest.mark.parametrize("chain_id", [1, 10, 8453, 11155111])
def test_dev_key_refused_on_other_chains(chain_id: int) -> None:
    with pytest.raises(ConfigError, match="refusing a dev key"):
        get_settings(dev_key_index=0, chain_id=chain_id)
    with pytest.raises(ConfigError, match="refusing a dev key"):
        get_settings(dev_key_index=0).load_account(chain_id)


def test_dev_key_needs_a_known_chain() -> None:
    with pytest.raises(ConfigError, match="chain id"):
        get_settings(dev_key_index=0).load_account()


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_RPC_URL", "http://example.invalid:1")
    monkeypatch.setenv("CHORUS_DEV_KEY_INDEX", "3")
    monkeypatch.setenv("CHORUS_CHAIN_ID", "1")
    with pytest.raises(ConfigError):
        get_settings()
    monkeypatch.setenv("CHORUS_CHAIN_ID", "31337")
    settings = get_settings()
    assert (settings.rpc_url, settings.dev_key_index) == ("http://example.invalid:1", 3)


def test_invalid_values_become_config_errors() -> None:
    with pytest.raises(ConfigError, match="dev_key_index"):
        get_settings(dev_key_index=-1)


def test_one_key_source_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one key source"):
        get_settings(dev_key_index=0, keystore_path=tmp_path / "k.json")


def _keystore(tmp_path: Path, password: str) -> tuple[Path, str]:
    account = Account.create()
    keyfile = Account.encrypt(account.key, password, kdf="pbkdf2", iterations=2)
    path = tmp_path / "key.json"
    import json

    path.write_text(json.dumps(keyfile))
    return path, account.address


def test_keystore_with_password_and_password_file(tmp_path: Path) -> None:
    path, address = _keystore(tmp_path, "correct horse")
    settings = get_settings(keystore_path=path, keystore_password="correct horse", chain_id=1)
    assert settings.load_account().address == address  # a real key may sign on any chain
    secret_file = tmp_path / "password"
    secret_file.write_text("correct horse\n")
    assert get_settings(keystore_path=path, keystore_password_file=secret_file).load_account().address == address


def test_a_dev_key_in_a_keystore_signs_only_on_the_dev_chain(tmp_path: Path) -> None:
    import json

    path = tmp_path / "dev3.json"
    path.write_text(json.dumps(Account.encrypt(dev_account(3).key, "pw", kdf="pbkdf2", iterations=2)))
    settings = get_settings(keystore_path=path, keystore_password="pw")
    assert settings.load_account(31337).address == dev_account(3).address
    with pytest.raises(ConfigError, match="dev key 3 of the public mnemonic: refused on chain id 1"):
        settings.load_account(1)
    with pytest.raises(ConfigError, match="refused on chain id 5"):
        get_settings(keystore_path=path, keystore_password="pw", chain_id=5).load_account()


def test_wrong_password_and_secrets_stay_hidden(tmp_path: Path) -> None:
    path, _ = _keystore(tmp_path, "correct horse")
    settings = get_settings(keystore_path=path, keystore_password="battery staple")
    assert "battery staple" not in repr(settings) and "battery staple" not in str(settings.model_dump())
    with pytest.raises(ConfigError, match="cannot decrypt") as info:
        settings.load_account()
    assert "battery staple" not in str(info.value)


def test_no_key_configured() -> None:
    with pytest.raises(ConfigError, match="no signing key"):
        get_settings().load_account(31337)


def test_settings_are_extensible() -> None:
    class NodeSettings(ChainSettings):
        http_port: int = 8000
        """Port of the node's HTTP API."""

    settings = get_settings(NodeSettings, http_port=9001, dev_key_index=1, chain_id=31337)
    assert isinstance(settings, NodeSettings) and settings.http_port == 9001
    assert NodeSettings.model_fields["http_port"].description == "Port of the node's HTTP API."
    assert all(f.description for f in ChainSettings.model_fields.values()), "every field needs a docstring"


def test_connect_checks_the_chain_id(chain) -> None:
    client = connect(get_settings(rpc_url=chain.rpc_url, dev_key_index=2))
    assert client.address == dev_account(2).address
    with pytest.raises(ConfigError, match="serves chain id 31337"):
        connect(get_settings(rpc_url=chain.rpc_url, chain_id=5, keystore_path=None))


def test_the_fee_bump_percent_reaches_the_fee_policy_and_the_node_chain(chain) -> None:
    from node.chain.contracts import ChorusContracts
    from node.chain.nodechain import NodeChain

    client = connect(get_settings(rpc_url=chain.rpc_url, dev_key_index=2, fee_bump_percent=25))
    assert client.fee_policy.bump_percent == 25
    assert NodeChain(client, ChorusContracts(client, {}, {})).bump_percent == 25
    assert connect(get_settings(rpc_url=chain.rpc_url, dev_key_index=2)).fee_policy.bump_percent == 10


@pytest.mark.parametrize("percent", [0, 9])
def test_a_fee_bump_geth_would_refuse_is_refused(percent: int) -> None:
    with pytest.raises(ConfigError, match="fee_bump_percent: .*at least 10%"):
        get_settings(fee_bump_percent=percent)
