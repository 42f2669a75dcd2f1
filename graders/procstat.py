"""CPU use of live processes, read from Linux /proc, and the one rule that uses it: `busy_machine` tells a
timeout caused by a busy machine (the program waited for a CPU: retry it) from a slow program (it used its
CPU) or one that sleeps or blocks (it wanted no CPU): score those. The pools and the sandboxes all ask it.

Without schedstat (``/proc/<pid>/schedstat``, Linux with CONFIG_SCHED_INFO) the time spent waiting for a
CPU is not known, and `busy_machine` says False: a timeout is scored, never retried. CPU time against wall
time cannot stand in for it: a program starved of CPU and one that sleeps both use little CPU in a long
wall time, and a grader that only sleeps must never be retried.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["usage", "own_usage", "busy_machine", "HAVE_SCHEDSTAT"]

TICK = 1.0 / os.sysconf("SC_CLK_TCK")
HAVE_SCHEDSTAT = os.path.exists("/proc/self/schedstat")  # Linux with CONFIG_SCHED_INFO


def busy_machine(*, cpu_s: float | None, cpu_wait_s: float | None, limit_s: float) -> bool:
    """Whether a run that hit its `limit_s` (wall seconds) timed out because the machine was busy: it used
    under half the limit in CPU and spent at least a quarter of it waiting for a CPU. False when either is
    unknown (None: no schedstat, or processes on another machine), so the timeout is scored, not retried."""
    if cpu_s is None or cpu_wait_s is None:
        return False
    return cpu_s < limit_s / 2 and cpu_wait_s >= limit_s / 4


def usage(
    *, pgid: int | None = None, uid: int | None = None, schedstat: bool = HAVE_SCHEDSTAT
) -> tuple[float, float | None]:
    """CPU seconds used, and seconds spent waiting for a CPU, by the live processes of a process group
    or of a uid (the wait is None without schedstat; ``schedstat=False`` reads as if there were none)."""
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
                if schedstat:
                    with open(f"/proc/{entry.name}/schedstat", "rb") as f:
                        cpu_wait += int(f.read().split()[1]) / 1e9
            except (OSError, ValueError, IndexError):  # it exited meanwhile
                continue
    return cpu, (cpu_wait if schedstat else None)


def own_usage(schedstat_fd: int | None) -> tuple[float, float]:
    """This process's CPU seconds (its own and its waited-for children's) and seconds spent waiting for a
    CPU, read from `schedstat_fd` (``/proc/self/schedstat``, opened once); 0.0 for the wait without it."""
    t = os.times()
    cpu_wait = int(os.pread(schedstat_fd, 128, 0).split()[1]) / 1e9 if schedstat_fd is not None else 0.0
    return t.user + t.system + t.children_user + t.children_system, cpu_wait
