"""OpenAI's `python` grader: user code ``def grade(sample, item) -> float`` run in a killable process.

Each call starts a fresh ``python -I`` (this interpreter, so the same installed packages) in its own
session, with rlimits set before the user's code loads (address space = `memory_mb`, CPU seconds,
file size 16 MiB, no core files), a scrubbed environment, a fresh temporary working directory and
stdin closed after the payload. The score comes back over a dedicated pipe, so whatever the code
prints cannot corrupt it; stdout and stderr tails land in the grade's details. At the wall-clock
deadline, and as soon as the process exits, its whole process group is killed (lingering children
included). This is process isolation against hangs and memory blow-ups, not a security sandbox.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from .base import Grader, register
from .grade import Grade
from .template import sample_json

__all__ = ["PythonGrader", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 30.0  # seconds, when the spec sets no `timeout`
FSIZE_LIMIT = 16 * 2**20  # bytes a grader may write to any one file
TAIL_BYTES = 2048  # stdout/stderr kept in details (the last bytes)
RESULT_LIMIT = 2**20  # bytes read from the result pipe
_DRAIN_S = 0.2  # after the kill, how long to wait for buffered output

# Runs in the child as `python -I -c _RUNNER <result fd> <memory bytes> <cpu s> <fsize bytes> <parent pid>`.
# It sets the limits, reads a JSON payload {source, sample, item} from stdin, runs the user's code and
# writes one JSON object to the result fd: {"status": "ok", "value": float} | {"status": "bad_return",
# "type", "repr"} | {"status": "raised" | "memory" | "exit", "phase", "type", "message", "traceback"}.
_RUNNER = r"""
import os, sys, resource
_fd, _mem, _cpu, _fsize, _parent = (int(a) for a in sys.argv[1:6])
try:  # die with the process that runs the grader (an executor may SIGKILL it at its own deadline)
    import ctypes
    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
except (OSError, AttributeError):
    pass
if os.getppid() != _parent:
    os._exit(1)
for _lim, _soft, _hard in ((resource.RLIMIT_AS, _mem, _mem), (resource.RLIMIT_CPU, _cpu, _cpu + 1),
                           (resource.RLIMIT_FSIZE, _fsize, _fsize), (resource.RLIMIT_CORE, 0, 0)):
    resource.setrlimit(_lim, (_soft, _hard))
os.set_inheritable(_fd, False)
sys.argv = ["grader"]
import json, numbers

def _send(obj):
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    data = json.dumps(obj).encode()
    while data:
        data = data[os.write(_fd, data):]
    os.close(_fd)
    os._exit(0)

def _failure(status, phase, e):
    import traceback
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return {"status": status, "phase": phase, "type": type(e).__name__, "message": str(e)[:1000],
            "traceback": tb[-2000:]}

_payload = json.loads(sys.stdin.buffer.read())
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
_ns = {"__name__": "__grader__"}
_phase = "load"
try:
    exec(compile(_payload.pop("source"), "<grader source>", "exec"), _ns)
    _phase = "grade"
    _value = _ns["grade"](_payload["sample"], _payload["item"])
except MemoryError as e:
    _send(_failure("memory", _phase, e))
except SystemExit as e:
    _send(_failure("exit", _phase, e))
except BaseException as e:
    _send(_failure("raised", _phase, e))
if isinstance(_value, numbers.Real):
    try:
        _send({"status": "ok", "value": float(_value)})
    except (OverflowError, ValueError, TypeError):
        pass
try:
    _r = repr(_value)[:200]
except BaseException:
    _r = "?"
