"""GSPO, CISPO, RLOO and REINFORCE++ in rft.losses against numbers worked out by hand (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from rft.losses import (
    cispo_loss,
    gspo_loss,
    policy_loss,
    reinforce_pp_advantages,
    rloo_advantages,
)

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=D), torch.as_tensor(b, dtype=D), atol=tol, rtol=0)


R = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_rloo_by_hand():
    # group 1: sum 2; a 1 minus the mean of the other three (1/3) = 2/3; a 0 minus 2/3; group 2: 1 - 1 = 0
    close(rloo_advantages(t(R), 4), [2 / 3, -2 / 3, -2 / 3, 2 / 3, 0, 0, 0, 0])
    # invalid samples leave the baseline: group 1 valid (1, 0, 0): 1 - 0 = 1, 0 - 1/2 = -0.5; group 2: one valid
    rewards = t([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    valid = torch.tensor([True, True, True, False, True, False, False, False])
    close(rloo_advantages(rewards, 4, valid=valid), [1, -0.5, -0.5, 0, 0, 0, 0, 0])


def test_rloo_is_n_over_n_minus_1_times_the_centred_reward():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(24, generator=g, dtype=D)
    centred = r.view(4, 6) - r.view(4, 6).mean(1, keepdim=True)
    close(rloo_advantages(r, 6), (centred * 6 / 5).view(-1), tol=1e-12)


def test_reinforce_pp_by_hand():
    # centred per group: 0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0; batch mean 0; unbiased std sqrt(1 / 7) = 0.3779645;
    # 0.5 / 0.3779645 = 1.3228757
    a = 1.3228757
    close(reinforce_pp_advantages(t(R), 4), [a, -a, -a, a, 0, 0, 0, 0])


def test_reinforce_pp_is_whitened_over_the_batch_not_per_group():
    g = torch.Generator().manual_seed(1)
    r = torch.rand(24, generator=g, dtype=D)
    adv = reinforce_pp_advantages(r, 6, eps=0.0)
    close(adv.mean(), 0.0, tol=1e-12)
    close(adv.std(), 1.0, tol=1e-12)
    assert not torch.allclose(adv.view(4, 6).std(1), torch.ones(4, dtype=D))  # the scale is the batch's
    valid = torch.ones(24, dtype=torch.bool)
    valid[:6] = False  # a whole group out: 0 there, the rest whitened without it
    adv = reinforce_pp_advantages(r, 6, valid=valid, eps=0.0)
    close(adv[:6], torch.zeros(6), tol=0)
    close(adv[6:].std(), 1.0, tol=1e-12)


# the same batch as tests/test_losses.py: ratios row 0 (A = +1) 1.0, 1.5, 0.5; row 1 (A = -1) 0.5, 1.5, then a
# masked token with ratio e^50
OLD = t([[-1.0, -2.0, -1.5], [-0.7, -1.2, -60.0]])
LOG_RATIO = t([[0.0, math.log(1.5), math.log(0.5)], [math.log(0.5), math.log(1.5), 50.0]])
ADV = t([1.0, -1.0])
MASK = t([[1, 1, 1], [1, 1, 0]])


def _run(fn, **kw):
    lp = (OLD + LOG_RATIO).requires_grad_(True)
    loss, stats = fn(lp, OLD, ADV, MASK, **kw)
    loss.backward()
    return loss, stats, lp.grad


def test_gspo_by_hand():
    # sequence ratios: row 0 exp(ln(0.75) / 3) = 0.9085603; row 1 exp(ln(0.75) / 2) = 0.8660254
    # eps 0.2: neither clipped: row losses -0.9085603 and +0.8660254; per-sequence mean -0.0212675
    loss, stats, grad = _run(gspo_loss, eps_low=0.2, eps_high=0.2)
    close(loss, (-0.9085603 + 0.8660254) / 2)
    close(stats["ratio_mean"], (3 * 0.9085603 + 2 * 0.8660254) / 5)
    close(stats["clip_frac"], 0.0)
    # d s / d logp_t = s / |y|: row 0 -(1/2) 0.9085603 / 3 = -0.1514267; row 1 (1/2) 0.8660254 / 2 = 0.2165064
    close(grad, [[-0.1514267] * 3, [0.2165064, 0.2165064, 0.0]])
    # the paper's range (3e-4, 4e-4): row 1 (A < 0, s < 1 - 3e-4) is clipped to 0.9997: no gradient there
    loss, stats, grad = _run(gspo_loss)
    close(loss, (-0.9085603 + 0.9997) / 2)
    close(stats["clip_frac_low"], 2 / 5)
    close(stats["clip_frac_high"], 0.0)
    close(grad, [[-0.1514267] * 3, [0.0, 0.0, 0.0]])


def test_gspo_equals_the_token_loss_on_one_token_sequences():
    old = t([[-1.0], [-2.0]])
    lp = old + t([[0.1], [-0.3]])
    for eps in (0.05, 0.2):
        a, _ = gspo_loss(lp, old, ADV, torch.ones(2, 1, dtype=D), eps, eps)
        b, _ = policy_loss(lp, old, ADV, torch.ones(2, 1, dtype=D), eps, eps)
        close(a, b, tol=1e-12)
    with pytest.raises(ValueError, match="one advantage per sequence"):
        gspo_loss(lp, old, ADV.unsqueeze(1), torch.ones(2, 1, dtype=D))


def test_cispo_by_hand():
    # -w A log pi per token, w = ratio (inside [0, 5]); log pi: row 0 -1, -1.5945349, -2.1931472;
    # row 1 -1.3931472, -0.7945349. Row 0 (A=+1): 1 + 2.3918023 + 1.0965736; row 1 (A=-1): -0.6965736 -
    # 1.1918023; sum 2.6, token mean (dapo) 0.52
    loss, stats, grad = _run(cispo_loss)
    close(loss, 2.6 / 5)
    close(stats["clip_frac"], 0.0)
    # gradient -w A / 5 on every unmasked token: the ratio-1.5 tokens keep theirs (the clipped surrogate
    # gives them 0 at eps 0.2)
    close(grad, [[-0.2, -0.3, -0.1], [0.1, 0.3, 0.0]])
    # weights bounded to [0.8, 1.2]: the 1.5s weigh 1.2, the 0.5s 0.8, and still pass a gradient
    loss, stats, grad = _run(cispo_loss, eps_low=0.2, eps_high=0.2)
    close(grad, [[-0.2, -0.24, -0.16], [0.16, 0.24, 0.0]])
    close(stats["clip_frac_high"], 2 / 5)
    close(stats["clip_frac_low"], 2 / 5)


@pytest.mark.parametrize(("fn", "agg"), [(gspo_loss, "grpo"), (gspo_loss, "dapo"), (cispo_loss, "dapo"),
                                          (cispo_loss, "grpo")])  # fmt: skip
def test_micro_batches_with_global_normaliser_sum_to_full_batch(fn, agg):
    g = torch.Generator().manual_seed(2)
    B, T = 8, 6
    old = -torch.rand(B, T, generator=g, dtype=D) * 3
    new = (old + 0.05 * torch.randn(B, T, generator=g, dtype=D)).requires_grad_(True)
    adv = torch.randn(B, generator=g, dtype=D)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T) < lengths[:, None]).to(D)  # (B, T), ragged
    full, _ = fn(new, old, adv, mask, 0.2, 0.2, agg)
    (full_grad,) = torch.autograd.grad(full, new)
    num_items = mask.sum() if agg == "dapo" else B
    total = sum(fn(new[i : i + 2], old[i : i + 2], adv[i : i + 2], mask[i : i + 2], 0.2, 0.2, agg, num_items)[0]
                for i in range(0, B, 2))  # fmt: skip
    (micro_grad,) = torch.autograd.grad(total, new)
    close(total, full, tol=1e-12)
    close(micro_grad, full_grad, tol=1e-12)
