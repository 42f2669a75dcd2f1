"""The ``local`` backend: a fork server (forkserver.py) on this machine, started once per sandbox object.

Each program runs in a fresh child of the server with new user, network, mount, pid, ipc and uts
namespaces, as the server's own unprivileged uid (one per live server, from `uid_range`), with no
capabilities, rlimits, a minimal read-only root, a private size-limited /tmp and no network; the whole
process tree dies with it (it is pid 1 of its pid namespace). Needs root (it switches uids and builds
the private root); as another user, ``userns`` runs the same server inside a user namespace it makes
itself (``auto`` picks whichever this process can run). Uid locks and mount points live in this
user's private state folder (state.py). A seccomp filter (seccomp.py: no new namespaces, mounts,
ptrace, bpf, perf events, keyrings, kexec, modules, io_uring, ...) is installed last in each program's
process; ``seccomp=False`` (``sandbox_options: {seccomp: false}``) leaves it out. `start()` reports
which (``"seccomp": true``).

``none`` is the same server with no isolation at all (rlimits, a temporary directory, the process group
killed at the end), for machines where nothing else runs: ``get_sandbox("none", unsafe=True)``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import select
import site
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import forkserver
from .base import ExecResult, Limits, SandboxError, SandboxUnavailable, register_sandbox
from .session import SESSION_CPU_S, SandboxSession
from .state import state_dir

__all__ = [
    "LocalSandbox",
    "UserNsSandbox",
    "UnsafeLocalSandbox",
    "FORKSERVER_PATH",
    "HARNESS_RUNTIME_PATH",
    "PRELOAD",
]

FORKSERVER_PATH = Path(forkserver.__file__).resolve()
HARNESS_RUNTIME_PATH = FORKSERVER_PATH.with_name("harness_runtime.py")
SECCOMP_PATH = FORKSERVER_PATH.with_name("seccomp.py")  # the server loads it by path (--seccomp)
# Imported once by the server, so that programs do not load them again each run (what tests use most).
PRELOAD = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string",
           "hashlib", "random", "fractions", "statistics", "copy", "operator", "datetime", "decimal")  # fmt: skip
START_TIMEOUT = 30.0  # seconds for the server to start and prove its isolation
REPLY_GRACE = 10.0  # seconds past a program's timeout before the server counts as hung


@register_sandbox("local")
class LocalSandbox:
    """A fork server with full isolation (see the module docstring). The server starts on the first
    `run` (or `start()`), and `run` raises `SandboxUnavailable` when it cannot start with the isolation
    asked for: it never runs a program with less."""

    name = "local"

    def __init__(
        self,
        *,
        python: str | None = None,
        isolate: tuple[str, ...] | list[str] = forkserver.NAMESPACES,
        uid_range: tuple[int, int] = (64000, 64499),  # not 61000-: servers before state.py lock elsewhere
        lock_dir: str | None = None,
        paths: tuple[str, ...] | list[str] | None = None,
        binds: tuple[str, ...] | list[str] = (),
        preload: tuple[str, ...] | list[str] = PRELOAD,
        pin_cpu: bool = False,
        seccomp: bool = True,
    ) -> None:
        bad = [ns for ns in isolate if ns not in forkserver.NAMESPACES]
        if bad:
            raise ValueError(f"unknown namespace(s) {bad}; isolate takes a subset of {forkserver.NAMESPACES}")
        self.python = python or sys.executable
        self.isolate = tuple(isolate)
        self.uid_range = uid_range
        self.lock_dir = lock_dir  # None: this user's private state folder (see state.py)
        self._state = ""
        # Where programs find installed packages (read-only); by default this interpreter's site-packages.
        if paths is None:
            paths = site.getsitepackages() if self.python == sys.executable else []
        self.paths = [p for p in paths if os.path.isdir(p)]
        self.binds = tuple(binds)
        self.preload = tuple(preload)
        self.pin_cpu = pin_cpu  # the server and its programs on one CPU (picked by its uid slot)
        self.seccomp = seccomp  # the syscall filter of seccomp.py in every program's process
        self.hello: dict[str, Any] = {}
        self.uid: int | None = None  # the host uid programs run as (known once the server started)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._next_id = 0

    def _argv(self) -> list[str]:
        argv = [self.python, "-I", "-S", str(FORKSERVER_PATH), "--isolate", ",".join(self.isolate) or "none"]
        argv += ["--lock-dir", self._state]
        if os.geteuid() == 0:
            argv += ["--uid-range", f"{self.uid_range[0]}:{self.uid_range[1]}"]
        for p in self.paths:
            argv += ["--path", p]
        for b in self.binds:
            argv += ["--bind", b]
        if self.pin_cpu:
            argv += ["--cpu", "auto"]
        return argv + self._preload_args()

    def _preload_args(self) -> list[str]:
        seccomp = ["--seccomp", str(SECCOMP_PATH)] if self.seccomp else []
        return [*seccomp, "--preload", ",".join(self.preload), "--preload-file",
                f"rft_harness={HARNESS_RUNTIME_PATH}"]  # fmt: skip

    def _preflight(self) -> None:
        if sys.platform != "linux":
            raise SandboxUnavailable(f"the {self.name} sandbox needs Linux (this is {sys.platform})")
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                f"the {self.name} sandbox needs root (it runs each program as a per-slot unprivileged uid "
                "in a private root); as another user, use sandbox 'auto' (or 'userns', 'bwrap', 'docker')"
            )

    def start(self) -> dict[str, Any]:
        """Start the server (if it is not running) and return its hello: pid, uid, isolation, seccomp,
        python."""
        with self._lock:
            self._start()
            return self.hello

    def _start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._preflight()
        self._state = state_dir(self.lock_dir)  # checked at each start: owner, mode, no symlink
        try:
            proc = _spawn(self._argv())
        except OSError as e:
            raise SandboxUnavailable(f"could not start the {self.name} sandbox's fork server: {e}") from e
        assert proc.stdout is not None
        try:
            hello = _read_frame(proc.stdout.fileno(), time.monotonic() + START_TIMEOUT)
        except SandboxError as e:
            _kill(proc)
            raise SandboxUnavailable(f"the {self.name} sandbox's fork server did not start: {e}") from None
        header = hello[0]
        if header.get("type") != "hello":
            _kill(proc)
            raise SandboxUnavailable(
                f"the {self.name} sandbox cannot isolate programs here: {header.get('error', header)}"
                + self._unavailable_hint()
            )
        if header.get("root_dir"):  # the mount point of its private root, in our namespace an empty dir
            with contextlib.suppress(OSError):
                os.rmdir(header["root_dir"])
        self.hello = header
        self.uid = header.get("uid")
        self._proc = proc

    def _unavailable_hint(self) -> str:
        return ""

    def run(self, program: str, stdin: bytes | str = b"", limits: Limits | None = None) -> ExecResult:
        limits = limits or Limits()
        data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        with self._lock:
            self._start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            self._next_id += 1
            header = {"type": "run", "id": self._next_id, "limits": limits.to_wire()}
            try:
                forkserver.write_frame(
                    proc.stdin.fileno(), header, {"program": program.encode(), "stdin": data}
                )
                reply, parts = _read_frame(
                    proc.stdout.fileno(), time.monotonic() + limits.timeout + REPLY_GRACE
                )
            except (OSError, SandboxError) as e:
                why = self._stop_dead_server()
                raise SandboxError(f"the {self.name} sandbox's fork server failed ({e}){why}") from None
        if reply.get("type") != "result":
            raise SandboxError(
                f"the {self.name} sandbox could not run the program: {reply.get('error', reply)}"
            )
        truncated = reply.get("truncated", {})
        return ExecResult(
            outcome=reply["outcome"],
            exit_code=reply.get("exit_code"),
            signal=reply.get("signal"),
            stdout=bytes(parts.get("stdout", b"")),
            stderr=bytes(parts.get("stderr", b"")),
            result=bytes(parts.get("result", b"")),
            stdout_truncated=bool(truncated.get("stdout")),
            stderr_truncated=bool(truncated.get("stderr")),
            result_truncated=bool(truncated.get("result")),
            stdout_dropped=int(reply.get("stdout_dropped", 0)),
            wall_s=float(reply.get("wall_s", 0.0)),
            cpu_s=float(reply.get("cpu_s", 0.0)),
            cpu_wait_s=reply.get("cpu_wait_s"),
            backend=self.name,
        )

    def session(self, program: str, limits: Limits | None = None) -> SandboxSession:
        """`program` as a long-lived program (session.py), in a fork server of its own (``--session``)
        with this sandbox's isolation: as root a uid slot of its own, so sessions never share a uid."""
        limits = limits or Limits()
        self._preflight()
        self._state = state_dir(self.lock_dir)
        argv = [*self._argv(), "--preload", "", "--session"]  # one program: nothing to preload for it
        try:
            proc = _spawn(argv)
        except OSError as e:
            raise SandboxUnavailable(f"could not start a {self.name} sandbox session: {e}") from e
        assert proc.stdin is not None and proc.stdout is not None
        try:
            header, _ = _read_frame(proc.stdout.fileno(), time.monotonic() + START_TIMEOUT)
        except SandboxError as e:
            _kill(proc)
            raise SandboxUnavailable(f"the {self.name} sandbox's session server did not start: {e}") from None
        if header.get("type") != "hello":
            _kill(proc)
            raise SandboxUnavailable(
                f"the {self.name} sandbox cannot isolate programs here: {header.get('error', header)}"
                + self._unavailable_hint()
            )
        if header.get("root_dir"):
            with contextlib.suppress(OSError):
                os.rmdir(header["root_dir"])
        wire = dict(limits.to_wire(), cpu=math.ceil(limits.cpu_s or SESSION_CPU_S))
        session = SandboxSession(proc, self.name, header.get("uid"))
        try:
            forkserver.write_frame(
                proc.stdin.fileno(), {"type": "session", "limits": wire}, {"program": program.encode()}
            )
        except OSError as e:
            session.kill()
            raise SandboxError(f"the {self.name} sandbox's session server failed: {e}") from None
        return session

    def _stop_dead_server(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        _kill(proc)
        err = b""
        if proc.stderr is not None:
            with contextlib.suppress(OSError):
                err = proc.stderr.read(4000) or b""
        return f"; its stderr: {err.decode(errors='replace').strip()}" if err.strip() else ""

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()  # EOF: the server exits
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            _kill(proc)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()

    def __enter__(self) -> LocalSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()


@register_sandbox("userns")
class UserNsSandbox(LocalSandbox):
    """The ``local`` fork server for a user other than root: it first makes a user and mount namespace of
    its own (``--own-userns``; the kernel must allow unprivileged user namespaces), then gives each
    program the same namespaces, private root, rlimits and no capabilities as ``local``. Programs run
    as this user on the host (uid 1000 inside); each has a user namespace of its own, so RLIMIT_NPROC
    (`Limits.processes`) counts that program's processes alone, and its pid namespace takes them all
    down with it. Supplementary groups cannot be dropped without root: programs keep them."""

    name = "userns"

    def _argv(self) -> list[str]:
        return [*super()._argv(), "--own-userns"]

    def _preflight(self) -> None:
        if sys.platform != "linux":
            raise SandboxUnavailable(f"the {self.name} sandbox needs Linux (this is {sys.platform})")
        if os.geteuid() == 0:
            raise SandboxUnavailable(
                f"the {self.name} sandbox is for users other than root; as root use 'local'"
            )
        if not set(forkserver.NAMESPACES) <= set(self.isolate):
            raise SandboxUnavailable(
                f"the {self.name} sandbox makes every namespace; isolate cannot drop any"
            )

    def _unavailable_hint(self) -> str:
        return (
            "; unprivileged user namespaces look disabled (sysctl kernel.unprivileged_userns_clone=1 or "
            "user.max_user_namespaces > 0; on Ubuntu >= 23.10 kernel.apparmor_restrict_unprivileged_userns=0 "
            "or an AppArmor profile; in a container, a seccomp profile that allows unshare), or use bwrap "
            "(apt-get install bubblewrap) or docker"
        )


@register_sandbox("none")
class UnsafeLocalSandbox(LocalSandbox):
    """No isolation: rlimits, a temporary directory and the process group killed at the end. Programs
    run as this user and can read and write whatever it can. Refused unless ``unsafe=True``. No seccomp
    filter unless ``seccomp=True``."""

    name = "none"

    def __init__(self, *, unsafe: bool = False, seccomp: bool = False, **options: Any) -> None:
        if not unsafe:
            raise SandboxUnavailable(
                "sandbox 'none' runs model-written code with no isolation; it needs an explicit opt-in "
                "(unsafe_local_exec: true in the grader spec, or rft --unsafe-local-exec)"
            )
        super().__init__(isolate=(), seccomp=seccomp, **options)

    def _argv(self) -> list[str]:
        argv = [self.python, "-I", "-S", str(FORKSERVER_PATH), "--isolate", "none"]
        for p in self.paths:
            argv += ["--path", p]
        return argv + self._preload_args()

    def _preflight(self) -> None:
        if sys.platform != "linux":
            raise SandboxUnavailable(f"the {self.name} sandbox needs Linux (this is {sys.platform})")


_spawner: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None
_spawner_lock = threading.Lock()


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start a fork server from a thread that lives as long as this process. The server dies with the
    thread that started it (PR_SET_PDEATHSIG follows the thread, not the process), so one started from a
    short-lived thread (a request handler, a recycled pool thread) would die as soon as that thread ends."""
    global _spawner
    if threading.current_thread() is threading.main_thread():
        return _popen(argv)
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():  # none yet, or one of the parent's before a fork
            _spawner = (os.getpid(), concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rft-spawner"))
        executor = _spawner[1]
    return executor.submit(_popen, argv).result()


def _popen(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd="/",
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5.0)


def _read_frame(fd: int, deadline: float) -> tuple[dict[str, Any], dict[str, memoryview]]:
    """One frame from the server, or SandboxError at EOF or past `deadline`."""

    def read(n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise SandboxError("no reply in time")
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                raise SandboxError("it exited")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    hlen, dlen = struct.unpack(">II", read(8))
    import json

    header = json.loads(read(hlen))
    data = memoryview(read(dlen))
    parts, pos = {}, 0
    for name, length in header.get("parts", []):
        parts[name] = data[pos : pos + length]
        pos += length
    return header, parts
