"""`HFEngine`: transformers ``generate`` on the training model itself (the CPU default; nothing to sync)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from rft.engines.base import Completion, FinishReason, Sampling
from rft.models import autocast, fast_attention

__all__ = ["HFEngine"]


class _StopOnText(StoppingCriteria):
    """Stop a row once its new text contains a stop string (HF's own `stop_strings` needs a tokenizer
    whose tokens map to text one to one; this works for any)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stops: Sequence[str], prompt_len: int) -> None:
        self.tokenizer, self.stops, self.prompt_len = tokenizer, list(stops), prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _SampledLogprobs(LogitsProcessor):
    """The sampled tokens' log-probabilities under the model's raw logits / temperature, one decoding step at
    a time, so the T steps' (B, V) logits are never kept (``output_logits=True`` keeps them all).

    A forward hook on the model keeps its latest raw logits (before any logits processor: repetition
    penalties and the like from a checkpoint's generation config, top-k/top-p; transformers runs custom
    processors after its own). As a logits processor (it leaves the scores alone) this is called once per
    sampling step, after the prefill however many forward passes that took, with the sequences so far:
    their last column is the token sampled from the previous step's log-softmax (B, V), the only one
    kept. `finish` picks the last step's from the returned sequences."""

    def __init__(self, model: torch.nn.Module, temperature: float) -> None:
        self.temperature = temperature
        self.thread = threading.get_ident()  # a hook sees every thread's calls: record this one's only
        self.raw: torch.Tensor | None = None  # (B, V): the latest forward pass's last-position logits
        self.pending: torch.Tensor | None = None  # (B, V): the last step's log-softmax
        self.picked: list[torch.Tensor] = []  # (B,) per step whose token is known
        base = getattr(model, "get_base_model", None)  # peft: `generate` runs the wrapped model
        target = base() if callable(base) else model
        self.handle = target.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if threading.get_ident() == self.thread:
            self.raw = out.logits[:, -1]  # (B, V)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.raw is None:
            raise RuntimeError(
                "no forward pass of the model was seen before sampling: cannot record logprobs"
            )
        if self.pending is not None:  # input_ids ends with the token sampled from the previous step
            self.picked.append(self.pending.gather(-1, input_ids[:, -1:]).squeeze(-1))
        logits = self.raw.float()  # (B, V): what `generate` turns into this step's scores
        if self.temperature > 0:
            logits = logits / self.temperature
        self.pending, self.raw = torch.log_softmax(logits, dim=-1), None  # (B, V)
        return scores

    def finish(self, new: torch.Tensor) -> torch.Tensor:
        """The log-probabilities of the new tokens `new` (B, T): (B, T)."""
        self.close()
        steps = self.picked[: new.shape[1]]
        if len(steps) < new.shape[1] and self.pending is not None:
            steps.append(self.pending.gather(-1, new[:, len(steps), None]).squeeze(-1))
        if len(steps) != new.shape[1]:
            raise RuntimeError(f"{len(steps)} sampling steps seen for {new.shape[1]} new tokens")
        return torch.stack(steps, dim=1)  # (B, T)

    def close(self) -> None:
        self.handle.remove()


class HFEngine:
    """Sample with transformers ``generate`` from `model` itself: the trainer's updates are seen at once.

    Prompts are left-padded into batches of at most `batch_size` rows (a prompt's `n` samples count as
    `n` rows). The model is put in eval mode while generating and restored after. `autocast` (a dtype):
    generate under `torch.autocast` in it (a model training in bf16 mixed precision).
    """

    name = "hf"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int = 64,
        autocast: torch.dtype | None = None,
    ) -> None:
        if tokenizer.pad_token_id is None:
            raise ValueError(
                "the tokenizer has no pad token; set tokenizer.pad_token (e.g. to its eos token)"
            )
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.autocast = autocast

    def update_weights(self, model: torch.nn.Module) -> None:
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())

    def close(self) -> None:
        pass

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling) -> list[list[Completion]]:
        rows = [list(p) for p in prompts for _ in range(sampling.n)]
        if any(not r for r in rows):
            raise ValueError("a prompt has no tokens")
        out: list[Completion] = []
        was_training = self.model.training
        self.model.eval()
        amp = autocast(self.autocast, self.model.device)
        try:  # a GPU: no cuDNN attention (an execution plan for every new shape; see `fast_attention`)
            with (
                amp,
                fast_attention(self.model.device),
                torch.random.fork_rng(devices=[], enabled=sampling.seed is not None),
            ):
                if sampling.seed is not None:
                    torch.manual_seed(sampling.seed)
                for start in range(0, len(rows), self.batch_size):
                    out += self._batch(rows[start : start + self.batch_size], sampling)
        finally:
            self.model.train(was_training)
        return [out[i * sampling.n : (i + 1) * sampling.n] for i in range(len(prompts))]

    def _batch(self, rows: list[list[int]], s: Sampling) -> list[Completion]:
        tok = self.tokenizer
        width = max(len(r) for r in rows)
        device = self.model.device
        input_ids = torch.tensor(
            [[tok.pad_token_id] * (width - len(r)) + r for r in rows], device=device
        )  # (B, P)
        attention_mask = torch.tensor(
            [[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device
        )  # (B, P)
        kwargs: dict[str, Any] = {"do_sample": s.temperature > 0, "max_new_tokens": s.max_new_tokens}
        if s.temperature > 0:
            kwargs |= {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k or None}
        else:
            kwargs |= {"temperature": None, "top_p": None, "top_k": None}
        if s.stop:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnText(tok, s.stop, width)])
        recorder = _SampledLogprobs(self.model, s.temperature) if s.logprobs else None
        if recorder is not None:
            kwargs["logits_processor"] = LogitsProcessorList([recorder])
        try:
            gen = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                return_dict_in_generate=True,
                **kwargs,
            )
        finally:
            if recorder is not None:
                recorder.close()
        new = gen.sequences[:, width:]  # (B, T)
        logprobs = None if recorder is None else recorder.finish(new)  # (B, T)
        return [
            self._completion(new[i].tolist(), None if logprobs is None else logprobs[i].tolist(), s)
            for i in range(len(rows))
        ]

    def _completion(self, ids: list[int], logprobs: list[float] | None, s: Sampling) -> Completion:
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        reason: FinishReason = "length"
        while ids and pad != eos and ids[-1] == pad:  # rows finished early are padded
            ids = ids[:-1]
        if eos in ids:
            ids = ids[: ids.index(eos) + 1]
            reason = "stop"
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for stop in s.stop:
            if stop in text:
                text, reason = text[: text.index(stop)], "stop"
                ids = _trim_to_text(self.tokenizer, ids, stop)
        if (
            reason == "length" and len(ids) < s.max_new_tokens
        ):  # generation stopped early on padding: should not happen
            reason = "stop"
        lp = [] if logprobs is None else logprobs[: len(ids)]
        return Completion(text, ids, reason, lp)


def _trim_to_text(tokenizer: PreTrainedTokenizerBase, ids: list[int], stop: str) -> list[int]:
    """The shortest prefix of `ids` whose text contains `stop` (the tokens that produced it)."""
    for k in range(1, len(ids) + 1):
        if stop in tokenizer.decode(ids[:k], skip_special_tokens=True):
            return ids[:k]
    return ids
