"""Async rollouts with `max_staleness` k > 1 (issue 23): step s is sampled with the weights after update
max(0, s - k), recorded per batch, and a run SIGKILLed mid-way and resumed repeats every step exactly.
The one-step mode's own test: tests/test_grpo.py::test_async_rollout_is_off_policy_by_one_step_and_resumes_exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _stale import check_sampled_by_their_version, keeper, like_a_suite

from rft.config import load_config
from rft.rl.grpo import GRPOConfig, train
from rft.tiny import make_model, make_tokenizer

RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
torch.set_num_threads(1)


def tiny_run_args(tmp_path: Path, staleness: int) -> list[str]:
    """A random tiny model rewarded for writing an "a": steps of 4 prompts x 4 samples."""
    tok = make_tokenizer(["What is 12 + 5? abc"] * 20)
    make_model(tok).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    suite = like_a_suite(tmp_path)
    return [
        f"model={tmp_path / 'm'}",
        f"suite={suite}",
        "steps=8",
        "prompts_per_step=4",
        "group_size=4",
        "gen.max_new_tokens=12",
        "eval.n=0",
        "lr=1e-2",
        "grader_workers=0",
        "async_rollout=true",
        f"max_staleness={staleness}",
    ]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("staleness", [pytest.param(2, marks=pytest.mark.slow), 3])
def test_stale_rollouts_use_the_weights_k_updates_back_and_resume_exactly_after_sigkill(tmp_path, staleness):
    args = tiny_run_args(tmp_path, staleness)
    steps = 8
    # run a in this process, every checkpoint kept: the weights of each version
    a, kept = tmp_path / "a", tmp_path / "kept"
    keep = keeper(a, kept)
    train(load_config(GRPOConfig, None, [*args, f"out={a}", "save_every=1"]), progress=keep)
    keep()
    metrics_a = read_jsonl(a / "metrics.jsonl")
    # the weight version of every step's batch: the weights after update max(0, s - k)
    versions = [int(m["rollout/weight_version"]) for m in metrics_a]
    assert versions == [max(0, s - staleness) for s in range(steps)]
    assert [m["rollout/staleness"] for m in metrics_a] == [min(s, staleness) for s in range(steps)]
    assert metrics_a[0]["loss/ratio_mean"] == pytest.approx(1.0, abs=1e-5)  # step 0: the same weights
    # and the rollouts each checkpoint queued were sampled by the weights of their version
    checked, told_apart = check_sampled_by_their_version(
        kept, tmp_path / "m", steps, staleness, atol=2e-4, newer_gap=1e-3
    )
    assert checked == told_apart == set(range(1, steps))

    # run b from the command line, SIGKILLed after its step-3 checkpoint, then resumed
    b = tmp_path / "b"
    cli = [RFT, "train", "grpo", *(x for kv in [*args, f"out={b}", "save_every=3"] for x in ("--set", kv))]
    proc = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while not (b / "checkpoints" / "step-000003").is_dir():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its step-3 checkpoint"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (b / "checkpoints" / f"step-{steps:06d}").exists(), "killed too late: the run had finished"
    resumed = subprocess.run([*cli, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics_b = read_jsonl(b / "metrics.jsonl")
    assert [m["step"] for m in metrics_b] == list(range(1, steps + 1))
    for x, y in zip(metrics_a, metrics_b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            if not k.startswith("time/"):
                assert x[k] == pytest.approx(y[k], rel=1e-6, abs=1e-7), (x["step"], k)
    assert read_jsonl(a / "rollouts.jsonl") == read_jsonl(b / "rollouts.jsonl")


def test_max_staleness_is_checked():
    with pytest.raises(ValueError, match="needs async_rollout: true"):
        GRPOConfig(model="m", suite="s", max_staleness=2)
    with pytest.raises(ValueError, match=r"max_staleness must be in 1\.\.8"):
        GRPOConfig(model="m", suite="s", async_rollout=True, max_staleness=0)
    with pytest.raises(ValueError, match=r"max_staleness must be in 1\.\.8"):
        GRPOConfig(model="m", suite="s", async_rollout=True, max_staleness=9)
    assert GRPOConfig(model="m", suite="s", async_rollout=True, max_staleness=4).max_staleness == 4
