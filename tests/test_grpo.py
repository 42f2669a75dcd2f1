"""The GRPO loop on tiny models: updates and logs, masking of failed grades, learning, held-out evaluation,
resume after SIGKILL, async rollouts, KL. Engines and rollouts: tests/test_engines.py."""

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

from rft.config import load_config
from rft.engines import HFEngine
from rft.envs import SuiteEnv, load_suite
from rft.rl.grpo import GRPOConfig, train
from rft.tiny import make_model, make_tokenizer

RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
torch.set_num_threads(1)


# ---- GRPO --------------------------------------------------------------------------------------------


def like_suite(tmp_path, grader: str) -> Path:
    path = tmp_path / "like-v0.yaml"
    path.write_text(
        "id: like-v0\n"
        "source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2}, size: 64}\n"
        "fields: {id: id, reference: answer}\n"
        'prompt: {user: "{{ item.question }}"}\n'
        f"grader: {grader}\nsplit: 0.25\n"
    )
    return path


def save_random_tiny(folder: Path) -> Path:
    tok = make_tokenizer(["What is 12 + 5? abc"] * 20)
    make_model(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_grpo_steps_update_the_model_and_log(tmp_path):
    model_dir = save_random_tiny(tmp_path / "m")
    suite = like_suite(
        tmp_path, '{type: string_check, operation: like, input: "{{ sample.output_text }}", reference: "a"}'
    )
    cfg = load_config(
        GRPOConfig,
        None,
        [
            f"model={model_dir}",
            f"suite={suite}",
            f"out={tmp_path / 'run'}",
            "steps=2",
            "prompts_per_step=4",
            "group_size=4",
            "gen.max_new_tokens=16",
            "eval.n=4",
            "lr=1e-3",
            "grader_workers=0",
            "micro_batch=5",
        ],
    )
    from transformers import AutoModelForCausalLM

    start = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    final = train(cfg)
    assert set(final) == {
        "eval/accuracy",
        "eval/reward",
        "eval/failed_rate",
        "eval/completion_len",
        "eval/parse_error_rate",
    }
    run = tmp_path / "run"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1, 2]
    for key in (
        "reward/mean",
        "reward/like-v0",
        "grader/error_rate",
        "grader/timeout_rate",
        "loss/policy",
        "loss/clip_frac",
        "rollout/zero_var_frac",
        "rollout/completion_len",
        "time/step_s",
    ):
        assert key in metrics[1] and metrics[1][key] == metrics[1][key], key  # present, not NaN
    assert 0 < metrics[1]["rollout/trained_rows"] <= 16
    rollouts = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 2 * 16 and {"prompt", "completion", "reward", "grade", "reference"} <= set(
        rollouts[0]
    )
    ckpt = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    after = AutoModelForCausalLM.from_pretrained(ckpt / "model").state_dict()
    assert any(not torch.equal(start[k], after[k]) for k in start)


def test_failed_grades_are_masked_not_rewarded_zero(tmp_path):
    model_dir = save_random_tiny(tmp_path / "m")
    slow = (
        '{type: python, timeout: 0.5, source: "import time\\ndef grade(sample, item):\\n'
        "    if 'a' in sample['output_text']:\\n        time.sleep(5)\\n    return 1.0 if 'b' in sample['output_text'] else 0.0\\n\"}"
    )
    suite = like_suite(tmp_path, slow)
    cfg = load_config(
        GRPOConfig,
        None,
        [
            f"model={model_dir}",
            f"suite={suite}",
            f"out={tmp_path / 'run'}",
            "steps=1",
            "prompts_per_step=2",
            "group_size=4",
            "gen.max_new_tokens=12",
            "eval.n=0",
            "grader_workers=2",
        ],
    )
    train(cfg)
    [m] = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    timed_out = [r for r in rows if r["status"] == "timeout"]
    assert timed_out and all("a" in r["completion"][-1]["content"] for r in timed_out)
    assert m["grader/timeout_rate"] == len(timed_out) / len(rows)
    graded = [r for r in rows if r["status"] != "timeout"]
    assert m["reward/mean"] == pytest.approx(sum(r["reward"] for r in graded) / max(1, len(graded)))
    assert m["rollout/trained_rows"] <= len(graded)


@pytest.mark.slow
def test_grpo_raises_heldout_accuracy(tmp_path, warm):
    """From a tiny model that solves about half of 2-digit additions, 120 GRPO steps (~30 s here) raise
    greedy held-out accuracy on 200 problems by 0.08 or more (measured: 0.48 -> 0.64 over three seeds)."""
    model, suite = warm
    cfg = load_config(
        GRPOConfig,
        None,
        [
            f"model={model}",
            f"suite={suite}",
            f"out={tmp_path / 'run'}",
            "steps=120",
            "prompts_per_step=8",
            "group_size=8",
            "gen.max_new_tokens=12",
            "lr=1e-4",
            "eval.n=200",
            "grader_workers=0",
        ],
    )
    final = train(cfg)
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 0
    assert final["eval/accuracy"] >= first["eval/accuracy"] + 0.08, (first, final)


