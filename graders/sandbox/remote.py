"""The ``remote`` backend: programs run by an ``rft sandbox serve`` server (graders/sandbox/service.py)
over HTTP, with a bearer token.

    {"type": "code", ..., "sandbox": "remote",
     "sandbox_options": {"url": "http://10.0.0.5:8123"}}     # token from RFT_SANDBOX_TOKEN

Options: ``url`` (default: the environment's ``RFT_SANDBOX_URL``), ``token`` (default: the environment's
``RFT_SANDBOX_TOKEN``, or the file named by ``token_file``; prefer either over writing the token in a
spec that is saved beside every run), ``timeout_margin`` (seconds added to each program's time limit
for the request: queueing on the server, transfer), ``busy_wait`` (seconds to keep retrying while the
server answers 429, too many runs of this client at once).

Only the program's outputs come back (`ExecResult`: stdout, stderr, the fd-3 result channel, exit
status, times); verdicts are judged in the grader's process as with a local sandbox. Whatever goes
wrong on the way (no server, a wrong token, a request over the server's size limit, a server that dies
mid-run, a 5xx) raises `SandboxError` (`SandboxUnavailable` for what a retry will not fix: no server,
refused token), which the code grader turns into an ``error`` grade, never a wrong answer.

The wire format (`result_to_json` / `result_from_json`, `limits_to_json` / `limits_from_json`): JSON,
bytes as base64. ``POST /v1/run`` takes ``{"program": str, "stdin": b64, "limits": {Limits fields}}``
and answers an ExecResult; ``GET /v1/info`` says which backend and how many workers serve.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import os
import random
import socket
import threading
import time
from dataclasses import asdict, fields
from typing import Any
from urllib.parse import urlsplit

from .base import ExecResult, Limits, SandboxError, SandboxUnavailable, register_sandbox

__all__ = [
    "HttpJson",
    "RemoteSandbox",
    "TOKEN_ENV",
    "URL_ENV",
    "limits_from_json",
    "limits_to_json",
    "read_token",
    "result_from_json",
    "result_to_json",
]

TOKEN_ENV = "RFT_SANDBOX_TOKEN"
URL_ENV = "RFT_SANDBOX_URL"
_BYTES = ("stdout", "stderr", "result")
_OUTCOMES = ("exited", "signaled", "timeout", "cpu_limit", "output_limit")


def read_token(token: str | None = None, token_file: str | None = None) -> str | None:
    """The token given, else the one in `token_file` (first line), else ``$RFT_SANDBOX_TOKEN``; None when
    there is none. An empty token counts as none."""
    if token:
        return token
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                text = f.readline().strip()
        except OSError as e:
            raise ValueError(f"cannot read the sandbox token file {token_file!r}: {e}") from e
        if not text:
            raise ValueError(f"the sandbox token file {token_file!r} is empty")
        return text
    return os.environ.get(TOKEN_ENV) or None


# ---- the wire format ----------------------------------------------------------------------------------


def limits_to_json(limits: Limits) -> dict[str, Any]:
    return asdict(limits)


def limits_from_json(data: Any) -> Limits:
    """Limits from a request; ValueError (saying which field) on anything else."""
    if not isinstance(data, dict):
        raise ValueError("limits must be an object of Limits fields")
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown limits field(s) {unknown}; known: {sorted(known)}")
    for k, v in data.items():
        if k == "stdout_overflow":
            if v not in ("kill", "discard"):
                raise ValueError(f"limits.stdout_overflow must be 'kill' or 'discard', got {v!r}")
        elif v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ValueError(f"limits.{k} must be a number, got {v!r}")
    return Limits(**data)


def result_to_json(res: ExecResult) -> dict[str, Any]:
    d = asdict(res)
    for k in _BYTES:
        d[k] = base64.b64encode(d[k]).decode("ascii")
    return d


def result_from_json(data: Any, backend: str) -> ExecResult:
    """An ExecResult from a server's reply; SandboxError when the reply is not one."""
    try:
        if not isinstance(data, dict) or data.get("outcome") not in _OUTCOMES:
            raise ValueError(f"no valid outcome in {str(data)[:200]}")
        known = {f.name for f in fields(ExecResult)}
        kw = {k: v for k, v in data.items() if k in known}
        for k in _BYTES:
            kw[k] = base64.b64decode(kw.get(k) or "", validate=True)
        info = kw.get("info")
        info = info if isinstance(info, dict) else {}
        kw["info"] = {**info, "server_backend": kw.get("backend", "")}
        kw["backend"] = backend
        return ExecResult(**kw)
    except (ValueError, TypeError, binascii.Error) as e:
        raise SandboxError(f"the sandbox server sent a malformed result: {e}") from None


# ---- the client ---------------------------------------------------------------------------------------


