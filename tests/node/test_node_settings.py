"""Node settings: flags > CHORUS_* env > TOML file > defaults; key policy; no secret in reprs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_account import Account

from node.protocol.errors import ConfigError
from node.runtime.settings import NodeSettings, load_node_settings
from node.runtime.node import effective_settings, safe_url


def test_defaults_bind_loopback() -> None:
    s = load_node_settings()
    assert s.host == "127.0.0.1" and s.role == "market" and s.endpoint_url == "http://127.0.0.1:8700"
    assert s.resolved_db_path().name == "market-8700.sqlite"
    assert s.resolved_deployment_file().name == "devnet.json"


def test_precedence_flags_env_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text('role = "risk"\nport = 9001\nconfirmations = 3\npoll_interval_s = 0.5\n'
                    'payload_allowed_hosts = ["127.0.0.1", "::1"]\n')
    s = load_node_settings(toml)
    assert (s.role, s.port, s.confirmations, s.poll_interval_s) == ("risk", 9001, 3, 0.5)
    assert s.payload_allowed_hosts == ["127.0.0.1", "::1"]
    monkeypatch.setenv("CHORUS_PORT", "9002")
    monkeypatch.setenv("CHORUS_CONFIRMATIONS", "1")
    s = load_node_settings(toml)
    assert (s.role, s.port, s.confirmations) == ("risk", 9002, 1)  # env beats the file
    s = load_node_settings(toml, port=9003, role="fusion", confirmations=None)
    assert (s.role, s.port, s.confirmations) == ("fusion", 9003, 1)  # flags beat env; None = not given


@pytest.mark.parametrize("bad", [{"role": "oracle"}, {"port": 0}, {"port": 70000}, {"confirmations": -1},
                                 {"poll_interval_s": 0}, {"archs": [16]}])
def test_bad_values_are_config_errors(bad: dict) -> None:
    with pytest.raises(ConfigError, match="invalid settings"):
        load_node_settings(**bad)


def test_missing_or_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_node_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("role = \n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_node_settings(broken)


def test_dev_keys_only_on_the_dev_chain() -> None:
    assert load_node_settings(dev_key_index=1, chain_id=31337).load_account().address.startswith("0x7099")
    with pytest.raises(ConfigError, match="refusing a dev key"):
        load_node_settings(dev_key_index=1, chain_id=1)
    with pytest.raises(ConfigError, match="refusing a dev key"):
        load_node_settings(dev_key_index=1).load_account(chain_id=5)


def test_keystore_with_password_file_and_no_secret_in_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = Account.create()
    keystore = tmp_path / "key.json"
    import json

    keystore.write_text(json.dumps(Account.encrypt(account.key, "hunter22", iterations=2)))
    password = tmp_path / "pw"
    password.write_text("hunter22\n")
    s = load_node_settings(keystore_path=keystore, keystore_password_file=password, chain_id=1)
    assert s.load_account().address == account.address
    monkeypatch.setenv("CHORUS_KEYSTORE_PASSWORD", "hunter22")
    s = load_node_settings(keystore_path=keystore)
    assert s.load_account().address == account.address
    assert "hunter22" not in repr(s) and "hunter22" not in str(s.model_dump())


def test_deployment_fills_rpc_and_chain_id_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    class Dep:
        rpc_url = "http://127.0.0.1:9545"
        chain_id = 31337

    s = effective_settings(load_node_settings(), Dep())
    assert s.rpc_url == "http://127.0.0.1:9545" and s.chain_id == 31337
    s = effective_settings(load_node_settings(rpc_url="http://127.0.0.1:1"), Dep())
    assert s.rpc_url == "http://127.0.0.1:1"


def test_rpc_urls_are_logged_without_their_path() -> None:
    assert safe_url("https://eth-mainnet.example/v2/SECRETKEY?x=1") == "https://eth-mainnet.example"
    assert safe_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"


def test_node_settings_is_a_chain_settings() -> None:
    from node.chain.settings import ChainSettings

    assert issubclass(NodeSettings, ChainSettings)


def test_agent_kind_settings_reach_the_agent_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.faults import ByzantineAgent, RulesFusion
    from agents.factory import build_agent_from

    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"models": []}')
    s = load_node_settings()
    config = s.agent_config()
    assert (s.agent_mode, s.agent_delay_s, s.manifest, s.text_manifest, s.fusion_rules) == ("honest", 0.0, None, None,
                                                                                          None)
    assert (config.role, config.mode, config.manifest_path, config.fusion_rules) == ("market", "honest", None, None)
    monkeypatch.setenv("CHORUS_AGENT_MODE", "byzantine")
    monkeypatch.setenv("CHORUS_MANIFEST", str(manifest))
    monkeypatch.setenv("CHORUS_FUSION_RULES", "0.6,0.5")
    s = load_node_settings(role="fusion")
    config = s.agent_config()
    assert (config.mode, config.manifest_path, config.fusion_rules) == ("byzantine", manifest, (0.6, 0.5))
    agent = build_agent_from(config)
    assert isinstance(agent, ByzantineAgent) and isinstance(agent.inner, RulesFusion)
    s = load_node_settings(role="fusion", agent_mode="slow", agent_delay_s=2.5, text_manifest=manifest)
    assert (s.agent_config().mode, s.agent_config().delay_s, s.agent_config().text_manifest_path) == \
        ("slow", 2.5, manifest)


@pytest.mark.parametrize("bad, message", [
    ({"role": "oracle"}, "unknown agent role 'oracle'; known: market, sentiment, risk, fusion, coordinator"),
    ({"agent_mode": "lazy"}, "unknown agent mode 'lazy'; known: honest, byzantine, wrong-model, slow"),
    ({"agent_mode": "slow"}, "agent_mode slow needs agent_delay_s > 0"),
    ({"agent_delay_s": 1.0}, "agent_delay_s is for agent_mode slow, not honest"),
    ({"agent_mode": "slow", "agent_delay_s": -1.0}, "agent_delay_s"),
    ({"fusion_rules": "0.6,0.5"}, "fusion_rules is for role fusion, not market"),
    ({"role": "fusion", "fusion_rules": "0.6"}, "two numbers"),
    ({"role": "fusion", "fusion_rules": "0.6,nan"}, "finite and >= 0"),
    ({"manifest": "/nonexistent/manifest.json"}, "no model manifest at /nonexistent/manifest.json"),
])
def test_agent_kind_settings_are_validated(bad: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_node_settings(**bad)
