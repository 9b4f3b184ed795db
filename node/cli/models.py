"""`chorus train`, `chorus export` and the `chorus models` group (compare, list, sample, register).

    chorus train --quick          # train the deployed models, then print the alpha 0/1 comparison
    chorus export                 # ONNX + parity + u-int8 + manifest entries
    chorus models compare --alphas 0,0.5,1 --seeds 5 --full
    chorus models compare --dataset digits
    chorus models compare --dataset tasks.parquet
    chorus models sample -n 2     # task payloads as JSON
    chorus models register        # every embedding space agents publish in -> ModelRegistry

torch, onnx and the models package are imported inside the commands so `chorus --help` stays fast.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import typer

models_app = typer.Typer(help="Benchmark data, model comparison and the model manifest.", no_args_is_help=True)


def _budget(quick: bool, full: bool):
    from models.train import FULL, QUICK

    if quick and full:
        raise typer.BadParameter("choose --quick or --full")
    return FULL if full else QUICK


def _parse_alphas(text: str) -> list[float]:
    try:
        alphas = [float(a) for a in text.split(",") if a.strip()]
    except ValueError:
        raise typer.BadParameter(f"--alphas must be comma-separated numbers, got {text!r}") from None
    if not alphas or any(not 0 <= a <= 1 for a in alphas):
        raise typer.BadParameter("--alphas must be numbers in [0, 1]")
    return alphas


def _dataset_cfg(dataset: str, alpha: float, n_train: int | None, missing_rate: float, redundancy: float,
                 shift: float, noise: float):
    from models.data.splits import DigitsConfig, FileConfig, SyntheticConfig

    if dataset == "synthetic":
        kw = {"n_train": n_train} if n_train else {}
        return SyntheticConfig(alpha=alpha, missing_rate=missing_rate, redundancy=redundancy, shift=shift,
                               noise=noise, **kw)
    if dataset == "digits":
        return DigitsConfig()
    if Path(dataset).suffix.lower() in (".csv", ".parquet", ".pq"):
        return FileConfig(path=dataset)
    raise typer.BadParameter(f"--dataset must be synthetic, digits or a .csv/.parquet file, got {dataset!r}")


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), transient=False)


def _n_agents(cfg) -> int:
    from models.data.digits import REGIONS

    return len(REGIONS[cfg.regions]) if getattr(cfg, "kind", "") == "digits" else 3


def _parse_ed(text: str) -> tuple[tuple[int, str, str], ...]:
    from node.protocol.codec import VECTOR_DTYPES

    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in VECTOR_DTYPES or parts[2] not in ("frozen", "through"):
            raise typer.BadParameter(f"--ed item {item!r} is not d:dtype:mode (dtype in {VECTOR_DTYPES}, "
                                     "mode frozen or through)")
        out.append((int(parts[0]), parts[1], parts[2]))
    return tuple(out)


def run_compare(alphas: list[float], seeds: list[int], budget, base_cfg, progress=None, task=None,
                ed_variants=None) -> dict[float, dict]:
    """`evaluate_all` per alpha (alpha ignored for non-synthetic data)."""
    from dataclasses import replace

    from models.train import DEFAULT_ED, evaluate_all

    def step(msg: str) -> None:
        if progress is not None:
            progress.update(task, advance=1, description=msg)

    results = {}
    for alpha in alphas:
        cfg = replace(base_cfg, alpha=alpha) if getattr(base_cfg, "kind", "") == "synthetic" else base_cfg
        results[alpha] = evaluate_all(cfg, seeds, budget, ed_variants if ed_variants is not None else DEFAULT_ED,
                                      progress=lambda m, a=alpha: step(f"alpha={a:g}: {m}"))
    return results


def arch_rows(summary: dict[str, Any]) -> list[str]:
    """The rows of a summary in report order: the architectures of `models.train.ARCH_ORDER`, the
    E-d variants (named `E-<d>/<dtype>/<mode>`), anything else, then the Oracle."""
    from models.train import ARCH_ORDER

    rows = [a for a in ARCH_ORDER if a in summary]
    rows += sorted(a for a in summary if a.startswith("E-") and a not in rows)
    rows += [a for a in summary if a not in rows and a != "Oracle"]
    return rows + ["Oracle"] * ("Oracle" in summary)


def print_results(results: dict[float, dict], synthetic: bool = True) -> bool:
    """The comparison table and the honesty checks; returns whether every check passed."""
    from rich.console import Console
    from rich.table import Table

    from models.train import honesty_checks

    console = Console()
    first = next(iter(results.values()))
    archs = arch_rows(first["summary"])
    n_seeds = len(first["seeds"])
    table = Table(title=f"Test accuracy / macro-F1 (%), mean ± 95% CI over {n_seeds} seed(s)")
    table.add_column("architecture")
    for alpha in results:
        label = f"alpha={alpha:g}" if synthetic else first["dataset"]["kind"]
        table.add_column(f"{label} acc", justify="right")
        table.add_column(f"{label} F1", justify="right")
    for arch in archs:
        cells = []
        for res in results.values():
            s = res["summary"].get(arch)
            if s is None:
                cells += ["-", "-"]
                continue
            cells.append(f"{100 * s['accuracy']:.1f} ± {100 * s['accuracy_ci']:.1f}")
            cells.append(f"{100 * s['macro_f1']:.1f}")
        table.add_row(arch, *cells, style="bold" if arch in ("U", "Oracle") else None)
    console.print(table)
    checks = honesty_checks(results) if synthetic else []
    for c in checks:
        mark = "[green]PASS[/green]" if c.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {c.name}: {c.detail}")
    return all(c.passed for c in checks)


def _save_json(path: Path | None, payload: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")


def train(
    quick: bool = typer.Option(False, "--quick", help="The quick profile (CI, under 5 minutes on 2 cores)."),
    full: bool = typer.Option(False, "--full", help="The full profile: more epochs, 3 trials, 5 folds."),
    alpha: float = typer.Option(0.5, help="Synergy of the data the deployed models are trained on."),
    seed: int = typer.Option(0, help="Seed of the deployed models' data and training."),
    dtype: str = typer.Option("f32", help="Element type the agents publish embeddings in (f32, f16, i8, binary)."),
    compare: bool = typer.Option(True, "--compare/--no-compare", help="Also run the alpha comparison and checks."),
    alphas: str = typer.Option("0,1", help="Alphas of the comparison."),
    seeds: int = typer.Option(3, help="Seeds of the comparison."),
    json_out: Path = typer.Option(None, "--json", help="Write the comparison results here."),
) -> None:
    """Train the deployed models (agents, M-learned, E-d, U) and print the architecture comparison."""
    from models.data.splits import SyntheticConfig
    from node.protocol.codec import VECTOR_DTYPES
    from models.train import AGENT_DIM, CHECKPOINT_DIR, steps_per_split, train_deployables

    if dtype not in VECTOR_DTYPES:
        raise typer.BadParameter(f"--dtype must be one of {VECTOR_DTYPES}")
    budget = _budget(quick, full)
    alpha_list = _parse_alphas(alphas) if compare else []
    start = time.perf_counter()
    per_split = steps_per_split(3, budget)
    total = steps_per_split(3, budget, ((AGENT_DIM, dtype, "frozen"),)) + len(alpha_list) * seeds * per_split
    with _progress() as progress:
        task = progress.add_task("training", total=total)
        res = train_deployables(SyntheticConfig(alpha=alpha), seed, budget, ed_dtype=dtype,
                                progress=lambda m: progress.update(task, advance=1, description=f"deployed: {m}"))
        results = run_compare(alpha_list, list(range(seeds)), budget, SyntheticConfig(), progress, task) if compare else {}
    typer.echo(f"checkpoints in {CHECKPOINT_DIR}: " + ", ".join(sorted(res.models)))
    typer.echo("deployed models, test accuracy (%): " + ", ".join(
        f"{k} {100 * v['accuracy']:.1f}" for k, v in res.scores.items()))
    ok = True
    if results:
        ok = print_results(results)
        _save_json(json_out, {str(a): r for a, r in results.items()})
    typer.echo(f"chorus train finished in {time.perf_counter() - start:.0f} s")
    if not ok:
        raise typer.Exit(1)


def export(
    int8: bool = typer.Option(True, "--int8/--no-int8", help="Also write u-int8 (dynamic int8 quantisation)."),
) -> None:
    """Export every checkpoint to ONNX, check parity with torch, and update the manifest."""
    from rich.console import Console
    from rich.table import Table

    from models.export import INT8_MAX_ACC_LOSS, PARITY_ATOL, export_all

    reports = export_all(int8=int8)
    table = Table(title=f"Exported models (parity: |onnxruntime - torch| <= {PARITY_ATOL:g}; "
                        f"int8: accuracy loss <= {100 * INT8_MAX_ACC_LOSS:.0f} pt)")
    for col in ("name", "model id", "parity", "notes"):
        table.add_column(col)
    for r in reports:
        parity = f"{r.max_abs_diff:.1e}" if r.max_abs_diff is not None else "-"
        notes = ""
        if "accuracy_loss" in r.extra:
            notes = (f"accuracy f32 {100 * r.extra['accuracy_f32']:.2f} -> int8 {100 * r.extra['accuracy_int8']:.2f} "
                     f"({-100 * r.extra['accuracy_loss']:+.2f} pt)")
        table.add_row(r.name, "0x" + r.sha256[:16] + "...", parity, notes)
    Console().print(table)


@models_app.command("compare")
def compare_cmd(
    alphas: str = typer.Option("0,1", help="Comma-separated synergy values (synthetic data only)."),
    seeds: int = typer.Option(3, help="Number of seeds."),
    quick: bool = typer.Option(False, "--quick"),
    full: bool = typer.Option(False, "--full"),
    dataset: str = typer.Option("synthetic", help="synthetic, digits, or a .csv/.parquet file of tasks."),
    n_train: int = typer.Option(None, help="Training tasks per seed (synthetic)."),
    missing_rate: float = typer.Option(0.0, help="Missing-modality rate (synthetic)."),
    redundancy: float = typer.Option(0.0, help="Cross-modal redundancy (synthetic)."),
    shift: float = typer.Option(0.0, help="Train/test regime shift (synthetic)."),
    noise: float = typer.Option(1.0, help="Observation noise multiplier (synthetic)."),
    ed: str = typer.Option("16:f32:frozen,16:f32:through",
                           help="E-d variants as d:dtype:mode (mode frozen or through), comma-separated."),
    json_out: Path = typer.Option(None, "--json", help="Write the results here."),
) -> None:
    """Train and score every architecture on the same splits; print the table and the checks."""
    from models.train import steps_per_split

    budget = _budget(quick, full)
    ed_variants = _parse_ed(ed)
    base = _dataset_cfg(dataset, 0.0, n_train, missing_rate, redundancy, shift, noise)
    synthetic = base.kind == "synthetic"
    alpha_list = _parse_alphas(alphas) if synthetic else [0.0]
    start = time.perf_counter()
    with _progress() as progress:
        total = len(alpha_list) * seeds * steps_per_split(_n_agents(base), budget, ed_variants)
        task = progress.add_task("comparing", total=total)
        results = run_compare(alpha_list, list(range(seeds)), budget, base, progress, task, ed_variants)
    ok = print_results(results, synthetic)
    _save_json(json_out, {str(a): r for a, r in results.items()})
    typer.echo(f"finished in {time.perf_counter() - start:.0f} s")
    if not ok:
        raise typer.Exit(1)


@models_app.command("list")
def list_cmd() -> None:
    """The manifest: every exported model with its id, width and type."""
    from rich.console import Console
    from rich.table import Table

    from models.manifest import load_manifest

    entries = load_manifest()
    if not entries:
        typer.echo("no models exported yet (run `chorus train --quick && chorus export`)")
        return
    table = Table()
    for col in ("name", "model id", "dim", "dtype", "inputs", "outputs"):
        table.add_column(col)
    for e in entries.values():
        table.add_row(e.name, "0x" + e.sha256[:16] + "...", str(e.dim), e.dtype, ", ".join(e.inputs), ", ".join(e.outputs))
    Console().print(table)


@models_app.command("sample")
def sample_cmd(
    n: int = typer.Option(1, "-n", help="How many tasks."),
    seed: int = typer.Option(0),
    alpha: float = typer.Option(0.5),
    missing_rate: float = typer.Option(0.0),
    out: Path = typer.Option(None, help="Write the tasks with labels to this .csv/.parquet instead."),
) -> None:
    """Generate tasks: print their JSON payloads, or save them with labels in the loader's format."""
    from models.data.loader import save_tasks
    from models.data.synthetic import generate, to_payload

    ds = generate(n, seed, alpha=alpha, missing_rate=missing_rate)
    if out is not None:
        save_tasks(ds, out)
        typer.echo(f"wrote {n} tasks to {out}")
        return
    for i in range(n):
        typer.echo(json.dumps(to_payload(ds[i])))