class HttpJson:
    """JSON over HTTP(S) to one server, a kept-alive connection per thread; transport failures raise
    `SandboxError` (`SandboxUnavailable` when nothing answers: `hint` says what to start or fix)."""

    def __init__(self, url: str, *, token: str | None = None, hint: str = "") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {url!r} must look like http://host:port")
        self.url = url.rstrip("/")
        self.hint = hint
        self._scheme, self._host = parts.scheme, parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path.rstrip("/")
        self._token = token
        self._local = threading.local()

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        reused = conn is not None
        if conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, reused

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def request(self, method: str, path: str, body: Any, timeout: float) -> tuple[int, bytes]:
        """(status, body) of one request to `path` under the url's own path; `body` is sent as JSON
        (None: no body). Retried once on a fresh connection when a kept-alive one turns out closed."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            conn, reused = self._connection(timeout)
            try:
                conn.request(method, self.path + path, body=data, headers=headers)
                resp = conn.getresponse()
                reply = resp.read()
            except (ConnectionRefusedError, socket.gaierror) as e:
                self.close()
                raise SandboxUnavailable(f"no server answers at {self.url} ({e}){self.hint}") from None
            except TimeoutError:
                self.close()
                raise SandboxError(
                    f"the server at {self.url} sent no reply within {timeout:.0f} s; it may be overloaded "
                    "(raise sandbox_options.timeout_margin) or hung"
                ) from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                stale = http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError
                if reused and attempt == 0 and isinstance(e, stale):
                    continue  # the server closed an idle kept-alive connection: once more, afresh
                raise SandboxError(
                    f"the connection to the server at {self.url} failed mid-request "
                    f"({type(e).__name__}: {e}); is the server still running?"
                ) from None
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return resp.status, reply
        raise AssertionError("unreachable")


@register_sandbox("remote")
class RemoteSandbox:
    """A client of an ``rft sandbox serve`` server (see the module docstring). Thread-safe: each thread
    keeps its own keep-alive connection."""

    name = "remote"

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        token_file: str | None = None,
        timeout_margin: float = 30.0,
        busy_wait: float = 120.0,
    ) -> None:
        url = url or os.environ.get(URL_ENV)
        if not url:
            raise SandboxUnavailable(
                f"sandbox 'remote' needs a server: set sandbox_options.url (or ${URL_ENV}) to the address "
                "that `rft sandbox serve` prints, e.g. http://127.0.0.1:8123"
            )
        hint = f"; start one with `rft sandbox serve` there, or fix sandbox_options.url / ${URL_ENV}"
        try:
            self.http = HttpJson(url, token=read_token(token, token_file), hint=hint)
        except ValueError as e:
            raise SandboxUnavailable(f"sandbox 'remote': {e}") from None
        self.url = self.http.url
        self.timeout_margin = timeout_margin
        self.busy_wait = busy_wait
        self._closed = False

    def _check(self, status: int, data: bytes) -> Any:
        text = data.decode("utf-8", "replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        why = body.get("error", text[:300]) if isinstance(body, dict) else text[:300]
        if status == 200:
            if not isinstance(body, dict):
                raise SandboxError(
                    f"the sandbox server at {self.url} sent a reply that is not a JSON object: {text[:300]!r}; "
                    "is the url that of `rft sandbox serve`?"
                )
            return body
        if status == 401:
            raise SandboxUnavailable(
                f"the sandbox server at {self.url} refused the token ({why}); give the token that "
                f"`rft sandbox serve` was started with in ${TOKEN_ENV} or sandbox_options.token"
            )
        if status == 413:
            raise SandboxError(f"the sandbox server at {self.url} refused the request as too large: {why}")
        if status == 503:
            raise SandboxUnavailable(f"the sandbox server at {self.url} cannot run programs: {why}")
        raise SandboxError(f"the sandbox server at {self.url} answered HTTP {status}: {why}")

    # -- the Sandbox interface

    def info(self) -> dict[str, Any]:
        """The server's description: backend, workers, per-client limit, body limit, uids."""
        status, data = self.http.request("GET", "/v1/info", None, 30.0)
        return dict(self._check(status, data))

    def run(self, program: str, stdin: bytes | str = b"", limits: Limits | None = None) -> ExecResult:
        if self._closed:
            raise SandboxError("this remote sandbox was closed")
        limits = limits or Limits()
        data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        body = {
            "program": program,
            "stdin": base64.b64encode(data).decode("ascii"),
            "limits": limits_to_json(limits),
        }
        timeout = limits.timeout + self.timeout_margin
        give_up = time.monotonic() + self.busy_wait
        delay = 0.02
        while True:
            status, reply = self.http.request("POST", "/v1/run", body, timeout)
            if status != 429:
                break
            if time.monotonic() + delay > give_up:
                raise SandboxError(
                    f"the sandbox server at {self.url} stayed busy for {self.busy_wait:.0f} s (HTTP 429: "
                    "this client had as many runs going as `rft sandbox serve --per-client` allows); run "
                    "fewer grader workers against it, or start the server with a larger --per-client"
                )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)
        return result_from_json(self._check(status, reply), self.name)

    def close(self) -> None:
        self._closed = True
        self.http.close()

    def __enter__(self) -> RemoteSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
