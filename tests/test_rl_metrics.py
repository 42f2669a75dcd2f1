"""GRPO and PPO report `loss/*` the same way (`rft.rl.metrics.UpdateMetrics`): losses and grad norms are means
over the optimizer updates actually taken (a minibatch with no trainable rows is skipped and counts nowhere),
`loss/policy` is the clipped policy loss alone (GRPO's KL term is `loss/kl`), per-token diagnostics are token
means. Checked against what the loss functions returned and what the optimizers did, recorded by spies."""

from __future__ import annotations

import copy

import pytest
import torch

from rft.batch import collate
from rft.rl import grpo, ppo
from rft.rl.config import CorrectionConfig, GenConfig
from rft.rollout import Trajectory, chat_prompt_ids
from rft.tiny import make_model, make_tokenizer

torch.set_num_threads(1)
GROUP = 4
NO_SAMPLER_LP = CorrectionConfig(metrics=False)  # hand-made trajectories carry no sampler log-probs
# 8 rows in 4 minibatches of 2: only group 0's rows 0 and 1 are graded (the rest failed), so at most two
# minibatches have trainable rows; the others are skipped
REWARDS = ((1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 1.0, 0.0))
VALID = ((True, True, False, False), (False, False, False, False))


def trajectories(tok) -> list[Trajectory]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for g, (question, rewards, valid) in enumerate(
        zip(("What is 12 + 5?", "abc"), REWARDS, VALID, strict=True)
    ):
        prompt = chat_prompt_ids(tok, [{"role": "user", "content": question}])
        for reward, ok in zip(rewards, valid, strict=True):
            n = int(torch.randint(2, 9, (1,), generator=gen))
            completion = torch.randint(8, len(tok), (n,), generator=gen).tolist()
            ids, mask = prompt + completion, [0] * len(prompt) + [1] * n
            out.append(Trajectory(g, ids, mask, len(prompt), reward, failed=not ok))
    return out


class Spy:
    """Records each micro-batch's loss terms and diagnostics, each update's grad norm and optimizer steps."""

    def __init__(self, monkeypatch, module, value_loss: bool = False) -> None:
        self.micro: list[dict[str, float]] = []
        self.norms: list[float] = []
        self.steps = 0
        real_policy = getattr(module, "policy_loss", None) or module.resolve_loss("clip")  # GRPO: by name
        real_clip = torch.nn.utils.clip_grad_norm_

        def policy_loss(*args, **kw):
            loss, st = real_policy(*args, **kw)
            tokens = float(args[3].sum())
            self.micro.append(
                {"policy": float(loss.detach()), "tokens": tokens} | {k: float(v) for k, v in st.items()}
            )
            return loss, st

        def clip(params, max_norm, *a, **kw):
            norm = real_clip(params, max_norm, *a, **kw)
            self.norms.append(float(norm))
            return norm

        if hasattr(module, "resolve_loss"):
            monkeypatch.setattr(module, "resolve_loss", lambda name: policy_loss)
        else:
            monkeypatch.setattr(module, "policy_loss", policy_loss)
        monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
        if hasattr(module, "aggregate"):  # GRPO: the KL term
            real_agg = module.aggregate

            def aggregate(*args, **kw):
                out = real_agg(*args, **kw)
                self.micro[-1]["kl"] = float(out.detach())
                return out

            monkeypatch.setattr(module, "aggregate", aggregate)
        if value_loss:
            real_value = module.value_loss

            def value(*args, **kw):
                loss, st = real_value(*args, **kw)
                self.micro[-1]["value"] = float(loss.detach())
                return loss, st

            monkeypatch.setattr(module, "value_loss", value)

    def count_steps(self, opt: torch.optim.Optimizer) -> None:
        def hook(*_):
            self.steps += 1

        opt.register_step_post_hook(hook)

    def expected(self, updates_per_step: int = 1) -> dict[str, float]:
        """`loss/*` as UpdateMetrics defines them, from the recorded numbers."""
        updates = self.steps // updates_per_step
        tokens = sum(m["tokens"] for m in self.micro)
        out = {
            f"loss/{k}": sum(m[k] for m in self.micro) / updates
            for k in ("policy", "kl", "value")
            if k in self.micro[0]
        }
        out["loss/grad_norm"] = sum(self.norms) / updates
        for k in ("clip_frac", "approx_kl", "ratio_mean"):
            out[f"loss/{k}"] = sum(m[k] * m["tokens"] for m in self.micro) / tokens
        out["loss/updates"] = float(updates)
        return out


def check(got: dict[str, float], want: dict[str, float]) -> None:
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-7), k


@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_grpo_reports_means_over_the_updates_taken(monkeypatch, beta):
    spy = Spy(monkeypatch, grpo)
    tok = make_tokenizer(["What is 12 + 5? abc"] * 20)
    model = make_model(tok, hidden=32, layers=1, heads=2)
    ref = copy.deepcopy(model).requires_grad_(False) if beta else None
    cfg = grpo.GRPOConfig(model="tiny", suite="none", prompts_per_step=2, group_size=GROUP, epochs=2, minibatches=4,
                          micro_batch=1, lr=0.1, gen=GenConfig(max_new_tokens=8),
                          loss=grpo.LossConfig(beta=beta, agg="grpo", correction=NO_SAMPLER_LP))  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    spy.count_steps(opt)
    trajs = trajectories(tok)
    rewards, valid = grpo._rewards(cfg, trajs, max_turns=1)
    adv = grpo._advantages(cfg, rewards, valid, grpo.Dist())
    got = grpo._update(cfg, model, ref, opt, trajs, adv, valid, tok.pad_token_id, torch.device("cpu"), 1, 0)
    assert 0 < spy.steps < cfg.epochs * cfg.minibatches  # some minibatches were skipped
    want = spy.expected()
    assert ("loss/kl" in want) == (beta > 0)
    check(got, want)


def test_ppo_reports_means_over_the_updates_taken(monkeypatch):
    spy = Spy(monkeypatch, ppo, value_loss=True)
    tok = make_tokenizer(["What is 12 + 5? abc"] * 20)
    model = make_model(tok, hidden=32, layers=1, heads=2)
    head = torch.nn.Linear(32, 1)
    cfg = ppo.PPOConfig(model="tiny", suite="none", prompts_per_step=2, samples_per_prompt=GROUP, epochs=2,
                        minibatches=4, micro_batch=1, gen=GenConfig(max_new_tokens=8))  # fmt: skip
    opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.1)
    spy.count_steps(opt)
    trajs = trajectories(tok)
    batch = collate(trajs, tok.pad_token_id)
    scores = torch.tensor([t.reward for t in trajs])
    valid = torch.tensor([not t.failed for t in trajs])
    old, _ = ppo._advantages(cfg, model, None, head, None, batch, scores, valid)
    got = ppo._update(cfg, 0, model, None, head, [opt], batch, old)
    assert 0 < spy.steps < cfg.epochs * cfg.minibatches  # some minibatches were skipped
    check(got, spy.expected())
    assert "loss/kl" not in got  # PPO's KL is in the rewards (logged by _advantages when kl_coef > 0)