def embedding_entries(entries: dict) -> list:
    """Manifest entries whose vectors agents publish or commit to: every model with an `embedding`
    output (the agent models, MiniLM, U), sorted by name."""
    return sorted((e for e in entries.values() if "embedding" in e.outputs), key=lambda e: e.name)


def register_models(contracts, entries: list) -> list[dict]:
    """Register each entry's model id, dim, dtype and name in ModelRegistry, skipping those already
    there; one row per entry (status registered / already registered / mismatch)."""
    from models.manifest import DTYPES

    rows = []
    for e in entries:
        row = {"name": e.name, "model_id": "0x" + e.sha256, "dim": e.dim, "dtype": e.dtype, "gas": None}
        on_chain = contracts.model(e.model_id)
        if on_chain.dim:
            same = (on_chain.dim, on_chain.dtype) == (e.dim, DTYPES.index(e.dtype))
            row["status"] = "already registered" if same else \
                f"MISMATCH: on chain dim {on_chain.dim} dtype {DTYPES[on_chain.dtype]}"
        else:
            result = contracts.register_model(e.model_id, e.dim, DTYPES.index(e.dtype), e.name[:64])
            row.update(status="registered", gas=result.gas_used)
        rows.append(row)
    return rows


@models_app.command("register")
def register_cmd(
    only: list[str] = typer.Option(None, "--only", help="Register just this manifest entry (repeatable)."),
    deployment: Path = typer.Option(None, "--deployment", help="Deployment JSON (default .chorus/devnet.json)."),
    dev_key_index: int = typer.Option(None, "--dev-key-index", help="Send with Anvil dev key N (default 0 on a devnet)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Register in ModelRegistry every embedding space agents publish in (market, sentiment, risk,
    minilm-f32/int8, u, u-int8): model id = sha256 of the ONNX file, dim, dtype, name. Idempotent."""
    from rich.console import Console
    from rich.table import Table

    from models.manifest import load_manifest
    from node.cli.task import _contracts  # the deployment + key resolution `task submit` uses
    from node.protocol.errors import ChorusError

    entries = embedding_entries(load_manifest())
    if only:
        unknown = sorted(set(only) - {e.name for e in entries})
        if unknown:
            raise typer.BadParameter(f"not embedding models in the manifest: {', '.join(unknown)}")
        entries = [e for e in entries if e.name in only]
    if not entries:
        typer.echo("no embedding models in the manifest (run `make setup`)", err=True)
        raise typer.Exit(1)
    try:
        contracts, _, _ = _contracts(deployment, dev_key_index, signing=True)
        rows = register_models(contracts, entries)
    except ChorusError as exc:
        typer.echo(f"register failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        table = Table(title="ModelRegistry")
        for col in ("name", "model id", "dim", "dtype", "status", "gas"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["name"], r["model_id"][:18] + "...", str(r["dim"]), r["dtype"], r["status"],
                          "" if r["gas"] is None else str(r["gas"]))
        Console().print(table)
    if any(r["status"].startswith("MISMATCH") for r in rows):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("export")(export)
    app.add_typer(models_app, name="models")


@models_app.command("curves")
def curves_cmd(
    sizes: str = typer.Option("1000,3000,10000,30000", help="Comma-separated training-set sizes (tasks)."),
    alphas: str = typer.Option("0,0.5,1", help="Comma-separated synergy values."),
    seeds: int = typer.Option(2, min=1, help="Seeds per point (each: its own data and models)."),
    n_test: int = typer.Option(2000, min=100, help="Test tasks per seed."),
    full: bool = typer.Option(False, "--full", help="The full tuning budget (4 settings, 80 epochs) instead of the quick one."),
    latent_dim: int = typer.Option(1, "--latent-dim", min=1, max=16, metavar="M",
                                   help="Latent dimension per modality of the synthetic market (1: the original "
                                        "generator; 2-16: bilinear cross-modal terms, see docs/experiment.md)."),
    e_through: bool = typer.Option(False, "--e-through",
                                   help="Also train E-through (the agents' encoders trained end to end through the "
                                        "16-dim bottleneck) at each point; its CPU seconds count under e-d."),
    json_out: Path = typer.Option(None, "--json", help="Write the curves here (JSON)."),
    plot: Path = typer.Option(None, "--plot", metavar="FILE",
                              help="Draw the curves here (PNG): a panel per alpha, CPU seconds below."),
) -> None:
    """Learning curves, off chain: accuracy against training tasks for every architecture at each
    synergy, with the CPU seconds training took (agents, stackers, E-d heads, U). The cost of
    unification shows as U's accuracy and CPU against the modular architectures' at each size;
    with --latent-dim 8, the curve says how many training tasks the bilinear terms need."""
    from rich.console import Console
    from rich.table import Table

    from models.train import DEFAULT_ED, learning_curves

    try:
        size_list = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"--sizes must be comma-separated integers, got {sizes!r}") from None
    if not size_list or min(size_list) < 100:
        raise typer.BadParameter("--sizes needs at least one size, each >= 100 tasks")
    alpha_list = _parse_alphas(alphas)
    budget = _budget(False, full)
    if plot is not None:  # before training: a bad path must not cost the run
        if any(d.exists() and not d.is_dir() for d in (plot.parent, *plot.parent.parents)):
            raise typer.BadParameter(f"cannot create the directory {str(plot.parent)!r}: a file is in the way",
                                     param_hint="--plot")
        try:
            plot.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise typer.BadParameter(f"cannot create the directory {str(plot.parent)!r}: {e.strerror or e}",
                                     param_hint="--plot") from None
        if plot.is_dir():
            raise typer.BadParameter(f"{str(plot)!r} is a directory, not a file", param_hint="--plot")
        if not os.access(plot.parent, os.W_OK | os.X_OK) or (plot.exists() and not os.access(plot, os.W_OK)):
            raise typer.BadParameter(f"{str(plot)!r} is not writable", param_hint="--plot")
    start = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("curves", total=None)
        result = learning_curves(size_list, alpha_list, list(range(seeds)), budget, n_test=n_test,
                                 ed_variants=DEFAULT_ED if e_through else DEFAULT_ED[:1],  # E-d16 frozen first
                                 progress=lambda msg: progress.update(task, description=msg[:70]),
                                 **({"latent_dim": latent_dim} if latent_dim > 1 else {}))
    console = Console()
    for alpha in alpha_list:
        table = Table(title=f"accuracy % against training tasks, alpha {alpha:g}"
                            f"{f', latent dim {latent_dim}' if latent_dim > 1 else ''} ({seeds} seeds x {n_test} test "
                            "tasks; mean ± 95% t-interval over seeds)")
        table.add_column("architecture")
        points = [p for p in result["points"] if p["alpha"] == alpha]
        for p in points:
            table.add_column(f"{p['n_train']:,}", justify="right")
        for name in arch_rows(points[0]["summary"]):
            table.add_row(name, *(f"{100 * p['summary'][name]['accuracy']:.1f} ± {100 * p['summary'][name]['accuracy_ci']:.1f}"
                                  for p in points))
        for group in ("agents", "stackers", "e-d", "u"):
            table.add_row(f"CPU s: {group}", *(f"{p['cpu_s'][group]:.1f}" for p in points))
        console.print(table)
    _save_json(json_out, result)
    if plot is not None:
        from node.experiment.report.plots import plot_learning_curves

        try:
            plot_learning_curves(result, plot)
        except (OSError, ValueError) as e:
            typer.secho(f"--plot: could not write {str(plot)!r}: {e}", fg="red", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"plot written to {plot}")
    typer.echo(f"finished in {time.perf_counter() - start:.0f} s")
