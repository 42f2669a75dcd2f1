"""The stateful ``python`` tool (rft.envs.tools.python_session) on every backend that can hold a sandbox
session here (``local`` as root, ``userns`` as another user: what ``auto`` picks for each): state across
calls and none across episodes, timeouts, output cut, processes counted after close, and the attacks of
test_code_attacks.py run as calls of the tool, plus attacks on the session itself."""

from __future__ import annotations

import gc
import os
import secrets
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _sandboxes import as_user, backend_or_skip, other_user, processes_of
from test_code_attacks import ATTACKS, OUTSIDE, SECRET, body, listener, secret_file  # noqa: F401  (fixtures)

from rft.envs.tools import Tool, ToolProvider
from rft.envs.tools.python_session import PythonSessionProvider, PythonSessionTool
from rft.graders.sandbox import SandboxError, get_sandbox
from rft.graders.sandbox.session import start_session

SESSION_BACKENDS = ["local", "userns", "bwrap"]


@pytest.fixture(params=SESSION_BACKENDS)
def backend(request) -> str:
    if request.param == "bwrap" and os.geteuid() == 0:
        pytest.skip("bwrap holds sessions for users other than root only (as root: local)")
    backend_or_skip(request.param)  # skips where the backend cannot run (userns as root, local as a user)
    return request.param


def _pids_of(uid: int) -> set[int]:
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.add(int(name))
            except OSError:
                continue
    return out


class Watch:
    """The processes a tool's sessions leave: as root each session has a uid of its own (none of its
    processes may live after close); as another user, sessions run as that user, so the processes of
    this uid that were not there before (this test's process aside)."""

    def __init__(self) -> None:
        self.uids: set[int] = set()
        self.before = _pids_of(os.getuid())

    def note(self, tool: Tool) -> None:
        assert isinstance(tool, PythonSessionTool)
        session = tool._session  # noqa: SLF001  (the test looks at what it must clean up)
        if session is not None and session.uid is not None:
            self.uids.add(session.uid)

    def leftovers(self, settle_s: float = 2.0) -> list[str]:
        found = [p for uid in sorted(self.uids) for p in processes_of(uid, settle_s)]
        if os.geteuid() != 0:
            end = time.monotonic() + settle_s
            while True:
                new = sorted(_pids_of(os.getuid()) - self.before - {os.getpid()})
                live = [p for p in new if _state(p) not in ("Z", "")]
                if not live or time.monotonic() > end:
                    break
                time.sleep(0.05)
            found += [f"{p} {_cmdline(p)}" for p in live]
        return found


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:100]
    except OSError:
        return "?"


def _tool(backend: str, **options) -> PythonSessionTool:
    [tool] = PythonSessionProvider(sandbox=backend, **options).open()
    assert isinstance(tool, PythonSessionTool)
    return tool


