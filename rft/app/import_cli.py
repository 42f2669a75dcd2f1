"""`rft import ...`: bring a job from another service to rft (`rft import openai-job`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rft.app.cli_base import out, user_errors
from rft.app.errors import App

__all__ = ["import_app"]

import_app = App(no_args_is_help=True, help="Bring a job from another service to rft (openai-job).")


@import_app.command("openai-job")
def openai_job(
    train: Annotated[
        Path, typer.Option(help="the RFT training JSONL (OpenAI's format: messages + item fields)")
    ],
    model: Annotated[
        str, typer.Option(help="the open model to train: a Hugging Face id or path ('tiny': a tiny one)")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="where the suite and pipeline.yaml are written")],
    grader: Annotated[Path | None, typer.Option(help="the grader JSON (default: the --job's)")] = None,
    valid: Annotated[Path | None, typer.Option(help="the validation JSONL: the held-out split")] = None,
    hyperparameters: Annotated[
        Path | None, typer.Option(help="method.reinforcement.hyperparameters as JSON")
    ] = None,
    job: Annotated[
        Path | None,
        typer.Option(
            help="the fine-tuning job's create body (method.reinforcement: grader, hyperparameters)"
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="the suite's name (default: the job's suffix, else the file's)")
    ] = None,
    split: Annotated[float, typer.Option(help="without --valid: the share of training rows held out")] = 0.1,
    base_lr: Annotated[float, typer.Option(help="the rate learning_rate_multiplier multiplies")] = 1e-5,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="the answer-length budget (default: by reasoning_effort)")
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="the row field holding a gold answer, if any (for rft task check)")
    ] = None,
    judge_base_url: Annotated[
        str | None, typer.Option(help="set this endpoint on score_model/label_model graders that name none")
    ] = None,
) -> None:
    """Turn an OpenAI reinforcement fine-tuning job (training and validation JSONL, grader JSON,
    hyperparameters) into an rft suite and an `rft run` pipeline on an open model; print what each
    hyperparameter became."""
    from rft.app.openai_job import JobError, import_job

    with user_errors(JobError):
        res = import_job(train, grader, model, out_dir, valid=valid, hyperparameters=hyperparameters, job=job,
                         name=name, split=split, base_lr=base_lr, max_new_tokens=max_new_tokens,
                         judge_base_url=judge_base_url, reference=reference)  # fmt: skip
    table = Table("OpenAI", "value", "rft", title="OpenAI -> rft", show_lines=False)
    for r in res.table:
        table.add_row(escape(r.openai), escape(json.dumps(r.value)), escape(r.rft))
    out.print(table)
    out.print(
        f"suite: {res.suite} ({res.train_rows} train rows, {res.valid_rows or 'split'} validation)",
        soft_wrap=True,
    )
    out.print(f"pipeline: {res.pipeline}\nrun it: rft run {res.pipeline}", soft_wrap=True)
