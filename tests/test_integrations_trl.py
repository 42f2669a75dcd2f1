"""rft.integrations.trl: rft graders and suites driving TRL's GRPOTrainer (real graders and TRL, no mocks)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from rft.envs import get_suite
from rft.graders.executor import GraderPool
from rft.integrations.trl import (
    ITEM_COLUMN,
    SuiteRollout,
    completion_text,
    env_reward,
    reward_func,
    suite_dataset,
    suite_reward_func,
)

torch.set_num_threads(1)
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL 1.16
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GSM8K = "rft/gsm8k-v0"
MATH_SPEC = {
    "type": "math",
    "name": "m",
    "input": "{{ sample.output_text }}",
    "reference": "{{ item.reference }}",
}
SLEEPY = {
    "type": "python",
    "name": "sleepy",
    "source": "def grade(sample, item):\n    import time\n    time.sleep(30)\n    return 1.0\n",
    "timeout": 0.5,
}
needs_data = pytest.mark.skipif(not (DATA / "gsm8k_train.jsonl").is_file(), reason="needs ../shared/data")


def as_completions(texts: list[str], conversational: bool) -> list:
    return [[{"role": "assistant", "content": t}] for t in texts] if conversational else list(texts)


def decoy(rationale: str, reference: str) -> str:
    """The gold rationale with its final answer changed (a digit appended: a different number)."""
    return re.sub(r"####.*$", f"#### {reference}1", rationale.strip(), flags=re.S)


def columns(ds) -> dict:
    """A batch of rows as TRL passes them to reward functions: every column but the prompt as a keyword."""
    cols = ds[:]
    prompts = cols.pop("prompt")
    return {"prompts": prompts, **cols, "trainer_state": None}


# ---- reward functions ---------------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize("conversational", [True, False])
def test_suite_reward_scores_gsm8k_golds_1_and_decoys_0(conversational):
    ds = suite_dataset(GSM8K, limit=40)
    kw = columns(ds)
    reward = suite_reward_func(GSM8K)
    golds = as_completions(kw["answer"], conversational)  # GSM8K rationales ending "#### n"
    decoys = as_completions(
        [decoy(a, r) for a, r in zip(kw["answer"], kw["reference"], strict=True)], conversational
    )
    assert reward(completions=golds, **kw) == [1.0] * 40
    assert reward(completions=decoys, **kw) == [0.0] * 40
    assert reward.__name__ == "gsm8k-v0"


@needs_data
@pytest.mark.parametrize("conversational", [True, False])
def test_spec_reward_reads_plain_columns_and_a_grader_error_is_none(conversational):
    rows = [json.loads(line) for line in (DATA / "gsm8k_test.jsonl").read_text().splitlines()[:20]]
    refs = [r["answer"].rsplit("####", 1)[1].strip() for r in rows]
    golds = as_completions([r["answer"] for r in rows], conversational)
    logged: list[tuple[str, float]] = []
    reward = reward_func(MATH_SPEC)
    log = lambda name, value: logged.append((name, value))  # noqa: E731
    assert reward(completions=golds, reference=refs, question=[r["question"] for r in rows]) == [1.0] * 20
    # no reference column: the grader cannot grade (status error), so TRL must skip these samples
    assert reward(completions=golds, question=[r["question"] for r in rows], log_metric=log) == [None] * 20
    assert ("grader/m/error_rate", 1.0) in logged and ("grader/m/timeout_rate", 0.0) in logged


def test_completion_text_takes_the_last_assistant_message():
    assert completion_text("plain") == "plain"
    tool_loop = [
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function"}]},
        {"role": "tool", "name": "python", "content": "4"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "\\boxed{"}, {"type": "text", "text": "4}"}],
        },
    ]
    assert completion_text(tool_loop) == "\\boxed{4}"
    with pytest.raises(TypeError, match="str or a list of messages"):
        completion_text({"content": "x"})


def test_pool_sync_and_async_grade_alike_and_a_timeout_is_none():
    items = {"reference": ["4", "5", "6"]}
    texts = ["\\boxed{4}", "\\boxed{6}", "no idea"]
    with GraderPool(workers=1, timeout=10) as pool:
        sync = reward_func(MATH_SPEC, pool=pool)(completions=texts, **items)
        async_reward = reward_func(MATH_SPEC, pool=pool, asynchronous=True)
        assert asyncio.iscoroutinefunction(async_reward.__call__)
        assert asyncio.run(async_reward(completions=texts, **items)) == sync == [1.0, 0.0, 0.0]
        sleepy = reward_func(SLEEPY, pool=pool, asynchronous=True)
        assert asyncio.run(sleepy(completions=["x"], reference=["4"])) == [None]  # timed out: TRL skips it
    inline = asyncio.run(reward_func(MATH_SPEC, asynchronous=True)(completions=texts, **items))
    assert inline == sync


# ---- datasets -------------------------------------------------------------------------------------------


def test_suite_dataset_columns_and_exact_items(tmp_path):
    from _warm import write_add_suite

    suite = get_suite(write_add_suite(tmp_path))
    ds = suite_dataset(suite, "heldout")
    items = suite.items("heldout")
    assert len(ds) == len(items)
    assert ds.column_names[0] == "prompt" and ds.column_names[-1] == ITEM_COLUMN
    assert sorted(ds.column_names[1:-1]) == sorted(
        items[0]
    )  # answer, expression, id, question, reference, ...
    assert ds[0]["prompt"] == suite.messages(items[0]) == [{"role": "user", "content": items[0]["question"]}]
    assert json.loads(ds[3][ITEM_COLUMN]) == items[3] and ds[3]["reference"] == items[3]["reference"]
    assert len(suite_dataset(suite, limit=5)) == 5


@needs_data
def test_a_field_named_like_trls_own_stays_in_the_item():
    ds = suite_dataset("rft/humaneval-v0", limit=3)  # HumanEval rows have a `prompt` field (the code stub)
    item = json.loads(ds[0][ITEM_COLUMN])
    assert (
        ds[0]["prompt"][-1]["role"] == "user" and isinstance(item["prompt"], str) and "def " in item["prompt"]
    )


def test_multi_turn_suites_are_refused_with_a_way_out():
    with pytest.raises(ValueError, match="SuiteRollout"):
        suite_reward_func("rft/code-feedback-v0")
    with pytest.raises(ValueError, match="pass rollout_func=SuiteRollout"):
        env_reward(completions=["x"])


# ---- training with TRL's GRPOTrainer --------------------------------------------------------------------


def trl_config(out: Path, steps: int, seed: int = 0, **kw):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=64,  # completions: 8 prompts x 8 samples, one micro-batch per step
        gradient_accumulation_steps=1,
        num_generations=8,
        max_completion_length=12,
        temperature=1.0,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        optim="adamw_torch",
        beta=0.0,
        loss_type="dapo",
        gradient_checkpointing=False,
        use_cpu=True,
        bf16=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        max_steps=steps,
        seed=seed,
        **kw,
    )


def trainer_for(model_dir: Path, config, **kw):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(model_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GRPOTrainer(model=model, args=config, processing_class=tok, **kw)


def logged(trainer, key: str) -> list[float]:
    return [h[key] for h in trainer.state.log_history if key in h]


@pytest.mark.slow
def test_trl_grpo_on_an_rft_suite_raises_the_logged_reward(tmp_path, warm):
    """150 TRL GRPO steps (8 prompts x 8 samples, lr 1e-4; ~35 s here) from the tiny model that solves about
    half of 2-digit additions greedily: the mean logged train reward (temperature 1) of the last 25 steps
    beats that of the first 25 by 0.04 or more (measured over seeds 0-4: see the report)."""
    model_dir, suite = warm
    trainer = trainer_for(
        model_dir,
        trl_config(tmp_path / "trl", steps=150),
        reward_funcs=suite_reward_func(suite),
        train_dataset=suite_dataset(suite),
    )
    trainer.train()
    rewards = logged(trainer, "reward")
    assert len(rewards) == 150 and logged(trainer, "grader/add-v0/error_rate")[-1] == 0.0
    first, last = sum(rewards[:25]) / 25, sum(rewards[-25:]) / 25
    assert last >= first + 0.04, (first, last, rewards)


def feedback_suite(folder: Path, add_suite: Path) -> Path:
    """The warm model's addition suite as a two-turn feedback episode."""
    path = folder / "add-feedback-v0.yaml"
    text = add_suite.read_text().replace("id: add-v0", "id: add-feedback-v0")
    path.write_text(text + "episode: {type: feedback, max_turns: 2}\n")
    return path


