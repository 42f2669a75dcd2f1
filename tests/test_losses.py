"""rft.losses against numbers worked out by hand, plus property tests (float64 unless a dtype is under test)."""

from __future__ import annotations

import math

import pytest
import torch

from rft.losses import (
    entropy_from_logits,
    gae,
    group_advantages,
    kl_penalty,
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
    policy_loss,
    selective_log_softmax,
    token_rewards,
    value_loss,
    zero_variance_groups,
)

D = torch.float64


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=D), torch.as_tensor(b, dtype=D), atol=tol, rtol=0)


# masked statistics ------------------------------------------------------------------------------------------


def test_masked_sum_mean_var_whiten_by_hand():
    x = t([[1.0, 2.0, float("nan")], [4.0, 5.0, 6.0]])  # the NaN is masked out and must not leak
    mask = t([[1, 1, 0], [1, 0, 0]])
    close(masked_sum(x, mask), 7.0)  # 1 + 2 + 4
    close(masked_mean(x, mask), 7 / 3)
    close(masked_mean(x, mask, dim=1), [1.5, 4.0])  # (1 + 2) / 2, 4 / 1
    # deviations from 7/3: -4/3, -1/3, 5/3; squares 16/9 + 1/9 + 25/9 = 14/3
    close(masked_var(x, mask), 7 / 3)  # 14/3 / (3 - 1)
    close(masked_var(x, mask, unbiased=False), 14 / 9)  # 14/3 / 3
    # (x - 7/3) / sqrt(7/3): -4/3 / 1.5275 = -0.87287, -1/3 / 1.5275 = -0.21822, 5/3 / 1.5275 = 1.09109
    close(masked_whiten(x, mask), [[-0.8728716, -0.2182179, 0.0], [1.0910895, 0.0, 0.0]])
    close(masked_whiten(x, mask, shift_mean=False)[0, 0], -0.8728716 + 7 / 3)


def test_masked_mean_empty_is_zero_not_nan():
    x, empty = t([[1.0, 2.0], [3.0, 4.0]]), t([[0, 0], [1, 0]])
    close(masked_mean(x, empty, dim=1), [0.0, 3.0])
    close(masked_mean(x, torch.zeros(2, 2)), 0.0)
    close(masked_var(x, empty), 0.0)  # one entry: no unbiased variance, 0 by convention


# group advantages -------------------------------------------------------------------------------------------

R = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_group_advantages_group_scale_matches_trl_unbiased_std():
    # group 1: mean 0.5, unbiased std sqrt((4 * 0.25) / 3) = 0.5773503; 0.5 / (0.5773503 + 1e-4) = 0.8658754
    # group 2: all equal, std 0: 0 / (0 + 1e-4) = 0
    a = 0.8658754
    close(group_advantages(t(R), 4), [a, -a, -a, a, 0, 0, 0, 0])


def test_group_advantages_batch_and_none_scale():
    # batch: mean 0.75 over 8, deviations 0.25 (x6) and -0.75 (x2): sum sq 0.375 + 1.125 = 1.5;
    # unbiased std sqrt(1.5 / 7) = 0.4629100; group-centred 0.5 / (0.4629100 + 1e-4) = 1.0798902
    b = 1.0798902
    close(group_advantages(t(R), 4, scale="batch"), [b, -b, -b, b, 0, 0, 0, 0])
    close(group_advantages(t(R), 4, scale="none"), [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])


