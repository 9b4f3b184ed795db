"""The bench on a terminal (rich): progress bars while it runs, the summary tables after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from node.experiment.runner import Ui
from node.protocol.enums import ARCH_NAMES, Arch


class _RichUi:
    """Progress bars: finished units overall, and the tasks of the batch on chain."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self.units = progress.add_task("units", total=1)
        self.tasks = progress.add_task("tasks", total=1, visible=False)
        self.ui = Ui(start_units=self.start_units, unit_done=self.unit_done, status=self.status,
                     start_tasks=self.start_tasks, task_done=self.task_done)

    def start_units(self, total: int) -> None:
        self.progress.update(self.units, total=total, completed=0)

    def unit_done(self, key: str) -> None:
        self.progress.update(self.units, advance=1)

    def status(self, text: str) -> None:
        self.progress.update(self.units, description=text[:70])

    def start_tasks(self, what: str, total: int) -> None:
        self.progress.update(self.tasks, description=f"  tasks {what}"[:70], total=total, completed=0, visible=True)

    def task_done(self) -> None:
        self.progress.update(self.tasks, advance=1)


@contextmanager
def progress_ui(console: Any) -> Iterator[Ui]:
    """The runner's `Ui` drawing progress bars on `console` while the block runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        yield _RichUi(progress).ui


def print_summary(results: dict, console: Any) -> None:
    """The summary as two tables (quality, then costs), narrow enough for an 80-column terminal."""
    from rich.table import Table

    from node.experiment.report.render import SUMMARY_HEADER, summary_rows

    run = results["run"]
    rows = summary_rows(results)
    quality = Table(title=f"Chorus bench {run['id']}: accuracy on each seed's evaluation set (off chain, checked "
                          f"task by task against the chain sample), {len(run['seeds'])} seeds (mean, 95% interval)",
                    title_style="bold")
    for i, col in enumerate(SUMMARY_HEADER[:5]):
        quality.add_column(col, justify="left" if i == 0 else "right")
    costs = Table(title="What it cost (per task, from the receipts; latency submit -> TaskFinalized)",
                  title_style="bold")
    for i, col in enumerate([SUMMARY_HEADER[0], *SUMMARY_HEADER[5:]]):
        costs.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        style = "bold" if row[0] in (ARCH_NAMES[Arch.U], "Oracle") else None
        quality.add_row(*row[:5], style=style)
        if row[0] != "Oracle":
            costs.add_row(row[0], *row[5:], style=style)
    console.print(quality)
    ceilings = results.get("ceilings") or {}
    for name, what in (("observation", "observation ceiling (Bayes on what the agents see)"),
                       ("late_fusion_cap", "late-fusion cap"), ("latent", "latent oracle")):
        if ceilings.get(name) is not None:
            ci = ceilings.get(f"{name}_ci") or [None, None]
            span = f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if None not in ci else ""
            console.print(f"{what}: {100 * ceilings[name]:.1f}%{span}")
    for c in (results.get("comparisons") or [])[:1]:  # the pre-registered one
        lo, hi = c["ci"]
        console.print(f"pre-registered: {c['a']} - {c['b']} = {100 * c['diff']:+.1f} points, paired 95% interval "
                      f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" + ("" if c.get("excludes_zero") else " (includes 0)"))
    console.print(costs)
    for check in results["honesty"]["checks"]:
        mark = ({True: "[green]PASS[/green]", False: "[red]FAIL[/red]", None: "[yellow]n/a[/yellow]"}[check["passed"]]
                if not check.get("verdict") else f"[cyan]{check['verdict'].upper()}[/cyan]")
        console.print(f"{mark} {check['name']}: {check['detail']}")


def print_funds(signing: dict, console: Any) -> None:
    """What a keystore run sent to its generated node keys and got back."""
    from node.experiment.keys import fmt_eth

    console.print(f"funder {signing['funder']}: {signing['node_keys']} generated node keys got "
                  f"{fmt_eth(signing['funded_wei'])}, {fmt_eth(signing['returned_wei'])} came back")
