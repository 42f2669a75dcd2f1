"""Trajectories to padded tensors, and the per-token log-probabilities of a batch under a model."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .losses import selective_log_softmax
from .rollout import Trajectory

__all__ = ["Batch", "collate", "token_logprobs", "behaviour_logprobs"]


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


def token_logprobs(model: torch.nn.Module, batch: Batch, temperature: float = 1.0) -> torch.Tensor:
    """log p(ids[:, t+1] | ids[:, :t+1]) for every position: (B, T-1), at the sampling temperature."""
    logits = model(input_ids=batch.ids, attention_mask=batch.attn).logits[:, :-1, :]  # (B, T-1, V)
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    return selective_log_softmax(logits, batch.ids[:, 1:])  # (B, T-1)
