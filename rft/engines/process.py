"""`ProcessEngine`: transformers `generate` in a child process, so sampling runs on another core than the
update without sharing the trainer's interpreter (a sampling thread in the trainer's process competes for
its GIL: measured slower than no overlap on 2 cores). The child holds its own copy of the weights;
`update_weights` sends the trainable state over a pipe (fine for small models; large ones use vLLM).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rft.engines.base import Completion, Sampling
from rft.engines.hf import HFEngine

__all__ = ["ProcessEngine"]

_CONTEXT = mp.get_context("spawn")  # a fresh interpreter: never fork a trainer holding big tensors


class ProcessEngine:
    """An `HFEngine` in a child process. The child loads a copy of `model` (saved to a temporary folder) on
    the model's device and samples on `threads` torch threads; `generate` blocks the calling thread only
    (waiting on a pipe). `autocast` (a model training in bf16 mixed precision): the copy, which never
    trains, holds its weights in that dtype."""

    name = "hf-process"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int = 64,
        threads: int = 1,
        autocast: torch.dtype | None = None,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="rft-sampler-")
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        if base is not model:
            raise ValueError(
                "ProcessEngine takes a plain model; merge a LoRA adapter first (or use engine vllm)"
            )
        model.save_pretrained(self._tmp.name)
        tokenizer.save_pretrained(self._tmp.name)
        self._conn, child = _CONTEXT.Pipe()
        self._proc = _CONTEXT.Process(
            target=_serve,
            args=(
                child,
                self._tmp.name,
                str(autocast or model.dtype),
                str(model.device),
                batch_size,
                threads,
            ),
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._call("ping")

    def _call(self, op: str, *args: Any) -> Any:
        if not self._proc.is_alive():
            raise RuntimeError(f"the sampler process died (exit code {self._proc.exitcode})")
        self._conn.send((op, args))
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"the sampler process died (exit code {self._proc.exitcode})") from None
        if status == "error":
            raise RuntimeError(f"the sampler process failed: {value}")
        return value

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling) -> list[list[Completion]]:
        return self._call("generate", [list(p) for p in prompts], sampling)

    def update_weights(self, model: torch.nn.Module) -> None:
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self._call("load", state)

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(("stop", ()))
                self._proc.join(timeout=10)
            except (BrokenPipeError, OSError):
                pass
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self._conn.close()
        self._tmp.cleanup()


def _serve(conn: Connection, folder: str, dtype: str, device: str, batch_size: int, threads: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype.removeprefix("torch.")))
    model = model.to(device)
    engine = HFEngine(model, AutoTokenizer.from_pretrained(folder), batch_size=batch_size)
    parent = os.getppid()
    while True:
        try:
            op, args = conn.recv()
        except EOFError:
            return
        if os.getppid() != parent or op == "stop":
            return
        try:
            if op == "generate":
                conn.send(("ok", engine.generate(*args)))
            elif op == "load":
                model.load_state_dict(args[0])
                conn.send(("ok", None))
            else:
                conn.send(("ok", "pong"))
        except (RuntimeError, ValueError, TypeError) as e:  # sent back: the trainer raises with the cause
            conn.send(("error", f"{type(e).__name__}: {e}"))
