"""`rft eval` and `rft compare`: sampling, grading and scoring a model on a suite, and comparing two runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from rft.app.cli_base import EVAL, err, fail, out, user_errors
from rft.app.console import progress_bar
from rft.chat import CHAT_HELP, parse_chat

if TYPE_CHECKING:
    from rft.eval.criteria import Criterion

__all__ = ["eval_cmd", "compare_cmd"]


def eval_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for samples, results.json, report, plots")],
    model: Annotated[
        str | None, typer.Option("--model", help="model id or path (not with --samples)")
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite",
            help="task id, suite .yaml, or a mix (its suites' table, as --suites) (with --samples: a label, or the rows' suite)",
        ),
    ] = None,
    suites: Annotated[
        str | None,
        typer.Option(help="comma-separated suites: one table, OUT/<suite id>/ each, OUT/results.json"),
    ] = None,
    samples: Annotated[
        Path | None, typer.Option("--samples", help="score graded rows instead (rft grade -o / rft sample)")
    ] = None,
    criteria: Annotated[
        Path | None,
        typer.Option(
            help="OpenAI Evals testing_criteria JSON: each criterion's pass rate (with --samples: only)"
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="train or heldout")] = EVAL.split,
    n: Annotated[
        int | None,
        typer.Option("--n", help=f"samples per problem [default: the suite's eval: n, else {EVAL.n}]"),
    ] = None,
    k: Annotated[
        str | None,
        typer.Option(
            "--k", help="comma-separated k of pass@k and maj@k, each <= n [default: the suite's, else 1]"
        ),
    ] = None,
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
        float | None,
        typer.Option(help="[default: the suite's eval:, else 0 (greedy) when n == 1, else 1.0]"),
    ] = None,
    top_p: Annotated[
        float | None, typer.Option(help=f"[default: the suite's eval:, else {EVAL.top_p:g}]")
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(help=f"tokens per model turn [default: the suite's eval:, else {EVAL.max_new_tokens}]"),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="grading processes (0: in this process)")
    ] = EVAL.grader_workers,
    threads: Annotated[
        int, typer.Option(help="torch threads (1 suits tiny models on CPU)")
    ] = EVAL.torch_threads,
    chat: Annotated[str, typer.Option(help=CHAT_HELP)] = "",
) -> None:
    """Sample, grade and report unbiased pass@k, maj@k, mean@n with 95% bootstrap intervals over problems.

    Sampling settings: a flag given here, else the suite's `eval:` section (what a benchmark fixes), else
    the default. --suites: every suite into OUT/<suite id>/ (complete ones with the same settings are kept),
    one table, OUT/results.json and OUT/report.md. --criteria: OpenAI Evals testing_criteria, each one's
    pass rate with its interval, in results.json and the report. --engine openai: a request still failing
    after its retries is an error sample (eval/request_error_rate); exit status 1 when more than half failed."""
    from rft.app.console import eval_table
    from rft.engines.api import RequestFailed
    from rft.envs import SuiteError, get_suite
    from rft.envs.mix import read_mix
    from rft.eval.criteria import load_criteria
    from rft.eval.evaluate import evaluate_suite, score_samples, write_eval
    from rft.eval.spec import ServerSpec, parse_model_args
    from rft.eval.suites import suite_spec

    try:
        ks = None if k is None else tuple(int(x) for x in k.split(",") if x.strip())
    except ValueError:
        fail(f"--k takes comma-separated integers like 1,4,8, got {k!r}")
    flags = {"n": n, "ks": ks, "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
    given = {name for name, value in flags.items() if value is not None}
    found, scored = None, None
    with user_errors(SuiteError, ValueError, FileNotFoundError, RequestFailed):
        checks = None if criteria is None else load_criteria(criteria)  # a bad file fails before sampling
        if sum(x is not None for x in (suite if samples is None else None, suites, samples)) > 1:
            raise ValueError("give one of --suite, --suites or --samples")
        if samples is not None:
            if fewshot:
                raise ValueError("--samples scores existing rows: --fewshot does not apply")
            from rft.app.graded_rows import data_rows

            if checks is not None:
                if ks is not None:
                    raise ValueError(
                        "--samples with --criteria scores the criteria only: drop --k (or --criteria)"
                    )
                found = _criteria(checks, data_rows(samples), suite, workers, seed, model or "", split)
                _write_criteria_only(out_dir, found, samples)
            else:
                rows = data_rows(samples)  # streamed: score_samples keeps per-problem aggregates, not rows
                scored = score_samples(
                    rows, ks or EVAL.ks, model=model or "", suite=suite, split=split, seed=seed
                )
                write_eval(out_dir, None, scored)
        else:
            if model is None or (suite is None and suites is None):
                raise ValueError("rft eval needs --model and --suite or --suites (or --samples GRADED.jsonl)")
            if suite is not None and len(read_mix(suite).mix) > 1:  # a mix: its suites' table, as --suites
                suites, suite = ",".join(read_mix(suite).suites), None
            if suites is not None and criteria is not None:
                raise ValueError("--criteria applies to one suite's samples: use --suite (or --samples)")
            from rft.sft_dpo import solution_text

            server = ServerSpec(base_url=base_url, api=api, concurrency=concurrency, attempts=attempts,  # type: ignore[arg-type]
                                api_key_env=api_key_env)  # fmt: skip
            fields = {
                "split": split, "limit": limit, "fewshot": fewshot, "engine": engine,
                "model_args": parse_model_args(model_args), "server": server, "batch_prompts": batch_size,
                "grader_workers": workers, "torch_threads": threads, "seed": seed, "chat": parse_chat(chat),
                **{name: value for name, value in flags.items() if value is not None},
            }  # fmt: skip
            if suites is not None:
                _eval_suites(
                    model, fields, given, [s.strip() for s in suites.split(",") if s.strip()], out_dir
                )
                return
            assert suite is not None
            spec, _ = suite_spec({**fields, "suite": suite}, given, get_suite(suite))
            with progress_bar(err, "eval", transient=True) as tick:
                scored = evaluate_suite(model, spec, out_dir, solution=solution_text, progress=tick)
            if checks is not None:
                from rft.app.graded_rows import data_rows
                from rft.eval.criteria import write_criteria

                found = _criteria(
                    checks, data_rows(out_dir / "samples.jsonl"), suite, workers, seed, model, split
                )
                write_criteria(out_dir, found)
    if scored is not None:
        out.print(eval_table(scored["results"]))
    if found is not None:
        out.print(_criteria_table(found))
    out.print(f"report: {out_dir / 'report.md'}", soft_wrap=True)
    failed = (scored or {}).get("request_failures") or {"failed": 0}
    if failed["failed"]:  # a served model's requests failed for good
        err.print(f"[yellow]{failed['failed']} of {failed['total']} requests failed after retries (error samples, "
                  "not answers):[/yellow]", soft_wrap=True)  # fmt: skip
        for e in failed["errors"]:
            err.print(f"  {escape(e)}", soft_wrap=True)
        if failed["failed"] > failed["total"] / 2:
            raise typer.Exit(1)


def _eval_suites(
    model: str, fields: dict[str, Any], given: set[str], names: list[str], out_dir: Path
) -> None:
    """`rft eval --suites`: each suite into its folder, then the one table."""
    from rft.eval.suites import card_table, evaluate_suites
    from rft.sft_dpo import solution_text

    doc = evaluate_suites(
        model, fields, names, out_dir, given=given, solution=solution_text,
        bars=lambda label: progress_bar(err, label, transient=True), log=lambda m: err.print(m, soft_wrap=True),
    )  # fmt: skip
    header, rows = card_table(doc, sep="\n")  # the interval under its value: narrow columns
    table = Table(*header, title=f"{model} ({doc['settings']['split']})")
    table.columns[0].no_wrap = True
    for row in rows:
        table.add_row(*row)
    out.print(table)
    out.print(f"results: {out_dir / 'results.json'}, report: {out_dir / 'report.md'}", soft_wrap=True)
    for sid, e in doc["suites"].items():
        failed = e.get("request_failures") or {"failed": 0}
        if failed["failed"]:
            err.print(f"[yellow]{sid}: {failed['failed']} of {failed['total']} requests failed after retries (error "
                      "samples, not answers)[/yellow]", soft_wrap=True)  # fmt: skip


def _criteria(
    criteria: list[Criterion], rows: Any, suite: str | None, workers: int, seed: int, model: str, split: str
) -> dict[str, Any]:
    """The criteria run over `rows`; `suite`, when it names a suite, supplies the rows' items."""
    from rft.envs import get_suite, registered_ids
    from rft.eval.criteria import run_criteria

    # with --samples, --suite may be a label only (the rows then carry their items)
    names_suite = suite is not None and (
        suite.endswith((".yaml", ".yml")) or suite in registered_ids() or f"rft/{suite}" in registered_ids()
    )
    src = get_suite(suite) if names_suite and suite is not None else None
    return run_criteria(criteria, rows, suite=src, workers=workers, seed=seed, model=model,
                        label=src.id if src is not None else suite or "samples", split=split)  # fmt: skip


