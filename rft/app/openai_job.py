"""`rft import openai-job`: an OpenAI reinforcement fine-tuning (RFT) job as an rft suite and an `rft run`
pipeline on an open model.

What OpenAI documents, and what this module reads:

- The dataset (https://platform.openai.com/docs/api-reference/fine-tuning/reinforcement-input, and the
  guide https://platform.openai.com/docs/guides/reinforcement-fine-tuning, "Prepare your dataset"): JSONL,
  one example a line; ``messages`` (and ``tools``) are the only reserved keys, every other field is
  available to graders as ``{{ item.x }}``; the training and validation files share the format; the model
  answers the conversation, so it ends with a user turn. Here every row's ``messages`` become its prompt
  (`rft.envs.suite.chat_messages` validates them), the other fields the item.
- The job (the guide's "Create a job with the API"; ``POST /v1/fine_tuning/jobs``): ``training_file``,
  ``validation_file``, ``model``, ``seed``, ``suffix`` and ``method: {"type": "reinforcement",
  "reinforcement": {"grader": ..., "hyperparameters": ..., "response_format": ...}}``. The files are
  OpenAI file ids: the local files are given with ``--train`` / ``--valid``.
- The hyperparameters (``ReinforcementHyperparameters`` in openai-python,
  ``src/openai/types/fine_tuning/reinforcement_hyperparameters.py``): ``batch_size``, ``compute_multiplier``,
  ``eval_interval``, ``eval_samples``, ``learning_rate_multiplier``, ``n_epochs`` (each ``"auto"`` or a
  number) and ``reasoning_effort`` (``default``, ``low``, ``medium``, ``high``). `map_hyperparameters` says
  what each becomes here, or that it has no counterpart and what was chosen instead.
- The graders (https://platform.openai.com/docs/guides/graders): ``string_check``, ``text_similarity``,
  ``score_model``, ``label_model``, ``python``, ``multi``; `rft.graders` runs their JSON as it is.
- The dashboard (the guide's appendix "Training metrics"): ``train_reward_mean``, ``valid_reward_mean``,
  per-grader scores of a ``multi`` grader, ``full_valid_mean_parse_error`` and token counts. The pipeline's
  report shows their counterparts (`rft.app.report`: `reward/mean`, `eval/reward`, `reward/grader/<name>`,
  `grader/parse_error_rate`, `rollout/completion_len`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["JobError", "Mapped", "Imported", "read_rows", "map_hyperparameters", "import_job", "BASE_LR"]

BASE_LR = 1e-5  # the rate learning_rate_multiplier multiplies: rft GRPO's default for full weights
BASE_GROUP = 8  # samples per prompt at compute_multiplier 1
AUTO_BATCH = 8  # batch_size "auto": prompts per step
EFFORT_TOKENS = {"low": 512, "default": 1024, "medium": 1024, "high": 2048}  # answer-length budget
HYPERPARAMETERS = ("batch_size", "compute_multiplier", "eval_interval", "eval_samples",
                   "learning_rate_multiplier", "n_epochs", "reasoning_effort", "seed")  # fmt: skip
MAX_VALID = 1000  # OpenAI's limit on validation examples; the in-training evaluation takes at most this many


class JobError(ValueError):
    """The job cannot be imported as given; the message names the file (and line) and what to fix."""


@dataclass(frozen=True)
class Mapped:
    """One row of the mapping table: an OpenAI setting, its value, and what rft does with it."""

    openai: str
    value: Any
    rft: str  # the rft setting and its value, or "no counterpart: chose X because Y"


@dataclass(frozen=True)
class Imported:
    suite: Path
    pipeline: Path
    table: list[Mapped]
    train_rows: int
    valid_rows: int


def read_rows(path: Path, what: str) -> list[dict[str, Any]]:
    """The rows of an RFT JSONL file, each checked: a JSON object whose ``messages`` end with a user turn."""
    from rft.envs.suite import SuiteError, chat_messages

    if not path.is_file():
        raise JobError(f"{what} file {path} does not exist")
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise JobError(f"{path}:{n}: not JSON ({e.msg}); each line must be one JSON object") from None
            if not isinstance(row, dict) or "messages" not in row:
                raise JobError(
                    f"{path}:{n}: each line must be an object with `messages` (and the fields the grader reads "
                    f"as item.*), got {type(row).__name__}{' without messages' if isinstance(row, dict) else ''}"
                )
            try:
                chat_messages(row["messages"], f"{path}:{n}")
            except SuiteError as e:
                raise JobError(str(e)) from None
            rows.append(row)
    if not rows:
        raise JobError(f"{what} file {path} has no rows")
    return rows


def _number(hp: dict[str, Any], key: str, kind: type, auto: Any, low: float) -> tuple[Any, bool]:
    """(value, was auto) of a hyperparameter that is "auto" or a number >= low."""
    value = hp.get(key, "auto")
    if value == "auto" or value is None:
        return auto, True
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
        raise JobError(
            f"hyperparameter {key} must be 'auto' or {'an integer' if kind is int else 'a number'}, got {value!r}"
        )
    if value < low:
        raise JobError(f"hyperparameter {key} must be >= {low}, got {value}")
    return kind(value), False


def map_hyperparameters(
    hp: dict[str, Any],
    n_train: int,
    n_valid: int,
    *,
    base_lr: float = BASE_LR,
    max_new_tokens: int | None = None,
) -> tuple[dict[str, Any], list[Mapped]]:
    """OpenAI's RFT hyperparameters as rft settings: ({grpo: stage keys, eval: pipeline eval keys, seed},
    the table rows saying what each became). `max_new_tokens` overrides the budget reasoning_effort picks."""
    unknown = sorted(set(hp) - set(HYPERPARAMETERS))
    if unknown:
        raise JobError(
            f"unknown hyperparameters {unknown}; OpenAI's RFT ones are {', '.join(HYPERPARAMETERS)}"
        )
    rows: list[Mapped] = []

    def say(key: str, text: str) -> None:
        rows.append(Mapped(key, hp.get(key, "default" if key == "reasoning_effort" else "auto"), text))

    batch, auto = _number(hp, "batch_size", int, min(AUTO_BATCH, n_train), 1)
    auto_note = f" (auto: {AUTO_BATCH}, at most the {n_train} train rows)" if auto else ""
    say("batch_size", f"prompts_per_step: {batch}{auto_note}")
    mult, auto = _number(hp, "compute_multiplier", float, 1.0, 1e-9)
    group = max(2, round(BASE_GROUP * mult))
    say(
        "compute_multiplier",
        f"group_size: {group} (samples per prompt = {BASE_GROUP} x multiplier, at least 2: the compute spent "
        "exploring is the number of samples)",
    )
    epochs, auto = _number(hp, "n_epochs", float, 1.0, 1e-9)
    steps = max(1, math.ceil(epochs * n_train / batch))
    auto_note = "; auto: 1 epoch" if auto else ""
    say(
        "n_epochs",
        f"steps: {steps} (= ceil({epochs:g} epochs x {n_train} rows / {batch} per step), as OpenAI counts "
        f"steps{auto_note})",
    )
    lr_mult, _ = _number(hp, "learning_rate_multiplier", float, 1.0, 1e-12)
    lr = base_lr * lr_mult
    say(
        "learning_rate_multiplier",
        f"lr: {lr:.3g} (= base {base_lr:g} x {lr_mult:g}; the base is rft GRPO's default for full weights, "
        "OpenAI's own base rate is not published; change it with --base-lr)",
    )
    interval, auto = _number(hp, "eval_interval", int, max(1, steps // 10), 1)
    valid_n = min(n_valid, MAX_VALID)
    auto_note = " (auto: about 10 evaluations)" if auto else ""
    say(
        "eval_interval",
        f"grpo eval.every: {interval} steps, on {valid_n} validation rows (eval.n){auto_note}",
    )
    samples, _ = _number(hp, "eval_samples", int, 1, 1)
    how = "temperature 1.0" if samples > 1 else "greedy"
    say(
        "eval_samples",
        "no counterpart during training: chose 1 greedy answer per validation row (rft's in-training evaluation "
        "is greedy, so more samples would be the same answer); the pipeline's final evaluation samples "
        f"{samples} per row (eval.n: {samples}, {how})",
    )
    effort = hp.get("reasoning_effort", "default")
    if effort not in EFFORT_TOKENS:
        raise JobError(f"reasoning_effort must be one of {', '.join(EFFORT_TOKENS)}, got {effort!r}")
    tokens = max_new_tokens or EFFORT_TOKENS[effort]
    why = (
        "set by --max-new-tokens"
        if max_new_tokens
        else f"for {effort!r}: low 512, medium 1024, high 2048; --max-new-tokens sets another"
    )
    say(
        "reasoning_effort",
        f"no counterpart: an open model has no reasoning-effort switch; chose gen.max_new_tokens {tokens} "
        f"(the answer-length budget, {why})",
    )
    seed, _ = _number(hp, "seed", int, 0, 0)
    say(
        "seed",
        f"seed: {seed} (every stage's sampling and data order)" + ("" if "seed" in hp else "; none given: 0"),
    )
    grpo = {
        "steps": steps,
        "prompts_per_step": batch,
        "group_size": group,
        "lr": lr,
        "gen": {"temperature": 1.0, "max_new_tokens": tokens},
        "eval": {"every": interval, "n": valid_n},
    }
    evaluation = {"split": "heldout", "limit": None, "n": samples, "ks": [1], "max_new_tokens": tokens}
    return {"grpo": grpo, "eval": evaluation, "seed": seed}, rows


def _judges(spec: Any, base_url: str | None, found: list[str]) -> Any:
    """The grader spec with `base_url` set on every model grader that has none; `found` collects their
    names and models."""
    if isinstance(spec, dict):
        if spec.get("type") in ("score_model", "label_model"):
            found.append(f"{spec.get('name') or spec['type']} ({spec.get('model')})")
            if base_url and not spec.get("base_url"):
                spec = {**spec, "base_url": base_url}
        if isinstance(spec.get("graders"), dict):
            spec = {**spec, "graders": {k: _judges(v, base_url, found) for k, v in spec["graders"].items()}}
    return spec


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise JobError(f"{what} file {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise JobError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None


def _job_parts(
    job: dict[str, Any], path: Path
) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, Any]]:
    """(grader, hyperparameters, the rest of method.reinforcement) of a fine-tuning job create body."""
    method = job.get("method")
    if not isinstance(method, dict) or method.get("type") != "reinforcement":
        kind = method.get("type") if isinstance(method, dict) else None
        raise JobError(
            f"{path}: not a reinforcement job (method.type is {kind!r}); rft import openai-job takes the body of "
            'POST /v1/fine_tuning/jobs with "method": {"type": "reinforcement", "reinforcement": {...}}'
        )
    rl = method.get("reinforcement") or {}
    hp = rl.get("hyperparameters") or {} if isinstance(rl, dict) else None
    if not isinstance(hp, dict):
        raise JobError(
            f"{path}: method.reinforcement must be an object holding grader and hyperparameters (an object)"
        )
    if "seed" in job and "seed" not in hp:
        hp = {**hp, "seed": job["seed"]}
    rest = {k: v for k, v in rl.items() if k not in ("grader", "hyperparameters")}
    return rl.get("grader"), hp, rest


def import_job(
    train: Path,
    grader: Path | None,
    model: str,
    out: Path,
    *,
    valid: Path | None = None,
    hyperparameters: Path | None = None,
    job: Path | None = None,
    name: str | None = None,
    split: float = 0.1,
    base_lr: float = BASE_LR,
    max_new_tokens: int | None = None,
    judge_base_url: str | None = None,
    reference: str | None = None,
) -> Imported:
    """Write ``out/<name>-v0.yaml`` (the suite) and ``out/pipeline.yaml`` (a GRPO stage on `model`, its
    evaluations); `model` "tiny" builds a tiny model from the data (a smoke test). `reference` names the row
    field holding a gold answer, if there is one (`item.reference`: `rft task check` then checks that it
    scores 1 and decoys 0). Returns the mapping."""
    from rft.app.pipeline_config import load_pipeline
    from rft.config import ConfigError
    from rft.envs import SuiteError, decontamination, load_suite
    from rft.graders import GraderSpecError, load_grader

    if hyperparameters is not None and job is not None:
        raise JobError("give --hyperparameters or --job (whose method.reinforcement holds them), not both")
    train_rows = read_rows(train.resolve(), "--train")
    valid_rows = read_rows(valid.resolve(), "--valid") if valid is not None else []
    spec: Any = None
    hp: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    job_body: dict[str, Any] = {}
    if job is not None:
        job_body = _read_json(job, "--job")
        if not isinstance(job_body, dict):
            raise JobError(f"{job}: a job is a JSON object (the body of POST /v1/fine_tuning/jobs)")
        spec, hp, extra = _job_parts(job_body, job)
    if hyperparameters is not None:
        hp = _read_json(hyperparameters, "--hyperparameters")
        if not isinstance(hp, dict):
            raise JobError(f'{hyperparameters}: hyperparameters are a JSON object like {{"n_epochs": 2}}')
    if grader is not None:
        spec = _read_json(grader, "--grader")
    if spec is None:
        raise JobError("no grader: give --grader grader.json, or a --job whose method.reinforcement has one")
    found: list[str] = []
    spec = _judges(spec, judge_base_url, found)
    try:
        load_grader(spec)
    except GraderSpecError as e:
        raise JobError(f"the grader does not load: {e}") from None
    stem = name or job_body.get("suffix") or train.stem
    slug = re.sub(r"[^a-z0-9_.\-]+", "-", str(stem).lower()).strip("-.") or "openai-job"
    suite_id = f"{slug}-v0"
    suite: dict[str, Any] = {
        "id": suite_id,
        "description": f"Imported from an OpenAI RFT job: train {train.name} ({len(train_rows)} rows)"
        + (f", validation {valid.name} ({len(valid_rows)} rows)" if valid else ""),
        "source": {"type": "jsonl", "path": str(train.resolve())},
        "fields": {"reference": reference},  # None: graders read the rows' own fields
        "prompt": {"messages": "{{ item.messages }}"},
        "grader": spec,
    }
    if reference is not None:  # rft task check: the gold answer, as it is, must score 1
        suite["check"] = {"completion": "{{ item.reference }}"}
    if valid is not None:
        suite["heldout_source"] = {"type": "jsonl", "path": str(valid.resolve())}
    else:
        suite["split"] = split
    out.mkdir(parents=True, exist_ok=True)
    suite_path = (out / f"{suite_id}.yaml").resolve()
    suite_path.write_text(yaml.safe_dump(suite, sort_keys=False, allow_unicode=True, width=1000))
    try:
        loaded = load_suite(suite_path)
        n_train, n_valid = len(loaded.items("train")), len(loaded.items("heldout"))
    except SuiteError as e:
        raise JobError(f"the suite written to {suite_path} does not load: {e}") from None
    if not n_valid:
        raise JobError(
            f"no --valid file, and split {split:g} of the {len(train_rows)} training rows holds out none: give "
            "--valid or a larger --split"
        )
    settings, table = map_hyperparameters(
        hp, n_train, n_valid, base_lr=base_lr, max_new_tokens=max_new_tokens
    )

    def note(key: str, value: Any, text: str) -> None:
        table.append(Mapped(key, value, text))

    if valid is not None:
        note("validation_file", valid.name, f"the held-out split: heldout_source ({n_valid} rows)")
    else:
        note(
            "validation_file",
            None,
            f"none given: chose split {split:g} ({n_valid} of the {len(train_rows)} training rows, by a hash of "
            "each row, held out for validation and never trained on)",
        )
    same = sum(o.kind == "exact" for o in decontamination(loaded))
    if same:
        note(
            "validation overlap",
            same,
            f"warning: {same} validation prompts equal a training prompt: the validation reward overstates; "
            "`rft task check` lists them",
        )
    note("grader", spec.get("type"), "the suite's grader, as given (rft.graders runs OpenAI's JSON)")
    if found:
        default = "$RFT_JUDGE_BASE_URL, else $OPENAI_BASE_URL, else OpenAI's API"
        where = f"base_url {judge_base_url}" if judge_base_url else default
        note(
            "model graders",
            ", ".join(found),
            f"judge endpoint: {where} (serve an open judge with `rft serve`; its model name must match the "
            "grader's `model`)",
        )
    tiny = " (a tiny model built from the data)" if model == "tiny" else ""
    note("model", job_body.get("model", "not given"), f"model: {model}{tiny}")
    if "response_format" in extra:
        note(
            "response_format",
            "json_schema",
            "no counterpart: chose free text; a grader reading sample.output_json parses the answer as JSON and "
            "counts one that is not as unparseable (grader/parse_error_rate)",
        )
    for key in sorted(set(extra) - {"response_format"}):
        note(key, extra[key], "no counterpart: ignored")
    if any("tools" in r for r in train_rows):
        note("tools (rows)", "given", "no counterpart: ignored (the prompt is the messages alone)")
    pipeline: dict[str, Any] = {
        "out": str((out / "run").resolve()),
        "model": {"tiny": {}} if model == "tiny" else model,
        "suite": str(suite_path),
        "seed": settings["seed"],
        "eval": settings["eval"],
        "stages": [{"name": "grpo", "type": "grpo", **settings["grpo"]}],
    }
    header = "".join(f"# {r.openai} = {json.dumps(r.value)} -> {r.rft}\n" for r in table)
    pipeline_path = (out / "pipeline.yaml").resolve()
    pipeline_path.write_text(
        f"# `rft run {pipeline_path}`: the OpenAI RFT job imported by `rft import openai-job`.\n{header}"
        + yaml.safe_dump(pipeline, sort_keys=False, width=1000)
    )
    try:
        load_pipeline(pipeline_path)
    except (ConfigError, ValueError) as e:
        raise JobError(f"the pipeline written to {pipeline_path} does not load: {e}") from None
    return Imported(suite_path, pipeline_path, table, len(train_rows), len(valid_rows))
