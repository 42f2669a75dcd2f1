"""Sandbox backends for the tests: every registered backend that can run here, by name (a backend that
cannot is skipped with its reason). The docker backend joins when its module is present. ``auto``
picks ``local`` as root and ``userns`` as another user, both listed here; `other_user` makes a
user to run tests as, for the unprivileged backends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rft.graders.sandbox import Limits, Sandbox, SandboxUnavailable, shared_sandbox

BACKENDS = ["local", "userns", "bwrap", "docker"]
ROOT = Path(__file__).resolve().parents[1]
_UNAVAILABLE: dict[str, str] = {}


def backend_or_skip(name: str) -> Sandbox:
    """The process-wide sandbox of backend `name` (the one the code grader uses), or skip the test."""
    if name in _UNAVAILABLE:
        pytest.skip(f"sandbox {name!r} unavailable: {_UNAVAILABLE[name]}")
    try:
        box = shared_sandbox(name)
        res = box.run("print('ready')", b"", Limits(timeout=60))
    except SandboxUnavailable as e:
        _UNAVAILABLE[name] = str(e)
        pytest.skip(f"sandbox {name!r} unavailable: {e}")
    assert res.stdout == b"ready\n", res
    return box


def sandbox_uid(box: Sandbox) -> int | None:
    """The host uid the backend's programs run as, where it says (for the stray-process checks)."""
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
