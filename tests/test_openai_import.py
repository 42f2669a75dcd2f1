"""`rft import openai-job`: an OpenAI reinforcement fine-tuning job (files in OpenAI's documented format:
rows with `messages` plus the fields graders read, a grader JSON, hyperparameters or the job's create body)
as an rft suite and pipeline. Unit tests of the hyperparameter mapping, the row checks and the metrics the
report shows; then the whole path as subprocesses: import, `rft run` on the tiny model with a `multi`
grader whose `score_model` judge is a tiny model served by `rft.app.serve`, and the report."""

from __future__ import annotations

import json
import math
import os
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest

from rft.app.openai_job import BASE_LR, JobError, import_job, map_hyperparameters, read_rows
from rft.envs.suite import SuiteError, chat_messages, load_suite
from rft.eval.heldout import grade_breakdown
from rft.graders import load_grader
from rft.rollout import Trajectory

SYSTEM = {"role": "developer", "content": "Answer with the number only."}
JUDGE_INPUT = [{"role": "user", "type": "message",
                "content": "Reference: {{ item.answer }}\nAnswer: {{ sample.output_text }}\nScore the answer."}]  # fmt: skip
EXACT = (
    "def grade(sample, item):\n    return 1.0 if sample['output_text'].strip() == item['answer'] else 0.0\n"
)


def _row(a: int, b: int) -> dict:
    """An RFT row as OpenAI documents it: `messages` ending with the user's turn, the rest is the item."""
    return {
        "messages": [SYSTEM, {"role": "user", "content": f"What is {a}+{b}?"}],
        "answer": str(a + b),
        "a": a,
    }


def _grader(judge_url: str | None = None) -> dict:
    judge = {"type": "score_model", "name": "judge", "model": "tiny-judge", "input": JUDGE_INPUT,
             "sampling_params": {"temperature": 0, "max_completions_tokens": 12}}  # fmt: skip
    if judge_url:
        judge["base_url"] = judge_url
    return {"type": "multi", "graders": {"exact": {"type": "python", "name": "exact", "source": EXACT}, "judge": judge},
            "calculate_output": "0.5 * exact + 0.5 * judge"}  # fmt: skip


def _write_job(d: Path, *, n_train: int = 6, n_valid: int = 3, hp: dict | None = None) -> dict[str, Path]:
    rng = random.Random(0)
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "train": d / "train.jsonl",
        "valid": d / "valid.jsonl",
        "grader": d / "grader.json",
        "hp": d / "hp.json",
    }
    for key, n in (("train", n_train), ("valid", n_valid)):
        files[key].write_text(
            "".join(json.dumps(_row(rng.randint(1, 9), rng.randint(1, 9))) + "\n" for _ in range(n))
        )
    files["grader"].write_text(json.dumps(_grader()))
    files["hp"].write_text(json.dumps(hp or {}))
    return files


# -- the hyperparameter mapping -------------------------------------------------------------------------


def test_explicit_hyperparameters_map_to_their_counterparts():
    hp = {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 0.5, "compute_multiplier": 2,
          "eval_interval": 5, "eval_samples": 4, "reasoning_effort": "high", "seed": 7}  # fmt: skip
    settings, table = map_hyperparameters(hp, n_train=10, n_valid=3)
    g = settings["grpo"]
    assert g["steps"] == math.ceil(3 * 10 / 4) == 8  # OpenAI's steps: epochs x rows / batch
    assert (g["prompts_per_step"], g["group_size"], g["lr"]) == (4, 16, BASE_LR * 0.5)
    assert g["eval"] == {"every": 5, "n": 3} and g["gen"] == {"temperature": 1.0, "max_new_tokens": 2048}
    assert settings["eval"]["n"] == 4 and settings["seed"] == 7
    rows = {r.openai: r for r in table}
    assert set(rows) == set(hp)
    assert rows["reasoning_effort"].rft.startswith("no counterpart: ") and "max_new_tokens 2048" in rows[
        "reasoning_effort"].rft  # fmt: skip
    assert rows["eval_samples"].rft.startswith("no counterpart during training: ")
    assert f"base {BASE_LR:g} x 0.5" in rows["learning_rate_multiplier"].rft


