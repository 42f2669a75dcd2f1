"""GRPO against programmatic graders, in one file that reads top to bottom.

Config -> setup -> for each step: sample prompts -> rollout G samples each (grading pipelined behind
generation) -> group advantages -> clipped policy loss (+ KL) over epochs x minibatches x micro-batches ->
update -> push weights to the engine -> log, evaluate, checkpoint.

The sampler's own log-probabilities come back with the samples: `mismatch/*` measures how far they are from
the trainer's, and `loss.correction` weighs or masks tokens by the ratio (`rft.losses.rollout_correction`).

Samples whose grade failed (grader timeout/error) are masked out of the loss and counted
(``grader/error_rate``, ``grader/timeout_rate``), never rewarded 0. Every step's randomness comes from
(seed, step), so a killed run resumed from its last checkpoint repeats the same steps.

Under ``accelerate launch`` each process takes a contiguous share of the step's prompt groups, samples and
grades them with its own engine and trains on them; loss normalisers are whole-batch counts and gradients
add up over processes, so an update equals one process's on the whole batch (`rft.rl.distributed`). Only
rank 0 writes the run folder and evaluates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from rft.batch import behaviour_logprobs, collate, shared_prefix_stats, token_logprobs, token_stats
from rft.engines import Engine, Sampling
from rft.envs import SuiteEnv
from rft.eval.heldout import EvalConfig
from rft.graders.executor import GradingPool
from rft.losses import (
    aggregate,
    group_advantages,
    kl_penalty,
    masked_mean,
    rollout_correction,
    zero_variance_groups,
)
from rft.models import adamw, autocast, fast_attention, load_policy, trainable_parameters, training_precision
from rft.rl.config import CorrectionConfig, GenConfig, RLConfig
from rft.rl.distributed import Dist
from rft.rl.harness import Harness, micro_batches
from rft.rl.metrics import UpdateMetrics, mismatch_metrics, reward_metrics
from rft.rl.plugins import EPS_DEFAULTS, batch_wide, resolve_advantage, resolve_loss
from rft.rollout import Trajectory, run_episodes

__all__ = ["GRPOConfig", "GenConfig", "LossConfig", "CorrectionConfig", "EvalConfig", "train"]

log = logging.getLogger("rft.rl.grpo")
# losses whose gradient with respect to the log-probabilities does not depend on them at ratio 1
LINEAR_AT_RATIO_1 = ("clip", "gspo", "cispo")

MAX_STALENESS = 8  # async rollouts queued at most (a CPU copy of the weights each)


# ---- config ------------------------------------------------------------------------------------------


@dataclass
class LossConfig:
    name: str = "clip"  # clip (PPO's clipped surrogate), gspo, cispo, or module:callable (rft.rl.plugins)
    advantage: str = "grpo"  # grpo (group mean, std: scale_rewards), rloo, reinforce_pp, module:callable
    agg: Literal["grpo", "dr_grpo", "dapo"] = "dapo"  # how token losses are averaged (see rft.losses)
    scale_rewards: Literal["group", "batch", "none"] = "group"  # grpo advantages: divide by this std
    eps_low: float | None = None  # clip range; None: by loss (clip 0.2, gspo 3e-4, cispo 1.0: no lower bound)
    eps_high: float | None = None  # None: clip 0.28 (clip-higher, DAPO), gspo 4e-4, cispo 4.0 (weights <= 5)
    beta: float = 0.0  # KL(pi || ref) coefficient, k3 estimator
    entropy_coef: float = 0.0  # subtracts coef x the token entropy (aggregated as agg) from the loss
    overlong: Literal["none", "mask", "penalty"] = "none"  # samples cut at max_new_tokens
    overlong_buffer: int = 16  # penalty: linear from 0 to -1 over the last this-many tokens
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)  # sampler/trainer mismatch

    def __post_init__(self) -> None:
        resolve_loss(self.name)  # an unknown name or a bad import path fails before the run starts
        resolve_advantage(self.advantage)
        lo, hi = EPS_DEFAULTS.get(self.name, EPS_DEFAULTS["clip"])
        self.eps_low = lo if self.eps_low is None else self.eps_low
        self.eps_high = max(hi, self.eps_low) if self.eps_high is None else self.eps_high
        no_floor = self.name == "cispo" and self.eps_low == 1  # cispo: 1 = no lower bound on the weight
        if not (0 < self.eps_low < 1 or no_floor) or self.eps_high < self.eps_low:
            raise ValueError(
                f"need 0 < eps_low < 1 (cispo: <= 1) and eps_high >= eps_low, got {self.eps_low}, {self.eps_high}"
            )
        if self.beta < 0 or self.overlong_buffer < 1 or self.entropy_coef < 0:
            raise ValueError("loss.beta and loss.entropy_coef must be >= 0, loss.overlong_buffer >= 1")
        if self.name == "gspo" and self.agg == "dr_grpo":
            raise ValueError("loss.name gspo weighs whole sequences: use agg grpo (the paper's) or dapo")
        c = self.correction
        if self.name == "gspo" and (c.tis == "token" or c.mis == "token"):
            raise ValueError(
                "loss.name gspo has one ratio per sequence: use loss.correction.tis sequence or geometric "
                "and mis geometric (or none), not token"
            )


@dataclass
class GRPOConfig(RLConfig):
    out: str = "runs/grpo"
    group_size: int = 8  # samples per prompt; advantages compare them
    dynamic_sampling: bool = False  # drop groups with equal rewards and refill with new prompts
    max_refills: int = 2  # dynamic_sampling: at most this many refills per step
    loss: LossConfig = field(default_factory=LossConfig)
    shared_prefix: bool = True  # run each group's prompt once in the update (same loss, less compute)
    async_rollout: bool = False  # sample the next batches while this one trains (see max_staleness)
    max_staleness: int = 1  # async_rollout: step s samples with the weights after update s - max_staleness

    @property
    def sampler_logprobs(self) -> bool:
        """Rollouts carry the sampler's own log-probabilities: async's old log-probs, the correction's and
        the mismatch metrics'."""
        return self.async_rollout or self.loss.correction.needs_sampler_logprobs

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 (advantages compare samples of a prompt), got {self.group_size}"
            )
        if self.async_rollout and "logit_scale" in self.engine_options:
            raise ValueError(
                "engine_options.logit_scale perturbs the synchronous engine: set async_rollout: false"
            )
        batch = self.prompts_per_step * self.group_size
        if batch % self.minibatches:
            raise ValueError(
                f"prompts_per_step * group_size ({batch}) must be divisible by minibatches ({self.minibatches})"
            )
        if not 1 <= self.max_staleness <= MAX_STALENESS:
            raise ValueError(
                f"max_staleness must be in 1..{MAX_STALENESS} (each queued rollout holds a CPU copy of the "
                f"weights), got {self.max_staleness}"
            )
        if self.max_staleness > 1 and not self.async_rollout:
            raise ValueError(
                f"max_staleness {self.max_staleness} needs async_rollout: true (sync rollouts are on-policy)"
            )


# ---- training ----------------------------------------------------------------------------------------


def train(
    cfg: GRPOConfig, *, resume: bool = False, progress: Callable[[int, dict[str, float]], None] | None = None
) -> dict[str, float]:
    """Run GRPO as configured; returns the last evaluation's metrics (on rank 0; {} on the other ranks)."""
    with fast_attention(cfg.device):  # a GPU: no cuDNN attention (an execution plan per new shape)
        return _train(cfg, resume, progress)


def _train(
    cfg: GRPOConfig, resume: bool, progress: Callable[[int, dict[str, float]], None] | None
) -> dict[str, float]:
    # distributed setup, suite and train problems, run folder, the checkpoint to resume from (`Harness`)
    with Harness(cfg, resume) as h:
        dist = h.dist
        # -- the policy (and a reference model for the KL term), optimizer, learning-rate schedule
        # auto on a GPU: full weights in float32 with bf16 forward passes (`compute`), a LoRA base in bf16
        weights, compute = training_precision(cfg.dtype, h.device, cfg.lora.r > 0)
        model, tokenizer = load_policy(
            cfg.model,
            lora=cfg.lora if h.ckpt is None else None,
            adapter=h.ckpt / "model" if h.ckpt is not None and cfg.lora.r > 0 else None,
            dtype=weights,
            device=h.device,
            gradient_checkpointing=cfg.gradient_checkpointing,
        )
        if h.ckpt is not None and cfg.lora.r == 0:  # full weights: the checkpoint's model folder
            model, tokenizer = load_policy(
                h.ckpt / "model",
                dtype=weights,
                device=h.device,
                gradient_checkpointing=cfg.gradient_checkpointing,
            )
        device = next(model.parameters()).device
        ref_model = None
        if cfg.loss.beta > 0 and cfg.lora.r == 0:
            ref_model, _ = load_policy(cfg.model, dtype=cfg.dtype, device=h.device)
            ref_model.requires_grad_(False).eval()
        params = trainable_parameters(model)
        optimizer: torch.optim.Optimizer = adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cfg.lr_factor(s))
        h.restore([optimizer], [scheduler])
        # several processes: `model` is what the update trains through (DDP/FSDP/DeepSpeed); `policy` holds
        # the current full weights for sampling and checkpoints. One process: both are the model
        model, (optimizer,), policy = dist.prepare(model, [optimizer], cfg.micro_batch, cfg.max_grad_norm)
        h.start_engine(
            policy,
            tokenizer,
            compute,
            cfg.group_size,
            async_rollout=cfg.async_rollout,
            max_staleness=cfg.max_staleness,
        )
        max_turns = h.max_turns  # of a mix: the most of its suites'

        def sample(step: int, engine: Engine) -> tuple[list[Trajectory], dict[str, float]]:
            return _rollout(cfg, step, engine, tokenizer, h.reset_envs, h.executor, dist)

        for step in h.steps():
            t0 = time.perf_counter()
            # -- rollout: G samples of each prompt (this rank's share of them), graded behind generation;
            # async: sampled by the weights max_staleness updates back
            trajs, stats = h.rollout(step, sample)
            t_rollout = time.perf_counter() - t0
            # -- advantages
            rewards, valid = _rewards(cfg, trajs, max_turns)  # (N,), (N,)
            adv = _advantages(cfg, rewards, valid, dist)  # (N,)
            # -- loss and update
            t1 = time.perf_counter()
            lr = float(scheduler.get_last_lr()[0])  # this update's
            loss_stats = _update(
                cfg,
                model,
                ref_model,
                optimizer,
                trajs,
                adv,
                valid,
                tokenizer.pad_token_id,
                device,
                max_turns,
                step,
                dist,
                policy,
            )
            scheduler.step()
            dist.sync_policy(model, policy)
            h.push_weights()
            t_update = time.perf_counter() - t1
            # -- log: rank 0 writes every rank's samples and the metrics over all of them
            stats = dist.mean(stats)
            everyone = h.gather(trajs, cfg.group_size)
            if everyone is None:
                continue
            rewards, valid = _rewards(cfg, everyone, max_turns) if dist.world > 1 else (rewards, valid)
            metrics = {
                **stats,
                **reward_metrics(everyone, rewards, valid, h.suite_ids),
                **loss_stats,
                "lr": lr,
                "time/rollout_s": t_rollout,
                "time/update_s": t_update,
                "time/step_s": time.perf_counter() - t0,
            }
            h.log(step, metrics, everyone, progress)  # evaluates when due
            h.save(step, policy, [optimizer], [scheduler])  # every save_every steps and at the end
    return h.last_eval


