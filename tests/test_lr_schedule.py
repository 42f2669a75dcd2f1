"""RL learning-rate schedules (`lr_scheduler`, `warmup_steps`, `min_lr_ratio`): the factor, hand-checked, and
the learning rate a GRPO run logs for each update."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_grpo import like_suite, save_random_tiny

from rft.config import load_config
from rft.rl.grpo import GRPOConfig, train


def _cfg(**kw) -> GRPOConfig:
    return GRPOConfig(model="m", suite="s", **kw)


def test_constant_is_the_warmup_then_one():
    c = _cfg(steps=10, warmup_steps=4)
    assert [c.lr_factor(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert _cfg(steps=10).lr_factor(0) == 1.0


def test_linear_and_cosine_reach_the_floor_at_the_end_of_steps():
    lin = _cfg(steps=4, lr_scheduler="linear")
    assert [lin.lr_factor(s) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    floor = _cfg(steps=4, lr_scheduler="linear", min_lr_ratio=0.2)
    assert [round(floor.lr_factor(s), 10) for s in range(5)] == [1.0, 0.8, 0.6, 0.4, 0.2]
    cos = _cfg(steps=4, lr_scheduler="cosine")
    assert [round(cos.lr_factor(s), 10) for s in range(5)] == [
        1.0,
        round(0.5 * (1 + math.cos(math.pi / 4)), 10),  # 0.8536
        0.5,
        round(0.5 * (1 + math.cos(3 * math.pi / 4)), 10),  # 0.1464
        0.0,
    ]
    # warmup first, then the decay over the remaining steps
    both = _cfg(steps=6, warmup_steps=2, lr_scheduler="linear")
    assert [both.lr_factor(s) for s in range(7)] == [0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_min_lr_ratio_out_of_range_says_what_it_is(ratio):
    with pytest.raises(ValueError, match="min_lr_ratio is a share of lr"):
        _cfg(min_lr_ratio=ratio)


def test_a_grpo_run_logs_the_learning_rate_of_each_update(tmp_path):
    torch.set_num_threads(1)
    suite = like_suite(
        tmp_path, '{type: string_check, operation: like, input: "{{ sample.output_text }}", reference: "a"}'
    )
    cfg = load_config(
        GRPOConfig,
        None,
        [f"model={save_random_tiny(tmp_path / 'm')}", f"suite={suite}", f"out={tmp_path / 'run'}", "steps=4",
         "prompts_per_step=2", "group_size=2", "gen.max_new_tokens=4", "eval.n=2", "lr=1e-3",
         "lr_scheduler=linear", "min_lr_ratio=0.2", "grader_workers=0"],
    )  # fmt: skip
    train(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [round(r["lr"], 12) for r in rows if "lr" in r] == [1e-3, 8e-4, 6e-4, 4e-4]
