"""What every RL loop is configured with: `RLConfig` (and its sampling part, `GenConfig`). `GRPOConfig` and
`PPOConfig` extend it in their own files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from rft.chat import ChatConfig
from rft.engines import Sampling
from rft.envs.mix import MixSpec
from rft.eval.heldout import EvalConfig
from rft.models import LoraSpec

__all__ = ["RLConfig", "GenConfig", "CorrectionConfig"]


@dataclass
class GenConfig:
    """Sampling for rollouts."""

    temperature: float = 1.0  # sampling temperature (> 0)
    top_p: float = 1.0  # nucleus sampling; 1.0 = off
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 64  # tokens per model turn
    stop: tuple[str, ...] = ()  # strings that end a sample

    def __post_init__(self) -> None:
        Sampling(self.temperature, self.top_p, self.top_k, self.max_new_tokens, self.stop)  # validates
        if self.temperature == 0:
            raise ValueError(
                "gen.temperature must be > 0: RL needs varied samples (greedy ones of a prompt are all the same)"
            )


@dataclass
class CorrectionConfig:
    """Sampler/trainer mismatch: rollouts come from another numerical path than the trainer's (vLLM kernels,
    bf16, stale weights), so the trainer's probability of a sampled token differs from the sampler's. The
    ratio rho = pi_trainer / pi_sampler per token (trainer: its log-probs of the batch before the update)
    weighs (`tis`) or masks (`mis`) the policy loss (`rft.losses.rollout_correction`), and `mismatch/*`
    metrics measure the gap (`rft.losses.mismatch_stats`)."""

    tis: Literal["none", "token", "sequence", "geometric"] = "none"  # truncated IS weight min(rho, cap)
    cap: float = 2.0  # tis: the weight's upper bound
    mis: Literal["none", "token", "geometric"] = "none"  # drop tokens (or rows, geometric mean) off the band
    band: tuple[float, float] = (0.5, 2.0)  # mis: the ratios kept, [lo, hi]
    metrics: bool = True  # sample with log-probs and log mismatch/* every step, even with no correction

    def __post_init__(self) -> None:
        lo, hi = self.band
        if self.cap <= 0 or not 0 <= lo < 1 < hi:
            raise ValueError(
                f"loss.correction needs cap > 0 and band [lo, hi] with 0 <= lo < 1 < hi (e.g. [0.5, 2.0]); "
                f"got cap {self.cap}, band {list(self.band)}"
            )

    @property
    def corrects(self) -> bool:
        """Whether the loss is weighted or masked (else the metrics at most)."""
        return self.tis != "none" or self.mis != "none"

    @property
    def needs_sampler_logprobs(self) -> bool:
        return self.corrects or self.metrics


@dataclass
class RLConfig:
    """What every RL loop is configured with; `GRPOConfig` and `PPOConfig` add their own fields."""

    model: str  # Hugging Face id or path
    suite: str | MixSpec  # env id, suite id or YAML; a mix {mix: [{suite, weight}]} or a:2,b:1 (rft.envs.mix)
    offset: int = (
        0  # train on the train problems from this index on (after those an SFT stage's `limit` took)
    )
    out: str = "runs/rl"  # the run folder (config, metrics, checkpoints)
    steps: int = 100  # steps of rollouts then update
    prompts_per_step: int = 8  # problems sampled per step
    lr: float = 1e-5  # learning rate
    weight_decay: float = 0.0  # weight decay
    warmup_steps: int = 0  # learning-rate warmup
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"  # after warmup: hold lr, or decay it
    min_lr_ratio: float = 0.0  # linear/cosine: the learning rate at the end of `steps`, as a share of lr
    max_grad_norm: float = 1.0  # 0 = no clipping
    epochs: int = 1  # optimisation passes over each rollout batch
    minibatches: int = 1  # optimizer steps per pass
    micro_batch: int = 16  # rows per forward/backward (gradient accumulation up to a minibatch)
    micro_tokens: int = 0  # > 0: micro-batches of as many rows as fit rows x width <= this (not micro_batch)
    gen: GenConfig = field(default_factory=GenConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    lora: LoraSpec = field(default_factory=LoraSpec)
    chat: ChatConfig = field(default_factory=ChatConfig)  # chat template and its kwargs (rft.chat)
    engine: Literal["hf", "vllm", "vllm_server"] = "hf"  # vllm_server: engine_options base_url, weights_dir
    engine_options: dict[str, Any] = field(default_factory=dict)  # passed to the engine
    dtype: Literal["auto", "float32", "bfloat16", "float16", "bf16-mixed"] = "auto"
    device: str = "auto"  # auto: cuda if available, else cpu
    gradient_checkpointing: bool = False  # less memory, more compute
    grader_workers: int = 1  # grader processes; 0 grades in the trainer's thread
    rollout_chunk: int = 64  # rows generated before their grades are submitted
    max_len: int = 1024  # tokens per episode (prompt + all turns)
    torch_threads: int = 1  # 1 for tiny models on CPU
    seed: int = 0  # random seed
    save_every: int = 0  # steps; 0 = only at the end
    log_every: int = 1  # steps between metrics lines

    def __post_init__(self) -> None:
        counts = {
            "prompts_per_step": self.prompts_per_step,
            "epochs": self.epochs,
            "minibatches": self.minibatches,
            "micro_batch": self.micro_batch,
            "rollout_chunk": self.rollout_chunk,
            "log_every": self.log_every,
        }
        low = [k for k, v in counts.items() if v < 1]
        if self.steps < 0 or low:
            raise ValueError(f"steps must be >= 0 and these >= 1: {', '.join(low) or 'ok'}")
        if self.lr <= 0 or self.max_grad_norm < 0:
            raise ValueError(
                f"need lr > 0 and max_grad_norm >= 0 (0: no clipping), got {self.lr}, {self.max_grad_norm}"
            )
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(
                f"min_lr_ratio is a share of lr: need 0 <= min_lr_ratio <= 1, got {self.min_lr_ratio}"
            )
        if self.save_every < 0 or self.grader_workers < 0 or self.offset < 0 or self.micro_tokens < 0:
            raise ValueError("save_every, grader_workers, offset and micro_tokens must be >= 0")

    def lr_factor(self, update: int) -> float:
        """The learning rate of update `update` (0-based) as a share of `lr`: a linear warmup over
        `warmup_steps`, then `lr_scheduler` from 1 down to `min_lr_ratio` at the end of `steps`."""
        warm = min(1.0, (update + 1) / max(1, self.warmup_steps))
        if self.lr_scheduler == "constant":
            return warm
        p = min(1.0, max(0.0, (update - self.warmup_steps) / max(1, self.steps - self.warmup_steps)))
        shape = 1.0 - p if self.lr_scheduler == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
        return warm * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * shape)
