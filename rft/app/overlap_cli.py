"""`rft task overlap`: a contamination report between training suites and held-out suites (rft.envs.contamination)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from rft.app.cli_base import fail, out, user_errors

__all__ = ["overlap_cmd", "OVERLAP_EPILOG", "OVERLAP_FOUND_EXIT"]

OVERLAP_FOUND_EXIT = 1  # an overlap of a --fail-on kind was found
BENCHMARKS = "benchmarks"  # --heldout benchmarks: every registered held-out-only suite
OVERLAP_EPILOG = (
    f"Exit status: 0 no overlap of the --fail-on kinds; {OVERLAP_FOUND_EXIT} at least one (the report says "
    "which); 2 a user error (an unknown suite, a benchmark given as --train, missing data)."
)


def overlap_cmd(
    train: Annotated[
        list[str],
        typer.Option(
            "--train", metavar="SUITE", help="training suite: its train split is compared (repeatable)"
        ),
    ],
    heldout: Annotated[
        list[str],
        typer.Option(
            "--heldout",
            metavar="SUITE",
            help=f"held-out suite: a benchmark's items, else its held-out split (repeatable; '{BENCHMARKS}': "
            "every registered benchmark suite whose data is here)",
        ),
    ],
    n: Annotated[int, typer.Option("--n", help="n-gram length in words")] = 13,
    threshold: Annotated[
        float, typer.Option(help="near: least similarity of the number-normalised prompts, in (0, 1]")
    ] = 0.85,
    fail_on: Annotated[
        str, typer.Option(help=f"comma-separated kinds that make the exit status {OVERLAP_FOUND_EXIT}")
    ] = "exact,near",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="write the full report (every match) as JSON")
    ] = None,
    show: Annotated[int, typer.Option("--show", help="examples printed per kind")] = 5,
) -> None:
    """Contamination report: which held-out problems also appear in a training suite's train split.

    Compares the rendered user prompts (the system prompt is left out) and reports each held-out item
    under its strongest overlap with a train item: exact (equal after normalising case, spaces and
    punctuation), near (the same problem with other numbers or small edits: similarity of the prompts with
    every number replaced by # and LaTeX spacing dropped >= --threshold) or ngram (a shared word n-gram
    only). n-gram overlaps alone are often boilerplate ("where m and n are relatively prime positive
    integers"): they are listed with their similarity for review, and fail the run only with
    --fail-on exact,near,ngram."""
    import rft.envs
    from rft.envs.contamination import KINDS
    from rft.envs.sources import SourceUnavailable

    kinds = [k.strip() for k in fail_on.split(",") if k.strip()]
    if not kinds or set(kinds) - set(KINDS):
        fail(f"--fail-on takes kinds among {','.join(KINDS)}, got {fail_on!r}")
    if show < 0:
        fail(f"--show must be >= 0, got {show}")
    held = _expand(heldout)
    reports, skipped = [], {}
    with user_errors(rft.envs.SuiteError, ValueError):
        for t in train:
            for h, optional in held:
                try:
                    reports.append(rft.envs.overlap(t, h, n=n, threshold=threshold))
                except SourceUnavailable as e:
                    if not optional:
                        raise
                    skipped[h] = e.reason  # one of --heldout benchmarks whose data is not here
    for h, reason in skipped.items():
        out.print(f"[yellow]skipped {escape(h)}: its data is not available here ({escape(reason)})[/yellow]")
    if not reports:
        fail(f"nothing compared: the data of {', '.join(skipped)} is not available here")
    table = Table("train items", "held-out items", *KINDS, "seconds")
    for k, name in enumerate(("train suite", "held-out suite")):
        table.columns.insert(k, Column(name, overflow="fold"))  # ids in full, wrapped if need be
    for r in reports:
        counts = r.counts()
        table.add_row(r.train, r.heldout, str(r.train_items), str(r.heldout_items),
                      *(_count(counts[k], k in kinds) for k in KINDS), f"{r.seconds:.2f}")  # fmt: skip
    out.print(table)
    for kind in KINDS:
        found = sorted(
            ((r, m) for r in reports for m in r.matches if m.kind == kind), key=lambda x: -x[1].score
        )
        for r, m in found[:show]:
            what = f"  shared: {m.shared!r}" if m.shared else ""
            out.rule(
                f"{kind} {m.score:.2f}: {r.heldout} {m.heldout_id} ~ {r.train} {m.train_id}", align="left"
            )
            out.print(f"[bold]held-out:[/bold] {escape(_short(m.heldout_text))}", highlight=False)
            out.print(f"[bold]train:[/bold]    {escape(_short(m.train_text))}{escape(what)}", highlight=False)
        if len(found) > show:
            out.print(f"... {len(found) - show} more {kind} (--show, --out)")
    failing = sum(len(r.found(kinds)) for r in reports)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        report = {"fail_on": kinds, "failed": failing > 0, "reports": [r.to_dict() for r in reports]}
        out_file.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        out.print(f"report: {out_file}")
    if failing:
        out.print(f"[red]{failing} held-out item(s) overlap a train item ({','.join(kinds)})[/red]")
        raise typer.Exit(OVERLAP_FOUND_EXIT)
    out.print(f"clean: no {' or '.join(kinds)} overlap")


def _expand(heldout: list[str]) -> list[tuple[str, bool]]:
    """`--heldout` values, each with whether it may be skipped: 'benchmarks' becomes every registered
    held-out-only suite, and those whose data is not available here are skipped (named ones fail)."""
    import rft.envs

    if BENCHMARKS not in heldout:
        return [(h, False) for h in heldout]
    with user_errors(rft.envs.SuiteError):
        bench = [i for i in rft.envs.registered_ids() if rft.envs.get_suite(i).heldout_only]
    if not bench:
        fail(f"--heldout {BENCHMARKS}: no registered suite is a benchmark (split: 1); name the suites")
    return [x for h in heldout for x in ([(b, True) for b in bench] if h == BENCHMARKS else [(h, False)])]


def _count(k: int, failing: bool) -> str:
    return f"[red]{k}[/red]" if k and failing else (f"[yellow]{k}[/yellow]" if k else "0")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
