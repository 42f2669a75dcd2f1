"""Direct preference optimisation on pairs built by a grader, over TRL's `DPOTrainer`.

Config -> pairs (within a prompt of an `rft sample` file: a passing sample chosen over a failing one) ->
chat template check -> held-out accuracy and preference margin before -> TRL DPO against the input model
as the reference -> after -> ``out/model`` (full weights, LoRA merged), which GRPO or PPO load by path.

The preference margin on held-out pairs (`eval_samples`, an `rft sample` file of the held-out split) is
the mean of log p(chosen) - log p(rejected) over each pair's completion tokens: DPO should raise it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rft.batch import collate, token_logprobs
from rft.chat import render_chat
from rft.envs.mix import read_mix
from rft.rollout import Trajectory, chat_prompt_ids

from .data import balance_by_suite, dpo_pairs, write_jsonl
from .stage import (
    ModelEval,
    Progress,
    RunLogger,
    StageConfig,
    check_template,
    fit,
    held_out,
    load_model,
    trl_args,
    use_chat,
)

__all__ = ["DPOConfig", "train", "preference_margin"]

LossType = Literal["sigmoid", "hinge", "ipo", "robust", "sigmoid_norm", "apo_zero", "apo_down", "sppo_hard"]


@dataclass
class DPOConfig(StageConfig):
    samples: str = field(kw_only=True)  # an `rft sample` file of the train split: the pairs come from it
    out: str = "runs/dpo"
    lr: float = 5e-6
    beta: float = 0.1  # how far from the reference (the input model) the policy may move; higher: less
    loss_type: LossType = "sigmoid"  # TRL's DPO loss (sigmoid: the DPO paper's)
    min_margin: float = 0.0  # keep pairs whose rewards differ by more than this (ties are always dropped)
    max_pairs_per_prompt: int = 4  # at most this many pairs from one prompt's samples
    eval_samples: str | None = None  # an `rft sample` file of the held-out split: preference margin eval

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.samples:
            raise ValueError("samples must name an `rft sample` file (graded samples of the train split)")
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")


def train(cfg: DPOConfig, *, resume: bool = False, progress: Progress | None = None) -> dict[str, float]:
    """Run DPO as configured; returns the held-out metrics after training (and their ``_start`` values)."""
    from datasets import Dataset
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    from rft.models import load_policy
    from rft.runs import Run

    if resume:
        raise ValueError("dpo runs cannot be resumed (a stage is short); start again with another out")
    torch.set_num_threads(cfg.torch_threads)
    # -- data
    pairs = dpo_pairs(cfg.samples, min_margin=cfg.min_margin, max_pairs_per_prompt=cfg.max_pairs_per_prompt,
                      seed=cfg.seed)  # fmt: skip
    mix = read_mix(cfg.suite)
    if len(mix.mix) > 1:  # each suite's pairs in proportion to its weight
        pairs = balance_by_suite(pairs, mix, seed=cfg.seed, what="DPO pairs")
    held = dpo_pairs(cfg.eval_samples, seed=cfg.seed) if cfg.eval_samples else []
    run = Run.open(cfg.out, cfg)
    try:
        write_jsonl(Path(cfg.out) / "dpo_pairs.jsonl", pairs)
        model, tokenizer = load_model(cfg)
        kwargs = use_chat(cfg, tokenizer)
        check_template(tokenizer, **kwargs)
        ref = None
        if not hasattr(model, "peft_config"):  # full weights: the input model, frozen, is the reference
            ref, _ = load_policy(cfg.model, dtype=cfg.dtype)
        with held_out(cfg, tokenizer) as (held_acc, evaluate):
            # -- before
            start = _measure(evaluate, model, tokenizer, held, kwargs)
            run.log(0, start | {"dpo/pairs": len(pairs), "dpo/prompts": len({p["id"] for p in pairs})})
            if progress is not None:
                progress(0, start)
            # -- train
            args = trl_args(TRLDPOConfig, cfg, beta=cfg.beta, loss_type=[cfg.loss_type])
            logger = RunLogger(run, "dpo", held_acc, evaluate, progress, cfg.stop_at)
            rows = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs]
            if kwargs:  # TRL passes a row's chat_template_kwargs to the chat template
                rows = [r | {"chat_template_kwargs": kwargs} for r in rows]
            data = Dataset.from_list(rows)
            trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=data,
                                 processing_class=tokenizer, callbacks=[logger])  # fmt: skip
            final = fit(
                trainer, run, logger, lambda m: _measure(evaluate, m, tokenizer, held, kwargs), tokenizer, cfg
            )
    finally:
        run.close()
    return final | {f"{k}_start": v for k, v in start.items() if k in ("eval/accuracy", "eval/pref_margin")}


def _measure(
    evaluate: ModelEval,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    held: list[dict[str, Any]],
    template_kwargs: dict[str, Any],
) -> dict[str, float]:
    """Greedy held-out accuracy, and the preference margin on held-out pairs when there are any."""
    return evaluate(model) | (preference_margin(model, tokenizer, held, **template_kwargs) if held else {})


@torch.no_grad()
def preference_margin(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[dict[str, Any]],
    batch: int = 32,
    **template_kwargs: Any,
) -> dict[str, float]:
    """Over preference pairs: the mean of log p(chosen) - log p(rejected) (summed over each completion's
    tokens, as DPO scores them) and the fraction of pairs where chosen is the likelier. `template_kwargs`
    go to the chat template."""
    rows = []
    for p in pairs:
        prompt = chat_prompt_ids(tokenizer, p["prompt"], **template_kwargs)
        for side in ("chosen", "rejected"):
            text = render_chat(tokenizer, [*p["prompt"], *p[side]], **template_kwargs)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            rows.append(Trajectory(0, ids, [0] * len(prompt) + [1] * (len(ids) - len(prompt)), len(prompt)))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = []
    for i in range(0, len(rows), batch):
        b = collate(rows[i : i + batch], tokenizer.pad_token_id).to(device)
        lp = token_logprobs(model, b)  # (B, T-1)
        sums += (lp.float() * b.mask).sum(1).tolist()
    model.train(was_training)
    margins = [c - r for c, r in zip(sums[0::2], sums[1::2], strict=True)]
    return {
        "eval/pref_margin": sum(margins) / max(1, len(margins)),
        "eval/pref_accuracy": sum(m > 0 for m in margins) / max(1, len(margins)),
    }
