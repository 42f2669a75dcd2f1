"""Sampler/trainer mismatch: TIS weights, MIS masks and the mismatch metrics in rft.losses, against numbers
worked out by hand (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from rft.losses import mismatch_stats, policy_loss, rollout_correction

D = torch.float64
L2, L3 = math.log(2), math.log(3)


def t(x):
    return torch.tensor(x, dtype=D)


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=D), torch.as_tensor(b, dtype=D), atol=tol, rtol=0)


# trainer minus sampler log-probs: row 0 ratios (2, 1/2, 1), row 1 (3, 3, padding)
SAMPLER = t([[-1.0, -2.0, -0.5], [-3.0, -1.0, -7.0]])
TRAINER = SAMPLER + t([[L2, -L2, 0.0], [L3, L3, 50.0]])  # the padding's huge ratio must not count
MASK = t([[1, 1, 1], [1, 1, 0]])


def test_token_tis_truncates_each_ratio_at_the_cap():
    w = rollout_correction(TRAINER, SAMPLER, MASK, tis="token", cap=2.0)
    close(w, [[2, 0.5, 1], [2, 2, 0]])  # 3 -> 2; padding 0
    close(rollout_correction(TRAINER, SAMPLER, MASK, tis="token", cap=10.0), [[2, 0.5, 1], [3, 3, 0]])


def test_sequence_tis_uses_the_product_and_geometric_the_mean_log_ratio():
    # row 0: product 2 * 1/2 * 1 = 1, geometric mean 1; row 1: product 9 -> cap 2, geometric mean 3 -> 2
    close(rollout_correction(TRAINER, SAMPLER, MASK, tis="sequence", cap=2.0), [[1, 1, 1], [2, 2, 0]])
    close(rollout_correction(TRAINER, SAMPLER, MASK, tis="geometric", cap=2.5), [[1, 1, 1], [2.5, 2.5, 0]])
    close(rollout_correction(TRAINER, SAMPLER, MASK, tis="sequence", cap=20.0), [[1, 1, 1], [9, 9, 0]])


def test_token_mis_drops_tokens_outside_the_band():
    # band [0.6, 2.5]: 1/2 and both 3s leave it; without tis the kept tokens weigh 1
    w = rollout_correction(TRAINER, SAMPLER, MASK, tis="none", mis="token", band=(0.6, 2.5))
    close(w, [[1, 0, 1], [0, 0, 0]])
    # with token tis (cap 2) the kept tokens carry their truncated ratios
    w = rollout_correction(TRAINER, SAMPLER, MASK, tis="token", cap=2.0, mis="token", band=(0.45, 2.2))
    close(w, [[2, 0.5, 1], [0, 0, 0]])


def test_geometric_mis_drops_whole_rows():
    # geometric means: row 0 1 (kept), row 1 3 (dropped by the band [0.5, 2])
    w = rollout_correction(TRAINER, SAMPLER, MASK, tis="token", cap=2.0, mis="geometric", band=(0.5, 2.0))
    close(w, [[2, 0.5, 1], [0, 0, 0]])
    w = rollout_correction(TRAINER, SAMPLER, MASK, tis="none", mis="geometric", band=(0.5, 4.0))
    close(w, [[1, 1, 1], [1, 1, 0]])


def test_mismatch_stats_by_hand():
    s = mismatch_stats(TRAINER, SAMPLER, MASK)
    # k3 = rho - 1 - log rho: rho 2: 1 - ln 2; 1/2: ln 2 - 1/2; 1: 0; 3: 2 - ln 3 (twice); mean of 5 tokens
    close(s["kl"], ((1 - L2) + (L2 - 0.5) + 0 + 2 * (2 - L3)) / 5)
    close(s["kl_k1"], (-L2 + L2 + 0 - 2 * L3) / 5)  # mean of -log rho
    close(s["is_ratio_mean"], (2 + 0.5 + 1 + 3 + 3) / 5)
    close(s["is_ratio_max"], 3.0)
    close(s["is_ratio_min"], 0.5)
    close(s["masked_frac"], 0.0)
    close(s["seq_masked_frac"], 0.0)
    s = mismatch_stats(TRAINER, SAMPLER, MASK, mis="token", band=(0.6, 2.5))
    close(s["masked_frac"], 3 / 5)  # 1/2, 3, 3
    close(s["seq_masked_frac"], 0.0)
    s = mismatch_stats(TRAINER, SAMPLER, MASK, mis="geometric", band=(0.5, 2.0))
    close(s["masked_frac"], 2 / 5)  # row 1's two tokens
    close(s["seq_masked_frac"], 1 / 2)


def test_equal_policies_give_unit_weights_and_zero_kl():
    w = rollout_correction(SAMPLER, SAMPLER, MASK, tis="token", mis="geometric")
    close(w, MASK)
    s = mismatch_stats(SAMPLER, SAMPLER, MASK)
    close(s["kl"], 0.0)
    close(s["is_ratio_max"], 1.0)


def test_an_empty_mask_gives_zero_weights_and_neutral_stats():
    empty = torch.zeros_like(MASK)
    close(rollout_correction(TRAINER, SAMPLER, empty), torch.zeros_like(MASK))
    s = mismatch_stats(TRAINER, SAMPLER, empty, mis="geometric")
    assert all(torch.isfinite(v) for v in s.values())
    close(s["kl"], 0.0)
    close(s["is_ratio_min"], 1.0)
    close(s["seq_masked_frac"], 0.0)


def test_kl_resolves_tiny_gaps_in_float32_inputs():
    """Kernels that agree to ~1e-6 in log-probability: k3 ~ x^2 / 2 = 5e-13 must not round to 0."""
    sampler = torch.tensor([[-1.0, -2.0]], dtype=torch.float32)
    x = torch.tensor([[1e-6, -1e-6]], dtype=torch.float32)
    s = mismatch_stats(sampler + x, sampler, torch.ones_like(sampler))
    x64 = ((sampler + x).double() - sampler.double())[0]
    close(s["kl"], float((x64**2 / 2).mean()), tol=1e-15)
    assert s["kl"] > 0


def test_huge_log_ratios_are_clamped_not_inf():
    s = mismatch_stats(t([[0.0]]), t([[-100.0]]), t([[1.0]]))
    close(s["is_ratio_max"], math.exp(20), tol=1.0)
    w = rollout_correction(t([[0.0]]), t([[-100.0]]), t([[1.0]]), tis="sequence", cap=2.0)
    close(w, [[2.0]])


def test_weights_times_the_advantage_scale_the_clipped_loss_per_token():
    """What GRPO does with the weights: the clipped surrogate is linear in a non-negative per-token factor
    on the advantage, so weighting the advantage weighs each token's loss. On-policy (ratio 1): per-token
    loss -w * A; token-mean (dapo) over 5 tokens."""
    w = rollout_correction(TRAINER, SAMPLER, MASK, tis="token", cap=2.0)  # [[2, .5, 1], [2, 2, 0]]
    lp = SAMPLER.clone().requires_grad_(True)
    adv = t([1.0, -1.0]).unsqueeze(-1) * w  # (B, T)
    loss, _ = policy_loss(lp, lp.detach(), adv, MASK, agg="dapo")
    close(loss, (-(2 + 0.5 + 1) + (2 + 2)) / 5)
    loss.backward()
    close(lp.grad, t([[-2, -0.5, -1], [2, 2, 0]]) / 5)  # d(-r * A * w)/d logp at r = 1


@pytest.mark.parametrize("kw", [{"tis": "bogus"}, {"mis": "seq"}, {"cap": 0.0}, {"band": (1.0, 2.0)}])
def test_bad_settings_raise(kw):
    with pytest.raises(ValueError):
        rollout_correction(TRAINER, SAMPLER, MASK, **kw)


def test_step_metrics_are_named_and_absent_when_nothing_was_trained():
    from rft.rl.metrics import mismatch_metrics

    got = mismatch_metrics(TRAINER, SAMPLER, MASK, "geometric", (0.5, 2.0))
    assert got["mismatch/seq_masked_frac"] == pytest.approx(0.5) and got[
        "mismatch/is_ratio_max"
    ] == pytest.approx(3)
    assert mismatch_metrics(TRAINER, SAMPLER, torch.zeros_like(MASK), "none", (0.5, 2.0)) == {}
