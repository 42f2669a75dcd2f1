"""vLLM server mode: rollouts from a `vllm serve` process of its own (another GPU, or another machine that
shares a filesystem), weights pushed after every update.

    python -m rft.engines.vllm_server MODEL_DIR --port 8000          # starts the server the way this engine needs
    engine: vllm_server
    engine_options: {base_url: http://localhost:8000/v1, weights_dir: /shared/rft-weights}

The server runs with ``VLLM_SERVER_DEV_MODE=1`` (its ``/collective_rpc`` endpoint) and rft's worker
extension (``--worker-extension-cls rft.engines.vllm._WorkerExtension``). `update_weights` writes the model
(LoRA merged) as safetensors into `weights_dir`, asks every worker to load that file in place (the same
reload as the colocated engine, tied LM head included) and drops the prefix cache. Completions come back
with their token ids (``return_token_ids``) and, when asked, the sampled tokens' log-probabilities.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from rft.engines.base import Completion, FinishReason, Sampling
from rft.engines.openai import OpenAIEngine

__all__ = ["VLLMServerEngine", "launch_server", "server_command"]


class VLLMServerEngine(OpenAIEngine):
    """Sample from a running vLLM server; push weights to it through a shared folder."""

    name = "vllm_server"

    def __init__(
        self,
        base_url: str,
        tokenizer: PreTrainedTokenizerBase,
        weights_dir: str,
        model: str | None = None,
        api_key: str = "EMPTY",
        timeout: float = 600.0,
        concurrency: int = 16,
    ) -> None:
        super().__init__(base_url, model or "", tokenizer, api_key, timeout)
        if not self.model:  # the server's only model
            self.model = self._get("/models")["data"][0]["id"]
        self.weights_dir = Path(weights_dir)
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self.version = 0
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="rft-vllm-server")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling) -> list[list[Completion]]:
        if any(len(p) == 0 for p in prompts):
            raise ValueError("a prompt has no tokens")
        return list(self._pool.map(lambda p: self._one(p, sampling), prompts))

    def _one(self, prompt: Sequence[int], s: Sampling) -> list[Completion]:
        body = self._body(prompt, s) | {
            "return_token_ids": True, "skip_special_tokens": True, "include_stop_str_in_output": False,
        }  # fmt: skip
        if s.logprobs:
            body["logprobs"] = 0  # the sampled token's own log-probability
        reply = self._post("/completions", body)
        out = []
        for choice in sorted(reply["choices"], key=lambda c: c["index"]):
            ids = list(choice["token_ids"])
            reason: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
            logprobs: list[float] = []
            if s.logprobs:
                logprobs = [float(x) for x in choice["logprobs"]["token_logprobs"]][: len(ids)]
            out.append(Completion(choice["text"], ids, reason, logprobs))
        return out

    def update_weights(self, model: torch.nn.Module) -> None:
        """Write `model`'s weights (LoRA merged) to `weights_dir` and load them into every server worker."""
        from safetensors.torch import save_file

        from rft.engines.vllm import named_weights

        self.version += 1
        folder = self.weights_dir / f"v{self.version:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            tensors = {n: t.detach().to("cpu").contiguous() for n, t in named_weights(model)}
        save_file(tensors, str(folder / "model.safetensors"))
        self._post("/collective_rpc", {"method": "rft_load_weights_from", "args": [str(folder / "model.safetensors")]},
                   root=True)  # fmt: skip
        self._post("/reset_prefix_cache", {}, root=True)  # cached prompt KV came from the old weights
        for old in self.weights_dir.glob("v*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)

    # -- http ----------------------------------------------------------------------------------------------

    def _root(self) -> str:
        return self.base_url.removesuffix("/v1")

    def _post(self, path: str, body: dict[str, Any], root: bool = False) -> dict[str, Any]:
        if not root:
            return super()._post(path, body)
        req = urllib.request.Request(
            self._root() + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                text = resp.read()
        except urllib.error.HTTPError as e:
            hint = " (is the server started with VLLM_SERVER_DEV_MODE=1?)" if e.code == 404 else ""
            raise RuntimeError(f"{self._root()}{path}: HTTP {e.code}{hint}: {e.read()[:500]!r}") from None
        return json.loads(text) if text.strip() else {}

    def _get(self, path: str) -> dict[str, Any]:
        req = urllib.request.Request(
            self.base_url + path, headers={"Authorization": f"Bearer {self.api_key}"}
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read())


def server_command(model_dir: str | Path, port: int, *extra: str, python: str = sys.executable) -> list[str]:
    """The command line of a vLLM server this engine can drive."""
    return [
        python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--port", str(port),
        "--worker-extension-cls", "rft.engines.vllm._WorkerExtension",
        "--logprobs-mode", "processed_logprobs",  # log-probabilities under temperature, like the hf engine
        "--generation-config", "vllm",  # sampling comes from the request only, not the model's defaults
        *extra,
    ]  # fmt: skip


def launch_server(
    model_dir: str | Path,
    port: int,
    *extra: str,
    python: str = sys.executable,
    log: str | Path | None = None,
    timeout: float = 600.0,
) -> subprocess.Popen:
    """Start a vLLM server (dev mode, rft's worker extension) and wait until it answers ``/health``."""
    env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1"}
    out = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
    proc = subprocess.Popen(server_command(model_dir, port, *extra, python=python), env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the vLLM server exited with {proc.returncode} (log: {log})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1.0)
    proc.kill()
    raise TimeoutError(f"the vLLM server did not answer within {timeout:.0f} s (log: {log})")


if __name__ == "__main__":  # python -m rft.engines.vllm_server MODEL_DIR --port 8000 [vllm serve options]
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit("usage: python -m rft.engines.vllm_server MODEL_DIR [--port 8000] [vllm options]")
    os.environ["VLLM_SERVER_DEV_MODE"] = "1"
    port = 8000
    if "--port" in args:
        i = args.index("--port")
        port = int(args[i + 1])
        del args[i : i + 2]
    os.execvp(sys.executable, server_command(args[0], port, *args[1:]))
