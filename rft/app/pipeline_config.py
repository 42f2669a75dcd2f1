"""A pipeline's config: `load_pipeline(yaml, overrides)` -> `Pipeline` (stages, the tiny model spec, the
evaluation after every stage), every stage's config validated before the first one runs. The format is in
`rft.app.pipeline`'s docstring."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from rft.config import ConfigError, from_dict, to_dict
from rft.envs.mix import read_mix
from rft.eval.spec import EvalSpec

__all__ = ["Pipeline", "Stage", "TinySpec", "PipelineEval", "PipelineError", "load_pipeline", "stage_class",
           "plain_pipeline", "TRAINING"]  # fmt: skip

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
class PipelineEval(EvalSpec):
    """The evaluation of every stage's model: an `EvalSpec` (the `rft eval` settings) with the pipeline's
    defaults; its suite defaults to the pipeline's."""

    limit: int | None = 200
    batch_prompts: int = 64
    grader_workers: int = 0


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
    suite: str | dict[str, Any] | None = None  # the default suite of stages and evaluation; or a mix (stages)
    eval: PipelineEval = field(default_factory=PipelineEval)
    seed: int | None = None  # every training stage's seed (and the tiny model's) unless it sets its own

    def __post_init__(self) -> None:
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
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
        if self.eval.suite is None and self.suite is not None and len(read_mix(self.suite).mix) > 1:
            raise ValueError(
                "suite is a mix: the stages train on it, but the pipeline compares stages on one suite; set "
                "eval.suite (e.g. one of the mix's suites). Each stage still logs held-out accuracy per suite "
                "(eval/<suite>/accuracy in its metrics.jsonl), and `rft eval --suites a,b --model MODEL` "
                "prints one table across them"
            )

    @property
    def eval_suite(self) -> str:
        return self.eval.suite or self.suite  # type: ignore[return-value]

    def eval_spec(self, stage: Stage | None = None) -> EvalSpec:
        """What a model is evaluated with: the `eval:` section with its suite filled in, or for an eval stage
        its keys over that section."""
        if stage is None:
            return replace(self.eval, suite=self.eval_suite)
        data = self._stage_keys(stage)
        bad = sorted(set(data) - set(EVAL_KEYS))
        if bad:
            raise ConfigError(f"stages.{stage.name}: unknown eval keys {bad}; known: {', '.join(EVAL_KEYS)}")
        if not data.get("suite"):
            raise ConfigError(
                f"stages.{stage.name}: an eval stage needs a suite (or set the pipeline's suite)"
            )
        return from_dict(PipelineEval, to_dict(self.eval) | data, where=f"stages.{stage.name}")

    def _stage_keys(self, stage: Stage) -> dict[str, Any]:
        """The stage's own keys (not its `sample:` section), with the pipeline's suite as the default."""
        data = {k: v for k, v in stage.config.items() if k != "sample"}
        data.setdefault("suite", self.suite)
        return data

    def stage_config(self, stage: Stage, model: str) -> Any:
        """The stage's config dataclass with its input model, its folder and the default suite filled in."""
        data = self._stage_keys(stage)
        if stage.type == "eval":
            return data  # EvalSpec keys over the `eval:` section: `eval_spec(stage)`
        data = {**data, "model": model, "out": str(Path(self.out) / stage.name)}
        if self.seed is not None:
            data.setdefault("seed", self.seed)
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
        from rft.rl.grpo import GRPOConfig

        return GRPOConfig
    from rft.rl.ppo import PPOConfig

    return PPOConfig


EVAL_KEYS = tuple(f.name for f in fields(EvalSpec))  # an eval stage's keys


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
        spec = dict(model["tiny"] or {})
        if raw.get("seed") is not None:
            spec.setdefault("seed", raw["seed"])
        tiny, model = from_dict(TinySpec, spec, where="model.tiny"), None
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
            seed=raw.get("seed"),
        )
        for s in p.stages:  # every stage's config checked now, not after hours of the ones before it
            if s.type == "eval":
                p.eval_spec(s)
            else:
                p.stage_config(s, "-")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return p


def plain_pipeline(p: Pipeline) -> dict[str, Any]:
    d: dict[str, Any] = {"out": p.out}
    d["model"] = {"tiny": to_dict(p.tiny)} if p.tiny else p.model
    d |= {"suite": p.suite, "eval": to_dict(p.eval)}
    if p.seed is not None:
        d["seed"] = p.seed
    d["stages"] = [{"name": s.name, "type": s.type, **s.config} for s in p.stages]
    return d