_send({"status": "bad_return", "type": type(_value).__name__, "repr": _r})
"""


@dataclass(frozen=True)
class _Run:
    """What came back from one child process."""

    timed_out: bool
    returncode: int
    result: bytes
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float


class _Tail:
    """The last TAIL_BYTES of a stream, and whether anything was cut."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.cut = False

    def add(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > TAIL_BYTES:
            del self.buf[: len(self.buf) - TAIL_BYTES]
            self.cut = True

    def text(self) -> str:
        return ("[...]" if self.cut else "") + self.buf.decode("utf-8", "replace")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _run_child(limits: list[int], payload: bytes, wall_s: float, cwd: str, env: dict[str, str]) -> _Run:
    """Run `_RUNNER` with `limits`, feed it `payload`, collect the result pipe and output tails until it
    exits or `wall_s` passes, then kill its process group (lingering children too) and reap it."""
    result_r, result_w = os.pipe()
    argv = [sys.executable, "-I", "-c", _RUNNER, str(result_w), *map(str, limits), str(os.getpid())]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(result_w,),
            cwd=cwd,
            env=env,
            start_new_session=True,  # own session and process group: killpg reaches its children
        )
    except BaseException:
        os.close(result_r)
        raise
    finally:
        os.close(result_w)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin_fd = proc.stdin.fileno()
    out, err = _Tail(), _Tail()
    sinks: dict[int, _Tail | bytearray] = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    result = sinks[result_r] = bytearray()
    sel = selectors.DefaultSelector()
    pidfd = -1
    try:
        pidfd = os.pidfd_open(proc.pid)  # readable once the child exits (a zombie until wait4)
        os.set_blocking(stdin_fd, False)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
        for fd in (*sinks, pidfd):
            sel.register(fd, selectors.EVENT_READ)
        to_send = memoryview(payload)
        exited = timed_out = False
        deadline = start + wall_s
        while not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(remaining):
                if key.fd == pidfd:
                    exited = True
                elif key.fd == stdin_fd:
                    try:
                        to_send = to_send[os.write(stdin_fd, to_send[:65536]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        to_send = to_send[:0]
                    if not to_send:
                        sel.unregister(stdin_fd)
                        proc.stdin.close()
                else:
                    _read_into(sel, key.fd, sinks)
        _kill_group(proc.pid)  # before wait4: the zombie keeps the group id from being reused
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - start
        # What was written is in the pipes; EOF follows unless a process left the group (setsid).
        for fd in (stdin_fd, pidfd):
            if fd in sel.get_map():
                sel.unregister(fd)
        drain_until = time.monotonic() + _DRAIN_S
        while set(sinks) & set(sel.get_map()) and (remaining := drain_until - time.monotonic()) > 0:
            for key, _ in sel.select(remaining):
                _read_into(sel, key.fd, sinks)
    finally:
        sel.close()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
        os.close(result_r)
        if pidfd >= 0:
            os.close(pidfd)
        if proc.returncode is None:  # an exception above: never leave the group running
            _kill_group(proc.pid)
            proc.wait()
    return _Run(
        timed_out,
        proc.returncode,
        bytes(result),
        out.text(),
        err.text(),
        wall,
        rusage.ru_utime + rusage.ru_stime,
    )


def _read_into(sel: selectors.BaseSelector, fd: int, sinks: dict[int, _Tail | bytearray]) -> None:
    data = os.read(fd, 65536)
    sink = sinks[fd]
    if not data:
        sel.unregister(fd)
    elif isinstance(sink, _Tail):
        sink.add(data)
    else:  # the result: keep one byte over the limit to mark "too long"
        sink += data[: max(RESULT_LIMIT + 1 - len(sink), 0)]


def _check_source(source: str) -> None:
    """`source` must compile and define a top-level ``def grade(sample, item)``. Nothing is executed."""
    try:
        tree = ast.parse(source, "<grader source>")
        compile(tree, "<grader source>", "exec", dont_inherit=True)
    except SyntaxError as e:
        raise ValueError(f"source does not compile: {e.msg} (line {e.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise ValueError(f"source does not compile: {e}") from None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "grade"]
    if not defs:
        raise ValueError("source must define a top-level function `def grade(sample, item) -> float`")
    args = defs[-1].args
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    if (positional < 2 and args.vararg is None) or required > 2:
        raise ValueError(f"grade() must take exactly two arguments (sample, item); it takes {positional}")
    if any(d is None for d in args.kw_defaults):
        raise ValueError(
            "grade() must not have required keyword-only arguments; it is called as grade(sample, item)"
        )


@register("python")
class PythonGrader(Grader):
    """OpenAI `python`: ``source`` defines ``grade(sample, item) -> float``; the return value is the score.

    `passed` is ``score >= pass_threshold``, or ``score >= 1.0`` when no threshold is given. A return that
    is not a finite number, an exception, running out of memory, or exiting without a return is an
    ``error`` grade; passing the wall-clock (or CPU) limit is a ``timeout`` grade.

    rft extensions: the wall-clock limit is `timeout` less a margin (10%, at most 1 s) so the executor's
    own deadline never fires first, 30 s when unset; `memory_mb` caps the address space; `cpu_s` caps
    CPU seconds (default: the wall-clock limit, rounded up, plus 1). `image_tag` is accepted for
    compatibility and ignored: the code runs on this interpreter, with its installed packages.
    """

    type: Literal["python"] = "python"
    source: str
    image_tag: str | None = None
    pass_threshold: float | None = None
    memory_mb: int = Field(default=2048, ge=64, description="address-space limit of the grading process")
    cpu_s: int | None = Field(default=None, ge=1, description="CPU-time limit in seconds")

    def model_post_init(self, _context: Any) -> None:
        super().model_post_init(_context)
        _check_source(self.source)

    def wall_limit(self) -> float:
        """Seconds the grading process may run: a margin under `timeout`, or DEFAULT_TIMEOUT."""
        if self.timeout is None:
            return DEFAULT_TIMEOUT
        return self.timeout - min(1.0, 0.1 * self.timeout)

    def cpu_limit(self) -> int:
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.wall_limit()) + 1

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        sample = dict(ctx["sample"])
        if "output_json" not in sample:  # as in templates: parsed from output_text when that is JSON
            try:
                sample["output_json"] = sample_json(sample)
            except LookupError:
                sample["output_json"] = None
        try:
            payload = json.dumps({"source": self.source, "sample": sample, "item": ctx["item"]}).encode()
        except (TypeError, ValueError) as e:
            return Grade.error(f"python grader {self.name!r}: sample and item must be JSON data ({e})")
        limits = [self.memory_mb * 2**20, self.cpu_limit(), FSIZE_LIMIT]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        with tempfile.TemporaryDirectory(prefix="rft-python-grader-", ignore_cleanup_errors=True) as tmp:
            env |= {"HOME": tmp, "TMPDIR": tmp}
            run = _run_child(limits, payload, self.wall_limit(), tmp, env)
        return self._interpret(run)

    def _interpret(self, run: _Run) -> Grade:
        who = f"python grader {self.name!r}"
        details: dict[str, Any] = {"wall_s": round(run.wall_s, 3), "cpu_s": round(run.cpu_s, 3)}
        if run.stdout:
            details["stdout"] = run.stdout
        if run.stderr:
            details["stderr"] = run.stderr
        if run.timed_out:
            return Grade.timeout(f"{who} ran past its {self.wall_limit():g} s wall-clock limit", **details)
        if run.result:
            try:
                res = json.loads(run.result)
            except ValueError:
                res = None
            if isinstance(res, dict):
                return self._from_result(res, details)
            return Grade.error(f"{who} sent back a malformed result", **details)
        rc = run.returncode
        if rc < 0:
            sig = -rc
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and run.cpu_s >= self.cpu_limit() - 0.05):
                return Grade.timeout(f"{who} used up its {self.cpu_limit()} s CPU-time limit", **details)
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            return Grade.error(
                f"{who} was killed by {name} (a crash, or the memory limit memory_mb={self.memory_mb})",
                **details,
            )
        why = f" (out of memory: memory_mb={self.memory_mb})" if "MemoryError" in run.stderr else ""
        return Grade.error(
            f"{who} exited with code {rc} without returning a score{why}; grade() must return a number",
            **details,
        )

    def _from_result(self, res: dict[str, Any], details: dict[str, Any]) -> Grade:
        who = f"python grader {self.name!r}"
        status = res.get("status")
        if status == "ok":
            value = res.get("value")
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                return Grade.error(
                    f"{who}: grade() returned {value!r}; the score must be a finite number", **details
                )
            threshold = self.pass_threshold if self.pass_threshold is not None else 1.0
            return Grade(float(value), "ok", value >= threshold, None, details)
        if status == "bad_return":
            return Grade.error(
                f"{who}: grade() returned {res.get('type')} {res.get('repr')}; it must return a number",
                **details,
            )
        if status in ("raised", "memory", "exit"):
            where = "grade()" if res.get("phase") == "grade" else "the source (while loading)"
            if status == "memory":
                msg = f"{who}: {where} ran out of memory (memory_mb={self.memory_mb})"
            elif status == "exit":
                msg = f"{who}: {where} called sys.exit({res.get('message')}) instead of returning a score"
            else:
                msg = f"{who}: {where} raised {res.get('type')}: {res.get('message')}"
            return Grade.error(msg, traceback=res.get("traceback"), **details)
        return Grade.error(f"{who} sent back a malformed result", **details)
