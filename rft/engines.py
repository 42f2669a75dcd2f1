"""Rollout engines: one interface, several backends.

``engine.generate(prompts, sampling) -> [[Completion] * n] * len(prompts)`` where each prompt is a list of
token ids (the trainer owns chat templating and the token layout of multi-turn episodes), and
``engine.update_weights(model)`` makes the engine sample from the trainer's current weights.

- `HFEngine`: transformers ``generate`` on the training model itself (the CPU default; nothing to sync).
- `VLLMEngine` (`rft.vllm_engine`): a colocated ``vllm.LLM``; weights pushed after each update.
- `OpenAIEngine`: any OpenAI-compatible ``/v1/completions`` server (vLLM's, ``rft serve``), for evaluation.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

from .models import autocast, fast_attention

__all__ = ["Sampling", "Completion", "Engine", "HFEngine", "OpenAIEngine", "make_engine"]

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters shared by every engine. ``temperature=0`` is greedy; ``top_k=0`` is off."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()  # text after a stop string is cut (the tokens that made it are kept)
    n: int = 1  # completions per prompt
    seed: int | None = None
    logprobs: bool = False  # return the sampled tokens' log-probabilities (under temperature)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.max_new_tokens < 1 or self.n < 1:
            raise ValueError(f"max_new_tokens and n must be >= 1, got {self.max_new_tokens} and {self.n}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True)
class Completion:
    """One sampled continuation: its text, its token ids (ending with eos when it stopped there), and the
    sampled tokens' log-probabilities when asked for (empty otherwise)."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    logprobs: list[float] = field(default_factory=list)


class Engine(Protocol):
    name: str

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling) -> list[list[Completion]]: ...

    def update_weights(self, model: torch.nn.Module) -> None: ...

    def close(self) -> None: ...


class _StopOnText(StoppingCriteria):
    """Stop a row once its new text contains a stop string (HF's own `stop_strings` needs a tokenizer
    whose tokens map to text one to one; this works for any)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stops: Sequence[str], prompt_len: int) -> None:
        self.tokenizer, self.stops, self.prompt_len = tokenizer, list(stops), prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


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
        gen = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            return_dict_in_generate=True,
            output_logits=s.logprobs,
            **kwargs,
        )
        new = gen.sequences[:, width:]  # (B, T)
        logprobs = None
        if s.logprobs:
            logits = torch.stack(gen.logits, dim=1).float()  # (B, T, V)
            if s.temperature > 0:
                logits = logits / s.temperature
            logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)  # (B, T)
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


class OpenAIEngine:
    """Sample from an OpenAI-compatible server's ``/v1/completions`` with token-id prompts (vLLM's server
    accepts them; ``rft serve`` takes text prompts only, so it cannot back this engine). Weights live in
    the server: `update_weights` is not supported here (vLLM server mode pushes them separately)."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer: PreTrainedTokenizerBase,
        api_key: str = "EMPTY",
        timeout: float = 600.0,
    ) -> None:
        self.base_url, self.model, self.tokenizer = base_url.rstrip("/"), model, tokenizer
        self.api_key, self.timeout = api_key, timeout

    def update_weights(self, model: torch.nn.Module) -> None:
        raise NotImplementedError(
            "the openai engine samples from a server's weights; use the hf or vllm engine to train"
        )

    def close(self) -> None:
        pass

    def _body(self, prompt: Sequence[int], s: Sampling) -> dict[str, Any]:
        """The `/v1/completions` request for `prompt`'s `s.n` samples."""
        body: dict[str, Any] = {
            "model": self.model, "prompt": list(prompt), "n": s.n, "max_tokens": s.max_new_tokens,
            "temperature": s.temperature, "top_p": s.top_p,
        }  # fmt: skip
        if s.top_k:
            body["top_k"] = s.top_k
        if s.stop:
            body["stop"] = list(s.stop)
        if s.seed is not None:
            body["seed"] = s.seed
        return body

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling) -> list[list[Completion]]:
        results = []
        for prompt in prompts:
            reply = self._post("/completions", self._body(prompt, sampling))
            comps = []
            for choice in sorted(reply["choices"], key=lambda c: c["index"]):
                text = choice["text"]
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                reason: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
                if reason == "stop" and self.tokenizer.eos_token_id is not None:
                    ids = [*ids, self.tokenizer.eos_token_id]
                comps.append(Completion(text, ids, reason))
            results.append(comps)
        return results

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{self.base_url}{path}: HTTP {e.code}: {e.read()[:500]!r}") from None


def make_engine(
    kind: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, **options: Any
) -> Engine:
    """An engine by name: ``hf`` (options: batch_size), ``vllm`` (see `rft.vllm_engine.VLLMEngine`),
    ``vllm_server`` (options: base_url, weights_dir; see `rft.vllm_server`), ``openai`` (base_url, model)."""
    if kind == "hf":
        return HFEngine(model, tokenizer, **options)
    if kind == "vllm":
        from .vllm_engine import VLLMEngine

        return VLLMEngine(model, tokenizer, **options)
    if kind == "openai":
        return OpenAIEngine(tokenizer=tokenizer, **options)
    if kind == "vllm_server":
        from .vllm_server import VLLMServerEngine

        engine = VLLMServerEngine(tokenizer=tokenizer, **options)
        engine.update_weights(model)  # the server starts from the trainer's weights, whatever it loaded
        return engine
    raise ValueError(f"unknown engine {kind!r}; use hf, vllm, vllm_server or openai")
