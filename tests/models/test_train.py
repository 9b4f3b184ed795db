"""Training: determinism, checkpoints that rebuild exactly, every architecture on tiny data, checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data.embed import HashEmbedder
from models.data.splits import DigitsConfig, SyntheticConfig, make_splits
from models.train import (Budget, evaluate_all, evaluate_split, honesty_checks, load_checkpoint, save_checkpoint,
                          steps_per_split, train_agent, train_u)

TINY = Budget(epochs=3, folds=2, patience=2)
TINY_DATA = SyntheticConfig(n_train=300, n_val=150, n_test=300, alpha=1.0)


@pytest.fixture(scope="module")
def splits():
    return make_splits(TINY_DATA, 0, HashEmbedder())


def test_training_is_deterministic_under_a_seed(splits):
    a = train_agent(splits.train, splits.val, 0, TINY, seed=3).model.state_dict()
    b = train_agent(splits.train, splits.val, 0, TINY, seed=3).model.state_dict()
    c = train_agent(splits.train, splits.val, 0, TINY, seed=4).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_round_trip(tmp_path, splits):
    u = train_u(splits.train, splits.val, TINY, seed=0).model
    save_checkpoint(tmp_path / "u.pt", u, {"note": "x"})
    back, meta = load_checkpoint(tmp_path / "u.pt")
    assert meta == {"note": "x"} and back.cfg == u.cfg
    xs = [torch.from_numpy(splits.test.x[k]) for k in splits.test.names] + [torch.from_numpy(splits.test.mask)]
    with torch.no_grad():
        torch.testing.assert_close(back(*xs)[1], u.eval()(*xs)[1], rtol=0, atol=0)


def test_every_architecture_scored_and_none_beats_the_oracle(splits):
    steps = []
    res = evaluate_split(splits, TINY, seed=0, progress=steps.append)
    assert evaluate_split(splits, TINY, seed=0).scores == res.scores  # the same seed gives the same numbers
    assert len(steps) == steps_per_split(3, TINY)
    for arch in ("Uni-best", "M-rules", "M-fixed", "M-learned", "M-learned/dec", "M-regret", "E-16/f32/frozen",
                 "E-16/f32/through", "U", "Oracle"):
        assert 0 <= res.scores[arch]["accuracy"] <= 1 and 0 <= res.scores[arch]["macro_f1"] <= 1
    for arch, s in res.scores.items():
        assert s["accuracy"] <= res.scores["Oracle"]["accuracy"], arch
    assert set(res.models) == {"market", "sentiment", "risk", "m-learned", "m-learned-dec", "e-d16", "u"}


def test_digits_run_through_the_same_suite():
    sp = make_splits(DigitsConfig(), 0)
    res = evaluate_split(sp, TINY, seed=0, ed_variants=((8, "binary", "frozen"),))
    assert "Oracle" not in res.scores and res.scores["U"]["accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert set(res.models) >= {"top_left", "bottom_right", "u"}


def test_evaluate_all_aggregates_over_seeds():
    out = evaluate_all(SyntheticConfig(n_train=200, n_val=100, n_test=150), [0, 1], Budget(epochs=1, folds=2),
                       ed_variants=(), embedder=HashEmbedder())
    assert out["seeds"] == [0, 1] and len(out["per_seed"]["U"]) == 2
    s = out["summary"]["U"]
    assert s["accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in out["per_seed"]["U"]]))
    assert s["accuracy_ci"] >= 0


def _fake(u: float, m_learned: float, m_fixed: float, oracle: float, other: float = 0.5) -> dict:
    rows = {"U": u, "M-learned": m_learned, "M-fixed": m_fixed, "Oracle": oracle, "E-16/f32/frozen": other}
    return {"summary": {k: {"accuracy": v} for k, v in rows.items()},
            "per_seed": {k: [{"accuracy": v}] for k, v in rows.items()}}


def test_honesty_checks():
    good = honesty_checks({0.0: _fake(0.64, 0.63, 0.58, 0.85), 1.0: _fake(0.52, 0.41, 0.38, 0.79)})
    assert [c.passed for c in good] == [True, True, True]
    bad = honesty_checks({0.0: _fake(0.70, 0.63, 0.58, 0.85), 1.0: _fake(0.45, 0.41, 0.38, 0.79, other=0.80)})
    assert [c.passed for c in bad] == [False, False, False]
    assert "E-16/f32/frozen at alpha=1" in bad[2].detail
