"""Several suites in one run (issue 17, item 3): `suite: {mix: [...]}` read and checked, the seeded
interleaving (proportions, determinism, epochs), per-suite metrics of GRPO and PPO runs, a GRPO run on a mix
SIGKILLed and resumed with identical metrics, SFT and DPO on a mix, and `rft sample` / `rft eval` on one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from rft.config import ConfigError, load_config
from rft.envs import SuiteError, load_suite
from rft.envs.mix import Interleave, MixPart, MixSpec, load_mix, mix_counts, prompt_indices, read_mix
from rft.eval.samples import sample_suite
from rft.rl.grpo import GRPOConfig
from rft.rl.grpo import train as grpo_train
from rft.rl.ppo import PPOConfig
from rft.rl.ppo import train as ppo_train
from rft.sft_dpo import DPOConfig, SFTConfig
from rft.sft_dpo import dpo as dpo_stage
from rft.sft_dpo import sft as sft_stage
from rft.sft_dpo.data import mixed_sft_rows, read_samples
from rft.tiny import make_model, make_tokenizer

RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
torch.set_num_threads(1)

# two suites whose grader rewards a letter in the answer: a random tiny model's rewards vary, so every
# step updates the weights and sampled files hold passing and failing samples (DPO pairs)
SUITE = """\
id: {id}
source: {{type: generator, name: arithmetic, params: {{digits: {digits}, operands: {operands}, ops: "+"}}, size: {size}}}
fields: {{id: id, reference: answer}}
prompt: {{user: "{{{{ item.question }}}}"}}
grader: {{type: string_check, operation: like, input: "{{{{ sample.output_text }}}}", reference: "{letter}"}}
solution: "{{{{ item.solution }}}}"
split: 0.25
"""


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Two suite files (mixa-v0: 64 problems, mixb-v0: 40) and a random tiny model."""
    root = tmp_path_factory.mktemp("mix")
    a, b = root / "mixa-v0.yaml", root / "mixb-v0.yaml"
    a.write_text(SUITE.format(id="mixa-v0", digits=2, operands=2, size=64, letter="a"))
    b.write_text(SUITE.format(id="mixb-v0", digits=1, operands=3, size=40, letter="e"))
    tok = make_tokenizer(["What is 12 + 5 + 7? abc The answer is \\boxed{24}."] * 20)
    make_model(tok).save_pretrained(root / "m")
    tok.save_pretrained(root / "m")
    return {"root": root, "a": a, "b": b, "model": root / "m"}


def mix_arg(w: dict[str, Path], wa: float = 3, wb: float = 1) -> str:
    return f"suite={{mix: [{{suite: {w['a']}, weight: {wa}}}, {{suite: {w['b']}, weight: {wb}}}]}}"


# ---- reading and checking a mix ------------------------------------------------------------------------


def test_every_way_of_naming_a_mix_reads_the_same(tmp_path):
    want = MixSpec((MixPart("rft/arithmetic-v0", 2.0), MixPart("gsm8k-v0", 1.0)))
    assert read_mix("rft/arithmetic-v0:2, gsm8k-v0") == want
    assert read_mix({"mix": [{"suite": "rft/arithmetic-v0", "weight": 2}, "gsm8k-v0"]}) == want
    f = tmp_path / "mix.yaml"
    f.write_text("mix:\n  - {suite: rft/arithmetic-v0, weight: 2}\n  - {suite: gsm8k-v0, weight: 1}\n")
    assert read_mix(str(f)) == want
    assert read_mix("rft/arithmetic-v0") == MixSpec((MixPart("rft/arithmetic-v0", 1.0),))
    assert read_mix("tasks/x-v0.yaml").suites == ["tasks/x-v0.yaml"]  # a path is not a weight
    cfg = load_config(GRPOConfig, None, ["model=m", "suite={mix: [{suite: a-v0, weight: 2}, {suite: b-v0}]}"])
    assert cfg.suite == MixSpec((MixPart("a-v0", 2.0), MixPart("b-v0", 1.0)))
    assert load_config(GRPOConfig, None, ["model=m", "suite=a-v0"]).suite == "a-v0"


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ("arithmetic-v0:0,gsm8k-v0", "weights must be > 0"),
        ("arithmetic-v0:-1,gsm8k-v0", "weights must be > 0"),
        ("arithmetic-v0:x,gsm8k-v0", "is not a number"),
        ("rft/arithmetic-v0,arithmetic-v0:2", "names arithmetic-v0 twice"),
        ("arithmetic-v0,,gsm8k-v0", "empty entry"),
        ({"mix": []}, "empty"),
        ({"mix": [{"suite": "a-v0", "wieght": 2}]}, r"mix\[0\] must be \{suite"),
        ({"mixture": []}, "unknown keys mixture"),
    ],
)
def test_bad_mixes_say_how_to_fix_them(suite, message):
    with pytest.raises(ValueError, match=message):
        read_mix(suite)


