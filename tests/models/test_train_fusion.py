"""The numpy fusion rules agents and the chain use (M-fixed bit for bit, rules, Hedge, stacking inputs)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models import fusion
from node.protocol.enums import Action

BUY, HOLD, SELL = Action.BUY, Action.HOLD, Action.SELL

WEIGHTS = (5000, 3000, 2000)


def test_m_fixed_weighted_vote_and_ties():
    a = np.array([[BUY, SELL, SELL], [BUY, SELL, HOLD], [SELL, BUY, BUY], [BUY, BUY, BUY]])
    c = np.array([[6000, 5000, 5000], [5000, 5000, 7500], [5000, 5000, 5000], [0, 0, 0]])
    present = np.ones_like(a)
    # row 0: buy 5000*6000=30e6 vs sell (3000+2000)*5000=25e6 -> buy
    # row 1: buy 25e6, sell 15e6, hold 15e6 -> buy; row 2: sell 25e6 = buy 25e6 -> tie -> hold; row 3: zeros -> hold
    assert fusion.m_fixed(a, c, present, WEIGHTS).tolist() == [BUY, BUY, HOLD, HOLD]
    absent = present.copy()
    absent[0, 0] = 0  # the market agent did not decide: its vote vanishes
    assert fusion.m_fixed(a, c, absent, WEIGHTS)[0] == SELL


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(fusion.ROLES), st.integers(0, 2), st.integers(0, 10000)), min_size=3,
                max_size=3, unique_by=lambda t: t[0]))
def test_batch_rule_equals_the_per_task_rule(decisions):
    decisions = sorted(decisions, key=lambda d: fusion.ROLES.index(d[0]))
    a = np.array([[d[1] for d in decisions]])
    c = np.array([[d[2] for d in decisions]])
    assert fusion.m_fixed(a, c, np.ones_like(a), WEIGHTS)[0] == fusion.m_fixed_one(decisions)


def test_decision_is_argmax_and_basis_points():
    action, conf = fusion.decision(np.array([[0.2, 0.3, 0.5], [0.7, 0.2, 0.1]]))
    assert action.tolist() == [2, 0] and conf.tolist() == [5000, 7000]


def test_m_rules():
    p = np.ones((4, 3), dtype=bool)
    a = np.array([[BUY, BUY, SELL], [BUY, BUY, HOLD], [BUY, SELL, HOLD], [HOLD, SELL, HOLD]])
    c = np.array([[6000, 6000, 9000], [6000, 6000, 9000], [4000, 4000, 4000], [4000, 4000, 4000]])
    assert fusion.m_rules(a, c, p).tolist() == [SELL, BUY, HOLD, HOLD]  # veto, agreement, nobody confident


def test_hedge_moves_weight_to_the_accurate_agent():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    good = np.where(rng.random(400) < 0.8, y, (y + 1) % 3)
    bad = rng.integers(0, 3, (400, 2))
    actions = np.column_stack([bad[:, 0], good, bad[:, 1]])
    h = fusion.Hedge(3, eta=0.2)
    pred = h.run(actions, np.full((400, 3), 6000), np.ones((400, 3)), y)
    assert h.weights.argmax() == 1
    assert np.mean(pred[200:] == y[200:]) > 0.7


def test_stacking_inputs():
    probs = np.array([[[0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]]])
    present = np.array([[1, 0, 1]])
    assert fusion.stack_probs(probs, present).tolist()[0][3:6] == [0, 0, 0]
    a, c = fusion.decision(probs)
    s = fusion.decision_scores(a, c, present)
    assert np.allclose(s[0], [0, 0, 0.7, 0, 0, 0, 0.5, 0, 0])
    emb, mask = fusion.concat_embeddings([np.ones(4), None, -np.ones(4)], 4)
    assert emb.shape == (1, 12) and mask.tolist() == [[1, 0, 1]] and not emb[0, 4:8].any()
