"""The program the ``sandbox_fusion`` backend sends to SandboxFusion's ``run_code`` (see fusion.py): it
runs the real program as a child process and reports what it did as one line on its own stdout.

Self-contained, standard library only, Python 3.8 syntax: fusion.py sends this source followed by
``main(marker, program_b64, stdin_b64, limits)``. The child runs ``python prog.py`` in a fresh temporary
folder with its stdin from a file, stdout, stderr and fd 3 (the result channel) on pipes read here, in a
session of its own (killed whole at the end), under rlimits (address space, CPU, open files, file
size). This process prints ``<marker> start`` first, then ``<marker> {json}`` with the outcome and the
three outputs (base64), or ``<marker> error <message>`` when it fails itself.
"""

import base64
import contextlib
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data) :]


def _hide():
    """Make this process non-dumpable (the program may not read its memory or fds through /proc) and
    remove its source file (which holds the marker), where allowed."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError, ImportError):
        pass
    try:
        if sys.argv and sys.argv[0].endswith(".py"):
            os.unlink(sys.argv[0])
    except OSError:
        pass


def _fd3_pipe():
    """A pipe whose write end is fd 3 (given to the child), and its read end elsewhere."""
    r, w = os.pipe()
    if r == 3:
        r2 = os.dup(r)
        os.close(r)
        r = r2
    if w != 3:
        os.dup2(w, 3)
        os.close(w)
    return r


def _python():
    """This interpreter, or the first python3 on PATH where its path is not visible (an interpreter run
    from a bare file system)."""
    if sys.executable and os.path.exists(sys.executable):
        return sys.executable
    return shutil.which("python3") or shutil.which("python") or "python3"


def _limits_fn(lim):
    mem = lim["memory_mb"] * 2**20
    cpu = int(lim["cpu"])

    def apply():
        for res, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_NOFILE, lim["open_files"]),
                           (resource.RLIMIT_FSIZE, lim["file_size_mb"] * 2**20), (resource.RLIMIT_CORE, 0)):  # fmt: skip
            resource.setrlimit(res, (value, value))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))

    return apply


def _run(program, stdin, lim):
    tmp = tempfile.mkdtemp(prefix="rft-")
    try:
        with open(os.path.join(tmp, "prog.py"), "wb") as f:
            f.write(program)
        with open(os.path.join(tmp, "stdin"), "wb") as f:
            f.write(stdin)
        r3 = _fd3_pipe()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        with open(os.path.join(tmp, "stdin"), "rb") as fin:
            proc = subprocess.Popen(
                [_python(), "prog.py"], stdin=fin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(3,), cwd=tmp, env=env, start_new_session=True, preexec_fn=_limits_fn(lim),
            )  # fmt: skip
        os.close(3)
        return _collect(proc, r3, lim, start, before)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _collect(proc, r3, lim, start, before):
    caps = {"stdout": lim["output_bytes"], "stderr": lim["stderr_bytes"], "result": lim["result_bytes"]}
    fds = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr", r3: "result"}
    got = {"stdout": bytearray(), "stderr": bytearray(), "result": bytearray()}
    cut = {"stdout": False, "stderr": False, "result": False}
    outcome = None
    deadline = start + lim["timeout"]
    drain_end = None
    while fds:
        now = time.monotonic()
        if outcome is None and now >= deadline:
            outcome = "timeout"
        if outcome is not None or proc.poll() is not None:
            _kill(proc)
            drain_end = drain_end or now + 0.5  # what is left in the pipes, not what daemons write
        end = drain_end if drain_end is not None else deadline
        ready = select.select(list(fds), [], [], max(0.0, min(end - now, 0.05)))[0]
        if drain_end is not None and not ready and time.monotonic() >= drain_end:
            break
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            name = fds[fd]
            if not chunk:
                del fds[fd]
                continue
            buf = got[name]
            buf += chunk
            if len(buf) > caps[name]:
                cut[name] = True
                if name == "stderr":
                    del buf[: len(buf) - caps[name]]
                else:
                    del buf[caps[name] :]
                if name == "stdout" and outcome is None:
                    outcome = "output_limit"
    _kill(proc)
    rc = proc.wait()
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = {"exit_code": None, "signal": None, "wall_s": round(wall, 6), "cpu_s": round(cpu, 6)}
    if outcome is None and rc < 0:
        sig = -rc
        cpu_hit = sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= lim["cpu"] - 0.05)
        outcome = "cpu_limit" if cpu_hit else "signaled"
        report["signal"] = sig
    elif outcome is None:
        outcome = "exited"
        report["exit_code"] = rc
    report["outcome"] = outcome
    for name in got:
        report[name] = base64.b64encode(bytes(got[name])).decode("ascii")
        report[name + "_truncated"] = cut[name]
    return report


def _kill(proc):
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


def main(marker, program_b64, stdin_b64, limits):
    out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 10)  # above fd 3, which the child's result pipe takes
    _write_all(out, (marker + " start\n").encode())
    _hide()
    try:
        report = _run(base64.b64decode(program_b64), base64.b64decode(stdin_b64), limits)
        line = marker + " " + json.dumps(report, separators=(",", ":")) + "\n"
    except BaseException as e:  # the wrapper's own failure: reported, never a verdict
        line = marker + " error " + repr(e)[:500].replace("\n", " ") + "\n"
    _write_all(out, line.encode())
