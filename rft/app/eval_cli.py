"""`rft eval` and `rft compare`: sampling, grading and scoring a model on a suite, and comparing two runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rft.app.cli_base import EVAL, err, fail, out, user_errors
from rft.app.console import progress_bar
from rft.eval.spec import EvalSpec

__all__ = ["eval_cmd", "compare_cmd"]


def eval_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for samples, results.json, report, plots")],
    model: Annotated[
        str | None, typer.Option("--model", help="model id or path (not with --samples)")
    ] = None,
    suite: Annotated[
        str | None, typer.Option("--suite", help="task id or suite .yaml (with --samples: a label)")
    ] = None,
    samples: Annotated[
        Path | None, typer.Option("--samples", help="score graded rows instead (rft grade -o / rft sample)")
    ] = None,
    split: Annotated[str, typer.Option(help="train or heldout")] = EVAL.split,
    n: Annotated[int, typer.Option("--n", help="samples per problem")] = EVAL.n,
    k: Annotated[
        str, typer.Option("--k", help="comma-separated k of pass@k and maj@k, each <= n")
    ] = ",".join(map(str, EVAL.ks)),
    engine: Annotated[
        str, typer.Option(help="hf, vllm (local) or openai (served: --base-url)")
    ] = EVAL.engine,
    base_url: Annotated[
        str | None, typer.Option(help="openai: the server's /v1 URL (--model: its name)")
    ] = None,
    api: Annotated[
        str, typer.Option(help="openai: chat (messages) or completions (local template)")
    ] = "chat",
    model_args: Annotated[
        str,
        typer.Option(
            help="k=v,...: dtype, revision, trust_remote_code; vllm: max_model_len; openai: tokenizer"
        ),
    ] = "",
    batch_size: Annotated[int, typer.Option(help="hf/vllm: problems sampled together")] = EVAL.batch_prompts,
    concurrency: Annotated[int, typer.Option(help="openai: requests in flight")] = EVAL.server.concurrency,
    attempts: Annotated[int, typer.Option(help="openai: tries per request (backoff)")] = EVAL.server.attempts,
    api_key_env: Annotated[str, typer.Option(help="openai: variable with the API key")] = "OPENAI_API_KEY",
    fewshot: Annotated[int, typer.Option(help="K solved train examples in the prompt")] = EVAL.fewshot,
    limit: Annotated[int | None, typer.Option(help="the first N problems of the split only")] = EVAL.limit,
    seed: Annotated[int, typer.Option()] = EVAL.seed,
    temperature: Annotated[
        float | None, typer.Option(help="default: 0 (greedy) when n == 1, else 1.0")
    ] = EVAL.temperature,
    max_new_tokens: Annotated[int, typer.Option(help="tokens per model turn")] = EVAL.max_new_tokens,
    workers: Annotated[
        int, typer.Option(help="grading processes (0: in this process)")
    ] = EVAL.grader_workers,
    threads: Annotated[
        int, typer.Option(help="torch threads (1 suits tiny models on CPU)")
    ] = EVAL.torch_threads,
) -> None:
    """Sample, grade and report unbiased pass@k, maj@k, mean@n with 95% bootstrap intervals over problems.

    --engine openai: a request still failing after its retries is an error sample (eval/request_error_rate);
    exit status 1 when more than half failed."""
    from rft.app.console import eval_table
    from rft.engines.api import RequestFailed
    from rft.envs import SuiteError
    from rft.eval.evaluate import evaluate_suite, score_samples, write_eval
    from rft.eval.spec import ServerSpec, parse_model_args

    try:
        ks = tuple(int(x) for x in k.split(",") if x.strip())
    except ValueError:
        fail(f"--k takes comma-separated integers like 1,4,8, got {k!r}")
    with user_errors(SuiteError, ValueError, FileNotFoundError, RequestFailed):
        if samples is not None:
            if fewshot:
                raise ValueError("--samples scores existing rows: --fewshot does not apply")
            from rft.app.graded_rows import data_rows

            rows = data_rows(samples)  # streamed: score_samples keeps per-problem aggregates, not rows
            scored = score_samples(rows, ks, model=model or "", suite=suite, split=split, seed=seed)
            write_eval(out_dir, None, scored)
        else:
            if model is None or suite is None:
                raise ValueError("rft eval needs --model and --suite (or --samples GRADED.jsonl)")
            from rft.sft_dpo import solution_text

            server = ServerSpec(base_url=base_url, api=api, concurrency=concurrency, attempts=attempts,  # type: ignore[arg-type]
                                api_key_env=api_key_env)  # fmt: skip
            spec = EvalSpec(
                suite=suite, split=split, limit=limit, n=n, ks=ks, temperature=temperature,  # type: ignore[arg-type]
                max_new_tokens=max_new_tokens, fewshot=fewshot, engine=engine,  # type: ignore[arg-type]
                model_args=parse_model_args(model_args), server=server, batch_prompts=batch_size,
                grader_workers=workers, torch_threads=threads, seed=seed,
            )  # fmt: skip
            with progress_bar(err, "eval", transient=True) as tick:
                scored = evaluate_suite(model, spec, out_dir, solution=solution_text, progress=tick)
    out.print(eval_table(scored["results"]))
    out.print(f"report: {out_dir / 'report.md'}", soft_wrap=True)
    failed = scored.get("request_failures") or {"failed": 0}  # a served model's requests failed for good
    if failed["failed"]:
        err.print(f"[yellow]{failed['failed']} of {failed['total']} requests failed after retries (error samples, "
                  "not answers):[/yellow]", soft_wrap=True)  # fmt: skip
        for e in failed["errors"]:
            err.print(f"  {escape(e)}", soft_wrap=True)
        if failed["failed"] > failed["total"] / 2:
            raise typer.Exit(1)


def compare_cmd(
    a: Annotated[Path, typer.Argument(help="evaluation folder A (the baseline)")],
    b: Annotated[Path, typer.Argument(help="evaluation folder B")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="folder for compare.md/json and the plot (default: B/compare)"),
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Paired comparison of two `rft eval` runs on the same problems: bootstrap CI, McNemar, a verdict.
    Writes compare.md, compare.json and a plot into B/compare unless --out says where."""
    from rft.eval.evaluate import compare_runs

    dest = out_dir or b / "compare"
    with user_errors(ValueError):
        res = compare_runs(a, b, dest, seed=seed)
    for c in res["comparisons"]:
        out.print(c["verdict"], soft_wrap=True)
    out.print(f"wrote {dest / 'compare.md'} (and compare.json, the plot) in {dest}", soft_wrap=True)