def test_rollout_func_plays_feedback_episodes_and_masks_the_environment(tmp_path, warm):
    model_dir, add = warm
    suite = feedback_suite(tmp_path, add)
    rollout = SuiteRollout(suite)
    with GraderPool(workers=1) as pool:
        trainer = trainer_for(
            model_dir,
            trl_config(tmp_path / "trl", steps=2, reward_weights=[1.0, 0.0]),  # the grader's: logged only
            reward_funcs=[env_reward, suite_reward_func(add, pool=pool, asynchronous=True)],
            train_dataset=suite_dataset(suite),
            rollout_func=rollout,
        )
        trainer.train()
    assert len(logged(trainer, "rewards/env_reward/mean")) == 2
    assert all(1.0 < t <= 2.0 for t in logged(trainer, "rollout/turns"))  # some wrong answers got a retry
    assert len(logged(trainer, "rewards/add-v0/mean")) == 2  # the async reward ran on TRL's event loop

    # one rollout by hand: the feedback turn's tokens are the environment's (env_mask 0), answers the model's
    prompts = [suite_dataset(suite)[i]["prompt"] for i in range(4) for _ in range(4)]
    out = rollout(prompts, trainer)
    tok = trainer.processing_class
    assert len(out["completion_ids"]) == 16 and out["logprobs"] is None
    retried = [i for i, t in enumerate(out["env_turns"]) if t == 2]
    assert retried, out["env_reward"]
    for i in retried:
        ids, mask = out["completion_ids"][i], out["env_mask"][i]
        env_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if not m])
        model_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
        assert "not correct" in env_text and "not correct" not in model_text
        assert out["env_reward"][i] in (0.0, 1.0) and out["env_status"][i] in ("ok", "no_answer")
    for i, turns in enumerate(out["env_turns"]):
        if turns == 1:
            assert all(out["env_mask"][i]) and out["env_reward"][i] == 1.0  # right first time


