"""C++ for the `code` grader's stdin/stdout `cases` (``"language": "cpp"``): compile once per program in the
sandbox, then run every case against the binary, each in a sandbox run of its own.

1. Compile: one sandbox run of `compile_cpp` (graders/sandbox/harness_runtime.py), which writes the
   source, runs ``g++`` under the compile limits (`CompilerOptions`: wall time, address space, binary
   size) and reports the executable's bytes, or the compiler's message, on the result channel (fd 3).
   The compile runs in the same sandbox backend as the program, with the same isolation.
2. Run: per case, a sandbox run of `exec_binary`, which reads the binary from the head of stdin and
   becomes it (``execve`` of a memfd); the rest of stdin is the case's input. The case limits, the
   output limit and the comparison outside the sandbox are those of Python `cases`.

A process remembers the last 128 compiles (binaries up to 512 KiB, compiler errors) by source, flags,
limits and sandbox, so a program sampled again is not compiled again (``details["compile"]["cached"]``).

Verdicts: a program that does not compile scores 0 (status ``ok``, the compiler's message in
``details["compile_error"]``); so does one whose compile runs past its time or memory limit when the
machine was not busy (a template or constexpr bomb). A compile timeout on a busy machine
(`rft.graders.procstat.busy_machine`: little CPU, much waiting for one) is retried once, then is status
``timeout``: not the program's fault. A sandbox without ``g++`` (the default docker image) is an error
grade that says so.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .code_harness import runtime_call
from .procstat import busy_machine
from .sandbox import ExecResult, Limits, SandboxError, SandboxUnavailable

__all__ = [
    "CompilerOptions",
    "Compiled",
    "compile_cpp",
    "compile_cached",
    "RUN_BINARY",
    "binary_stdin",
    "case_limits",
]

_MESSAGE_CHARS = 2000  # characters of the compiler's message kept in details
_MARGIN_S = 5.0  # the sandbox's own wall limit for the compile run, past the compiler's
_CACHE_ENTRIES = 128  # compiles remembered per process...
_CACHE_BINARY_BYTES = 512 * 1024  # ...of binaries up to this size (at most 64 MiB in all)

RUN_BINARY = runtime_call("exec_binary")  # the program of every case run


class CompilerOptions(BaseModel):
    """How C++ programs are compiled (``"compiler": {...}`` in a code grader spec)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flags: list[str] = Field(
        default_factory=lambda: ["-std=gnu++17", "-O2", "-pipe"],
        description="g++ arguments before the source file",
    )
    timeout: float = Field(
        default=30.0, gt=0, description="wall seconds for one compile (at most half the grader's `timeout`)"
    )
    memory_mb: int = Field(default=2048, ge=256, description="address space per compiler process")
    binary_mb: int = Field(default=64, ge=1, description="largest executable (and compile file) size")

    def limits(self) -> Limits:
        """The sandbox limits of the compile run (the compiler's own deadline is `timeout`)."""
        return Limits(
            timeout=self.timeout + _MARGIN_S,
            cpu_s=self.timeout + _MARGIN_S,
            memory_mb=self.memory_mb,
            file_size_mb=self.binary_mb,
            tmp_mb=2 * self.binary_mb + 64,
            result_bytes=self.binary_mb * 2**20 + 2**16,
        )


@dataclass(frozen=True)
class Compiled:
    """What compiling one program gave: `binary` (the executable's bytes) when `outcome` is ``binary``;
    else ``error`` (it does not compile, or the compiler ran out of time or memory on an idle machine)
    or ``busy`` (timed out twice on a busy machine), with `message`. `details` go into the grade."""

    outcome: Literal["binary", "error", "busy"]
    binary: bytes = b""
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


Execute = Callable[[str, bytes, Limits], tuple[ExecResult, dict[str, Any]]]


