"""``rft sandbox serve``: the sandbox interface over HTTP, for graders on other machines (the ``remote``
backend, graders/sandbox/remote.py, is its client).

A pool of `workers` sandboxes of one backend (``local``: one fork server each, with its own uid slot;
a sandbox object runs one program at a time, so the pool is what runs programs side by side) behind
the standard library's `ThreadingHTTPServer`. Endpoints: ``POST /v1/run`` (a program, its stdin and its
`Limits`; the reply is the `ExecResult`, bytes as base64) and ``GET /v1/info``. Every request needs
``Authorization: Bearer <token>`` (compared in constant time; 401 otherwise). A request body over
`max_body` bytes is refused with 413 before it is parsed; limits over the server's caps (`max_timeout`,
`max_memory_mb`, and fixed caps on processes, files and output sizes) with 400. Each client address
(behind a proxy, all clients are one) may have `per_client` runs going at once: one more is refused
at once with 429 (not queued; the ``remote`` client backs off and retries), and a run that waits more
than `queue_wait` s for a free sandbox (all busy with other clients) gets 429 too. A sandbox that
cannot run gives 503, one that failed mid-run 500; the client turns both into error grades.

The token comes from ``--token``, ``--token-file`` or ``$RFT_SANDBOX_TOKEN`` (the latter two keep it
out of ``ps``). Without one the server refuses to start, unless `insecure_no_token` and a loopback
host. It speaks plain HTTP: across machines, put it behind a TLS proxy or an SSH tunnel (the client
takes https:// URLs). SIGINT/SIGTERM stop it: no new connections, runs in flight finish (up to their
time limit), then the sandboxes close.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .base import ExecResult, Limits, Sandbox, SandboxError, SandboxUnavailable, get_sandbox
from .remote import limits_from_json, result_to_json

__all__ = [
    "ServiceConfig", "SandboxPool", "SandboxServer", "default_workers", "make_server", "serve", "is_loopback"
]  # fmt: skip

_NOT_SERVED = {"remote", "sandbox_fusion", "none"}  # loops, or no isolation for code from the network
_DRAIN_CAP = 64 * 2**20  # an oversize body up to this is read and dropped, so the client sees the 413
_CAPS = {  # the largest value of these Limits fields a client may ask for
    "output_bytes": 64 * 2**20,
    "stderr_bytes": 64 * 2**20,
    "result_bytes": 128 * 2**20,  # a C++ compile sends its binary back (code_cpp: up to binary_mb 64 + slack)
    "processes": 1024,
    "open_files": 4096,
    "file_size_mb": 1024,
    "tmp_mb": 1024,
}


@dataclass(frozen=True)
class ServiceConfig:
    """What `rft sandbox serve` takes (see the module docstring)."""

    token: str | None
    host: str = "127.0.0.1"
    port: int = 8123  # 0: any free port (the address is printed)
    backend: str = "local"
    backend_options: tuple[tuple[str, Any], ...] = ()
    workers: int = 2  # sandboxes in the pool: programs run at once
    max_body: int = 8 * 2**20  # bytes of one request's body
    per_client: int = 2  # runs at once per client address
    max_timeout: float = 60.0  # the largest Limits.timeout accepted
    max_memory_mb: int = 4096  # the largest Limits.memory_mb accepted
    queue_wait: float = 30.0  # seconds a run may wait for a free sandbox before 429
    insecure_no_token: bool = False

    def __post_init__(self) -> None:
        if self.backend in _NOT_SERVED:
            raise ValueError(f"backend {self.backend!r} cannot be served; use local, bwrap or docker")
        for name in ("workers", "max_body", "per_client", "max_memory_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} ({getattr(self, name)}) must be at least 1")
        if not self.max_timeout > 0 or not self.queue_wait > 0:
            raise ValueError("max_timeout and queue_wait must be positive")
        if not self.token:
            if not self.insecure_no_token:
                raise ValueError(
                    "no token: give one with --token-file FILE or $RFT_SANDBOX_TOKEN (kept out of `ps`), "
                    "or --token; make one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
                )
            if not is_loopback(self.host):
                raise ValueError(
                    f"--insecure-no-token is allowed on a loopback address only, not {self.host!r}: anyone "
                    "who reaches the port could run code on this machine"
                )


def is_loopback(host: str) -> bool:
    """`host` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Job:
    """One run waiting for a sandbox: taken by a worker, or given up by its requester, not both."""

    def __init__(self, program: str, stdin: bytes, limits: Limits) -> None:
        self.program, self.stdin, self.limits = program, stdin, limits
        self.taken = threading.Event()
        self.done = threading.Event()
        self.result: ExecResult | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._state = "waiting"

    def claim(self, by: str) -> bool:
        with self._lock:
            if self._state != "waiting":
                return False
            self._state = by
        if by == "worker":
            self.taken.set()
        return True


