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
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from .config import ConfigError, from_dict, to_dict

__all__ = ["Pipeline", "Stage", "TinySpec", "PipelineEval", "PipelineError", "load_pipeline", "run_pipeline",
           "stage_class", "train_stage"]  # fmt: skip

StageType = Literal["sft", "dpo", "grpo", "ppo", "eval"]
TRAINING = ("sft", "dpo", "grpo", "ppo")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_TOP_KEYS = ("out", "model", "suite", "eval", "stages", "seed")


class PipelineError(RuntimeError):
    """A pipeline cannot run as configured (the message says what to change)."""


# ---- config ------------------------------------------------------------------------------------------


@dataclass
class TinySpec:
    """A tiny Llama built from a config, with a tokenizer trained on the suite's train text (no downloads)."""

    vocab_size: int = 128
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    corpus: int = 1000  # train problems whose prompts and solutions train the tokenizer
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.vocab_size, self.hidden, self.layers, self.heads, self.corpus) < 1:
            raise ValueError("tiny: vocab_size, hidden, layers, heads and corpus must be >= 1")
        if self.hidden % self.heads:
            raise ValueError(f"tiny: hidden ({self.hidden}) must be divisible by heads ({self.heads})")


@dataclass
class PipelineEval:
    """The evaluation of every stage's model (`rft eval` settings)."""

    suite: str | None = None  # default: the pipeline's suite
    split: Literal["train", "heldout"] = "heldout"
    limit: int | None = 200  # the first `limit` problems of the split (None: all)
    n: int = 1  # samples per problem (1: greedy)
    ks: tuple[int, ...] = (1,)
    temperature: float | None = None  # None: greedy for n=1, else 1.0
    max_new_tokens: int = 256
    batch_prompts: int = 64
    grader_workers: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1 or not self.ks or not all(1 <= k <= self.n for k in self.ks):
            raise ValueError(f"eval: need n >= 1 and every k in 1..n, got n={self.n}, ks={list(self.ks)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"eval.limit must be >= 1 (or null: all), got {self.limit}")

    def kwargs(self) -> dict[str, Any]:
        """`evaluate_suite` keywords (less the suite)."""
        d = to_dict(self)
        d.pop("suite")
        return d


@dataclass
class Stage:
    name: str
    type: StageType
    config: dict[str, Any] = field(default_factory=dict)  # the stage's recipe keys


@dataclass
class Pipeline:
    stages: list[Stage]
    out: str = "runs/pipeline"
    model: str | None = None  # Hugging Face id or path of the input model
    tiny: TinySpec | None = None  # or: build a tiny model
    suite: str | None = None  # the default suite of stages and evaluation
    eval: PipelineEval = field(default_factory=PipelineEval)

    def __post_init__(self) -> None:
        if (self.model is None) == (self.tiny is None):
            raise ValueError(
                "give the input model: `model: <id or path>` or `model: {tiny: {...}}`, not both"
            )
        if not self.stages:
            raise ValueError("stages is empty: list at least one stage ({name: sft, type: sft, ...})")
        names = [s.name for s in self.stages]
        for s in self.stages:
            if not _NAME.fullmatch(s.name) or s.name in ("base", "compare", "eval", *_TOP_KEYS):
                raise ValueError(
                    f"stage name {s.name!r}: use letters, digits, '-', '_' (not base/eval/compare)"
                )
            if s.type not in (*TRAINING, "eval"):
                raise ValueError(
                    f"stage {s.name}: type must be one of sft, dpo, grpo, ppo, eval; got {s.type!r}"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        if self.eval.suite is None and self.suite is None:
            raise ValueError(
                "set `suite:` (the stages' default) or `eval.suite:` (what every stage is evaluated on)"
            )

    @property
    def eval_suite(self) -> str:
        return self.eval.suite or self.suite  # type: ignore[return-value]

    def stage_config(self, stage: Stage, model: str) -> Any:
        """The stage's config dataclass with its input model, its folder and the default suite filled in."""
        data = {k: v for k, v in stage.config.items() if k != "sample"}
        data.setdefault("suite", self.suite)
        if stage.type == "eval":
            return data  # evaluate_suite keywords, checked in `_check_eval`
        data = {**data, "model": model, "out": str(Path(self.out) / stage.name)}
        if stage.type == "dpo":
            data.setdefault("samples", str(Path(self.out) / stage.name / "samples.jsonl"))
        return from_dict(stage_class(stage.type), data, where=f"stages.{stage.name}")


def stage_class(kind: str) -> type:
    """The config dataclass of a training stage type (sft, dpo, grpo, ppo)."""
    if kind == "sft":
        from rft.sft_dpo.sft import SFTConfig

        return SFTConfig
    if kind == "dpo":
        from rft.sft_dpo.dpo import DPOConfig

        return DPOConfig
    if kind == "grpo":
        from .grpo import GRPOConfig

        return GRPOConfig
    from .ppo import PPOConfig

    return PPOConfig


_EVAL_KEYS = ("suite", "split", "limit", "n", "ks", "temperature", "max_new_tokens", "batch_prompts",
              "grader_workers", "seed", "fewshot", "top_p")  # fmt: skip


def _check_eval(stage: Stage, data: Mapping[str, Any]) -> None:
    bad = sorted(set(data) - set(_EVAL_KEYS))
    if bad:
        raise ConfigError(f"stages.{stage.name}: unknown eval keys {bad}; known: {', '.join(_EVAL_KEYS)}")
    if not data.get("suite"):
        raise ConfigError(f"stages.{stage.name}: an eval stage needs a suite (or set the pipeline's suite)")


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for key in path:
        data = data.setdefault(key, {})
        if not isinstance(data, dict):
            raise ConfigError(f"--set {dotted}: {key} is not a mapping")
    data[last] = value


def load_pipeline(source: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> Pipeline:
    """A pipeline from a YAML file (or a mapping) with `key=value` overrides: a top-level key
    (`out=runs/x`, `eval.limit=100`) or a stage's (`grpo.steps=50`, `sft.eval.every=10`)."""
    raw = dict(source) if isinstance(source, Mapping) else yaml.safe_load(Path(source).read_text()) or {}
    raw = json.loads(json.dumps(raw))  # a deep copy
    stages = raw.get("stages") or []
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages):
        raise ConfigError("stages must be a list of mappings: - {name: sft, type: sft, steps: 100}")
    by_name = {s.get("name"): s for s in stages}
    for o in overrides:
        key, sep, text = o.partition("=")
        if not sep:
            raise ConfigError(f"--set {o!r}: write key=value (grpo.steps=50, eval.limit=100)")
        value = yaml.safe_load(text)
        head = key.split(".")[0]
        if head in by_name and "." in key:
            _set(by_name[head], key.split(".", 1)[1], value)
        elif head in _TOP_KEYS:
            _set(raw, key, value)
        else:
            raise ConfigError(
                f"--set {key}: not a pipeline key ({', '.join(_TOP_KEYS)}) or stage ({', '.join(map(str, by_name))})"
            )
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown pipeline keys {unknown}; known: {', '.join(_TOP_KEYS)}")
    model = raw.pop("model", None)
    tiny = None
    if isinstance(model, dict):
        if set(model) != {"tiny"}:
            raise ConfigError("model: give an id/path, or {tiny: {vocab_size: 128, hidden: 128, ...}}")
        tiny, model = from_dict(TinySpec, model["tiny"] or {}, where="model.tiny"), None
    parsed = [
        Stage(name=str(s.get("name")), type=s.get("type"),  # type: ignore[arg-type]
              config={k: v for k, v in s.items() if k not in ("name", "type")})
        for s in stages
    ]  # fmt: skip
    try:
        p = Pipeline(
            stages=parsed,
            out=raw.get("out", "runs/pipeline"),
            model=model,
            tiny=tiny,
            suite=raw.get("suite"),
            eval=from_dict(PipelineEval, raw.get("eval") or {}, where="eval"),
        )
        for s in p.stages:  # every stage's config checked now, not after hours of the ones before it
            data = p.stage_config(s, "-")
            if s.type == "eval":
                _check_eval(s, data)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return p


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


class Bar(Protocol):
    """A progress bar's update: `done` of `total` (None: unknown), with metrics to show beside it."""

    def __call__(
        self, done: int, total: int | None = None, metrics: Mapping[str, float] | None = None
    ) -> None: ...


BarFactory = Callable[[str, int | None], AbstractContextManager[Bar]]  # (label, total) -> a bar while open


@contextmanager
def _no_bar(label: str, total: int | None) -> Iterator[Bar]:
    yield lambda done, total=None, metrics=None: None


def _build_tiny(p: Pipeline, folder: Path) -> Path:
    """Train the tokenizer on the suite's train prompts and solutions, build the model, save both."""
    import torch

    from rft.envs import get_suite
    from rft.sft_dpo.data import solution_text

    from .loop import suite_file
    from .tiny import make_model, make_tokenizer

    spec = p.tiny
    assert spec is not None and p.suite is not None
    suite = get_suite(suite_file(p.suite))
    corpus = []
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


def _evaluate(
    p: Pipeline, model: str, name: str, bar: BarFactory, extra: Mapping[str, Any] | None = None
) -> Path:
    from .evaluate import evaluate_suite

    folder = Path(p.out) / "eval" / name if extra is None else Path(p.out) / name
    kwargs = p.eval.kwargs() | dict(extra or {})
    suite = kwargs.pop("suite", None) or p.eval_suite
    shutil.rmtree(folder, ignore_errors=True)
    with bar(f"eval {name}", None) as tick:
        evaluate_suite(model, suite, folder, progress=lambda done, total: tick(done, total), **kwargs)
    return folder


def train_stage(kind: str, cfg: Any, resume: bool, tick: Bar) -> dict[str, float]:
    """Run one training stage (sft, dpo, grpo, ppo) on its config; returns its final metrics."""
    if kind == "sft":
        from rft.sft_dpo.sft import train
    elif kind == "dpo":
        from rft.sft_dpo.dpo import train  # type: ignore[assignment]
    elif kind == "grpo":
        from .grpo import train  # type: ignore[assignment]
    else:
        from .ppo import train  # type: ignore[assignment]
    return train(cfg, resume=resume, progress=lambda step, metrics: tick(step, cfg.steps or None, metrics))


def _sample_for_dpo(stage: Stage, cfg: Any, bar: BarFactory) -> None:
    from .sample import sample_suite

    opts = {"n": 8, "temperature": 1.0, "max_new_tokens": 256, "limit": None} | dict(
        stage.config.get("sample") or {}
    )
    with bar(f"{stage.name} sample", None) as tick:
        sample_suite(cfg.model, cfg.suite, cfg.samples, grader_workers=cfg.grader_workers, torch_threads=cfg.torch_threads,
                     progress=lambda done, total: tick(done, total), **opts)  # fmt: skip


def _output_model(kind: str, cfg: Any) -> str:
    """Where a training stage leaves its model: sft/dpo write out/model; a grpo/ppo run is exported there
    (its last checkpoint, LoRA merged)."""
    folder = Path(cfg.out) / "model"
    if kind in ("grpo", "ppo"):
        from .runs import export_model

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
    """Run (or continue) the pipeline; returns the report's summary (see `rft.report.write_report`)."""
    from .report import write_report

    out = Path(p.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.yaml").write_text(yaml.safe_dump(_plain(p), sort_keys=False))
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
            folder = _evaluate(p, model, stage.name, bar, extra=cfg)
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
    settings = to_dict(p.eval) | {"suite": p.eval_suite}
    rec = state.stages[name]
    if rec.get("eval_config") == settings and rec.get("eval") and Path(rec["eval"], "results.json").is_file():
        return
    t0 = time.perf_counter()
    folder = _evaluate(p, model, name, bar)
    res = json.loads((folder / "results.json").read_text())["results"]
    first = next(r for r in res if r["metric"] == f"pass@{p.eval.ks[0]}")
    state.mark(name, eval=str(folder), eval_config=settings, eval_seconds=time.perf_counter() - t0)
    lo, hi = first["ci95"]
    say(f"{name}: {first['metric']} {first['value']:.3f} [{lo:.3f}, {hi:.3f}] on {first['n_problems']} "
        f"{first['split']} problems of {first['suite']}")  # fmt: skip


def _has_checkpoint(out: str) -> bool:
    from .runs import _latest

    return _latest(Path(out) / "checkpoints") is not None


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


def _plain(p: Pipeline) -> dict[str, Any]:
    d: dict[str, Any] = {"out": p.out}
    d["model"] = {"tiny": to_dict(p.tiny)} if p.tiny else p.model
    d |= {"suite": p.suite, "eval": to_dict(p.eval)}
    d["stages"] = [{"name": s.name, "type": s.type, **s.config} for s in p.stages]
    return d
