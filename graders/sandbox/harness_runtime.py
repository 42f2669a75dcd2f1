"""The in-sandbox half of the `code` grader's function tests (stdlib only; see graders/code_harness.py).

The local fork server imports it once as module ``rft_harness`` (``--preload-file``), so a run does not
compile it again; a backend without it gets this source inside the program. `run` loads the program
and the test preamble into a fresh namespace, runs the planned check function, and reports one JSON
line per event on a duplicate of fd 3 (fd 3 itself is pointed at /dev/null before the program loads):
``start``; ``values`` (the encoded return values of an outside-judged test); ``ok`` or ``fail`` (an
inside-judged test, or with ``i == -1`` a setup statement that raised); ``load_error``; ``done``.

It also holds the in-sandbox halves of C++ grading: `compile_cpp` (g++ on the source read from stdin,
the binary or the compiler's message reported on fd 3) and `exec_binary` (runs a binary read from
stdin in place of this process, the rest of stdin being its input).
"""

import builtins
import contextlib
import json
import os

_PLAIN = (type(None), bool, int, float, complex, str, bytes, list, tuple, set, frozenset, dict)
_ITER = {list: list.__iter__, tuple: tuple.__iter__, set: set.__iter__, frozenset: frozenset.__iter__}
_TAG = {list: "l", tuple: "t", set: "s", frozenset: "F"}


def encode(x, depth=0):
    """`x` as JSON data that keeps Python's types. A subclass of a builtin type is encoded as its
    builtin value through the builtin's own methods (its overrides, such as an ``__eq__`` that is always
    True, never run); numpy values through ``tolist()``; anything else raises ValueError."""
    if depth > 60:
        raise ValueError("the value is nested too deeply")
    t = type(x)
    if t not in _PLAIN:
        base = next((b for b in _PLAIN[1:] if issubclass(t, b)), None)
        if base is None:
            if t.__module__ == "numpy" and hasattr(x, "tolist"):
                return encode(x.tolist(), depth + 1)
            raise ValueError(f"returned a {t.__name__} object, not plain data")
        t = base
    if t is type(None) or t is bool:
        return x
    if t is int:
        return ["i", format(int.__index__(x), "x")]
    if t is float:
        return ["f", float.hex(float.__float__(x))]
    if t is complex:
        return ["c", float.hex(complex.real.__get__(x)), float.hex(complex.imag.__get__(x))]
    if t is str:
        return str.__str__(x)
    if t is bytes:
        return ["b", bytes.hex(x)]
    if t is dict:
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(x)]]
    return [_TAG[t], [encode(v, depth + 1) for v in _ITER[t](x)]]


def _describe(e):
    try:
        return type(e).__name__, str(e)[:300]
    except BaseException:
        return type(e).__name__, "?"


class _Reporter:
    def __init__(self, fd, nonce):
        self.fd = fd
        self.nonce = nonce

    def send(self, event, i=-1, **kw):
        line = json.dumps(dict(n=self.nonce, e=event, i=i, **kw)) + "\n"
        os.write(self.fd, line.encode())

    def ok(self, i):
        self.send("ok", i)

    def fail(self, i, e):
        kind, message = _describe(e)
        self.send("fail", i, t=kind, m=message)

    def values(self, i, calls):
        try:
            out = [encode(v) for v in calls()]
        except BaseException as e:
            self.fail(i, e)
            return
        self.send("values", i, v=out)


def _read_exact(fd, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError(f"stdin ended after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def run(program, preamble, check_src, entry, nonce):
    """Run `program`, then `preamble`, then ``__rft_check(<entry>, reporter)`` from `check_src`."""
    fd = os.dup(3)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 3)
    os.close(null)
    report = _Reporter(fd, nonce)
    report.send("start")
    ns = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        exec(compile(program, "<solution>", "exec"), ns)
        exec(compile(preamble, "<tests>", "exec"), ns)
        candidate = ns[entry] if entry else None
        if entry and not callable(candidate):
            raise NameError(f"the program does not define a function {entry}()")
    except BaseException as e:
        kind, message = _describe(e)
        report.send("load_error", t=kind, m=message)
        report.send("done")
        return
    exec(compile(check_src, "<tests>", "exec"), ns)
    ns["__rft_check"](candidate, report)
    report.send("done")


# ---- C++ ---------------------------------------------------------------------------------------------


def _group_usage(pgid):
    """CPU seconds and seconds waiting for a CPU (None without schedstat) of the live processes of
    process group `pgid`."""
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    cpu = wait = 0.0
    schedstat = os.path.exists("/proc/self/schedstat")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            cpu += sum(int(x) for x in fields[11:15]) * tick
            if schedstat:
                with open(f"/proc/{name}/schedstat", "rb") as f:
                    wait += int(f.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):  # it ended meanwhile
            continue
    return cpu, (wait if schedstat else None)


def compile_cpp(flags, timeout):
    """Compile the C++ source read from stdin with g++ `flags`, within `timeout` wall seconds, and report
    one JSON line on fd 3: ``binary`` (followed by `size` raw bytes of the executable), ``error`` (the
    compiler's exit status and message), ``timeout`` (with the compiler's CPU and CPU-wait seconds) or
    ``no_compiler``."""
    import select
    import shutil
    import time

    start = time.monotonic()

    def send(event, data=b""):
        _write_all(3, (json.dumps(event) + "\n").encode() + data)

    gxx = shutil.which("g++")
    if gxx is None:
        send({"e": "no_compiler", "path": os.environ.get("PATH", "")})
        return
    with open("solution.cpp", "wb") as f:
        f.write(_read_exact(0, int.from_bytes(_read_exact(0, 8), "big")))
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "compile.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
        (os.POSIX_SPAWN_CLOSE, 3),
    ]
    argv = ["g++", *flags, "solution.cpp", "-o", "solution"]
    pid = os.posix_spawn(gxx, argv, dict(os.environ), file_actions=actions, setsid=True)
    pidfd = os.pidfd_open(pid)
    left = start + timeout - time.monotonic()
    if not select.select([pidfd], [], [], max(left, 0))[0]:
        cpu, wait = _group_usage(pid)
        with contextlib.suppress(ProcessLookupError):  # it ended just now
            os.killpg(pid, 9)
        os.waitpid(pid, 0)
        send({"e": "timeout", "cpu_s": cpu, "wait_s": wait, "wall_s": time.monotonic() - start})
        return
    _, status = os.waitpid(pid, 0)
    with open("compile.log", "rb") as f:
        log = f.read(20000).decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not os.path.exists("solution"):
        send({"e": "error", "code": code, "m": log, "wall_s": time.monotonic() - start})
        return
    with open("solution", "rb") as f:
        binary = f.read()
    send({"e": "binary", "size": len(binary), "wall_s": time.monotonic() - start}, binary)


def exec_binary():
    """Read ``[u64 n][n bytes of an executable]`` from stdin and become that program (from a memfd, so
    that a noexec /tmp does not matter); the rest of stdin is its input, fd 3 goes to /dev/null."""
    binary = _read_exact(0, int.from_bytes(_read_exact(0, 8), "big"))
    fd = os.memfd_create("solution")
    _write_all(fd, binary)
    del binary
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 3)
    os.close(null)
    os.execve(fd, ["solution"], dict(os.environ))
