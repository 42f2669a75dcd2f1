"""A minimal OpenAI-compatible HTTP server over one transformers causal LM.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``,
``POST /v1/embeddings`` (mean-pooled last hidden state, L2-normalised). Non-streaming only.
Built on the standard library's `ThreadingHTTPServer` (no extra dependency); one lock serialises
the model, which is what a CPU or single-GPU test server wants. For throughput, use vLLM.

    handle = serve("path/to/model")          # background thread, port chosen by the OS
    OpenAI(base_url=handle.url, api_key="x")  # handle.url ends in /v1
    handle.close()
"""

from __future__ import annotations

import argparse
import array
import base64
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from rft.logprobs import head_of
from rft.models import load_policy

__all__ = ["Server", "serve", "run_server", "main"]

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 256
MAX_N = 16


class RequestError(ValueError):
    """A bad request: answered with HTTP 400 and OpenAI's error shape."""


def _norm_content(content: Any) -> str:
    """OpenAI message content: a string, None, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise RequestError(f"unsupported content part {part!r}: only text parts are served")
        return "".join(texts)
    raise RequestError(f"message content must be a string or a list of text parts, got {content!r}")


def _number(body: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise RequestError(f"{key} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def _integer(body: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RequestError(f"{key} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise RequestError(f"stop must be a non-empty string or a list of them, got {stop!r}")
    return stops


class _StopOnText(StoppingCriteria):
    """Stop each row once its generated text contains a stop string."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stops: list[str], prompt_len: int) -> None:
        self.tokenizer, self.stops, self.prompt_len = tokenizer, stops, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)  # (B,)


