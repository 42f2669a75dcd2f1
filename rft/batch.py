"""Trajectories to padded tensors, and the per-token log-probabilities of a batch under a model."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from rft.logprobs import NO_HEAD, chunked_logprobs, head_of
from rft.losses import entropy_from_logits, selective_log_softmax
from rft.rollout import Trajectory

__all__ = [
    "Batch", "collate", "token_logprobs", "token_stats", "behaviour_logprobs", "shared_prefix_logprobs",
    "shared_prefix_stats",
]  # fmt: skip


class Batch:
    """Right-padded token rows. `ids`, `attn`: (B, T); `mask`: (B, T-1), 1 where token t+1 is the
    model's own (the position that predicts it); `completion_len`: (B,) model tokens per row."""

    def __init__(self, ids: torch.Tensor, attn: torch.Tensor, mask: torch.Tensor) -> None:
        self.ids, self.attn, self.mask = ids, attn, mask

    def __len__(self) -> int:
        return self.ids.shape[0]

    def rows(self, index: torch.Tensor | Sequence[int]) -> Batch:
        idx = torch.as_tensor(index, dtype=torch.long)
        width = int(self.attn[idx].sum(1).max().item()) if len(idx) else 1  # drop all-padding columns
        return Batch(self.ids[idx, :width], self.attn[idx, :width], self.mask[idx, : width - 1])

    def to(self, device: torch.device) -> Batch:
        return Batch(self.ids.to(device), self.attn.to(device), self.mask.to(device))


def collate(trajs: Sequence[Trajectory], pad_id: int) -> Batch:
    width = max(len(t.ids) for t in trajs)
    ids = torch.full((len(trajs), width), pad_id, dtype=torch.long)  # (B, T)
    attn = torch.zeros((len(trajs), width), dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(trajs), width), dtype=torch.float32)  # (B, T)
    for i, t in enumerate(trajs):
        n = len(t.ids)
        ids[i, :n] = torch.tensor(t.ids)
        attn[i, :n] = 1
        mask[i, :n] = torch.tensor(t.mask, dtype=torch.float32)
    return Batch(ids, attn, mask[:, 1:])  # mask (B, T-1): targets are ids[:, 1:]


def behaviour_logprobs(trajs: Sequence[Trajectory], width: int) -> torch.Tensor:
    """The sampler's log-probabilities aligned like `token_logprobs`: (B, width - 1), 0 off model tokens."""
    out = torch.zeros((len(trajs), width), dtype=torch.float32)  # (B, T)
    for i, t in enumerate(trajs):
        if len(t.logprobs) != len(t.ids):
            raise ValueError("trajectory has no sampler logprobs: sample with Sampling(logprobs=True)")
        out[i, : len(t.ids)] = torch.tensor(t.logprobs, dtype=torch.float32)
    return out[:, 1:]  # (B, T-1): position t predicts token t+1


def token_logprobs(
    model: torch.nn.Module, batch: Batch, temperature: float = 1.0, chunk: int | None = None
) -> torch.Tensor:
    """log p(ids[:, t+1] | ids[:, :t+1]) for every position: (B, T-1), at the sampling temperature. The
    output head runs on `chunk` positions at a time (None: a byte budget; `rft.logprobs`): the logits
    (B, T, V) never exist."""
    return token_stats(model, batch, temperature, chunk)[0]


