"""The agent modes (`agent_mode` in the node's settings) and M-rules on the fusion node.

Each mode wraps the role's agent (`agents.registry.AGENT_MODES`):
- `honest`: the agent itself.
- `byzantine` (`ByzantineAgent`): runs the honest agent, then publishes the opposite action
  (sell <-> buy, hold -> sell) with full confidence (as probabilities: all of it on that action):
  the worst single liar a weighted vote can meet.
- `wrong-model` (`WrongModelAgent`): publishes its embeddings under a model id that was never
  registered (as an agent that upgraded its model without re-registering would); the chain must
  refuse them.
- `slow` (`SlowAgent`): the honest answer, after `agent_delay_s` seconds (a loaded or distant agent).

`RulesFusion` (`fusion_rules` in the settings): M-rules (`models.fusion.m_rules`, thresholds picked
on validation) for tasks of architecture M-rules; other architectures go to the fusion agent.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from agents.base import (
    Agent,
    AgentOutput,
    Decision,
    Embedding,
    TaskInput,
)
from agents.registry import AgentConfig, agent_mode
from node.protocol.enums import AGENT_ROLES, MAX_CONFIDENCE, Action, Arch

log = logging.getLogger(__name__)

_OPPOSITE = {Action.SELL: Action.BUY, Action.BUY: Action.SELL, Action.HOLD: Action.SELL}


class WrappedAgent(Agent):
    """An agent around another: the inner agent's identity (its decider renamed) and, but for
    `run`, everything else of it (a coordinator's HTTP service uses `decide_batch`, say)."""

    def __init__(self, inner: Agent, decider: str) -> None:
        self.inner = inner
        self.identity = replace(inner.identity, decider=decider)
        self.waits_for_peers = inner.waits_for_peers

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling, a failed __init__): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


class RulesFusion(WrappedAgent):
    """M-rules for architecture M-rules on the peers' published decisions; the wrapped agent otherwise."""

    def __init__(self, inner: Agent, risk_veto: float, lead: float) -> None:
        from models.fusion import RuleParams

        params = RuleParams(risk_veto=risk_veto, lead=lead)
        super().__init__(inner, f"{inner.identity.decider} + m-rules {params}")
        self.params = params
        self.waits_for_peers = True  # M-rules reads the peers' decisions, whatever the inner agent does

    def run(self, task: TaskInput) -> AgentOutput:
        if task.arch != Arch.M_RULES:
            return self.inner.run(task)
        from models.fusion import m_rules

        peers = {p.role: p for p in task.peers if p.role in AGENT_ROLES and p.action is not None}
        actions = np.array([[peers[r].action if r in peers else Action.HOLD for r in AGENT_ROLES]])  # (1, 3)
        confs = np.array([[peers[r].confidence or 0 if r in peers else 0 for r in AGENT_ROLES]])
        present = np.array([[r in peers for r in AGENT_ROLES]])
        action = int(m_rules(actions, confs, present, self.params)[0])
        return AgentOutput(Decision(Action(action), MAX_CONFIDENCE), note=f"m-rules over {len(peers)} decisions")


class ByzantineAgent(WrappedAgent):
    """The honest agent's identity and embedding, the opposite decision at full confidence."""

    def __init__(self, inner: Agent) -> None:
        super().__init__(inner, f"byzantine({inner.identity.decider})")

    def run(self, task: TaskInput) -> AgentOutput:
        honest = self.inner.run(task)
        lie = Decision(_OPPOSITE[Action(honest.decision.action)], MAX_CONFIDENCE)
        probs = None
        if honest.probs is not None:
            probs = tuple(MAX_CONFIDENCE if a == lie.action else 0 for a in Action)
        return replace(honest, decision=lie, probs=probs, note="byzantine")


def wrong_model_id(model_id: bytes) -> bytes:
    """The id of an 'upgraded' model nobody registered: derived from the real one."""
    return hashlib.sha256(b"chorus-bench/unregistered-upgrade/" + bytes(model_id)).digest()


class WrongModelAgent(WrappedAgent):
    """Registers its real model id, publishes embeddings under another one."""

    def __init__(self, inner: Agent) -> None:
        super().__init__(inner, f"wrong-model-id({inner.identity.decider})")

    def run(self, task: TaskInput) -> AgentOutput:
        out = self.inner.run(task)
        if out.embedding is None:
            return out
        emb = Embedding(out.embedding.vector, wrong_model_id(out.embedding.model_id), out.embedding.encoding)
        return replace(out, embedding=emb, note="embedding under an unregistered model id")


class SlowAgent(WrappedAgent):
    """The honest answer on the chain path (`run`), `delay_s` seconds late; the node's loop waits
    with it, as it would for a slow model. A coordinator's HTTP routes stay as fast as ever."""

    def __init__(self, inner: Agent, delay_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(inner, f"slow({inner.identity.decider}, {delay_s:g} s)")
        self.delay_s = delay_s
        self._sleep = sleep

    def run(self, task: TaskInput) -> AgentOutput:
        out = self.inner.run(task)
        self._sleep(self.delay_s)
        return replace(out, note=f"{out.note} (after {self.delay_s:g} s)".lstrip())


@agent_mode("honest")
def _honest(agent: Agent, config: AgentConfig) -> Agent:
    return agent


@agent_mode("byzantine")
def _byzantine(agent: Agent, config: AgentConfig) -> Agent:
    return ByzantineAgent(agent)


@agent_mode("wrong-model")
def _wrong_model(agent: Agent, config: AgentConfig) -> Agent:
    return WrongModelAgent(agent)


@agent_mode("slow")
def _slow(agent: Agent, config: AgentConfig) -> Agent:
    return SlowAgent(agent, config.delay_s)
