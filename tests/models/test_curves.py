"""Learning curves off chain: `models.train.learning_curves` and `chorus models curves`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.train import TRAINING_STEPS, Budget, learning_curves
from node.cli.main import app


@pytest.mark.slow
def test_a_curve_has_every_architecture_at_every_size_with_its_training_cpu() -> None:
    budget = Budget(epochs=3, patience=2, folds=2)
    result = learning_curves([200, 400], [0.0], [0], budget, n_test=200)
    assert [p["n_train"] for p in result["points"]] == [200, 400]
    for p in result["points"]:
        assert {"U", "M-learned", "M-fixed", "Uni-best", "Oracle"} <= set(p["summary"])
        assert all(0.0 <= s["accuracy"] <= 1.0 for s in p["summary"].values())
        assert set(p["cpu_s"]) == set(TRAINING_STEPS)
        assert p["cpu_s"]["agents"] > 0 and p["cpu_s"]["u"] > 0  # both trained, and timed apart


@pytest.mark.slow
def test_a_curve_at_latent_dim_2_with_e_through_trains_on_that_generator() -> None:
    budget = Budget(epochs=2, patience=1, folds=2)
    through = ((16, "f32", "frozen"), (16, "f32", "through"))
    wide = learning_curves([200], [1.0], [0], budget, n_test=200, ed_variants=through, latent_dim=2)
    plain = learning_curves([200], [1.0], [0], budget, n_test=200)
    assert wide["data"] == {"latent_dim": 2} and plain["data"] == {}
    (p,) = wide["points"]
    assert {"E-16/f32/frozen", "E-16/f32/through", "U"} <= set(p["summary"])
    assert "E-16/f32/through" not in plain["points"][0]["summary"]
    # another generator, so another oracle on the same seed
    assert p["summary"]["Oracle"] != plain["points"][0]["summary"]["Oracle"]


def test_the_cli_refuses_sizes_it_cannot_train_on(tmp_path: Path) -> None:
    runner = CliRunner()
    for bad in ("many", "50", ""):
        out = runner.invoke(app, ["models", "curves", "--sizes", bad, "--json", str(tmp_path / "c.json")])
        assert out.exit_code == 2 and "--sizes" in out.output, (bad, out.output)
    assert not (tmp_path / "c.json").exists()


def test_the_tables_list_the_e_d_rows_in_their_place() -> None:
    """`chorus models curves` and `chorus train` print every architecture: the E-d rows (named by
    their d, dtype and mode) after the ARCH_ORDER rows, the Oracle last."""
    from node.cli.models import arch_rows

    summary = {n: {} for n in ("Oracle", "U", "E-16/f32/through", "M-learned", "E-16/f32/frozen", "Uni-best", "other")}
    assert arch_rows(summary) == ["Uni-best", "M-learned", "U", "E-16/f32/frozen", "E-16/f32/through", "other", "Oracle"]
    assert arch_rows({"U": {}}) == ["U"]
