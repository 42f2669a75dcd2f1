"""The stateful ``python`` tool: a Python session per episode, in the code sandbox.

`PythonSessionProvider(timeout=, cpu_s=, memory_mb=, output_chars=, sandbox=)` opens one `Tool` named
``python`` (arguments ``{"code": str}``) per episode. Variables, imports and functions persist across the
calls of one episode, never across episodes: each episode's tool has a session of its own, a program
(session_driver.py) in a sandbox session (rft.graders.sandbox.session) with the containment of code
grading (namespaces, private root and /tmp, its own uid, seccomp, rlimits). The session starts at the
first call, so an episode that never calls the tool costs nothing.

Each call runs under `timeout` wall-clock seconds and `cpu_s` CPU seconds (default: the timeout). What it
printed (stdout, then stderr), its traceback and the repr of a last expression (as a notebook shows it)
come back cut to `output_chars`. An exception in the code is an error shown to the model
(`ToolOutput.is_error`); the session lives on, as it does when a call uses up its CPU seconds between
bytecodes (``CpuLimitExceeded`` raised in it; outcome ``cpu_limit``). A call that runs past its wall-clock
time, exits the interpreter, is killed by a limit, or breaks the session's channel (writes over it, closes it) ends
the session: the process is killed (with everything it started), the output says so and that its
variables are gone, and the next call starts a fresh session. A session that cannot start (no sandbox
here) is a `ToolOutput.failure`, not the model's fault.

`close()` kills the session; a finaliser does the same for a tool that is dropped unclosed or still open
at interpreter exit, so no process outlives its episode.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rft.graders.sandbox import Limits, SandboxError, sandbox_names, shared_sandbox
from rft.graders.sandbox.session import (
    SandboxSession,
    SessionBroken,
    SessionEnded,
    SessionTimeout,
    start_session,
)

from .base import Tool, ToolOutput, ToolSpec

__all__ = ["PythonSessionProvider", "PythonSessionTool", "PYTHON_SPEC"]

DRIVER = (Path(__file__).with_name("session_driver.py")).read_text(encoding="utf-8")
START_TIMEOUT = 60.0  # seconds for a session to start and answer (sandbox set-up under load)
SIGXCPU = 24
PYTHON_SPEC = ToolSpec(
    name="python",
    description=(
        "Run Python code in a persistent session (like a notebook cell): variables, imports and functions "
        "stay defined for later calls in this conversation. Returns what the code prints, any error, and "
        "the value of a last expression."
    ),
    parameters={
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python source to run"}},
        "required": ["code"],
    },
)


@dataclass(frozen=True)
class PythonSessionProvider:
    """The ``python`` tool's options (a suite's ``tools: [{python: {...}}]`` entry)."""

    timeout: float = 10.0  # wall-clock seconds per call
    cpu_s: float | None = None  # CPU seconds per call; default: the timeout
    memory_mb: int = 1024  # address space of the session's processes
    output_chars: int = 4000  # characters of output shown to the model per call
    sandbox: str = "auto"  # a backend that holds sessions: auto, local (root), userns or bwrap (other users)
    processes: int = 32  # processes and threads of the session

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError(f"python tool: timeout ({self.timeout!r}) must be a positive number of seconds")
        if self.cpu_s is not None and not self.cpu_s > 0:
            raise ValueError(
                f"python tool: cpu_s ({self.cpu_s!r}) must be positive, or left out for the timeout"
            )
        if self.output_chars < 100:
            raise ValueError(f"python tool: output_chars ({self.output_chars}) must be at least 100")
        Limits(memory_mb=self.memory_mb, processes=self.processes)  # its checks, its messages
        if self.sandbox not in sandbox_names():
            raise ValueError(
                f"python tool: unknown sandbox {self.sandbox!r}; use auto (or local as root, userns otherwise)"
            )

    def specs(self) -> list[ToolSpec]:
        return [PYTHON_SPEC]

    def open(self) -> list[Tool]:
        return [PythonSessionTool(self)]


class PythonSessionTool:
    """One episode's ``python`` tool (see the module docstring)."""

    spec = PYTHON_SPEC

    def __init__(self, options: PythonSessionProvider) -> None:
        self.options = options
        self._session: SandboxSession | None = None
        self._closed = False
        self._calls = 0
        self.sessions_started = 0  # how many sessions this episode needed (1 + restarts)
        self._finalizer = weakref.finalize(self, _kill_all, [])

    def call(self, arguments: dict[str, Any]) -> ToolOutput:
        code = arguments.get("code") if isinstance(arguments, dict) else None
        if not isinstance(code, str):
            return ToolOutput('the python tool takes {"code": "<python source>"}', is_error=True,
                              details={"outcome": "bad_arguments"})  # fmt: skip
        if self._closed:
            raise RuntimeError("this python tool was closed with its episode; open a new one")
        opts = self.options
        try:
            session = self._ensure_session()
        except SandboxError as e:
            return ToolOutput(f"the python tool could not start: {e}", failure=str(e),
                              details={"outcome": "unavailable"})  # fmt: skip
        cpu = math.ceil(opts.cpu_s if opts.cpu_s is not None else opts.timeout)
        self._calls += 1
        request = {"id": self._calls, "code": code, "cpu_s": cpu, "output_bytes": 4 * opts.output_chars}
        start = time.monotonic()
        try:
            session.send(request)
            reply = session.recv(opts.timeout)
            if reply.get("id") != self._calls or not _well_formed(reply):  # a cell wrote on the channel
                raise SessionBroken(
                    "a reply out of turn or out of shape came back (the code wrote over the session's channel)"
                )
        except SessionTimeout:
            self._end_session()
            return self._ended(f"TimeoutError: the call ran past {opts.timeout:g} s", "timeout", start)
        except SessionBroken as e:
            info = session.end_info(wait_s=1.0) if isinstance(e, SessionEnded) else None
            self._end_session()
            if info is not None and info.get("signal") == SIGXCPU:
                return self._ended(f"the call used more than {cpu} s of CPU", "cpu_limit", start)
            return self._ended(f"the Python session ended during the call ({e})", "session_ended", start)
        return self._format(reply, time.monotonic() - start)

    def _ensure_session(self) -> SandboxSession:
        if self._session is not None and self._session.alive:
            return self._session
        opts = self.options
        box = shared_sandbox(opts.sandbox)
        limits = Limits(timeout=opts.timeout, memory_mb=opts.memory_mb, processes=opts.processes)
        session = start_session(box, DRIVER, limits)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _kill_all, [session])
        self._session = session
        self.sessions_started += 1
        try:  # an empty cell: the session answers before the first call's clock starts
            self._calls += 1
            session.send({"id": self._calls, "code": "", "output_bytes": 0})
            if session.recv(START_TIMEOUT).get("id") != self._calls:
                raise SessionBroken("the session's first reply was not the one asked for")
        except SandboxError as e:
            self._end_session()
            raise SandboxError(f"the Python session did not start: {e}") from None
        return session

    def _end_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.kill()

    def _ended(self, why: str, outcome: str, start: float) -> ToolOutput:
        text = f"{why}; the Python session was killed and its variables are gone (the next call starts a fresh one)"
        return ToolOutput(text, is_error=True,
                          details={"outcome": outcome, "wall_s": round(time.monotonic() - start, 6)})  # fmt: skip

    def _format(self, reply: dict[str, Any], wall_s: float) -> ToolOutput:
        pieces = []
        for key in ("stdout", "stderr"):
            text = str(reply.get(key) or "")
            more = int(reply.get(f"{key}_bytes") or 0) - len(text.encode())
            if more > 0:
                text += f"\n[... {more} more bytes of {key} cut]\n"
            pieces.append(text)
        error = reply.get("error")
        if error:
            pieces.append(str(error))
        if reply.get("result") is not None:
            pieces.append(str(reply["result"]))
        text = "".join(p if p.endswith("\n") or not p else p + "\n" for p in pieces).rstrip("\n")
        limit = self.options.output_chars
        if len(text) > limit:
            text = text[:limit] + f"\n[... {len(text) - limit} more characters cut]"
        outcome = "cpu_limit" if reply.get("cpu_limit") else "error" if error else "ok"
        details = {"outcome": outcome, "wall_s": round(wall_s, 6),
                   "cpu_s": reply.get("cpu_s")}  # fmt: skip
        return ToolOutput(text, is_error=bool(error), details=details)

    def close(self) -> None:
        """Kill the session (safe to call twice)."""
        self._closed = True
        self._end_session()
        self._finalizer()


_REPLY_TYPES: dict[str, tuple[type, ...]] = {
    "stdout": (str,), "stderr": (str,), "stdout_bytes": (int,), "stderr_bytes": (int,),
    "result": (str, type(None)), "error": (str, type(None)), "cpu_limit": (bool,), "cpu_s": (int, float),
}  # fmt: skip


def _well_formed(reply: dict[str, Any]) -> bool:
    """The driver's reply has every field, of its type (what a cell forges on the channel may not)."""
    return all(isinstance(reply.get(k, ...), types) for k, types in _REPLY_TYPES.items())


def _kill_all(sessions: list[SandboxSession]) -> None:
    for session in sessions:
        session.kill()
