"""The width sweep (node.experiment.width): its structure, determinism, cache reuse, U at widths 1
and 2 (head counts that divide d_model), and the rendered section's conclusion rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.data.embed import HashEmbedder
from models.data.splits import SyntheticConfig, make_splits
from models.nets import UConfig
from models.train import SEARCH, Budget, heads_for, train_u
from node.experiment import width as W

BUDGET = Budget(epochs=2, trials=1, patience=2)
SMALL = {"widths": (1, 2), "n_train": 200, "n_val": 60, "n_test": 100, "budget": BUDGET, "embedder": HashEmbedder()}


def _figures(section: dict) -> dict:
    """Everything but the CPU seconds (the only part that varies between fresh runs)."""
    return {k: v for k, v in section.items() if k not in ("cpu_s", "cpu_s_total")}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("width")
    return root, W.width_sweep([0, 1], root=root, **SMALL)


def test_structure(sweep):
    _, s = sweep
    assert s["latent_dim"] == 8 and s["widths"] == [1, 2] and s["seeds"] == [0, 1] and s["n_eval_tasks"] == 100
    assert s["budget"]["trials"] == 1 and s["ceiling"] is None
    for model in W.MODELS:
        assert [r["width"] for r in s["rows"][model]] == [1, 2]
        for r in s["rows"][model]:
            assert 0.0 <= r["accuracy"] <= 1.0 and len(r["per_seed"]) == 2
            lo, hi = r["accuracy_ci"]
            assert lo <= r["accuracy"] <= hi
            assert r["accuracy"] == pytest.approx(np.mean(r["per_seed"]))
            assert isinstance(r["constant"], bool)
        # one paired difference per width but the widest, against the widest
        assert [(d["width"], d["vs_width"]) for d in s["diffs"][model]] == [(1, 2)]
        d = s["diffs"][model][0]
        assert d["diff"] == pytest.approx(s["rows"][model][0]["accuracy"] - s["rows"][model][1]["accuracy"])
        assert set(s["cpu_s"][model]) == {"1", "2"} and all(v > 0 for v in s["cpu_s"][model].values())
    # U's LayerNorms at d_model 1 output their bias alone: U then predicts one class (the caveat rendered)
    assert s["rows"]["U"][0]["constant"]
    u, e = s["tuning"]["U"]["1"][0], s["tuning"]["E-through"]["2"][0]
    assert (u["width"], u["n_heads"], e["width"]) == (1, 1, 2)
    assert "hidden" not in u["hp"] and "hidden" in e["hp"]  # U's width is fixed, E-through's MLP width tuned
    json.dumps(s)  # JSON-able as it is


def test_cache_is_reused_and_a_second_run_is_identical(sweep, tmp_path):
    root, first = sweep
    files = sorted((root / "width").glob("*.json"))
    assert len(files) == 4  # 2 seeds x 2 widths
    stamps = [f.stat().st_mtime_ns for f in files]
    calls = []
    again = W.width_sweep([0, 1], root=root, progress=calls.append, **SMALL)
    assert again == first and all(c.endswith("cached") for c in calls) and len(calls) == 4
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert not list((root / "width").glob("*.tmp"))
    # another parameter is another record
    other = W.width_sweep([0], root=root, **{**SMALL, "alpha": 1.0, "widths": (2,)})
    assert len(list((root / "width").glob("*.json"))) == 5 and other["alpha"] == 1.0


def test_fresh_runs_are_deterministic(sweep, tmp_path):
    _, first = sweep
    fresh = W.width_sweep([0, 1], root=tmp_path, **SMALL)
    assert _figures(fresh) == _figures(first)
    a = json.loads(next((tmp_path / "width").glob("*-s0-w1-*.json")).read_text())
    b = json.loads(next((sweep[0] / "width").glob("*-s0-w1-*.json")).read_text())
    assert a["models"]["U"]["pred"] == b["models"]["U"]["pred"]


def test_u_trains_at_widths_1_and_2():
    assert [heads_for(w) for w in (1, 2, 3, 4, 6, 16, 64, 96)] == [1, 2, 3, 4, 3, 4, 4, 4]
    splits = make_splits(SyntheticConfig(n_train=120, n_val=40, n_test=20, alpha=0.5, latent_dim=8), 0,
                         HashEmbedder())
    for w in (1, 2):
        fit = train_u(splits.train, splits.val, Budget(epochs=2, trials=1, patience=2), 0, width=w)
        assert fit.model.cfg.d_model == w and fit.model.cfg.n_heads == w
        assert fit.model.blocks[0].attn.qkv.out_features == 3 * w
        assert np.isfinite(fit.val_loss) and fit.epochs >= 1
    # without width, d_model is the setting's hidden with the default heads: every existing U's config
    # (so its weights, checkpoint and ONNX file) is what it was before `width` existed
    assert all(UConfig(d_model=hp["hidden"], n_heads=heads_for(hp["hidden"])) == UConfig(d_model=hp["hidden"])
               for hp in SEARCH)
    fit = train_u(splits.train, splits.val, Budget(epochs=1, trials=1), 0)
    assert fit.model.cfg.d_model == 64 and fit.model.cfg.n_heads == 4


def _section(ci_u: list[float], ci_e: list[float]) -> dict:
    row = lambda w, acc: {"width": w, "accuracy": acc, "accuracy_ci": [acc - 0.01, acc + 0.01], "per_seed": [acc]}
    return {"latent_dim": 8, "alpha": 0.5, "widths": [1, 64], "seeds": [0], "n_train": 5000, "n_eval_tasks": 5000,
            "rows": {"U": [row(1, 0.40) | {"constant": True}, row(64, 0.50)],
                     "E-through": [row(1, 0.55), row(64, 0.56)]},
            "diffs": {"U": [{"width": 1, "vs_width": 64, "diff": -0.10, "ci": ci_u}],
                      "E-through": [{"width": 1, "vs_width": 64, "diff": -0.01, "ci": ci_e}]},
            "cpu_s": {"U": {"1": 3.0, "64": 12.0}, "E-through": {"1": 2.0, "64": 4.0}}, "cpu_s_total": 21.0,
            "latent_oracle": {"accuracy": 0.85, "accuracy_ci": [0.84, 0.86]}, "ceiling": None}


def test_render_states_an_effect_only_where_an_interval_excludes_zero():
    text = "\n".join(W.render_width(_section([-0.12, -0.08], [-0.03, 0.01])))
    assert text.startswith("## Width at m = 8 (squeezing)")
    assert "| 1 | 40.0 [39.0, 41.0] ‡ | -10.0 [-12.0, -8.0] | 55.0 [54.0, 56.0] | -1.0 [-3.0, +1.0] |" in text
    assert "| 64 | 50.0 [49.0, 51.0] | reference | 56.0 [55.0, 57.0] | reference |" in text
    assert "U at width 1 is less accurate than at width 64 by 10.0 points" in text
    assert "‡ The model predicts one class" in text and "predicts one class on every task)." in text
    assert "E-through at width 1" not in text and "no width effect is resolved" not in text
    assert "U 3.0, 12.0; E-through 2.0, 4.0" in text and "LayerNorm" in text

    none = "\n".join(W.render_width(_section([-0.2, 0.01], [-0.03, 0.01])))
    assert "No interval excludes zero: no width effect is resolved between widths 1 and 64." in none
    assert "accurate than at width" not in none
    plain = _section([-0.12, -0.08], [-0.03, 0.01])
    plain["rows"]["U"][0]["constant"] = False
    assert "‡" not in "\n".join(W.render_width(plain))


def test_render_of_an_empty_section():
    assert W.render_width({"latent_dim": 8, "rows": {}})[-2] == "Not run."


@pytest.mark.parametrize("profile", ["tiny", "quick", "full"])
def test_the_bench_plans_the_width_sweep_only_where_the_profile_asks(tmp_path, profile):
    from node.experiment.config import RunOptions, get_profile
    from node.experiment.runner import Bench

    opts = RunOptions(profile=get_profile(profile), out=tmp_path)
    sessions = Bench(opts, tmp_path, background=False).sessions()
    width = [s for s in sessions if s.name == "width"]
    assert bool(width) == (opts.profile.width_seeds > 0) == (profile == "full")
    if width:  # off chain, and first in plan order so that it runs beside the chain sessions
        assert sessions[0] is width[0] and width[0].specs is None and width[0].defer and width[0].units == ["width"]
    no_sweeps = RunOptions(profile=get_profile(profile), out=tmp_path, sweeps=False)
    assert not [s for s in Bench(no_sweeps, tmp_path, background=False).sessions() if s.name == "width"]


def test_the_report_renders_the_section_from_results(sweep):
    from node.experiment.report.render import _width_section

    _, section = sweep
    lines = _width_section({"width": section})
    assert lines[0] == f"## Width at m = {section['latent_dim']} (squeezing)"
    assert lines == W.render_width(section)
    assert _width_section({"width": None}) == [] and _width_section({}) == []
