"""The ``bwrap`` backend: each program in its own bubblewrap sandbox (Debian's ``bubblewrap`` package).

Per run, bwrap (as a per-sandbox unprivileged uid when we are root) creates new user, pid, network,
ipc, uts and cgroup namespaces, a root holding only /usr (and the /bin, /lib... links), a fresh /proc
and /dev, a private size-limited tmpfs at /tmp, drops every capability, forbids further user
namespaces (``--disable-userns``), clears the environment, and dies with its parent. Inside, a fresh
``python3 -I -S`` (Debian's ``/usr/bin/python3`` by default: the host's other interpreters may sit in
directories this uid cannot read) runs forkserver.py ``--run-one``, which sets the rlimits and runs the
program. Slower than ``local`` (an interpreter start per program) but nothing is shared between runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..procstat import usage
from . import forkserver
from .base import ExecResult, Limits, SandboxError, SandboxUnavailable, register_sandbox
from .local import FORKSERVER_PATH, HARNESS_RUNTIME_PATH
from .session import SESSION_CPU_S, SandboxSession
from .state import check_own_tree, check_private_path, state_dir

__all__ = ["BwrapSandbox"]


@register_sandbox("bwrap")
class BwrapSandbox:
    """Bubblewrap per program (see the module docstring). Raises `SandboxUnavailable` on the first run
    (or `start()`) when bwrap is missing or cannot create its namespaces here."""

    name = "bwrap"

    def __init__(
        self,
        *,
        bwrap: str = "bwrap",
        python: str = "/usr/bin/python3",
        uid_range: tuple[int, int] = (64500, 64999),  # not 62000-: bwrap before state.py locked elsewhere
        lock_dir: str | None = None,
        binds: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.bwrap = bwrap
        self.python = python
        self.uid_range = uid_range
        self.lock_dir = lock_dir
        self.binds = tuple(binds)
        self.uid: int | None = None
        self._lock_fd: int | None = None
        self._dir: str | None = None
        self._base: list[str] | None = None
        self._lock = threading.Lock()

    # -- set-up, once

    def start(self) -> dict[str, Any]:
        with self._lock:
            self._start()
        return {"uid": self.uid, "python": self.python, "bwrap": self.bwrap}

    def _start(self) -> None:
        if self._base is not None:
            return
        exe = shutil.which(self.bwrap)
        if exe is None:
            raise SandboxUnavailable("bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
        if not os.access(self.python, os.X_OK):
            raise SandboxUnavailable(f"no Python at {self.python} for the bwrap sandbox (set python=...)")
        help_text = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
        state = state_dir(self.lock_dir)
        if os.geteuid() == 0 and self.uid is None:
            try:
                self.uid, self._lock_fd = forkserver.acquire_uid(*self.uid_range, state)
            except forkserver.SetupError as e:
                raise SandboxUnavailable(str(e)) from None
        self._dir = self._runtime_dir(state)
        check_own_tree(self._dir)
        self._base = self._base_args(exe, help_text)
        probe = self._run("import os; print(os.getuid())", b"", Limits(timeout=20))
        if not (probe.ok and probe.stdout.strip() == str(forkserver.INNER_ID).encode()):
            base, self._base = self._base, None
            del base
            raise SandboxUnavailable(
                f"bwrap cannot run a sandboxed program here: {probe.stderr.decode(errors='replace')[-500:] or probe}"
            )

    def _runtime_dir(self, state: str) -> str:
        """A directory this uid can read holding forkserver.py and the harness (as rft_harness.py), compiled
        by the sandbox's interpreter; one per content and interpreter, kept (a few kB) in this user's
        private `state` folder, and checked (owner, modes, no symlinks) before each reuse."""
        sources = {
            "forkserver.py": FORKSERVER_PATH.read_bytes(),
            "rft_harness.py": HARNESS_RUNTIME_PATH.read_bytes(),
        }
        key = hashlib.sha256(b"".join(sources.values()) + self.python.encode()).hexdigest()[:16]
        final = f"{state}/bwrap-{key}"
        if os.path.lexists(final):
            return final
        tmp = tempfile.mkdtemp(prefix="bwrap-new-", dir=state)
        for name, data in sources.items():
            Path(tmp, name).write_bytes(data)
        subprocess.run(  # so that a run imports the harness instead of compiling it (best effort)
            [self.python, "-I", "-S", "-c", f"import compileall; compileall.compile_dir({tmp!r}, quiet=1)"],
            capture_output=True,
        )
        for root, dirs, files in os.walk(tmp):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError:  # another sandbox made it first
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _base_args(self, exe: str, help_text: str) -> list[str]:
        args = [exe, "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try", "--uid", str(forkserver.INNER_ID), "--gid", str(forkserver.INNER_ID),
                "--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]  # fmt: skip
        if "--disable-userns" in help_text:
            args.append("--disable-userns")
        for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for path in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives", *self.binds):
            args += ["--ro-bind-try", path, path]
        prefix = str(Path(self.python).resolve().parents[1])
        if not prefix.startswith("/usr"):
            args += ["--ro-bind", prefix, prefix]
        args += ["--ro-bind", str(self._dir), "/.rft", "--proc", "/proc", "--dev", "/dev"]
        env = {**forkserver.ENV}
        args += ["--clearenv", *[x for k, v in env.items() for x in ("--setenv", k, v)], "--chdir", "/tmp"]
        return args

    # -- per run

    def run(self, program: str, stdin: bytes | str = b"", limits: Limits | None = None) -> ExecResult:
        limits = limits or Limits()
        data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        with self._lock:
            self._start()
            assert self._dir is not None
            state_dir(self.lock_dir)  # still ours, on every use (a few stat calls)
            check_private_path(self._dir, mode_mask=0o022)
            return self._run(program, data, limits)

    def _run(self, program: str, stdin: bytes, limits: Limits) -> ExecResult:
        assert self._base is not None
        res_r, res_w = os.pipe()
        info_r, info_w = os.pipe()
        wire = dict(limits.to_wire(), result_fd=res_w)
        argv = [*self._base, "--size", str(wire["tmp"]), "--tmpfs", "/tmp", "--remount-ro", "/", "--info-fd", str(info_w), "--",
                self.python, "-I", "-S", "/.rft/forkserver.py", "--run-one", json.dumps(wire)]  # fmt: skip
        source = program.encode()
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(res_w, info_w),
                start_new_session=True,
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                user=self.uid,  # None: stay as we are (not root: already unprivileged)
                group=self.uid,
                extra_groups=[] if self.uid is not None else None,
            )
        except OSError as e:
            os.close(res_r)
            os.close(info_r)
            raise SandboxError(f"could not start bwrap: {e}") from e
        finally:
            os.close(res_w)
            os.close(info_w)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        col = forkserver.Collector(
            wire, proc.stdin.fileno(), memoryview(struct.pack(">Q", len(source)) + source + stdin),
            proc.stdout.fileno(), proc.stderr.fileno(), res_r,
        )  # fmt: skip
        outcome, cpu_wait, cpu = "done", None, 0.0
        pidfd = os.pidfd_open(proc.pid)
        try:
            while True:
                left = start + limits.timeout - time.monotonic()
                if left <= 0 or col.overflow:
                    outcome = "timeout" if left <= 0 else "output_limit"
                    if self.uid is not None:
                        cpu, cpu_wait = usage(uid=self.uid)
                    proc.kill()
                    break
                rfds, wfds = col.fds()
                r, w, _ = select.select([*rfds, pidfd], wfds, [], left)
                col.handle([fd for fd in r if fd != pidfd], w)
                if pidfd in r:
                    break
            col.close_stdin()
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - start
            if self.uid is not None:
                forkserver.kill_uid(self.uid)
            col.drain(0.2)
            info = _read_nonblocking(info_r)
        finally:
            os.close(pidfd)
            os.close(res_r)
            os.close(info_r)
            for f in (proc.stdin, proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    f.close()
        if outcome == "done" and not info:
            err = bytes(col.bufs[col.err_r]).decode(errors="replace").strip()
            raise SandboxError(f"bwrap could not set up the sandbox: {err[-500:]}")
        exit_code = sig = None
        if outcome == "done":
            cpu = ru.ru_utime + ru.ru_stime
            code = os.waitstatus_to_exitcode(status)
            if 128 < code < 160:  # bwrap reports a program killed by signal n as exit code 128 + n
                sig = code - 128
            elif code < 0:
                sig = -code
            else:
                outcome, exit_code = "exited", code
            if sig is not None:
                cpu_hit = sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits.cpu_limit - 0.05)
                outcome = "cpu_limit" if cpu_hit else "signaled"
        return ExecResult(
            outcome=outcome,  # type: ignore[arg-type]
            exit_code=exit_code,
            signal=sig,
            stdout=bytes(col.bufs[col.out_r]),
            stderr=bytes(col.bufs[col.err_r]),
            result=bytes(col.bufs[col.res_r]),
            stdout_truncated=col.truncated[col.out_r],
            stderr_truncated=col.truncated[col.err_r],
            result_truncated=col.truncated[col.res_r],
            stdout_dropped=col.dropped,
            wall_s=wall,
            cpu_s=cpu,
            cpu_wait_s=cpu_wait,
            backend=self.name,
        )

    def session(self, program: str, limits: Limits | None = None) -> SandboxSession:
        """`program` as a long-lived program (session.py) in a bubblewrap sandbox of its own, its stdin
        and stdout the channel. Not as root: there every run of this sandbox shares one uid, whose
        processes each `run` kills (use ``local``)."""
        limits = limits or Limits()
        with self._lock:
            self._start()
            if self.uid is not None:
                raise SandboxError(
                    "the bwrap sandbox holds sessions only for users other than root; as root use 'local'"
                )
            assert self._dir is not None and self._base is not None
            state_dir(self.lock_dir)
            check_private_path(self._dir, mode_mask=0o022)
            base = self._base
        res_w = os.open(os.devnull, os.O_WRONLY)  # a session has no result channel
        wire = dict(limits.to_wire(), cpu=math.ceil(limits.cpu_s or SESSION_CPU_S), result_fd=res_w)
        argv = [*base, "--size", str(wire["tmp"]), "--tmpfs", "/tmp", "--remount-ro", "/", "--",
                self.python, "-I", "-S", "/.rft/forkserver.py", "--run-one", json.dumps(wire)]  # fmt: skip
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(res_w,),
                start_new_session=True, cwd="/", env={"PATH": "/usr/bin:/bin"},
            )  # fmt: skip
        except OSError as e:
            raise SandboxError(f"could not start bwrap: {e}") from e
        finally:
            os.close(res_w)
        session = SandboxSession(proc, self.name, None)
        source = program.encode()
        assert proc.stdin is not None
        try:
            proc.stdin.write(struct.pack(">Q", len(source)) + source)
            proc.stdin.flush()
        except OSError as e:
            session.kill()
            raise SandboxError(f"bwrap did not take the session's program: {e}") from None
        return session

    def close(self) -> None:
        with self._lock:
            self._base = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
                self.uid = None

    def __enter__(self) -> BwrapSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _read_nonblocking(fd: int) -> bytes:
    out = b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        out += chunk
    return out
