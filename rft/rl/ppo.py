"""PPO against programmatic graders, in one file that reads top to bottom.

Config -> setup (policy; value model: a linear head on the policy's last hidden state, or a separate critic
model with its own head and optimizer) -> for each step: sample prompts -> rollout (grading pipelined behind
generation) -> old logprobs and values (and reference logprobs) -> token rewards (the score at the last model
token, minus kl_coef * KL per token) -> GAE -> whitened advantages -> clipped policy and value losses over
epochs x minibatches x micro-batches -> update -> push weights to the engine -> log, evaluate, checkpoint.

Episodes come from `rft.envs`, so multi-turn and tool episodes train too: only the model's own tokens
(``mask`` 1) enter the losses and the whitening; GAE skips environment tokens as if absent. Samples whose
grade failed (grader timeout/error) are masked out and counted (``grader/error_rate``,
``grader/timeout_rate``), never rewarded 0. Every step's randomness comes from (seed, step), so a killed run
resumed from its last checkpoint repeats the same steps.

Under ``accelerate launch`` (DDP) each process rolls out and trains on a contiguous share of the step's prompts;
returns, whitening and statistics are computed over every process's rows, loss normalisers count the whole
minibatch and gradients add up over processes, so an update equals one process's on the whole batch
(`rft.rl.distributed`). Only rank 0 writes the run folder and evaluates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from rft.batch import Batch, behaviour_logprobs, collate, token_logprobs
from rft.engines import Engine, Sampling
from rft.eval.heldout import EvalConfig
from rft.logprobs import chunked_logprobs, head_of
from rft.losses import (
    gae,
    kl_penalty,
    masked_mean,
    masked_var,
    masked_whiten,
    policy_loss,
    rollout_correction,
    selective_log_softmax,
    token_rewards,
    value_loss,
)
from rft.models import adamw, autocast, fast_attention, load_policy, trainable_parameters, training_precision
from rft.rl.config import CorrectionConfig, GenConfig, RLConfig
from rft.rl.distributed import Dist
from rft.rl.harness import Harness, micro_batches
from rft.rl.metrics import UpdateMetrics, mismatch_metrics, reward_metrics
from rft.rollout import Trajectory, run_episodes

__all__ = ["PPOConfig", "PPOLossConfig", "GenConfig", "EvalConfig", "train"]


# ---- config ------------------------------------------------------------------------------------------


@dataclass
class PPOLossConfig:
    gamma: float = 1.0  # discount per model token
    lam: float = 0.95  # GAE lambda
    clip_eps: float = 0.2  # policy ratio clip
    value_clip: float | None = 0.2  # values move at most this far from the old ones; null: no clipping
    vf_coef: float = 0.1  # shared critic: loss = policy + vf_coef * value
    kl_coef: float = 0.0  # per-token k1 KL(pi || ref) subtracted from the rewards
    whiten_advantages: bool = True  # over the batch's model tokens
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)  # sampler/trainer mismatch

    def __post_init__(self) -> None:
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError(f"loss.gamma and loss.lam must be in [0, 1], got {self.gamma}, {self.lam}")
        if not 0 < self.clip_eps < 1:
            raise ValueError(f"loss.clip_eps must be in (0, 1), got {self.clip_eps}")
        if self.value_clip is not None and self.value_clip <= 0:
            raise ValueError(f"loss.value_clip must be > 0 or null (no clipping), got {self.value_clip}")
        if self.vf_coef < 0 or self.kl_coef < 0:
            raise ValueError("loss.vf_coef and loss.kl_coef must be >= 0")


@dataclass
class PPOConfig(RLConfig):
    out: str = "runs/ppo"
    samples_per_prompt: int = 1  # samples generated per problem
    critic: Literal["shared", "separate"] = "shared"  # value head on the policy's trunk, or a second model
    critic_model: str | None = None  # separate: the critic's initial weights (default: model)
    critic_lr: float | None = None  # the value head's (shared) or the critic's (separate); default: lr
    epochs: int = 4  # optimisation passes over each rollout batch
    minibatches: int = 2  # optimizer steps per pass
    loss: PPOLossConfig = field(default_factory=PPOLossConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples_per_prompt < 1:
            raise ValueError(f"samples_per_prompt must be >= 1, got {self.samples_per_prompt}")
        batch = self.prompts_per_step * self.samples_per_prompt
        if batch % self.minibatches:
            raise ValueError(
                f"prompts_per_step * samples_per_prompt ({batch}) must be divisible by minibatches "
                f"({self.minibatches})"
            )
        if self.critic_lr is not None and self.critic_lr <= 0:
            raise ValueError(f"critic_lr must be > 0, got {self.critic_lr}")
        if self.critic_model is not None and self.critic == "shared":
            raise ValueError("critic_model needs critic: separate (a shared critic is a head on the policy)")


# ---- training ----------------------------------------------------------------------------------------


def train(
    cfg: PPOConfig, *, resume: bool = False, progress: Callable[[int, dict[str, float]], None] | None = None
) -> dict[str, float]:
    """Run PPO as configured; returns the last evaluation's metrics (on rank 0; {} on the other ranks)."""
    with fast_attention(cfg.device):  # a GPU: no cuDNN attention (an execution plan per new shape)
        return _train(cfg, resume, progress)


