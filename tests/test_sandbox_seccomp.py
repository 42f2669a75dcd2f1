"""The local sandbox's seccomp filter (graders/sandbox/seccomp.py): what it refuses, that the filter (not
missing capabilities) is what refuses it, that ordinary programs behave the same with and without it,
and that a filter that cannot be built or installed means no program runs (fail closed)."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from rft.graders import load_grader
from rft.graders.sandbox import Limits, SandboxUnavailable, local
from rft.graders.sandbox.local import SECCOMP_PATH, LocalSandbox

seccomp = pytest.importorskip("rft.graders.sandbox.seccomp")

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux-only")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneval.jsonl"

CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUTS = 0x10000000, 0x00020000, 0x40000000, 0x04000000
SIGCHLD = 17
ADDR_NO_RANDOMIZE = 0x0040000

# One call per denied class: (label, syscall name, arguments). Strings are passed as C strings, ints as
# longs, None as NULL. Arguments are chosen so that nothing happens even where a call is allowed.
CALLS = [
    ("nested user namespace", "unshare", [CLONE_NEWUSER]),
    ("new mount namespace", "unshare", [CLONE_NEWNS]),
    ("new network namespace", "unshare", [CLONE_NEWNET]),
    ("clone into a user namespace", "clone", [CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0]),
    ("clone into a net namespace", "clone", [CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0]),
    ("setns", "setns", [-1, 0]),
    ("mount", "mount", ["none", "/tmp", "tmpfs", 0, None]),
    ("umount2", "umount2", ["/tmp", 0]),
    ("pivot_root", "pivot_root", ["/tmp", "/tmp"]),
    ("chroot", "chroot", ["/tmp"]),
    ("open_tree", "open_tree", [-100, "/tmp", 0]),
    ("move_mount", "move_mount", [-1, "", -1, "", 0]),
    ("fsopen", "fsopen", ["tmpfs", 0]),
    ("fsmount", "fsmount", [-1, 0, 0]),
    ("ptrace", "ptrace", [0, 0, 0, 0]),  # PTRACE_TRACEME: succeeds unfiltered
    ("process_vm_readv", "process_vm_readv", [0, None, 0, None, 0, 0]),
    ("process_vm_writev", "process_vm_writev", [0, None, 0, None, 0, 0]),
    ("bpf", "bpf", [5, None, 0]),  # BPF_PROG_LOAD
    ("perf_event_open", "perf_event_open", [None, 0, -1, -1, 0]),
    ("keyctl", "keyctl", [0, -3, 0]),  # KEYCTL_GET_KEYRING_ID of the session keyring
    ("add_key", "add_key", ["user", "rft", None, 0, -3]),
    ("request_key", "request_key", ["user", "rft", None, -3]),
    ("kexec_load", "kexec_load", [0, 0, None, 0xFFFFFFFF]),  # bad flags: EINVAL unfiltered
    ("kexec_file_load", "kexec_file_load", [-1, -1, 0, None, 0]),
    ("init_module", "init_module", [None, 0, ""]),
    ("finit_module", "finit_module", [-1, "", 0]),
    ("delete_module", "delete_module", ["rft_nothing", 0]),
    ("personality: no ASLR", "personality", [ADDR_NO_RANDOMIZE]),
    ("io_uring_setup", "io_uring_setup", [1, None]),
    ("io_uring_enter", "io_uring_enter", [-1, 0, 0, 0, None, 0]),
    ("io_uring_register", "io_uring_register", [-1, 0, None, 0]),
    ("userfaultfd", "userfaultfd", [0]),
    ("acct", "acct", [None]),
    ("swapon", "swapon", ["/nonexistent", 0]),
    ("swapoff", "swapoff", ["/nonexistent"]),
    ("reboot", "reboot", [0, 0, 0, None]),  # bad magic: EINVAL unfiltered
    ("settimeofday", "settimeofday", [None, None]),
    ("sethostname", "sethostname", ["x", 1]),
    ("syslog", "syslog", [10, None, 0]),  # SYSLOG_ACTION_SIZE_BUFFER
    ("open_by_handle_at", "open_by_handle_at", [-1, None, 0]),
    ("pidfd_getfd", "pidfd_getfd", [-1, 0, 0]),
]

# Run in the sandbox: the calls in stdin (JSON), each errno name (or "ok") printed as JSON.
CALLER = textwrap.dedent("""
    import ctypes, errno, json, os, sys
    libc = ctypes.CDLL(None, use_errno=True)

    def call(nr, args):
        cargs = [ctypes.c_char_p(a.encode()) if isinstance(a, str) else ctypes.c_void_p(None) if a is None
                 else ctypes.c_long(a) for a in args]
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long(nr), *cargs)
        if r == 0 and nr == CLONE:  # a child made by a raw clone: leave at once
            os._exit(0)
        if r >= 0:
            if nr == CLONE:
                os.waitpid(r, 0)
            return "ok"
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

    def isolated(nr, args):  # in a child of its own: one call's effects (a new namespace) stay there
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, call(nr, args).encode())
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        return os.read(r, 100).decode()

    request = json.loads(sys.stdin.read())
    CLONE = request["clone"]
    print(json.dumps({label: isolated(nr, args) for label, nr, args in request["calls"]}))