def _write_criteria_only(out_dir: Path, found: dict[str, Any], samples: Path) -> None:
    """A folder that holds the criteria's results alone (--samples with --criteria)."""
    from rft.eval.criteria import write_criteria

    for name in ("results.json", "report.md"):
        (out_dir / name).unlink(missing_ok=True)
    write_criteria(out_dir, found, config={"samples": str(samples)})


def _criteria_table(found: dict[str, Any]) -> Table:
    table = Table("criterion", "passes when", "pass rate", "95% CI", "passed", "failed", "errored",
                  title="testing criteria")  # fmt: skip
    table.columns[0].no_wrap = True
    for c in found["criteria"]:
        lo, hi = c["ci95"]
        table.add_row(c["name"], c["passes_when"], f"{c['pass_rate']:.3f}", f"[{lo:.3f}, {hi:.3f}]",
                      str(c["passed"]), str(c["failed"]), str(c["errored"]))  # fmt: skip
        if c["errored"]:
            err.print(f"[yellow]criterion {escape(c['name'])}: its grader failed on {c['errored']} of {c['samples']} "
                      f"samples (not passed); first: {escape(c['first_error'] or '')}[/yellow]", soft_wrap=True)  # fmt: skip
    return table


def compare_cmd(
    a: Annotated[Path, typer.Argument(help="evaluation folder A (the baseline; one suite or --suites)")],
    b: Annotated[Path, typer.Argument(help="evaluation folder B")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="folder for compare.md/json and the plot (default: B/compare)"),
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Paired comparison of two `rft eval` runs on the same problems: bootstrap CI, McNemar, a verdict.
    Folders of several suites (rft eval --suites) compare suite by suite (the suites both hold), one table.
    Writes compare.md, compare.json and a plot into B/compare unless --out says where."""
    from rft.eval.suites import compare_evals

    dest = out_dir or b / "compare"
    with user_errors(ValueError):
        res = compare_evals(a, b, dest, seed=seed)
    for c in res["comparisons"]:
        out.print(c["verdict"], soft_wrap=True)
    for sid, why in res.get("not_compared", {}).items():
        err.print(f"[yellow]{escape(sid)} not compared: {escape(why)}[/yellow]", soft_wrap=True)
    also = (
        "compare.json; each suite's plot in its folder" if "not_compared" in res else "compare.json, the plot"
    )
    out.print(f"wrote {dest / 'compare.md'} (and {also}) in {dest}", soft_wrap=True)
