"""A policy loss and an advantage estimator of a user's own, loaded by import path in tests/test_grpo_losses.py."""

from __future__ import annotations

import torch

from rft.losses import policy_loss

CALLS = {"loss": 0, "advantage": 0}


def plain_reinforce(logprobs, old_logprobs, advantages, mask, eps_low, eps_high, agg, num_items=None, max_tokens=None):
    """-A log pi per token (REINFORCE), with the clipped loss's stats for the logs."""
    CALLS["loss"] += 1
    _, stats = policy_loss(logprobs, old_logprobs, advantages, mask, eps_low, eps_high, agg, num_items, max_tokens)
    from rft.losses import aggregate

    adv = advantages.unsqueeze(-1) if advantages.ndim == 1 else advantages
    return aggregate(-adv * logprobs, mask, agg, num_items, max_tokens), stats


def centred(rewards: torch.Tensor, group_size: int, valid: torch.Tensor) -> torch.Tensor:
    """Reward minus the group mean, no scaling."""
    CALLS["advantage"] += 1
    r = torch.where(valid, rewards, torch.zeros_like(rewards)).view(-1, group_size)
    n = valid.view(-1, group_size).sum(1, keepdim=True).clamp(min=1)
    adv = r - r.sum(1, keepdim=True) / n
    return torch.where(valid, adv.view(-1), torch.zeros_like(rewards))


not_callable = 3
