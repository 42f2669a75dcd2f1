"""What an evaluation samples from, built from its `EvalSpec`: a local engine on a loaded model (`open_local`,
``hf`` or ``vllm``, loaded as `model_args` say), or a served model (`open_served`, engine ``openai``)."""

from __future__ import annotations

import os
from typing import Any

from rft.chat import use_chat_template
from rft.engines import Engine, make_engine
from rft.engines.api import ApiClient, Retry
from rft.engines.served import ChatModel, CompletionsModel, ServedModel
from rft.envs import get_suite
from rft.eval.spec import EvalSpec

__all__ = ["open_local", "open_served", "load_model"]

LOADING = ("dtype", "revision", "trust_remote_code")  # how the weights load; the rest go to the engine


def load_model(name_or_path: str, args: dict[str, Any]) -> tuple[Any, Any]:
    """The model and tokenizer at `name_or_path`, loaded with the model args `dtype`, `revision` and
    `trust_remote_code`."""
    from rft.models import load_policy

    return load_policy(
        name_or_path,
        dtype=args.get("dtype", "auto"),
        revision=args.get("revision"),
        trust_remote_code=bool(args.get("trust_remote_code")),
    )


def open_local(spec: EvalSpec, model: str) -> tuple[Engine, Any]:
    """A local engine (hf or vllm) on `model` loaded per `spec.model_args`, and its tokenizer."""
    policy, tokenizer = load_model(model, spec.model_args)
    use_chat_template(tokenizer, spec.chat)
    options = dict(spec.engine_options) | {k: v for k, v in spec.model_args.items() if k not in LOADING}
    return make_engine(spec.engine, policy, tokenizer, **options), tokenizer


def open_served(spec: EvalSpec, model: str) -> ServedModel:
    """The served `model` (its name on the server) behind `spec.server`, through its chat or completions
    API; the API key comes from the environment variable `spec.server.api_key_env`."""
    s = spec.server
    if s.base_url is None:
        raise ValueError("the openai engine needs the server's URL: --base-url http://HOST:PORT/v1")
    key = os.environ.get(s.api_key_env) or None
    retry = Retry(attempts=s.attempts, backoff_s=s.backoff_s, max_wait_s=s.max_wait_s)
    client = ApiClient(s.base_url, api_key=key or "", timeout_s=s.timeout_s, retry=retry)
    kwargs = spec.chat.merged(get_suite(spec.suite).prompt.chat_template_kwargs if spec.suite else None)
    if s.api == "chat":
        if spec.chat.template is not None:
            raise ValueError(
                "chat.template renders prompts here, but --api chat lets the server render them: use --api "
                "completions, or give the server the template (vllm serve --chat-template FILE)"
            )
        return ChatModel(client, model, template_kwargs=kwargs)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.model_args.get("tokenizer", model))
    use_chat_template(tokenizer, spec.chat)
    return CompletionsModel(
        client, model, tokenizer, token_ids=bool(spec.model_args.get("token_ids")), template_kwargs=kwargs
    )
