"""The policy losses and advantage estimators GRPO can use, by name, plus your own by import path.

`loss.name` is a built-in (`clip`, `gspo`, `cispo`) or `module:callable` with `rft.losses.policy_loss`'s
signature: `(logprobs, old_logprobs, advantages, mask, eps_low, eps_high, agg, num_items, max_tokens) ->
(loss, stats)`, where stats holds at least `clip_frac`, `approx_kl` and `ratio_mean` (detached scalars).
`loss.advantage` is a built-in (`grpo`, `rloo`, `reinforce_pp`) or `module:callable` taking `(rewards (N,),
group_size, valid (N,) bool)` and returning advantages (N,), 0 where `valid` is False.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from rft.losses import (
    cispo_loss,
    group_advantages,
    gspo_loss,
    policy_loss,
    reinforce_pp_advantages,
    rloo_advantages,
)

__all__ = ["POLICY_LOSSES", "ADVANTAGES", "EPS_DEFAULTS", "resolve_loss", "resolve_advantage", "batch_wide"]

POLICY_LOSSES: dict[str, Callable[..., Any]] = {"clip": policy_loss, "gspo": gspo_loss, "cispo": cispo_loss}
ADVANTAGES: dict[str, Callable[..., Any]] = {
    "grpo": group_advantages, "rloo": rloo_advantages, "reinforce_pp": reinforce_pp_advantages,
}  # fmt: skip
# (eps_low, eps_high) when a recipe sets neither: the clipped surrogate's DAPO clip-higher, the GSPO paper's
# sequence-ratio range, and CISPO's weight bound [0, 5] (ScaleRL's eps_max = 5)
EPS_DEFAULTS: dict[str, tuple[float, float]] = {
    "clip": (0.2, 0.28),
    "gspo": (3e-4, 4e-4),
    "cispo": (1.0, 4.0),
}


def _import(path: str, what: str, builtins: dict[str, Any]) -> Callable[..., Any]:
    if ":" not in path:
        raise ValueError(
            f"{what} {path!r} is not a built-in ({', '.join(builtins)}) nor an import path 'module:callable'"
        )
    module, _, name = path.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(
            f"{what} {path!r}: cannot import it ({e}); the module must be importable (on PYTHONPATH)"
        ) from e
    if not callable(fn):
        raise ValueError(f"{what} {path!r} is not callable")
    return fn  # type: ignore[no-any-return]


def resolve_loss(name: str) -> Callable[..., Any]:
    """The policy loss called `name` (a built-in or `module:callable`); ValueError saying how to fix it."""
    return POLICY_LOSSES.get(name) or _import(name, "loss.name", POLICY_LOSSES)


def resolve_advantage(name: str) -> Callable[..., Any]:
    """The advantage estimator called `name` (a built-in or `module:callable`)."""
    return ADVANTAGES.get(name) or _import(name, "loss.advantage", ADVANTAGES)


def batch_wide(advantage: str, scale_rewards: str) -> bool:
    """Whether the estimator needs every process's rewards (batch statistics), not just its own groups'."""
    return advantage == "reinforce_pp" or (advantage == "grpo" and scale_rewards == "batch")
