"""What the RL loops share: the sampling and RL configs, prompt order, metrics and rollout records. The loops themselves (`rft.rl.grpo`, `rft.rl.ppo`) read top to bottom."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from rft.engines import Sampling
from rft.eval.heldout import EvalConfig
from rft.models import LoraSpec
from rft.rollout import Trajectory

__all__ = [
    "RLConfig",
    "GenConfig",
    "train_items",
    "prompt_indices",
    "overlong_penalty",
    "reward_metrics",
    "rollout_row",
    "stack_rows",
    "chunks",
    "log_step",
]

log = logging.getLogger("rft.rl.common")


@dataclass
class GenConfig:
    """Sampling for rollouts."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        Sampling(self.temperature, self.top_p, self.top_k, self.max_new_tokens, self.stop)  # validates
        if self.temperature == 0:
            raise ValueError(
                "gen.temperature must be > 0: RL needs varied samples (greedy ones of a prompt are all the same)"
            )


@dataclass
class RLConfig:
    """What every RL loop is configured with; `GRPOConfig` and `PPOConfig` add their own fields."""

    model: str  # Hugging Face id or path
    suite: str  # env id (rft/arithmetic-v0), suite id, or suite YAML path; trains on its train split
    offset: int = (
        0  # train on the train problems from this index on (after those an SFT stage's `limit` took)
    )
    out: str = "runs/rl"
    steps: int = 100
    prompts_per_step: int = 8
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0  # 0 = no clipping
    epochs: int = 1  # optimisation passes over each rollout batch
    minibatches: int = 1  # optimizer steps per pass
    micro_batch: int = 16  # rows per forward/backward (gradient accumulation up to a minibatch)
    gen: GenConfig = field(default_factory=GenConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    lora: LoraSpec = field(default_factory=LoraSpec)
    engine: Literal["hf", "vllm", "vllm_server"] = "hf"  # vllm_server: engine_options base_url, weights_dir
    engine_options: dict[str, Any] = field(default_factory=dict)
    dtype: Literal["auto", "float32", "bfloat16", "float16", "bf16-mixed"] = "auto"
    device: str = "auto"
    gradient_checkpointing: bool = False
    grader_workers: int = 1  # grader processes; 0 grades in the trainer's thread
    rollout_chunk: int = 64  # rows generated before their grades are submitted
    max_len: int = 1024  # tokens per episode (prompt + all turns)
    torch_threads: int = 1  # 1 for tiny models on CPU
    seed: int = 0
    save_every: int = 0  # steps; 0 = only at the end
    log_every: int = 1

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
        if self.save_every < 0 or self.grader_workers < 0 or self.offset < 0:
            raise ValueError("save_every, grader_workers and offset must be >= 0")


def engine_options(cfg: RLConfig, compute: torch.dtype | None) -> dict[str, Any]:
    """The recipe's `engine_options`, plus, when the policy trains in bf16 mixed precision (`compute`), what
    makes the sampler compute in bf16 too: autocast for ``hf``, a bf16 engine for ``vllm`` (unless the
    recipe sets its `dtype`; it would follow the float32 weights)."""
    options = dict(cfg.engine_options)
    if compute is not None and cfg.engine == "hf":
        options["autocast"] = compute
    elif compute is not None and cfg.engine == "vllm":
        options.setdefault("dtype", str(compute).removeprefix("torch."))
    return options


def train_items(suite: Any, offset: int) -> list[dict[str, Any]]:
    """The train problems an RL run draws from: the train split from `offset` on."""
    items = suite.items("train")
    if offset >= len(items):
        raise ValueError(
            f"offset {offset} leaves no train problems: {suite.id} has {len(items)}; lower offset "
            "(it skips the problems an SFT stage's limit took)"
        )
    return items[offset:]


def prompt_indices(n_items: int, per_step: int, step: int, seed: int, draw: int = 0) -> list[int]:
    """The train problems of a step: consecutive slices of per-epoch permutations (seeded by epoch), so
    each problem comes once per epoch and any step's prompts follow from (seed, step) alone. Draws > 0
    (dynamic-sampling refills) are random problems seeded by (seed, step, draw)."""
    if draw > 0:
        rng = np.random.default_rng([seed, step, draw])
        return [int(i) for i in rng.choice(n_items, size=per_step, replace=per_step > n_items)]
    out = []
    for k in range(step * per_step, (step + 1) * per_step):
        epoch, pos = divmod(k, n_items)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n_items)[pos]))
    return out


def overlong_penalty(length: int, max_new_tokens: int, buffer: int) -> float:
    """DAPO's soft overlong punishment: 0 up to max - buffer tokens, then linear down to -1 at max."""
    start = max_new_tokens - buffer
    return 0.0 if length <= start else max(-1.0, (start - length) / buffer)


def stack_rows(rows: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Stack per-row tensors cut to `like`'s width (rows were computed on a wider batch)."""
    return torch.stack([r[: like.shape[1]] for r in rows])


def chunks(xs: list[int], size: int) -> list[list[int]]:
    return [xs[i : i + size] for i in range(0, len(xs), size)]


def reward_metrics(
    trajs: list[Trajectory], rewards: torch.Tensor, valid: torch.Tensor, suite_id: str
) -> dict[str, float]:
    n = len(trajs)
    ok = valid.sum().clamp(min=1)
    lengths = [t.completion_tokens for t in trajs]
    return {
        "reward/mean": float((rewards * valid).sum() / ok),
        f"reward/{suite_id}": float(sum(t.reward for t in trajs if not t.failed) / max(1, int(ok))),
        "reward/pass_rate": sum(t.reward >= 1.0 for t in trajs) / n,
        "grader/error_rate": sum(t.status == "error" for t in trajs) / n,
        "grader/timeout_rate": sum(t.status == "timeout" for t in trajs) / n,
        "grader/no_answer_rate": sum(t.status == "no_answer" for t in trajs) / n,
        "rollout/completion_len": sum(lengths) / n,
        "rollout/overlong_frac": sum(t.overlong for t in trajs) / n,
        "rollout/turns": sum(t.turns for t in trajs) / n,
    }


def rollout_row(t: Trajectory) -> dict[str, Any]:
    row = t.record()
    prompt = row.pop("messages")
    return {"group": t.group, "prompt": prompt[-1]["content"] if prompt else "", **row}


def log_step(
    run: Any, done: int, steps: int, log_every: int, metrics: dict[str, float], trajs: list[Trajectory]
) -> None:
    """Write a step's metrics and rollouts every `log_every` steps and at the last step."""
    if done % log_every == 0 or done == steps:
        run.log(done, metrics)
        run.log_rollouts(done, [rollout_row(t) for t in trajs])
