"""Long-lived programs in a sandbox: `start_session(box, program, limits)` -> a `SandboxSession`.

`Sandbox.run` is one-shot. A session keeps one program running in the sandbox, with the same
containment as `run` (namespaces, private root and /tmp, uid, seccomp, rlimits), and talks to it over
its stdin and stdout in frames: a 4-byte big-endian length, then that many bytes of UTF-8 JSON
(`send` / `recv`). The program is Python source run as ``__main__``; its fd 0 and fd 1 are the channel
(the program should move them out of the way of the code it runs: see session_driver.py). Limits:
`Limits.memory_mb`, `processes`, `open_files`, `file_size_mb` and `tmp_mb` hold for the whole session;
`Limits.cpu_s` is the session's CPU budget (RLIMIT_CPU, hard) when given, an hour otherwise; wall-clock
limits are the caller's (`recv`'s timeout), which kills the session when one passes.

Backends that can hold a session have a ``session(program, limits)`` method: ``local`` and ``userns``
(each session its own fork server, ``--session``: a uid slot of its own as root, the program pid 1 of
its pid namespace, so killing the server takes every process it started) and, for users other than
root, ``bwrap`` (a bubblewrap sandbox per session, ``--die-with-parent`` in a pid namespace of its own). For
the others `start_session` raises `SandboxError` saying so.

A program can write anything to its own channel: what `recv` gets is untrusted (a frame too long or
not JSON raises `SessionBroken`; the caller should then `kill` the session).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import subprocess
import time
import weakref
from typing import Any

from .base import Limits, Sandbox, SandboxError

__all__ = ["SandboxSession", "SessionBroken", "SessionEnded", "SessionTimeout", "start_session", "MAX_FRAME"]

MAX_FRAME = 8 << 20  # bytes: a longer frame is a broken channel
SESSION_CPU_S = 3600  # RLIMIT_CPU of a session when Limits.cpu_s is not given
END_MARK = b"rft-session-end "


class SessionBroken(SandboxError):
    """The session's channel ended or carried garbage (the program exited, was killed, or wrote over it)."""


class SessionEnded(SessionBroken):
    """The session's program ended (its channel reached EOF); `SandboxSession.end_info` says how."""


class SessionTimeout(SandboxError):
    """No frame came back in time."""


def _kill_proc(proc: subprocess.Popen[bytes]) -> None:
    """The finaliser's backstop: SIGKILL the session's server (its program dies with it) and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5.0)
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()


class SandboxSession:
    """A program running in a sandbox for as long as its caller keeps it (see the module docstring).
    `kill` ends it and every process it started; a finaliser (at garbage collection or interpreter exit)
    does the same for a session nobody killed."""

    def __init__(self, proc: subprocess.Popen[bytes], backend: str, uid: int | None) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.backend = backend
        self.uid = uid  # the host uid its processes run as, where known
        self._finalizer = weakref.finalize(self, _kill_proc, proc)
        self._buf = bytearray()
        self._end: dict[str, Any] | None = None

    @property
    def alive(self) -> bool:
        return self._finalizer.alive and self.proc.poll() is None

    def send(self, message: dict[str, Any]) -> None:
        """Write one frame; `SessionBroken` when the program no longer reads."""
        data = json.dumps(message).encode()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)
            self.proc.stdin.flush()
        except (OSError, ValueError) as e:
            raise SessionBroken(f"the session's program does not read its channel: {e}") from None

    def recv(self, timeout: float) -> dict[str, Any]:
        """The next frame, within `timeout` seconds: `SessionTimeout` past it, `SessionBroken` at EOF or on
        a frame that is not a JSON object of at most `MAX_FRAME` bytes."""
        deadline = time.monotonic() + timeout
        (n,) = struct.unpack(">I", self._read(4, deadline))
        if n > MAX_FRAME:
            raise SessionBroken(f"the session's channel carried a frame of {n} bytes (garbage on it?)")
        body = self._read(n, deadline)
        try:
            message = json.loads(body)
        except ValueError:
            raise SessionBroken("the session's channel carried a frame that is not JSON") from None
        if not isinstance(message, dict):
            raise SessionBroken("the session's channel carried a frame that is not a JSON object")
        return message

    def _read(self, n: int, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise SessionTimeout("no reply in time")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise SessionEnded("the session's program ended" + self._end_note())
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _end_note(self) -> str:
        info = self.end_info()
        if info is None:
            return ""
        if info.get("signal"):
            return f" (killed by signal {info['signal']})"
        return f" (exit status {info.get('exit_code')})"

    def end_info(self, wait_s: float = 2.0) -> dict[str, Any] | None:
        """After the program ended: its exit status, signal and CPU time, as its server reports them
        (None when the server said nothing, e.g. because it was killed)."""
        assert self.proc.stderr is not None
        if self._end is not None:
            return self._end
        try:
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            return None
        err = self.proc.stderr.read(1 << 20) or b""
        line = err[err.rfind(END_MARK) :].split(b"\n", 1)[0] if END_MARK in err else b""
        try:
            info = json.loads(line[len(END_MARK) :]) if line else None
        except ValueError:
            return None
        self._end = info if isinstance(info, dict) else None
        return self._end

    def kill(self) -> None:
        """End the session now (its program and every process it started). Safe to call twice."""
        self._finalizer()

    def __enter__(self) -> SandboxSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.kill()


def start_session(box: Sandbox, program: str, limits: Limits | None = None) -> SandboxSession:
    """Start `program` as a long-lived program in sandbox `box` (see the module docstring); raises
    `SandboxError` when the backend cannot hold one, `SandboxUnavailable` when it cannot start here."""
    opener = getattr(box, "session", None)
    if opener is None:
        raise SandboxError(
            f"sandbox {box.name!r} cannot hold a session (a long-lived program); use sandbox 'auto', "
            "'local' (root), 'userns' or 'bwrap' (other users)"
        )
    session = opener(program, limits or Limits())
    assert isinstance(session, SandboxSession)
    return session
