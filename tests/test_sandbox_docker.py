"""The docker backend's own behaviour: image built without a registry, warm container, cleanup, fail closed.
(The adversarial suite and HumanEval run over every backend, docker included, in their own files.)"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from rft.graders.sandbox import Limits, SandboxUnavailable, get_sandbox

pytestmark = pytest.mark.docker


def _engine() -> bool:
    exe = shutil.which("docker")
    return exe is not None and subprocess.run([exe, "info"], capture_output=True, timeout=30).returncode == 0


needs_engine = pytest.mark.skipif(not _engine(), reason="no Docker engine here (.ci/run starts one)")


def _containers(name: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"name={name}"], capture_output=True, text=True)
    return out.stdout.split()


@needs_engine
def test_runs_in_a_warm_locked_down_container():
    with get_sandbox("docker") as box:
        probe = (
            "import os, socket\n"
            "print(os.getuid(), os.getgid())\n"
            "try:\n    open('/usr/x', 'w')\nexcept OSError as e:\n    print('ro', e.errno)\n"
            "try:\n    socket.create_connection(('10.255.255.1', 80), timeout=1)\nexcept OSError as e:\n"
            "    print('net', e.errno)\n"
            "os.write(3, b'verdict')\n"
        )
        res = box.run(probe, b"", Limits(timeout=10))
        assert res.outcome == "exited" and res.exit_code == 0, res
        uid, ro, net = res.stdout.decode().splitlines()
        assert uid == "63000 63000"  # not root inside the container
        assert ro.startswith("ro ") and net.startswith("net ")
        assert res.result == b"verdict" and res.backend == "docker"
        assert _containers(box.container) != []  # warm: the same container serves every run
        for i in range(20):
            assert box.run(f"print({i} * 2)").stdout == f"{i * 2}\n".encode()
        assert len(_containers(box.container)) == 1
    assert _containers(box.container) == []  # removed on close


@needs_engine
def test_container_that_dies_is_replaced():
    with get_sandbox("docker") as box:
        assert box.run("print(1)").stdout == b"1\n"
        server = box._proc
        subprocess.run(["docker", "kill", box.container], capture_output=True, timeout=30)
        server.wait(30)  # the fork server's session ends with its container
        assert box.run("print(3)").stdout == b"3\n"  # a new server in a new container
        assert box._proc is not server and len(_containers(box.container)) == 1
    assert _containers(box.container) == []


def test_unreachable_engine_fails_closed(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    box = get_sandbox("docker")
    with pytest.raises(SandboxUnavailable, match="cannot reach a Docker engine"):
        box.run("print('never runs')")
