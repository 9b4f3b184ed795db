"""M-learned-p's interface: an agent's class probabilities in basis points as TaskBoard takes them
(`publishProbabilities`), the decision the chain reads from them, and the fusion head's inputs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.base import NO_PROBS, Action, Decision, PeerOutput, TaskInput, abstained, decided, probs_bps
from agents.faults import ByzantineAgent
from agents.fusion import FusionAgent, TrainedHead, probability_scores
from agents.market import MarketAgent
from node.protocol.enums import MAX_CONFIDENCE, Arch, Role
from node.protocol.payload import TaskPayload, example_payload
from node.runtime.store import Store, StoredEvent

probabilities = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=3, max_size=3).filter(lambda p: sum(p) > 1e-6)


@given(probabilities)
def test_probs_bps_sum_to_ten_thousand_and_stay_within_one_point_of_the_probabilities(p: list[float]) -> None:
    bps = probs_bps(np.array(p))
    assert sum(bps) == MAX_CONFIDENCE and all(0 <= b <= MAX_CONFIDENCE for b in bps)
    exact = np.array(p) / sum(p) * MAX_CONFIDENCE
    assert np.all(np.abs(np.array(bps) - exact) < 1.0)


def test_probs_bps_rounds_by_the_largest_remainder_with_ties_to_the_lower_class() -> None:
    assert probs_bps(np.array([1, 1, 1]) / 3) == (3334, 3333, 3333)
    assert probs_bps(np.array([0.10004, 0.29996, 0.6])) == (1000, 3000, 6000)
    for bad in ([0.5, np.nan, 0.5], [0.0, 0.0, 0.0], [0.5, 0.5], [-0.1, 0.6, 0.5]):
        with pytest.raises(ValueError):
            probs_bps(np.array(bad))


def test_the_decision_from_basis_points_is_taskboards() -> None:
    # publishProbabilities: the first of the largest, its basis points as confidence; all zeros abstain
    assert Decision.from_bps((1000, 3000, 6000)) == Decision(Action.BUY, 6000)
    assert Decision.from_bps((4000, 4000, 2000)) == Decision(Action.SELL, 4000)
    assert Decision.from_bps((2000, 4000, 4000)) == Decision(Action.HOLD, 4000)
    assert Decision.from_bps(NO_PROBS) == Decision.abstain()


def test_modality_agents_carry_their_probabilities_and_abstain_with_none() -> None:
    prices = [100 * float(np.exp(0.01 * i)) for i in range(32)]
    out = MarketAgent().run(TaskInput(1, int(Arch.M_LEARNED_P), TaskPayload(asset="ETH", prices=prices,
                                                                             volumes=[1000.0] * 32)))
    assert out.probs is not None and sum(out.probs) == MAX_CONFIDENCE
    assert Decision.from_bps(out.probs).action == out.decision.action
    missing = MarketAgent().run(TaskInput(1, int(Arch.M_LEARNED_P), TaskPayload(asset="ETH", headlines=["ETH rallies"])))
    assert missing.probs == NO_PROBS and missing.decision == Decision.abstain()
    assert decided(np.array([0.2, 0.3, 0.5])).probs == (2000, 3000, 5000)
    assert abstained("gone").probs == NO_PROBS


def test_a_byzantine_agent_lies_in_its_probabilities_too() -> None:
    class Honest(MarketAgent):
        def run(self, task: TaskInput):
            return decided(np.array([0.1, 0.2, 0.7]))

    out = ByzantineAgent(Honest()).run(TaskInput(1, int(Arch.M_LEARNED_P), example_payload(1)))
    assert out.decision == Decision(Action.SELL, MAX_CONFIDENCE)
    assert out.probs == (MAX_CONFIDENCE, 0, 0)


def test_probability_scores_mask_abstentions_and_missing_peers() -> None:
    scores, mask = probability_scores([(1000, 3000, 6000), NO_PROBS, None])
    assert scores.shape == (1, 9) and mask.tolist() == [[1.0, 0.0, 0.0]]
    assert scores[0, :3] == pytest.approx([0.1, 0.3, 0.6]) and not scores[0, 3:].any()


class Recorder:
    """A head that records its inputs and answers buy."""

    def __init__(self) -> None:
        self.inputs: dict[str, np.ndarray] = {}

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        self.inputs = inputs
        return {"probs": np.array([[0.1, 0.2, 0.7]], np.float32)}


def test_the_fusion_agent_fuses_published_probabilities_for_m_learned_p_only() -> None:
    head = Recorder()
    agent = FusionAgent(probabilities_head=TrainedHead("m-learned", head))
    peers = (PeerOutput("0x1", int(Role.MARKET), int(Action.SELL), 5000, probs=(5000, 2000, 3000)),
             PeerOutput("0x2", int(Role.SENTIMENT), int(Action.HOLD), 0, probs=NO_PROBS),
             PeerOutput("0x3", int(Role.RISK), int(Action.BUY), 9000, probs=(500, 500, 9000)))
    out = agent.run(TaskInput(1, int(Arch.M_LEARNED_P), example_payload(1), peers))
    assert out.decision == Decision(Action.BUY, 7000) and "m-learned" in out.note
    assert head.inputs["mask"].tolist() == [[1.0, 0.0, 1.0]]
    assert head.inputs["scores"][0].tolist() == pytest.approx([0.5, 0.2, 0.3, 0, 0, 0, 0.05, 0.05, 0.9])
    # M-learned (decisions) never reads this head: without its own, the weighted vote decides
    head.inputs = {}
    agent.run(TaskInput(1, int(Arch.M_LEARNED), example_payload(1), peers))
    assert head.inputs == {}


def test_the_store_keeps_published_probabilities(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.apply_batch(3, {3: "0x03"}, [StoredEvent("ProbabilitiesPublished", block_number=3, log_index=2, task_id=1,
                                                   agent="0xA", probs=(1000, 3000, 6000))])
    assert [e.probs for e in store.task_events(1)] == [(1000, 3000, 6000)]
    store.close()


def test_a_state_file_from_before_probabilities_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE events DROP COLUMN probs")
    db.commit()
    db.close()
    store = Store(path)
    store.apply_batch(3, {3: "0x03"}, [StoredEvent("ProbabilitiesPublished", block_number=3, log_index=2, task_id=1,
                                                   agent="0xA", probs=(0, 0, 0))])
    assert store.task_events(1)[0].probs == (0, 0, 0)
    store.close()