def test_auto_hyperparameters_say_what_was_chosen():
    settings, table = map_hyperparameters(
        {"batch_size": "auto"}, n_train=5, n_valid=2, base_lr=1e-4, max_new_tokens=16
    )
    g = settings["grpo"]
    assert (g["prompts_per_step"], g["steps"], g["group_size"], g["lr"]) == (
        5,
        1,
        8,
        1e-4,
    )  # auto batch: at most N
    assert g["gen"]["max_new_tokens"] == 16 and settings["seed"] == 0
    notes = {r.openai: r.rft for r in table}
    assert "auto: 1 epoch" in notes["n_epochs"] and "--max-new-tokens" in notes["reasoning_effort"]
    assert "none given: 0" in notes["seed"]


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"n_epoch": 2}, "unknown hyperparameters ['n_epoch']"),
        ({"n_epochs": "two"}, "n_epochs must be 'auto' or a number"),
        ({"batch_size": 2.5}, "batch_size must be 'auto' or an integer"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"reasoning_effort": "max"}, "reasoning_effort must be one of"),
    ],
)
def test_bad_hyperparameters_say_what_to_fix(hp, message):
    with pytest.raises(JobError, match=message.replace("[", r"\[").replace("]", r"\]")):
        map_hyperparameters(hp, n_train=4, n_valid=2)


# -- rows, suites and the metrics the report shows -------------------------------------------------------


def test_chat_messages_validates_openai_rows():
    parts = [{"type": "text", "text": "What is "}, {"type": "text", "text": "2+2?"}]
    assert chat_messages([SYSTEM, {"role": "user", "content": parts}], "x") == [
        {"role": "system", "content": "Answer with the number only."},  # developer: sent as system
        {"role": "user", "content": "What is 2+2?"},
    ]
    bad = [
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "must end with a user turn",
        ),
        ([{"role": "tool", "content": "x"}], "role 'tool'"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}],
            "only text parts",
        ),
        ([], "non-empty list"),
        ([{"content": "q"}], "role and content"),
    ]
    for messages, message in bad:
        with pytest.raises(SuiteError, match=message):
            chat_messages(messages, "row 3")


