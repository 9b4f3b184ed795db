"""`plot_learning_curves` on small `learning_curves`-shaped results, and `chorus models curves --plot`'s
wiring with the training replaced (no model is trained here)."""

from __future__ import annotations

import copy
import sys
import types

import pytest
from typer.testing import CliRunner

from node.experiment.report.plots import plot_learning_curves

ARCHS = ("Uni-best", "M-rules", "M-fixed", "M-learned", "M-learned/dec", "M-regret", "E-32/f32/frozen", "U")


def _point(alpha: float, n: int, oracle: bool = True) -> dict:
    base = 0.4 + 0.1 * alpha + 0.05 * (n / 1000) ** 0.5
    summary = {a: {"accuracy": min(0.99, base + 0.01 * i), "accuracy_ci": 0.01 + 0.002 * i,
                   "macro_f1": base, "macro_f1_ci": 0.01} for i, a in enumerate(ARCHS)}
    if oracle:
        summary["Oracle"] = {"accuracy": 0.97, "accuracy_ci": 0.003, "macro_f1": 0.97, "macro_f1_ci": 0.003}
    return {"alpha": alpha, "n_train": n, "summary": summary,
            "cpu_s": {"agents": 0.5 * n / 100, "stackers": 0.1 * n / 100, "e-d": 0.2 * n / 100, "u": n / 100}}


def _result(sizes=(300, 1000, 3000), alphas=(0.0, 1.0), oracle: bool = True) -> dict:
    return {"sizes": list(sizes), "alphas": list(alphas), "seeds": [0, 1], "n_test": 500,
            "budget": {"epochs": 1}, "points": [_point(a, n, oracle) for a in alphas for n in sizes]}


def _read_png(path):
    import matplotlib.image as mpimg

    assert path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    return img


def test_writes_a_png(tmp_path):
    out = tmp_path / "curves.png"
    plot_learning_curves(_result(), out)
    _read_png(out)


def test_one_size_one_alpha_and_no_oracle(tmp_path):
    out = tmp_path / "one.png"
    plot_learning_curves(_result(sizes=(1000,), alphas=(0.5,), oracle=False), out)
    _read_png(out)


def test_without_cpu_and_with_gaps(tmp_path):
    res = _result()
    for p in res["points"]:
        del p["cpu_s"]
    res["points"][0]["summary"]["U"]["accuracy"] = float("nan")
    del res["points"][1]["summary"]["M-regret"]["accuracy_ci"]
    out = tmp_path / "no-cpu.png"
    plot_learning_curves(res, out)
    _read_png(out)


def test_file_name_without_extension_is_kept(tmp_path):
    out = tmp_path / "curves"
    plot_learning_curves(_result(), out)
    _read_png(out)
    assert not (tmp_path / "curves.png").exists()


@pytest.mark.parametrize(("break_it", "message"), [
    (lambda r: r["points"][1].pop("summary"), "lacks 'summary'"),
    (lambda r: r.pop("points"), "'points'"),
    (lambda r: r["points"].clear(), "'points'"),
    (lambda r: r["points"][0]["summary"]["U"].pop("accuracy"), "summary['U'] lacks 'accuracy'"),
    (lambda r: r["points"][0].update(n_train=0), "'n_train'"),
    (lambda r: r["points"][0].update(summary=[]), "'summary' must be"),
])
def test_malformed_result_is_a_clear_value_error(tmp_path, break_it, message):
    res = copy.deepcopy(_result())
    break_it(res)
    out = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        plot_learning_curves(res, out)
    assert not out.exists()


def test_not_a_dict_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="points"):
        plot_learning_curves([], tmp_path / "x.png")  # type: ignore[arg-type]


FAKE_KWARGS: list[dict] = []


@pytest.fixture()
def fake_training(monkeypatch):
    """`models.train` replaced by a stub whose `learning_curves` returns a small result (and counts calls:
    the sizes of each; the keyword arguments of each in `FAKE_KWARGS`)."""
    calls = []
    FAKE_KWARGS.clear()

    def learning_curves(sizes, alphas, seeds, budget, n_test=2000, progress=None, **kwargs):
        calls.append(sizes)
        FAKE_KWARGS.append(kwargs)
        if progress is not None:
            progress("stub")
        res = _result(sizes=sizes, alphas=alphas)
        res["seeds"], res["n_test"] = list(seeds), n_test
        return res

    stub = types.ModuleType("models.train")
    stub.ARCH_ORDER = ARCHS
    stub.QUICK, stub.FULL, stub.DEFAULT_ED = "quick", "full", ((16, "f32", "frozen"), (16, "f32", "through"))
    stub.learning_curves = learning_curves
    monkeypatch.setitem(sys.modules, "models.train", stub)
    return calls


def _invoke(*args):
    from node.cli.main import app

    return CliRunner().invoke(app, ["models", "curves", "--sizes", "300,1000", "--alphas", "0,1", *args])


def test_cli_plot_option_writes_the_png(tmp_path, fake_training):
    out = tmp_path / "new" / "dir" / "curves.png"
    result = _invoke("--plot", str(out))
    assert result.exit_code == 0, result.output
    assert fake_training == [[300, 1000]]
    assert "plot written to" in result.output
    _read_png(out)


@pytest.mark.parametrize("where", ["under-a-file", "a-directory"])
def test_cli_bad_plot_path_is_a_usage_error_before_training(tmp_path, fake_training, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    out = blocker / "sub" / "curves.png" if where == "under-a-file" else tmp_path
    result = _invoke("--plot", str(out))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # typer's usage error, no traceback
    assert "--plot" in result.output and "Traceback" not in result.output
    assert fake_training == []  # refused before any training


def test_cli_plot_failure_after_training_is_a_clean_exit(tmp_path, fake_training, monkeypatch):
    import node.experiment.report.plots as plots

    def refuse(result, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(plots, "plot_learning_curves", refuse)
    result = _invoke("--plot", str(tmp_path / "curves.png"), "--json", str(tmp_path / "curves.json"))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "could not write" in result.output and "Permission denied" in result.output
    assert (tmp_path / "curves.json").exists()  # the figures are kept even when the plot fails


def test_cli_latent_dim_and_e_through_reach_the_curves(tmp_path, fake_training):
    result = _invoke("--latent-dim", "8", "--e-through")
    assert result.exit_code == 0, result.output
    (kw,) = FAKE_KWARGS
    assert kw["latent_dim"] == 8
    assert kw["ed_variants"] == ((16, "f32", "frozen"), (16, "f32", "through"))
    assert "latent dim 8" in result.output


def test_cli_defaults_are_the_original_generator_without_e_through(tmp_path, fake_training):
    assert _invoke().exit_code == 0
    (kw,) = FAKE_KWARGS
    assert "latent_dim" not in kw and kw["ed_variants"] == ((16, "f32", "frozen"),)


@pytest.mark.parametrize("bad", ["0", "17"])
def test_cli_latent_dim_out_of_range_is_refused_before_training(fake_training, bad):
    result = _invoke("--latent-dim", bad)
    assert result.exit_code == 2 and "--latent-dim" in result.output
    assert fake_training == []
