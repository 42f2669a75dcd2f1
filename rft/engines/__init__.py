"""Rollout engines: one interface, several backends; `make_engine` picks one by name.

- `HFEngine` (`hf`): transformers ``generate`` on the training model itself (the CPU default; nothing to sync).
- `ProcessEngine` (`process`): HF ``generate`` in a child process, overlapping sampling with the update.
- `VLLMEngine` (`vllm`): a colocated ``vllm.LLM``; weights pushed after each update.
- `VLLMServerEngine` (`vllm_server`): a ``vllm serve`` process of its own; weights pushed over HTTP.
- `OpenAIEngine` (`openai`): any OpenAI-compatible ``/v1/completions`` server, for evaluation.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rft.engines.base import Completion, Engine, FinishReason, Sampling
from rft.engines.hf import HFEngine
from rft.engines.openai import OpenAIEngine

__all__ = ["Sampling", "Completion", "Engine", "FinishReason", "HFEngine", "OpenAIEngine", "make_engine"]


def make_engine(
    kind: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, **options: Any
) -> Engine:
    """An engine by name: ``hf`` (options: batch_size), ``vllm`` (see `rft.engines.vllm.VLLMEngine`),
    ``vllm_server`` (options: base_url, weights_dir; see `rft.engines.vllm_server`), ``openai`` (base_url, model)."""
    if kind == "hf":
        return HFEngine(model, tokenizer, **options)
    if kind == "vllm":
        from rft.engines.vllm import VLLMEngine

        return VLLMEngine(model, tokenizer, **options)
    if kind == "openai":
        return OpenAIEngine(tokenizer=tokenizer, **options)
    if kind == "vllm_server":
        from rft.engines.vllm_server import VLLMServerEngine

        engine = VLLMServerEngine(tokenizer=tokenizer, **options)
        engine.update_weights(model)  # the server starts from the trainer's weights, whatever it loaded
        return engine
    raise ValueError(f"unknown engine {kind!r}; use hf, vllm, vllm_server or openai")
