"""`rft run PIPELINE.yaml`: training stages in order from one config, each stage's model the next one's
input, every model evaluated on the held-out split, one report at the end.

    out: runs/my-pipeline
    model: Qwen/Qwen2.5-0.5B-Instruct      # or {tiny: {...}}: build a tiny model from the suite's text
    suite: rft/gsm8k-v0                    # the stages' default suite
    eval: {limit: 200, max_new_tokens: 256} # after every stage (and of the input model, "base")
    stages:
      - {name: sft, type: sft, limit: 1000, steps: 250}
      - {name: grpo, type: grpo, offset: 1000, steps: 200}
      - {name: gsm8k-4, type: eval, n: 4, ks: [1, 4]}   # an extra evaluation of the current model

A stage entry is `name`, `type` (sft, dpo, grpo, ppo, eval) and that stage's config keys (`rft train <type>`
recipes; `model` and `out` are filled in). A dpo stage without `samples` samples its input model first
(`sample: {n: 8, ...}`). `pipeline.json` in `out` records what finished; running the pipeline again skips
finished stages (their config unchanged), resumes a killed grpo/ppo stage from its last checkpoint and
starts a failed sft/dpo stage again. `--from STAGE` reruns that stage and the ones after it.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from rft.app.console import Bar, BarFactory
from rft.app.pipeline_config import (
    TRAINING,
    Pipeline,
    PipelineError,
    PipelineEval,
    Stage,
    TinySpec,
    load_pipeline,
    plain_pipeline,
    stage_class,
)
from rft.config import to_dict
from rft.eval.spec import EvalSpec

__all__ = ["Pipeline", "Stage", "TinySpec", "PipelineEval", "PipelineError", "load_pipeline", "run_pipeline",
           "stage_class", "train_stage"]  # fmt: skip


# ---- state -------------------------------------------------------------------------------------------


class _State:
    """`pipeline.json`: per stage, its status, resolved config, output model and evaluation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stages: dict[str, dict[str, Any]] = {}
        if path.is_file():
            self.stages = json.loads(path.read_text())["stages"]

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stages": self.stages}, indent=2) + "\n")
        tmp.replace(self.path)

    def mark(self, name: str, **fields: Any) -> None:
        self.stages.setdefault(name, {}).update(fields)
        self.save()


# ---- running -----------------------------------------------------------------------------------------


@contextmanager
def _no_bar(label: str, total: int | None) -> Iterator[Bar]:
    yield lambda done, total=None, metrics=None: None


def _build_tiny(p: Pipeline, folder: Path) -> Path:
    """Train the tokenizer on the suite's train prompts and solutions, build the model, save both."""
    import torch

    from rft.envs import get_suite
    from rft.envs.mix import read_mix
    from rft.sft_dpo.data import solution_text
    from rft.tiny import make_model, make_tokenizer

    spec = p.tiny
    assert spec is not None and p.suite is not None
    corpus = []
    for suite in (get_suite(name) for name in read_mix(p.suite).suites):  # a mix: each of its suites
        for item in suite.items("train")[: spec.corpus]:
            corpus += [m["content"] for m in suite.messages(item)]
            if suite.solution is not None:
                corpus.append(solution_text(suite, item) or "")
    tok = make_tokenizer(corpus, vocab_size=spec.vocab_size)
    with torch.random.fork_rng(devices=[]):
        model = make_model(tok, hidden=spec.hidden, layers=spec.layers, heads=spec.heads, seed=spec.seed)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _evaluate(model: str, spec: EvalSpec, folder: Path, label: str, bar: BarFactory) -> Path:
    from rft.eval.evaluate import evaluate_suite
    from rft.sft_dpo.data import solution_text

    shutil.rmtree(folder, ignore_errors=True)
    with bar(f"eval {label}", None) as tick:  # few-shot replies as `rft eval` writes them
        evaluate_suite(
            model, spec, folder, solution=solution_text, progress=lambda done, total: tick(done, total)
        )
    return folder