def test_group_advantages_with_invalid_samples():
    rewards = t([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    valid = torch.tensor([True, True, True, False, True, False, False, False])
    # group 1 over (1, 0, 0): mean 1/3; deviations 2/3, -1/3, -1/3; sum sq 6/9; unbiased var 1/3, std 0.5773503
    # 2/3 / 0.5774503 = 1.1545006, -1/3 / 0.5774503 = -0.5772503; the invalid sample gets 0
    # group 2 has a single valid sample: no baseline, all 0
    expected = [1.1545006, -0.5772503, -0.5772503, 0.0, 0.0, 0.0, 0.0, 0.0]
    close(group_advantages(rewards, 4, valid=valid), expected)
    # a NaN reward (unscorable, as in TRL) is the same as valid=False
    nan_rewards = torch.where(valid, rewards, torch.full_like(rewards, float("nan")))
    close(group_advantages(nan_rewards, 4), expected)
    close(group_advantages(nan_rewards, 4, valid=valid), expected)
    # scale="none": 2/3, -1/3, -1/3, 0
    close(group_advantages(rewards, 4, scale="none", valid=valid), [2 / 3, -1 / 3, -1 / 3, 0, 0, 0, 0, 0])


def test_group_advantages_properties():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(24, generator=g, dtype=D)
    adv = group_advantages(r, 6, eps=0.0).view(4, 6)
    close(adv.mean(1), torch.zeros(4), tol=1e-12)  # centred per group
    close(adv.std(1), torch.ones(4), tol=1e-12)  # unit unbiased std per group
    assert group_advantages(r.float(), 6).dtype == torch.float32
    assert group_advantages(r.bfloat16(), 6).dtype == torch.float32


def test_group_advantages_errors():
    with pytest.raises(ValueError, match="divisible by group_size"):
        group_advantages(t([1.0, 2.0, 3.0]), 2)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(t(R), 4, scale="std")


def test_zero_variance_groups():
    assert zero_variance_groups(t(R), 4).tolist() == [False, True]
    rewards = t([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 2.0, 3.0])
    valid = torch.tensor([True, False, True, True, True, False, False, False])
    # group 1: valid rewards 1, 1, 1 (the 0 is invalid); group 2: one valid sample
    assert zero_variance_groups(rewards, 4, valid=valid).tolist() == [True, True]
    assert zero_variance_groups(rewards, 4).tolist() == [False, False]


# policy loss ------------------------------------------------------------------------------------------------

# ratios: row 0 (A = +1) 1.0, 1.5, 0.5; row 1 (A = -1) 0.5, 1.5, then a masked token with ratio e^50
OLD = t([[-1.0, -2.0, -1.5], [-0.7, -1.2, -60.0]])
LOG_RATIO = t([[0.0, math.log(1.5), math.log(0.5)], [math.log(0.5), math.log(1.5), 50.0]])
ADV = t([1.0, -1.0])
MASK = t([[1, 1, 1], [1, 1, 0]])


def _policy(agg="grpo", **kw):
    lp = (OLD + LOG_RATIO).requires_grad_(True)
    loss, stats = policy_loss(lp, OLD, ADV, MASK, agg=agg, **kw)
    loss.backward()
    return loss, stats, lp.grad


def test_policy_loss_by_hand_each_agg():
    # per-token -min(r A, clip(r, 0.8, 1.2) A):
    # row 0, A=+1: r=1 -> -1; r=1.5 -> -min(1.5, 1.2) = -1.2 (high clip); r=0.5 -> -min(0.5, 0.8) = -0.5
    # row 1, A=-1: r=0.5 -> -min(-0.5, -0.8) = 0.8 (low clip); r=1.5 -> -min(-1.5, -1.2) = 1.5
    # grpo: row means -2.7/3 = -0.9 and 2.3/2 = 1.15; (-0.9 + 1.15) / 2 = 0.125
    close(_policy("grpo")[0], 0.125)
    # dapo: (-2.7 + 2.3) / 5 tokens = -0.08
    close(_policy("dapo")[0], -0.08)
    # dr_grpo: -0.4 / (B * max_tokens) = -0.4 / (2 * 4) = -0.05
    close(_policy("dr_grpo", max_tokens=4)[0], -0.05)


def test_policy_loss_stats_and_grad_by_hand():
    _, stats, grad = _policy("dapo")
    close(stats["clip_frac"], 2 / 5)
    close(stats["clip_frac_low"], 1 / 5)
    close(stats["clip_frac_high"], 1 / 5)
    close(stats["ratio_mean"], 1.0)  # (1 + 1.5 + 0.5 + 0.5 + 1.5) / 5
    # k3 = (r - 1) - ln r: 0, 0.5 - ln 1.5 = 0.0945349, -0.5 + ln 2 = 0.1931472, same, same; sum / 5
    close(stats["approx_kl"], (2 * 0.0945349 + 2 * 0.1931472) / 5)
    # d(-r A)/d logp = -r A on unclipped tokens, 0 on clipped and masked ones; divided by 5 tokens
    close(grad, [[-1 / 5, 0.0, -0.5 / 5], [0.0, 1.5 / 5, 0.0]])


def test_policy_loss_clip_higher_and_token_advantages():
    # eps_high 0.6: row 0 r=1.5 is now inside (0.8, 1.6): -1.5 instead of -1.2; row 1 unchanged
    # dapo: (-1 - 1.5 - 0.5 + 0.8 + 1.5) / 5 = -0.14
    loss, stats, _ = _policy("dapo", eps_high=0.6)
    close(loss, -0.14)
    close(stats["clip_frac_high"], 0.0)
    per_token_adv = ADV.unsqueeze(1).expand(2, 3).clone()
    loss_bt, _ = policy_loss(OLD + LOG_RATIO, OLD, per_token_adv, MASK, agg="dapo", eps_high=0.6)
    close(loss_bt, -0.14)


def test_policy_loss_errors():
    with pytest.raises(ValueError, match="max_tokens"):
        policy_loss(OLD, OLD, ADV, MASK, agg="dr_grpo")
    with pytest.raises(ValueError, match="agg"):
        policy_loss(OLD, OLD, ADV, MASK, agg="bnpo")


@pytest.mark.parametrize("agg", ["grpo", "dr_grpo", "dapo"])
def test_micro_batches_with_global_normaliser_sum_to_full_batch(agg):
    g = torch.Generator().manual_seed(1)
    B, T = 8, 6
    old = -torch.rand(B, T, generator=g, dtype=D) * 3
    new = (old + 0.4 * torch.randn(B, T, generator=g, dtype=D)).requires_grad_(True)
    adv = torch.randn(B, generator=g, dtype=D)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T) < lengths[:, None]).to(D)  # (B, T), ragged
    kw = {"max_tokens": T} if agg == "dr_grpo" else {}

    full, _ = policy_loss(new, old, adv, mask, agg=agg, **kw)
    (full_grad,) = torch.autograd.grad(full, new)
    num_items = mask.sum() if agg == "dapo" else B
    total = 0.0
    for i in range(0, B, 2):
        sl = slice(i, i + 2)
        micro, _ = policy_loss(new[sl], old[sl], adv[sl], mask[sl], agg=agg, num_items=num_items, **kw)
        total = total + micro
    (micro_grad,) = torch.autograd.grad(total, new)
    close(total, full, tol=1e-12)
    close(micro_grad, full_grad, tol=1e-12)


