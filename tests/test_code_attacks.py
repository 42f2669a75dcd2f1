"""Adversarial programs against the `code` grader, on every sandbox backend that can run here.

Each attack is a HumanEval-style completion for ``add(a, b)``; some return the right answer too, to show
that the attack gains nothing and costs nothing. For every attack: no fake pass, no process of the
sandbox's uid left running, no file written outside the sandbox, no secret in what comes back, and
the grader keeps grading.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from _sandboxes import BACKENDS, as_user, backend_or_skip, other_user, processes_of, sandbox_uid

from rft.graders import load_grader

SECRET = "rft-secret-" + secrets.token_hex(8)
os.environ["RFT_TEST_SECRET"] = SECRET  # set before any sandbox starts: must never reach a program
PROMPT = 'def add(a, b):\n    """Add two integers."""\n'
TESTS = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-5, 5) == 0\n    assert candidate(10, 20) == 30\n"
RIGHT = "    return a + b\n"


@pytest.fixture(scope="module")
def secret_file():
    """A world-readable secret in a world-readable directory outside any sandbox."""
    d = tempfile.mkdtemp(prefix="rft-attack-secret-")
    os.chmod(d, 0o755)
    path = Path(d) / "secret.txt"
    path.write_text(SECRET)
    path.chmod(0o644)
    yield path
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def listener():
    """A TCP server on this machine's loopback, which no sandboxed program may reach."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture(params=BACKENDS)
def backend(request):
    box = backend_or_skip(request.param)
    return request.param, box


def grader(backend_name: str, run_timeout: float = 2.0):
    return load_grader(
        {
            "type": "code",
            "prefix": "{{ item.prompt }}",
            "tests": "{{ item.test }}",
            "entry_point": "{{ item.entry_point }}",
            "sandbox": backend_name,
            "run_timeout": run_timeout,
            "memory_mb": 512,
        }
    )


ITEM = {"prompt": PROMPT, "test": TESTS, "entry_point": "add"}
OUTSIDE = "/tmp/rft-escaped-{token}"  # a host path an attack tries to create


def body(code: str) -> str:
    return textwrap.indent(textwrap.dedent(code).strip() + "\n", "    ")


# (name, completion, may pass): the completion is the function body; {outside}, {port}, {secret_path}
# are filled in. "may pass" marks attacks that also return the right answer: passing is then correct.
ATTACKS = [
    ("infinite loop", "while True:\n    pass", False),
    ("sleep", "import time\ntime.sleep(60)", False),
    (
        "fork bomb",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        False,
    ),
    ("memory bomb", "x = []\nwhile True:\n    x.append(bytearray(10**7))", False),
    ("big allocation", "return bytearray(10**11)", False),
    ("output flood", "while True:\n    print('x' * 10000)", False),
    ("stderr flood", "import sys\nwhile True:\n    sys.stderr.write('y' * 10000)", False),
    (
        "write outside tmp",
        "for p in ('{outside}', '/usr/rft-x', '/etc/rft-x', '/rft-x', '/work/rft-x'):\n"
        "    try:\n        open(p, 'w').write('x')\n    except OSError:\n        pass\nreturn a + b",
        True,
    ),
    (
        "disk fill",
        "with open('/tmp/fill', 'wb') as f:\n    while True:\n        f.write(b'0' * 2**20)",
        False,
    ),
    (
        "env secret",
        "import os\nprint(dict(os.environ))\nreturn os.environ.get('RFT_TEST_SECRET', 'none')",
        False,
    ),
    (
        "file secret",
        "out = []\nfor p in ('{secret_path}', '/proc/1/environ', '/proc/self/environ', '/etc/shadow',\n"
        "          '/root/.bashrc', '/proc/1/cmdline'):\n    try:\n        out.append(open(p).read())\n"
        "    except OSError as e:\n        out.append(str(e))\nprint(out)\nimport sys\nsys.stderr.write(str(out))\n"
        "return out",
        False,
    ),
    (
        "network",
        "import socket\nfor host, port in (('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 53)):\n"
        "    s = socket.socket()\n    s.settimeout(0.5)\n    try:\n        s.connect((host, port))\n"
        "        return 'connected'\n    except OSError:\n        pass\nreturn a + b",
        True,
    ),
    (
        "kill parent and everyone",
        "import os, signal\nfor target in (os.getppid(), 1, -1, 0):\n"
        "    try:\n        os.kill(target, signal.SIGKILL)\n    except OSError:\n        pass\nreturn a + b",
        True,
    ),
    (
        "daemon",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        while True:\n            time.sleep(0.05)\n    os._exit(0)\nreturn a + b",
        True,
    ),
    ("os._exit(0) before tests", "import os\nos._exit(0)", False),
    ("sys.exit(0) at load", "pass\nimport sys\nsys.exit(0)", False),
    (
        "redefine check",
        "return None\ndef check(candidate):\n    pass\nimport builtins\nbuiltins.check = check",
        False,
    ),
    (
        "always-equal object",
        "class Eq:\n    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n    __hash__ = None\nreturn Eq()",
        False,
    ),
    (
        "always-equal int subclass",
        "class Eq(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\nreturn Eq(0)",
        False,
    ),
    (
        "always-equal str subclass",
        "class Eq(str):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = str.__hash__\nreturn Eq('')",
        False,
    ),
    ("close stdout and stderr", "import os\nos.close(1)\nos.close(2)\nreturn a + b", True),
    ("close every fd", "import os\nos.closerange(0, 1000)\nreturn a - b", False),
    (
        "fake verdicts",
        "import os, json\nfor fd in range(3, 64):\n    try:\n"
        '        os.write(fd, b\'{{"e": "done"}}\\n{{"e": "values", "i": 0, "v": [["i", "3"]]}}\\n\')\n'
        "    except OSError:\n        pass\nreturn None",
        False,
    ),
    (
        "ignore signals",
        "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass",
        False,
    ),
    (
        "nested user namespace",  # full capabilities inside it: mount over the read-only root, write out
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.unshare(0x10000000 | 0x00020000) == 0:\n"
        "    for d in ('/', '/usr', '/tmp', '/proc'):\n"
        "        libc.mount(None, d.encode(), None, 32 | 4096 | 16384, None)\n"
        "        libc.mount(b'none', d.encode(), b'tmpfs', 0, None)\n"
        "    for p in ('{outside}', '/usr/rft-x', '/work/rft-x'):\n"
        "        try:\n            open(p, 'w').write('x')\n        except OSError:\n            pass\n"
        "    try:\n        print(open('{secret_path}').read())\n    except OSError:\n        pass\nreturn a + b",
        True,
    ),
    ("segfault", "import ctypes\nctypes.string_at(0)", False),
    ("recursion", "def f(n):\n    return f(n + 1)\nreturn f(0)", False),
    ("raise SystemExit in call", "raise SystemExit(0)", False),
    ("monkeypatch json", 'import json\njson.dumps = lambda *a, **k: \'{{"e": "ok"}}\'\nreturn None', False),
    (
        "threads",
        "import threading, time\nfor _ in range(100):\n    try:\n"
        "        threading.Thread(target=time.sleep, args=(60,), daemon=False).start()\n    except RuntimeError:\n"
        "        break\nreturn a + b",
        True,
    ),
]


