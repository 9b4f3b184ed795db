"""The `chorus train` / `chorus export` / `chorus models` commands are registered and parse options."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from models.data.loader import load_tasks
from node.cli.main import app

runner = CliRunner()


def test_commands_are_registered():
    out = runner.invoke(app, ["--help"]).output
    assert "train" in out and "export" in out and "models" in out
    sub = runner.invoke(app, ["models", "--help"]).output
    assert "compare" in sub and "sample" in sub and "list" in sub


def test_sample_prints_payloads_and_writes_loader_files(tmp_path):
    res = runner.invoke(app, ["models", "sample", "-n", "2", "--seed", "3"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.strip().splitlines()]
    assert len(lines) == 2 and all(p["schema"] == "chorus.task/1" and "label" not in p for p in lines)
    res = runner.invoke(app, ["models", "sample", "-n", "5", "--out", str(tmp_path / "t.csv")])
    assert res.exit_code == 0, res.output
    assert len(load_tasks(tmp_path / "t.csv")) == 5


def test_bad_options_are_refused():
    assert runner.invoke(app, ["models", "compare", "--ed", "16:f64:frozen"]).exit_code == 2
    assert runner.invoke(app, ["models", "compare", "--alphas", "0,2"]).exit_code == 2
    assert runner.invoke(app, ["models", "compare", "--dataset", "weather"]).exit_code == 2
    assert runner.invoke(app, ["train", "--dtype", "f8", "--no-compare"]).exit_code == 2
