"""Per-token log-probabilities (and entropies) of given tokens without ever holding the logits (B, T, V).

At a real vocabulary (151,936 for Qwen) the logits of one 1,024-token row are 0.6 GB in float32, and as much
again for their gradient: the largest tensors of an RL update. Here the model runs without its output head
(`logits_to_keep=1`, hidden states returned), and the head is applied to `chunk` positions at a time under
activation checkpointing, so the forward pass holds one chunk's logits at a time and the backward pass
recomputes them chunk by chunk. Values and gradients equal the full computation's (tests/test_logprobs.py).
Models whose `forward` does not take `logits_to_keep`, or that scale the head's output (Cohere, Granite, ...),
fall back to the full logits.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = ["DEFAULT_CHUNK_BYTES", "chunk_positions", "NO_HEAD", "head_of", "chunked_logprobs"]  # fmt: skip

# a chunk's float32 logits, (B, chunk, V), are at most this many bytes (and at least one position): at Qwen's
# 151,936 tokens that is 220 positions of one row or 27 of eight. Above 32 MiB (glibc's largest dynamic mmap
# threshold) such tensors are always mmap-ed, so their memory goes back to the system when freed; smaller
# chunks of a long row fragment the heap (measured: 2 x 4,096 tokens at V = 32,000 in chunks of 128
# positions, 33 MB each, grew the peak by 1.8 GB, as much as the full logits).
DEFAULT_CHUNK_BYTES = 128 * 2**20
# what a `forward` call adds to skip the head: the last position's logits only, and the hidden states
# (`out.hidden_states[-1]` is the final, normed layer the head reads)
NO_HEAD: dict[str, Any] = {"output_hidden_states": True, "logits_to_keep": 1}


def _plain(model: torch.nn.Module) -> torch.nn.Module:
    """The module under DDP/FSDP/compile wrappers (the one with the HF API)."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def chunk_positions(rows: int, vocab: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Positions per chunk so that a chunk's float32 logits (rows, positions, vocab) fit `chunk_bytes`."""
    return max(1, chunk_bytes // (4 * max(1, rows) * max(1, vocab)))


def head_of(model: torch.nn.Module) -> tuple[torch.nn.Module, float | None] | None:
    """(output head, final logit soft-cap) of a Hugging Face causal LM that can skip its head in `forward`
    (`logits_to_keep`) and whose logits are the head's output (soft-capped at most), else None."""
    plain = _plain(model)
    get_head = getattr(plain, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    base = getattr(plain, "get_base_model", None)  # peft: the wrapped model's forward signature
    target = base() if callable(base) else plain
    if head is None or "logits_to_keep" not in inspect.signature(target.forward).parameters:
        return None
    config = getattr(plain, "config", None)
    if _logit_scale(config) != 1.0:  # not folded in here yet: the full logits (exact, but (B, T, V))
        return None
    cap = getattr(config, "final_logit_softcapping", None)
    return head, (float(cap) if cap else None)


def _logit_scale(config: Any) -> float:
    """The factor some families apply to the head's output (Cohere `logit_scale`, Falcon-H1
    `lm_head_multiplier`, Granite and MiniCPM3 `1 / logits_scaling`; the names TRL's `add_fused_lm_head`
    reads); 1.0 for the rest."""
    for name in ("logit_scale", "output_multiplier", "lm_head_multiplier"):
        value = getattr(config, name, None)
        if isinstance(value, int | float):
            return float(value)
    scaling = getattr(config, "logits_scaling", None)
    if isinstance(scaling, int | float) and scaling:
        return float(scaling) if getattr(config, "model_type", "") == "hyperclovax" else 1.0 / float(scaling)
    return 1.0


def _chunk_stats(
    hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
    temperature: float, cap: float | None, entropy: bool, entropy_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Log-probabilities and entropies (zeros unless `entropy`; without a gradient unless `entropy_grad`) of
    one chunk: hidden (b, c, H), targets (b, c) -> (b, c), (b, c)."""
    logits = F.linear(hidden, weight, bias).float()  # (b, c, V)
    if cap is not None:
        logits = cap * torch.tanh(logits / cap)
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1)  # (b, c, V)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (b, c)
    if not entropy:
        return picked, torch.zeros_like(picked)
    # a detached entropy saves nothing for backward, so a checkpoint's recomputation stops before it
    with torch.set_grad_enabled(torch.is_grad_enabled() and entropy_grad):
        p = logp.exp()
        return picked, -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)  # (b, c), (b, c)


class _KnownGradHead(torch.autograd.Function):
    """The chunked head when the loss's gradient with respect to the log-probabilities, `dlp` (B, T), is
    known before the forward pass (an on-policy GRPO pass: the ratio is exactly 1, so a clipped, sequence or
    CISPO loss is linear in them): each chunk's gradients with respect to the hidden states and the head are
    computed while its logits exist, and backward returns them. 3 matrix products per chunk instead of 4
    (forward, recomputation, two for backward), one pass of the softmax instead of two."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        dlp: torch.Tensor,
        temperature: float,
        cap: float | None,
        chunk: int,
        entropy: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        g_hidden = torch.empty_like(hidden)  # (B, T, H)
        g_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)  # (V, H)
        g_bias = None if bias is None else torch.zeros(bias.shape, dtype=torch.float32, device=bias.device)
        lps, ents = [], []
        for start in range(0, hidden.shape[1], chunk):
            h, tgt = hidden[:, start : start + chunk], targets[:, start : start + chunk]  # (B, c, H), (B, c)
            d = dlp[:, start : start + chunk].float()  # (B, c)
            logits = F.linear(h, weight, bias).float()  # (B, c, V)
            squash = None
            if cap is not None:
                squash = torch.tanh(logits / cap)
                logits = cap * squash
            if temperature > 0 and temperature != 1.0:
                logits = logits / temperature
            logp = torch.log_softmax(logits, dim=-1)  # (B, c, V)
            del logits
            lps.append(logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1))  # (B, c)
            p = logp.exp_()  # (B, c, V): the probabilities, in place of the log-probabilities
            if entropy:
                ents.append(-torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1))  # (B, c)
            else:
                ents.append(torch.zeros_like(lps[-1]))
            # d log p(target) / d logits = onehot(target) - p
            g = p.mul_(-d.unsqueeze(-1)).scatter_add_(-1, tgt.unsqueeze(-1), d.unsqueeze(-1))  # (B, c, V)
            if temperature > 0 and temperature != 1.0:
                g = g / temperature
            if squash is not None:
                g = g * (1 - squash * squash)
            g = g.to(weight.dtype)
            g_hidden[:, start : start + chunk] = g @ weight  # (B, c, H)
            g_weight.addmm_(g.flatten(0, 1).T.float(), h.flatten(0, 1).float())  # (V, H)
            if g_bias is not None:
                g_bias += g.float().sum((0, 1))
        ctx.save_for_backward(g_hidden, g_weight.to(weight.dtype), g_bias, dlp)
        ctx.has_bias = bias is not None
        return torch.cat(lps, dim=1), torch.cat(ents, dim=1)  # (B, T), (B, T)

    @staticmethod
    def backward(ctx: Any, g_lp: torch.Tensor, g_ent: torch.Tensor | None) -> tuple[Any, ...]:  # type: ignore[override]
        g_hidden, g_weight, g_bias, dlp = ctx.saved_tensors
        # the upstream gradient may be the known one times a scalar (a loss scaled for several processes or
        # by a gradient scaler): the stored gradients are scaled by it
        want, got = dlp.double(), g_lp.double()
        norm = float((want * want).sum())
        scale = float((got * want).sum()) / norm if norm > 0 else 0.0
        if not torch.allclose(
            got, scale * want, rtol=1e-4, atol=1e-12 + 1e-6 * abs(scale) * want.abs().max()
        ):
            raise RuntimeError(
                "the loss's gradient with respect to the log-probabilities is not a multiple of the "
                "`known_grad` given to chunked_logprobs: pass known_grad=None for losses that are not linear "
                "in them"
            )
        if g_ent is not None and bool(g_ent.any()):
            raise RuntimeError("the entropy has a gradient: chunked_logprobs(known_grad=...) gives it none")
        if scale != 1.0:
            g_hidden, g_weight = g_hidden * scale, g_weight * scale
            g_bias = None if g_bias is None else g_bias * scale
        return g_hidden, g_weight, g_bias if ctx.has_bias else None, None, None, None, None, None, None