def _train(
    cfg: PPOConfig, resume: bool, progress: Callable[[int, dict[str, float]], None] | None
) -> dict[str, float]:
    # distributed setup (DDP only), suite and train problems, run folder, the checkpoint to resume from
    with Harness(cfg, resume, sharded=False) as h:
        dist, ckpt = h.dist, h.ckpt
        # -- the policy (and a reference model for the KL penalty)
        model, tokenizer = _load(cfg, cfg.model, None if ckpt is None else ckpt / "model", h.device)
        device = next(model.parameters()).device
        compute = training_precision(cfg.dtype, h.device, cfg.lora.r > 0)[1]  # bf16 mixed precision, or None
        ref_model = None
        if cfg.loss.kl_coef > 0 and cfg.lora.r == 0:
            ref_model, _ = load_policy(cfg.model, dtype=cfg.dtype, device=h.device)
            ref_model.requires_grad_(False).eval()
        # -- value model: a head on the policy's last hidden state, or on a critic model of its own
        critic = None
        if cfg.critic == "separate":
            critic, critic_tok = _load(cfg, cfg.critic_model or cfg.model, None, h.device)
            if critic_tok.get_vocab() != tokenizer.get_vocab():
                raise ValueError(
                    f"critic_model {cfg.critic_model!r} has another tokenizer than model {cfg.model!r}; "
                    "the critic reads the policy's token ids, so use a model of the same family"
                )
            out_emb = critic.get_output_embeddings()
            # the critic's LM head is unused (values read hidden states); DDP wants every weight used
            if dist.world > 1 and out_emb.weight is not critic.get_input_embeddings().weight:
                out_emb.requires_grad_(False)
        trunk = model if critic is None else critic
        head = torch.nn.Linear(trunk.get_input_embeddings().embedding_dim, 1).to(
            device=device, dtype=torch.float32
        )
        torch.nn.init.zeros_(head.weight)  # values start at 0
        torch.nn.init.zeros_(head.bias)
        # -- optimizers (a separate critic: its own) and learning-rate schedule (warmup, decay)
        critic_lr = cfg.critic_lr or cfg.lr
        value_params = list(head.parameters()) + ([] if critic is None else trainable_parameters(critic))
        groups = [
            {"params": trainable_parameters(model), "lr": cfg.lr},
            {"params": value_params, "lr": critic_lr},
        ]
        optimizers: list[torch.optim.Optimizer]
        if critic is None:  # one optimizer, the head in a group of its own (its lr)
            optimizers = [adamw(groups, weight_decay=cfg.weight_decay)]
        else:
            optimizers = [adamw([g], weight_decay=cfg.weight_decay) for g in groups]
        schedulers = [
            torch.optim.lr_scheduler.LambdaLR(o, lambda s: cfg.lr_factor(s))
            for o in optimizers
        ]
        state = h.restore(optimizers, schedulers)
        if state is not None:
            head.load_state_dict(state["value_head"])
            if critic is not None:
                unexpected = critic.load_state_dict(state["critic"], strict=False).unexpected_keys
                if unexpected:
                    raise ValueError(
                        f"{ckpt}: the saved critic does not fit critic_model ({unexpected[:3]} ...)"
                    )
        # what gradients flow through, wrapped in DDP with several processes (`model`, `critic`, `head` stay
        # the plain modules: sampling, no-grad passes, checkpoints)
        trained, optimizers, _ = dist.prepare(
            _Trained(model, critic, head, compute), optimizers, cfg.micro_batch, cfg.max_grad_norm
        )
        k = cfg.samples_per_prompt
        h.start_engine(model, tokenizer, compute, k)
        share = dist.share(cfg.prompts_per_step, "prompts_per_step")  # this rank's prompts of each step

        def sample(step: int, engine: Engine) -> list[Trajectory]:
            """samples_per_prompt episodes of each of this rank's prompts, graded behind generation."""
            envs = h.reset_envs(step, share, k)  # each prompt's episodes in envs of its suite
            g = cfg.gen
            seed = cfg.seed * 1_000_003 + step + 100_003 * dist.rank  # ranks sample differently
            lp = cfg.loss.correction.needs_sampler_logprobs
            sampling = Sampling(
                g.temperature, g.top_p, g.top_k, g.max_new_tokens, g.stop, seed=seed, logprobs=lp
            )
            groups = [i // k for i in range(len(envs))]
            return run_episodes(
                engine,
                tokenizer,
                envs,
                groups,
                sampling,
                executor=h.executor,
                chunk=cfg.rollout_chunk,
                max_len=cfg.max_len,
                chat_template_kwargs=cfg.chat.kwargs,
            )

        for step in h.steps():
            t0 = time.perf_counter()
            # -- rollout
            trajs = h.rollout(step, sample)
            t_rollout = time.perf_counter() - t0
            # -- old logprobs and values, token rewards, GAE, whitened advantages
            t1 = time.perf_counter()
            scores = torch.tensor([t.reward for t in trajs], dtype=torch.float32)  # (N,)
            valid = torch.tensor([not t.failed for t in trajs])  # (N,)
            batch = collate(trajs, tokenizer.pad_token_id).to(device)
            old, adv_stats = _advantages(cfg, model, critic, head, ref_model, batch, scores, valid, dist)
            if cfg.loss.correction.needs_sampler_logprobs:
                sampler = behaviour_logprobs(trajs, batch.ids.shape[1]).to(device)  # (N, T-1)
                adv_stats |= _correct(cfg.loss.correction, old, sampler, dist)
            # -- loss and update
            lr = float(schedulers[0].get_last_lr()[0])  # this update's
            loss_stats = _update(cfg, step, model, critic, head, optimizers, batch, old, dist, trained)
            for sch in schedulers:
                sch.step()
            h.push_weights()
            t_update = time.perf_counter() - t1
            # -- log: rank 0 writes every rank's samples and the metrics over all of them
            everyone = h.gather(trajs, k)
            if everyone is None:
                continue
            if dist.world > 1:
                scores = torch.tensor([t.reward for t in everyone], dtype=torch.float32)  # (N * world,)
                valid = torch.tensor([not t.failed for t in everyone])
            metrics = {
                **reward_metrics(everyone, scores, valid, h.suite_ids),
                **adv_stats,
                **loss_stats,
                "lr": lr,
                "time/rollout_s": t_rollout,
                "time/update_s": t_update,
                "time/step_s": time.perf_counter() - t0,
            }
            h.log(step, metrics, everyone, progress)  # evaluates when due
            critic_state = None if critic is None else _trainable_state(critic)
            h.save(step, model, optimizers, schedulers, value_head=head.state_dict(), critic=critic_state)
    return h.last_eval


def _load(cfg: PPOConfig, path: str, saved: Path | None, device: str) -> tuple[Any, Any]:
    """The model at `path` with a fresh adapter (when cfg.lora.r > 0), or as saved in a checkpoint's
    model folder `saved` (full weights, or an adapter over `path`)."""
    adapter = saved if saved is not None and cfg.lora.r > 0 else None
    return load_policy(
        saved if saved is not None and adapter is None else path,
        lora=cfg.lora if saved is None else None,
        adapter=adapter,
        dtype=training_precision(cfg.dtype, device, cfg.lora.r > 0)[0],
        device=device,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable weights only (a peft critic: its adapter), for the checkpoint's state.pt."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def forward(
    model: torch.nn.Module,
    critic: torch.nn.Module | None,
    head: torch.nn.Linear,
    batch: Batch,
    temperature: float = 1.0,
    compute: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the batch's next tokens and the values of the states that emit them, (B, T-1)
    each, aligned with `batch.mask`: both at position t are read from the last hidden state at t, from
    which token t+1 is sampled. The values come from the policy's hidden states (critic None: shared
    trunk) or from the critic's. `compute`: the models run under autocast in it (the head never does)."""
    found = head_of(model)
    with autocast(compute, batch.ids.device):
        out = model(
            input_ids=batch.ids,
            attention_mask=batch.attn,
            output_hidden_states=critic is None or found is not None,
            use_cache=False,
            **({"logits_to_keep": 1} if found else {}),  # the head runs below, in chunks
        )
        if found:  # the head in chunks of positions: no (B, T, V) logits (rft.logprobs)
            targets = batch.ids[:, 1:]
            logprobs = chunked_logprobs(out.hidden_states[-1][:, :-1, :], targets, found[0], temperature,
                                        cap=found[1])[0]  # fmt: skip  # (B, T-1)
        else:
            logits = out.logits[:, :-1, :]  # (B, T-1, V)
            if temperature > 0 and temperature != 1.0:
                logits = logits / temperature
            logprobs = selective_log_softmax(logits, batch.ids[:, 1:])  # (B, T-1)
        if critic is not None:  # its hidden states only: its head on the last position alone
            skip = {"logits_to_keep": 1} if head_of(critic) is not None else {}
            out = critic(
                input_ids=batch.ids, attention_mask=batch.attn, output_hidden_states=True, use_cache=False,
                **skip,
            )  # fmt: skip
    hidden = out.hidden_states[-1][:, :-1, :]  # (B, T-1, H): the final layer, after its norm
    values = head(hidden.to(head.weight.dtype)).squeeze(-1)  # (B, T-1)
    return logprobs, values


class _Trained(torch.nn.Module):
    """The policy, the value head and the critic (separate) as one module, so that DDP wraps (and
    synchronises the gradients of) all that PPO trains at once; `forward` as above."""

    def __init__(
        self,
        model: torch.nn.Module,
        critic: torch.nn.Module | None,
        head: torch.nn.Linear,
        compute: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.model, self.critic, self.head, self.compute = model, critic, head, compute

    def forward(self, batch: Batch, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        return forward(self.model, self.critic, self.head, batch, temperature, self.compute)


@torch.no_grad()
def _advantages(
    cfg: PPOConfig,
    model: torch.nn.Module,
    critic: torch.nn.Module | None,
    head: torch.nn.Linear,
    ref_model: torch.nn.Module | None,
    batch: Batch,
    scores: torch.Tensor,
    valid: torch.Tensor,
    dist: Dist | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The rollout's old logprobs and values, the token rewards (score at the last model token, minus
    kl_coef * k1 KL to the reference per token), GAE advantages (whitened) and returns: (N, T-1) each,
    with the loss mask (model tokens of rows whose grade did not fail). Several processes: returns,
    whitening and stats are computed on every rank's rows (`Dist.cat_rows`), this rank's are returned."""
    dist = dist or Dist()
    mask = batch.mask * valid.to(batch.mask)[:, None]  # (N, T-1)
    old_lp, old_v = torch.zeros_like(mask), torch.zeros_like(mask)  # (N, T-1)
    kl = torch.zeros_like(mask) if cfg.loss.kl_coef > 0 else None  # (N, T-1)
    compute = training_precision(cfg.dtype, str(batch.ids.device), cfg.lora.r > 0)[1]  # bf16 mixed, or None
    lengths = batch.attn.sum(1).tolist()  # (N,) tokens per row
    trainable = [i for i in range(len(batch)) if mask[i].any()]
    for rows in micro_batches(trainable, lengths, cfg.micro_batch, cfg.micro_tokens):
        sub = batch.rows(rows)
        w = sub.mask.shape[1]
        lp, v = forward(model, critic, head, sub, cfg.gen.temperature, compute)  # (b, w) each
        old_lp[rows, :w], old_v[rows, :w] = lp.float(), v.float()
        if kl is not None:
            with autocast(compute, batch.ids.device):
                ref = _ref_logprobs(model, ref_model, sub, cfg.gen.temperature)  # (b, w)
            kl[rows, :w] = kl_penalty(lp, ref, "k1").float()
    n, w = mask.shape
    mine = slice(dist.rank * n, (dist.rank + 1) * n)  # this rank's rows of the whole batch
    mask_all, old_v_all = dist.cat_rows(mask), dist.cat_rows(old_v)  # (N * world, T') each
    kl = None if kl is None else dist.cat_rows(kl)
    rewards = token_rewards(dist.cat_rows(scores.to(mask.device)), mask_all, kl, cfg.loss.kl_coef)
    adv, returns = gae(rewards, old_v_all, mask_all, cfg.loss.gamma, cfg.loss.lam)  # (N * world, T') each
    stats = {
        "loss/value_mean": float(masked_mean(old_v_all, mask_all)),
        "loss/return_mean": float(masked_mean(returns, mask_all)),
        "loss/explained_var": float(
            1 - masked_var(returns - old_v_all, mask_all) / masked_var(returns, mask_all).clamp(min=1e-8)
        ),
        "loss/advantage_std": float(masked_var(adv, mask_all).sqrt()),
        "rollout/trained_rows": float(mask_all.any(1).sum()),
    }
    if kl is not None:
        stats["loss/kl"] = float(masked_mean(kl, mask_all))
    if cfg.loss.whiten_advantages:
        adv = masked_whiten(adv, mask_all)
    adv, returns = adv[mine, :w], returns[mine, :w]  # (N, T-1) each
    return {"mask": mask, "logprobs": old_lp, "values": old_v, "advantages": adv, "returns": returns}, stats


def _correct(
    c: CorrectionConfig, old: dict[str, torch.Tensor], sampler: torch.Tensor, dist: Dist
) -> dict[str, float]:
    """Weigh or mask the advantages by the ratio of the old log-probs to the sampler's (`loss.correction`;
    the weights are >= 0, so on the advantage they weigh each token's clipped loss); `mismatch/*`."""
    if c.corrects:
        w = rollout_correction(old["logprobs"], sampler, old["mask"], c.tis, c.cap, c.mis, c.band)  # (N, T-1)
        old["advantages"] = old["advantages"] * w
    return mismatch_metrics(old["logprobs"], sampler, old["mask"], c.mis, c.band, dist)


def _update(
    cfg: PPOConfig,
    step: int,
    model: torch.nn.Module,
    critic: torch.nn.Module | None,
    head: torch.nn.Linear,
    optimizers: list[torch.optim.Optimizer],
    batch: Batch,
    old: dict[str, torch.Tensor],
    dist: Dist | None = None,
    trained: torch.nn.Module | None = None,
) -> dict[str, float]:
    """epochs x minibatches optimizer steps over the rollout batch. Each minibatch's losses are token means
    over its model tokens (num_items), summed over micro-batches, so accumulation equals one big batch.

    Several processes: `batch` is this rank's rows of the whole batch; minibatches are drawn from the whole
    batch's order, num_items counts the whole minibatch, ranks that run out of rows pad with zero-weighted
    passes (`Dist.minibatch`), and `trained` (the DDP-wrapped `_Trained`) is what gradients flow through."""
    dist = dist or Dist()
    mask = old["mask"]  # (N, T-1)
    n = len(batch)
    lengths = batch.attn.sum(1).tolist()  # (N,) tokens per row: micro-batches of similar lengths
    compute = training_precision(cfg.dtype, str(batch.ids.device), cfg.lora.r > 0)[1]  # bf16 mixed, or None
    size = n * dist.world // cfg.minibatches
    if trained is None:  # one process, called directly: the same forward as `forward(...)`, unwrapped
        trained = _Trained(model, critic, head, compute)
    lo = dist.rank * n  # this rank's first row in the whole batch
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    param_sets = [trainable_parameters(model) + list(head.parameters())]  # shared: clipped together
    if critic is not None:
        param_sets = [trainable_parameters(model), trainable_parameters(critic) + list(head.parameters())]
    vf_coef = cfg.loss.vf_coef if critic is None else 1.0  # a separate critic has its own optimizer and lr
    metrics = UpdateMetrics()
    for _ in range(cfg.epochs):
        order = torch.randperm(n * dist.world, generator=gen).tolist()
        for m in range(cfg.minibatches):
            mb = [i - lo for i in order[m * size : (m + 1) * size] if lo <= i < lo + n and mask[i - lo].any()]
            rows_in_mb, num_items, padded = dist.minibatch(
                len(mb), float(mask[mb].sum()), micro_batches(mb, lengths, cfg.micro_batch, cfg.micro_tokens)
            )
            if not rows_in_mb:
                continue
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            for j, rows in enumerate(padded):
                with dist.micro_step(trained, last=j == len(padded) - 1):
                    if rows is None:  # this rank has no rows left: a zero-weighted pass, same collectives
                        lp, v = trained(batch.rows([0]), cfg.gen.temperature)
                        dist.backward((lp.sum() + v.sum()) * 0.0)
                        continue
                    sub = batch.rows(rows)
                    o = {k: x[rows, : sub.mask.shape[1]] for k, x in old.items()}  # (b, w) each
                    lp, v = trained(sub, cfg.gen.temperature)
                    eps = cfg.loss.clip_eps
                    p_loss, p_st = policy_loss(
                        lp, o["logprobs"], o["advantages"], o["mask"], eps, eps, "dapo", num_items
                    )
                    v_loss, v_st = value_loss(
                        v, o["values"], o["returns"], o["mask"], cfg.loss.value_clip, num_items
                    )
                    dist.backward(p_loss + vf_coef * v_loss)
                diagnostics = {name: float(p_st[name]) for name in ("clip_frac", "approx_kl", "ratio_mean")}
                diagnostics["vf_clip_frac"] = float(v_st["clip_frac"])
                terms = {"policy": float(p_loss.detach()), "value": float(v_loss.detach())}
                metrics.micro(float(o["mask"].sum()), terms, diagnostics)
            # DDP: the gradients are already summed over ranks, the same on every rank
            norms = [torch.nn.utils.clip_grad_norm_(p, cfg.max_grad_norm or math.inf) for p in param_sets]
            names = ["grad_norm", "critic_grad_norm"][: len(norms)]
            metrics.update({name: float(x) for name, x in zip(names, norms, strict=True)})
            for opt in optimizers:
                opt.step()
    return metrics.result(dist)


def _ref_logprobs(
    model: torch.nn.Module, ref_model: torch.nn.Module | None, sub: Batch, temp: float
) -> torch.Tensor:
    if ref_model is not None:
        return token_logprobs(ref_model, sub, temp)
    with model.disable_adapter():  # type: ignore[operator]  # a peft model: the base weights are the reference
        return token_logprobs(model, sub, temp)
