"""rft.rl.ppo: tiny-model smoke runs (both critic kinds), value alignment and masking, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rft.rl.ppo as ppo_module
from rft.batch import Batch, collate
from rft.config import from_dict
from rft.rl.ppo import PPOConfig, _advantages, _update, forward, train
from rft.rollout import Trajectory
from rft.runs import Run
from rft.tiny import make_model, make_tokenizer

# A random tiny model's 8 tokens hold a digit about half the time: rewards vary from the first step.
SUITE = """\
id: digit-v0
source: {type: generator, name: arithmetic, params: {digits: 1, operands: 2, ops: "+"}, size: 200, seed: 0}
fields: {id: id, reference: answer}
prompt: {user: "{{ item.question }}"}
grader: {type: regex, pattern: "[0-9]"}
split: 0.1
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ppo")
    tok = make_tokenizer(["1 + 2", "\\boxed{3}"], vocab_size=128)
    model = make_model(tok, hidden=32, layers=1, heads=2)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    (root / "digit-v0.yaml").write_text(SUITE)
    feedback = SUITE.replace("digit-v0", "digit-feedback-v0") + "episode: {type: feedback, max_turns: 2}\n"
    (root / "digit-feedback-v0.yaml").write_text(feedback)  # a wrong answer gets a second turn
    return root / "model", root / "digit-v0.yaml"


def _cfg(tiny: tuple[Path, Path], out: Path, **kw) -> PPOConfig:
    model, suite = tiny
    data = {
        "model": str(model),
        "suite": str(suite),
        "out": str(out),
        "steps": 2,
        "prompts_per_step": 4,
        "samples_per_prompt": 2,
        "epochs": 2,
        "minibatches": 2,
        "micro_batch": 2,
        "lr": 1e-3,
        "critic_lr": 1e-2,
        "gen": {"max_new_tokens": 8},
        "eval": {"n": 4},
        "grader_workers": 0,
        "max_len": 512,
        **kw,
    }
    return from_dict(PPOConfig, data)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


EXPECTED = {
    "reward/mean", "reward/digit-v0", "reward/pass_rate", "grader/error_rate", "grader/timeout_rate",
    "rollout/completion_len", "rollout/turns", "rollout/trained_rows", "loss/policy", "loss/value",
    "loss/clip_frac", "loss/vf_clip_frac", "loss/approx_kl", "loss/grad_norm", "loss/explained_var",
    "lr", "time/rollout_s", "time/update_s", "time/step_s",
}  # fmt: skip


@pytest.mark.parametrize(
    ("critic", "lora", "kl_coef", "suite"),
    [
        ("shared", 0, 0.0, "digit-v0"),
        ("shared", 4, 0.05, "digit-v0"),
        ("separate", 0, 0.05, "digit-feedback-v0"),
    ],
    ids=["shared", "shared-lora-kl", "separate-kl-multiturn"],
)
def test_two_steps_train_both_critics(tiny, tmp_path, critic, lora, kl_coef, suite):
    lora_spec = {"r": lora, "target_modules": ["q_proj", "v_proj"]} if lora else {"r": 0}
    path = str(tiny[1].with_name(f"{suite}.yaml"))
    workers = 1 if critic == "shared" and not lora else 0  # one case grades in a GraderPool process
    cfg = _cfg(
        tiny, tmp_path / "run", suite=path, critic=critic, lora=lora_spec, loss={"kl_coef": kl_coef},
        grader_workers=workers,
    )  # fmt: skip
    result = train(cfg)
    assert set(result) == {
        "eval/accuracy",
        "eval/reward",
        "eval/failed_rate",
        "eval/completion_len",
        "eval/parse_error_rate",
    }
    rows = _metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [0, 1, 2]
    for row in rows[1:]:
        missing = {k.replace("digit-v0", suite) for k in EXPECTED} - set(row)
        assert not missing, missing
        assert all(v == v and abs(v) != float("inf") for v in row.values()), row  # finite
        assert row["loss/updates"] == cfg.epochs * cfg.minibatches
    assert ("loss/kl" in rows[-1]) == (kl_coef > 0)
    assert ("loss/critic_grad_norm" in rows[-1]) == (critic == "separate")
    if suite == "digit-feedback-v0":
        assert any(r["rollout/turns"] > 1 for r in rows[1:])  # env tokens between turns, masked
    ckpt = tmp_path / "run" / "checkpoints" / "step-000002"
    assert (ckpt / "state.pt").is_file() and (ckpt / "model").is_dir()
    # the policy moved
    before = load_file(tiny[0] / "model.safetensors")
    if lora:
        adapter = load_file(ckpt / "model" / "adapter_model.safetensors")
        lora_b = [v for k, v in adapter.items() if "lora_B" in k]
        assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at 0
    else:
        after = load_file(ckpt / "model" / "model.safetensors")
        assert any(not torch.equal(before[k], after[k]) for k in before)
    # the value model moved and is saved
    state = Run.load_state(ckpt)
    assert state["value_head"]["weight"].abs().sum() > 0  # it starts at 0
    if critic == "separate":
        saved = state["critic"]  # its trainable weights: here all of them
        assert set(saved) <= set(before) and any(not torch.equal(before[k], saved[k]) for k in saved)
    else:
        assert state["critic"] is None


