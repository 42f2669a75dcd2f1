"""Supervised fine-tuning on data built from a task suite, over TRL's `SFTTrainer`.

Config -> rows (the suite's worked solutions, or the grader-passing samples of an `rft sample` file) ->
chat template check -> held-out accuracy before -> TRL SFT (loss on the replies only) -> accuracy after ->
``out/model`` (full weights, LoRA merged), which DPO, GRPO or PPO load by path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from .data import mixed_sft_rows, write_jsonl
from .stage import (
    Progress,
    RunLogger,
    StageConfig,
    check_template,
    fit,
    has_generation_markers,
    held_out,
    load_model,
    trl_args,
    use_chat,
)

__all__ = ["SFTConfig", "train", "prompt_completion"]

log = logging.getLogger("rft.sft_dpo")


@dataclass
class SFTConfig(StageConfig):
    out: str = "runs/sft"
    lr: float = 2e-5
    data: Literal["solutions", "samples"] = "solutions"  # the suite's worked solutions, or graded samples
    samples: str | None = None  # data=samples: an `rft sample` file; its grader-passing samples are the rows
    limit: int | None = None  # data=solutions: the first `limit` train problems (None: all; a mix: of each)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data == "samples" and not self.samples:
            raise ValueError("data=samples needs samples=<file written by `rft sample`>")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or null for all), got {self.limit}")


def prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
    """A ``{"messages"}`` row as TRL's prompt-completion format: the messages up to the first assistant
    message, then the rest (the loss is taken on the completion only, whatever the chat template)."""
    msgs = row["messages"]
    first = next((i for i, m in enumerate(msgs) if m["role"] == "assistant"), None)
    if first is None:
        raise ValueError(f"an SFT row has no assistant message: {msgs!r}")
    return {"prompt": msgs[:first], "completion": msgs[first:]}


def train(cfg: SFTConfig, *, resume: bool = False, progress: Progress | None = None) -> dict[str, float]:
    """Run SFT as configured; returns the held-out metrics after training (and ``eval/accuracy_start``)."""
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    from rft.runs import Run

    if resume:
        raise ValueError("sft runs cannot be resumed (a stage is short); start again with another out")
    torch.set_num_threads(cfg.torch_threads)
    # -- data
    # a mix: each suite's rows in proportion to its weight
    rows = mixed_sft_rows(cfg.suite, source=cfg.data, samples=cfg.samples, limit=cfg.limit, seed=cfg.seed)
    data = [prompt_completion(r) for r in rows]
    run = Run.open(cfg.out, cfg)
    try:
        write_jsonl(Path(cfg.out) / "sft_rows.jsonl", rows)
        model, tokenizer = load_model(cfg)
        kwargs = use_chat(cfg, tokenizer)
        check_template(tokenizer, **kwargs)
        if kwargs:  # TRL passes a row's chat_template_kwargs to the chat template
            data = [d | {"chat_template_kwargs": kwargs} for d in data]
        markers = has_generation_markers(tokenizer)
        if not markers and any(m["role"] != "assistant" for d in data for m in d["completion"]):
            log.warning(
                "multi-turn rows and a chat template without {% generation %} markers: the environment's "
                "messages in the completions are trained on too"
            )
        with held_out(cfg, tokenizer) as (held, evaluate):
            # -- before
            start = evaluate(model)
            if start:
                run.log(0, start)
            if progress is not None:
                progress(0, start)
            # -- train
            args = trl_args(TRLSFTConfig, cfg, completion_only_loss=True, assistant_only_loss=markers,
                            packing=False)  # fmt: skip
            logger = RunLogger(run, "sft", held, evaluate, progress, cfg.stop_at)
            trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(data),
                                 processing_class=tokenizer, callbacks=[logger])  # fmt: skip
            final = fit(trainer, run, logger, evaluate, tokenizer, cfg)
    finally:
        run.close()
    return final | {f"{k}_start": v for k, v in start.items() if k == "eval/accuracy"}
