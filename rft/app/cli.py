"""The `rft` command line. The only module that wires every part of the project together."""

from __future__ import annotations

import json
import os
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from rft.app.cli_base import checked_model, each, err, fail, input_file, load_spec, out, user_errors
from rft.app.config_show import config_app, set_option
from rft.app.console import progress_bar
from rft.app.errors import App, add_global_options
from rft.app.eval_cli import compare_cmd, eval_cmd
from rft.app.import_cli import import_app
from rft.app.overlap_cli import OVERLAP_EPILOG, overlap_cmd
from rft.app.sandbox_cli import sandbox_app
from rft.app.view import view_cmd
from rft.chat import CHAT_HELP, parse_chat

# rft draws its own progress bars; transformers' ("Loading weights", "Writing model shards" at every
# checkpoint) would interleave with them. Read when transformers is first imported; a user's setting wins.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

app = App(
    no_args_is_help=True, add_completion=False, help="Reinforcement fine-tuning with verifiable rewards."
)
add_global_options(app)  # --debug, --version
grader_app = App(no_args_is_help=True, help="Inspect and check grader specs.")
app.add_typer(grader_app, name="grader")
task_app = App(no_args_is_help=True, help="List, show and check task suites (Gymnasium environments).")
app.add_typer(task_app, name="task")
train_app = App(
    no_args_is_help=True, help="Train a model: sft, dpo (warm start), grpo, ppo (from a YAML recipe)."
)
app.add_typer(train_app, name="train")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(config_app, name="config")
app.add_typer(import_app, name="import")

GRADE_FAILED_EXIT = 3  # `rft grade`: more rows failed to grade than --max-error-rate allows


