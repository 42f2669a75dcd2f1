"""Sandbox backends for the tests: every registered backend that can run here, by name (a backend that
cannot is skipped with its reason). The docker backend joins when its module is present. ``auto``
picks ``local`` as root and ``userns`` as another user, both listed here; `other_user` makes a
user to run tests as, for the unprivileged backends. ``remote`` is an `rft sandbox serve` started here
on loopback (once per test process, one worker so that its programs' uid is known), found through
$RFT_SANDBOX_URL and $RFT_SANDBOX_TOKEN as a user would set them."""

from __future__ import annotations

import atexit
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rft.graders.sandbox import Limits, Sandbox, SandboxUnavailable, shared_sandbox

BACKENDS = ["local", "userns", "bwrap", "docker", "remote"]
ROOT = Path(__file__).resolve().parents[1]
_UNAVAILABLE: dict[str, str] = {}
RFT = str(Path(sys.executable).with_name("rft"))


def start_server(*args: str, token: str | None, timeout: float = 60.0) -> tuple[subprocess.Popen[str], str]:
    """`rft sandbox serve --port 0 ARGS` on loopback (token in $RFT_SANDBOX_TOKEN): the process and its
    URL (read from the line it prints once it serves). RuntimeError with its output when it does not."""
    env = {k: v for k, v in os.environ.items() if k != "RFT_SANDBOX_TOKEN"}
    if token is not None:
        env["RFT_SANDBOX_TOKEN"] = token
    proc = subprocess.Popen(
        [
            RFT,
            "sandbox",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--quiet",
            *args,
        ],  # a later --port wins
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    if not select.select([proc.stdout], [], [], timeout)[0]:
        proc.kill()
        raise RuntimeError(f"rft sandbox serve printed nothing in {timeout} s")
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.wait(10)
        raise RuntimeError(
            f"rft sandbox serve did not start (exit {proc.returncode}): {line}{proc.stderr.read()}"
        )
    return proc, line.split(" on ", 1)[1].split()[0]


def stop_server(proc: subprocess.Popen[str], timeout: float = 30.0) -> int:
    """SIGTERM, then the exit status (SIGKILL past `timeout`)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            f.close()
    return proc.returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Set now, before any grader pool starts: multiprocessing's forkserver keeps the environment it started with.
if not os.environ.get("RFT_SANDBOX_URL"):
    os.environ["RFT_SANDBOX_URL"] = f"http://127.0.0.1:{_free_port()}"
    os.environ["RFT_SANDBOX_TOKEN"] = secrets.token_hex(16)
    _REMOTE_TO_START = True
else:
    _REMOTE_TO_START = False  # a server given by whoever runs the tests


def _remote_server() -> None:
    """Start the shared `remote` server where $RFT_SANDBOX_URL points (once)."""
    global _REMOTE_TO_START
    if not _REMOTE_TO_START:
        return
    _REMOTE_TO_START = False
    port = os.environ["RFT_SANDBOX_URL"].rsplit(":", 1)[1]
    try:
        proc, _ = start_server(
            "--workers", "1", "--per-client", "4", "--port", port, token=os.environ["RFT_SANDBOX_TOKEN"]
        )
    except RuntimeError as e:
        raise SandboxUnavailable(str(e)) from None
    atexit.register(stop_server, proc)


def backend_or_skip(name: str) -> Sandbox:
    """The process-wide sandbox of backend `name` (the one the code grader uses), or skip the test."""
    if name in _UNAVAILABLE:
        pytest.skip(f"sandbox {name!r} unavailable: {_UNAVAILABLE[name]}")
    try:
        if name == "remote":
            _remote_server()
        box = shared_sandbox(name)
        res = box.run("print('ready')", b"", Limits(timeout=60))
    except SandboxUnavailable as e:
        _UNAVAILABLE[name] = str(e)
        pytest.skip(f"sandbox {name!r} unavailable: {e}")
    assert res.stdout == b"ready\n", res
    return box


def sandbox_uid(box: Sandbox) -> int | None:
    """The host uid the backend's programs run as, where it says (for the stray-process checks)."""
    if box.name == "remote":  # a server on this machine with one worker: its uid
        uids = box.info()["uids"]  # type: ignore[attr-defined]
        return uids[0] if len(uids) == 1 else None
    return getattr(box, "uid", None)


def processes_of(uid: int | None, settle_s: float = 1.0) -> list[str]:
    """Live processes of `uid` on this machine ("pid cmdline"; zombies do not count), after letting exits
    settle."""
    if uid is None:
        return []
    end = time.monotonic() + settle_s
    while True:
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat(f"/proc/{name}").st_uid != uid:
                    continue
                with open(f"/proc/{name}/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                        continue  # exited, waiting for its parent (or init) to reap it
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{name} {cmdline[:100]}")
            except OSError:
                continue
        if not found or time.monotonic() > end:
            return found
        time.sleep(0.05)


def other_user() -> Iterator[str]:
    """(A generator for a fixture.) As root: a new user with a home folder, removed afterwards; skips
    when useradd is missing or that user cannot run this venv's Python (its folders must be readable:
    a pyenv under /root needs ``chmod o+x /root``)."""
    if os.geteuid() != 0:
        pytest.skip("making a test user needs root")
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("useradd/runuser are not installed: cannot make a user to test as")
    name = f"rfttest{os.getpid() % 100000}"
    made = subprocess.run(["useradd", "-m", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"useradd {name} failed: {made.stderr.strip()}")
    try:
        probe = as_user(name, [sys.executable, "-c", "import rft.graders"], timeout=60)
        if probe.returncode != 0:
            pytest.skip(
                f"user {name} cannot run {sys.executable} here (chmod o+x its folders): {probe.stderr[-300:]}"
            )
        yield name
    finally:
        uid = subprocess.run(["id", "-u", name], capture_output=True, text=True).stdout.strip()
        subprocess.run(["userdel", "-r", name], capture_output=True)
        if uid.isdigit():  # its private sandbox folder (state.py), left in /tmp
            shutil.rmtree(f"/tmp/rft-sandbox-{uid}", ignore_errors=True)


def as_user(name: str, argv: list[str], timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `argv` as user `name` from the repository root, with a plain environment."""
    base = {"HOME": f"/home/{name}", "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", **env}
    return subprocess.run(
        ["runuser", "-u", name, "--", "env", "-i", *(f"{k}={v}" for k, v in base.items()), *argv],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip
