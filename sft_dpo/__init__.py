"""rft.sft_dpo: warm-start stages over TRL, with their data built from task suites and graders.

`sft_rows` (worked solutions, or grader-passing samples) and `dpo_pairs` (a passing sample chosen over a
failing one) build the data; `train_sft` / `train_dpo` run TRL's SFTTrainer / DPOTrainer and write
``out/model``, which the next stage (DPO, GRPO, PPO) loads by path.
"""

from __future__ import annotations

from .data import dpo_pairs, read_samples, sft_rows, solution_text
from .dpo import DPOConfig, preference_margin
from .dpo import train as train_dpo
from .sft import SFTConfig
from .sft import train as train_sft
from .stage import check_template

__all__ = [
    "sft_rows",
    "dpo_pairs",
    "read_samples",
    "solution_text",
    "SFTConfig",
    "DPOConfig",
    "train_sft",
    "train_dpo",
    "preference_margin",
    "check_template",
]
