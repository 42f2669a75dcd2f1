"""Pure tensor maths for RL fine-tuning: masked statistics, advantages, clipped losses, KL estimators.

No model or trainer code here. Masks are 0/1 (or bool); positions with mask 0 never contribute, even if they
hold NaN or inf. Half-precision inputs (bf16/fp16) are computed, and returned, in float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "aggregate",
    "cispo_loss",
    "entropy_from_logits",
    "gae",
    "group_advantages",
    "gspo_loss",
    "kl_penalty",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "mismatch_stats",
    "policy_loss",
    "reinforce_pp_advantages",
    "rloo_advantages",
    "rollout_correction",
    "selective_log_softmax",
    "token_rewards",
    "value_loss",
    "zero_variance_groups",
]

_AGGS = ("grpo", "dr_grpo", "dapo")
IS_LEVELS = ("none", "token", "sequence", "geometric")  # rollout_correction's `tis`
MASK_LEVELS = ("none", "token", "geometric")  # rollout_correction's `mis`
_LOG_BOUND = 20.0  # log-ratios are clamped to +-20 before exp (verl's SAFETY_BOUND): no inf weights


def _up(x: torch.Tensor) -> torch.Tensor:
    """Upcast half precision to float32; leave float32/float64 alone."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _norm(n: int | float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A normaliser as a tensor of `like`'s dtype/device, at least 1."""
    return torch.as_tensor(n, dtype=like.dtype, device=like.device).clamp(min=1.0)


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of `x` where `mask` is set (over all entries, or along `dim`)."""
    x = torch.where(mask.bool(), x, torch.zeros_like(x))
    return x.sum() if dim is None else x.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` over entries where `mask` is set; 0 (not NaN) where the mask is empty."""
    count = masked_sum(torch.ones_like(x), mask, dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of `x` over entries where `mask` is set (Bessel-corrected if `unbiased`); 0 for < 2 entries."""
    n = masked_sum(torch.ones_like(x), mask)
    var = masked_mean((x - masked_mean(x, mask)) ** 2, mask)
    if unbiased:
        var = torch.where(n > 1, var * n / (n - 1).clamp(min=1.0), torch.zeros_like(var))
    return var


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over the masked entries; the mean is added back if not `shift_mean`.

    Same semantics as TRL's former `core.masked_whiten` (unbiased variance). Masked-out entries become 0.
    """
    x = _up(x)
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(mask.bool(), out, torch.zeros_like(out))


def _groups(rewards: torch.Tensor, group_size: int, valid: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """Rewards and validity as (P, G); NaN rewards count as invalid."""
    if group_size < 1 or rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be 1-D with a length ({tuple(rewards.shape)}) divisible by group_size ({group_size})"
        )
    r = _up(rewards)
    v = ~torch.isnan(r) if valid is None else valid.bool() & ~torch.isnan(r)
    v = v.view(-1, group_size)  # (P, G)
    r = torch.where(v, r.view(-1, group_size), torch.zeros_like(r.view(-1, group_size)))  # (P, G)
    return r, v


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    scale: str = "group",
    eps: float = 1e-4,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """GRPO advantages: reward minus its group's mean, divided by a std unless `scale="none"`.

    rewards (N,) hold consecutive groups of `group_size`. `scale`: "group" (std of the group), "batch" (std of
    all valid rewards), "none". Stds are unbiased and `eps` is added to them, as in TRL 1.16
    (`trl/trainer/grpo_trainer.py` L2764-2787, `nanstd` in `trl/trainer/utils.py` L1021-1043). Samples with
    `valid` False (or a NaN reward) are left out of the statistics and get 0, as do groups with < 2 valid samples
    (TRL: NaN reward -> NaN std -> `nan_to_num` 0, L2810). Returns (N,).
    """
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    r, v = _groups(rewards, group_size, valid)  # (P, G)
    n = v.sum(1, keepdim=True).to(r.dtype)  # (P, 1)
    mean = masked_mean(r, v, dim=1).unsqueeze(1)  # (P, 1)
    adv = r - mean  # (P, G)
    if scale == "group":
        var = masked_sum((r - mean) ** 2, v, dim=1).unsqueeze(1) / (n - 1).clamp(min=1.0)  # (P, 1)
        adv = adv / (var.sqrt() + eps)
    elif scale == "batch":
        adv = adv / (masked_var(r, v, unbiased=True).sqrt() + eps)
    keep = v & (n >= 2)  # (P, G)
    return torch.where(keep, adv, torch.zeros_like(adv)).view(-1)  # (N,)


def rloo_advantages(
    rewards: torch.Tensor, group_size: int, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """RLOO (Ahmadian et al. 2024): each reward minus the mean of its group's *other* valid rewards, which is
    n/(n-1) * (r - group mean) for n valid samples. No std scaling. Invalid samples (and groups with < 2 valid
    ones) get 0. (N,) -> (N,)."""
    r, v = _groups(rewards, group_size, valid)  # (P, G)
    n = v.sum(1, keepdim=True).to(r.dtype)  # (P, 1)
    total = masked_sum(r, v, dim=1).unsqueeze(1)  # (P, 1)
    adv = r - (total - r) / (n - 1).clamp(min=1.0)  # (P, G)
    keep = v & (n >= 2)  # (P, G)
    return torch.where(keep, adv, torch.zeros_like(adv)).view(-1)  # (N,)


def reinforce_pp_advantages(
    rewards: torch.Tensor, group_size: int, valid: torch.Tensor | None = None, eps: float = 1e-8
) -> torch.Tensor:
    """REINFORCE++-baseline (Hu et al. 2025, arXiv 2501.03262): the reward minus its group's mean, then
    whitened over every valid sample of the batch (the batch mean subtracted again and divided by the batch's
    unbiased std + `eps`), so the scale comes from the whole batch instead of each group. Invalid samples and
    groups with < 2 valid ones get 0 and stay out of the batch statistics. (N,) -> (N,)."""
    r, v = _groups(rewards, group_size, valid)  # (P, G)
    n = v.sum(1, keepdim=True)  # (P, 1)
    keep = v & (n >= 2)  # (P, G)
    centred = r - masked_mean(r, v, dim=1).unsqueeze(1)  # (P, G)
    mean, std = masked_mean(centred, keep), masked_var(centred, keep).sqrt()
    adv = (centred - mean) / (std + eps)  # (P, G)
    return torch.where(keep, adv, torch.zeros_like(adv)).view(-1)  # (N,)


def zero_variance_groups(
    rewards: torch.Tensor, group_size: int, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """(num_prompts,) bool: groups whose valid rewards are all equal (so also groups with < 2 valid samples)."""
    r, v = _groups(rewards, group_size, valid)  # (P, G)
    hi = torch.where(v, r, torch.full_like(r, -torch.inf)).amax(1)  # (P,)
    lo = torch.where(v, r, torch.full_like(r, torch.inf)).amin(1)  # (P,)
    return (hi == lo) | (v.sum(1) < 2)


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    agg: str = "grpo",
    num_items: int | float | torch.Tensor | None = None,
    max_tokens: int | None = None,
) -> torch.Tensor:
    """A (B, T) per-token loss to a scalar: "grpo" (mean over each sequence, then over sequences), "dr_grpo"
    (sum / (B * max_tokens)), "dapo" (sum / number of tokens). `num_items` replaces the micro-batch
    normaliser (B, or the token count for dapo) with the whole batch's."""
    if agg not in _AGGS:
        raise ValueError(f"agg must be one of {_AGGS}, got {agg!r}")
    if agg == "dr_grpo" and max_tokens is None:
        raise ValueError("agg='dr_grpo' needs max_tokens (the generation length limit)")
    m = mask.bool()  # (B, T)
    B = per_token.shape[0]
    if agg == "grpo":
        seq = masked_mean(per_token, m, dim=-1)  # (B,)
        return seq.sum() / _norm(B if num_items is None else num_items, seq)
    if agg == "dr_grpo":
        assert max_tokens is not None
        return masked_sum(per_token, m) / (
            _norm(B if num_items is None else num_items, per_token) * max_tokens
        )
    n = m.sum() if num_items is None else num_items
    return masked_sum(per_token, m) / _norm(n, per_token)


def _log_ratio(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, m: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logprobs upcast, log(pi / pi_old) with 0 off the mask): (B, T) each."""
    lp = _up(logprobs)
    return lp, torch.where(m, lp - _up(old_logprobs).to(lp.dtype), torch.zeros_like(lp))


@torch.no_grad()
def _clip_stats(
    log_ratio: torch.Tensor, m: torch.Tensor, low: torch.Tensor, high: torch.Tensor, ratio: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The losses' detached token-mean stats: clip fractions (low, high: (B, T) bool), the mean of `ratio`
    (B, T), and approx_kl, k3 of KL(old || new) = (r - 1) - log r, from the token log-ratios (B, T)."""
    f = log_ratio.dtype
    return {
        "clip_frac": masked_mean((low | high).to(f), m),
        "clip_frac_low": masked_mean(low.to(f), m),
        "clip_frac_high": masked_mean(high.to(f), m),
        "ratio_mean": masked_mean(ratio, m),
        "approx_kl": masked_mean((torch.exp(log_ratio) - 1) - log_ratio, m),
    }


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    agg: str = "grpo",
    num_items: int | float | torch.Tensor | None = None,
    max_tokens: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate, -min(r*A, clip(r, 1-eps_low, 1+eps_high)*A) per token, aggregated by `agg`.

    logprobs, old_logprobs, mask (B, T); advantages (B,) or (B, T). `agg`: "grpo" (mean over each sequence, then
    over sequences), "dr_grpo" (sum / (B * max_tokens)), "dapo" (sum / number of tokens). `num_items` replaces
    the micro-batch normaliser (B, or the token count for dapo) with the whole batch's, so micro-batch losses
    sum to the full-batch loss. Stats (detached, this micro-batch's token means): clip_frac (and _low, _high),
    ratio_mean, approx_kl = k3 of KL(old || new), i.e. (r - 1) - log r (cleanrl `ppo.py`), >= 0.
    """
    eps_high = eps_low if eps_high is None else eps_high
    m = mask.bool()  # (B, T)
    lp, log_ratio = _log_ratio(logprobs, old_logprobs, m)  # (B, T) each
    ratio = torch.exp(log_ratio)  # (B, T)
    adv = _up(advantages).to(lp.dtype)
    adv = adv.unsqueeze(-1) if adv.ndim == 1 else adv  # (B, 1) or (B, T)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)  # (B, T)
    per_token = -torch.min(ratio * adv, clipped * adv)  # (B, T)

    loss = aggregate(per_token, m, agg, num_items, max_tokens)
    # same regions as TRL's clip_ratio/* metrics (grpo_trainer.py L3274-3276)
    low, high = (ratio < 1 - eps_low) & (adv < 0), (ratio > 1 + eps_high) & (adv > 0)  # (B, T) each
    return loss, _clip_stats(log_ratio, m, low, high, ratio.detach())


def gspo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 3e-4,
    eps_high: float | None = 4e-4,
    agg: str = "grpo",
    num_items: int | float | torch.Tensor | None = None,
    max_tokens: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GSPO (Zheng et al. 2025, arXiv 2507.18071): one importance ratio per sequence, the geometric mean of its
    tokens' ratios, s = exp(mean_t log(pi/pi_old)), clipped at the sequence level: -min(s*A, clip(s, 1-eps_low,
    1+eps_high)*A), the same value at each of the sequence's tokens, then aggregated by `agg` ("grpo", the
    paper's per-sequence mean, by default). The paper's clip range is 3e-4 / 4e-4: sequence ratios stay far
    closer to 1 than token ratios. As TRL's `importance_sampling_level="sequence"`.

    logprobs, old_logprobs, mask (B, T); advantages (B,) (one per sequence). Stats as `policy_loss`'s, with the
    clip fractions counted per token of clipped sequences."""
    if advantages.ndim != 1:
        raise ValueError(f"gspo needs one advantage per sequence, (B,), got shape {tuple(advantages.shape)}")
    eps_high = eps_low if eps_high is None else eps_high
    m = mask.bool()  # (B, T)
    lp, log_ratio = _log_ratio(logprobs, old_logprobs, m)  # (B, T) each
    seq_ratio = torch.exp(masked_mean(log_ratio, m, dim=-1)).unsqueeze(-1)  # (B, 1)
    adv = _up(advantages).to(lp.dtype).unsqueeze(-1)  # (B, 1)
    clipped = torch.clamp(seq_ratio, 1 - eps_low, 1 + eps_high)  # (B, 1)
    per_token = (-torch.min(seq_ratio * adv, clipped * adv)).expand_as(lp)  # (B, T)
    loss = aggregate(per_token, m, agg, num_items, max_tokens)
    low = ((seq_ratio < 1 - eps_low) & (adv < 0)).expand_as(m)  # (B, T)
    high = ((seq_ratio > 1 + eps_high) & (adv > 0)).expand_as(m)  # (B, T)
    return loss, _clip_stats(log_ratio, m, low, high, seq_ratio.detach().expand_as(lp))


def cispo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 1.0,
    eps_high: float | None = 4.0,
    agg: str = "dapo",
    num_items: int | float | torch.Tensor | None = None,
    max_tokens: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CISPO (MiniMax-M1, arXiv 2506.13585): clip the importance weight, not the update, and keep the gradient
    of every token: -sg(clip(r, 1-eps_low, 1+eps_high)) * A * log pi per token, aggregated by `agg` ("dapo", a
    token mean, by default). The defaults bound the weight to [0, 5] (no lower bound; ScaleRL's eps_max = 5,
    TRL's `epsilon_high=5.0` for `loss_type="cispo"`). Unlike the clipped surrogate, a token whose ratio is
    clipped still gets a gradient (weighted by the bound).

    logprobs, old_logprobs, mask (B, T); advantages (B,) or (B, T). Stats as `policy_loss`'s; clip_frac counts
    the tokens whose weight was clipped."""
    eps_high = eps_low if eps_high is None else eps_high
    m = mask.bool()  # (B, T)
    lp, log_ratio = _log_ratio(logprobs, old_logprobs, m)  # (B, T) each
    ratio = torch.exp(log_ratio)  # (B, T)
    adv = _up(advantages).to(lp.dtype)
    adv = adv.unsqueeze(-1) if adv.ndim == 1 else adv  # (B, 1) or (B, T)
    weight = torch.clamp(ratio, 1 - eps_low, 1 + eps_high).detach()  # (B, T)
    per_token = torch.where(m, -weight * adv * lp, torch.zeros_like(lp))  # (B, T)
    loss = aggregate(per_token, m, agg, num_items, max_tokens)
    low, high = ratio < 1 - eps_low, ratio > 1 + eps_high  # (B, T) each
    return loss, _clip_stats(log_ratio, m, low, high, ratio.detach())


def _sampler_log_ratio(
    trainer_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, m: torch.Tensor
) -> torch.Tensor:
    """log rho = log pi_trainer - log pi_sampler, detached, clamped to +-20, 0 off the mask: (B, T)."""
    lr = _up(trainer_logprobs).detach() - _up(sampler_logprobs).detach().to(_up(trainer_logprobs).dtype)
    return torch.where(m, lr.clamp(-_LOG_BOUND, _LOG_BOUND), torch.zeros_like(lr))


@torch.no_grad()
def rollout_correction(
    trainer_logprobs: torch.Tensor,
    sampler_logprobs: torch.Tensor,
    mask: torch.Tensor,
    tis: str = "token",
    cap: float = 2.0,
    mis: str = "none",
    band: tuple[float, float] = (0.5, 2.0),
) -> torch.Tensor:
    """Per-token weights (B, T), detached, that correct a policy loss for tokens drawn by a sampler whose
    probabilities differ from the trainer's (another kernel or precision, stale weights).

    rho = exp(log pi_trainer - log pi_sampler) per token, from the trainer's log-probabilities before the
    update and the sampler's own (log-ratios clamped to +-20). Multiply the weights into the per-token policy
    loss (for the clipped surrogate and CISPO, multiplying the advantage is the same, as the weights are >= 0).

    - `tis` (truncated importance sampling): "token": min(rho_t, cap) (Yao et al. 2025, "Your efficient RL
      framework secretly brings you off-policy RL training"; verl `rollout_is: token`, TRL
      `vllm_importance_sampling_mode="token_truncate"`, whose cap also defaults to 2); "sequence":
      min(prod_t rho_t, cap) at every token of the row (verl `rollout_is: sequence`, TRL "sequence_truncate";
      products of long rows' ratios vanish or explode); "geometric": min(exp(mean_t log rho_t), cap); "none": 1.
    - `mis` (masked importance sampling, rejection): "token": tokens with rho outside [lo, hi] get weight 0
      (verl `rollout_rs: token`, TRL "token_mask"); "geometric": whole rows whose geometric-mean ratio exp(mean_t log rho_t)
      leaves [lo, hi] get 0 (verl `rollout_rs: geometric`, Liu, Li et al. 2025 "When speed kills
      stability"); "none": nothing dropped. Dropped tokens still count in the loss's normaliser.

    trainer_logprobs, sampler_logprobs, mask (B, T) -> (B, T), 0 off the mask.
    """
    if tis not in IS_LEVELS or mis not in MASK_LEVELS:
        raise ValueError(f"tis must be one of {IS_LEVELS} and mis one of {MASK_LEVELS}, got {tis!r}, {mis!r}")
    lo, hi = band
    if cap <= 0 or not 0 <= lo < 1 < hi:
        raise ValueError(f"need cap > 0 and a band with 0 <= lo < 1 < hi, got cap {cap}, band {band}")
    m = mask.bool()  # (B, T)
    log_rho = _sampler_log_ratio(trainer_logprobs, sampler_logprobs, m)  # (B, T)
    log_cap = math.log(cap)
    if tis == "token":
        w = torch.exp(log_rho.clamp(max=log_cap))  # (B, T)
    elif tis == "none":
        w = torch.ones_like(log_rho)
    else:
        seq = log_rho.sum(-1) if tis == "sequence" else masked_mean(log_rho, m, dim=-1)  # (B,)
        w = torch.exp(seq.clamp(max=log_cap)).unsqueeze(-1).expand_as(log_rho)  # (B, T)
    keep = _kept(log_rho, m, mis, band)  # (B, T)
    return torch.where(m & keep, w, torch.zeros_like(w))


def _kept(log_rho: torch.Tensor, m: torch.Tensor, mis: str, band: tuple[float, float]) -> torch.Tensor:
    """(B, T) bool: the tokens the `mis` mask keeps (all of them for "none")."""
    lo, hi = band
    log_lo = math.log(lo) if lo > 0 else -math.inf
    if mis == "token":
        return (log_rho >= log_lo) & (log_rho <= math.log(hi))  # (B, T)
    if mis == "geometric":
        geo = masked_mean(log_rho, m, dim=-1)  # (B,) log of the row's geometric-mean ratio
        return ((geo >= log_lo) & (geo <= math.log(hi))).unsqueeze(-1).expand_as(m)  # (B, T)
    return torch.ones_like(m)


@torch.no_grad()
def mismatch_stats(
    trainer_logprobs: torch.Tensor,
    sampler_logprobs: torch.Tensor,
    mask: torch.Tensor,
    mis: str = "none",
    band: tuple[float, float] = (0.5, 2.0),
) -> dict[str, torch.Tensor]:
    """How far the sampler's probabilities are from the trainer's, over the mask's tokens (detached scalars):

    - kl: k3 estimate of KL(sampler || trainer) from the sampler's own tokens, mean_t (rho - 1) - log rho with
      rho = pi_trainer / pi_sampler (unbiased, >= 0; Schulman's k3 with the sampler as the sampling policy);
    - kl_k1: mean_t -log rho, the plain estimator of the same KL (unbiased, can be < 0);
    - is_ratio_mean, is_ratio_max, is_ratio_min: of the token ratios rho;
    - masked_frac: fraction of tokens the `mis` mask drops (by token or with their row), seq_masked_frac:
      fraction of rows (with model tokens) the geometric mask drops; both 0 for mis="none".

    trainer_logprobs, sampler_logprobs, mask (B, T); computed in float64. An empty mask gives 0s (ratio
    max/min 1).
    """
    m = mask.bool()  # (B, T)
    # float64: k3 is ~x^2/2 for a log-ratio x, below float32's resolution next to 1 when x < 1e-4
    log_rho = _sampler_log_ratio(trainer_logprobs, sampler_logprobs, m).double()  # (B, T)
    rho = torch.exp(log_rho)  # (B, T); 1 off the mask
    f = rho.dtype
    keep = _kept(log_rho, m, mis, band)  # (B, T)
    rows = m.any(-1)  # (B,)
    dropped_rows = rows & ~keep.all(-1) if mis == "geometric" else torch.zeros_like(rows)
    one = torch.ones((), dtype=f, device=rho.device)
    return {
        "kl": masked_mean(torch.expm1(log_rho) - log_rho, m),
        "kl_k1": masked_mean(-log_rho, m),
        "is_ratio_mean": masked_mean(rho, m),
        "is_ratio_max": rho[m].max() if m.any() else one,
        "is_ratio_min": rho[m].min() if m.any() else one,
        "masked_frac": masked_mean((~keep).to(f), m),
        "seq_masked_frac": masked_mean(dropped_rows.to(f), rows),
    }


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token estimators of KL(pi || ref) from samples of pi (Schulman, "Approximating KL divergence").

    k1 = logp - ref (unbiased, can be < 0); k2 = 0.5 (logp - ref)^2; k3 = exp(ref - logp) - (ref - logp) - 1
    (unbiased, >= 0; TRL's GRPO KL, grpo_trainer.py L3100-3102). (B, T) -> (B, T).
    """
    d = _up(ref_logprobs) - _up(logprobs)  # (B, T) log(ref / pi)
    if kind == "k1":
        return -d
    if kind == "k2":
        return 0.5 * d**2
    if kind == "k3":
        return torch.exp(d) - d - 1
    raise ValueError(f"kind must be 'k1', 'k2' or 'k3', got {kind!r}")


@torch.no_grad()
def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the mask==1 tokens only; returns (advantages, returns), (B, T) each.

    Masked-out positions (padding, environment tokens of a multi-turn episode) are skipped as if absent: the
    next value is the value at the next mask==1 position, 0 after the last. Rewards at masked positions are
    ignored. returns = advantages + values; both are 0 at masked positions. No gradient flows.
    """
    r, v = _up(rewards), _up(values)
    v = v.to(torch.promote_types(r.dtype, v.dtype))
    r = r.to(v.dtype)
    m = mask.bool()  # (B, T)
    adv = torch.zeros_like(v)  # (B, T)
    next_v = v.new_zeros(v.shape[0])  # (B,)
    next_a = v.new_zeros(v.shape[0])  # (B,)
    for t in range(v.shape[1] - 1, -1, -1):
        delta = r[:, t] + gamma * next_v - v[:, t]  # (B,)
        a = delta + gamma * lam * next_a  # (B,)
        mt = m[:, t]  # (B,)
        adv[:, t] = torch.where(mt, a, torch.zeros_like(a))
        next_v = torch.where(mt, v[:, t], next_v)
        next_a = torch.where(mt, a, next_a)
    returns = torch.where(m, adv + v, torch.zeros_like(v))  # (B, T)
    return adv, returns


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None = 0.2,
    num_items: int | float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss 0.5 * max((v - R)^2, (clip(v, old - clip, old + clip) - R)^2), token-level mean.

    (B, T) inputs. `num_items` replaces the token count (as in `policy_loss` with agg="dapo"). `clip=None`
    disables clipping. Stats (detached): clip_frac (tokens where the clipped term was larger), values_mean.
    """
    v = _up(values)
    old, ret = _up(old_values).to(v.dtype), _up(returns).to(v.dtype)
    m = mask.bool()  # (B, T)
    unclipped = (v - ret) ** 2  # (B, T)
    v_clip = v if clip is None else old + torch.clamp(v - old, -clip, clip)  # (B, T)
    clipped = (v_clip - ret) ** 2  # (B, T)
    per_token = 0.5 * torch.max(unclipped, clipped)  # (B, T)
    n = m.sum() if num_items is None else num_items
    loss = masked_sum(per_token, m) / _norm(n, per_token)
    with torch.no_grad():
        stats = {
            "clip_frac": masked_mean((clipped > unclipped).to(v.dtype), m),
            "values_mean": masked_mean(v, m),
        }
    return loss, stats


def token_rewards(
    scores: torch.Tensor,
    mask: torch.Tensor,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> torch.Tensor:
    """PPO per-token rewards: each (B,) score at its sequence's last mask==1 token, minus kl_coef * kl.

    mask, kl (B, T) -> (B, T); zero at masked positions. A row with an empty mask gets no score.
    """
    s = _up(scores)
    m = mask.bool()  # (B, T)
    pos = torch.arange(m.shape[1], device=m.device).expand_as(m)  # (B, T)
    last = torch.where(m, pos, torch.full_like(pos, -1)).amax(-1)  # (B,)
    out = torch.where(pos == last.unsqueeze(-1), s.unsqueeze(-1), torch.zeros_like(s).unsqueeze(-1))  # (B, T)
    if kl is not None and kl_coef:
        out = out - kl_coef * torch.where(m, _up(kl).to(out.dtype), torch.zeros_like(out))
    return out


def entropy_from_logits(logits: torch.Tensor, chunk_size: int = 128) -> torch.Tensor:
    """Entropy (nats) of softmax(logits) along the last axis, in row chunks to bound memory. (B, T, V) -> (B, T).

    -inf logits (banned tokens) contribute 0.
    """
    flat = logits.reshape(-1, logits.shape[-1])  # (B*T, V)
    out = []
    for chunk in flat.split(chunk_size):
        logp = F.log_softmax(_up(chunk), dim=-1)  # (c, V)
        p = logp.exp()
        out.append(-torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1))  # (c,)
    return torch.cat(out).view(logits.shape[:-1])


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log_softmax(logits).gather(index) without materialising the full (B, T, V) log-softmax.

    logits (B, T, V), index (B, T) -> (B, T). Follows `trl.trainer.utils.selective_log_softmax` (L538): gather
    minus a per-row logsumexp in float32/64; one row at a time (upcast to float32) for half precision.
    """
    if logits.dtype in (torch.float32, torch.float64):
        picked = logits.gather(-1, index.unsqueeze(-1)).squeeze(-1)  # (B, T)
        lse = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])  # (B, T)
        return picked - lse
    rows = [
        F.log_softmax(row.float(), dim=-1).gather(-1, idx.unsqueeze(-1)).squeeze(-1)  # (T,)
        for row, idx in zip(logits, index, strict=True)
    ]
    return torch.stack(rows)  # (B, T)
