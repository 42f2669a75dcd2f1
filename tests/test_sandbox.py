"""The sandbox interface and its backends: limits, outcomes, the result channel, isolation, fail-closed."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time

import pytest
from _sandboxes import BACKENDS, backend_or_skip, processes_of, sandbox_uid

from rft.graders.sandbox import (
    ExecResult,
    Limits,
    SandboxUnavailable,
    forkserver,
    get_sandbox,
    register_sandbox,
    sandbox_names,
)
from rft.graders.sandbox.local import FORKSERVER_PATH, LocalSandbox, UserNsSandbox

# The fork server this user can start (what `auto` picks): local as root, userns otherwise.
ForkServer = LocalSandbox if os.geteuid() == 0 else UserNsSandbox


@pytest.fixture(params=[pytest.param(b, marks=pytest.mark.docker) if b == "docker" else b for b in BACKENDS])
def box(request):
    return backend_or_skip(request.param)


def run(box, program: str, stdin: bytes = b"", **limits) -> ExecResult:
    return box.run(textwrap.dedent(program), stdin, Limits(**{"timeout": 5.0, **limits}))


# ---- the interface ----------------------------------------------------------------------------------


def test_limits_validate_and_convert():
    lim = Limits(timeout=2.5, memory_mb=256)
    assert lim.cpu_limit == 4 and Limits(timeout=2, cpu_s=1).cpu_limit == 1
    assert lim.to_wire()["memory"] == 256 * 2**20 and lim.to_wire()["timeout"] == 2.5
    for bad in (
        {"timeout": 0},
        {"timeout": float("inf")},
        {"memory_mb": 8},
        {"open_files": 3},
        {"processes": 0},
    ):
        with pytest.raises(ValueError):
            Limits(**bad)


def test_registry():
    assert {"local", "bwrap", "docker", "none"} <= set(sandbox_names())
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        get_sandbox("nope")
    with pytest.raises(SandboxUnavailable, match="opt-in"):
        get_sandbox("none")

    @register_sandbox("test-echo")
    class Echo:
        name = "test-echo"

        def run(self, program, stdin=b"", limits=None):
            return ExecResult("exited", exit_code=0, stdout=program.encode())

        def close(self):
            pass

    assert get_sandbox("test-echo").run("hi").stdout == b"hi"


def test_frames_round_trip():
    r, w = os.pipe()
    forkserver.write_frame(w, {"type": "run", "id": 7}, {"program": b"print(1)", "stdin": b"\x00" * 30000})
    os.close(w)
    with os.fdopen(r, "rb", buffering=0) as f:
        header, parts = forkserver.read_frame(f.fileno())
        assert header["id"] == 7 and bytes(parts["program"]) == b"print(1)" and len(parts["stdin"]) == 30000
        assert forkserver.read_frame(f.fileno()) is None


# ---- every backend -------------------------------------------------------------------------------------


def test_stdin_stdout_result_channel_exit_code(box):
    res = run(
        box,
        """
        import os, sys
        data = sys.stdin.read()
        print(data.upper(), end="")
        sys.stderr.write("note\\n")
        os.write(3, b"verdict")
        sys.exit(3)
    """,
        b"hello",
    )
    assert (res.outcome, res.exit_code) == ("exited", 3)
    assert res.stdout == b"HELLO" and res.stderr == b"note\n" and res.result == b"verdict"


def test_uncaught_exception_is_exit_1_with_traceback(box):
    res = run(box, "raise ValueError('boom')")
    assert res.exit_code == 1 and b"ValueError: boom" in res.stderr and not res.ok


def test_timeout_kills_the_whole_tree(box):
    res = run(
        box,
        """
        import os, time
        for _ in range(3):
            if os.fork() == 0:
                os.setsid()
                while True:
                    time.sleep(0.1)
        while True:
            time.sleep(0.1)
    """,
        timeout=1.0,
    )
    assert res.outcome == "timeout" and 0.9 < res.wall_s < 5
    assert processes_of(sandbox_uid(box)) == []


def test_cpu_limit(box):
    res = run(box, "while True:\n    pass", timeout=10.0, cpu_s=1)
    assert res.outcome == "cpu_limit" and res.wall_s < 5


def test_memory_limit(box):
    res = run(box, "x = bytearray(400 * 2**20)\nprint('allocated')", memory_mb=256)
    assert not res.ok and b"MemoryError" in res.stderr and b"allocated" not in res.stdout


def test_process_limit(box):
    res = run(
        box,
        """
        import os, time
        n = 0
        for _ in range(200):
            try:
                if os.fork() == 0:
                    time.sleep(2)
                    os._exit(0)
                n += 1
            except OSError:
                break
        print(n)
    """,
        processes=16,
    )
    assert res.ok and int(res.stdout) < 16


def test_output_limit_kills(box):
    res = run(box, "while True:\n    print('x' * 1000)", output_bytes=10_000)
    assert res.outcome == "output_limit" and res.stdout_truncated and len(res.stdout) == 10_000


def test_output_past_the_limit_can_be_discarded_and_counted(box):
    program = "import os, sys\nfor _ in range(300):\n    print('x' * 9999)\nos.write(1, b'y' * 1_000_000)\nprint('end')"
    res = run(box, program, output_bytes=10_000, stdout_overflow="discard")
    assert res.ok and res.stdout_truncated and res.stdout == b"x" * 9999 + b"\n", res
    assert res.stdout_dropped == 300 * 10_000 + 1_000_000 + 4 - 10_000
    quiet = run(box, "print('hi')", output_bytes=10_000, stdout_overflow="discard")
    assert quiet.ok and quiet.stdout == b"hi\n" and quiet.stdout_dropped == 0 and not quiet.stdout_truncated
    with pytest.raises(ValueError, match="stdout_overflow"):
        Limits(stdout_overflow="keep")  # type: ignore[arg-type]


def test_stderr_keeps_the_tail(box):
    res = run(
        box, "import sys\nfor i in range(5000):\n    sys.stderr.write(f'line {i}\\n')", stderr_bytes=100
    )
    assert res.ok and res.stderr_truncated and res.stderr.endswith(b"line 4999\n") and len(res.stderr) == 100


def test_private_writable_tmp_and_read_only_rest(box):
    res = run(
        box,
        """
        import os
        open("scratch.txt", "w").write("ok")
        print(open("scratch.txt").read(), os.getcwd(), os.getuid() != 0)
        for path in ("/usr/x", "/x", "/etc/x"):
            try:
                open(path, "w")
                print("WROTE", path)
            except OSError:
                pass
    """,
    )
    assert res.ok and res.stdout.startswith(b"ok ") and b"True" in res.stdout and b"WROTE" not in res.stdout


def test_each_run_starts_clean(box):
    run(box, "open('/tmp/left-behind', 'w').write('x')")
    res = run(box, "import os\nprint(os.path.exists('/tmp/left-behind'))")
    assert res.stdout == b"False\n"


def test_environment_is_scrubbed(box):
    os.environ["RFT_SANDBOX_TEST_TOKEN"] = "leak"
    try:
        res = run(box, "import os\nprint(sorted(os.environ))")
    finally:
        del os.environ["RFT_SANDBOX_TEST_TOKEN"]
    assert b"RFT_SANDBOX_TEST_TOKEN" not in res.stdout and b"PATH" in res.stdout


def test_segfault_is_a_signal(box):
    res = run(box, "import ctypes\nctypes.string_at(0)")
    assert res.outcome == "signaled" and res.signal == 11


# ---- isolation and fail-closed ---------------------------------------------------------------------------


def test_local_reports_its_isolation():
    box = backend_or_skip("local")
    assert isinstance(box, LocalSandbox)
    hello = box.start()
    assert set(hello["isolation"]) == {"user", "net", "mount", "pid", "ipc", "uts"}
    assert hello["uid"] is not None and hello["uid"] != 0
    res = box.run(
        "import os, socket\nprint(os.getpid(), [n for _, n in socket.if_nameindex()], os.listdir('/proc')[:50])"
    )
    pid, names, _ = res.stdout.decode().split(" ", 2)
    assert pid == "1" and names == "['lo']"


def test_local_fails_closed_when_it_cannot_isolate():
    with pytest.raises(SandboxUnavailable, match="could not start|did not start|cannot isolate"):
        ForkServer(python="/nonexistent/python3").run("print(1)")
    with pytest.raises(ValueError, match="unknown namespace"):
        ForkServer(isolate=("user", "time"))


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"), reason="needs root to drop to nobody"
)
def test_forkserver_refuses_rather_than_weaker_isolation():
    """As a user that cannot build the private root, the server says so and exits; it never serves."""
    proc = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", str(FORKSERVER_PATH), "--isolate", "user,mount,pid"],
        input=b"", capture_output=True, user=65534, group=65534, extra_groups=[], cwd="/", timeout=30,
    )  # fmt: skip
    r, w = os.pipe()
    os.write(w, proc.stdout)
    os.close(w)
    header, _ = forkserver.read_frame(r)
    os.close(r)
    assert proc.returncode == 2 and header["type"] == "error" and "root" in header["error"]


def test_unsafe_none_backend_runs_only_when_asked():
    box = get_sandbox("none", unsafe=True)
    try:
        res = box.run("import os\nprint(os.getcwd().startswith('/tmp/rft-run-'))", b"", Limits(timeout=5))
        assert res.stdout == b"True\n"
    finally:
        box.close()


def test_pin_cpu_puts_server_and_programs_on_one_cpu():
    if os.geteuid() != 0:
        pytest.skip("the local sandbox needs root")
    box = LocalSandbox(pin_cpu=True)
    try:
        res = box.run("import os\nprint(len(os.sched_getaffinity(0)))")
        assert res.stdout == b"1\n"
        assert len(os.sched_getaffinity(box.hello["pid"])) == 1
    finally:
        box.close()


def test_close_stops_the_server():
    box = ForkServer()
    try:
        box.run("pass")
        pid = box.hello["pid"]
        assert os.path.exists(f"/proc/{pid}")
    finally:
        box.close()
    for _ in range(50):  # it exits once it sees EOF (and is reaped by close)
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")


def test_local_server_outlives_the_thread_that_started_it():
    """The fork server dies with the thread that started it (PR_SET_PDEATHSIG follows the thread): one
    started from a short-lived thread must keep serving after that thread ends, not be restarted per run."""
    import threading

    backend_or_skip("local")
    from rft.graders.sandbox.local import LocalSandbox

    box = LocalSandbox()
    try:
        t = threading.Thread(target=box.start)
        t.start()
        t.join()
        pid = box.hello["pid"]
        time.sleep(0.5)  # time for a death signal to land
        for _ in range(3):
            res = box.run("print(6 * 7)")
            assert res.ok and res.stdout.strip() == b"42", res
        assert box.hello["pid"] == pid  # the same server: it was never restarted
    finally:
        box.close()