def test_a_mix_of_unknown_suites_or_benchmarks_is_refused(world, tmp_path):
    with pytest.raises(SuiteError, match="unknown task 'nosuch-v0'"):
        load_mix(read_mix("arithmetic-v0,nosuch-v0"))
    with pytest.raises(
        SuiteError, match=r"aime24-v0 is a held-out benchmark \(split: 1\).*rft eval --suites"
    ):
        load_mix(read_mix("arithmetic-v0:2,aime24-v0"))
    assert [s.id for s in load_mix(read_mix("arithmetic-v0,aime24-v0"), train=False)] == [
        "arithmetic-v0",
        "aime24-v0",
    ]
    copy = tmp_path / "copy-of-a.yaml"  # another file, the same suite id
    copy.write_text(world["a"].read_text())
    with pytest.raises(SuiteError, match="mixa-v0 more than once"):
        load_mix(read_mix(f"{world['a']},{copy}:2"))
    with pytest.raises(ConfigError, match="weights must be > 0"):
        load_config(GRPOConfig, None, ["model=m", "suite={mix: [{suite: a-v0, weight: 0}]}"])


# ---- the interleaving ----------------------------------------------------------------------------------


def test_interleaving_follows_the_weights_step_by_step():
    shares = np.array([3, 2, 1]) / 6
    mix = Interleave([64, 40, 10], [3, 2, 1], seed=7)
    totals = np.zeros(3)
    for step in range(300):
        prompts = mix.step(step, 8)
        counts = np.bincount([s for s, _ in prompts], minlength=3)
        # systematic sampling: each suite gets the floor or the ceiling of its share of the step
        assert sum(counts) == 8 and all(np.floor(shares * 8) <= counts) and all(counts <= np.ceil(shares * 8))
        assert all(0 <= i < (64, 40, 10)[s] for s, i in prompts)
        totals += counts
    assert np.abs(totals / totals.sum() - shares).max() < 0.01
    # each suite's problems come in epochs: after any number of steps, no problem came twice more than another
    seen = Counter(p for step in range(37) for p in mix.step(step, 8) if p[0] == 2)
    assert max(seen.values()) - min(seen[(2, i)] for i in range(10)) <= 1


def test_interleaving_depends_on_seed_and_step_alone():
    walked = Interleave([64, 40], [2, 1], seed=3)
    steps = [walked.step(s, 6) for s in range(50)]
    fresh = Interleave([64, 40], [2, 1], seed=3)
    assert fresh.step(49, 6) == steps[49] and fresh.step(12, 6) == steps[12]  # out of order, no walk needed
    assert Interleave([64, 40], [2, 1], seed=3).step(49, 6, draw=2) == walked.step(49, 6, draw=2)
    assert [Interleave([64, 40], [2, 1], seed=4).step(s, 6) for s in range(50)] != steps
    # a mix of one suite is the one-suite run's order, refills included
    one = Interleave([50], [1.0], seed=5)
    for draw in (0, 1):
        assert [i for _, i in one.step(9, 8, draw)] == prompt_indices(50, 8, 9, 5, draw)


def test_mix_counts_keep_the_weights_within_the_rows_there_are():
    assert mix_counts([100, 40], [2, 1]) == [80, 40]
    assert mix_counts([10, 100], [2, 1]) == [10, 5]
    assert mix_counts([100, 40], [2, 1], total=31) == [21, 10]
    assert mix_counts([3, 100], [1, 1], total=50) == [3, 3]


# ---- RL on a mix ---------------------------------------------------------------------------------------


def grpo_args(w: dict[str, Path], out: Path) -> list[str]:
    return [f"model={w['model']}", mix_arg(w), f"out={out}", "steps=6", "prompts_per_step=4", "group_size=2",
            "gen.max_new_tokens=8", "eval.n=3", "eval.every=3", "lr=1e-2", "grader_workers=0"]  # fmt: skip


