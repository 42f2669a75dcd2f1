"""`rft diagnose` on GRPO runs made to fail on purpose (each names its cause) and on a run that learns (no
warning). Tiny models, a few dozen steps each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rft.config import load_config
from rft.envs import load_suite
from rft.rl.diagnose import diagnose
from rft.rl.grpo import GRPOConfig, train
from rft.tiny import warm_start

RFT = [sys.executable, "-m", "rft"]
# rewards any boxed answer, right or not: the model already boxes every answer, so the reward is ~1
BOXED_ANY = """\
id: add-boxed-v0
source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2, ops: "+"}, size: 3000, seed: 0}
fields: {id: id, reference: answer}
prompt: {user: "{{ item.question }}"}
grader: {type: regex, pattern: '\\\\boxed\\{[^}]*\\}', input: "{{ sample.output_text }}"}
split: 0.1
"""


def _run(tmp: Path, model: Path, suite: Path, *sets: str) -> Path:
    out = tmp / "run"
    cfg = load_config(
        GRPOConfig,
        None,
        [f"model={model}", f"suite={suite}", f"out={out}", "steps=24", "prompts_per_step=8", "group_size=8",
         "gen.max_new_tokens=12", "lr=1e-4", "eval.n=100", "eval.every=12", "grader_workers=0", *sets],
    )  # fmt: skip
    torch.set_num_threads(1)
    train(cfg)
    return out


def _kinds(run: Path) -> list[str]:
    return [f.kind for f in diagnose(run).findings]


def test_a_learning_rate_too_small_to_matter_is_a_frozen_policy(tmp_path, warm):
    """lr 0 is refused by the config; 1e-12 is the same run: the groups vary, the weights do not move."""
    model, suite = warm
    run = _run(tmp_path, model, suite, "lr=1e-12")
    d = diagnose(run)
    assert [f.kind for f in d.findings] == ["frozen policy"], d.lines()
    assert "lr 1e-12" in d.findings[0].message and "raise lr" in d.findings[0].advice
    assert d.verdict.startswith("diagnose: frozen policy")


def test_a_learning_rate_too_small_to_learn_in_time_is_a_stall(tmp_path, warm):
    """lr 1e-7: the weights move (not frozen), the groups vary, but neither reward nor held-out accuracy
    moves beyond its noise in the run's steps."""
    model, suite = warm
    run = _run(tmp_path, model, suite, "lr=1e-7")
    d = diagnose(run)
    assert [f.kind for f in d.findings] == ["stalled"], d.lines()
    assert "within its noise" in d.findings[0].message and "more steps" in d.findings[0].advice


def test_a_grader_that_rewards_any_boxed_answer_is_reward_hacking(tmp_path, warm):
    model, add_suite = warm
    boxed = tmp_path / "add-boxed-v0.yaml"
    boxed.write_text(BOXED_ANY)
    assert load_suite(boxed).load_grader().grade({"output_text": "\\boxed{7}"}, {"reference": "95"}).passed
    run = _run(tmp_path, model, boxed, f"eval.suite={add_suite}")
    d = diagnose(run)
    assert "reward hacking" in [f.kind for f in d.findings], d.lines()
    hack = next(f for f in d.findings if f.kind == "reward hacking")
    assert "fail the held-out grader" in hack.message
    assert hack.examples and all(ex["completion"].startswith("\\boxed{") for ex in hack.examples)
    # each example is a wrong sum that the training grader rewarded
    assert all(ex["completion"] != f"\\boxed{{{ex['reference']}}}" for ex in hack.examples)


def test_a_warm_start_that_never_gives_the_answer_format(tmp_path, warm):
    """An untrained tiny model never writes \\boxed{}: no answer, equal (zero) rewards, no signal."""
    _, suite = warm
    model = warm_start(load_suite(suite), tmp_path / "untrained", steps=0)
    run = _run(tmp_path, model, suite, "steps=8", "eval.every=8")
    kinds = _kinds(run)
    assert kinds[:2] == ["format never found", "no signal"], kinds
    assert "frozen policy" not in kinds and "stalled" not in kinds


def test_a_sampler_far_from_the_trainer_is_named(tmp_path, warm):
    """A sampler whose logits are scaled (a flatter distribution than the trainer's): mismatch/kl ~0.5."""
    model, suite = warm
    run = _run(tmp_path, model, suite, "steps=6", "eval.every=6", "engine_options={logit_scale: 0.6}")
    found = {f.kind: f for f in diagnose(run).findings}
    assert "sampler mismatch" in found, diagnose(run).lines()
    assert "loss.correction" in found["sampler mismatch"].advice


@pytest.mark.slow
def test_a_run_that_learns_gets_no_warning_and_the_command_prints_the_verdict(tmp_path, warm):
    model, suite = warm
    run = _run(tmp_path, model, suite, "steps=80", "eval.every=40", "eval.n=200")
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r["eval/accuracy"] for r in rows if "eval/accuracy" in r]
    assert evals[-1] > evals[0] + 0.05, evals  # it did learn
    assert diagnose(run).findings == [], diagnose(run).lines()
    res = subprocess.run([*RFT, "diagnose", str(run)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "no problems found" in res.stdout, res.stdout + res.stderr


def test_diagnose_on_a_folder_without_a_run_is_one_line(tmp_path):
    res = subprocess.run([*RFT, "diagnose", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "holds no grpo/ppo run" in res.stderr and "Traceback" not in res.stderr