def test_rollout_refuses_what_it_cannot_honour(tmp_path, warm):
    model_dir, add = warm
    suite = feedback_suite(tmp_path, add)
    trainer = trainer_for(
        model_dir,
        trl_config(tmp_path / "trl", steps=1, repetition_penalty=1.2),
        reward_funcs=env_reward,
        train_dataset=suite_dataset(suite),
        rollout_func=SuiteRollout(suite),
    )
    with pytest.raises(ValueError, match="repetition_penalty"):
        trainer.train()


def test_rollout_refuses_prompts_it_cannot_place(tmp_path):
    """TRL hands rollout_func prompts, not rows: a prompt must name one item of the suite."""
    rows = [
        {"q": "What is 2 + 2?", "a": "4"},
        {"q": "What is 2 + 2?", "a": "5"},
        {"q": "What is 3 + 3?", "a": "6"},
    ]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "dup-v0.yaml").write_text(
        "id: dup-v0\nsource: {type: jsonl, path: rows.jsonl}\nfields: {reference: a}\nsplit: 0\n"
        "prompt: {user: '{{ item.q }}'}\ngrader: {type: math, input: '{{ sample.output_text }}', "
        "reference: '{{ item.reference }}'}\nepisode: {type: feedback, max_turns: 2}\n"
    )
    rollout = SuiteRollout(tmp_path / "dup-v0.yaml")
    with pytest.raises(ValueError, match="belongs to several different items of suite dup-v0"):
        rollout([[{"role": "user", "content": "What is 2 + 2?"}]], trainer=None)
    with pytest.raises(ValueError, match="is not one of suite dup-v0"):
        rollout([[{"role": "user", "content": "What is 4 + 4?"}]], trainer=None)


@pytest.mark.slow
def test_the_example_runs_with_grader_workers_and_an_async_reward(tmp_path):
    """examples/trl_grpo.py on a tiny budget, as a subprocess: its grader workers re-import it (the
    ``__main__`` guard) and TRL awaits its async reward function."""
    script = Path(__file__).resolve().parents[1] / "examples" / "trl_grpo.py"
    args = ["--warm-steps", "5", "--steps", "2", "--eval-n", "4", "--workers", "1", "--async-reward"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, str(script), *args, "--out", str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (
        "addition-v0: 2 TRL GRPO steps" in res.stdout
        and "held-out accuracy (greedy, 4 problems)" in res.stdout
    )
    assert (tmp_path / "model" / "config.json").is_file()