def test_heldout_accuracy_counts_failed_grades_as_not_passed(tmp_path, warm):
    """As in `rft eval`: a timed-out grade is not a pass (it used to leave the denominator, raising accuracy)."""
    from rft.eval.heldout import evaluate
    from rft.graders.executor import GraderPool
    from rft.models import load_policy

    model, suite = warm
    slow = (
        'grader: {type: python, timeout: 0.5, source: "import time\\ndef grade(sample, item):\\n'
        "    if '7' in sample['output_text']:\\n        time.sleep(5)\\n    return 1.0\\n\"}"
    )
    lines = Path(suite).read_text().replace("id: add-v0", "id: slow7-v0").splitlines()
    path = tmp_path / "slow7-v0.yaml"
    path.write_text("\n".join(slow if line.startswith("grader:") else line for line in lines) + "\n")
    policy, tok = load_policy(model)
    envs = [SuiteEnv(load_suite(path)) for _ in range(40)]
    with GraderPool(workers=2) as pool:
        m = evaluate(HFEngine(policy, tok), tok, envs, "heldout", 12, pool)
    assert 0 < m["eval/failed_rate"] < 1  # answers with a 7 timed out, the others passed
    assert m["eval/accuracy"] == pytest.approx(1 - m["eval/failed_rate"]) and m["eval/reward"] == 1.0