def _episode(prompt: int, model_turns: list[int], env_turns: list[int], **kw) -> Trajectory:
    """A hand-made trajectory: prompt tokens, then model turns (mask 1) with env replies between (mask 0)."""
    ids, mask = list(range(5, 5 + prompt)), [0] * prompt
    for k, n in enumerate(model_turns):
        ids += [20 + k] * n
        mask += [1] * n
        if k < len(env_turns):
            ids += [40 + k] * env_turns[k]
            mask += [0] * env_turns[k]
    return Trajectory(0, ids, mask, prompt, **kw)


def test_values_are_aligned_with_the_mask_and_see_only_model_tokens(monkeypatch):
    torch.manual_seed(0)
    model = make_model(make_tokenizer(["1 + 2"], vocab_size=128), hidden=32, layers=1, heads=2)
    head = torch.nn.Linear(32, 1)
    trajs = [
        _episode(4, [3, 2], [4], reward=1.0),  # a tool episode: model, env reply, model
        _episode(3, [2], [], reward=0.0),  # shorter: right padding
        _episode(4, [3], [], reward=1.0, failed=True, status="timeout"),  # failed grade: masked out
    ]
    batch = collate(trajs, pad_id=0)
    B, T = batch.ids.shape
    lp, values = forward(model, None, head, batch)
    assert lp.shape == values.shape == batch.mask.shape == (B, T - 1)
    # values[:, t] comes from the state at position t: the token t+1 it emits does not change it
    ids2 = batch.ids.clone()
    ids2[0, 6] = 99
    _, v2 = forward(model, None, head, Batch(ids2, batch.attn, batch.mask))
    assert torch.equal(v2[0, :6], values[0, :6]) and not torch.equal(v2[0, 6], values[0, 6])
    with torch.no_grad():
        hidden = model(
            input_ids=batch.ids, attention_mask=batch.attn, output_hidden_states=True
        ).hidden_states[-1]
        assert torch.allclose(head(hidden).squeeze(-1)[:, :-1], values, atol=1e-6)

    # GAE over model tokens only: gamma = lam = 1 and a zero critic give every model token the score
    cfg = from_dict(
        PPOConfig,
        {"model": "-", "suite": "-", "epochs": 1, "minibatches": 1, "micro_batch": 2, "lr": 1e-3,
         "loss": {"gamma": 1.0, "lam": 1.0, "whiten_advantages": False, "value_clip": None}},
    )  # fmt: skip
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    scores = torch.tensor([t.reward for t in trajs])
    valid = torch.tensor([not t.failed for t in trajs])
    old, _ = _advantages(cfg, model, None, head, None, batch, scores, valid)
    m = old["mask"].bool()
    assert torch.equal(m[0], batch.mask[0].bool()) and not m[2].any()  # the failed row is out
    assert torch.equal(old["advantages"][0][m[0]], torch.ones(5))
    assert torch.equal(old["advantages"][0][~m[0]], torch.zeros(int((~m[0]).sum())))

    # gradients reach the values and logits of model tokens only (not env tokens, padding, failed rows)
    torch.nn.init.normal_(head.weight)
    grads = {"values": torch.zeros(B, T - 1), "logits": torch.zeros(B, T - 1)}  # |d loss / d output|
    calls: list[list[int]] = []  # the rows of each micro-batch, in order
    rows_of = Batch.rows
    monkeypatch.setattr(Batch, "rows", lambda self, idx: calls.append(list(idx)) or rows_of(self, idx))

    def keep(name):
        def hook(_module, _inputs, out):
            rows = calls[-1]

            def add(g):  # values: (b, w, 1) on hidden[:, :-1]; logprobs: (b, w) from the chunked head
                w = out.shape[1]
                grads[name][rows, :w] += g[:, :w].abs().reshape(len(rows), w, -1).sum(-1)

            out.register_hook(add)

        return hook

    head.register_forward_hook(keep("values"))
    chunked = ppo_module.chunked_logprobs

    def logprobs_hooked(*args, **kwargs):  # the head runs in chunks (rft.logprobs): hook its output
        lp, ent = chunked(*args, **kwargs)
        keep("logits")(None, None, lp)
        return lp, ent

    monkeypatch.setattr(ppo_module, "chunked_logprobs", logprobs_hooked)
    old["advantages"] = torch.where(m, torch.randn_like(old["advantages"]), 0.0)  # nonzero advantages
    old["returns"] = torch.where(m, torch.ones_like(old["returns"]), 0.0)
    opts = [torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.0)]
    _update(cfg, 0, model, None, head, opts, batch, old)
    assert sorted(r for c in calls for r in c) == [0, 1]  # the failed row is not even run
    for g in grads.values():
        assert (g[~m] == 0).all()
        assert (g[m] != 0).all()