def test_policy_loss_low_precision():
    lp = (OLD + LOG_RATIO).bfloat16().requires_grad_(True)
    loss, stats = policy_loss(lp, OLD.bfloat16(), ADV.bfloat16(), MASK.bfloat16(), agg="grpo")
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(lp.grad.float()).all()
    close(loss, 0.125, tol=2e-2)
    loss32, _ = policy_loss((OLD + LOG_RATIO).float(), OLD.float(), ADV.float(), MASK.float(), agg="grpo")
    close(loss32, 0.125, tol=1e-6)


# KL estimators ----------------------------------------------------------------------------------------------


def test_kl_estimators_by_hand():
    lp, ref = t([[math.log(0.5)]]), t([[math.log(0.25)]])
    close(kl_penalty(lp, ref, "k1"), [[0.6931472]])  # ln 0.5 - ln 0.25 = ln 2
    close(kl_penalty(lp, ref, "k2"), [[0.2402265]])  # 0.5 (ln 2)^2
    close(kl_penalty(lp, ref, "k3"), [[0.1931472]])  # e^{-ln 2} + ln 2 - 1 = 0.5 + 0.6931472 - 1
    for kind in ("k1", "k2", "k3"):
        close(kl_penalty(lp, lp, kind), [[0.0]])
    with pytest.raises(ValueError, match="kind"):
        kl_penalty(lp, ref, "k4")


def test_k3_nonnegative_and_k1_k3_unbiased_in_expectation():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 7, generator=g, dtype=D), torch.randn(5, 7, generator=g, dtype=D)
    assert (kl_penalty(a, b, "k3") >= 0).all()
    # exact expectation under pi over a categorical: sum_x pi(x) k(x) == KL(pi || ref) for k1 and k3
    logp, logq = torch.log_softmax(a[0], -1), torch.log_softmax(b[0], -1)  # (V,)
    true_kl = (logp.exp() * (logp - logq)).sum()
    for kind in ("k1", "k3"):
        close((logp.exp() * kl_penalty(logp, logq, kind)).sum(), true_kl, tol=1e-12)


# GAE --------------------------------------------------------------------------------------------------------

REW3, VAL3 = [0.0, 0.0, 1.0], [0.5, 0.6, 0.7]


def test_gae_by_hand():
    # gamma 1, lam 0.95: delta2 = 1 - 0.7 = 0.3, A2 = 0.3; delta1 = 0.7 - 0.6 = 0.1, A1 = 0.1 + 0.95*0.3 = 0.385;
    # delta0 = 0.6 - 0.5 = 0.1, A0 = 0.1 + 0.95*0.385 = 0.46575; returns = A + V
    adv, ret = gae(t([REW3]), t([VAL3]), torch.ones(1, 3), gamma=1.0, lam=0.95)
    close(adv, [[0.46575, 0.385, 0.3]])
    close(ret, [[0.96575, 0.985, 1.0]])
    # gamma 0.9, lam 1 (Monte Carlo): A_t = 0.9^(2-t) - V_t: 0.81 - 0.5, 0.9 - 0.6, 1 - 0.7
    adv, ret = gae(t([REW3]), t([VAL3]), torch.ones(1, 3), gamma=0.9, lam=1.0)
    close(adv, [[0.31, 0.3, 0.3]])
    close(ret, [[0.81, 0.9, 1.0]])