class SandboxPool:
    """`workers` sandboxes of one backend, each started up front and owned by a thread of its own for
    its whole life: `run` hands the program to a free one. (The local fork server dies with the thread
    that started it, PR_SET_PDEATHSIG, so a server restarted after a crash must not be started from a
    request's thread, which ends with its connection.)"""

    def __init__(self, backend: str, workers: int, **options: Any) -> None:
        self.backend = backend
        self.boxes: list[Sandbox] = []
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        ready: queue.Queue[Sandbox | BaseException] = queue.Queue()
        for i in range(workers):
            t = threading.Thread(
                target=self._worker, args=(backend, options, ready), name=f"sandbox-{i}", daemon=True
            )
            t.start()
            self._threads.append(t)
        started = [ready.get() for _ in range(workers)]
        self.boxes = [b for b in started if not isinstance(b, BaseException)]
        failed = [e for e in started if isinstance(e, BaseException)]
        if failed:
            self.close()
            raise failed[0]

    def _worker(self, backend: str, options: dict[str, Any], ready: queue.Queue[Any]) -> None:
        try:
            box = get_sandbox(backend, **options)
            start = getattr(box, "start", None)
            if start is not None:
                start()
        except BaseException as e:  # handed to the constructor, which raises it
            ready.put(e)
            return
        ready.put(box)
        try:
            while (job := self._jobs.get()) is not None:
                if not job.claim("worker"):
                    continue  # its requester stopped waiting
                try:
                    job.result = box.run(job.program, job.stdin, job.limits)
                except BaseException as e:  # handed to the request's thread, which raises it
                    job.error = e
                job.done.set()
        finally:
            box.close()

    def uids(self) -> list[int]:
        """The host uids the pool's programs run as, where the backend says."""
        return [u for u in (getattr(b, "uid", None) for b in self.boxes) if isinstance(u, int)]

    def run(self, program: str, stdin: bytes, limits: Limits, wait: float) -> ExecResult | None:
        """The program's result, or None when no sandbox came free within `wait` seconds."""
        job = _Job(program, stdin, limits)
        self._jobs.put(job)
        if not job.taken.wait(wait) and job.claim("requester"):
            return None
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def close(self, timeout: float = 30.0) -> None:
        """Stop the workers (each after its current run) and close their sandboxes."""
        for _ in self._threads:
            self._jobs.put(None)
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))


