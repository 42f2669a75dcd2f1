"""Warm-start stages: SFT rows from worked solutions, graded samples, DPO pairs from grades, the chat
template check, SFT and DPO over TRL on a tiny model, and the hand-over of stages by path (CLI)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rft.config import ConfigError, load_config
from rft.envs import SuiteError, builtin_suites, data_dir, load_suite
from rft.eval.samples import sample_suite
from rft.sft_dpo import DPOConfig, SFTConfig, check_template, dpo_pairs, sft_rows, solution_text
from rft.sft_dpo.data import read_samples
from rft.tiny import make_model, make_tokenizer

RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
torch.set_num_threads(1)

# 1-digit sums of three numbers with worked solutions ("3 + 5 = 8\n8 + 7 = 15\nThe answer is \boxed{15}.")
ADD3 = """\
id: add3-v0
source: {type: generator, name: arithmetic, params: {digits: 1, operands: 3, ops: "+"}, size: 2000, seed: 0}
fields: {id: id, reference: answer}
prompt: {user: "{{ item.question }}"}
grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}", form: number}
solution: "{{ item.solution }}"
split: 0.1
"""


def write_suite(folder: Path, text: str = ADD3, name: str = "add3-v0") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def tiny_model(folder: Path, suite_path: Path) -> Path:
    """A fresh tiny Llama with a tokenizer trained on the suite's prompts and solutions, saved to `folder`."""
    suite = load_suite(suite_path)
    items = suite.items("train")[:500]
    corpus = [m["content"] for it in items for m in suite.messages(it)] + [
        suite.solution_text(it) for it in items
    ]
    tok = make_tokenizer(corpus, vocab_size=128)
    make_model(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# ---- SFT rows ------------------------------------------------------------------------------------------

GENERATED = [p.stem for p in builtin_suites() if load_suite(p).source.type == "generator"]


@pytest.mark.parametrize("suite_id", [*GENERATED, "gsm8k-v0", "math-v0", "humaneval-v0", "mbpp-v0"])
def test_sft_rows_from_worked_solutions_pass_the_grader(suite_id, tmp_path, monkeypatch):
    if suite_id == "mbpp-v0":  # the rows of tests/data as $RFT_DATA/mbpp.jsonl
        shutil.copy(Path(__file__).parent / "data" / "mbpp_sample.jsonl", tmp_path / "mbpp.jsonl")
        monkeypatch.setenv("RFT_DATA", str(tmp_path))
    elif suite_id in ("gsm8k-v0", "math-v0", "humaneval-v0") and data_dir() is None:
        pytest.skip("needs the data folder (RFT_DATA)")
    suite = load_suite(next(p for p in builtin_suites() if p.stem == suite_id))
    rows = sft_rows(suite, limit=3)
    items = suite.items("train")[:3]
    assert len(rows) == 3
    grader = suite.load_grader()
    for row, item in zip(rows, items, strict=True):
        *prompt, reply = row["messages"]
        assert prompt == suite.messages(item) and reply["role"] == "assistant" and reply["content"].strip()
        grade = grader.grade({"output_text": reply["content"]}, item)
        assert grade.passed, (suite_id, reply["content"], grade)


def test_gsm8k_rationales_end_in_a_boxed_answer():
    suite = load_suite(
        {
            "id": "g-v0",
            "source": {"type": "generator", "name": "arithmetic"},
            "prompt": {"user": "{{ item.question }}"},
            "grader": {
                "type": "math",
                "input": "{{ sample.output_text }}",
                "reference": "{{ item.reference }}",
            },
            "solution": "{{ item.rationale }}",
        }
    )
    item = {
        "id": "x",
        "rationale": "She sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72.\n#### 72",
    }
    assert (
        solution_text(suite, item)
        == "She sold 48/2 = 24 clips.\nIn all 48+24 = 72.\nThe answer is \\boxed{72}."
    )


def test_a_suite_without_solutions_points_to_rejection_sampling(tmp_path):
    path = write_suite(tmp_path, ADD3.replace('solution: "{{ item.solution }}"\n', ""))
    with pytest.raises(ValueError, match="rft sample"):
        sft_rows(str(path))
    with pytest.raises(SuiteError, match="template path"):
        load_suite(write_suite(tmp_path, ADD3.replace("item.solution", "items.solution"), "bad-v0"))
    missing = load_suite(write_suite(tmp_path, ADD3.replace("item.solution", "item.worked"), "miss-v0"))
    with pytest.raises(SuiteError, match="has no 'worked'"):
        sft_rows(missing)
    empty = write_suite(tmp_path, ADD3.replace("split: 0.1", "split: 0.0"), "nosplit-v0")
    with pytest.raises(ValueError, match="no heldout problems"):
        sft_rows(str(empty), "heldout")


# ---- DPO pairs -----------------------------------------------------------------------------------------


def sample(pid, text, reward, passed, status="ok", overlong=False):
    return {
        "id": pid,
        "messages": [{"role": "user", "content": f"q{pid}"}],
        "completion": [{"role": "assistant", "content": text}],
        "reward": reward,
        "passed": passed,
        "status": status,
        "overlong": overlong,
    }


ROWS = [
    sample("a", "right", 1.0, True),
    sample("a", "right", 1.0, True),  # the same answer twice: one candidate
    sample("a", "wrong", 0.0, False),
    sample("a", "slow", 0.0, False, status="timeout"),  # grader failed: never used
    sample("a", "half", 0.5, False),
    sample("b", "close", 0.5, True),
    sample("b", "tie", 0.5, False),  # equal rewards: a tie, dropped
    sample("c", "rambling right", 1.0, True, overlong=True),  # passed but cut at the length limit
    sample("c", "bad", 0.0, False),
    sample("d", "all wrong", 0.0, False),
]


def test_dpo_pairs_prefer_passing_over_failing():
    pairs = dpo_pairs(ROWS)
    got = sorted((p["id"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs)
    assert got == [("a", "right", "half"), ("a", "right", "wrong")]
    assert all(p["prompt"] == [{"role": "user", "content": "qa"}] for p in pairs)
    assert sorted(p["margin"] for p in pairs) == [0.5, 1.0]
    assert [p["rejected"][0]["content"] for p in dpo_pairs(ROWS, min_margin=0.75)] == ["wrong"]
    assert len(dpo_pairs(ROWS, max_pairs_per_prompt=1)) == 1


def test_dpo_pairs_are_reproducible_from_a_seed(tmp_path):
    rows = [sample("p", f"good {i}", 1.0, True) for i in range(4)] + [
        sample("p", f"bad {i}", 0.0, False) for i in range(4)
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    a, b = dpo_pairs(path, seed=1), dpo_pairs(path, seed=1)
    assert a == b and len(a) == 4
    assert any(dpo_pairs(path, seed=s) != a for s in range(2, 6))
    for p in a:
        assert p["chosen"][0]["content"].startswith("good") and p["rejected"][0]["content"].startswith("bad")


def test_dpo_pairs_and_sample_sft_rows_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="no sample .* passes"):
        dpo_pairs([sample("a", "x", 0.0, False), sample("a", "y", 0.0, False)])
    with pytest.raises(ValueError, match="every graded sample .* passes"):
        dpo_pairs([sample("a", "x", 1.0, True), sample("b", "y", 1.0, True)])
    with pytest.raises(ValueError, match="no prompt .* has a passing and a failing"):
        dpo_pairs([sample("a", "x", 1.0, True), sample("b", "y", 0.0, False)])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="has no samples"):
        dpo_pairs(empty)
    with pytest.raises(ValueError, match="does not exist"):
        dpo_pairs(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "messages": []}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1: not an `rft sample` row: missing completion"):
        read_samples(bad)
    # rejection sampling: SFT rows are the passing samples that ended by themselves
    ok = tmp_path / "ok.jsonl"
    ok.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    rows = sft_rows("unused", source="samples", samples=ok)
    assert [r["messages"][-1]["content"] for r in rows] == ["right", "right", "close"]
    none = tmp_path / "none.jsonl"
    none.write_text(json.dumps(sample("a", "x", 0.0, False)) + "\n")
    with pytest.raises(ValueError, match="no sample .* passes its grader"):
        sft_rows("unused", source="samples", samples=none)


# ---- chat template and configs -------------------------------------------------------------------------


def test_template_check_warns_on_a_template_that_rewrites_turns(caplog):
    tok = make_tokenizer(["What is 1 + 1?"], vocab_size=110)
    assert check_template(tok)
    tok.chat_template = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with caplog.at_level(logging.WARNING, logger="rft.sft_dpo"):
        assert not check_template(tok)
    assert "chat template check failed" in caplog.text
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        check_template(tok)


def test_configs_say_what_to_fix():
    with pytest.raises(ConfigError, match="missing required key.*samples"):
        load_config(DPOConfig, None, ["model=m", "suite=arithmetic-v0"])
    with pytest.raises(ConfigError, match="data=samples needs samples"):
        load_config(SFTConfig, None, ["model=m", "suite=arithmetic-v0", "data=samples"])
    with pytest.raises(ConfigError, match="set lora.r"):
        load_config(SFTConfig, None, ["model=m", "suite=arithmetic-v0", "qlora=true"])
    with pytest.raises(ConfigError, match="needs evaluations during training: set eval.every"):
        load_config(SFTConfig, None, ["model=m", "suite=arithmetic-v0", "stop_at=0.3"])
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="qlora needs the bitsandbytes package and a CUDA GPU"):
            load_config(SFTConfig, None, ["model=m", "suite=arithmetic-v0", "qlora=true", "lora.r=8"])


# ---- graded samples ------------------------------------------------------------------------------------


def test_samples_are_graded_and_reproducible_from_a_seed(tmp_path):
    suite = write_suite(tmp_path)
    model = tiny_model(tmp_path / "m", suite)
    kw = {"n": 3, "limit": 4, "max_new_tokens": 8, "grader_workers": 0}
    res = sample_suite(model, str(suite), tmp_path / "a.jsonl", seed=5, **kw)
    sample_suite(model, str(suite), tmp_path / "b.jsonl", seed=5, **kw)
    sample_suite(model, str(suite), tmp_path / "c.jsonl", seed=6, **kw)
    a = (tmp_path / "a.jsonl").read_text()
    assert a == (tmp_path / "b.jsonl").read_text() != (tmp_path / "c.jsonl").read_text()
    rows = read_samples(tmp_path / "a.jsonl")
    assert res["rows"] == len(rows) == 12 and res["problems"] == 4
    items = load_suite(suite).items("train")[:4]
    assert [r["id"] for r in rows] == [it["id"] for it in items for _ in range(3)]
    assert [r["sample"] for r in rows[:3]] == [0, 1, 2]
    for r, item in zip(rows, [it for it in items for _ in range(3)], strict=True):
        assert r["completion"][0]["role"] == "assistant" and r["grade"]["status"] in ("ok", "no_answer")
        assert r["passed"] == r["grade"]["passed"] and r["reference"] == item["reference"]
        assert r["messages"] == load_suite(suite).messages(item)
    with pytest.raises(ValueError, match="no heldout problems"):
        sample_suite(model, str(write_suite(tmp_path, ADD3.replace("split: 0.1", "split: 0.0"), "z-v0")),
                     tmp_path / "d.jsonl", split="heldout", **kw)  # fmt: skip


# ---- training (slow) -----------------------------------------------------------------------------------


def sft_config(model: Path, suite: Path, out: Path, *extra: str) -> SFTConfig:
    return load_config(
        SFTConfig,
        None,
        [
            f"model={model}",
            f"suite={suite}",
            f"out={out}",
            "eval.max_new_tokens=40",
            "grader_workers=0",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """SFT from scratch on worked solutions: (suite, model folder, the run's final metrics)."""
    from rft.sft_dpo import train_sft

    root = tmp_path_factory.mktemp("sft")
    suite = write_suite(root)
    base = tiny_model(root / "base", suite)
    cfg = sft_config(base, suite, root / "run", "steps=150", "batch_size=32", "lr=2e-3", "eval.n=100")
    final = train_sft(cfg)
    return suite, root / "run", final


@pytest.mark.slow
def test_sft_raises_heldout_accuracy(warm):
    """150 TRL SFT steps (batch 32) on worked solutions take a fresh tiny model from 0 to a clear held-out
    accuracy (measured: 0 -> 0.27, 0.33, 0.33 for three model seeds; 20-35 s on this 2-core machine)."""
    suite, run, final = warm
    assert final["eval/accuracy_start"] <= 0.02
    assert final["eval/accuracy"] >= 0.12, final
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss/sft"] for m in metrics if "loss/sft" in m]
    assert len(losses) >= 100 and losses[-1] < losses[0] / 3
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run / "model")  # the chat template travels with the model
    assert tok.chat_template == AutoTokenizer.from_pretrained(run.parent / "base").chat_template
    rows = [json.loads(line) for line in (run / "sft_rows.jsonl").read_text().splitlines()]
    assert len(rows) == len(load_suite(suite).items("train"))


@pytest.mark.slow
def test_sft_stops_once_heldout_accuracy_reaches_stop_at(tmp_path):
    """The warm-start budget of the demo: stop when the evaluation every 10 steps reaches stop_at."""
    from rft.sft_dpo import train_sft

    suite = write_suite(tmp_path)
    base = tiny_model(tmp_path / "base", suite)
    cfg = sft_config(base, suite, tmp_path / "run", "steps=150", "batch_size=32", "lr=2e-3", "eval.n=100",
                     "eval.every=10", "stop_at=0.1")  # fmt: skip
    shown: list[dict] = []  # what a progress bar gets: the command line's bar says when stop_at ended training
    train_sft(cfg, progress=lambda step, m: shown.append(dict(m)))
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [(m["step"], m["eval/accuracy"]) for m in metrics if "eval/accuracy" in m and m["step"] > 0]
    [stop] = [m["stopped_at_step"] for m in metrics if "stopped_at_step" in m]
    assert [m["stopped_at_step"] for m in shown if "stopped_at_step" in m] == [stop]
    assert stop < 150 and stop % 10 == 0
    during = [a for step, a in evals if step < stop]
    assert all(a < 0.1 for a in during) and dict(evals)[stop] >= 0.1
    assert max(m["step"] for m in metrics if "loss/sft" in m) <= stop  # no step after the stop
    assert (tmp_path / "run" / "model" / "config.json").is_file()


@pytest.mark.slow
def test_dpo_on_grader_built_pairs_prefers_what_passes(warm, tmp_path):
    """Graded samples of the SFT model -> pairs -> 30 DPO steps raise the held-out preference margin (log p
    chosen - log p rejected on pairs from held-out samples) and do not lower greedy accuracy much (measured
    over three model seeds: margin 2.0 -> 2.7, 2.1 -> 3.9, 2.7 -> 3.6; accuracy 0.27 -> 0.37, 0.33 -> 0.30,
    0.33 -> 0.39)."""
    from transformers import AutoModelForCausalLM

    from rft.sft_dpo import train_dpo

    suite, run, _ = warm
    model = run / "model"
    kw = {"n": 8, "max_new_tokens": 40, "grader_workers": 0}
    res = sample_suite(model, str(suite), tmp_path / "train.jsonl", limit=96, seed=0, **kw)
    sample_suite(model, str(suite), tmp_path / "heldout.jsonl", split="heldout", limit=48, seed=1, **kw)
    assert 0 < res["pass_rate"] < 1 and res["mixed_problems"] >= 10
    cfg = load_config(
        DPOConfig,
        None,
        [f"model={model}", f"suite={suite}", f"out={tmp_path / 'dpo'}", f"samples={tmp_path / 'train.jsonl'}",
         f"eval_samples={tmp_path / 'heldout.jsonl'}", "steps=30", "batch_size=16", "lr=3e-5", "beta=0.5",
         "eval.n=100", "eval.max_new_tokens=40", "grader_workers=0"],
    )  # fmt: skip
    final = train_dpo(cfg)
    assert final["eval/pref_margin"] > final["eval/pref_margin_start"] + 0.3, final
    assert final["eval/accuracy"] >= final["eval/accuracy_start"] - 0.1, final
    pairs = [json.loads(line) for line in (tmp_path / "dpo" / "dpo_pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["margin"] > 0 for p in pairs)
    before = AutoModelForCausalLM.from_pretrained(model).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "dpo" / "model").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_lora_sft_hands_over_a_merged_model(tmp_path):
    from transformers import AutoModelForCausalLM

    from rft.sft_dpo import train_sft

    suite = write_suite(tmp_path)
    base = tiny_model(tmp_path / "base", suite)
    cfg = sft_config(base, suite, tmp_path / "run", "steps=3", "batch_size=4", "lr=1e-2", "lora.r=4", "eval.n=0",
                     "limit=32")  # fmt: skip
    train_sft(cfg)
    out = tmp_path / "run" / "model"
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert not (out / "adapter_config.json").exists()  # merged: a plain model folder
    before = AutoModelForCausalLM.from_pretrained(base).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_cli_stages_hand_over_by_path(tmp_path):
    """`rft train sft` -> `rft sample` from its out/model -> `rft train grpo` from the same out/model."""
    suite = write_suite(tmp_path)
    base = tiny_model(tmp_path / "base", suite)
    sft_out = tmp_path / "sft"

    def rft(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([RFT, *args], capture_output=True, text=True, timeout=300)

    res = rft("train", "sft", *(x for kv in (f"model={base}", f"suite={suite}", f"out={sft_out}", "steps=3",
              "batch_size=8", "limit=64", "eval.n=4", "eval.max_new_tokens=8", "grader_workers=0")
              for x in ("--set", kv)))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"model for the next stage: {sft_out / 'model'}" in res.stdout
    metrics = [json.loads(line) for line in (sft_out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss/sft" in m] == [1, 2, 3]
    res = rft("sample", "--model", str(sft_out / "model"), "--suite", str(suite), "--n", "2", "--limit", "3",
              "--max-new-tokens", "6", "--out", str(tmp_path / "s.jsonl"), "--workers", "0")  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(read_samples(tmp_path / "s.jsonl")) == 6
    res = rft("train", "grpo", *(x for kv in (f"model={sft_out / 'model'}", f"suite={suite}", f"out={tmp_path / 'grpo'}",
              "steps=1", "prompts_per_step=2", "group_size=2", "gen.max_new_tokens=6", "eval.n=2", "grader_workers=0")
              for x in ("--set", kv)))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "grpo" / "checkpoints" / "latest").is_file()
    # rft draws its own progress bars: none of transformers' (loading and writing weights) between them
    assert "Loading weights" not in res.stderr + res.stdout and "Writing model shards" not in res.stderr
    res = rft("train", "dpo", "--set", f"model={sft_out / 'model'}", "--set", f"suite={suite}")
    assert res.returncode == 2 and "samples" in res.stderr
