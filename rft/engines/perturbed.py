"""`LogitScaled`: an engine that samples from deliberately mismatched probabilities, to see what a
sampler/trainer gap does to training (``engine_options: {logit_scale: 1.3}``; `make_engine` wraps)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from rft.engines.base import Completion, Engine, Sampling

__all__ = ["LogitScaled"]


class LogitScaled:
    """Sample from softmax(scale * logits / T) where the trainer scores softmax(logits / T): the wrapped
    engine samples at temperature T / scale and reports the log-probabilities of what it sampled (under
    T / scale), so the sampler's own numbers stay honest and only the trainer's differ. scale > 1 sharpens
    the sampler, < 1 flattens it. Greedy sampling (T = 0) is unchanged: scaling keeps the argmax."""

    def __init__(self, engine: Engine, scale: float) -> None:
        if not scale > 0:
            raise ValueError(f"logit_scale must be > 0 (1 = no change), got {scale}")
        self.engine, self.scale = engine, float(scale)
        self.name = engine.name

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling) -> list[list[Completion]]:
        if sampling.temperature > 0:
            sampling = replace(sampling, temperature=sampling.temperature / self.scale)
        return self.engine.generate(prompts, sampling)

    def update_weights(self, model: torch.nn.Module) -> None:
        self.engine.update_weights(model)

    def close(self) -> None:
        self.engine.close()