def overlong_penalty(length: int, max_new_tokens: int, buffer: int) -> float:
    """DAPO's soft overlong punishment: 0 up to max - buffer tokens, then linear down to -1 at max."""
    start = max_new_tokens - buffer
    return 0.0 if length <= start else max(-1.0, (start - length) / buffer)


def _rewards(cfg: GRPOConfig, trajs: list[Trajectory], max_turns: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards (with the overlong penalty) and which samples enter the loss: (N,) float, (N,) bool."""
    rewards = torch.tensor([t.reward for t in trajs], dtype=torch.float32)  # (N,)
    if cfg.loss.overlong == "penalty":
        limit = cfg.gen.max_new_tokens * max_turns
        rewards += torch.tensor(
            [overlong_penalty(t.completion_tokens, limit, cfg.loss.overlong_buffer) for t in trajs]
        )
    valid = torch.tensor([not t.failed and not (cfg.loss.overlong == "mask" and t.overlong) for t in trajs])
    return rewards, valid


def _advantages(cfg: GRPOConfig, rewards: torch.Tensor, valid: torch.Tensor, dist: Dist) -> torch.Tensor:
    """Advantages (N,) by `loss.advantage`. Groups never span ranks; an estimator with batch statistics
    (`scale_rewards: batch`, reinforce_pp) gets every rank's rewards, and this rank's rows are taken."""
    name = cfg.loss.advantage

    def estimate(r: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if name == "grpo":
            return group_advantages(r, cfg.group_size, cfg.loss.scale_rewards, valid=v)
        return resolve_advantage(name)(r, cfg.group_size, v)

    if not batch_wide(name, cfg.loss.scale_rewards) or dist.world == 1:
        return estimate(rewards, valid)
    parts = dist.all_gather((rewards, valid))  # the whole batch; this rank's rows are a slice of it
    r, v = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])  # (N * world,)
    lo = sum(len(p[0]) for p in parts[: dist.rank])
    return estimate(r, v)[lo : lo + len(rewards)]


def _rollout(
    cfg: GRPOConfig,
    step: int,
    engine: Engine,
    tokenizer: Any,
    reset_envs: Callable[[int, slice, int, int], list[SuiteEnv]],
    executor: GradingPool | None,
    dist: Dist,
) -> tuple[list[Trajectory], dict[str, float]]:
    """This rank's share of prompts_per_step groups of group_size episodes, in envs reset to the step's
    problems by `reset_envs(step, share, group_size, draw)` (`Harness.reset_envs`); with dynamic sampling, groups
    whose rewards are all equal (no gradient) are replaced by fresh prompts, up to max_refills extra draws
    (each rank refills its own share)."""
    g, p = cfg.group_size, cfg.prompts_per_step // dist.world
    share = dist.share(cfg.prompts_per_step, "prompts_per_step")
    seed = cfg.seed * 1_000_003 + step + 100_003 * dist.rank  # ranks sample differently
    sampling = Sampling(
        cfg.gen.temperature,
        cfg.gen.top_p,
        cfg.gen.top_k,
        cfg.gen.max_new_tokens,
        cfg.gen.stop,
        seed=seed,
        logprobs=cfg.sampler_logprobs,
    )
    kept: list[list[Trajectory]] = []
    first_zero_var = 0.0
    for draw in range(1 + (cfg.max_refills if cfg.dynamic_sampling else 0)):
        envs = reset_envs(step, share, g, draw)
        trajs = run_episodes(
            engine,
            tokenizer,
            envs,
            [k // g for k in range(len(envs))],
            replace(sampling, seed=seed + 7 * draw),
            executor=executor,
            chunk=cfg.rollout_chunk,
            max_len=cfg.max_len,
            chat_template_kwargs=cfg.chat.kwargs,
        )
        groups = [trajs[i * g : (i + 1) * g] for i in range(p)]
        rewards = torch.tensor([t.reward for t in trajs])
        valid = torch.tensor([not t.failed for t in trajs])
        zero = zero_variance_groups(rewards, g, valid=valid).tolist()
        if draw == 0:
            first_zero_var = sum(zero) / p
        kept += [grp for grp, z in zip(groups, zero, strict=True) if not (cfg.dynamic_sampling and z)]
        if not cfg.dynamic_sampling or len(kept) >= p:
            break
    if cfg.dynamic_sampling and len(kept) < p:  # not enough informative groups: fill with the last draw's
        extra = [grp for grp, z in zip(groups, zero, strict=True) if z]
        kept += extra[: p - len(kept)]
    if first_zero_var > 0.5 and step % 10 == 0:
        log.warning(
            "step %d: %.0f%% of groups have equal rewards (no gradient): the task is too easy or too hard for "
            "the model; filter prompts by pass rate (rft task filter) or enable dynamic_sampling",
            step,
            100 * first_zero_var,
        )
    out = [t for grp in kept[:p] for t in grp]
    for i, t in enumerate(out):
        t.group = i // g
    return out, {"rollout/zero_var_frac": first_zero_var, "rollout/refills": float(draw)}


def _update(
    cfg: GRPOConfig,
    model: torch.nn.Module,
    ref_model: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer,
    trajs: list[Trajectory],
    adv: torch.Tensor,
    valid: torch.Tensor,
    pad_id: int,
    device: torch.device,
    max_turns: int,
    step: int,
    dist: Dist | None = None,
    policy: torch.nn.Module | None = None,
) -> dict[str, float]:
    """epochs x minibatches optimizer steps over the rollout batch. Rows with zero advantage (and no KL
    term) add no gradient, so they are not run through the model; they still count in the loss's
    normaliser (num_items), which keeps the loss equal to the full-batch one.

    Several processes: `trajs` are this rank's rows of the whole batch (rank r holds rows r*n..(r+1)*n-1);
    minibatches are drawn from the whole batch's order, normalisers count the whole minibatch, and ranks
    that run out of rows pad with zero-weighted passes (`Dist.minibatch`). `model` is what gradients flow
    through (DDP/FSDP/DeepSpeed), `policy` the plain module with the same weights for no-grad passes."""
    dist = dist or Dist()
    policy = model if policy is None else policy
    batch = collate(trajs, pad_id).to(device)
    adv = adv.to(device)
    n = len(trajs)
    temp = cfg.gen.temperature
    share = cfg.shared_prefix and not cfg.gradient_checkpointing  # checkpointing turns the KV cache off
    share = share and dist.kind != "FSDP"  # its two forwards per backward are tested under DDP only

    _, compute = training_precision(cfg.dtype, str(device), cfg.lora.r > 0)

    bonus = cfg.loss.entropy_coef > 0  # the entropy needs a gradient only for the bonus; else it is a metric

    def logprobs(
        m: torch.nn.Module,
        sub: Any,
        rows: list[int],
        entropy: bool = False,
        known: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(log-probabilities, entropies if `entropy` else None), (b, T-1) each; `known`: the loss's gradient
        with respect to the log-probabilities, known in advance (`rft.logprobs.chunked_logprobs`)."""
        kw: dict[str, Any] = {"entropy": entropy, "entropy_grad": bonus, "known_grad": known}
        with autocast(compute, device):  # bf16 mixed precision, else a no-op
            if not share:
                return token_stats(m, sub, temp, **kw)
            return shared_prefix_stats(m, sub, [trajs[r].prompt_len for r in rows], temp, **kw)

    # `prox`: the trainer's log-probs of the batch before the update. One pass (epochs = minibatches = 1):
    # those of the training forward itself, detached; else a no-grad pass first. The PPO ratio is against
    # them, except for async with no correction, where old = the sampler's (one update behind): its ratio
    # then absorbs the gap. Async with a correction is decoupled PPO (Hilton et al. 2022; verl's
    # `rollout_corr` "decoupled" mode): ratio pi / prox, weight from prox / sampler.
    corr = cfg.loss.correction
    single = cfg.epochs == 1 and cfg.minibatches == 1
    behaviour = behaviour_logprobs(trajs, batch.ids.shape[1]).to(device) if cfg.sampler_logprobs else None
    bypass = cfg.async_rollout and not corr.corrects
    need_prox = not single and (not bypass or corr.needs_sampler_logprobs)
    loss_fn = resolve_loss(cfg.loss.name)
    eps_low, eps_high = cfg.loss.eps_low, cfg.loss.eps_high  # set by LossConfig.__post_init__
    assert eps_low is not None and eps_high is not None
    # on-policy single pass (ratio exactly 1) with a built-in loss and no other term: the loss is linear in
    # the log-probabilities, its gradient with respect to them is known before the forward pass, and the
    # output head computes its gradients in the forward pass (no recomputation in backward)
    # (not with a correction: its weights come from the same forward pass)
    linear = single and not bypass and not corr.corrects and cfg.loss.name in LINEAR_AT_RATIO_1
    linear = linear and cfg.loss.beta == 0 and not bonus

    def known_gradient(rows: list[int], sub: Any, num_items: float) -> torch.Tensor | None:
        """d loss / d log-probabilities, (b, T-1), evaluated at ratio 1 (where it does not depend on them)."""
        if not linear:
            return None
        x = torch.zeros_like(sub.mask, requires_grad=True)  # (b, T-1)
        with torch.enable_grad():
            loss, _ = loss_fn(x, x.detach(), adv[rows], sub.mask, eps_low, eps_high, cfg.loss.agg,
                              num_items=num_items, max_tokens=cfg.gen.max_new_tokens * max_turns)  # fmt: skip
            return torch.autograd.grad(loss, x)[0]

    ok, nonzero = valid.tolist(), (adv != 0).tolist()
    always = cfg.loss.beta > 0 or cfg.loss.entropy_coef > 0  # terms with a gradient whatever the advantage
    needs = [i for i in range(n) if ok[i] and (nonzero[i] or always)]
    needed = set(needs)
    lengths = [len(t.ids) for t in trajs]
    # full-width (N, T-1): a row's training micro-batch may be wider than the chunk it was scored in
    prox = torch.zeros_like(batch.mask)
    ref_lp = torch.zeros_like(batch.mask)
    with torch.no_grad():
        for part in micro_batches(needs, lengths, cfg.micro_batch, cfg.micro_tokens):
            sub = batch.rows(part)
            w = sub.mask.shape[1]
            if need_prox:
                prox[part, :w] = logprobs(policy, sub, part)[0].float()
            if cfg.loss.beta > 0:
                with autocast(compute, device):
                    ref_lp[part, :w] = _ref_logprobs(policy, ref_model, sub, temp).float()
    metrics = UpdateMetrics()
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    lo = dist.rank * n  # this rank's first row in the whole batch
    for _ in range(cfg.epochs):
        order = torch.randperm(n * dist.world, generator=gen).tolist()
        size = n * dist.world // cfg.minibatches
        for m in range(cfg.minibatches):
            mb = [i - lo for i in order[m * size : (m + 1) * size] if lo <= i < lo + n and ok[i - lo]]
            mb_mask = batch.mask[mb]
            num_items = len(mb) if cfg.loss.agg != "dapo" else float(mb_mask.sum())
            micro = micro_batches([i for i in mb if i in needed], lengths, cfg.micro_batch, cfg.micro_tokens)
            rows_in_mb, num_items, padded = dist.minibatch(len(mb), num_items, micro)  # whole minibatch
            if not rows_in_mb:
                continue
            optimizer.zero_grad(set_to_none=True)
            for k, rows in enumerate(padded):
                with dist.micro_step(model, last=k == len(padded) - 1):
                    if rows is None:  # this rank has no rows left: a zero-weighted pass, same collectives
                        dist.backward(logprobs(model, batch.rows([0]), [0])[0].sum() * 0.0)
                        continue
                    sub = batch.rows(rows)
                    known = known_gradient(rows, sub, num_items)
                    lp, ent = logprobs(model, sub, rows, entropy=True, known=known)  # (b, T-1) each
                    assert ent is not None
                    w = lp.shape[1]
                    if single:
                        prox[rows, :w] = lp.detach().float()
                    old = behaviour[rows, :w] if bypass and behaviour is not None else prox[rows, :w]
                    a = adv[rows]  # (b,)
                    # the correction's weights are >= 0: on the advantage they weigh each token's loss
                    if corr.corrects and behaviour is not None:
                        c = (corr.tis, corr.cap, corr.mis, corr.band)
                        cw = rollout_correction(prox[rows, :w], behaviour[rows, :w], sub.mask, *c)  # (b, w)
                        a = a * cw.amax(-1) if cfg.loss.name == "gspo" else a.unsqueeze(-1) * cw
                    loss, st = loss_fn(
                        lp,
                        old,
                        a,
                        sub.mask,
                        eps_low,
                        eps_high,
                        cfg.loss.agg,
                        num_items=num_items,
                        max_tokens=cfg.gen.max_new_tokens * max_turns,
                    )
                    terms = {"policy": float(loss.detach())}
                    if cfg.loss.beta > 0:
                        ref = torch.where(sub.mask.bool(), ref_lp[rows, : lp.shape[1]], lp.detach())
                        kl = kl_penalty(lp, ref)  # (b, T-1); 0 off the model's tokens
                        kl_loss = aggregate(
                            kl, sub.mask, cfg.loss.agg, num_items, cfg.gen.max_new_tokens * max_turns
                        )
                        loss = loss + cfg.loss.beta * kl_loss
                        terms["kl"] = float(kl_loss.detach())
                    if bonus:  # an exploration bonus: higher entropy, lower loss
                        ent_term = aggregate(
                            ent, sub.mask, cfg.loss.agg, num_items, cfg.gen.max_new_tokens * max_turns
                        )
                        loss = loss - cfg.loss.entropy_coef * ent_term
                        terms["entropy_bonus"] = float(ent_term.detach())
                    dist.backward(loss)
                diagnostics = {k: float(st[k]) for k in ("clip_frac", "approx_kl", "ratio_mean")}
                diagnostics["entropy"] = float(masked_mean(ent.detach(), sub.mask))  # nats per model token
                metrics.micro(float(sub.mask.sum()), terms, diagnostics)
            # the gradient (so its norm) is the same on every rank
            metrics.update({"grad_norm": dist.clip_grad_norm(model, cfg.max_grad_norm)})
            optimizer.step()
    trained = float(len(needs)) if dist.world == 1 else dist.add_up({"rows": len(needs)})["rows"]
    out = metrics.result(dist) | {"rollout/trained_rows": trained}
    if behaviour is not None and corr.needs_sampler_logprobs:  # over the trained rows' tokens
        rows_mask = torch.zeros_like(batch.mask)
        rows_mask[needs] = batch.mask[needs]
        out |= mismatch_metrics(prox, behaviour, rows_mask, corr.mis, corr.band, dist)
    return out


def _ref_logprobs(
    model: torch.nn.Module, ref_model: torch.nn.Module | None, sub: Any, temp: float
) -> torch.Tensor:
    if ref_model is not None:
        return token_logprobs(ref_model, sub, temp)
    with model.disable_adapter():  # type: ignore[operator]  # a peft model: the base weights are the reference
        return token_logprobs(model, sub, temp)
