"""The sandbox interface: run one untrusted Python program under limits, get an `ExecResult` back.

A backend is any class with ``run(program, stdin, limits) -> ExecResult`` and ``close()``, registered
under a name with `register_sandbox`; `get_sandbox(name, **options)` builds one. Backends in this
package: ``auto`` (the default: the strongest of the others that runs here, see auto.py), ``local``
(root: a fork server with user, network, mount, pid, ipc and uts namespaces, per-slot uids), ``userns``
(the same server for other users, inside a user namespace of its own), ``bwrap`` (bubblewrap per
program) and ``none`` (rlimits only; refused unless ``unsafe=True``). ``docker`` (docker.py), ``remote``
(an ``rft sandbox serve`` over HTTP: remote.py, service.py) and ``sandbox_fusion`` (a SandboxFusion
``run_code`` service: fusion.py) are imported the first time they are asked for by name. Backends keep
their files in a private per-user folder (state.py); local and userns programs run under a seccomp
filter (seccomp.py).

The program is Python source, run as ``__main__`` by the backend's interpreter, with `stdin` as its
standard input. Besides stdout and stderr it gets a third output, file descriptor 3 (the *result
channel*), whose bytes come back in `ExecResult.result`: a harness in the program reports there, so
whatever the program prints cannot be mistaken for a verdict.

Fail closed: a backend that cannot give the isolation it promises raises `SandboxUnavailable` (when it
is created or started) and never runs the program with less.
"""

from __future__ import annotations

import atexit
import importlib
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..procstat import busy_machine

__all__ = [
    "Limits",
    "ExecResult",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "register_sandbox",
    "get_sandbox",
    "sandbox_factory",
    "sandbox_names",
    "shared_sandbox",
]

Outcome = Literal["exited", "signaled", "timeout", "cpu_limit", "output_limit"]


class SandboxError(RuntimeError):
    """The sandbox itself failed while running a program (not the program's fault)."""


class SandboxUnavailable(SandboxError):
    """The backend cannot run programs here with the isolation it promises; the message says why and
    what to do about it."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one program run. Sizes in MiB unless named ``*_bytes``."""

    timeout: float = 10.0  # wall-clock seconds; the whole process tree is killed then
    cpu_s: float | None = None  # CPU seconds (RLIMIT_CPU); default: the timeout rounded up, plus 1
    memory_mb: int = 1024  # address space per process (RLIMIT_AS)
    processes: int = 32  # processes and threads (RLIMIT_NPROC: per slot uid; userns: per program)
    open_files: int = 64  # RLIMIT_NOFILE
    file_size_mb: int = 16  # largest file the program may write (RLIMIT_FSIZE)
    tmp_mb: int = 64  # size of the private writable /tmp (backends with a mount namespace)
    output_bytes: int = 2**20  # stdout kept; a program that writes more is killed (`output_limit`)...
    stdout_overflow: Literal["kill", "discard"] = "kill"  # ...or, "discard", runs on (the rest is counted)
    stderr_bytes: int = 8192  # the last bytes of stderr kept
    result_bytes: int = 2**20  # bytes kept from the result channel (fd 3)

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout, int | float) and self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError(f"Limits.timeout ({self.timeout!r}) must be a positive number of seconds")
        if self.cpu_s is not None and not self.cpu_s > 0:
            raise ValueError(f"Limits.cpu_s ({self.cpu_s!r}) must be positive, or None for the default")
        for name in ("memory_mb", "processes", "open_files", "file_size_mb", "tmp_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} ({getattr(self, name)}) must be at least 1")
        if self.open_files < 16:
            raise ValueError(f"Limits.open_files ({self.open_files}) must be at least 16 (Python needs some)")
        if self.memory_mb < 64:
            raise ValueError(f"Limits.memory_mb ({self.memory_mb}) must be at least 64")
        if self.stdout_overflow not in ("kill", "discard"):
            raise ValueError(f"Limits.stdout_overflow ({self.stdout_overflow!r}) must be 'kill' or 'discard'")

    @property
    def cpu_limit(self) -> int:
        """Whole CPU seconds for RLIMIT_CPU."""
        return math.ceil(self.cpu_s if self.cpu_s is not None else self.timeout) + (self.cpu_s is None)

    def to_wire(self) -> dict[str, int | float | bool]:
        """The limits as the fork server's request takes them (see forkserver.py)."""
        return {
            "timeout": float(self.timeout),
            "cpu": self.cpu_limit,
            "memory": self.memory_mb * 2**20,
            "nproc": self.processes,
            "nofile": self.open_files,
            "fsize": self.file_size_mb * 2**20,
            "tmp": self.tmp_mb * 2**20,
            "stdout": self.output_bytes,
            "stdout_discard": self.stdout_overflow == "discard",
            "stderr": self.stderr_bytes,
            "result": self.result_bytes,
        }


