"""Micro-batches by length (`rft.rl.harness.micro_batches`): rows sorted longest first, `micro_tokens` bounds
rows x width; the GRPO and PPO updates give the same gradient as one micro-batch of the whole batch."""

from __future__ import annotations

import pytest
import torch

from rft.batch import collate
from rft.rl import grpo, ppo
from rft.rl.config import GenConfig
from rft.rl.harness import micro_batches
from rft.rollout import Trajectory
from rft.tiny import make_model, make_tokenizer

torch.set_num_threads(1)
GROUP = 4


def test_rows_are_sorted_longest_first_and_cut_by_count():
    lengths = [3, 9, 5, 9, 1, 7]
    assert micro_batches([0, 1, 2, 3, 4, 5], lengths, 4) == [[1, 3, 5, 2], [0, 4]]
    assert micro_batches([4, 2, 0], lengths, 2) == [[2, 0], [4]]  # only the rows asked for
    assert micro_batches([], lengths, 2) == []


@pytest.mark.parametrize("tokens", [1, 10, 18, 20, 27, 1000])
def test_token_budget_bounds_rows_times_width(tokens):
    gen = torch.Generator().manual_seed(tokens)
    lengths = torch.randint(1, 12, (40,), generator=gen).tolist()
    rows = list(range(40))
    parts = micro_batches(rows, lengths, 16, tokens)
    assert sorted(i for p in parts for i in p) == rows  # every row once
    for p in parts:
        width = max(lengths[i] for i in p)
        assert len(p) == 1 or len(p) * width <= tokens  # at least one row, else within the budget
    if tokens == 1000:  # all fit: micro_batch (16) does not cap a token budget
        assert len(parts) == 1
    if tokens == 20:  # greedy: a micro-batch closes only when the next row would overflow it
        for p in parts[:-1]:
            assert (len(p) + 1) * max(lengths[i] for i in p) > tokens