def compile_cpp(execute: Execute, source: str, options: CompilerOptions) -> Compiled:
    """Compile `source` through `execute` (the grader's sandbox run: program, stdin, limits -> result,
    notes). Raises `SandboxUnavailable` when the sandbox has no g++, `SandboxError` when the compile run
    reported nothing."""
    data = source.encode()
    stdin = len(data).to_bytes(8, "big") + data
    program = runtime_call("compile_cpp", list(options.flags), float(options.timeout))
    limits = options.limits()
    for attempt in (1, 2):
        res, notes = execute(program, stdin, limits)
        event, payload = _report(res)
        details: dict[str, Any] = {**notes, "attempts": attempt}
        if isinstance(event.get("wall_s"), int | float):
            details["wall_s"] = round(event["wall_s"], 4)
        kind = event.get("e")
        if kind == "no_compiler":
            raise SandboxUnavailable(
                f"no g++ inside it (searched PATH {event.get('path')!r}); C++ needs a compiler in the "
                "sandbox: use the local or bwrap sandbox on a machine with g++ (Debian/Ubuntu: apt-get install "
                "g++), or a docker image that has g++ and python3 (sandbox_options.image)"
            )
        if kind == "binary":
            size = event.get("size")
            if not isinstance(size, int) or len(payload) != size:
                raise SandboxError(f"the compile run sent a cut binary ({len(payload)} of {size} bytes)")
            return Compiled("binary", payload, details=details | {"binary_bytes": size})
        if kind == "error":
            message = str(event.get("m", ""))[:_MESSAGE_CHARS] or f"g++ exit status {event.get('code')}"
            return Compiled("error", message=message, details=details | {"exit_code": event.get("code")})
        if kind == "timeout" or res.outcome == "timeout":
            cpu, wait = event.get("cpu_s", res.cpu_s), event.get("wait_s", res.cpu_wait_s)
            details |= {"compile_cpu_s": cpu, "compile_wait_s": wait}
            if not busy_machine(cpu_s=cpu, cpu_wait_s=wait, limit_s=options.timeout):
                why = f"compile time limit exceeded ({options.timeout:g} s)"
                return Compiled("error", message=why, details=details)
            if attempt == 2:
                why = "the compile timed out twice on a busy machine"
                return Compiled("busy", message=why, details=details)
            continue
        stderr = res.stderr.decode("utf-8", "replace")[-500:]
        raise SandboxError(
            f"the compile run reported nothing (outcome {res.outcome}, exit {res.exit_code}, signal {res.signal}): "
            f"{stderr}"
        )
    raise AssertionError("unreachable")


_CACHE: OrderedDict[tuple[str, ...], Compiled] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def compile_cached(execute: Execute, source: str, options: CompilerOptions, sandbox_key: str) -> Compiled:
    """`compile_cpp`, remembered in this process for a program compiled before with the same flags and
    limits in the same sandbox (`sandbox_key`): the samples of a group often hold the same program.
    Binaries and compiler errors are remembered (``details["cached"]``); time-outs are not."""
    key = (sandbox_key, json.dumps(options.flags), str(options.memory_mb), str(options.binary_mb), source)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return replace(hit, details={**hit.details, "cached": True})
    got = compile_cpp(execute, source, options)
    keep = (got.outcome == "binary" and len(got.binary) <= _CACHE_BINARY_BYTES) or (
        got.outcome == "error" and "exit_code" in got.details
    )
    if keep:
        with _CACHE_LOCK:
            _CACHE[key] = replace(got, details=dict(got.details))
            while len(_CACHE) > _CACHE_ENTRIES:
                _CACHE.popitem(last=False)
    return got


def _report(res: ExecResult) -> tuple[dict[str, Any], bytes]:
    """The compile run's event (its first line on fd 3) and the bytes after it."""
    line, _, payload = res.result.partition(b"\n")
    try:
        event = json.loads(line) if line else {}
    except ValueError:
        event = {}
    return (event if isinstance(event, dict) else {}), payload


def binary_stdin(binary: bytes, stdin: str) -> bytes:
    """The stdin of a case run: the binary for `exec_binary`, then the case's input."""
    return len(binary).to_bytes(8, "big") + binary + stdin.encode()


def case_limits(limits: Limits, binary: bytes) -> Limits:
    """`limits`, with room for the binary in the file-size limit (it is written to a memfd)."""
    need = math.ceil(len(binary) / 2**20) + 1
    if need <= limits.file_size_mb:
        return limits
    return replace(limits, file_size_mb=need)
