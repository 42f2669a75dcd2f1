"""The sampler/trainer mismatch in GRPO: a deliberately perturbed sampler (`logit_scale`) reports honest
log-probabilities, the `mismatch/*` metrics rise with the perturbation, the correction masks what it should,
and its settings are validated. The maths: tests/test_rollout_correction.py."""

from __future__ import annotations

import json

import pytest
import torch

from rft.batch import collate, token_logprobs
from rft.config import load_config
from rft.engines import LogitScaled, Sampling, make_engine
from rft.rl.grpo import CorrectionConfig, GRPOConfig, LossConfig, train
from rft.rollout import Trajectory, chat_prompt_ids
from rft.tiny import make_model, make_tokenizer

torch.set_num_threads(1)


def test_logit_scaled_engine_reports_the_probabilities_it_sampled_from():
    tok = make_tokenizer(["What is 12 + 5? \\boxed{17} The answer is"] * 20)
    model = make_model(tok)
    engine = make_engine("hf", model, tok, logit_scale=2.0)
    assert isinstance(engine, LogitScaled) and engine.name == "hf"
    prompt = chat_prompt_ids(tok, [{"role": "user", "content": "What is 3 + 4?"}])
    comp = engine.generate([prompt], Sampling(temperature=0.8, max_new_tokens=12, seed=0, logprobs=True))[0][
        0
    ]
    row = Trajectory(0, prompt + comp.token_ids, [0] * len(prompt) + [1] * len(comp.token_ids), len(prompt))
    batch = collate([row], tok.pad_token_id)
    with torch.no_grad():
        sampled = token_logprobs(model, batch, 0.8 / 2.0)[0, len(prompt) - 1 :]  # softmax(2 * logits / 0.8)
        trainer = token_logprobs(model, batch, 0.8)[0, len(prompt) - 1 :]
    assert torch.allclose(sampled, torch.tensor(comp.logprobs), atol=1e-4)
    assert not torch.allclose(trainer, sampled, atol=1e-3)
    greedy = Sampling(temperature=0, max_new_tokens=8)
    plain = make_engine("hf", model, tok)
    assert engine.generate([prompt], greedy) == plain.generate([prompt], greedy)  # the argmax is unchanged
    with pytest.raises(ValueError, match="logit_scale"):
        LogitScaled(plain, 0.0)


def run(tmp_path, warm, name, *extra):
    model, suite = warm
    cfg = load_config(GRPOConfig, None, [
        f"model={model}", f"suite={suite}", f"out={tmp_path / name}", "steps=2", "prompts_per_step=8",
        "group_size=8", "gen.max_new_tokens=12", "lr=1e-4", "eval.n=0", "grader_workers=0", *extra,
    ])  # fmt: skip
    train(cfg)
    rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert all(r["rollout/trained_rows"] > 0 for r in rows)
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k.startswith("mismatch/")}


def test_mismatch_metrics_rise_with_the_samplers_perturbation(tmp_path, warm):
    """Same weights, same seed: the hf engine on the trainer's own model agrees with it to float precision;
    sharpening the sampler's logits (x1.3, x2) opens a gap that grows with the scale. Measured here:
    kl about 1e-13, 0.007, 0.019 (bench/mismatch.py has more scales)."""
    m = {s: run(tmp_path, warm, f"s{s}", f"engine_options={{logit_scale: {s}}}") for s in (1.0, 1.3, 2.0)}
    assert m[1.0]["mismatch/kl"] < 1e-6
    assert m[1.0]["mismatch/is_ratio_max"] == pytest.approx(1.0, abs=1e-3)
    assert 1e-4 < m[1.3]["mismatch/kl"] < m[2.0]["mismatch/kl"], m
    assert 1.0 < m[1.3]["mismatch/is_ratio_max"] < m[2.0]["mismatch/is_ratio_max"], m
    assert m[2.0]["mismatch/is_ratio_min"] < m[1.3]["mismatch/is_ratio_min"] < 1.0, m
    assert all(v["mismatch/masked_frac"] == 0 for v in m.values())  # no mask asked for


def test_the_mask_drops_what_leaves_the_band(tmp_path, warm):
    tight = [
        "engine_options={logit_scale: 2.0}",
        "loss.correction.tis=token",
        "loss.correction.band=[0.9,1.1]",
    ]
    tok = run(tmp_path, warm, "tok", *tight, "loss.correction.mis=token")
    assert 0 < tok["mismatch/masked_frac"] < 1 and tok["mismatch/seq_masked_frac"] == 0
    seq = run(tmp_path, warm, "seq", *tight, "loss.correction.mis=geometric")
    assert 0 < seq["mismatch/seq_masked_frac"] < 1 and 0 < seq["mismatch/masked_frac"] < 1


