"""One MCP server process over stdio and its client session, driven from synchronous code.

The official SDK (`mcp`) is async; every connection of the process runs on one private event loop thread
(`loop_thread`). A `McpConnection` owns its server from `start` to `close`: one task on that loop enters
``stdio_client`` and ``ClientSession`` and leaves them when asked to stop, so the SDK's own shutdown (close
stdin, wait, terminate the process group) always runs. On top of it, for the paths the SDK cannot see:

- a call past its timeout, or a close while a call hangs: the server's process group gets SIGKILL at once;
- the trainer killed (SIGKILL, OOM): the server is started under ``setpriv --pdeathsig KILL`` (util-linux)
  where it exists, so the kernel kills it with its parent;
- garbage collection and interpreter exit: the owner of a connection (`rft.envs.tools.mcp`) registers
  `McpConnection.kill` with ``weakref.finalize``.

The server's pid is found by a token in its environment (``RFT_MCP_TOKEN``), and a kill first checks that
the process is still this process's child carrying that token, so a reused pid is never signalled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .base import ToolOutput, ToolSpec

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.types import CallToolResult

__all__ = ["McpConnection", "McpServerError", "loop_thread"]

T = TypeVar("T")
TOKEN_VAR = "RFT_MCP_TOKEN"
_STDERR_TAIL = 2000  # characters of the server's stderr quoted in a failure
# The kernel kills the server when this process dies (SIGKILL, OOM): util-linux's setpriv, where it exists.
_SETPRIV = shutil.which("setpriv")
PDEATHSIG_WRAPPER: list[str] = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []


class McpServerError(RuntimeError):
    """The MCP server could not be started or listed (a configuration problem: raised, not masked)."""


def _import_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "MCP tools need the official `mcp` package (version 2 or later): pip install 'rft[mcp]'"
        ) from e


class _LoopThread:
    """A daemon thread running one asyncio loop; coroutines are submitted from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), name="rft-mcp-loop", daemon=True)
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


_loop_lock = threading.Lock()
_loop: _LoopThread | None = None


def loop_thread() -> _LoopThread:
    """The process's MCP event loop thread, started on first use (and anew in a forked child)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = _LoopThread()
        return _loop


def _forget_loop_in_child() -> None:
    global _loop, _loop_lock
    _loop, _loop_lock = None, threading.Lock()  # the parent's loop thread does not exist in a fork


os.register_at_fork(after_in_child=_forget_loop_in_child)


def _pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except FileNotFoundError:
        return []  # no /proc: the SDK's own shutdown is all there is


def _child_with_token(token: str) -> int | None:
    """The pid of this process's child whose environment holds ``RFT_MCP_TOKEN=token``, if any (Linux)."""
    me, needle = os.getpid(), f"{TOKEN_VAR}={token}".encode()
    return next((pid for pid in _pids() if _is_our_server(pid, me, needle)), None)


def _is_our_server(pid: int, parent: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])  # the name in (...) may hold spaces
    return ppid == parent and _has_token(pid, needle)


