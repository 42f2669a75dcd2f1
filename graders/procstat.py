"""CPU use of live processes, read from Linux /proc: how the executor and the sandboxes tell a slow
program (it used its CPU) from a busy machine (it waited for one)."""

from __future__ import annotations

import contextlib
import os

__all__ = ["usage", "HAVE_SCHEDSTAT"]

TICK = 1.0 / os.sysconf("SC_CLK_TCK")
HAVE_SCHEDSTAT = os.path.exists("/proc/self/schedstat")  # Linux with CONFIG_SCHED_INFO


def usage(*, pgid: int | None = None, uid: int | None = None) -> tuple[float, float | None]:
    """CPU seconds used, and seconds spent waiting for a CPU, by the live processes of a process group
    or of a uid (the wait is None where the kernel has no schedstat)."""
    if (pgid is None) == (uid is None):
        raise ValueError("pass exactly one of pgid and uid")
    cpu, cpu_wait = 0.0, 0.0
    with contextlib.suppress(FileNotFoundError), os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if uid is not None and entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                if pgid is not None and int(fields[2]) != pgid:
                    continue
                cpu += sum(int(x) for x in fields[11:15]) * TICK  # utime stime cutime cstime
                if HAVE_SCHEDSTAT:
                    with open(f"/proc/{entry.name}/schedstat", "rb") as f:
                        cpu_wait += int(f.read().split()[1]) / 1e9
            except (OSError, ValueError, IndexError):  # it exited meanwhile
                continue
    return cpu, (cpu_wait if HAVE_SCHEDSTAT else None)
