"""What the SFT and DPO stages share: the config fields, loading the model (full, LoRA, QLoRA), the chat
template check, TRL's arguments, logging into an `rft.runs.Run`, held-out evaluation, and the hand-over.

A stage writes ``out/model``: a full model folder (LoRA merged) with the tokenizer and its chat template,
which the next stage (DPO, GRPO, PPO, `rft sample`) loads by path: ``model: out/model``.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from rft.chat import ChatConfig, use_chat_template
from rft.engines import Completion, HFEngine
from rft.envs import get_suite
from rft.envs.mix import MixSpec, read_mix
from rft.eval.heldout import EvalConfig, HeldOut
from rft.graders.executor import GraderPool
from rft.models import LoraSpec, fast_attention, load_policy, training_precision
from rft.rollout import TemplateMismatch, turn_suffix_ids
from rft.runs import Run, export_model

__all__ = ["StageConfig", "check_template", "has_generation_markers", "load_model", "trl_args", "held_out",
           "ModelEval", "RunLogger", "fit", "save_model", "EVAL_MAX_NEW_TOKENS"]  # fmt: skip

log = logging.getLogger("rft.sft_dpo")

EVAL_MAX_NEW_TOKENS = 256  # eval generation length when eval.max_new_tokens is not set
Progress = Callable[[int, dict[str, float]], None]


@dataclass
class StageConfig:
    model: str  # Hugging Face id or path (the previous stage's out/model)
    suite: (
        str | MixSpec
    )  # env id (rft/arithmetic-v0), suite id, suite YAML, or a mix (rft.envs.mix): data and eval
    out: str = "runs/stage"  # the run folder; the model is written to out/model
    steps: int = 0  # optimizer steps; 0 = `epochs` passes over the data
    epochs: float = 1.0  # passes over the data when steps is 0
    batch_size: int = 16  # rows per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-5  # learning rate
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"  # learning-rate schedule
    warmup_steps: int = 0  # learning-rate warmup
    weight_decay: float = 0.0  # weight decay
    max_grad_norm: float = 1.0  # 0 = no clipping (a tiny model trained from scratch learns faster without)
    max_length: int = 1024  # tokens per row (prompt + reply); longer rows are cut
    lora: LoraSpec = field(default_factory=LoraSpec)
    chat: ChatConfig = field(default_factory=ChatConfig)  # chat template and its kwargs (rft.chat)
    qlora: bool = False  # 4-bit base + LoRA (needs bitsandbytes and a CUDA GPU)
    eval: EvalConfig = field(default_factory=EvalConfig)  # greedy held-out accuracy before and after
    stop_at: float | None = None  # stop once an eval.every evaluation's accuracy reaches this (a warm start
    # just good enough for RL: groups with mixed rewards); the steps are then a budget
    dtype: Literal["auto", "float32", "bfloat16", "float16", "bf16-mixed"] = "auto"
    gradient_checkpointing: bool = False  # less memory, more compute
    grader_workers: int = 1  # grader processes for evaluation; 0 grades in this process
    torch_threads: int = 1  # 1 for tiny models on CPU
    seed: int = 0  # random seed
    log_every: int = 1  # steps between metrics lines

    def __post_init__(self) -> None:
        if self.steps < 0 or self.epochs <= 0:
            raise ValueError(
                f"steps must be >= 0 (0: use epochs) and epochs > 0, got {self.steps}, {self.epochs}"
            )
        if self.batch_size < 1 or self.grad_accum < 1 or self.log_every < 1:
            raise ValueError("batch_size, grad_accum and log_every must be >= 1")
        if self.lr <= 0 or self.warmup_steps < 0 or self.max_length < 8:
            raise ValueError(f"need lr > 0, warmup_steps >= 0, max_length >= 8; got {self.lr}, "
                             f"{self.warmup_steps}, {self.max_length}")  # fmt: skip
        if self.stop_at is not None and not (
            0 < self.stop_at <= 1 and self.eval.every > 0 and self.eval.n > 0
        ):
            raise ValueError(
                f"stop_at ({self.stop_at}) must be in (0, 1] and needs evaluations during training: set eval.every "
                f"and eval.n (now {self.eval.every}, {self.eval.n})"
            )
        if self.qlora:
            if self.lora.r == 0:
                raise ValueError("qlora trains a LoRA adapter over a 4-bit base: set lora.r (e.g. 16)")
            if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
                raise ValueError(
                    "qlora needs the bitsandbytes package and a CUDA GPU "
                    f"(bitsandbytes {'found' if importlib.util.find_spec('bitsandbytes') else 'missing'}, "
                    f"CUDA {'available' if torch.cuda.is_available() else 'unavailable'}); "
                    "use lora.r without qlora on this machine"
                )


# ---- chat template -------------------------------------------------------------------------------------

_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")


def has_generation_markers(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the chat template marks assistant text with ``{% generation %}`` (TRL's assistant-only loss)."""
    return bool(_GENERATION.search(str(tokenizer.chat_template or "")))


