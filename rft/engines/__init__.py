"""Rollout engines: one interface, several backends; `make_engine` picks one by name.

- `HFEngine` (`hf`): transformers ``generate`` on the training model itself (the CPU default; nothing to sync).
- `ProcessEngine` (`process`): HF ``generate`` in a child process, overlapping sampling with the update.
- `VLLMEngine` (`vllm`): a colocated ``vllm.LLM``; weights pushed after each update.
- `VLLMServerEngine` (`vllm_server`): a ``vllm serve`` process of its own; weights pushed over HTTP.
- `OpenAIEngine` (`openai`): token ids through an OpenAI-compatible ``/v1/completions`` server (vLLM's).
- `LogitScaled`: any of them sampling from deliberately scaled logits (option ``logit_scale``), for tests
  of the sampler/trainer mismatch correction.

Evaluation of served models goes through text instead: `rft.engines.served` (``/chat/completions`` or
``/completions``), on `rft.engines.api.ApiClient` (retries, backoff, the API key).
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rft.engines.base import Completion, Engine, FinishReason, Sampling
from rft.engines.hf import HFEngine
from rft.engines.openai import OpenAIEngine
from rft.engines.perturbed import LogitScaled

__all__ = [
    "Sampling", "Completion", "Engine", "FinishReason", "HFEngine", "OpenAIEngine", "LogitScaled", "make_engine",
]  # fmt: skip


def make_engine(
    kind: str, model: PreTrainedModel | None, tokenizer: PreTrainedTokenizerBase, /, **options: Any
) -> Engine:
    """An engine by name: ``hf`` (options: batch_size), ``vllm`` (see `rft.engines.vllm.VLLMEngine`),
    ``vllm_server`` (options: base_url, weights_dir; see `rft.engines.vllm_server`), ``openai`` (options:
    base_url, model: the served model's name; the `model` argument is unused there and may be None). The
    first three arguments are positional only, so `options` may hold a ``model`` of its own. Any kind takes
    ``logit_scale``: sample from scaled logits (`LogitScaled`, a deliberately mismatched sampler)."""
    scale = options.pop("logit_scale", None)
    engine = _make(kind, model, tokenizer, **options)
    return engine if scale is None else LogitScaled(engine, scale)


def _make(
    kind: str, model: PreTrainedModel | None, tokenizer: PreTrainedTokenizerBase, /, **options: Any
) -> Engine:
    if kind not in ("hf", "vllm", "vllm_server", "openai"):
        raise ValueError(f"unknown engine {kind!r}; use hf, vllm, vllm_server or openai")
    if kind == "openai":
        return OpenAIEngine(tokenizer=tokenizer, **options)
    if model is None:
        raise ValueError(f"the {kind} engine samples from a loaded model; got None")
    if kind == "hf":
        return HFEngine(model, tokenizer, **options)
    if kind == "vllm":
        from rft.engines.vllm import VLLMEngine

        return VLLMEngine(model, tokenizer, **options)
    from rft.engines.vllm_server import VLLMServerEngine

    engine = VLLMServerEngine(tokenizer=tokenizer, **options)
    engine.update_weights(model)  # the server starts from the trainer's weights, whatever it loaded
    return engine