def train_stage(kind: str, cfg: Any, resume: bool, tick: Bar) -> dict[str, float]:
    """Run one training stage (sft, dpo, grpo, ppo) on its config; returns its final metrics. A model that
    cannot be found fails first (`rft.models.ModelError`), before the run folder is made."""
    from rft.models import resolve_model_path

    resolve_model_path(cfg.model)
    if kind == "sft":
        from rft.sft_dpo.sft import train
    elif kind == "dpo":
        from rft.sft_dpo.dpo import train  # type: ignore[assignment]
    elif kind == "grpo":
        from rft.rl.grpo import train  # type: ignore[assignment]
    else:
        from rft.rl.ppo import train  # type: ignore[assignment]
    return train(cfg, resume=resume, progress=lambda step, metrics: tick(step, cfg.steps or None, metrics))


def _sample_for_dpo(stage: Stage, cfg: Any, bar: BarFactory) -> None:
    from rft.eval.samples import sample_suite

    opts: dict[str, Any] = {"n": 8, "temperature": 1.0, "max_new_tokens": 256, "limit": None} | dict(
        stage.config.get("sample") or {}
    )
    with bar(f"{stage.name} sample", None) as tick:
        sample_suite(cfg.model, cfg.suite, cfg.samples, grader_workers=cfg.grader_workers, torch_threads=cfg.torch_threads,
                     progress=lambda done, total: tick(done, total), **opts)  # fmt: skip


def _output_model(kind: str, cfg: Any) -> str:
    """Where a training stage leaves its model: every stage ends with a standalone ``out/model`` (a grpo/ppo
    run writes it from its last checkpoint, LoRA merged); a grpo/ppo run that ended before that existed
    is exported there now."""
    folder = Path(cfg.out) / "model"
    if kind in ("grpo", "ppo") and not (folder / "config.json").is_file():
        from rft.runs import export_model

        shutil.rmtree(folder, ignore_errors=True)
        export_model(cfg.out, folder, base_model=cfg.model)
    return str(folder)


def _restart(p: Pipeline, state: _State, name: str) -> None:
    names = ["base", *(s.name for s in p.stages)]
    if name not in names:
        raise PipelineError(f"--from {name}: no such stage; stages are {', '.join(names)}")
    for n in names[names.index(name) :]:
        state.stages.pop(n, None)
        for folder in (Path(p.out) / n, Path(p.out) / "eval" / n):
            shutil.rmtree(folder, ignore_errors=True)
    state.save()