def token_stats(
    model: torch.nn.Module,
    batch: Batch,
    temperature: float = 1.0,
    chunk: int | None = None,
    entropy: bool = False,
    entropy_grad: bool = True,
    known_grad: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`token_logprobs` and, if `entropy`, the entropy of each position's next-token distribution (at the
    same temperature): (B, T-1) each; the entropy is None when not asked for, and has no gradient unless
    `entropy_grad` (a metric then costs no recomputation in backward). `known_grad` (B, T-1): the loss's
    gradient with respect to the log-probabilities, known in advance (`chunked_logprobs`)."""
    found = head_of(model)
    if found is None:
        logits = model(input_ids=batch.ids, attention_mask=batch.attn).logits[:, :-1, :]  # (B, T-1, V)
        if temperature > 0 and temperature != 1.0:
            logits = logits / temperature
        ent = entropy_from_logits(logits if entropy_grad else logits.detach()) if entropy else None
        return selective_log_softmax(logits, batch.ids[:, 1:]), ent  # (B, T-1) each
    head, cap = found
    out = model(input_ids=batch.ids, attention_mask=batch.attn, **NO_HEAD)
    hidden = out.hidden_states[-1][:, :-1, :]  # (B, T-1, H)
    lp, ent = chunked_logprobs(
        hidden, batch.ids[:, 1:], head, temperature, chunk, cap, entropy, entropy_grad, known_grad
    )
    return lp, ent if entropy else None


def shared_prefix_logprobs(
    model: torch.nn.Module,
    batch: Batch,
    prompt_lens: Sequence[int],
    temperature: float = 1.0,
    chunk: int | None = None,
) -> torch.Tensor:
    """`shared_prefix_stats` without the entropies."""
    return shared_prefix_stats(model, batch, prompt_lens, temperature, chunk)[0]


def shared_prefix_stats(
    model: torch.nn.Module,
    batch: Batch,
    prompt_lens: Sequence[int],
    temperature: float = 1.0,
    chunk: int | None = None,
    entropy: bool = False,
    entropy_grad: bool = True,
    known_grad: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`token_logprobs` for rows whose first `prompt_lens[i]` tokens repeat across rows (GRPO's groups):
    each distinct prompt is run once and its key/value cache is shared by its rows, so the model sees the
    prompt tokens once per group instead of once per sample. Same values and gradients; (B, T-1), with 0
    at the prompt positions (which the loss mask leaves out anyway); entropies (if `entropy`) likewise.
    `known_grad` (B, T-1) as in `token_stats`."""
    from transformers import DynamicCache

    found = head_of(model)
    extra = NO_HEAD if found else {}  # the chunked head: no full logits from either pass

    B, T = batch.ids.shape
    device = batch.ids.device
    lens = [int(n) for n in prompt_lens]
    if min(lens) < 1:
        raise ValueError("every row needs a prompt of at least one token")
    # the bookkeeping runs on host copies: one transfer instead of a sync or a launch per row on a GPU
    host_ids = batch.ids.cpu()  # (B, T)
    lengths = batch.attn.sum(1).tolist()
    keys: dict[tuple[int, ...], int] = {}
    owner = [keys.setdefault(tuple(host_ids[i, : lens[i]].tolist()), len(keys)) for i in range(B)]
    prompts = list(keys)
    width = max(len(p) for p in prompts)
    # the distinct prompts, left-padded: (U, P)
    p_ids = torch.tensor([[0] * (width - len(p)) + list(p) for p in prompts], device=device)
    p_attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    p_pos = (p_attn.cumsum(1) - 1).clamp(min=0)
    with warnings.catch_warnings():  # `past_key_values` is being renamed `cache` (transformers 5.2x)
        warnings.simplefilter("ignore", FutureWarning)
        out = model(input_ids=p_ids, attention_mask=p_attn, position_ids=p_pos, use_cache=True, **extra)
    # predicts each row's first completion token: hidden (U, H) with the chunked head, else logits (U, V)
    first = out.hidden_states[-1][:, -1, :] if found else out.logits[:, -1, :]
    rows = torch.tensor(owner, device=device)
    cache = DynamicCache()
    for layer, kv in enumerate(out.past_key_values.layers):
        cache.update(kv.keys[rows], kv.values[rows], layer)  # (B, heads, P, d): shared, differentiable
    # the rest of each row, right-padded: (B, C)
    c_len = [int(lengths[i]) - lens[i] for i in range(B)]
    cw = max(1, max(c_len))
    c_ids = torch.zeros((B, cw), dtype=torch.long)
    c_attn = torch.zeros((B, cw), dtype=torch.long)
    for i in range(B):
        c_ids[i, : c_len[i]] = host_ids[i, lens[i] : lens[i] + c_len[i]]
        c_attn[i, : c_len[i]] = 1
    c_ids, c_attn = c_ids.to(device), c_attn.to(device)
    c_pos = torch.tensor(lens, device=device)[:, None] + torch.arange(cw, device=device)[None]  # (B, C)
    attn = torch.cat([p_attn[rows], c_attn], dim=1)  # (B, P + C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        rest = model(input_ids=c_ids, attention_mask=attn, position_ids=c_pos, past_key_values=cache, **extra)
    # position lens[i] - 1 + k predicts token lens[i] + k; padding -> a spare column (T - 1)
    target = torch.tensor(lens, device=device)[:, None] - 1 + torch.arange(cw, device=device)[None]  # (B, C)
    target = torch.where(c_attn.bool(), target, torch.full_like(target, T - 1))
    if found:
        hidden = torch.cat([first[rows][:, None, :], rest.hidden_states[-1][:, :-1, :]], dim=1)  # (B, C, H)
        if known_grad is not None:  # (B, T-1) -> the completion layout (B, C), 0 at padding
            known_grad = torch.cat([known_grad, known_grad.new_zeros((B, 1))], dim=1).gather(1, target)
        lp, ent = chunked_logprobs(
            hidden, c_ids, found[0], temperature, chunk, found[1], entropy, entropy_grad, known_grad
        )  # (B, C) each
    else:
        logits = torch.cat([first[rows][:, None, :], rest.logits[:, :-1, :]], dim=1)  # (B, C, V)
        if temperature > 0 and temperature != 1.0:
            logits = logits / temperature
        lp = selective_log_softmax(logits, c_ids)  # (B, C)
        ent = (
            entropy_from_logits(logits if entropy_grad else logits.detach())
            if entropy
            else torch.zeros_like(lp)
        )

    def spread(x: torch.Tensor) -> torch.Tensor:  # (B, C) -> (B, T-1)
        return torch.zeros((B, T), dtype=x.dtype, device=device).scatter(1, target, x * c_attn)[:, : T - 1]

    return spread(lp), spread(ent) if entropy else None
