"""Served models, text in and text out: what ``rft eval --engine openai`` samples from.

- `ChatModel` (``--api chat``, the default): ``POST /chat/completions`` with the conversation's messages as
  they are; the server applies its own chat template, so no local tokenizer is needed (vLLM, ``rft serve``,
  hosted APIs).
- `CompletionsModel` (``--api completions``): ``POST /completions`` with the conversation rendered by a local
  tokenizer's chat template, sent as text (a leading bos is left to the server, which adds its own) or, with
  ``token_ids``, as token ids (vLLM accepts them; ``rft serve`` takes text only).

Both ask for `Sampling.n` choices in one request and return them as `Reply` objects; failures raise
`rft.engines.api.RequestFailed` after the client's retries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from transformers import PreTrainedTokenizerBase

from rft.chat import render_chat
from rft.engines.api import ApiClient, RequestFailed
from rft.engines.base import FinishReason, Sampling

__all__ = ["Reply", "ServedModel", "ChatModel", "CompletionsModel", "APIS"]

APIS = ("chat", "completions")
Api = Literal["chat", "completions"]
Message = dict[str, str]


@dataclass(frozen=True)
class Reply:
    """One sampled reply: its text and why it stopped (``length``: it hit max_new_tokens)."""

    text: str
    finish_reason: FinishReason


class ServedModel(Protocol):
    name: str

    def reply(self, messages: Sequence[Message], sampling: Sampling) -> list[Reply]: ...


def _sampling_body(model: str, s: Sampling) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "n": s.n, "max_tokens": s.max_new_tokens,
                            "temperature": s.temperature, "top_p": s.top_p}  # fmt: skip
    if s.top_k:
        body["top_k"] = s.top_k  # not OpenAI's; vLLM and rft serve read it
    if s.stop:
        body["stop"] = list(s.stop)
    if s.seed is not None:
        body["seed"] = s.seed
    return body


def _replies(reply: dict[str, Any], n: int, where: str, text_of: Any) -> list[Reply]:
    """The `n` choices of an answer, in index order; a malformed answer is a `RequestFailed`."""
    try:
        choices = sorted(reply["choices"], key=lambda c: c["index"])
        out = [
            Reply(text_of(c) or "", "length" if c.get("finish_reason") == "length" else "stop")
            for c in choices
        ]
    except (KeyError, TypeError, AttributeError) as e:
        raise RequestFailed(f"{where}: malformed reply ({type(e).__name__}: {e}): {str(reply)[:200]}",
                            status=None, attempts=1) from None  # fmt: skip
    if len(out) != n:
        raise RequestFailed(f"{where}: asked for {n} choices, got {len(out)}", status=None, attempts=1)
    return out


class ChatModel:
    """`model` as served at ``client.base_url`` through ``/chat/completions``."""

    name = "openai-chat"

    def __init__(
        self, client: ApiClient, model: str, template_kwargs: Mapping[str, Any] | None = None
    ) -> None:
        self.client, self.model = client, model
        self.template_kwargs = dict(template_kwargs or {})  # sent as chat_template_kwargs (vLLM, rft serve)

    def reply(self, messages: Sequence[Message], sampling: Sampling) -> list[Reply]:
        body = _sampling_body(self.model, sampling) | {"messages": [dict(m) for m in messages]}
        if self.template_kwargs:
            body["chat_template_kwargs"] = self.template_kwargs
        answer = self.client.post("/chat/completions", body)
        return _replies(answer, sampling.n, f"{self.client.base_url}/chat/completions",
                        lambda c: c["message"]["content"])  # fmt: skip


class CompletionsModel:
    """`model` as served at ``client.base_url`` through ``/completions``, prompted with `tokenizer`'s chat
    template: text, or token ids when `token_ids` is set."""

    name = "openai-completions"

    def __init__(
        self,
        client: ApiClient,
        model: str,
        tokenizer: PreTrainedTokenizerBase,
        token_ids: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if tokenizer.chat_template is None:
            raise ValueError(
                "the tokenizer has no chat template to render the conversation with; use --api chat, or "
                "name a tokenizer that has one (--model-args tokenizer=PATH)"
            )
        self.client, self.model, self.tokenizer, self.token_ids = client, model, tokenizer, token_ids
        self.template_kwargs = dict(template_kwargs or {})  # passed to the chat template

    def prompt(self, messages: Sequence[Message]) -> str | list[int]:
        """What is sent as ``prompt``: the rendered conversation (text, or its token ids)."""
        text = render_chat(self.tokenizer, list(messages), add_generation_prompt=True, **self.template_kwargs)
        if self.token_ids:
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        bos = self.tokenizer.bos_token
        return text[len(bos) :] if bos and text.startswith(bos) else text  # the server adds its own bos

    def reply(self, messages: Sequence[Message], sampling: Sampling) -> list[Reply]:
        body = _sampling_body(self.model, sampling) | {"prompt": self.prompt(messages)}
        answer = self.client.post("/completions", body)
        return _replies(answer, sampling.n, f"{self.client.base_url}/completions", lambda c: c["text"])