class SandboxServer(ThreadingHTTPServer):
    """The HTTP server: the pool, the token and the per-client counts."""

    daemon_threads = True

    def __init__(self, config: ServiceConfig, pool: SandboxPool) -> None:
        super().__init__((config.host, config.port), _Handler)
        self.config = config
        self.pool = pool
        self._token = config.token.encode() if config.token else None
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.quiet = False
        self.stopping = False  # set on SIGINT/SIGTERM: runs in flight finish, new ones get 503

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host if isinstance(host, str) else host.decode()
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def authorized(self, header: str | None) -> bool:
        if self._token is None:
            return True
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), self._token)

    def enter(self, client: str) -> bool:
        with self._lock:
            if self._running[client] >= self.config.per_client:
                return False
            self._running[client] += 1
            return True

    def leave(self, client: str) -> None:
        with self._lock:
            self._running[client] -= 1
            if self._running[client] <= 0:
                del self._running[client]

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._running.values())

    def info(self) -> dict[str, Any]:
        c = self.config
        return {
            "backend": c.backend,
            "workers": c.workers,
            "per_client": c.per_client,
            "max_body": c.max_body,
            "max_timeout": c.max_timeout,
            "max_memory_mb": c.max_memory_mb,
            "uids": self.pool.uids(),
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client thread
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: SandboxServer
    timeout = 120  # seconds an idle or stalled connection is kept

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: dict[str, Any], close: bool = False, **headers: str) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, close: bool = False, **headers: str) -> None:
        self._send(status, {"error": message}, close, **headers)

    def _body_length(self) -> int | None:
        """The body's length, after answering (and returning None) when it is missing or too large."""
        raw = self.headers.get("Content-Length")
        if raw is None or not raw.strip().isdigit():
            self._error(411, "send a Content-Length header (chunked bodies are not taken)", close=True)
            return None
        length = int(raw)
        if length > self.server.config.max_body:
            if length <= _DRAIN_CAP:
                self._drain(length)
            self._error(
                413,
                f"the request has {length} bytes, over this server's limit of {self.server.config.max_body} "
                "(rft sandbox serve --max-body); send smaller programs or raise the limit",
                close=True,
            )
            return None
        return length

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                return
            length -= len(chunk)

    def _authorized(self, length: int) -> bool:
        if self.server.authorized(self.headers.get("Authorization")):
            return True
        self._drain(length)
        self._error(401, "missing or wrong bearer token", WWW_Authenticate="Bearer")
        return False

    def do_GET(self) -> None:
        if not self._authorized(0):
            return
        if self.path.rstrip("/") == "/v1/info":
            self._send(200, self.server.info())
        else:
            self._error(404, f"no such endpoint {self.path!r}; this server has GET /v1/info, POST /v1/run")

    def do_POST(self) -> None:
        length = self._body_length()
        if length is None or not self._authorized(length):
            return
        if self.path.rstrip("/") != "/v1/run":
            self._drain(length)
            self._error(404, f"no such endpoint {self.path!r}; this server has GET /v1/info, POST /v1/run")
            return
        try:
            program, stdin, limits = self._parse(self.rfile.read(length))
        except ValueError as e:
            self._error(400, f"bad request: {e}")
            return
        if self.server.stopping:
            self._error(503, "the sandbox server is shutting down", close=True)
            return
        client = self.client_address[0]
        if not self.server.enter(client):
            self._error(
                429, f"this client already has {self.server.config.per_client} runs going", Retry_After="1"
            )
            return
        try:
            res = self.server.pool.run(program, stdin, limits, self.server.config.queue_wait)
        except SandboxUnavailable as e:
            self._error(503, f"the {self.server.config.backend} sandbox is unavailable on the server: {e}")
            return
        except SandboxError as e:
            self._error(500, f"the server's sandbox failed: {e}")
            return
        finally:
            self.server.leave(client)
        if res is None:
            self._error(429, "every sandbox of this server stayed busy", Retry_After="1")
            return
        self._send(200, result_to_json(res))

    def _parse(self, body: bytes) -> tuple[str, bytes, Limits]:
        try:
            req = json.loads(body)
        except ValueError as e:
            raise ValueError(f"the body is not JSON ({e})") from None
        if not isinstance(req, dict) or not isinstance(req.get("program"), str):
            raise ValueError('the body must be {"program": str, "stdin": base64 str, "limits": {...}}')
        try:
            stdin = base64.b64decode(req.get("stdin") or "", validate=True)
        except (binascii.Error, TypeError) as e:
            raise ValueError(f"stdin is not base64: {e}") from None
        limits = limits_from_json(req.get("limits") or {})
        c = self.server.config
        if limits.timeout > c.max_timeout:
            raise ValueError(f"limits.timeout {limits.timeout} is over this server's cap {c.max_timeout}")
        if limits.memory_mb > c.max_memory_mb:
            raise ValueError(
                f"limits.memory_mb {limits.memory_mb} is over this server's cap {c.max_memory_mb}"
            )
        for name, cap in _CAPS.items():
            if getattr(limits, name) > cap:
                raise ValueError(f"limits.{name} {getattr(limits, name)} is over this server's cap {cap}")
        return req["program"], stdin, limits


def make_server(config: ServiceConfig) -> SandboxServer:
    """The server, bound and with its sandboxes started (SandboxUnavailable when they cannot start)."""
    pool = SandboxPool(config.backend, config.workers, **dict(config.backend_options))
    try:
        return SandboxServer(config, pool)
    except OSError as e:
        pool.close()
        raise OSError(
            f"cannot listen on {config.host}:{config.port}: {e.strerror or e}; pick another --port"
        ) from e


def serve(config: ServiceConfig, *, quiet: bool = False) -> None:
    """Run the server until SIGINT or SIGTERM, then stop cleanly (see the module docstring)."""
    server = make_server(config)
    server.quiet = quiet
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    print(
        f"rft sandbox server on {server.url} (backend {config.backend}, {config.workers} workers, "
        f"{config.per_client} runs per client)",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stopping = True
        server.shutdown()  # no new connections
        end = time.monotonic() + config.max_timeout + 15
        while server.in_flight() and time.monotonic() < end:
            time.sleep(0.05)
        server.server_close()
        server.pool.close()
        print("rft sandbox server stopped", file=sys.stderr, flush=True)


def default_workers() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