def test_read_rows_names_the_line_to_fix(tmp_path):
    f = tmp_path / "train.jsonl"
    rows = [
        _row(1, 2),
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(JobError, match=r"train.jsonl:2: the last message is the assistant's"):
        read_rows(f, "--train")
    f.write_text(json.dumps({"prompt": "q"}) + "\n")
    with pytest.raises(JobError, match=r"train.jsonl:1: each line must be an object with `messages`"):
        read_rows(f, "--train")
    with pytest.raises(JobError, match="does not exist"):
        read_rows(tmp_path / "none.jsonl", "--valid")


def test_import_writes_a_suite_whose_validation_file_is_the_heldout_split(tmp_path):
    files = _write_job(tmp_path / "job", hp={"batch_size": 2, "n_epochs": 2})
    res = import_job(files["train"], files["grader"], "some/model", tmp_path / "out", valid=files["valid"],
                     hyperparameters=files["hp"], name="My Job")  # fmt: skip
    assert res.suite.name == "my-job-v0.yaml" and (res.train_rows, res.valid_rows) == (6, 3)
    suite = load_suite(res.suite)
    assert len(suite.items("train")) == 6 and len(suite.items("heldout")) == 3
    item = suite.items("heldout")[0]
    assert suite.messages(item)[-1]["role"] == "user" and item["reference"] is None and "answer" in item
    assert suite.grader == _grader()  # as given
    text = res.pipeline.read_text()
    assert "# n_epochs = 2 -> steps: 6" in text and "model: some/model" in text


def test_import_warns_when_validation_rows_repeat_training_prompts(tmp_path):
    files = _write_job(tmp_path / "job")
    files["valid"].write_text(
        files["train"].read_text().splitlines()[0] + "\n" + json.dumps(_row(40, 2)) + "\n"
    )
    res = import_job(files["train"], files["grader"], "m", tmp_path / "out", valid=files["valid"])
    notes = {r.openai: (r.value, r.rft) for r in res.table}
    assert notes["validation overlap"][0] == 1 and "overstates" in notes["validation overlap"][1]


def test_import_without_validation_file_holds_out_a_split_or_says_why_not(tmp_path):
    files = _write_job(tmp_path / "job", n_train=40)
    res = import_job(files["train"], files["grader"], "m", tmp_path / "out", split=0.25, reference="answer")
    suite = load_suite(res.suite)
    assert suite.split == 0.25 and 0 < len(suite.items("heldout")) < 40
    assert all(
        it["reference"] == it["answer"] for it in suite.items()
    )  # a gold answer: rft task check uses it
    few = _write_job(tmp_path / "few", n_train=1)
    with pytest.raises(JobError, match="holds out none: give --valid or a larger --split"):
        import_job(few["train"], few["grader"], "m", tmp_path / "out2", split=0.01)


def test_import_reads_a_job_body_and_rejects_other_methods(tmp_path):
    files = _write_job(tmp_path / "job")
    body = {"training_file": "file-abc", "validation_file": "file-def", "model": "o4-mini-2025-04-16", "seed": 5,
            "suffix": "adder", "method": {"type": "reinforcement", "reinforcement": {
                "grader": _grader(), "hyperparameters": {"reasoning_effort": "low"},
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}}}  # fmt: skip
    (tmp_path / "job.json").write_text(json.dumps(body))
    res = import_job(files["train"], None, "m", tmp_path / "out", valid=files["valid"], job=tmp_path / "job.json",
                     judge_base_url="http://127.0.0.1:9/v1")  # fmt: skip
    notes = {r.openai: r.rft for r in res.table}
    assert res.suite.name == "adder-v0.yaml" and "seed: 5" in notes["seed"]
    assert (
        notes["response_format"].startswith("no counterpart: ")
        and "max_new_tokens 512" in notes["reasoning_effort"]
    )
    assert load_suite(res.suite).grader["graders"]["judge"]["base_url"] == "http://127.0.0.1:9/v1"
    body["method"] = {"type": "supervised", "supervised": {}}
    (tmp_path / "job.json").write_text(json.dumps(body))
    with pytest.raises(JobError, match="not a reinforcement job"):
        import_job(files["train"], None, "m", tmp_path / "out", job=tmp_path / "job.json")


def _traj(grade: dict, tokens: int) -> Trajectory:
    return Trajectory(0, [1] * (2 + tokens), [0, 0] + [1] * tokens, 2, reward=grade["score"], status=grade["status"],
                      info={"grade": grade})  # fmt: skip


def test_grade_breakdown_scores_each_sub_grader_and_counts_unparseable_answers():
    g = load_grader({"type": "multi", "calculate_output": "a + b", "graders": {
        "a": {"type": "string_check", "name": "a", "input": "{{ sample.output_json.x }}", "reference": "1", "operation": "eq"},
        "b": {"type": "string_check", "name": "b", "input": "{{ sample.output_text }}", "reference": "7", "operation": "like"}}})  # fmt: skip
    grades = [g.grade(s).to_dict() for s in ('{"x": "1"}', "no json 7", '{"x": "2"}', "nothing")]
    assert [x["status"] for x in grades] == ["ok", "ok", "ok", "ok"]  # one sub-grade read no answer: not all
    out = grade_breakdown([_traj(x, 3) for x in grades])
    assert out["grader/a"] == pytest.approx(1 / 4)  # an answer it could not read scores 0, as in the reward
    assert out["grader/b"] == pytest.approx(1 / 4)
    assert out["parse_error_rate"] == pytest.approx(2 / 4)  # output_json of text that is not JSON


# -- the whole path: import, rft run on the tiny model with a served judge, the report -------------------


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    """A tiny model taught to reply {"result": 0.5} to the judge prompt whatever the answer, served."""
    import torch

    from rft.app.serve import serve
    from rft.graders.judge import judge_messages
    from rft.tiny import fit_replies, make_model, make_tokenizer, save_tiny

    torch.set_num_threads(1)
    spec = load_grader(_grader()).graders["judge"]
    rng = random.Random(1)
    reply = '{"result": 0.5}'
    pairs = [(judge_messages(spec, "".join(rng.choices(string.printable, k=rng.randint(0, 12))),
                             {"answer": str(rng.randint(2, 18))}), reply) for _ in range(24)]  # fmt: skip
    chats = [m + [{"role": "assistant", "content": r}] for m, r in pairs]
    tok = make_tokenizer(make_tokenizer().apply_chat_template(chats, tokenize=False))
    model = make_model(tok, seed=0)
    losses = fit_replies(model, tok, pairs, steps=120, lr=3e-3)
    assert losses[-1] < 0.05 < losses[0]
    path = save_tiny(tmp_path_factory.mktemp("judge"), model, tok)
    with serve(path, name="tiny-judge") as server:
        yield server


def _rft(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RFT_DEBUG", "RFT_JUDGE_BASE_URL")}
    return subprocess.run([sys.executable, "-m", "rft", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=500)  # fmt: skip


def test_a_row_not_ending_with_a_user_turn_is_one_line_naming_it(tmp_path):
    files = _write_job(tmp_path)
    rows = files["train"].read_text().splitlines()
    bad = json.loads(rows[1])
    bad["messages"].append({"role": "assistant", "content": "4"})
    files["train"].write_text("\n".join([rows[0], json.dumps(bad), *rows[2:]]) + "\n")
    res = _rft(["import", "openai-job", "--train", "train.jsonl", "--grader", "grader.json", "--model", "m",
                "--out", "out"], tmp_path)  # fmt: skip
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(lines) == 1, res.stderr
    assert "train.jsonl:2" in lines[0] and "must end with a user turn" in lines[0], lines[0]


@pytest.mark.slow
def test_import_then_run_on_the_tiny_model_reports_what_openai_showed(tmp_path, judge):
    hp = {"n_epochs": 1, "batch_size": 2, "compute_multiplier": 0.25, "eval_interval": 1, "eval_samples": 2,
          "learning_rate_multiplier": 10, "seed": 1}  # fmt: skip
    _write_job(tmp_path, hp=hp)
    res = _rft(["import", "openai-job", "--train", "train.jsonl", "--valid", "valid.jsonl", "--grader", "grader.json",
                "--hyperparameters", "hp.json", "--model", "tiny", "--out", "job", "--max-new-tokens", "8",
                "--judge-base-url", judge.url], tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    for name in ("batch_size", "learning_rate_multiplier", "reasoning_effort", "no counterpart"):
        assert name in res.stdout, res.stdout
    run = _rft(["run", "job/pipeline.yaml"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    report = (tmp_path / "job" / "run" / "report.md").read_text()
    for column in ("reward (train / valid)", "grader exact (train / valid)", "grader judge (train / valid)",
                   "unparseable (train / valid)", "answer tokens (train / valid)"):  # fmt: skip
        assert column in report, report
    assert "![graders.png](graders.png)" in report and (tmp_path / "job" / "run" / "graders.png").is_file()
    training = json.loads((tmp_path / "job" / "run" / "results.json").read_text())["training"]
    rows = training[0]["dashboard"]
    train = [r for r in rows if "reward/mean" in r]
    valid = [r for r in rows if "eval/reward" in r]
    assert [r["step"] for r in train] == [1, 2, 3] and [r["step"] for r in valid] == [0, 1, 2, 3]
    for r in train:  # the served judge answered every sample: its sub-score is its reply, nothing failed
        assert r["reward/grader/judge"] == pytest.approx(0.5) and r["grader/error_rate"] == 0, r
        assert 0 <= r["reward/grader/exact"] <= 1 and r["grader/parse_error_rate"] == 0
        assert 0 < r["rollout/completion_len"] <= 8
    for r in valid:
        assert r["eval/grader/judge"] == pytest.approx(0.5) and 0 < r["eval/completion_len"] <= 8, r
    last = train[-1]
    assert f"| {last['step']} | {last['reward/mean']:.3f} / {valid[-1]['eval/reward']:.3f} |" in report
