"""`rft demo`: the main job on a fresh machine, with no downloads. It runs the built-in pipeline
`rft/app/pipelines/demo.yaml` (a tiny model, SFT on a few solved problems, then GRPO against the grader on
problems without demonstrations, every model evaluated on held-out problems) and checks its goals."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from rft.app.console import rich_bars, summary_table
from rft.app.pipeline import load_pipeline, run_pipeline
from rft.rl.diagnose import diagnose, rl_runs

__all__ = ["DEMO_PIPELINE", "FINAL_MIN", "GAIN_MIN", "SECONDS_MAX", "run_demo", "check_goals"]

DEMO_PIPELINE = Path(__file__).parent / "pipelines" / "demo.yaml"
FINAL_MIN = 0.70  # the final model's greedy held-out pass@1 reaches this
GAIN_MIN = 0.25  # and beats the SFT warm start by this much, with the 95% intervals apart
SECONDS_MAX = 300.0  # on 2 CPU cores (bench/demo_seeds.py checks it; `rft demo` reports the time)


def check_goals(summary: dict[str, Any]) -> list[tuple[str, bool]]:
    """Each goal as (line, met): the final model solves >= 70% of held-out problems, and beats the SFT
    stage by >= 25 points with the 95% intervals apart."""
    rows = {r["stage"]: r for r in summary["rows"]}
    final = summary["rows"][-1]
    out = [(f"{final['stage']}: {final['value']:.3f} held-out pass@1 (goal >= {FINAL_MIN:.2f})",
            final["value"] >= FINAL_MIN)]  # fmt: skip
    if "sft" in rows and final["stage"] != "sft":
        r = rows["sft"]
        d = final["value"] - r["value"]
        apart = final["ci95"][0] > r["ci95"][1]
        out.append((f"{final['stage']} vs sft: {100 * d:+.1f} pts (goal >= +{100 * GAIN_MIN:.0f}), "
                    f"95% CIs {'apart' if apart else 'overlap'}", d >= GAIN_MIN and apart))  # fmt: skip
    return out


def run_demo(out: Path | None = None, overrides: list[str] | None = None, console: Console | None = None,
             restart_from: str | None = None) -> dict[str, Any]:  # fmt: skip
    console = console or Console()
    sets = [*(overrides or []), *([f"out={out}"] if out is not None else [])]
    p = load_pipeline(DEMO_PIPELINE, sets)
    console.print(f"[bold]rft demo[/bold]: a {p.tiny.hidden}-wide tiny model learns {p.suite} "  # type: ignore[union-attr]
                  f"(SFT on solved problems, then GRPO against the grader); folder {p.out}")  # fmt: skip
    summary = run_pipeline(p, bar=rich_bars(console), say=console.print, restart_from=restart_from)
    console.print(summary_table(summary))
    for c in summary["comparisons"]:
        console.print(c["verdict"], soft_wrap=True)
    goals = check_goals(summary)
    for line, ok in goals:
        console.print(f"{'[green]met[/green]' if ok else '[red]missed[/red]'}  {line}", soft_wrap=True)
    for run in rl_runs(Path(summary["report"]).parent):
        console.print(escape(diagnose(run).verdict), soft_wrap=True)
    console.print(f"report: {summary['report']} (results.json, training.png, stages.png beside it); "
                  f"{summary['wall_s']:.0f} s", soft_wrap=True)  # fmt: skip
    console.print(escape(f"look at rollouts, grades, curves: rft view {shlex.quote(str(Path(summary['report']).parent))}"),
                  soft_wrap=True, highlight=False)  # fmt: skip
    summary["goals"] = goals
    return summary