def _has_token(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False  # gone meanwhile, or not ours to read


def tool_specs(tools: list[Any]) -> list[ToolSpec]:
    """`ToolSpec`s of MCP ``Tool`` records: name, description, inputSchema as the parameters."""
    return [
        ToolSpec(name=t.name, description=t.description or "", parameters=dict(t.input_schema)) for t in tools
    ]


class McpConnection:
    """One server process and its session. `start` returns at once; `wait_ready` and `call` block.

    ``command`` is the argv (its first item an executable), ``env`` extra variables over the SDK's safe
    defaults (HOME, PATH, ...). Thread-safe: calls from several threads share the session.
    """

    def __init__(
        self,
        command: list[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        _import_mcp()
        self.command = list(command)
        self.env = dict(env or {})
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.token = uuid.uuid4().hex
        self.pid: int | None = None
        self.specs: list[ToolSpec] = []
        self.error: str | None = None  # why the server is unusable (start failed, died, killed)
        self._ready = threading.Event()  # set once started, failed to start, or stopped
        self._done = threading.Event()  # set when the owner task has left the SDK's contexts
        self._stop: asyncio.Event | None = None
        self._session: ClientSession | None = None
        self._inflight = 0
        self._lock = threading.Lock()
        # the server's stderr (closed by `close`, or with this object)
        self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._owner: concurrent.futures.Future[None] | None = None
        self._closing = False

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> McpConnection:
        """Spawns the server and initialises the session in the background; returns at once."""
        if self._owner is None:
            self._owner = loop_thread().submit(self._own())
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Blocks until the server answered ``initialize`` and ``tools/list`` (True) or failed (False)."""
        limit = self.startup_timeout if timeout is None else timeout
        if not self._ready.wait(limit):
            self._fail(f"the MCP server {self.command} did not answer initialize within {limit:g} s")
            self.kill()
        return self.error is None and self._session is not None

    def close(self, wait: bool = True, grace: float = 2.0) -> None:
        """Stops the server: idempotent, from any thread. An idle server gets its stdin closed (the MCP
        shutdown) and SIGKILL if it has not exited after `grace` seconds; one with a call in flight is
        killed at once. `wait`: block until the process is gone (else the loop thread finishes it)."""
        if self._owner is None:
            self._errlog.close()
            return
        self._closing = True
        with self._lock:
            busy = self._inflight > 0
        if busy:
            self.kill()
        self._fail("the MCP server was closed")
        self._request_stop()
        loop = loop_thread().loop
        loop.call_soon_threadsafe(loop.call_later, grace, self._kill_unless_done)
        if wait:
            self._done.wait(grace + 5.0)  # the SDK's reap of a killed process is bounded by 2 s
        if self._done.is_set():
            self._errlog.close()

    def _kill_unless_done(self) -> None:
        if not self._done.is_set():
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the server's process group, now, from any thread (a no-op once it is gone)."""
        pid = self.pid
        if pid is not None and _is_our_server(pid, os.getpid(), f"{TOKEN_VAR}={self.token}".encode()):
            with contextlib.suppress(ProcessLookupError):  # exited between the check and the signal
                os.killpg(pid, signal.SIGKILL)  # its own session: the group id is its pid
        self._request_stop()

    def _kill_leftovers(self) -> None:
        """After the server exited: SIGKILL what it started and left in its process group (they carry its
        token in their environment; the group id cannot be reused while any of them lives)."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return  # the usual case: the group is empty
        needle = f"{TOKEN_VAR}={self.token}".encode()
        for other in _pids():
            if _has_token(other, needle):
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    os.kill(other, signal.SIGKILL)

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (for failure messages)."""
        try:
            fd = self._errlog.fileno()
            size = os.fstat(fd).st_size
            data = os.pread(fd, _STDERR_TAIL, max(0, size - _STDERR_TAIL))
        except (ValueError, OSError):
            return ""  # closed with the connection
        return data.decode("utf-8", "replace").strip()

    def _fail(self, why: str) -> None:
        with self._lock:
            if self.error is None:
                self.error = why
        self._ready.set()

    def _request_stop(self) -> None:
        stop = self._stop
        if stop is not None and not self._done.is_set():
            loop_thread().loop.call_soon_threadsafe(stop.set)

    async def _own(self) -> None:
        """The owner task: enters the transport and the session, serves until asked to stop, leaves them."""
        from mcp import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        self._stop = asyncio.Event()
        if self.error is not None:  # closed before the loop ran us
            self._done.set()
            return
        argv = [*PDEATHSIG_WRAPPER, *self.command]
        params = StdioServerParameters(
            command=argv[0], args=argv[1:], env={**self.env, TOKEN_VAR: self.token}, cwd=self.cwd
        )
        try:
            async with stdio_client(params, errlog=self._errlog) as (read, write):
                for _ in range(100):  # /proc/PID/environ reads empty for an instant while setpriv execs
                    if (pid := _child_with_token(self.token)) is not None:
                        self.pid = pid
                        break
                    await asyncio.sleep(0.01)
                async with ClientSession(read, write) as session:
                    handshake = asyncio.ensure_future(self._handshake(session))
                    stopped = asyncio.ensure_future(self._stop.wait())
                    await asyncio.wait({handshake, stopped}, timeout=self.startup_timeout,
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                    if not handshake.done():
                        handshake.cancel()
                        limit = f"{self.startup_timeout:g} s"
                        self._fail(f"the MCP server {self.command} did not answer initialize within {limit}")
                    elif handshake.exception() is None:
                        self._session = session
                        self._ready.set()
                        await stopped
                    else:
                        raise handshake.exception()  # type: ignore[misc]
                    stopped.cancel()
        except Exception as e:  # noqa: BLE001 -- not dropped: the reason of every later failure and error
            self._fail(f"the MCP server {self.command} failed: {_describe(e)}")
        finally:
            self._session = None
            self._stop.set()  # ends the waiter task of a failed start
            self._fail("the MCP server has stopped")
            self._kill_leftovers()
            self._done.set()
            if self._closing:  # else kept for the failure messages of calls still to come
                self._errlog.close()

    async def _handshake(self, session: ClientSession) -> None:
        await session.initialize()
        from mcp.types import PaginatedRequestParams

        tools, cursor = [], None
        while True:
            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        self.specs = tool_specs(tools)

    # -- calls --------------------------------------------------------------------------------------
    def call(self, name: str, arguments: dict[str, Any], timeout: float) -> ToolOutput:
        """Calls one tool; never raises for what the server does (see `ToolOutput`)."""
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED

        start = time.perf_counter()
        if not self.wait_ready():
            return self._failure(name, "server_unavailable", start)
        session = self._session
        if session is None:
            return self._failure(name, "server_unavailable", start)
        waited = time.perf_counter() - start  # for the server to start (the first call of an episode)
        with self._lock:
            self._inflight += 1
        future = loop_thread().submit(session.call_tool(name, arguments))
        try:
            result = future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self._fail(f"the MCP server {self.command} did not answer {name!r} within {timeout:g} s: killed")
            self.kill()
            return self._failure(name, "timeout", start)
        except MCPError as e:
            if e.code == CONNECTION_CLOSED:
                outcome = "server_died" if self.error is None else "server_stopped"  # or closed by us
                self._fail(f"the MCP server {self.command} closed the connection (exited?) during {name!r}")
                self._request_stop()
                return self._failure(name, outcome, start)
            return _protocol_error(name, e, start)
        except (RuntimeError, ValueError, concurrent.futures.CancelledError) as e:
            # RuntimeError: a result the SDK rejects (structured content off its schema, input requests);
            # ValueError: pydantic found the result malformed; CancelledError: the server was closed.
            return self._failure(name, "bad_result", start, f"{type(e).__name__}: {e}")
        finally:
            with self._lock:
                self._inflight -= 1
        wall = time.perf_counter() - start
        return result_output(
            result, {"outcome": "ok", "tool": name, "wall_s": wall, "startup_wait_s": waited}
        )

    def _failure(self, name: str, outcome: str, start: float, why: str | None = None) -> ToolOutput:
        why = why or self.error or "the MCP server is unavailable"
        tail = self.stderr_tail()
        message = f"{why}\n--- server stderr (last lines) ---\n{tail}" if tail else why
        details = {"outcome": outcome, "tool": name, "wall_s": time.perf_counter() - start, "pid": self.pid}
        return ToolOutput(content=f"tool {name!r} failed: {why}", failure=message, details=details)


def _describe(e: BaseException) -> str:
    """An exception, with the leaves of an exception group (anyio's task groups raise those)."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(_describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


def _protocol_error(name: str, e: Any, start: float) -> ToolOutput:
    """A JSON-RPC error answer: the server refused the call (unknown tool, invalid arguments)."""
    from mcp.types import INVALID_PARAMS, METHOD_NOT_FOUND

    details = {"outcome": "rpc_error", "tool": name, "code": e.code, "wall_s": time.perf_counter() - start}
    if e.code in (INVALID_PARAMS, METHOD_NOT_FOUND):
        return ToolOutput(content=f"Error: {e.message}", is_error=True, details=details)
    why = f"the MCP server answered {name!r} with JSON-RPC error {e.code}: {e.message}"
    return ToolOutput(content=f"tool {name!r} failed: {why}", failure=why, details=details)


def result_output(result: CallToolResult, details: dict[str, Any]) -> ToolOutput:
    """A ``CallToolResult`` as a `ToolOutput`: text blocks joined by newlines, ``isError`` kept."""
    from mcp.types import AudioContent, EmbeddedResource, ImageContent, ResourceLink, TextContent

    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif isinstance(block, ImageContent | AudioContent):
            parts.append(f"[{block.type}: {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif isinstance(block, ResourceLink):
            parts.append(f"[resource: {block.uri}]")
        elif isinstance(block, EmbeddedResource):
            text = getattr(block.resource, "text", None)
            parts.append(text if isinstance(text, str) else f"[resource: {block.resource.uri}]")
    if not parts and result.structured_content is not None:
        import json

        parts.append(json.dumps(result.structured_content))
    details = {**details, "outcome": "error" if result.is_error else details["outcome"]}
    return ToolOutput(content="\n".join(parts), is_error=bool(result.is_error), details=details)
