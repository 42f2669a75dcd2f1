"""The ``sandbox_fusion`` backend: programs run by a SandboxFusion service (bytedance/SandboxFusion, the
sandbox verl's code rewards use), through its ``POST /run_code`` API.

    {"type": "code", ..., "sandbox": "sandbox_fusion",
     "sandbox_options": {"url": "http://sandbox-host:8080"}}     # or .../run_code

Options: ``url`` (the service, with or without ``/run_code``; default ``$RFT_SANDBOX_FUSION_URL``),
``timeout_margin`` (seconds added to the program's time limit for the HTTP request, default 30).

**The result channel.** ``run_code`` gives back stdout and stderr as text and a return code; there is
no fd 3, and the harness's report must not be something the program can print. So the code sent is a
wrapper (graders/sandbox/fusion_wrapper.py), not the program: it writes the program to a file in a
fresh temporary folder and runs it as a child (``python prog.py``) with stdin from a file, stdout,
stderr and fd 3 on pipes it reads, its own session (killed whole at the end), the time limit, the
output limits and rlimits (address space, CPU, open files, file size). Then it prints one line,
``<marker> {json}``, with the outcome, exit code or signal, times and the three outputs as base64, after
a ``<marker> start`` line. `marker` is 128 random bits made for this run. The child's own stdout
never reaches the service's stdout (it is a pipe to the wrapper), so a program that prints a
well-formed report line, marker or not, only changes its own stdout inside the report.

The program's outputs are judged here, as with the other backends: only bytes come back.

**Limits of this design**, what a program written to attack it could still do:
- The marker is in the wrapper's memory and source file. The wrapper makes itself non-dumpable (the
  program, as the same user, cannot open its ``/proc/<pid>/mem`` or ``fd/1``) and removes its source
  file where it may; a service that keeps a copy of the code elsewhere readable, or runs programs with
  ptrace rights, leaks it. With the marker and a way to the service's stdout the program could forge
  the whole report. The code grader's own harness already runs the tests in the program's process, so
  this is no weaker than the fd-3 channel of the other backends: what protects verdicts is that they
  are decided here, on the values sent back.
- Killing the wrapper (same user) leaves no report: that is counted as the program being killed
  (``signaled``, or ``timeout`` when the service says its time ran out): a failed test, never a pass.
  Two report lines (a forgery beside the real one) count the same way.
- Isolation (network, file system, other users, process counts) is the service's: this backend adds
  rlimits and a process group, not namespaces. It is as strong as the SandboxFusion deployment.
- The service's memory limit covers the wrapper too; it is set to the program's limit + 256 MiB.
- The report carries the outputs as base64 (4/3 of their size) on the service's stdout: a deployment
  that cuts its stdout shorter than that turns a large output into an error grade (a malformed report).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from functools import cache
from pathlib import Path
from typing import Any

from .base import ExecResult, Limits, SandboxError, SandboxUnavailable, register_sandbox
from .remote import HttpJson

__all__ = ["FusionSandbox", "URL_ENV", "WRAPPER_PATH", "wrapper_program", "parse_report"]

URL_ENV = "RFT_SANDBOX_FUSION_URL"
WRAPPER_PATH = Path(__file__).resolve().with_name("fusion_wrapper.py")
_WRAPPER_MARGIN_S = 5.0  # the service's run_timeout over the program's: the wrapper starts and reports
_WRAPPER_MEMORY_MB = 256


def wrapper_program(program: str, stdin: bytes, limits: Limits) -> tuple[str, str]:
    """The code to send to ``run_code`` for one run, and its fresh marker."""
    marker = "rft-" + secrets.token_hex(16)
    lim = {
        "timeout": float(limits.timeout),
        "cpu": limits.cpu_limit,
        "memory_mb": limits.memory_mb,
        "open_files": limits.open_files,
        "file_size_mb": limits.file_size_mb,
        "output_bytes": limits.output_bytes,
        "stderr_bytes": limits.stderr_bytes,
        "result_bytes": limits.result_bytes,
    }
    args = (marker, base64.b64encode(program.encode()).decode(), base64.b64encode(stdin).decode(), lim)
    return _wrapper_source() + f"\nmain({', '.join(repr(a) for a in args)})\n", marker


@cache
def _wrapper_source() -> str:
    return WRAPPER_PATH.read_text()


def parse_report(stdout: str, marker: str, service_timed_out: bool) -> ExecResult | None:
    """The run's ExecResult from the wrapper's stdout; None when the wrapper never started (the service
    did not run it); SandboxError when the wrapper reports its own failure."""
    started, reports = False, []
    for line in stdout.splitlines():
        head, _, rest = line.partition(" ")
        if head != marker:
            continue
        if rest == "start":
            started = True
        elif rest.startswith("error "):
            raise SandboxError(f"the SandboxFusion wrapper failed: {rest[6:]}")
        else:
            reports.append(rest)
    if not started:
        return None
    if len(reports) != 1:
        why = "no report (the wrapper was killed)" if not reports else f"{len(reports)} reports (forged)"
        return ExecResult(
            outcome="timeout" if service_timed_out and not reports else "signaled",
            backend="sandbox_fusion",
            info={"wrapper": why},
        )
    try:
        d = json.loads(reports[0])
        return ExecResult(
            outcome=d["outcome"],
            exit_code=d["exit_code"],
            signal=d["signal"],
            stdout=base64.b64decode(d["stdout"], validate=True),
            stderr=base64.b64decode(d["stderr"], validate=True),
            result=base64.b64decode(d["result"], validate=True),
            stdout_truncated=bool(d["stdout_truncated"]),
            stderr_truncated=bool(d["stderr_truncated"]),
            result_truncated=bool(d["result_truncated"]),
            wall_s=float(d["wall_s"]),
            cpu_s=float(d["cpu_s"]),
            backend="sandbox_fusion",
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise SandboxError(f"the SandboxFusion wrapper's report is malformed: {e}") from None


@register_sandbox("sandbox_fusion")
class FusionSandbox:
    """A client of SandboxFusion's ``run_code`` (see the module docstring). Thread-safe."""

    name = "sandbox_fusion"

    def __init__(self, *, url: str | None = None, timeout_margin: float = 30.0) -> None:
        url = url or os.environ.get(URL_ENV)
        if not url:
            raise SandboxUnavailable(
                f"sandbox 'sandbox_fusion' needs the service's address: set sandbox_options.url (or ${URL_ENV}), "
                "e.g. http://127.0.0.1:8080"
            )
        url = url.rstrip("/")
        url = url if url.endswith("/run_code") else url + "/run_code"
        hint = f"; start SandboxFusion there, or fix sandbox_options.url / ${URL_ENV}"
        try:
            self.http = HttpJson(url, hint=hint)
        except ValueError as e:
            raise SandboxUnavailable(f"sandbox 'sandbox_fusion': {e}") from None
        self.url = url
        self.timeout_margin = timeout_margin

    def run(self, program: str, stdin: bytes | str = b"", limits: Limits | None = None) -> ExecResult:
        limits = limits or Limits()
        data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        code, marker = wrapper_program(program, data, limits)
        run_timeout = limits.timeout + _WRAPPER_MARGIN_S
        body = {
            "code": code,
            "language": "python",
            "stdin": "",
            "run_timeout": run_timeout,
            "compile_timeout": 10,
            "memory_limit_MB": limits.memory_mb + _WRAPPER_MEMORY_MB,
            "files": {},
            "fetch_files": [],
        }
        status, reply = self.http.request("POST", "", body, run_timeout + self.timeout_margin)
        text = reply.decode("utf-8", "replace")
        if status != 200:
            error = SandboxUnavailable if status in (401, 403, 404) else SandboxError
            raise error(f"SandboxFusion at {self.url} answered HTTP {status}: {text[:300]}")
        try:
            resp: Any = json.loads(text)
        except ValueError:
            resp = None
        if not isinstance(resp, dict):
            raise SandboxError(
                f"SandboxFusion at {self.url} sent a reply that is not a JSON object: {text[:300]}"
            )
        if resp.get("status") == "SandboxError":
            raise SandboxError(f"SandboxFusion at {self.url} failed: {str(resp.get('message'))[:500]}")
        run: dict[str, Any] = resp["run_result"] if isinstance(resp.get("run_result"), dict) else {}
        res = parse_report(str(run.get("stdout") or ""), marker, run.get("status") == "TimeLimitExceeded")
        if res is None:
            raise SandboxError(
                f"SandboxFusion at {self.url} did not run rft's wrapper (status {resp.get('status')}, "
                f"run status {run.get('status')}, stderr: {str(run.get('stderr') or '')[-500:]!r}); it "
                "needs language 'python' with Python 3.8 or later"
            )
        return res

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FusionSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
