"""`chorus bench --n-train N`: the override reaches every model set's budget (and cache key), the
run folder's name and identity, the report-only path and the report's header."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from node.experiment import bench
from node.experiment.checkpoint import CHECKPOINT, RUN_FILE, run_identity
from node.experiment.config import PROFILES, RunOptions
from node.experiment.modelsets import main_key


def test_profile_with_replaces_only_the_training_tasks():
    base = PROFILES["full"]
    more = bench.profile_with("full", n_train=20_000)
    assert more.train.n_train == 20_000 and base.train.n_train == 5_000  # the profile itself untouched
    assert more.train.n_val == base.train.n_val and more.train.trials == base.train.trials
    assert more.eval_tasks == base.eval_tasks and more.seeds == base.seeds
    assert bench.profile_with("full") is base
    assert main_key(0, 0.5, 100, more.train) != main_key(0, 0.5, 100, base.train)


def test_run_id_and_identity_carry_n_train(tmp_path):
    assert bench.BenchRequest(profile="full").run_id() == "full-seed0"
    assert bench.BenchRequest(profile="full", n_train=20_000).run_id() == "full-seed0-ntrain20000"
    base = run_identity(RunOptions(profile=PROFILES["full"], out=tmp_path))
    more = run_identity(RunOptions(profile=bench.profile_with("full", n_train=20_000), out=tmp_path))
    assert base != more and more["profile"]["train"]["n_train"] == 20_000


def test_saved_overrides_round_trip():
    saved = json.loads(json.dumps(bench.profile_with("tiny", seeds=1, n_train=900).to_dict()))
    assert bench._overrides(saved) == {"seeds": 1, "n_train": 900}
    assert bench._overrides(json.loads(json.dumps(PROFILES["tiny"].to_dict()))) == {}


def test_report_only_renders_with_the_n_train_the_run_was_made_with(tmp_path, monkeypatch):
    from rich.console import Console

    from node.experiment.report import render

    run = RunOptions(profile=bench.profile_with("tiny", n_train=900), out=tmp_path)
    (tmp_path / RUN_FILE).write_text(json.dumps(run_identity(run), default=str))
    (tmp_path / CHECKPOINT).write_text(json.dumps({"key": "eval/s0"}) + "\n")
    seen = []

    class Rendered(Exception):
        pass

    def capture(records, opts, *_args):
        seen.append(opts.profile.train.n_train)
        raise Rendered

    monkeypatch.setattr(render, "write_report", capture)
    with pytest.raises(Rendered):
        bench.run_bench(bench.BenchRequest(profile="tiny", out=tmp_path, report_only=True),
                        console=Console(file=io.StringIO()))
    assert seen == [900]


def test_the_report_header_says_what_the_models_were_trained_on():
    from node.experiment.report.render import _trained_on

    assert _trained_on({"train": {"n_train": 20000, "n_val": 1000}}) == \
        "every model trained on 20,000 tasks (1,000 for validation). "
    assert _trained_on({}) == ""


@pytest.mark.parametrize("value", ["99", "abc"])
def test_the_cli_refuses_a_bad_n_train(value):
    from node.cli.main import app

    result = CliRunner().invoke(app, ["bench", "--n-train", value])
    assert result.exit_code == 2 and "--n-train" in result.output
