"""`EvalSpec`: what an evaluation run samples and scores. `evaluate_suite` takes it, a pipeline's `eval:`
section is one (with the pipeline's defaults), and `rft eval` builds one from its options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["EvalSpec", "ENGINES"]

ENGINES = ("hf", "vllm", "openai")


@dataclass
class EvalSpec:
    """An evaluation: `n` samples of each of the first `limit` problems of a suite's split, graded, scored
    as pass@k and maj@k for each k in `ks` and mean@n, with bootstrap intervals over problems."""

    suite: str | None = None  # env id, suite id or suite YAML (a pipeline's default: its suite)
    split: Literal["train", "heldout"] = "heldout"
    limit: int | None = None  # the first `limit` problems of the split (None: all)
    n: int = 1  # samples per problem
    ks: tuple[int, ...] = (1,)  # the k of pass@k and maj@k, each in 1..n
    temperature: float | None = None  # None: 0 (greedy) when n == 1, else 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256  # tokens per model turn
    fewshot: int = 0  # solved train problems in each prompt (their worked solutions as replies)
    engine: Literal["hf", "vllm", "openai"] = "hf"
    engine_options: dict[str, Any] = field(default_factory=dict)  # e.g. openai: {base_url: ...}
    batch_prompts: int = 16  # problems sampled together
    grader_workers: int = 1  # grading processes (0: in this process)
    torch_threads: int = 1  # 1 suits tiny models on CPU
    n_boot: int = 2000  # bootstrap resamples of each interval
    seed: int = 0

    def __post_init__(self) -> None:
        self.ks = tuple(self.ks)
        if self.split not in ("train", "heldout"):
            raise ValueError(f"split must be train or heldout, got {self.split!r}")
        if self.n < 1:
            raise ValueError(f"n (samples per problem) must be >= 1, got {self.n}")
        if not self.ks or not all(1 <= k <= self.n for k in self.ks):
            raise ValueError(
                f"need every k in 1..n (n={self.n} samples per problem), got k={list(self.ks)}: lower k or "
                "raise n"
            )
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or null: all problems), got {self.limit}")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0: greedy), got {self.temperature}")
        if self.temperature == 0 and self.n > 1:
            raise ValueError(
                f"temperature 0 (greedy) gives {self.n} identical samples; use temperature > 0 or n=1"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.fewshot < 0:
            raise ValueError(f"fewshot must be >= 0 (0: no examples in the prompt), got {self.fewshot}")
        if self.fewshot and self.split == "train":
            raise ValueError(
                "fewshot examples come from the train split: evaluate split heldout (or fewshot 0)"
            )
        if self.engine not in ENGINES:
            raise ValueError(
                f"unknown engine {self.engine!r}; use {', '.join(ENGINES[:-1])} or {ENGINES[-1]}"
            )
        for name in ("max_new_tokens", "batch_prompts", "torch_threads", "n_boot"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.grader_workers < 0:
            raise ValueError(
                f"grader_workers must be >= 0 (0: grade in this process), got {self.grader_workers}"
            )

    @property
    def sampling_temperature(self) -> float:
        """The temperature sampled at: as set, else 0 (greedy) for one sample per problem and 1.0 for more
        (greedy samples would all be the same)."""
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.n == 1 else 1.0