def chunked_logprobs(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    head: torch.nn.Module,
    temperature: float = 1.0,
    chunk: int | None = None,
    cap: float | None = None,
    entropy: bool = False,
    entropy_grad: bool = True,
    known_grad: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(targets) and the entropy at each position (zeros unless `entropy`; `entropy_grad` False: a
    metric, without a gradient), from the final hidden states: hidden (B, T, H),
    targets (B, T) -> (B, T), (B, T) in float32. The head (a linear layer: its `weight` and `bias`) runs on
    `chunk` positions at a time (None: `chunk_positions`, a byte budget); with gradients on, each chunk is
    checkpointed (its logits recomputed in backward), so at most one chunk's (B, chunk, V) logits exist at
    once. `known_grad` (B, T): the loss's gradient with respect to the returned log-probabilities, known in
    advance (a loss linear in them; checked in backward, which raises unless the gradient that arrives is a
    multiple of it, and scales by that multiple): the head's gradients
    are then computed in the forward pass, without the recomputation; the entropy has no gradient."""
    weight: torch.Tensor = head.weight  # type: ignore[assignment]  # (V, H)
    bias = getattr(head, "bias", None)
    chunk = chunk_positions(hidden.shape[0], int(weight.shape[0])) if chunk is None else chunk
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    if grad and known_grad is not None:
        if known_grad.shape != targets.shape:
            raise ValueError(
                f"known_grad {tuple(known_grad.shape)} must have the shape of targets {tuple(targets.shape)}"
            )
        out: tuple[torch.Tensor, torch.Tensor] = _KnownGradHead.apply(
            hidden, weight, bias, targets, known_grad.detach(), temperature, cap, chunk, entropy
        )
        return out
    lps, ents = [], []
    for start in range(0, hidden.shape[1], chunk):
        h, tgt = hidden[:, start : start + chunk], targets[:, start : start + chunk]  # (B, c, H), (B, c)
        args: tuple[Any, ...] = (h, tgt, weight, bias, temperature, cap, entropy, entropy_grad)
        if grad:
            lp, ent = checkpoint(_chunk_stats, *args, use_reentrant=False)
        else:
            lp, ent = _chunk_stats(*args)
        lps.append(lp)
        ents.append(ent)
    return torch.cat(lps, dim=1), torch.cat(ents, dim=1)  # (B, T), (B, T)
