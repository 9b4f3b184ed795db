"""The agent registry: every role and mode the settings can name builds, anything else is refused
with the list of what is known, and new kinds come in by registration."""

from __future__ import annotations

import pytest

from agents.base import Agent, AgentIdentity, AgentOutput, Decision, Modality, Role, TaskInput
from agents.coordinator import UAgent
from agents.factory import AGENT_MODES, ROLE_AGENTS, build_agent
from agents.faults import ByzantineAgent, RulesFusion, SlowAgent, WrongModelAgent
from agents.fusion import FusionAgent
from agents.market import MarketAgent
from agents.registry import AgentConfig, Registry
from agents.risk import RiskAgent
from agents.sentiment import SentimentAgent
from node.protocol.enums import Action
from node.protocol.errors import ConfigError, ModelError
from test_agents import ENCODER


def test_the_registries_hold_every_role_and_mode() -> None:
    assert ROLE_AGENTS.names() == Role.labels()
    assert AGENT_MODES.names() == ("honest", "byzantine", "wrong-model", "slow")


def test_each_role_builds_its_agent() -> None:
    built = {role: build_agent(role, use_trained=False, text_encoder=ENCODER) for role in ("market", "sentiment",
                                                                                           "risk", "fusion")}
    kinds = {"market": MarketAgent, "sentiment": SentimentAgent, "risk": RiskAgent, "fusion": FusionAgent}
    for role, agent in built.items():
        assert type(agent) is kinds[role]
        assert agent.identity.role == Role.parse(role)
    # The coordinator runs the project's U (built by `make setup`); a fake stands in for MiniLM.
    coordinator = build_agent("coordinator", text_encoder=ENCODER)
    assert isinstance(coordinator, UAgent) and coordinator.identity.role == Role.COORDINATOR
    with pytest.raises(ModelError, match="no simple fallback"):
        build_agent("coordinator", use_trained=False)


@pytest.mark.parametrize("mode, kind", [("byzantine", ByzantineAgent), ("wrong-model", WrongModelAgent),
                                        ("slow", SlowAgent)])
def test_each_mode_wraps_the_role_agent(mode: str, kind: type) -> None:
    honest = build_agent("market", use_trained=False)
    agent = build_agent("market", use_trained=False, mode=mode, delay_s=0.01)
    assert type(agent) is kind and type(agent.inner) is MarketAgent
    assert agent.identity.role == Role.MARKET and agent.identity.model_id == honest.identity.model_id
    assert agent.identity.decider != honest.identity.decider  # /info says which mode runs
    assert type(build_agent("market", use_trained=False, mode="honest")) is MarketAgent


def test_fusion_rules_put_m_rules_on_the_fusion_agent() -> None:
    agent = build_agent("fusion", use_trained=False, fusion_rules=(0.6, 0.5), mode="byzantine")
    assert isinstance(agent, ByzantineAgent) and isinstance(agent.inner, RulesFusion)
    assert isinstance(agent.inner.inner, FusionAgent) and agent.waits_for_peers
    assert agent.inner.params.risk_veto == 0.6 and agent.inner.params.lead == 0.5


def test_unknown_kinds_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown agent role 'oracle'; known: market, sentiment, risk, fusion, "
                                          "coordinator"):
        build_agent("oracle")
    with pytest.raises(ConfigError, match="unknown agent mode 'lazy'; known: honest, byzantine, wrong-model, slow"):
        build_agent("market", use_trained=False, mode="lazy")


def test_a_new_kind_comes_in_by_registration() -> None:
    class Always(Agent):
        def __init__(self, action: Action) -> None:
            self.action = action
            self.identity = AgentIdentity(Role.MARKET, Modality.SERIES, decider=f"always-{action.label}")

        def run(self, task: TaskInput) -> AgentOutput:
            return AgentOutput(Decision(self.action, 10_000))

    roles: Registry = Registry("agent role")

    @roles.register("always-buy")
    def _always_buy(config: AgentConfig) -> Agent:
        return Always(Action.BUY)

    assert roles.names() == ("always-buy",) and "always-buy" in roles and "market" not in roles
    assert roles.get("always-buy")(AgentConfig("always-buy")).identity.decider == "always-buy"
    with pytest.raises(ValueError, match="already registered"):
        roles.register("always-buy")(_always_buy)
    with pytest.raises(ConfigError, match="known: always-buy"):
        roles.get("market")
