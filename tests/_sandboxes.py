"""Sandbox backends for the tests: every registered backend that can run here, by name (a backend that
cannot is skipped with its reason). The docker backend joins when its module is present."""

from __future__ import annotations

import os
import time

import pytest

from rft.graders.sandbox import Limits, Sandbox, SandboxUnavailable, shared_sandbox

BACKENDS = ["local", "bwrap", "docker"]
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