def test_gae_skips_masked_tokens():
    # an environment token in the middle (its reward and value ignored) and padding at the end
    rewards, values = t([[0.0, 5.0, 0.0, 1.0, 9.0]]), t([[0.5, 3.0, 0.6, 0.7, 4.0]])
    mask = t([[1, 0, 1, 1, 0]])
    adv, ret = gae(rewards, values, mask)
    close(adv, [[0.46575, 0.0, 0.385, 0.3, 0.0]])  # the length-3 example above, spread out
    close(ret, [[0.96575, 0.0, 0.985, 1.0, 0.0]])


def test_gae_masked_equals_compacted():
    g = torch.Generator().manual_seed(3)
    B, T = 4, 9
    r, v = torch.randn(B, T, generator=g, dtype=D), torch.randn(B, T, generator=g, dtype=D)
    mask = torch.rand(B, T, generator=g) < 0.6
    adv, ret = gae(r, v, mask, gamma=0.97, lam=0.9)
    for i in range(B):
        m = mask[i]
        a_c, r_c = gae(r[i, m][None], v[i, m][None], torch.ones(1, int(m.sum())), gamma=0.97, lam=0.9)
        close(adv[i, m], a_c[0], tol=1e-12)
        close(ret[i, m], r_c[0], tol=1e-12)
        assert (adv[i, ~m] == 0).all() and (ret[i, ~m] == 0).all()


# value loss and token rewards -------------------------------------------------------------------------------


def test_value_loss_clip_by_hand():
    values, old = t([[0.1, 0.6, 7.0]]), t([[0.5, 0.5, 0.0]])
    returns, mask = t([[0.0, 1.0, 0.0]]), t([[1, 1, 0]])
    # token 0: unclipped (0.1 - 0)^2 = 0.01; v clipped to 0.5 - 0.2 = 0.3: 0.09 -> max 0.09 (clipped chosen)
    # token 1: 0.6 is inside 0.5 +- 0.2: (0.6 - 1)^2 = 0.16 both; token 2 masked
    # 0.5 * (0.09 + 0.16) / 2 = 0.0625
    loss, stats = value_loss(values, old, returns, mask, clip=0.2)
    close(loss, 0.0625)
    close(stats["clip_frac"], 0.5)
    close(value_loss(values, old, returns, mask, clip=None)[0], 0.5 * (0.01 + 0.16) / 2)
    # with a global token count of 4 (this micro-batch holds 2 of them): 0.5 * 0.25 / 4
    close(value_loss(values, old, returns, mask, num_items=4)[0], 0.03125)


def test_token_rewards_by_hand():
    scores = t([1.0, 2.0, 3.0])
    mask = t([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])  # row 1 has an environment token; row 2 is empty
    kl = t([[0.1, 0.2, 0.3, 0.4]] * 3)
    # row 0: last model token at 1: [-0.5*0.1, 1 - 0.5*0.2, 0, 0]; row 1: last at 2: [-0.05, 0, 2 - 0.15, 0]
    expected = [[-0.05, 0.9, 0.0, 0.0], [-0.05, 0.0, 1.85, 0.0], [0.0, 0.0, 0.0, 0.0]]
    close(token_rewards(scores, mask, kl=kl, kl_coef=0.5), expected)
    close(token_rewards(scores, mask), [[0, 1.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 0]])


# logits helpers ---------------------------------------------------------------------------------------------


def test_entropy_and_log_softmax_by_hand():
    logits = t(
        [
            [
                [0.0, 0.0, 0.0, 0.0],
                [0.0, -math.inf, -math.inf, -math.inf],
                [0.0, math.log(3), -math.inf, -math.inf],
            ]
        ]
    )
    # uniform over 4: ln 4; one-hot: 0; p = (0.25, 0.75): 0.25 ln 4 + 0.75 ln(4/3) = 0.5623351
    close(entropy_from_logits(logits), [[1.3862944, 0.0, 0.5623351]])
    # log p(index): ln 0.25, ln 1, ln 0.75
    close(selective_log_softmax(logits, torch.tensor([[0, 0, 1]])), [[-1.3862944, 0.0, -0.2876821]])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_logits_helpers_match_naive(dtype):
    g = torch.Generator().manual_seed(4)
    logits = (3 * torch.randn(3, 5, 11, generator=g, dtype=D)).to(dtype)
    index = torch.randint(0, 11, (3, 5), generator=g)
    ref_logp = torch.log_softmax(logits.double(), -1)  # (B, T, V)
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
    close(selective_log_softmax(logits, index), ref_logp.gather(-1, index[..., None])[..., 0], tol=tol)
    close(entropy_from_logits(logits, chunk_size=4), -(ref_logp.exp() * ref_logp).sum(-1), tol=tol)