def test_resume_repeats_the_same_steps(tiny, tmp_path):
    full = _cfg(tiny, tmp_path / "full", steps=4, save_every=2, critic="separate", eval={"n": 4, "every": 2})
    train(full)
    first = _cfg(tiny, tmp_path / "cut", steps=2, save_every=2, critic="separate", eval={"n": 4, "every": 2})
    train(first)
    resumed = _cfg(
        tiny, tmp_path / "cut", steps=4, save_every=2, critic="separate", eval={"n": 4, "every": 2}
    )
    train(resumed, resume=True)

    def strip(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]

    a, b = strip(_metrics(tmp_path / "full")), strip(_metrics(tmp_path / "cut"))
    assert len(a) == len(b) == 5
    for x, y in zip(a, b, strict=True):
        assert x == y
    sa = Run.load_state(tmp_path / "full" / "checkpoints" / "step-000004")
    sb = Run.load_state(tmp_path / "cut" / "checkpoints" / "step-000004")
    assert torch.equal(sa["value_head"]["weight"], sb["value_head"]["weight"])
    assert all(torch.equal(sa["critic"][k], sb["critic"][k]) for k in sa["critic"])


@pytest.mark.slow
def test_ppo_raises_heldout_accuracy(tmp_path, warm):
    """From the half-right warm start, 40 PPO steps of 64 prompts (shared value head) raise greedy held-out
    accuracy by 0.06 or more (measured: +0.10 to +0.17 over seeds 0-3, about 15 s each)."""
    from rft.config import from_dict
    from rft.rl.ppo import PPOConfig, train

    model, suite = warm
    cfg = from_dict(
        PPOConfig,
        {
            "model": str(model),
            "suite": str(suite),
            "out": str(tmp_path / "run"),
            "steps": 40,
            "prompts_per_step": 64,
            "epochs": 1,
            "minibatches": 1,
            "micro_batch": 64,
            "lr": 1e-4,
            "critic_lr": 1e-2,
            "gen": {"max_new_tokens": 12},
            "eval": {"n": 200},
            "grader_workers": 0,
        },
    )
    final = train(cfg)
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 0
    assert final["eval/accuracy"] >= first["eval/accuracy"] + 0.06, (first, final)