def test_without_a_perturbation_the_correction_changes_nothing(tmp_path, warm):
    """rho = 1 to float precision on the hf engine, so the corrected loss is the uncorrected one."""
    run(tmp_path, warm, "a")
    run(tmp_path, warm, "b", "loss.correction.tis=token", "loss.correction.mis=geometric")
    rows = [[json.loads(x) for x in (tmp_path / n / "metrics.jsonl").read_text().splitlines()] for n in "ab"]
    for x, y in zip(*rows, strict=True):
        assert x["loss/policy"] == pytest.approx(y["loss/policy"], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"cap": 0.0}, "cap > 0"),
        ({"band": (1.0, 2.0)}, "0 <= lo < 1 < hi"),
        ({"band": (0.5, 0.9)}, "0 <= lo < 1 < hi"),
    ],
)
def test_bad_correction_settings_say_what_to_fix(kw, match):
    with pytest.raises(ValueError, match=match):
        CorrectionConfig(**kw)


def test_gspo_takes_only_sequence_level_corrections():
    with pytest.raises(ValueError, match="tis sequence or geometric"):
        LossConfig(name="gspo", correction=CorrectionConfig(tis="token"))
    LossConfig(name="gspo", correction=CorrectionConfig(tis="geometric", mis="geometric"))  # fine


def random_tiny_and_like_suite(tmp_path):
    """A random tiny model and a suite whose grader passes outputs with an "a" (mixed rewards)."""
    tok = make_tokenizer(["What is 12 + 5? abc"] * 20)
    make_model(tok).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    suite = tmp_path / "like-v0.yaml"
    suite.write_text(
        "id: like-v0\n"
        "source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2}, size: 64}\n"
        "fields: {id: id, reference: answer}\n"
        'prompt: {user: "{{ item.question }}"}\n'
        'grader: {type: string_check, operation: like, input: "{{ sample.output_text }}", reference: "a"}\n'
        "split: 0.25\n"
    )
    return tmp_path / "m", suite


def test_async_with_a_correction_takes_the_ratio_against_the_trainer(tmp_path):
    """Decoupled PPO: with a correction, async rollouts' PPO ratio is against the trainer's own log-probs
    before the update (1 in a single pass), and the sampler's lag (one update) shows in `mismatch/*`."""
    model, suite = random_tiny_and_like_suite(tmp_path)
    cfg = load_config(GRPOConfig, None, [
        f"model={model}", f"suite={suite}", f"out={tmp_path / 'run'}", "steps=4", "prompts_per_step=4",
        "group_size=4", "gen.max_new_tokens=12", "eval.n=0", "lr=1e-3", "grader_workers=0", "async_rollout=true",
        "loss.correction.tis=token",
    ])  # fmt: skip
    train(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["rollout/trained_rows"] > 0]
    assert len(rows) >= 3
    assert all(r["loss/ratio_mean"] == pytest.approx(1.0, abs=1e-5) for r in rows)
    assert rows[0]["step"] == 1 and rows[0]["mismatch/kl"] < 1e-8  # step 1: sampled by the same weights
    assert all(r["mismatch/kl"] > 1e-6 for r in rows[1:]), rows  # later: one update behind


def test_ppo_corrects_and_logs_the_mismatch(tmp_path):
    """PPO takes the same `loss.correction`: a perturbed sampler's gap is logged and masked."""
    from rft.rl.ppo import PPOConfig
    from rft.rl.ppo import train as train_ppo

    model, suite = random_tiny_and_like_suite(tmp_path)
    cfg = load_config(PPOConfig, None, [
        f"model={model}", f"suite={suite}", f"out={tmp_path / 'run'}", "steps=2", "prompts_per_step=4",
        "samples_per_prompt=2", "gen.max_new_tokens=12", "eval.n=0", "grader_workers=0",
        "engine_options={logit_scale: 3.0}", "loss.correction.tis=token", "loss.correction.mis=token",
        "loss.correction.band=[0.8,1.25]",
    ])  # fmt: skip
    train_ppo(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for r in rows:
        assert r["mismatch/kl"] > 1e-4 and r["mismatch/is_ratio_max"] > 1.25, r
        assert 0 < r["mismatch/masked_frac"] < 1, r