@app.command(
    epilog=f"Exit status: 0 graded; 2 a user error (bad spec or input, an --output that --resume cannot "
    f"continue); {GRADE_FAILED_EXIT} more than --max-error-rate of the rows failed to grade (error or timeout)."
)
def grade(
    grader: Annotated[
        str, typer.Option("--grader", "-g", help="grader spec: a .json/.yaml file or inline JSON")
    ],
    input: Annotated[Path, typer.Option("--input", "-i", help='JSONL rows {"item": {...}, "sample": {...}}')],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write each row plus its grade (as they are graded)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="grading processes (0: in this process, no deadlines)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="hard per-sample deadline, seconds")] = 30.0,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="continue a killed run: keep the rows already in --output, grade the rest"
        ),
    ] = False,
    max_error_rate: Annotated[
        float,
        typer.Option(
            help=f"exit {GRADE_FAILED_EXIT} when more than this share of rows fail (error or timeout)"
        ),
    ] = 0.5,
    json_summary: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    unsafe_local_exec: Annotated[
        bool,
        typer.Option("--unsafe-local-exec", help="let code graders run unisolated where no sandbox works"),
    ] = False,
) -> None:
    """Grade model samples with a grader spec. Rows are read, graded and written in a bounded window, in
    order, so memory stays flat whatever the input size; Ctrl-C keeps what is written (then --resume)."""
    from rft.app.console import first_errors, grade_progress, grade_table
    from rft.app.graded_rows import ResumeError, Tally, grade_file

    if unsafe_local_exec:
        os.environ["RFT_UNSAFE_LOCAL_EXEC"] = "1"  # read by the code grader, in the grading workers too
    if not 0.0 <= max_error_rate <= 1.0:
        fail(f"--max-error-rate is a share of rows in [0, 1], got {max_error_rate}")
    if resume and output is None:
        fail("--resume continues an --output file: give the same --output as the killed run")
    g = load_spec(grader)
    path = input_file(input)
    if output is not None and output.resolve() == path.resolve():
        fail(f"--output {output} is the input file: write the graded rows elsewhere")
    tally = Tally()
    try:
        with (
            user_errors(ResumeError, prefix="cannot --resume: "),
            grade_progress(err, path.stat().st_size) as bar,
        ):
            summary = grade_file(
                g, path, output, tally, workers=workers, timeout=timeout, resume=resume, progress=bar
            )
    except KeyboardInterrupt:
        where = f"; {tally.rows} graded rows are in {output}: add --resume to continue" if output else ""
        err.print(f"[yellow]interrupted[/yellow]{escape(where)}", soft_wrap=True)
        raise typer.Exit(130) from None
    if json_summary:
        print(json.dumps(summary))
    else:
        out.print(grade_table(summary))
        for line in first_errors(summary):
            err.print(f"[yellow]{escape(line)}[/yellow]", soft_wrap=True)
    failed = tally.failed / tally.rows if tally.rows else 0.0
    if failed > max_error_rate:
        err.print(
            f"[red]{tally.failed} of {tally.rows} rows ({failed:.0%}) failed to grade, more than "
            f"--max-error-rate {max_error_rate:g}: exit {GRADE_FAILED_EXIT}[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(GRADE_FAILED_EXIT)


@grader_app.command("validate")
def grader_validate(spec: Annotated[str, typer.Argument(help="a .json/.yaml file or inline JSON")]) -> None:
    """Check a grader spec; code graders also run one test program in their sandbox (and say which)."""
    from rft.graders.sandbox.auto import check_sandbox, code_sandboxes

    g = load_spec(spec)
    out.print(f"[green]ok[/green] {g.type} grader {g.name!r}")
    out.print_json(data=g.spec())
    failed = False
    for name, options in code_sandboxes(g.spec()):
        sb = check_sandbox(name, **options)
        failed = failed or not sb.ok
        mark = "[green]ok[/green]  " if sb.ok else "[red]FAIL[/red]"
        out.print(f"{mark} {escape(sb.message)}", highlight=False)
    if failed:
        raise typer.Exit(1)


@grader_app.command("audit")
def grader_audit(
    grader: Annotated[
        str, typer.Option("--grader", "-g", help="grader spec: a .json/.yaml file or inline JSON")
    ],
    input: Annotated[
        Path,
        typer.Option("--input", "-i", help='JSONL rows {"item", "sample", "expected"?: true|false, "kind"?}'),
    ],
    compare: Annotated[
        str | None, typer.Option(help="a second grader: math_verify, or a spec file / inline JSON")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="grading processes (0: in this process, no deadlines)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="hard per-sample deadline, seconds")] = 30.0,
    show: Annotated[int, typer.Option(help="list this many mistakes and disagreements")] = 20,
    examples: Annotated[int, typer.Option(help="disagreements shown per kind (with --compare)")] = 3,
    exclude_kinds: Annotated[
        str, typer.Option(help="comma-separated kind prefixes left out of the overall rates, e.g. policy_")
    ] = "",
    json_report: Annotated[bool, typer.Option("--json", help="print the whole report as JSON")] = False,
) -> None:
    """Count a grader's false negatives and false positives on labelled rows, and with --compare list
    where a second grader disagrees, per kind (labelled rows or not)."""
    from rft.app.audit import load_compare, load_labelled, report_renderables, run_audit
    from rft.graders import GraderSpecError

    g = load_spec(grader)
    input_file(input)
    other = None
    if compare is not None:
        with user_errors(GraderSpecError, prefix="invalid --compare grader: "):
            other = load_compare(compare)
    rows = load_labelled(input)
    excluded = tuple(k.strip() for k in exclude_kinds.split(",") if k.strip())
    with progress_bar(err, "grading", len(rows) * (2 if other else 1), transient=True) as tick:
        report = run_audit(g, rows, compare=other, workers=workers, timeout=timeout, exclude_kinds=excluded,
                           on_result=each(tick), examples=examples)  # fmt: skip
    if json_report:
        print(json.dumps(report, ensure_ascii=False))
        return
    for renderable in report_renderables(report, show=show):
        out.print(renderable)


@grader_app.command("types")
def grader_types_cmd() -> None:
    """List the grader types."""
    from rft.graders import grader_types

    for t in grader_types():
        out.print(t)


@app.command()
def serve(
    model: Annotated[str, typer.Option(help="a Hugging Face model id, a model folder or a run folder")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (chat, completions, embeddings)."""
    from rft.app.serve import run_server

    run_server(checked_model(model), host, port, name=model)


@app.command()
def demo(
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="the demo's folder (default runs/demo)")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="override: grpo.steps=100, eval.limit=100"),
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="run this stage (base, sft, grpo) and the later ones again")
    ] = None,
    grading: Annotated[
        bool, typer.Option("--grading", help="only the grading tour (seconds, no model)")
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help="every seed of the run: model init, data order, sampling (default 0)")
    ] = None,
) -> None:
    """The main job on a fresh machine, no downloads: a tiny model, SFT on a few solved problems, GRPO against
    the grader on problems without demonstrations, held-out evaluation of each, a report (rft run on
    rft/app/pipelines/demo.yaml)."""
    if grading:
        from rft.app.grading_tour import run_tour

        run_tour(out_dir or Path("runs/grading-tour"), console=out)
        return
    from rft.app.console import quiet_libraries

    quiet_libraries()
    from rft.app.demo import run_demo
    from rft.app.pipeline import PipelineError
    from rft.config import ConfigError
    from rft.runs import RunError

    with user_errors(ConfigError, PipelineError, RunError):
        sets = [*(set_ or []), *([f"seed={seed}"] if seed is not None else [])]
        if seed is not None and out_dir is None and not any(x.startswith("out=") for x in sets):
            out_dir = Path(f"runs/demo-seed{seed}")  # runs/demo holds the default seed's run
        summary = run_demo(out_dir, sets, console=out, restart_from=from_)
    raise typer.Exit(0 if all(ok for _, ok in summary["goals"]) else 1)


@app.command("run")
def run_cmd(
    pipeline: Annotated[Path, typer.Argument(help="pipeline YAML (stages sft, dpo, grpo, ppo, eval)")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="override: out=runs/x, grpo.steps=50"),
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="run this stage and the ones after it again")
    ] = None,
) -> None:
    """Run a pipeline: each stage's model is the next one's input, every model is evaluated, one report.
    Run it again to continue: finished stages are skipped, a killed grpo/ppo stage resumes."""
    from rft.app.console import quiet_libraries, rich_bars, summary_table

    quiet_libraries()
    from rft.app.pipeline import PipelineError, load_pipeline, run_pipeline
    from rft.config import ConfigError
    from rft.models import ModelError
    from rft.runs import RunError

    with user_errors(ConfigError, PipelineError, RunError, ModelError, FileNotFoundError):
        p = load_pipeline(pipeline, set_ or [])
        summary = run_pipeline(p, bar=rich_bars(out), say=out.print, restart_from=from_)
    out.print(summary_table(summary))
    for c in summary["comparisons"]:
        out.print(c["verdict"], soft_wrap=True)
    _verdicts(Path(summary["report"]).parent)
    out.print(f"report: {summary['report']}", soft_wrap=True)


def _verdicts(folder: Path) -> None:
    """`rft diagnose`'s one-line verdict for the RL run in `folder`, or for each in its subfolders (a
    pipeline's stages)."""
    from rft.rl.diagnose import diagnose, rl_runs

    for run in rl_runs(folder):
        out.print(escape(diagnose(run).verdict), soft_wrap=True)


@app.command()
def diagnose(
    run: Annotated[Path, typer.Argument(help="a grpo/ppo run folder, or a pipeline folder (each RL stage)")],
    weights: Annotated[
        bool, typer.Option(help="compare the final weights with the starting model's (reads both)")
    ] = True,
) -> None:
    """Say what went wrong in an RL run, with its numbers and what to try: grader failures, an answer format
    never found, no signal (equal rewards in a group), a frozen policy, entropy collapse, updates too large,
    reward hacking (the reward rose, held-out accuracy did not), a stall."""
    from rft.rl.diagnose import diagnose as run_diagnosis
    from rft.rl.diagnose import rl_runs

    if not run.is_dir():
        fail(f"no such folder: {run}")
    runs = rl_runs(run)
    if not runs:
        fail(f"{run} holds no grpo/ppo run (config.yaml, metrics.jsonl with rewards, rollouts.jsonl)")
    for r in runs:
        for line in run_diagnosis(r, weights=weights).lines():
            out.print(escape(line), soft_wrap=True, highlight=False)


def _env_id(task: str) -> str:
    """A task id (`arithmetic-v0`, `rft/arithmetic-v0`) or a suite YAML file, registered on the way."""
    import rft.envs

    with user_errors(rft.envs.SuiteError):
        return rft.envs.register_suite(rft.envs.suite_path(task))


@task_app.command("list")
def task_list(
    reasoning_gym: Annotated[
        bool, typer.Option("--reasoning-gym", help="list reasoning-gym's datasets")
    ] = False,
) -> None:
    """The registered tasks: built-in suites and those in $RFT_TASKS (a file that does not load: a red row)."""
    import rft.envs
    from rft.app.rgym_cli import REASONING_GYM_HINT, list_reasoning_gym

    if reasoning_gym:
        return list_reasoning_gym()

    table = Table("env id", "source", "grader", "held-out", "description")
    for env_id in rft.envs.registered_ids():
        s = rft.envs.get_suite(env_id)
        src = s.source.name if s.source.type != "jsonl" else Path(s.source.path).name
        table.add_row(env_id, f"{s.source.type}: {src}", s.grader["type"], f"{s.split:g}", s.description)
    for b in rft.envs.broken_suites():  # kept aside so that the others work; using it raises this error
        table.add_row(
            b.env_id, f"[red]broken: {escape(b.path.name)}[/red]", "", "", f"[red]{escape(b.error)}[/red]"
        )
    out.print(table)
    out.print(escape(REASONING_GYM_HINT), highlight=False, soft_wrap=True)


@task_app.command("show")
def task_show(
    task: Annotated[str, typer.Argument(help="task id (arithmetic-v0) or a suite .yaml file")],
    limit: Annotated[int, typer.Option("--limit", help="how many problems")] = 3,
    split: Annotated[str, typer.Option(help="train or heldout")] = "train",
    seed: Annotated[int, typer.Option(help="seed of the first reset")] = 0,
    n: Annotated[int | None, typer.Option("--n", hidden=True, help="deprecated: --limit")] = None,
) -> None:
    """Render sample prompts and their references."""
    import gymnasium

    from rft.envs import SuiteError

    env = gymnasium.make(_env_id(task))
    with user_errors(SuiteError), closing(env):
        for k in range(limit if n is None else n):
            obs, info = env.reset(seed=seed + k, options={"split": split})
            out.rule(f"{info['suite']} {info['split']} #{info['index']} id={info['id']}")
            for m in json.loads(obs):
                out.print(f"[bold]{m['role']}:[/bold] {escape(m['content'])}", highlight=False)
            out.print(f"[bold]reference:[/bold] {escape(str(info['reference']))}", highlight=False)


@task_app.command("check")
def task_check(
    task: Annotated[str, typer.Argument(help="task id (arithmetic-v0) or a suite .yaml file")],
    n: Annotated[int, typer.Option("--n", help="how many train problems to step through")] = 3,
    every: Annotated[
        bool, typer.Option("--all", help="step every item (a benchmark's golds all score 1)")
    ] = False,
) -> None:
    """Reference answers score 1, empty and decoy answers 0, seeded resets repeat, splits are disjoint."""
    from rft.envs import SuiteError
    from rft.envs.check import check_task

    with user_errors(SuiteError):  # e.g. the data file is missing
        report = check_task(_env_id(task), n=None if every else n)
    for c in report.checks:
        mark = "[green]ok[/green]  " if c.ok else "[red]FAIL[/red]"
        shown = not c.ok or c.name.startswith(("no held-out", "sandbox "))
        detail = c.detail if c.detail and shown else ""
        out.print(f"{mark} {c.name}" + (f"  ({escape(detail)})" if detail else ""))
    out.print(f"{report.env_id}: {'all checks passed' if report.ok else 'FAILED'}")
    raise typer.Exit(0 if report.ok else 1)


def _train(kind: str, config: Path | None, overrides: list[str] | None, resume: bool) -> None:
    from rft.app.pipeline import stage_class, train_stage
    from rft.config import ConfigError, load_config
    from rft.runs import RunError

    with user_errors(ConfigError, prefix="invalid config: "):
        cfg: Any = load_config(stage_class(kind), config, overrides or [])
    checked_model(cfg.model)  # before the run folder and the progress bar
    with user_errors(RunError, ValueError), progress_bar(out, kind, cfg.steps or None) as tick:
        final = train_stage(kind, cfg, resume, tick)  # sft/dpo: steps 0 runs `epochs` passes
    out.print(f"run folder: {cfg.out}")
    if kind in ("sft", "dpo"):
        out.print(f"model for the next stage: {Path(cfg.out) / 'model'}", soft_wrap=True)
    for k, v in final.items():
        out.print(f"{k} = {v:.4g}")
    if kind in ("grpo", "ppo"):
        _verdicts(Path(cfg.out))


@train_app.command("sft")
def train_sft(
    config: Annotated[Path | None, typer.Option("--config", help="recipe YAML")] = None,
    set_: Annotated[list[str] | None, set_option("sft")] = None,
) -> None:
    """Supervised warm start on a suite's worked solutions or grader-passing samples (rft/sft_dpo/sft.py)."""
    _train("sft", config, set_, False)


@train_app.command("dpo")
def train_dpo(
    config: Annotated[Path | None, typer.Option("--config", help="recipe YAML")] = None,
    set_: Annotated[list[str] | None, set_option("dpo")] = None,
) -> None:
    """Preferences from graded samples: a passing sample chosen over a failing one (rft/sft_dpo/dpo.py)."""
    _train("dpo", config, set_, False)


@train_app.command("grpo")
def train_grpo(
    config: Annotated[Path | None, typer.Option("--config", help="recipe YAML")] = None,
    set_: Annotated[list[str] | None, set_option("grpo")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in `out` from its last checkpoint")] = False,
) -> None:
    """GRPO against the task suite's grader (rft/rl/grpo.py)."""
    _train("grpo", config, set_, resume)


@train_app.command("ppo")
def train_ppo(
    config: Annotated[Path | None, typer.Option("--config", help="recipe YAML")] = None,
    set_: Annotated[list[str] | None, set_option("ppo")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in `out` from its last checkpoint")] = False,
) -> None:
    """PPO with a value head against the task suite's grader (rft/rl/ppo.py)."""
    _train("ppo", config, set_, resume)


@app.command("export")
def export(
    run: Annotated[Path, typer.Argument(help="a run folder, or one of its checkpoints")],
    dest: Annotated[Path, typer.Argument(help="the new model folder")],
    base_model: Annotated[str | None, typer.Option(help="the base of a LoRA run, if not recorded")] = None,
) -> None:
    """Write a standalone model folder (LoRA merged) that transformers and vLLM load."""
    from rft.runs import RunError, export_model

    with user_errors(RunError, ValueError, FileNotFoundError):
        path = export_model(run, dest, base_model=base_model)
    out.print(f"exported to {path}")


@app.command("sample")
def sample(
    model: Annotated[str, typer.Option("--model", help="model id, model folder or run folder")],
    suite: Annotated[
        str, typer.Option("--suite", help="task id, suite .yaml, or a mix: a:2,b:1 or a mix .yaml")
    ],
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file of graded samples")],
    n: Annotated[int, typer.Option("--n", help="samples per problem")] = 8,
    split: Annotated[str, typer.Option(help="train or heldout")] = "train",
    limit: Annotated[int | None, typer.Option(help="the first N problems of the split only")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    temperature: Annotated[float, typer.Option()] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(help="tokens per model turn")] = 256,
    workers: Annotated[int, typer.Option(help="grading processes (0: in this process)")] = 1,
    threads: Annotated[int, typer.Option(help="torch threads (1 suits tiny models on CPU)")] = 1,
    chat: Annotated[str, typer.Option(help=CHAT_HELP)] = "",
) -> None:
    """Write n graded samples per problem: rejection-sampled SFT data and DPO pairs are built from them."""
    from rft.envs import SuiteError
    from rft.eval.samples import sample_suite

    if split not in ("train", "heldout"):
        fail(f"--split must be train or heldout, got {split!r}")
    path = checked_model(model)
    with user_errors(SuiteError, ValueError), progress_bar(out, "sample") as tick:
        res = sample_suite(
            path, suite, out_file, n=n, split=split, limit=limit, seed=seed,  # type: ignore[arg-type]
            temperature=temperature, max_new_tokens=max_new_tokens, grader_workers=workers,
            torch_threads=threads, progress=tick, chat=parse_chat(chat),
        )  # fmt: skip
    out.print(
        f"{res['rows']} samples of {res['problems']} problems -> {res['path']}: pass rate {res['pass_rate']:.3f}, "
        f"{res['mixed_problems']} problems with passing and failing samples, {res['grader_failed']} grader failures"
        + (
            ""
            if len(res["per_suite"]) < 2
            else "; problems per suite: " + ", ".join(f"{k} {v}" for k, v in res["per_suite"].items())
        )
    )


@task_app.command("filter")
def task_filter(
    model: Annotated[str, typer.Option("--model", help="model id, model folder or run folder")],
    suite: Annotated[str, typer.Option("--suite", help="task id or suite .yaml")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the filtered suite")],
    band: Annotated[str, typer.Option(help="keep pass rates in low,high")] = "0.1,0.9",
    n: Annotated[int, typer.Option("--n", help="samples per problem")] = 8,
    limit: Annotated[int | None, typer.Option(help="look at the first N train problems only")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="tokens per sample")] = 64,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (1 suits tiny models on CPU)")] = 1,
) -> None:
    """Keep the train problems the model solves sometimes but not always (the ones GRPO learns from)."""
    from rft.envs import SuiteError
    from rft.eval.difficulty import filter_suite

    try:
        lo, hi = (float(x) for x in band.split(","))
    except ValueError:
        fail(f"--band takes two numbers like 0.1,0.9, got {band!r}")
    path = checked_model(model)
    with user_errors(SuiteError, ValueError), progress_bar(out, "filter") as tick:
        res = filter_suite(path, suite, out_dir, band=(lo, hi), n=n, limit=limit, max_new_tokens=max_new_tokens,
                           seed=seed, torch_threads=threads, progress=tick)  # fmt: skip
    out.print(f"kept {res.kept} of {res.total} problems -> {res.suite_path}")


task_app.command("overlap", epilog=OVERLAP_EPILOG)(overlap_cmd)
app.command("eval")(eval_cmd)
app.command("compare")(compare_cmd)
app.command("view")(view_cmd)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