@pytest.mark.parametrize("kind", ["grpo", "ppo"])
def test_max_grad_norm_0_means_no_clipping(tmp_path, warm, kind):
    """0 turns clipping off (as in the SFT stage); it used to clip every gradient to norm 0: no update."""
    from safetensors.torch import load_file

    from rft.app.pipeline import stage_class, train_stage

    model, suite = warm
    cfg = load_config(stage_class(kind), None, [
        f"model={model}", f"suite={suite}", f"out={tmp_path / kind}", "steps=1", "prompts_per_step=4",
        "gen.max_new_tokens=12", "grader_workers=0", "eval.n=0", "max_grad_norm=0", "lr=1e-3",
    ] + (["group_size=4"] if kind == "grpo" else []))  # fmt: skip
    train_stage(kind, cfg, False, lambda *a, **k: None)
    before = load_file(str(Path(model) / "model.safetensors"))
    after = load_file(str(tmp_path / kind / "checkpoints" / "step-000001" / "model" / "model.safetensors"))
    moved = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert len(moved) >= len(before) // 2, moved
    rows = [json.loads(line) for line in (tmp_path / kind / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss/grad_norm"] > 0


def test_in_training_eval_uses_the_eval_suites_grader(tmp_path, warm):
    """Train reward from a format-only grader (any \\boxed{} answer scores 1), held-out accuracy from the
    eval suite's math grader: the two curves differ as reward hacking would make them differ."""
    model, suite = warm
    lines = Path(suite).read_text().replace("id: add-v0", "id: boxed-v0").splitlines()
    grader = 'grader: {type: string_check, operation: like, input: "{{ sample.output_text }}", reference: "boxed{"}'
    lenient = tmp_path / "boxed-v0.yaml"
    lenient.write_text("\n".join(grader if line.startswith("grader:") else line for line in lines) + "\n")
    cfg = load_config(GRPOConfig, None, [
        f"model={model}", f"suite={lenient}", f"out={tmp_path / 'run'}", "steps=2", "prompts_per_step=4",
        "group_size=4", "gen.max_new_tokens=12", "grader_workers=0",
        f"eval.suite={suite}", "eval.every=1", "eval.n=100",
    ])  # fmt: skip
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if "reward/mean" in r]
    evals = [r["eval/accuracy"] for r in rows if "eval/accuracy" in r]
    assert len(trained) == 2 and len(evals) == 3  # before training and after each step
    assert all(r["reward/mean"] >= 0.9 for r in trained)  # the warm model always writes \\boxed{}
    assert all(0.2 <= a <= 0.75 for a in evals)  # about half its sums are right


@pytest.mark.slow
def test_resume_after_sigkill_repeats_the_same_steps(tmp_path, warm):
    model, suite = warm
    args = [
        RFT,
        "train",
        "grpo",
        "--set",
        f"model={model}",
        "--set",
        f"suite={suite}",
        "--set",
        "steps=12",
        "--set",
        "prompts_per_step=4",
        "--set",
        "group_size=4",
        "--set",
        "gen.max_new_tokens=12",
        "--set",
        "eval.n=20",
        "--set",
        "eval.every=4",
        "--set",
        "save_every=4",
        "--set",
        "grader_workers=1",
    ]
    whole = subprocess.run(
        [*args, "--set", f"out={tmp_path / 'a'}"], capture_output=True, text=True, timeout=300
    )
    assert whole.returncode == 0, whole.stderr[-2000:]
    run_b = tmp_path / "b"
    proc = subprocess.Popen(
        [*args, "--set", f"out={run_b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while not (run_b / "checkpoints" / "step-000008").is_dir():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its step-8 checkpoint"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(
        [*args, "--set", f"out={run_b}", "--resume"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    def metrics(run):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]

    a, b = metrics(tmp_path / "a"), metrics(run_b)
    assert [r["step"] for r in b] == list(range(13))
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-6, abs=1e-7), (x["step"], k)


@pytest.mark.slow
def test_task_filter_keeps_the_band(tmp_path, warm):
    model, suite = warm
    out = tmp_path / "flt"
    res = subprocess.run(
        [
            RFT,
            "task",
            "filter",
            "--model",
            str(model),
            "--suite",
            str(suite),
            "--out",
            str(out),
            "--limit",
            "48",
            "--n",
            "6",
            "--max-new-tokens",
            "12",
            "--band",
            "0.2,0.8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert rows and all(0.2 <= r["pass_rate"] <= 0.8 for r in rows) and len(rows) < 48
    filtered = load_suite(out / "add-band-v0.yaml")
    assert [it["id"] for it in filtered.items("train")] == [r["id"] for r in rows]
    assert filtered.items("heldout") == []


def test_cli_config_errors_say_what_to_fix(tmp_path):
    res = subprocess.run(
        [RFT, "train", "grpo", "--set", "model=x", "--set", "suite=arithmetic-v0", "--set", "loss.betta=0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "loss.betta" in res.stderr and "beta" in res.stderr
    res = subprocess.run(
        [RFT, "train", "grpo", "--set", "model=x", "--set", "suite=arithmetic-v0", "--set", "group_size=1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "group_size must be >= 2" in res.stderr


@pytest.mark.parametrize(
    "recipe", sorted((Path(__file__).parents[1] / "examples" / "recipes").glob("grpo-*.yaml"))
)
def test_example_recipes_load(recipe):
    cfg = load_config(GRPOConfig, recipe)
    assert cfg.steps > 0 and cfg.group_size >= 2


def test_async_rollout_is_off_policy_by_one_step_and_resumes_exactly(tmp_path):
    model_dir = save_random_tiny(tmp_path / "m")
    suite = like_suite(
        tmp_path, '{type: string_check, operation: like, input: "{{ sample.output_text }}", reference: "a"}'
    )
    args = [
        f"model={model_dir}",
        f"suite={suite}",
        "steps=4",
        "prompts_per_step=4",
        "group_size=4",
        "gen.max_new_tokens=12",
        "eval.n=0",
        "lr=1e-3",
        "grader_workers=0",
        "save_every=2",
        "async_rollout=true",
    ]
    train(load_config(GRPOConfig, None, [*args, f"out={tmp_path / 'a'}"]))
    a = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert a[0]["loss/ratio_mean"] == pytest.approx(1.0, abs=1e-5)  # step 1: sampled by the same weights
    assert any(abs(m["loss/ratio_mean"] - 1.0) > 1e-5 for m in a[1:])  # later: one update behind
    # a run killed after its step-2 checkpoint: the same folder without the later checkpoint
    b = tmp_path / "b"
    shutil.copytree(tmp_path / "a", b)
    shutil.rmtree(b / "checkpoints" / "step-000004")
    (b / "checkpoints" / "latest").write_text("step-000002\n")
    config = (b / "config.yaml").read_text().replace(str(tmp_path / "a"), str(b))
    (b / "config.yaml").write_text(config)
    train(load_config(GRPOConfig, None, [*args, f"out={b}"]), resume=True)
    resumed = [json.loads(line) for line in (b / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in resumed] == [1, 2, 3, 4]
    for x, y in zip(a, resumed, strict=True):
        for k in x:
            if not k.startswith("time/"):
                assert x[k] == pytest.approx(y[k], rel=1e-6, abs=1e-7), (x["step"], k)


def test_a_stage_run_folder_stands_for_its_model(tmp_path):
    from rft.models import load_policy, resolve_model_path

    run = tmp_path / "runs" / "sft"
    save_random_tiny(run / "model")
    (run / "config.yaml").write_text("model: base\n")
    assert resolve_model_path(run) == run / "model"
    model, tok = load_policy(run)
    assert model.config.vocab_size == len(tok)


@pytest.mark.parametrize("lora", ["0", "4"])
def test_kl_to_the_reference_is_logged_and_finite(tmp_path, lora):
    model_dir = save_random_tiny(tmp_path / "m")
    suite = like_suite(
        tmp_path, '{type: string_check, operation: like, input: "{{ sample.output_text }}", reference: "a"}'
    )
    args = [
        f"model={model_dir}",
        f"suite={suite}",
        f"out={tmp_path / 'run'}",
        "steps=2",
        "prompts_per_step=2",
        "group_size=4",
        "gen.max_new_tokens=10",
        "eval.n=0",
        "lr=1e-2",
        "grader_workers=0",
        "loss.beta=0.1",
        f"lora.r={lora}",
        "lora.target_modules=[q_proj, v_proj]",
    ]
    train(load_config(GRPOConfig, None, args))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["loss/kl"] == pytest.approx(0.0, abs=1e-6)  # first step: the policy is the reference
    assert all(r["loss/kl"] >= 0 and r["loss/kl"] == r["loss/kl"] for r in rows)