def use_chat(cfg: StageConfig, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """Give `tokenizer` the stage's chat template; returns the template kwargs of the suite's prompts (the
    recipe's, overridden by the suite's), which each data row carries as ``chat_template_kwargs`` (TRL
    passes a row's to the template)."""
    use_chat_template(tokenizer, cfg.chat)
    own = [get_suite(name).prompt.chat_template_kwargs for name in read_mix(cfg.suite).suites]
    if any(kw != own[0] for kw in own):  # a mix whose suites render their prompts differently
        raise ValueError(
            "the suites of this mix set different prompt.chat_template_kwargs; SFT/DPO rows take one set: "
            "set them once in the recipe (chat: {kwargs: {...}}) and drop them from the suites"
        )
    return cfg.chat.merged(own[0])


def check_template(tokenizer: PreTrainedTokenizerBase, **template_kwargs: Any) -> bool:
    """True when the chat template keeps a conversation's earlier turns unchanged as turns are added, so a
    prompt renders the same in training (prompt + reply) as in sampling (prompt + generation prompt) and
    multi-turn episodes can be built turn by turn. Logs a warning and returns False otherwise."""
    if not tokenizer.chat_template:
        raise ValueError(
            "the tokenizer has no chat template; SFT, DPO, RL and evaluation render prompts with it. Use an "
            "instruct model's tokenizer or set tokenizer.chat_template and save it with the model"
        )
    before = [{"role": "user", "content": "What is 1 + 1?"}]
    reply = "1 + 1 = 2. The answer is \\boxed{2}."
    after = [*before, {"role": "assistant", "content": reply}, {"role": "user", "content": "And 2 + 2?"}]
    ids = [*tokenizer(reply, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    try:
        turn_suffix_ids(tokenizer, before, Completion(reply, ids, "stop"), after, **template_kwargs)
    except TemplateMismatch as e:
        log.warning(
            "chat template check failed: %s. Training on full conversations and sampling from prompts see "
            "different text, and multi-turn training breaks; fix the template (no rewriting of earlier turns)",
            e,
        )
        return False
    return True


# ---- model ---------------------------------------------------------------------------------------------


def load_model(cfg: StageConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model to train: full weights, a fresh LoRA adapter (`lora.r` > 0), or QLoRA (a 4-bit base)."""
    if not cfg.qlora:
        weights, _ = training_precision(cfg.dtype, "auto", cfg.lora.r > 0)  # auto on a GPU: float32 weights
        return load_policy(
            cfg.model, lora=cfg.lora, dtype=weights, gradient_checkpointing=cfg.gradient_checkpointing
        )
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
    model = AutoModelForCausalLM.from_pretrained(cfg.model, quantization_config=quant, dtype=compute,
                                                 device_map={"": torch.cuda.current_device()})  # fmt: skip
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM")  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return get_peft_model(model, lora), tokenizer


def trl_args(cls: type, cfg: StageConfig, **extra: Any) -> Any:
    """TRL's `SFTConfig`/`DPOConfig` from a stage config: CPU without a GPU (bf16 mixed precision only on a
    GPU that supports it), no checkpoints of its own (the stage saves out/model), no reporting (the Run logs)."""
    cuda = torch.cuda.is_available()
    return cls(
        output_dir=str(Path(cfg.out) / "trainer"),
        max_steps=cfg.steps if cfg.steps else -1,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        max_length=cfg.max_length,
        logging_steps=cfg.log_every,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=not cuda,
        # bf16 autocast: float32 weights (bf16-mixed, auto for full weights on a GPU) or a bf16 LoRA base
        bf16=cfg.dtype == "bf16-mixed"
        or (cuda and cfg.dtype in ("auto", "bfloat16") and torch.cuda.is_bf16_supported()),
        fp16=False,
        dataloader_num_workers=0,
        gradient_checkpointing=cfg.gradient_checkpointing,  # TRL's default is True: ~20% slower
        **extra,
    )


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: StageConfig) -> Path:
    """Write ``out/model``: the full model with the tokenizer (and its chat template). A LoRA/QLoRA adapter
    is saved to ``out/adapter`` and merged into a fresh copy of the base model (`rft.runs.export_model`)."""
    out = Path(cfg.out)
    scratch = out / "trainer"  # TRL's output_dir: empty, as it saves nothing itself
    if scratch.is_dir() and not any(scratch.iterdir()):
        scratch.rmdir()
    if not hasattr(model, "peft_config"):
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
        return out / "model"
    if "ref" in model.peft_config:  # TRL's DPO keeps a frozen copy of the adapter as the reference
        model.delete_adapter("ref")
    model.save_pretrained(out / "adapter")
    tokenizer.save_pretrained(out / "adapter")
    return export_model(out / "adapter", out / "model", base_model=cfg.model)


# ---- evaluation and logging ----------------------------------------------------------------------------


ModelEval = Callable[[PreTrainedModel], dict[str, float]]  # a model -> its held-out metrics


@contextmanager
def held_out(cfg: StageConfig, tokenizer: PreTrainedTokenizerBase) -> Iterator[tuple[HeldOut, ModelEval]]:
    """The stage's `rft.eval.heldout.HeldOut` (greedy pass@1 on the first `eval.n` problems of the eval
    suite's split) and a function of the model being trained that runs it ({} when there are no problems),
    with its grading processes while open."""
    held = HeldOut(
        cfg.eval, read_mix(cfg.suite).suites, EVAL_MAX_NEW_TOKENS, cfg.chat.kwargs
    )  # a mix: each suite's
    executor = GraderPool(workers=cfg.grader_workers) if held.envs and cfg.grader_workers > 0 else None

    def evaluate(model: PreTrainedModel) -> dict[str, float]:
        return held(HFEngine(model, tokenizer), tokenizer, executor) if held.envs else {}

    try:
        yield held, evaluate
    finally:
        if executor is not None:
            executor.close()


def fit(trainer: Any, run: Run, logger: RunLogger, final: Callable[[Any], dict[str, float]],
        tokenizer: PreTrainedTokenizerBase, cfg: StageConfig) -> dict[str, float]:  # fmt: skip
    """Train with TRL's trainer (its printer off: the run logs its numbers), then log `final(model)` with the
    time per step at the last step and save the model to `cfg.out/model`; returns the final metrics."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    with fast_attention(trainer.args.device):  # a GPU: no cuDNN attention (an execution plan per new shape)
        trainer.train()
        steps = trainer.state.global_step
        metrics = final(trainer.model)
    summary = logger.summary | {"time/step_s": logger.summary.get("time/train_s", 0.0) / max(1, steps)}
    run.log(steps, metrics | summary)
    save_model(trainer.model, tokenizer, cfg)
    return metrics


class RunLogger(TrainerCallback):
    """TRL's logs into the run's metrics.jsonl (``loss/<stage>``, ``loss/grad_norm``, ``lr``, the rest under
    ``<stage>/``), held-out evaluation every `eval.every` steps (stopping training once its accuracy reaches
    `stop_at`), and the progress callback."""

    def __init__(
        self,
        run: Run,
        stage: str,
        held: HeldOut,
        evaluate: ModelEval,
        progress: Progress | None,
        stop_at: float | None = None,
    ) -> None:
        self.run, self.stage, self.held, self.evaluate = run, stage, held, evaluate
        self.progress, self.stop_at = progress, stop_at
        self.stopped_at: int | None = None  # the step `stop_at` ended training at
        self.summary: dict[str, float] = {}  # TRL's closing log (train_runtime), for the final metrics line
        self.t0 = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step
        if step < state.max_steps and self.held.due(step, state.max_steps):  # the last step: `fit`'s `final`
            metrics = self.evaluate(kwargs["model"])
            if self.stop_at is not None and metrics.get("eval/accuracy", 0.0) >= self.stop_at:
                control.should_training_stop = True
                self.stopped_at = step
                metrics["stopped_at_step"] = step
            self.run.log(step, metrics)
            if self.progress is not None:
                self.progress(step, metrics)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        logs = dict(logs or {})
        if "train_runtime" in logs:  # the closing summary: kept for the final line
            self.summary = {"time/train_s": float(logs["train_runtime"])}
            return
        names = {
            "loss": f"loss/{self.stage}",
            "grad_norm": "loss/grad_norm",
            "learning_rate": "lr",
            "epoch": "epoch",
        }
        metrics = {names.get(k, f"{self.stage}/{k}"): float(v) for k, v in logs.items() if _number(v)}
        metrics["time/elapsed_s"] = time.perf_counter() - self.t0
        self.run.log(state.global_step, metrics)
        if self.progress is not None:
            self.progress(state.global_step, metrics)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