@dataclass(frozen=True)
class ExecResult:
    """What one program run did.

    `outcome`: ``exited`` (see `exit_code`), ``signaled`` (see `signal`: a crash, or the memory limit
    hit in C code), ``timeout`` (wall clock), ``cpu_limit`` (RLIMIT_CPU), ``output_limit`` (wrote more
    than `Limits.output_bytes` to stdout; killed; with ``stdout_overflow="discard"`` it runs on and
    `stdout_dropped` counts the bytes past the limit). `cpu_wait_s` is the time the program was runnable
    but waited for a CPU (None where the kernel does not say): a timeout with little CPU and much
    waiting means the machine was busy, not that the program was slow.
    """

    outcome: Outcome
    exit_code: int | None = None
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""  # the last `Limits.stderr_bytes`
    result: bytes = b""  # what the program wrote to fd 3
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    result_truncated: bool = False
    stdout_dropped: int = 0  # bytes of stdout past `Limits.output_bytes` thrown away ("discard")
    wall_s: float = 0.0
    cpu_s: float = 0.0
    cpu_wait_s: float | None = None
    backend: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Exited with status 0 (which a program can fake: harnesses use the result channel)."""
        return self.outcome == "exited" and self.exit_code == 0

    def contention(self, limit_s: float) -> bool:
        """A wall-clock timeout that looks like a busy machine (`rft.graders.procstat.busy_machine`: under
        half the time in CPU, at least a quarter of it waiting for one; never without `cpu_wait_s`).
        Worth a retry; not the program's fault."""
        return self.outcome == "timeout" and busy_machine(
            cpu_s=self.cpu_s, cpu_wait_s=self.cpu_wait_s, limit_s=limit_s
        )


@runtime_checkable
class Sandbox(Protocol):
    """A sandbox backend. `run` is called from one thread at a time per object; `close` releases
    servers, containers and temporary files (and is safe to call twice)."""

    name: str

    def run(self, program: str, stdin: bytes | str = b"", limits: Limits | None = None) -> ExecResult: ...

    def close(self) -> None: ...


# ---- registry ---------------------------------------------------------------------------------------

SandboxFactory = Callable[..., Sandbox]
_REGISTRY: dict[str, SandboxFactory] = {}
# Backends whose module registers them when imported (so `docker` costs nothing until asked for).
_MODULES = {
    "auto": "rft.graders.sandbox.auto",
    "local": "rft.graders.sandbox.local",
    "userns": "rft.graders.sandbox.local",
    "none": "rft.graders.sandbox.local",
    "bwrap": "rft.graders.sandbox.bwrap",
    "docker": "rft.graders.sandbox.docker",
    "remote": "rft.graders.sandbox.remote",
    "sandbox_fusion": "rft.graders.sandbox.fusion",
}


def register_sandbox(name: str) -> Callable[[SandboxFactory], SandboxFactory]:
    """Decorator: make a backend class (or factory) available to `get_sandbox(name, **options)`."""

    def deco(factory: SandboxFactory) -> SandboxFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


def sandbox_names() -> list[str]:
    """Every backend name `get_sandbox` knows (whether or not it can run here)."""
    return sorted(set(_REGISTRY) | set(_MODULES))


def sandbox_factory(name: str) -> SandboxFactory:
    """The class (or factory) registered as backend `name`, its module imported on first use."""
    if name not in _REGISTRY and name in _MODULES:
        try:
            importlib.import_module(_MODULES[name])
        except ImportError as e:
            raise SandboxUnavailable(f"sandbox backend {name!r} could not be loaded: {e}") from e
    if name not in _REGISTRY:
        raise ValueError(f"unknown sandbox backend {name!r}; use one of: {', '.join(sandbox_names())}")
    return _REGISTRY[name]


def get_sandbox(name: str = "auto", **options: Any) -> Sandbox:
    """A new sandbox of backend `name`. Raises `SandboxUnavailable` when it cannot run here (the message
    says why), ValueError for an unknown name or option. Close it when done (or use ``with``)."""
    return sandbox_factory(name)(**options)


_SHARED: dict[tuple[Any, ...], Sandbox] = {}
_SHARED_LOCK = threading.Lock()


def shared_sandbox(name: str = "auto", **options: Any) -> Sandbox:
    """One sandbox per (process, backend, options), made on first use and closed at exit. Graders use
    this, so that each grader worker process starts its own fork server once."""
    key = (os.getpid(), name, tuple(sorted((k, repr(v)) for k, v in options.items())))
    with _SHARED_LOCK:
        box = _SHARED.get(key)
        if box is None:
            box = _SHARED[key] = get_sandbox(name, **options)
        return box


def _close_shared() -> None:
    with _SHARED_LOCK:
        mine = [k for k in _SHARED if k[0] == os.getpid()]
        boxes = [_SHARED.pop(k) for k in mine]
    for box in boxes:
        box.close()


atexit.register(_close_shared)