def run_pipeline(
    p: Pipeline,
    *,
    restart_from: str | None = None,
    bar: BarFactory = _no_bar,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Run (or continue) the pipeline; returns the report's summary (see `rft.app.report.write_report`)."""
    from rft.app.report import write_report

    out = Path(p.out)
    if not p.tiny:
        from rft.models import resolve_model_path

        resolve_model_path(str(p.model))  # a wrong model fails here, before the pipeline's folder is made
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.yaml").write_text(yaml.safe_dump(plain_pipeline(p), sort_keys=False))
    state = _State(out / "pipeline.json")
    if restart_from is not None:
        _restart(p, state, restart_from)
    # -- the input model ("base")
    base_cfg = {"model": p.model, "tiny": to_dict(p.tiny) if p.tiny else None, "suite": p.suite}
    rec = state.stages.get("base", {})
    if rec.get("status") == "done" and rec.get("config") != base_cfg:
        raise PipelineError(_changed("base", p.out))
    if rec.get("status") != "done":
        t0 = time.perf_counter()
        model = str(_build_tiny(p, out / "base" / "model")) if p.tiny else str(p.model)
        state.mark("base", status="done", type="base", config=base_cfg, model=model,
                   seconds=time.perf_counter() - t0)  # fmt: skip
        if p.tiny:
            say(f"base: built a tiny model ({_params(model)} parameters) in {model}")
    model = state.stages["base"]["model"]
    _evaluate_stage(p, state, "base", model, bar, say)
    # -- the stages
    for stage in p.stages:
        cfg = p.stage_config(stage, model)
        resolved = cfg if stage.type == "eval" else to_dict(cfg)
        rec = state.stages.get(stage.name, {})
        if rec.get("status") == "done":
            if rec.get("config") != resolved:
                raise PipelineError(_changed(stage.name, p.out))
            say(f"{stage.name}: done before, skipped")
        elif stage.type == "eval":
            state.mark(stage.name, status="running", type="eval", config=resolved)
            t0 = time.perf_counter()
            folder = _evaluate(model, p.eval_spec(stage), Path(p.out) / stage.name, stage.name, bar)
            state.mark(
                stage.name, status="done", eval=str(folder), model=model, seconds=time.perf_counter() - t0
            )
            continue
        else:
            resume = (
                stage.type in ("grpo", "ppo")
                and rec.get("status") in ("running", "failed")
                and _has_checkpoint(cfg.out)
            )
            if not resume:
                shutil.rmtree(cfg.out, ignore_errors=True)  # a fresh start (sft/dpo cannot resume)
            say(f"{stage.name}: {'resuming' if resume else 'training'} {stage.type} from {model}")
            state.mark(stage.name, status="running", type=stage.type, config=resolved, input=model)
            t0 = (
                time.perf_counter() - float(rec.get("seconds_before", 0.0)) if resume else time.perf_counter()
            )
            try:
                if stage.type == "dpo" and "samples" not in stage.config:
                    _sample_for_dpo(stage, cfg, bar)
                total = cfg.steps or None
                with bar(stage.name, total) as tick:
                    train_stage(stage.type, cfg, resume, tick)
                output = _output_model(stage.type, cfg)
            except BaseException:
                state.mark(stage.name, status="failed", seconds_before=time.perf_counter() - t0)
                raise
            state.mark(stage.name, status="done", model=output, seconds=time.perf_counter() - t0)
        if stage.type in TRAINING:
            model = state.stages[stage.name]["model"]
            _evaluate_stage(p, state, stage.name, model, bar, say)
    return write_report(p, state.stages)


def _evaluate_stage(
    p: Pipeline, state: _State, name: str, model: str, bar: BarFactory, say: Callable[[str], None]
) -> None:
    """Evaluate a stage's model unless that evaluation (same settings) is already there."""
    spec = p.eval_spec()
    settings = to_dict(spec)
    rec = state.stages[name]
    if rec.get("eval_config") == settings and rec.get("eval") and Path(rec["eval"], "results.json").is_file():
        return
    t0 = time.perf_counter()
    folder = _evaluate(model, spec, Path(p.out) / "eval" / name, name, bar)
    res = json.loads((folder / "results.json").read_text())["results"]
    first = next(r for r in res if r["metric"] == f"pass@{p.eval.ks[0]}")
    state.mark(name, eval=str(folder), eval_config=settings, eval_seconds=time.perf_counter() - t0)
    lo, hi = first["ci95"]
    say(f"{name}: {first['metric']} {first['value']:.3f} [{lo:.3f}, {hi:.3f}] on {first['n_problems']} "
        f"{first['split']} problems of {first['suite']}")  # fmt: skip


def _has_checkpoint(out: str) -> bool:
    from rft.runs import latest_checkpoint

    return latest_checkpoint(Path(out) / "checkpoints") is not None


def _changed(name: str, out: str) -> str:
    return (
        f"stage {name!r} finished with another config than the one given now; to run it and the stages after "
        f"it again: --from {name}; or keep both: --set out=<a new folder> (now {out})"
    )


def _params(model: str) -> str:
    from safetensors import safe_open

    with safe_open(str(Path(model) / "model.safetensors"), "pt") as f:
        n = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (no __iter__)
    return f"{n / 1e6:.2f}M"
