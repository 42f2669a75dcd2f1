"""`OpenAIEngine`: token ids in and out of an OpenAI-compatible ``/v1/completions`` server (vLLM's).

The token-level engine behind `rft.engines.vllm_server`; ``rft eval --engine openai`` samples text through
`rft.engines.served` instead. Requests are retried as `rft.engines.api.ApiClient` says."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from rft.engines.api import ApiClient, Retry
from rft.engines.base import Completion, FinishReason, Sampling

__all__ = ["OpenAIEngine"]


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
        retry: Retry = Retry(),  # noqa: B008  (frozen: shared safely)
    ) -> None:
        self.base_url, self.model, self.tokenizer = base_url.rstrip("/"), model, tokenizer
        self.api_key, self.timeout = api_key, timeout
        self.client = ApiClient(self.base_url, api_key=api_key, timeout_s=timeout, retry=retry)

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
        """POST `body` to `path` under the base URL; `rft.engines.api.RequestFailed` when it fails for good."""
        return self.client.post(path, body)
