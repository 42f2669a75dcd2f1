"""What the command line shows: progress bars and tables (rich)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

__all__ = [
    "Bar",
    "BarFactory",
    "progress_bar",
    "rich_bars",
    "summary_table",
    "eval_table",
    "grade_table",
    "grade_progress",
    "first_errors",
    "quiet_libraries",
]

SHOWN = {
    "reward/mean": "reward",
    "eval/accuracy": "held-out",
    "loss/sft": "loss",
    "loss/dpo": "loss",
}  # beside a bar


def quiet_libraries() -> None:
    """Turn off the progress bars and advisory warnings of transformers, datasets and the hub (the pipeline
    shows its own bars). Call it before they are imported; the environment carries it to child processes."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")


class Bar(Protocol):
    """A progress bar's update: `done` of `total` (None: unchanged, or unknown), with metrics to show beside it."""

    def __call__(
        self, done: int, total: int | None = None, metrics: Mapping[str, float] | None = None
    ) -> None: ...


BarFactory = Callable[[str, int | None], AbstractContextManager[Bar]]  # (label, total) -> a bar while open


@contextmanager
def progress_bar(
    console: Console, label: str, total: int | None = None, *, transient: bool = False
) -> Iterator[Bar]:
    """A rich bar (label, bar, done/total, time elapsed and left, the latest metrics) while open; yields its
    update. `transient`: gone once closed."""
    with Progress(
        TextColumn(f"{label:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("[progress.description]{task.description}"),
        console=console,
        transient=transient,
    ) as progress:
        task = progress.add_task("", total=total)

        def tick(done: int, total: int | None = None, metrics: Mapping[str, float] | None = None) -> None:
            shown = " ".join(
                f"{name} {m:.2f}" for k, name in SHOWN.items() if (m := (metrics or {}).get(k)) is not None
            )
            progress.update(task, completed=done, total=total, description=shown)
            if metrics and "stopped_at_step" in metrics:  # sft/dpo `stop_at`: the bar ends short of its total
                acc = metrics.get("eval/accuracy", float("nan"))
                progress.console.print(
                    f"{label}: held-out accuracy {acc:.3f} reached stop_at at step {int(metrics['stopped_at_step'])}"
                    f"; training ends there (the step count was a budget)",
                    highlight=False,
                    soft_wrap=True,
                )

        yield tick


def rich_bars(console: Console) -> BarFactory:
    """A `BarFactory` for `run_pipeline`: one rich bar per stage, with its latest metrics beside it."""
    return lambda label, total: progress_bar(console, label, total)


def summary_table(summary: Mapping[str, Any]) -> Table:
    metric = summary["metric"]
    table = Table("stage", metric, "95% CI", "vs base", "train time", title="held-out results")
    for r in summary["rows"]:
        lo, hi = r["ci95"]
        table.add_row(r["stage"], f"{r['value']:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{100 * r['vs_base']:+.1f} pts",
                      f"{r['seconds']:.0f} s")  # fmt: skip
    return table


def eval_table(results: list[dict[str, Any]]) -> Table:
    table = Table("suite", "split", "metric", "value", "95% CI", "problems")
    for r in results:
        lo, hi = r["ci95"]
        table.add_row(r["suite"], r["split"], r["metric"], f"{r['value']:.3f}", f"[{lo:.3f}, {hi:.3f}]",
                      str(r["n_problems"]))  # fmt: skip
    return table


def grade_table(summary: Mapping[str, Any]) -> Table:
    table = Table(title="grades", show_header=False)
    table.add_row(
        "rows", str(summary["rows"]) + (f" ({summary['resumed']} resumed)" if summary.get("resumed") else "")
    )
    for status, count in summary["status"].items():
        table.add_row(f"status {status}", str(count))
    for key in (
        "mean_score",
        "pass_rate",
        "grader/error_rate",
        "grader/timeout_rate",
        "seconds",
        "rows_per_s",
    ):
        value = summary.get(key)
        if value is not None:
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    return table


def first_errors(summary: Mapping[str, Any]) -> list[str]:
    """The summary's first distinct grader failures, one line each with its count and first line."""
    lines = [
        f"{e['status']} x{e['count']} (first at line {e['first_line']}): {e['message']}"
        for e in summary.get("first_errors", [])
    ]
    if summary.get("other_errors"):
        lines.append(f"... and {summary['other_errors']} more failures with other messages")
    return lines


@contextmanager
def grade_progress(console: Console, total_bytes: int) -> Iterator[Callable[[int, int, float], None]]:
    """`rft grade`'s bar: the share of the input read (by bytes, so the file is not counted first), rows
    graded and rows/s. Yields ``update(rows, bytes_done, rows_per_s)``; gone once closed."""
    with Progress(
        TextColumn("grading"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]} rows, {task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=max(total_bytes, 1), rows=0, rate="-")

        def update(rows: int, done_bytes: int, rate: float) -> None:
            progress.update(task, completed=done_bytes, rows=f"{rows:,}", rate=f"{rate:,.0f}")

        yield update
