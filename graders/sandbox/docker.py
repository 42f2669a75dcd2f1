"""The ``docker`` backend: a warm container per sandbox object, running the same fork server inside.

No image registry is needed: the image is built here from a local Python (its binary, its standard
library and the shared libraries they load, about 50 MB) with ``docker import``. Each sandbox starts
one long-lived container (``docker run -i``) whose main process is forkserver.py in ``--isolate none``
mode: the container is the isolation (no network, read-only root, a size-limited /tmp, memory and pid
limits, every capability dropped but those the server needs to set up runs, no-new-privileges), and
the fork server still runs each program as an unprivileged uid under rlimits and kills that uid's
processes after each run. Requests and replies travel over the container's stdin and stdout, so a
program costs a fork inside a warm container rather than a ``docker exec`` (~70 ms) or ``docker run``
(~230 ms). Docker's default seccomp profile refuses user namespaces, so none are made inside.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

from .base import SandboxUnavailable, register_sandbox
from .local import FORKSERVER_PATH, HARNESS_RUNTIME_PATH, PRELOAD, LocalSandbox

__all__ = ["DockerSandbox", "build_image", "DEFAULT_IMAGE"]

DEFAULT_IMAGE = "rft-sandbox:py"
SLOT_UID = 63000  # the unprivileged uid programs run as inside the container (local uses 64000-64499)
_SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
                "site-packages", "dist-packages"}  # fmt: skip
# What the fork server (root in the container) needs to set up each run as the slot uid; the program
# itself has none of them (a non-root uid keeps no capabilities).
_CAPS = ("SETUID", "SETGID", "KILL", "CHOWN", "FOWNER", "DAC_OVERRIDE")
_BUILD_LOCK = threading.Lock()
_names = itertools.count()


def _docker(
    *args: str, timeout: float = 60, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("docker")
    if exe is None:
        raise SandboxUnavailable(
            "the docker sandbox needs the docker CLI and a running engine (apt install docker.io)"
        )
    return subprocess.run([exe, *args], capture_output=True, timeout=timeout, input=input)


def _python_paths(python: str) -> tuple[str, str]:
    """The real binary and the standard library directory of a Python interpreter."""
    code = "import sys, sysconfig; print(sys.executable); print(sysconfig.get_paths()['stdlib'])"
    out = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    exe, stdlib = out.split("\n")[:2]
    return os.path.realpath(exe), stdlib


def _shared_libraries(paths: list[str]) -> set[str]:
    libs: set[str] = set()
    for chunk in range(0, len(paths), 200):
        out = subprocess.run(["ldd", *paths[chunk : chunk + 200]], capture_output=True, text=True).stdout
        libs.update(m.group(1) for m in re.finditer(r"(/\S+) \(0x[0-9a-f]+\)", out))
    return libs


def rootfs_tar(python: str) -> bytes:
    """A root filesystem (tar) holding `python`, its standard library and the libraries they load."""
    exe, stdlib = _python_paths(python)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d, mode in (("tmp", 0o1777), ("etc", 0o755), ("rft", 0o755), ("usr/bin", 0o755)):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        tar.add(exe, arcname=exe.lstrip("/"))
        for entry in sorted(Path(stdlib).iterdir()):
            if entry.name not in _SKIP_STDLIB:
                tar.add(str(entry), arcname=str(entry).lstrip("/"))
        extensions = [exe, *map(str, Path(stdlib).glob("lib-dynload/*.so"))]
        for lib in sorted(_shared_libraries(extensions)):
            tar.add(os.path.realpath(lib), arcname=lib.lstrip("/"))
        files = {
            "etc/passwd": f"root:x:0:0::/:/bin/false\nsandbox:x:{SLOT_UID}:{SLOT_UID}::/tmp:/bin/false\n",
            "etc/group": f"root:x:0:\nsandbox:x:{SLOT_UID}:\n",
        }
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        if exe != "/usr/bin/python3":
            link = tarfile.TarInfo("usr/bin/python3")
            link.type, link.linkname = tarfile.SYMTYPE, exe
            tar.addfile(link)
    return buf.getvalue()


def build_image(tag: str = DEFAULT_IMAGE, python: str | None = None) -> str:
    """Build the sandbox image from a local Python with ``docker import`` (no registry); returns the tag.
    By default the system's /usr/bin/python3 (fast to start), else this interpreter."""
    python = python or ("/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
    res = _docker("import", "-", tag, input=rootfs_tar(python), timeout=300)
    if res.returncode != 0:
        raise SandboxUnavailable(f"could not build the sandbox image {tag}: {res.stderr.decode().strip()}")
    return tag


@register_sandbox("docker")
class DockerSandbox(LocalSandbox):
    """One warm container running forkserver.py; see the module docstring. The image is built on first
    use when missing (``build=False`` to refuse instead)."""

    name = "docker"

    def __init__(
        self,
        *,
        image: str = DEFAULT_IMAGE,
        build: bool = True,
        memory_mb: int = 2048,
        pids: int = 256,
        tmp_mb: int = 256,
    ) -> None:
        super().__init__(python="python3", isolate=(), paths=[], preload=PRELOAD)
        self.image, self.build = image, build
        self.memory_mb, self.pids, self.tmp_mb = memory_mb, pids, tmp_mb
        self.container = f"rft-sandbox-{os.getpid()}-{next(_names)}"

    def _preflight(self) -> None:
        res = _docker("info", "--format", "{{.ServerVersion}}", timeout=20)
        if res.returncode != 0:
            raise SandboxUnavailable(
                f"the docker sandbox cannot reach a Docker engine ({res.stderr.decode().strip()[:200]}); "
                "start dockerd, or use sandbox 'local'"
            )
        with _BUILD_LOCK:
            if _docker("image", "inspect", self.image, timeout=20).returncode != 0:
                if not self.build:
                    raise SandboxUnavailable(
                        f"the sandbox image {self.image} is missing (build_image() makes it)"
                    )
                build_image(self.image)

    def _argv(self) -> list[str]:
        exe = shutil.which("docker") or "docker"
        return [
            exe, "run", "-i", "--rm", "--init", "--name", self.container, "--label", "rft.sandbox=1",
            "--network", "none", "--read-only",
            "--tmpfs", f"/tmp:rw,nosuid,nodev,size={self.tmp_mb}m,mode=1777",
            "--memory", f"{self.memory_mb}m", "--memory-swap", f"{self.memory_mb}m", "--pids-limit", str(self.pids),
            "--cap-drop", "ALL", *(f"--cap-add={c}" for c in _CAPS),
            "--security-opt", "no-new-privileges",
            "-v", f"{FORKSERVER_PATH}:/rft/forkserver.py:ro", "-v", f"{HARNESS_RUNTIME_PATH}:/rft/harness_runtime.py:ro",
            self.image, "python3", "-I", "-S", "/rft/forkserver.py", "--isolate", "none", "--uid", str(SLOT_UID),
            "--preload", ",".join(self.preload), "--preload-file", "rft_harness=/rft/harness_runtime.py",
        ]  # fmt: skip

    def _remove_container(self) -> None:
        with contextlib.suppress(SandboxUnavailable, subprocess.TimeoutExpired):
            _docker("rm", "-f", self.container, timeout=30)

    def _stop_dead_server(self) -> str:
        why = super()._stop_dead_server()
        self._remove_container()
        return why

    def close(self) -> None:
        running = self._proc is not None
        super().close()
        if running:
            self._remove_container()

    def info(self) -> dict[str, Any]:
        return {"image": self.image, "container": self.container, **self.hello}