def test_grpo_on_a_mix_logs_per_suite_metrics_and_resumes_exactly_after_sigkill(world, tmp_path):
    a = tmp_path / "a"
    grpo_train(load_config(GRPOConfig, None, grpo_args(world, a)))
    metrics_a = read_jsonl(a / "metrics.jsonl")
    rollouts = read_jsonl(a / "rollouts.jsonl")
    mix = Interleave([len(load_suite(world[k]).items("train")) for k in "ab"], [3, 1], seed=0)
    train_steps = [m for m in metrics_a if "reward/mean" in m]
    assert [m["step"] for m in train_steps] == [1, 2, 3, 4, 5, 6]
    for m in train_steps:  # each suite's samples as the interleaving drew them, group_size per prompt
        drawn = Counter(s for s, _ in mix.step(m["step"] - 1, 4))
        assert m["reward/mixa-v0/count"] == 2 * drawn[0] and m["reward/mixb-v0/count"] == 2 * drawn[1]
        mine = [r for r in rollouts if r["step"] == m["step"]]
        for sid in ("mixa-v0", "mixb-v0"):
            rewards = [r["reward"] for r in mine if r["suite"] == sid]
            assert len(rewards) == m[f"reward/{sid}/count"]
            if rewards:
                assert m[f"reward/{sid}/mean"] == pytest.approx(sum(rewards) / len(rewards))
    # each suite's grader scored its own samples: mixa-v0 wants an "a", mixb-v0 an "e"
    for r in rollouts:
        assert r["reward"] == float(
            ("a" if r["suite"] == "mixa-v0" else "e") in r["completion"][0]["content"]
        )
    evals = [m for m in metrics_a if "eval/accuracy" in m]
    assert [m["step"] for m in evals] == [0, 3, 6]
    for m in evals:
        assert {"eval/mixa-v0/accuracy", "eval/mixb-v0/accuracy", "eval/mixa-v0/reward"} <= m.keys()
        assert m["eval/accuracy"] == pytest.approx(
            (m["eval/mixa-v0/accuracy"] + m["eval/mixb-v0/accuracy"]) / 2
        )

    # the same run from the command line, SIGKILLed after its step-3 checkpoint, then resumed
    b = tmp_path / "b"
    cli = [RFT, "train", "grpo", *(x for kv in [*grpo_args(world, b), "save_every=3"] for x in ("--set", kv))]
    proc = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while not (b / "checkpoints" / "step-000003").is_dir():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its step-3 checkpoint"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (b / "checkpoints" / "step-000006").exists(), "killed too late: the run had finished"
    resumed = subprocess.run([*cli, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics_b = read_jsonl(b / "metrics.jsonl")
    assert [m["step"] for m in metrics_b] == [m["step"] for m in metrics_a]
    for x, y in zip(metrics_a, metrics_b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            if not k.startswith("time/"):
                assert x[k] == pytest.approx(y[k], rel=1e-6, abs=1e-7), (x["step"], k)
    assert read_jsonl(b / "rollouts.jsonl") == rollouts


def test_ppo_on_a_mix_logs_per_suite_metrics(world, tmp_path):
    cfg = load_config(PPOConfig, None, [f"model={world['model']}", mix_arg(world, 1, 1), f"out={tmp_path / 'p'}",
                                        "steps=2", "prompts_per_step=4", "samples_per_prompt=2", "eval.n=2",
                                        "gen.max_new_tokens=8", "grader_workers=0"])  # fmt: skip
    ppo_train(cfg)
    metrics = read_jsonl(tmp_path / "p" / "metrics.jsonl")
    steps = [m for m in metrics if "reward/mean" in m]
    assert len(steps) == 2
    for m in steps:
        assert m["reward/mixa-v0/count"] + m["reward/mixb-v0/count"] == 8
    assert "eval/mixb-v0/accuracy" in metrics[-1]


# ---- SFT, DPO, rft sample and rft eval on a mix --------------------------------------------------------


def test_sft_on_a_mix_takes_rows_by_weight_and_evaluates_each_suite(world, tmp_path):
    rows = mixed_sft_rows(read_mix(f"{world['a']}:1,{world['b']}:2"), limit=40)
    # mixa-v0's questions have two operands, mixb-v0's three; weights 1:2 of (at most 40) train problems each
    a, b = (min(40, len(load_suite(world[k]).items("train"))) for k in "ab")
    scale = min(a / 1, b / 2)  # as many rows as the scarcer suite, for its weight, allows
    want = {1: int(scale), 2: int(2 * scale)}
    assert want[2] >= 30 and Counter(r["messages"][0]["content"].count("+") for r in rows) == want
    assert all(
        r["messages"][-1]["role"] == "assistant" and "boxed" in r["messages"][-1]["content"] for r in rows
    )
    out = tmp_path / "sft"
    cfg = load_config(SFTConfig, None, [f"model={world['model']}", mix_arg(world, 1, 2), f"out={out}",
                                        "steps=2", "batch_size=4", "eval.n=2", "eval.max_new_tokens=6",
                                        "grader_workers=0", "limit=40"])  # fmt: skip
    final = sft_stage.train(cfg)
    assert {"eval/mixa-v0/accuracy", "eval/mixb-v0/accuracy", "eval/accuracy"} <= final.keys()
    assert len(read_jsonl(out / "sft_rows.jsonl")) == len(rows)


def test_sample_and_dpo_on_a_mix(world, tmp_path):
    spec = f"{world['a']}:2,{world['b']}:1"
    res = sample_suite(world["model"], spec, tmp_path / "s.jsonl", n=4, limit=9, max_new_tokens=8,
                       grader_workers=0, seed=1)  # fmt: skip
    assert res["per_suite"] == {"mixa-v0": 6, "mixb-v0": 3} and res["problems"] == 9
    rows = read_samples(tmp_path / "s.jsonl")
    assert Counter(r["suite"] for r in rows) == {"mixa-v0": 24, "mixb-v0": 12}
    for r in rows:  # graded by its own suite's grader
        assert r["reward"] == float(
            ("a" if r["suite"] == "mixa-v0" else "e") in r["completion"][0]["content"]
        )
    out = tmp_path / "dpo"
    cfg = load_config(DPOConfig, None, [f"model={world['model']}", mix_arg(world, 1, 1), f"out={out}",
                                        f"samples={tmp_path / 's.jsonl'}", "steps=1", "batch_size=2",
                                        "eval.n=2", "eval.max_new_tokens=6", "grader_workers=0"])  # fmt: skip
    final = dpo_stage.train(cfg)
    pairs = read_jsonl(out / "dpo_pairs.jsonl")
    per_suite = Counter(p["suite"] for p in pairs)
    assert per_suite["mixa-v0"] == per_suite["mixb-v0"] > 0  # weights 1:1
    assert "eval/mixb-v0/accuracy" in final


def test_rft_sample_and_eval_take_a_mix_file(world, tmp_path):
    mix = tmp_path / "mix.yaml"
    mix.write_text(f"mix:\n  - {{suite: {world['a']}, weight: 1}}\n  - {{suite: {world['b']}, weight: 1}}\n")
    res = subprocess.run([RFT, "sample", "--model", str(world["model"]), "--suite", str(mix), "--n", "2",
                          "--limit", "4", "--max-new-tokens", "6", "--out", str(tmp_path / "s.jsonl"),
                          "--workers", "0"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "problems per suite: mixa-v0 2, mixb-v0 2" in " ".join(res.stdout.split())
    assert Counter(r["suite"] for r in read_samples(tmp_path / "s.jsonl")) == {"mixa-v0": 4, "mixb-v0": 4}
    res = subprocess.run([RFT, "eval", "--model", str(world["model"]), "--suite", str(mix), "--limit", "2",
                          "--max-new-tokens", "6", "--out", str(tmp_path / "ev"), "--workers", "0"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert sorted(doc["suites"]) == ["mixa-v0", "mixb-v0"]  # one table across the mix's suites
    assert "mixa-v0" in res.stdout and "mixb-v0" in res.stdout


def test_a_pipeline_trains_its_stages_on_a_mix_and_compares_them_on_one_suite():
    from rft.app.pipeline_config import load_pipeline

    mix = {"mix": [{"suite": "arithmetic-v0", "weight": 2}, {"suite": "addition-v0", "weight": 1}]}
    raw = {
        "model": "m",
        "suite": mix,
        "stages": [{"name": "sft", "type": "sft"}, {"name": "rl", "type": "grpo"}],
    }
    with pytest.raises(ConfigError, match="suite is a mix.*set eval.suite"):
        load_pipeline(raw)
    p = load_pipeline({**raw, "eval": {"suite": "arithmetic-v0"}})
    for stage in p.stages:
        assert p.stage_config(stage, "m").suite == read_mix(mix)
    assert p.eval_spec().suite == "arithmetic-v0"
