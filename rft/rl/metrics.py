"""What the RL loops log, computed one way for all of them: `reward/*`, `grader/*` and `rollout/*` of a
step's samples (`reward_metrics`), the samples themselves (`rollout_row`), and the `loss/*` of its optimizer
updates (`UpdateMetrics`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

from rft.eval.heldout import grade_breakdown
from rft.losses import mismatch_stats
from rft.rl.distributed import Dist
from rft.rollout import Trajectory

__all__ = [
    "reward_metrics",
    "tool_metrics",
    "per_suite_rewards",
    "rollout_row",
    "UpdateMetrics",
    "mismatch_metrics",
]


def reward_metrics(
    trajs: list[Trajectory], rewards: torch.Tensor, valid: torch.Tensor, suite_ids: str | Sequence[str]
) -> dict[str, float]:
    """`reward/*`, `grader/*`, `rollout/*` of a step's samples; rewards, valid (N,). A `multi` grader's
    sub-graders: `reward/grader/<name>`; answers the grader could not read: `grader/parse_error_rate`
    (`rft.eval.heldout.grade_breakdown`); `tools/*` for tool-calling episodes (`tool_metrics`). One suite:
    `reward/<suite>`; a mix of several (`suite_ids`): `reward/<suite>/count` (the step's samples of it) and
    `reward/<suite>/mean` (over its graded ones; left out when it has none)."""
    ids = [suite_ids] if isinstance(suite_ids, str) else list(suite_ids)
    n = len(trajs)
    ok = valid.sum().clamp(min=1)
    per_suite = (
        {f"reward/{ids[0]}": float(sum(t.reward for t in trajs if not t.failed) / max(1, int(ok)))}
        if len(ids) == 1
        else per_suite_rewards(trajs, ids)
    )
    lengths = [t.completion_tokens for t in trajs]
    breakdown = grade_breakdown(trajs)
    return {
        "reward/mean": float((rewards * valid).sum() / ok),
        **per_suite,
        "reward/pass_rate": sum(t.reward >= 1.0 for t in trajs) / n,
        "grader/error_rate": sum(t.status == "error" for t in trajs) / n,
        "grader/timeout_rate": sum(t.status == "timeout" for t in trajs) / n,
        "grader/no_answer_rate": sum(t.status == "no_answer" for t in trajs) / n,
        "rollout/completion_len": sum(lengths) / n,
        "rollout/overlong_frac": sum(t.overlong for t in trajs) / n,
        "rollout/turns": sum(t.turns for t in trajs) / n,
        "grader/parse_error_rate": breakdown.pop("parse_error_rate"),
        **{f"reward/{k}": v for k, v in breakdown.items()},
        **tool_metrics(trajs),
    }


def tool_metrics(trajs: list[Trajectory]) -> dict[str, float]:
    """`tools/*` of the episodes of `tools` suites (their last info's ``tool_stats``); {} without any:
    `tools/calls_per_episode`, `tools/error_rate` (calls that failed or were refused: unknown tool, bad
    arguments, an error in the tool; over the calls), `tools/parse_failures` (calls that did not parse,
    per episode)."""
    stats = [t.info["tool_stats"] for t in trajs if "tool_stats" in t.info]
    if not stats:
        return {}
    calls = sum(s["calls"] for s in stats)
    return {
        "tools/calls_per_episode": calls / len(stats),
        "tools/error_rate": sum(s["errors"] for s in stats) / max(1, calls),
        "tools/parse_failures": sum(s["parse_failures"] for s in stats) / len(stats),
    }


def per_suite_rewards(trajs: list[Trajectory], suite_ids: Sequence[str]) -> dict[str, float]:
    """`reward/<suite>/count` and `reward/<suite>/mean` of each of `suite_ids` (a trajectory's suite is its
    env's, ``info["suite"]``); the mean is over samples whose grade did not fail."""
    out: dict[str, float] = {}
    for sid in suite_ids:
        mine = [t for t in trajs if t.info.get("suite") == sid]
        graded = [t.reward for t in mine if not t.failed]
        out[f"reward/{sid}/count"] = float(len(mine))
        if graded:
            out[f"reward/{sid}/mean"] = sum(graded) / len(graded)
    return out


def rollout_row(t: Trajectory) -> dict[str, Any]:
    """One line of rollouts.jsonl: the group, the last prompt message, and the trajectory's record."""
    row = t.record()
    prompt = row.pop("messages")
    return {"group": t.group, "prompt": prompt[-1]["content"] if prompt else "", **row}


class UpdateMetrics:
    """The `loss/*` metrics of one step's optimizer updates, the same way in every loop.

    - Losses (`loss/policy`: the clipped policy loss alone; `loss/kl`, `loss/value`: the other terms, before
      their coefficients) and grad norms are means over the optimizer updates actually taken. An update's
      loss is its minibatch's: the sum of its micro-batches' parts (each normalised by the whole minibatch).
    - Per-token diagnostics (`loss/clip_frac`, `loss/approx_kl`, `loss/ratio_mean`, ...) are means over the
      model tokens of the micro-batches that ran.
    - A minibatch with no trainable rows is skipped (no optimizer step) and counts nowhere;
      `loss/updates` says how many updates were taken.

    Several processes: each rank adds its micro-batches; `result` adds up the ranks' parts (all ranks call
    it). Grad norms are of the reduced gradients, the same on every rank, so they are not added up.
    """

    def __init__(self) -> None:
        self.losses: defaultdict[str, float] = defaultdict(float)  # summed over micro-batches
        self.weighted: defaultdict[str, float] = defaultdict(float)  # token-weighted diagnostics
        self.norms: defaultdict[str, float] = defaultdict(float)  # summed over updates
        self.tokens = 0.0
        self.updates = 0

    def micro(self, tokens: float, losses: dict[str, float], diagnostics: dict[str, float]) -> None:
        """One micro-batch: its part of each loss term, and its diagnostics (token means over `tokens`)."""
        for k, v in losses.items():
            self.losses[f"loss/{k}"] += v
        for k, v in diagnostics.items():
            self.weighted[f"loss/{k}"] += v * tokens
        self.tokens += tokens

    def update(self, grad_norms: dict[str, float]) -> None:
        """One optimizer step taken, with its gradients' norms (before clipping)."""
        for k, v in grad_norms.items():
            self.norms[f"loss/{k}"] += v
        self.updates += 1

    def result(self, dist: Dist | None = None) -> dict[str, float]:
        """The step's `loss/*` metrics, over every rank's micro-batches."""
        losses, weighted, tokens = dict(self.losses), dict(self.weighted), self.tokens
        if dist is not None and dist.world > 1:
            summed = dist.add_up({f"L{k}": v for k, v in losses.items()} | {f"W{k}": v for k, v in weighted.items()}
                                 | {"tokens": tokens})  # fmt: skip
            tokens = summed.pop("tokens")
            losses = {k[1:]: v for k, v in summed.items() if k[0] == "L"}
            weighted = {k[1:]: v for k, v in summed.items() if k[0] == "W"}
        per_update = {k: v / max(1, self.updates) for k, v in (losses | dict(self.norms)).items()}
        per_token = {k: v / max(1.0, tokens) for k, v in weighted.items()}
        return per_update | per_token | {"loss/updates": float(self.updates)}


def mismatch_metrics(
    trainer_lp: torch.Tensor,
    sampler_lp: torch.Tensor,
    mask: torch.Tensor,
    mis: str,
    band: tuple[float, float],
    dist: Dist | None = None,
) -> dict[str, float]:
    """`mismatch/*` of a step (`rft.losses.mismatch_stats`) over every rank's tokens under `mask`: the
    trainer's log-probs before the update vs the sampler's, (N, T) each. {} when the mask is empty."""
    m = mask.bool()
    st = {k: float(v) for k, v in mismatch_stats(trainer_lp, sampler_lp, m, mis, band).items()}
    tokens, rows = float(m.sum()), float(m.any(-1).sum())
    parts = [(st, tokens, rows)] if dist is None or dist.world == 1 else dist.all_gather((st, tokens, rows))
    n_tok, n_row = sum(p[1] for p in parts), sum(p[2] for p in parts)
    if n_tok == 0:  # nothing trained this step (every group's rewards equal): nothing measured, no zeros
        return {}
    means = ("kl", "kl_k1", "is_ratio_mean", "masked_frac")  # token means
    out = {k: sum(p[0][k] * p[1] for p in parts) / n_tok for k in means}
    out["seq_masked_frac"] = sum(p[0]["seq_masked_frac"] * p[2] for p in parts) / n_row
    live = [p for p in parts if p[1] > 0]
    out["is_ratio_max"] = max(p[0]["is_ratio_max"] for p in live)
    out["is_ratio_min"] = min(p[0]["is_ratio_min"] for p in live)
    return {f"mismatch/{k}": v for k, v in out.items()}