def trajectories(tok) -> list[Trajectory]:
    """Two groups of GROUP samples, completions of 1-20 random tokens, rewards with variance in each group."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for g, question in enumerate(["What is 12 + 5?", "abc"]):
        prompt = tok(question)["input_ids"]
        for k in range(GROUP):
            n = int(torch.randint(1, 21, (1,), generator=gen))
            completion = torch.randint(8, len(tok), (n,), generator=gen).tolist()
            ids, mask = prompt + completion, [0] * len(prompt) + [1] * n
            out.append(Trajectory(g, ids, mask, len(prompt), float((k * 7 + g) % 3)))
    return out


def grpo_gradient(
    micro_batch: int, micro_tokens: int, shared_prefix: bool, loss: str = "clip"
) -> tuple[torch.Tensor, list]:
    """The flattened gradient of one GRPO `_update` (before its optimizer step), and the (rows, width) of
    every training forward."""
    tok = make_tokenizer(["What is 12 + 5? abc"] * 20)
    model = make_model(tok, hidden=32, layers=2, heads=2)
    cfg = grpo.GRPOConfig(model="tiny", suite="none", prompts_per_step=2, group_size=GROUP, lr=0.1,
                          micro_batch=micro_batch, micro_tokens=micro_tokens, shared_prefix=shared_prefix,
                          max_grad_norm=0, gen=GenConfig(max_new_tokens=20),
                          loss=grpo.LossConfig(name=loss, agg="grpo" if loss == "gspo" else "dapo",
                                               correction=grpo.CorrectionConfig(metrics=False)))  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    grads: list[torch.Tensor] = []
    opt.register_step_pre_hook(
        lambda *_: grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]).clone())
    )
    shapes: list[tuple[int, int]] = []
    model.register_forward_pre_hook(
        lambda _m, _a, kw: shapes.append(tuple(kw["input_ids"].shape)) if torch.is_grad_enabled() else None,
        with_kwargs=True,
    )
    trajs = trajectories(tok)
    rewards, valid = grpo._rewards(cfg, trajs, max_turns=1)
    adv = grpo._advantages(cfg, rewards, valid, grpo.Dist())
    grpo._update(cfg, model, None, opt, trajs, adv, valid, tok.pad_token_id, torch.device("cpu"), 1, 0)
    assert len(grads) == 1
    return grads[0], shapes


@pytest.mark.parametrize("shared_prefix", [False, True])
@pytest.mark.parametrize("micro_batch, micro_tokens", [(3, 0), (1, 0), (16, 40), (16, 1)])
def test_grpo_micro_batches_give_the_full_batch_gradient(shared_prefix, micro_batch, micro_tokens):
    full, full_shapes = grpo_gradient(2 * GROUP, 0, shared_prefix)
    got, shapes = grpo_gradient(micro_batch, micro_tokens, shared_prefix)
    assert torch.count_nonzero(full) > 0
    assert torch.nn.functional.cosine_similarity(got, full, dim=0) > 1 - 1e-6
    torch.testing.assert_close(got, full, rtol=1e-4, atol=1e-6)
    if not shared_prefix:  # one forward per micro-batch, (rows, width)
        assert len(full_shapes) == 1 and len(shapes) > 1
        widths = [w for _, w in shapes]
        assert widths == sorted(widths, reverse=True)  # longest rows first
        for rows, width in shapes:
            assert rows <= micro_batch if not micro_tokens else rows == 1 or rows * width <= micro_tokens
        if micro_tokens == 40:  # short rows share a micro-batch, long ones do not
            assert max(r for r, _ in shapes) > 1 and min(r for r, _ in shapes) == 1


@pytest.mark.parametrize("shared_prefix", [False, True])
@pytest.mark.parametrize("loss", ["clip", "gspo", "cispo"])
def test_grpo_head_gradient_in_the_forward_pass_equals_autograd(monkeypatch, shared_prefix, loss):
    """On-policy (ratio 1) the built-in losses are linear in the log-probabilities: `_update` gives the head
    their gradient in advance (`chunked_logprobs(known_grad=...)`); the update's gradient is the one of the
    checkpointed head (the path every other case takes)."""
    fused, _ = grpo_gradient(3, 0, shared_prefix, loss)
    monkeypatch.setattr(grpo, "LINEAR_AT_RATIO_1", ())
    plain, _ = grpo_gradient(3, 0, shared_prefix, loss)
    assert torch.count_nonzero(plain) > 0
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-6)


def test_ppo_token_budget_gives_the_full_batch_gradient():
    tok = make_tokenizer(["What is 12 + 5? abc"] * 20)
    trajs = trajectories(tok)
    batch = collate(trajs, tok.pad_token_id)
    scores = torch.tensor([t.reward for t in trajs])
    valid = torch.ones(len(trajs), dtype=torch.bool)

    def gradient(micro_batch: int, micro_tokens: int) -> torch.Tensor:
        cfg = ppo.PPOConfig(model="tiny", suite="none", prompts_per_step=2, samples_per_prompt=GROUP, lr=0.1,
                            micro_batch=micro_batch, micro_tokens=micro_tokens, max_grad_norm=0, epochs=1, minibatches=1,
                            gen=GenConfig(max_new_tokens=20))  # fmt: skip
        model = make_model(tok, hidden=32, layers=2, heads=2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(2)
            head = torch.nn.Linear(32, 1)
        params = list(model.parameters()) + list(head.parameters())
        opts = [torch.optim.SGD(params, lr=0.1)]
        grads: list[torch.Tensor] = []
        opts[0].register_step_pre_hook(
            lambda *_: grads.append(torch.cat([p.grad.flatten() for p in params]).clone())
        )
        old, _ = ppo._advantages(cfg, model, None, head, None, batch, scores, valid)
        ppo._update(cfg, 0, model, None, head, opts, batch, old)
        return torch.cat(grads)

    full, got = gradient(len(trajs), 0), gradient(16, 30)
    assert torch.count_nonzero(full) > 0
    torch.testing.assert_close(got, full, rtol=1e-4, atol=1e-6)


def test_micro_tokens_must_not_be_negative():
    with pytest.raises(ValueError, match="micro_tokens"):
        grpo.GRPOConfig(model="tiny", suite="none", micro_tokens=-1)
