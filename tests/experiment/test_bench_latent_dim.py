"""`chorus bench --latent-dim M`: the option reaches the model sets (their config and cache key),
the evaluation streams and the runner's ceilings (`models.data.ceiling.ceilings_for` at m > 1)."""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pytest

from node.experiment import tasks
from node.experiment.config import PROFILES, RunOptions
from node.experiment.modelsets import SetSpec, _key, dataset_config, main_key
from node.experiment.report.render import _ceiling_title
from node.experiment.runner import Bench


def test_dataset_config_and_cache_key_carry_latent_dim():
    budget = PROFILES["tiny"].train
    assert dataset_config(0.5, 20, budget).latent_dim == 1
    assert dataset_config(0.5, 20, budget, latent_dim=8).latent_dim == 8
    assert dataset_config(0.5, 20, budget) == dataset_config(0.5, 20, budget, latent_dim=1)
    # latent_dim 1 keeps the key the sets were cached under before the option existed
    before = _key(kind="main", seed=0, alpha=0.5, n_test=20, budget=asdict(budget), data=None)
    assert main_key(0, 0.5, 20, budget) == before == main_key(0, 0.5, 20, budget, latent_dim=1)
    assert main_key(0, 0.5, 20, budget, latent_dim=8) != before
    assert SetSpec("main", "tiny", 0, 0.5, 20, budget).latent_dim == 1


def test_runner_spec_and_stream_carry_latent_dim(tmp_path):
    opts = RunOptions(profile=PROFILES["tiny"], out=tmp_path, latent_dim=8)
    runner = Bench(opts, tmp_path, background=False)
    assert runner.spec(0).latent_dim == 8
    s = runner.stream(0, 40, alpha=0.5)
    assert s.dataset.params["latent_dim"] == 8 and "latent_dim=8" in s.description
    assert s.returns is not None  # the labels were rebuilt with the m = 8 tertiles
    plain = tasks.synthetic_stream(40, 0, 0.5)
    assert "latent_dim" not in plain.dataset.params and plain.returns is not None
    assert not np.array_equal(s.labels, plain.labels) or s.payloads != plain.payloads


def test_ceilings_at_latent_dim_8_come_from_ceilings_for():
    from models.data import ceiling

    stream = tasks.synthetic_stream(40, 0, 0.5, latent_dim=8)
    runner = SimpleNamespace(_ceilings_dims=Bench._ceilings_dims, _logliks={})
    out = Bench._ceilings(runner, 0, stream)
    want = ceiling.ceilings_for(stream.dataset)
    c = out["ceilings"]
    assert c["observation"] == want["observation"]["accuracy"]
    assert c["observation_expected"] == want["observation"]["expected"]
    assert c["latent"] == want["latent"]["accuracy"] and c["late_fusion_cap"] is None
    assert out["ceiling_methods"]["observation"] == want["observation"]["method"]
    assert out["ceiling_methods"]["observation"].startswith("upper bound")
    assert out["dataset"]["latent_dim"] == 8
    title = _ceiling_title("observation", "observation ceiling", out["ceiling_methods"]["observation"])
    assert title.startswith("observation ceiling (upper bound: latent_dim 8, ")
    assert _ceiling_title("latent", "latent oracle", out["ceiling_methods"]["latent"]) == "latent oracle"


def test_ceilings_at_latent_dim_1_have_no_methods():
    stream = tasks.synthetic_stream(30, 0, 0.5)
    runner = SimpleNamespace(_ceilings_dims=Bench._ceilings_dims, _logliks={})
    out = Bench._ceilings(runner, 0, stream)
    assert "ceiling_methods" not in out and "latent_dim" not in out["dataset"]
    assert out["ceilings"]["observation"] is not None


def test_a_run_folder_resumes_only_with_the_same_latent_dim(tmp_path) -> None:
    from node.experiment.checkpoint import run_identity
    from node.experiment.config import RunOptions, get_profile

    base = RunOptions(profile=get_profile("tiny"), out=tmp_path)
    assert "latent_dim" not in run_identity(base)  # earlier runs' run.json still match
    eight = RunOptions(profile=get_profile("tiny"), out=tmp_path, latent_dim=8)
    assert run_identity(eight)["latent_dim"] == 8 and run_identity(eight) != run_identity(base)


def test_report_only_renders_with_the_latent_dim_the_run_was_made_with(tmp_path, monkeypatch) -> None:
    import io
    import json

    from rich.console import Console

    from node.experiment import bench
    from node.experiment.checkpoint import CHECKPOINT, RUN_FILE, run_identity
    from node.experiment.config import RunOptions, get_profile
    from node.experiment.report import render

    run = RunOptions(profile=get_profile("tiny"), out=tmp_path, latent_dim=8)
    (tmp_path / RUN_FILE).write_text(json.dumps(run_identity(run), default=str))
    (tmp_path / CHECKPOINT).write_text(json.dumps({"key": "eval/s0"}) + "\n")
    seen = []

    class Rendered(Exception):
        pass

    def capture(records, opts, *_args):
        seen.append(opts.latent_dim)
        raise Rendered

    monkeypatch.setattr(render, "write_report", capture)
    request = bench.BenchRequest(profile="tiny", out=tmp_path, report_only=True)  # no --latent-dim given
    with pytest.raises(Rendered):
        bench.run_bench(request, console=Console(file=io.StringIO()))
    assert seen == [8]


def test_the_ceilings_table_defines_an_upper_bound_by_its_method() -> None:
    from node.experiment.report.render import _ceilings_section
    from node.experiment.report.results import CEILING_DEFINITIONS

    bound = "upper bound (latent_dim 8): the Bayes decision given the market's and the risk's latents"
    c = {"latent": 0.85, "observation": 0.68, "definitions": CEILING_DEFINITIONS,
         "methods": {"latent": "latent oracle: the Bayes decision given the true latent", "observation": bound}}
    lines = "\n".join(_ceilings_section({"ceilings": c})).splitlines()
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    obs = next(v for k, v in rows.items() if k.startswith("observation ceiling (upper bound"))
    assert bound in obs and CEILING_DEFINITIONS["observation"] not in obs
    assert CEILING_DEFINITIONS["latent"] in rows["latent oracle"]  # an exact ceiling keeps its definition