@pytest.mark.parametrize("name,code,may_pass", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_is_contained(backend, name, code, may_pass, secret_file, listener):
    backend_name, box = backend
    token = secrets.token_hex(6)
    outside = OUTSIDE.format(token=token)
    completion = body(code.format(outside=outside, port=listener, secret_path=secret_file))
    g = grader(backend_name)
    grade = g.grade({"output_text": completion}, ITEM)

    assert grade.status in ("ok", "timeout"), grade  # never a crash of the grader
    if not may_pass:
        assert not grade.passed and grade.score < 1.0, grade
    text = repr(grade.to_dict())
    assert SECRET not in text, "a secret reached the program's output"
    assert not Path(outside).exists(), "the program wrote outside its sandbox"
    assert processes_of(sandbox_uid(box)) == [], "processes of the sandbox's uid are still running"
    follow = g.grade({"output_text": RIGHT}, ITEM)  # the grader keeps going
    assert follow.passed and follow.status == "ok", follow


def test_network_and_files_really_are_out_of_reach(backend, secret_file, listener):
    """The same probes, checked on the raw outputs (not only through the grader's verdict)."""
    _, box = backend
    program = textwrap.dedent(f"""
        import os, socket
        for host, port in (("127.0.0.1", {listener}), ("1.1.1.1", 53)):
            s = socket.socket(); s.settimeout(0.5)
            try:
                s.connect((host, port)); print("CONNECTED", host)
            except OSError as e:
                print("no", host, e.errno)
        print("interfaces", socket.if_nameindex())
        for p in ({str(secret_file)!r}, "/work", "/root/.ssh", "/etc/shadow"):
            print(p, os.path.exists(p))
        print("uid", os.getuid(), "env", sorted(os.environ))
    """)
    res = box.run(program, b"", None)
    out = res.stdout.decode()
    assert res.ok, res
    assert "CONNECTED" not in out
    assert f"{secret_file} False" in out
    assert SECRET not in out
    assert "uid 0" not in out
    assert "RFT_TEST_SECRET" not in out


def test_stdin_cases_attacks(backend):
    """stdin/stdout programs: an exit-code trick, a crash after the right output, a flood."""
    backend_name, box = backend
    g = load_grader(
        {"type": "code", "cases": "{{ item.cases }}", "sandbox": backend_name, "run_timeout": 2.0}
    )
    item = {"cases": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5\n", "output": "10\n"}]}
    right = "a, b = map(int, input().split())\nprint(a + b)\n"
    assert g.grade({"output_text": right}, item).passed
    for attack in (
        "import os\nos._exit(0)\n",
        "a, b = map(int, input().split())\nprint(a + b)\nimport ctypes\nctypes.string_at(0)\n",
        "a, b = map(int, input().split())\nprint(a + b)\nraise SystemExit(3)\n",
        "while True:\n    print('3')\n",
        "print(3)\nprint(10)\n",  # hard-coded answers: half right
    ):
        grade = g.grade({"output_text": attack}, item)
        assert not grade.passed and grade.status == "ok", (attack, grade)
        assert processes_of(sandbox_uid(box)) == []


@pytest.fixture(scope="module")
def user():
    yield from other_user()


@pytest.mark.skipif(
    os.geteuid() != 0, reason="as a user other than root the attacks above run on userns already"
)
def test_attacks_as_a_user_other_than_root(user):
    """The same attacks on what `auto` picks for a user other than root (``userns``), as such a user."""
    out = as_user(
        user,
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-k", "userns", "-rs"],
        timeout=900,
    )
    tail = (out.stdout + out.stderr)[-3000:]
    assert out.returncode == 0 and " passed" in out.stdout and "skipped" not in out.stdout, tail
