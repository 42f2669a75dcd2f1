"""What every rollout engine shares: sampling parameters, a completion, and the `Engine` protocol.

``engine.generate(prompts, sampling) -> [[Completion] * n] * len(prompts)`` where each prompt is a list of
token ids (the trainer owns chat templating and the token layout of multi-turn episodes), and
``engine.update_weights(model)`` makes the engine sample from the trainer's current weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch

__all__ = ["Sampling", "Completion", "Engine", "FinishReason"]

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters shared by every engine. ``temperature=0`` is greedy; ``top_k=0`` is off."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()  # text after a stop string is cut (the tokens that made it are kept)
    n: int = 1  # completions per prompt
    seed: int | None = None
    logprobs: bool = False  # return the sampled tokens' log-probabilities (under temperature)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.max_new_tokens < 1 or self.n < 1:
            raise ValueError(f"max_new_tokens and n must be >= 1, got {self.max_new_tokens} and {self.n}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True)
class Completion:
    """One sampled continuation: its text, its token ids (ending with eos when it stopped there), and the
    sampled tokens' log-probabilities when asked for (empty otherwise)."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    logprobs: list[float] = field(default_factory=list)


class Engine(Protocol):
    name: str

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling) -> list[list[Completion]]: ...

    def update_weights(self, model: torch.nn.Module) -> None: ...

    def close(self) -> None: ...