""")


def _calls() -> list[list]:
    out = []
    for label, name, args in CALLS:
        nr = seccomp.syscall_number(name)
        if nr >= 0:  # this architecture has it
            out.append([label, nr, args])
    return out


def _run_calls(box: LocalSandbox, calls: list[list]) -> dict[str, str]:
    request = json.dumps({"clone": seccomp.syscall_number("clone"), "calls": calls})
    res = box.run(CALLER, request.encode(), Limits(timeout=20))
    assert res.ok, res
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def boxes():
    on, off = LocalSandbox(), LocalSandbox(seccomp=False)
    try:
        on.start()
    except SandboxUnavailable as e:
        pytest.skip(f"the local sandbox cannot run here: {e}")
    off.start()
    yield on, off
    on.close()
    off.close()


def test_filter_builds_for_this_architecture():
    program = seccomp.build_filter()
    assert program and len(program) % 8 == 0  # struct sock_filter is 8 bytes
    assert set(seccomp.DENIED) >= {"unshare", "setns", "mount", "ptrace", "bpf", "perf_event_open", "keyctl",
                                   "kexec_load", "init_module", "io_uring_setup", "userfaultfd"}  # fmt: skip
    with pytest.raises(ValueError, match="does not know"):
        seccomp.syscall_number("not_a_syscall")


def test_start_info_reports_the_filter(boxes):
    on, off = boxes
    assert on.hello["seccomp"] is True and off.hello["seccomp"] is False
    program = "print(open('/proc/self/status').read().split('Seccomp:')[1].split()[0])"
    assert on.run(program).stdout == b"2\n"  # filter mode
    assert off.run(program).stdout == b"0\n"


def test_every_denied_class_gets_eperm(boxes):
    on, off = boxes
    calls = _calls()
    got = _run_calls(on, calls)
    assert got == {label: "EPERM" for label, _, _ in calls}
    unfiltered = _run_calls(off, calls)
    # Without the filter some of them work (or fail for another reason): the filter made the difference.
    for label in ("nested user namespace", "clone into a user namespace", "ptrace", "setns", "process_vm_readv",
                  "personality: no ASLR"):  # fmt: skip
        assert unfiltered[label] != "EPERM", (label, unfiltered)


def test_clone3_is_enosys_and_glibc_falls_back(boxes):
    on, _ = boxes
    program = textwrap.dedent(f"""
        import ctypes, errno, os, subprocess, threading
        libc = ctypes.CDLL(None, use_errno=True)
        r = libc.syscall({seccomp.syscall_number("clone3")}, None, 0)
        print(r, errno.errorcode[ctypes.get_errno()])
        t = threading.Thread(target=print, args=("thread",)); t.start(); t.join()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        print(subprocess.run(["/bin/echo", "spawned"], capture_output=True, text=True).stdout.strip())
    """)
    res = on.run(program)
    assert res.stdout.decode().split("\n")[:4] == ["-1 ENOSYS", "thread", "fork 7", "spawned"], res


def test_personality_query_allowed_changes_refused(boxes):
    on, _ = boxes
    nr = seccomp.syscall_number("personality")
    program = textwrap.dedent(f"""
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        for arg in (0xFFFFFFFF, 0x1FFFFFFFF, 0, 0x0040000, 0x0400000, 0x8):
            ctypes.set_errno(0)
            r = libc.syscall({nr}, ctypes.c_ulong(arg))
            print(hex(arg), r if r >= 0 else errno.errorcode[ctypes.get_errno()])
    """)
    lines = on.run(program).stdout.decode().split("\n")
    # The kernel reads an unsigned int: 0x1ffffffff is the query too.
    assert lines[:6] == ["0xffffffff 0", "0x1ffffffff 0", "0x0 EPERM", "0x40000 EPERM", "0x400000 EPERM",
                         "0x8 EPERM"]  # fmt: skip


def test_the_filter_not_missing_capabilities_refuses(boxes):
    """With every capability of a nested user namespace (made in the unfiltered sandbox), mount and
    sethostname work, until the program installs the very filter the server uses: then EPERM."""
    _, off = boxes
    program = textwrap.dedent(f"""
        import ctypes, errno, sys
        libc = ctypes.CDLL(None, use_errno=True)
        def err(r):
            return "ok" if r == 0 else errno.errorcode[ctypes.get_errno()]
        print("unshare", err(libc.unshare({CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS})))
        def attempts():
            return [err(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)), err(libc.sethostname(b"x", 1)),
                    err(libc.umount2(b"/tmp", 0))]
        print("before", *attempts())
        program = sys.stdin.buffer.read()
        buf = ctypes.create_string_buffer(program, len(program))
        class Prog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
        prog = Prog(len(program) // 8, ctypes.addressof(buf))
        print("install", err(libc.prctl(22, 2, ctypes.byref(prog), 0, 0)))
        print("after", *attempts())
    """)
    res = off.run(program, seccomp.build_filter())
    assert res.stdout.decode().split("\n")[:4] == [
        "unshare ok",
        "before ok ok ok",
        "install ok",
        "after EPERM EPERM EPERM",
    ], res


def test_filter_reaches_programs_the_program_starts(boxes):
    on, _ = boxes
    child = "import ctypes, errno; l = ctypes.CDLL(None, use_errno=True); print(l.unshare(0x10000000), errno.errorcode[ctypes.get_errno()])"
    program = textwrap.dedent(f"""
        import subprocess
        print(subprocess.run(["/usr/bin/python3", "-c", {child!r}], capture_output=True, text=True).stdout)
    """)
    res = on.run(program)
    assert res.stdout.decode().strip() == "-1 EPERM", res


ORDINARY = {
    "threads": "import concurrent.futures as f\nwith f.ThreadPoolExecutor(4) as ex:\n    print(list(ex.map(abs, [-1, -2, 3])))",
    "fork": "import os\npid = os.fork()\nif pid == 0:\n    os._exit(3)\nprint(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))",
    "multiprocessing": "import multiprocessing as mp\np = mp.Process(target=print, args=('child',))\np.start()\np.join()\nprint(p.exitcode)",
    "subprocess": "import subprocess\nprint(subprocess.run(['/bin/sh', '-c', 'echo $((6*7))'], capture_output=True, text=True).stdout)",
    "asyncio": "import asyncio\nasync def f():\n    await asyncio.sleep(0.01)\n    return 5\nprint(asyncio.run(f()))",
    "files": "import tempfile, os\nwith tempfile.TemporaryDirectory() as d:\n    open(os.path.join(d, 'a'), 'w').write('x')\n    print(os.listdir(d))",
    "mmap": "import mmap\nm = mmap.mmap(-1, 4096)\nm[:3] = b'abc'\nprint(m[:3])",
    "time and random": "import time, random, os\ntime.sleep(0.01)\nprint(len(os.urandom(8)), 0 <= random.random() < 1)",
    "numbers": "import math, fractions, decimal, statistics\nprint(math.comb(10, 3), fractions.Fraction(1, 3) * 3, statistics.mean([1, 2, 3]))",
    "sockets": "import socket\na, b = socket.socketpair()\na.send(b'hi')\nprint(b.recv(2))",
}


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_programs_behave_the_same(boxes, name):
    with_filter, without = (box.run(ORDINARY[name], b"", Limits(timeout=10)) for box in boxes)
    assert without.ok, without  # the program itself works in this sandbox
    assert (with_filter.outcome, with_filter.exit_code, with_filter.stdout) == (
        without.outcome,
        without.exit_code,
        without.stdout,
    ), with_filter


@pytest.mark.skipif(not DATA.exists(), reason="shared/data/humaneval.jsonl not found")
def test_humaneval_canonical_solutions_pass_with_the_filter(boxes):
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    g = load_grader(
        {"type": "code", "prefix": "{{ item.prompt }}", "tests": "{{ item.test }}",
         "entry_point": "{{ item.entry_point }}", "sandbox": "local", "sandbox_options": {"seccomp": True}}
    )  # fmt: skip
    grades = [g.grade({"output_text": r["canonical_solution"]}, r) for r in rows]
    failed = [(r["task_id"], gr.details) for r, gr in zip(rows, grades, strict=True) if not gr.passed]
    assert not failed and len(grades) == 164, failed[:3]


# ---- fail closed -------------------------------------------------------------------------------------


def _broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    source = SECCOMP_PATH.read_text()
    assert old in source, old
    path = tmp_path / "seccomp.py"
    path.write_text(source.replace(old, new))
    return path


@pytest.mark.parametrize(
    "old,new,why",
    [
        ('"libseccomp.so.2"', '"libseccomp-not-here.so.9"', "libseccomp is not installed"),
        ("_SECCOMP_MODE_FILTER = 22, 2", "_SECCOMP_MODE_FILTER = 22, 99", "PR_SET_SECCOMP"),
        ("        if self._libc.prctl(*args) != 0:", "        if False:", "seccomp mode"),  # silently off
    ],
    ids=["cannot build", "cannot install", "not installed"],
)
def test_no_program_runs_without_the_filter(tmp_path, monkeypatch, old, new, why):
    monkeypatch.setattr(local, "SECCOMP_PATH", _broken_copy(tmp_path, old, new))
    box = LocalSandbox()
    try:
        with pytest.raises(SandboxUnavailable, match=why):
            box.run("print('ran')")
    finally:
        box.close()
    g = load_grader(
        {"type": "code", "cases": [{"input": "", "output": "ran\n"}], "sandbox": "local",
         "sandbox_options": {"uid_range": [61990, 61999]}}
    )  # fmt: skip
    grade = g.grade({"output_text": "print('ran')"}, {})
    assert grade.status == "error" and not grade.passed, grade
    assert "seccomp" in json.dumps(grade.details).lower() or "PR_SET_SECCOMP" in json.dumps(grade.details)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the x32 ABI is x86_64's")
def test_another_abi_kills_the_program(boxes):
    """x32 syscall numbers (bit 30 set) would bypass a filter written for x86_64 numbers: killed."""
    on, off = boxes
    program = "import ctypes, os\nctypes.CDLL(None).syscall(0x40000000 | 39)\nprint('alive', os.getpid())"
    killed = on.run(program)
    assert killed.outcome == "signaled" and killed.signal == signal.SIGSYS and killed.stdout == b"", killed
    assert off.run(program).stdout.startswith(b"alive")
