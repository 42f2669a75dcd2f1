"""The program inside the sandbox behind the stateful ``python`` tool (python_session.py): a Python
session that runs one code cell per request, keeping its variables, imports and functions between them.

Stdlib-only; sent as the source of a sandbox session (rft.graders.sandbox.session), so it runs as
``__main__`` with the channel on fds 0 and 1: frames of a 4-byte big-endian length and UTF-8 JSON.
Request ``{"id", "code": str, "cpu_s": int | None, "output_bytes": int}``; reply ``{"id", "stdout", "stderr",
"stdout_bytes", "stderr_bytes", "result", "error", "cpu_s"}`` (`result`: the repr of a last expression
that is not None, as a notebook shows it; `error`: the traceback of an exception, or None). At EOF the
session exits.

The channel moves to high fds and fd 0 to /dev/null before any cell runs; a cell's stdout and stderr go to
anonymous files read back after it, at the fd level (so ``os.write(1, ...)`` and child processes are
captured too). A cell can still find and write over the channel: the host then sees a broken frame and
kills the session; what a cell forges on it only reaches its own caller (the model), as its output would.
Per cell, RLIMIT_CPU's soft limit is this session's CPU time so far plus `cpu_s`; its SIGXCPU raises
`CpuLimitExceeded` (a BaseException) in the cell, which ends it with ``"cpu_limit": true`` in the reply and
leaves the session alive (the driver is pid 1 of its pid namespace, which ignores SIGXCPU's default action).
"""

from __future__ import annotations

import ast
import json
import os
import resource
import signal
import struct
import sys
import time
import traceback
from typing import Any

CHANNEL_IN = os.dup(0)
CHANNEL_OUT = os.dup(1)


class CpuLimitExceeded(BaseException):
    """The cell used its CPU seconds."""


def _on_sigxcpu(signum: int, frame: Any) -> None:
    raise CpuLimitExceeded("the call used its CPU time")


def _null_stdin() -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def _capture_file(name: str) -> int:
    try:
        return os.memfd_create(name)
    except OSError:  # no memfd here: a file in the private /tmp, unlinked at once
        path = f"/tmp/.rft-session-{name}-{os.getpid()}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)
        return fd


def _read_exact(n: int) -> bytes | None:
    os.set_blocking(CHANNEL_IN, True)  # a cell may have changed it
    buf = b""
    while len(buf) < n:
        chunk = os.read(CHANNEL_IN, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _send(message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    view = memoryview(struct.pack(">I", len(data)) + data)
    os.set_blocking(CHANNEL_OUT, True)
    while view:
        view = view[os.write(CHANNEL_OUT, view) :]


def _take(fd: int, cap: int) -> tuple[str, int]:
    """The first `cap` bytes written to capture file `fd` (as text) and how many there were."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, min(size, cap), 0)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    return data.decode("utf-8", errors="replace"), size


def _set_cpu(seconds: int | None) -> None:
    if not seconds:
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used.ru_utime + used.ru_stime) + 1 + int(seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _run_cell(code: str, namespace: dict[str, Any]) -> tuple[str | None, str | None, bool]:
    """Run `code` in `namespace`: (repr of its last expression or None, traceback or None, whether it ran
    out of CPU time)."""
    try:
        tree = ast.parse(code, "<python>", "exec")
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr):
            tree.body.pop()
        else:
            last = None
        exec(compile(tree, "<python>", "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<python>", "eval"), namespace)
            if value is not None:
                namespace["_"] = value
                return repr(value), None, False
        return None, None, False
    except BaseException as e:  # the cell's (SystemExit, KeyboardInterrupt too): shown; the session lives
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None  # not this function's frame
        if isinstance(e, SyntaxError):
            tb = None
        return None, "".join(traceback.format_exception(type(e), e, tb)), isinstance(e, CpuLimitExceeded)


def main() -> None:
    _null_stdin()
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    out_fd, err_fd = _capture_file("stdout"), _capture_file("stderr")
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    stdout, stderr = sys.stdout, sys.stderr
    for stream in (stdout, stderr):  # print and os.write(1, ...) land in the order they ran
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    while True:
        head = _read_exact(4)
        body = _read_exact(struct.unpack(">I", head)[0]) if head is not None else None
        if body is None:
            os._exit(0)
        request = json.loads(body)
        cap = int(request.get("output_bytes", 65536))
        for fd, target in ((out_fd, 1), (err_fd, 2)):  # a cell may have moved them
            os.dup2(fd, target)
        sys.stdout, sys.stderr = stdout, stderr
        _set_cpu(request.get("cpu_s"))
        start = time.process_time()
        result, error, cpu_hit = _run_cell(str(request.get("code", "")), namespace)
        for stream in (stdout, stderr):  # ours; streams a cell put in sys.stdout are its own business
            try:
                stream.flush()
            except (OSError, ValueError):  # a cell closed it: what it wrote is in the file
                continue
        out, out_n = _take(out_fd, cap)
        err, err_n = _take(err_fd, cap)
        if result is not None and len(result) > cap:
            result = result[:cap]
        _send({"id": request.get("id"), "cpu_limit": cpu_hit, "stdout": out, "stderr": err, "stdout_bytes": out_n, "stderr_bytes": err_n,
               "result": result, "error": error, "cpu_s": round(time.process_time() - start, 6)})  # fmt: skip


if __name__ == "__main__":
    main()