def test_provider_contract(backend):
    provider = PythonSessionProvider(sandbox=backend)
    assert isinstance(provider, ToolProvider)
    [spec] = provider.specs()
    assert spec.name == "python" and spec.parameters["required"] == ["code"]
    assert spec.schema()["function"]["parameters"]["properties"]["code"]["type"] == "string"
    [tool] = provider.open()
    assert isinstance(tool, Tool) and tool.spec == spec
    tool.close()
    for bad in (
        {"timeout": 0},
        {"timeout": float("inf")},
        {"cpu_s": -1},
        {"output_chars": 5},
        {"sandbox": "nope"},
        {"memory_mb": 8},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PythonSessionProvider(**bad)


def test_state_persists_within_an_episode_and_not_across(backend):
    watch = Watch()
    provider = PythonSessionProvider(sandbox=backend, timeout=20)
    [a] = provider.open()
    [b] = provider.open()
    try:
        assert a.call({"code": "import math\nx = 41\ndef f(v):\n    return v + 1"}).content == ""
        out = a.call({"code": "print(f(x))\nmath.floor(2.5)"})
        assert out.content == "42\n2" and not out.is_error, out
        assert a.call({"code": "x = f(x)"}).content == ""
        assert a.call({"code": "x"}).content == "42"
        assert a.call({"code": "_ * 2"}).content == "84", "the last value is _ as in a REPL"
        # the other episode's tool, open at the same time, has none of it
        out = b.call({"code": "x"})
        assert out.is_error and "NameError" in out.content, out
        out = b.call({"code": "math"})
        assert out.is_error and "NameError" in out.content, out
        # an exception, a syntax error and SystemExit are errors shown to the model; the session lives on
        for code, shown in (
            ("1 / 0", "ZeroDivisionError"),
            ("def (", "SyntaxError"),
            ("raise SystemExit(3)", "SystemExit"),
        ):
            out = a.call({"code": code})
            assert out.is_error and shown in out.content and out.details["outcome"] == "error", out
        assert a.call({"code": "x"}).content == "42"
        assert a.sessions_started == 1
        for tool in (a, b):
            watch.note(tool)
    finally:
        a.close()
        b.close()
    assert watch.leftovers() == []
    [c] = provider.open()  # a later episode starts empty too
    try:
        out = c.call({"code": "x"})
        assert out.is_error and "NameError" in out.content
    finally:
        c.close()


def test_stdout_stderr_and_the_last_expression(backend):
    tool = _tool(backend, timeout=20)
    try:
        out = tool.call(
            {
                "code": "import os, sys, subprocess\nprint('out')\nsys.stderr.write('err\\n')\nos.write(1, b'fd1\\n')\nNone"
            }
        )
        assert out.content == "out\nfd1\nerr" and not out.is_error, out
        out = tool.call({"code": "print('no value')\nx = 3"})
        assert out.content == "no value"
        out = tool.call({"code": "'text'"})
        assert out.content == "'text'", "a last expression shows as its repr"
        assert tool.call({"code": 3}).is_error and tool.call({}).details["outcome"] == "bad_arguments"
    finally:
        tool.close()


def test_output_is_cut(backend):
    tool = _tool(backend, timeout=20, output_chars=500)
    try:
        out = tool.call({"code": "print('x' * 100000)\nprint('tail')"})
        assert len(out.content) < 700 and out.content.startswith("x" * 400), out.content[-200:]
        assert "more" in out.content and "cut" in out.content
        out = tool.call({"code": "'y' * 100000"})
        assert len(out.content) < 700 and "cut" in out.content
        assert tool.call({"code": "print(1 + 1)"}).content == "2", "the session goes on after a big output"
    finally:
        tool.close()


def test_a_call_past_its_timeout_kills_the_session(backend):
    watch = Watch()
    tool = _tool(backend, timeout=1.5)
    try:
        tool.call({"code": "kept = 1"})
        watch.note(tool)
        start = time.monotonic()
        out = tool.call({"code": "import time\ntime.sleep(60)"})
        assert time.monotonic() - start < 10
        assert out.is_error and out.details["outcome"] == "timeout", out
        assert "killed" in out.content and "fresh" in out.content
        assert watch.leftovers() == [], "the timed-out session's processes are gone"
        out = tool.call({"code": "kept"})
        assert out.is_error and "NameError" in out.content, "a fresh session after the kill"
        assert tool.sessions_started == 2
    finally:
        tool.close()


def test_cpu_limit_per_call(backend):
    tool = _tool(backend, timeout=60, cpu_s=1)
    try:
        tool.call({"code": "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.2: pass"})
        tool.call({"code": "kept = 7"})
        out = tool.call({"code": "while True: pass"})
        assert out.is_error and out.details["outcome"] == "cpu_limit", out
        assert "CpuLimitExceeded" in out.content and out.details["wall_s"] < 30
        assert tool.call({"code": "kept"}).content == "7", (
            "the session survives a CPU limit hit in Python code"
        )
        out = tool.call({"code": "while True: pass"})
        assert out.details["outcome"] == "cpu_limit", "the limit is per call"
    finally:
        tool.close()


def test_memory_limit(backend):
    tool = _tool(backend, timeout=30, memory_mb=256)
    try:
        tool.call({"code": "kept = 5"})
        out = tool.call({"code": "x = bytearray(400 * 2**20)"})
        assert out.is_error and "MemoryError" in out.content, out
        assert tool.call({"code": "kept"}).content == "5", "a MemoryError in Python leaves the session alive"
    finally:
        tool.close()


def test_close_and_finalisers_leave_no_process(backend, tmp_path):
    watch = Watch()
    tool = _tool(backend, timeout=20)
    tool.call({"code": "import os\nif os.fork() == 0:\n    import time\n    time.sleep(600)"})
    watch.note(tool)
    del tool
    gc.collect()
    assert watch.leftovers() == [], "a tool dropped unclosed: its finaliser killed the session"
    # a process that exits with a tool still open (atexit): nothing of the session outlives it
    script = tmp_path / "leave_open.py"
    script.write_text(
        textwrap.dedent(f"""
        from rft.envs.tools.python_session import PythonSessionProvider
        [tool] = PythonSessionProvider(sandbox={backend!r}).open()
        print(tool.call({{"code": "import os\\nif os.fork() == 0:\\n    import time\\n    time.sleep(600)\\n1"}}).content)
        print(tool._session.uid, flush=True)
    """)
    )
    os.chmod(tmp_path, 0o755)
    script.chmod(0o644)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    first, uid = done.stdout.split()
    assert first == "1"
    if uid != "None":
        watch.uids.add(int(uid))
    assert watch.leftovers() == []


def test_a_backend_without_sessions_is_a_failure_not_an_error():
    names = ["docker", "sandbox_fusion"] + (["bwrap"] if os.geteuid() == 0 else [])
    for name in names:
        tool = _tool(name)
        out = tool.call({"code": "1"})
        assert out.failure and not out.is_error and out.details["outcome"] == "unavailable", (name, out)
        tool.close()
    box = get_sandbox("sandbox_fusion", url="http://127.0.0.1:9")  # an HTTP service: no sessions
    with pytest.raises(SandboxError, match="cannot hold a session"):
        start_session(box, "pass")
    box.close()
    if os.geteuid() == 0:
        try:
            box = get_sandbox("bwrap")
        except SandboxError:
            return
        with pytest.raises(SandboxError, match="other than root"):
            start_session(box, "pass")
        box.close()


def test_episodes_in_threads_are_independent(backend):
    provider = PythonSessionProvider(sandbox=backend, timeout=30)
    tools = [t for _ in range(3) for t in provider.open()]
    got: dict[int, list[str]] = {}

    def episode(i: int) -> None:
        tools[i].call({"code": f"v = {i}"})
        got[i] = [tools[i].call({"code": "v * 10"}).content for _ in range(3)]

    threads = [threading.Thread(target=episode, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for tool in tools:
        tool.close()
    assert got == {i: [str(i * 10)] * 3 for i in range(3)}


# ---- attacks ------------------------------------------------------------------------------------------

SESSION_ATTACKS = [
    ("garbage on the channel", "import os\nfor fd in range(3, 256):\n    try:\n        os.write(fd, b'garbage' * 1000)\n    except OSError:\n        pass"),
    ("forged frame on the channel", "import os, json, struct\nmsg = json.dumps({{'id': 2, 'stdout': 'FORGED', 'stderr': '', 'result': None, 'error': None}}).encode()\n"
     "for fd in range(3, 256):\n    try:\n        os.write(fd, struct.pack('>I', len(msg)) + msg)\n    except OSError:\n        pass"),
    ("forged frame, right id, wrong shape", "import os, json, struct, sys\nrid = sys._getframe(2).f_locals['request']['id']\n"
     "msg = json.dumps({{'id': rid, 'stdout_bytes': 'x'}}).encode()\n"
     "for fd in range(3, 256):\n    try:\n        os.write(fd, struct.pack('>I', len(msg)) + msg)\n    except OSError:\n        pass"),
    ("huge length on the channel", "import os\nfor fd in range(3, 256):\n    try:\n        os.write(fd, b'\\xff\\xff\\xff\\xff')\n    except OSError:\n        pass"),
    ("close stdin", "import os, sys\nos.close(0)\nsys.stdin.close()"),
    ("close every fd", "import os\nos.closerange(0, 65536)"),
    ("exit the interpreter", "import os\nos._exit(0)"),
    ("daemon", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        while True:\n            time.sleep(0.05)\n    os._exit(0)"),
    ("read the channel", "import os\nfor fd in range(3, 256):\n    try:\n        os.set_blocking(fd, False)\n        os.read(fd, 100)\n    except OSError:\n        pass"),
    ("replace stdout", "import sys, io\nsys.stdout = io.StringIO()\nsys.stderr = None"),
    ("channel made non-blocking", "import os, time\nfor fd in range(3, 256):\n    try:\n        os.set_blocking(fd, False)\n    except OSError:\n        pass"),
]  # fmt: skip


def _attack_cases():
    for name, code, may_pass in ATTACKS:
        yield pytest.param("def add(a, b):\n{body}\nprint(add(1, 2))", code, may_pass, id=name)
    for name, code in SESSION_ATTACKS:
        yield pytest.param(code, None, True, id=f"session: {name}")


@pytest.mark.parametrize("template,code,may_pass", list(_attack_cases()))
def test_attack_is_contained(backend, template, code, may_pass, secret_file, listener):  # noqa: F811
    outside = OUTSIDE.format(token=secrets.token_hex(6))
    fill = {"outside": outside, "port": listener, "secret_path": secret_file}
    source = template.format(body=body(code.format(**fill))) if code is not None else template.format(**fill)
    watch = Watch()
    tool = _tool(backend, timeout=3, memory_mb=512)
    try:
        assert tool.call({"code": "before = 'kept'"}).content == ""
        watch.note(tool)
        start = time.monotonic()
        out = tool.call({"code": source})  # never raises
        assert time.monotonic() - start < 20, "the call ended near its timeout"
        assert SECRET not in repr(out), "a secret reached the tool's output"
        assert "FORGED" not in out.content or "channel" in out.content
        assert not Path(outside).exists(), "the code wrote outside its sandbox"
        assert out.failure is None, out  # whatever the code did, it is the model's doing
        follow = tool.call({"code": "print(sum(range(5)))"})  # the tool keeps going (maybe a fresh session)
        assert follow.content == "10" and not follow.is_error, follow
        watch.note(tool)
        if not may_pass:
            assert out.content.strip() != "3", out
    finally:
        tool.close()
    assert watch.leftovers() == [], "processes of the session still run after close"


def test_nothing_persists_across_episodes(backend):
    provider = PythonSessionProvider(sandbox=backend, timeout=20)
    [first] = provider.open()
    try:
        out = first.call(
            {
                "code": textwrap.dedent("""
            import os, builtins, sys
            open('/tmp/persist', 'w').write('x')
            os.environ['PERSIST'] = '1'
            builtins.PERSIST = 1
            sys.modules['json'].PERSIST = 1
            for p in (os.path.expanduser('~/persist'), '/dev/shm/persist', '/var/tmp/persist'):
                try:
                    open(p, 'w').write('x')
                except OSError:
                    pass
            os.path.exists('/tmp/persist')
        """)
            }
        )
        assert out.content == "True", out
    finally:
        first.close()
    [second] = provider.open()
    try:
        out = second.call(
            {
                "code": textwrap.dedent("""
            import os, builtins, json
            [os.path.exists(p) for p in ('/tmp/persist', '/dev/shm/persist', '/var/tmp/persist')], \\
                'PERSIST' in os.environ, hasattr(builtins, 'PERSIST'), hasattr(json, 'PERSIST')
        """)
            }
        )
        assert out.content == "([False, False, False], False, False, False)", out
    finally:
        second.close()


@pytest.fixture(scope="module")
def user():
    yield from other_user()


@pytest.mark.skipif(os.geteuid() != 0, reason="as a user other than root these tests run on userns already")
def test_as_a_user_other_than_root(user):
    """The tests above as a user other than root (``userns``, what ``auto`` picks for such a user)."""
    out = as_user(
        user,
        [
            sys.executable,
            "-m",
            "pytest",
            __file__,
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "userns or bwrap",
            "-rs",
            "-x",
        ],
        timeout=900,
    )
    tail = (out.stdout + out.stderr)[-3000:]
    assert out.returncode == 0 and " passed" in out.stdout and "skipped" not in out.stdout, tail
