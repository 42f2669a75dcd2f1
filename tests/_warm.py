"""A warm-started tiny model for RL tests: SFT on 2-digit addition until it solves about half the
held-out problems, so GRPO/PPO have groups with mixed rewards to learn from. Deterministic."""

from __future__ import annotations

from pathlib import Path

import torch

from rft.envs import load_suite
from rft.tiny import warm_start

ADD_SUITE = """\
id: add-v0
source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2, ops: "+"}, size: 3000, seed: 0}
fields: {id: id, reference: answer}
prompt: {user: "{{ item.question }}"}
grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}", form: number}
split: 0.1
"""


def write_add_suite(folder: Path) -> Path:
    path = folder / "add-v0.yaml"
    path.write_text(ADD_SUITE)
    return path


def warm_model(folder: Path, suite_path: Path, steps: int = 250, lr: float = 1e-3, batch: int = 64) -> Path:
    """SFT a fresh tiny model on `\\boxed{answer}` replies to the suite's train problems; save it."""
    torch.set_num_threads(1)
    return warm_start(load_suite(suite_path), folder, steps=steps, lr=lr, batch=batch)