class Engine:
    """The model, its tokenizer and a lock; turns request bodies into OpenAI response bodies."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.lock = threading.Lock()
        self.device = next(model.parameters()).device
        self.max_context = getattr(model.config, "max_position_embeddings", None) or 2048
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]  # chat models often end turns with extra tokens
        self.eos_ids = {t for t in [*eos, tokenizer.eos_token_id] if t is not None}
        if not self.eos_ids:
            raise ValueError("the model has no eos token: set generation_config.eos_token_id")
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else next(iter(self.eos_ids))

    # -- generation -------------------------------------------------------------------------

    def _generate(self, prompt_ids: list[int], body: dict[str, Any], max_tokens: int | None) -> list[dict]:
        """Sample `n` completions of one prompt. Returns [{text, finish_reason, tokens}]."""
        temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
        top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
        n = _integer(body, "n", 1, MAX_N) or 1
        seed = _integer(body, "seed", -(2**63), 2**64 - 1)
        stops = _stops(body)
        room = self.max_context - len(prompt_ids)
        if room < 1:
            raise RequestError(
                f"the prompt has {len(prompt_ids)} tokens; this model's context is {self.max_context}"
            )
        max_new = min(max_tokens or DEFAULT_MAX_TOKENS, room)
        greedy = temperature == 0.0 or top_p == 0.0
        config = GenerationConfig(
            max_new_tokens=max_new,
            do_sample=not greedy,
            temperature=None if greedy else temperature,
            top_p=None if greedy else top_p,
            top_k=None if greedy else 0,  # 0: no top-k cut (OpenAI semantics; HF defaults to 50)
            num_return_sequences=1 if greedy else n,  # greedy: one decode, copied n times
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
        )
        input_ids = torch.tensor([prompt_ids], device=self.device)  # (1, P)
        criteria = StoppingCriteriaList(
            [_StopOnText(self.tokenizer, stops, len(prompt_ids))] if stops else []
        )
        with self.lock, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed % 2**63)
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=config,
                stopping_criteria=criteria,
            )  # (R, P + new)
        results = []
        for row in out[:, len(prompt_ids) :].tolist():
            tokens, finish = [], "length"
            for t in row:
                if t == self.pad_id and t not in self.eos_ids:  # a row stopped early by a stop string
                    break
                tokens.append(t)
                if t in self.eos_ids:
                    finish = "stop"
                    break
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
            results.append({"text": text, "finish_reason": finish, "tokens": len(tokens)})
        return results * n if greedy else results

    @staticmethod
    def _max_tokens(body: dict[str, Any]) -> int | None:
        a = _integer(body, "max_completion_tokens", 1, 2**31)
        return a if a is not None else _integer(body, "max_tokens", 1, 2**31)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("messages must be a non-empty list of {role, content} objects")
        chat = []
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise RequestError(f"each message needs a string role, got {m!r}")
            chat.append({"role": m["role"], "content": _norm_content(m.get("content"))})
        kwargs = body.get("chat_template_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise RequestError("chat_template_kwargs must be an object")
        prompt = self.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=False, **kwargs
        )
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        results = self._generate(prompt_ids, body, self._max_tokens(body))
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": r["text"]},
                "finish_reason": r["finish_reason"],
                "logprobs": None,
            }
            for i, r in enumerate(results)
        ]
        return self._response("chat.completion", "chatcmpl", choices, len(prompt_ids), results)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        prompts = body.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise RequestError("prompt must be a string or a non-empty list of strings")
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        choices: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        prompt_tokens = 0
        for prompt in prompts:
            prompt_ids = bos + self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            prompt_tokens += len(prompt_ids)
            for r in self._generate(prompt_ids, body, _integer(body, "max_tokens", 1, 2**31) or 16):
                choices.append(
                    {
                        "index": len(choices),
                        "text": r["text"],
                        "finish_reason": r["finish_reason"],
                        "logprobs": None,
                    }
                )
                results.append(r)
        return self._response("text_completion", "cmpl", choices, prompt_tokens, results)

    def _response(self, obj: str, prefix: str, choices: list, prompt_tokens: int, results: list) -> dict:
        completion_tokens = sum(r["tokens"] for r in results)
        return {
            "id": f"{prefix}-{uuid.uuid4().hex}",
            "object": obj,
            "created": int(time.time()),
            "model": self.name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    # -- embeddings -------------------------------------------------------------------------

    def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise RequestError("input must be a string, a list of strings, or token id lists")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise RequestError(f"encoding_format must be 'float' or 'base64', got {fmt!r}")
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        rows = []
        for x in inputs:
            if isinstance(x, str):
                rows.append(bos + self.tokenizer(x, add_special_tokens=False)["input_ids"])
            elif isinstance(x, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in x):
                rows.append(bos + x)
            else:
                raise RequestError(f"each input must be a string or a list of token ids, got {x!r}")
        if max(len(r) for r in rows) > self.max_context:
            raise RequestError(f"an input is longer than this model's context ({self.max_context} tokens)")
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.pad_id] * (width - len(r)) for r in rows], device=self.device)  # (B, T)
        mask = torch.tensor(
            [[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device
        )  # (B, T)
        skip = {"logits_to_keep": 1} if head_of(self.model) is not None else {}  # no (B, T, V) logits
        with self.lock, torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, **skip)
        hidden = out.hidden_states[-1]  # (B, T, C)
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * m).sum(1) / m.sum(1)  # (B, C)
        vectors = torch.nn.functional.normalize(pooled.float(), dim=-1).tolist()
        data = []
        for i, vec in enumerate(vectors):
            emb: Any = vec if fmt == "float" else base64.b64encode(array.array("f", vec).tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        n_tokens = sum(len(r) for r in rows)
        return {
            "object": "list",
            "data": data,
            "model": self.name,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }

    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": self.name, "object": "model", "created": 0, "owned_by": "rft"}],
        }


def _error_body(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every reply carries Content-Length
    timeout = 120  # an idle keep-alive connection is dropped after this many seconds
    engine: Engine  # set on a per-server subclass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    def do_GET(self) -> None:
        if self._path() in ("/v1/models", "/models"):
            self._send(200, self.engine.models())
        elif self._path() in ("/health", ""):
            self._send(200, {"status": "ok"})
        else:
            self._send(404, _error_body(f"no route GET {self.path}", "not_found_error", 404))

    def do_POST(self) -> None:
        routes = {
            "/v1/chat/completions": self.engine.chat,
            "/v1/completions": self.engine.complete,
            "/v1/embeddings": self.engine.embed,
        }
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            self._send(411, _error_body("send a Content-Length header", "invalid_request_error", 411))
            return
        raw = self.rfile.read(int(length))
        route = routes.get(self._path())
        if route is None:
            self._send(404, _error_body(f"no route POST {self.path}", "not_found_error", 404))
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise RequestError("the request body must be a JSON object")
            if body.get("stream"):
                raise RequestError("stream=true is not supported by this server; send stream=false")
            self._send(200, route(body))
        except (RequestError, json.JSONDecodeError) as e:
            self._send(400, _error_body(str(e), "invalid_request_error", 400))
        except Exception as e:  # a model failure answers 500 instead of dropping the connection
            log.exception("request to %s failed", self.path)
            self._send(500, _error_body(f"{type(e).__name__}: {e}", "server_error", 500))

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s " + format, self.address_string(), *args)


@dataclass
class Server:
    """A running server. `url` is the OpenAI base URL (``http://host:port/v1``)."""

    httpd: ThreadingHTTPServer
    thread: threading.Thread
    engine: Engine

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load(model: str | Path | tuple[PreTrainedModel, PreTrainedTokenizerBase], device: str | None):
    if isinstance(model, tuple):
        lm, tok = model
        return lm, tok, getattr(lm.config, "_name_or_path", "") or "local"
    lm, tok = load_policy(model, device=device or "auto")  # a run folder stands for its model
    return lm, tok, str(model)


def serve(
    model: str | Path | tuple[PreTrainedModel, PreTrainedTokenizerBase],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    name: str | None = None,
    device: str | None = None,
) -> Server:
    """Serve a model (a path, or a `(model, tokenizer)` pair) from a background thread.

    `port=0` lets the OS pick a free port; read it back from `.port` / `.url`. `name` is the model id
    reported by the server (default: the path)."""
    lm, tok, default_name = _load(model, device)
    engine = Engine(lm, tok, name or default_name)
    handler = type("Handler", (_Handler,), {"engine": engine})
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever, name=f"rft-serve-{httpd.server_address[1]}", daemon=True
    )
    thread.start()
    return Server(httpd, thread, engine)


def run_server(model: str, host: str = "127.0.0.1", port: int = 8000, name: str | None = None) -> None:
    """Serve `model` until interrupted (the `rft serve` command)."""
    server = serve(model, host, port, name=name)
    print(f"serving {server.engine.name} at {server.url}", flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="rft serve", description="OpenAI-compatible server for a local model"
    )
    parser.add_argument("--model", required=True, help="a model directory (transformers format)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default=None, help="model id to report (default: the path)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run_server(args.model, args.host, args.port, args.name)


if __name__ == "__main__":
    main()
