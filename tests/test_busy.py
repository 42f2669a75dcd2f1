"""`busy_machine`: the one rule that retries a timeout (busy machine) instead of scoring it (slow or sleeping
program), with and without schedstat, on real processes read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rft.graders.procstat import HAVE_SCHEDSTAT, busy_machine, own_usage, usage
from rft.graders.sandbox import ExecResult

SPIN = "while True: pass"
SLEEP = "import time\ntime.sleep(60)"


@pytest.mark.parametrize(
    ("cpu_s", "cpu_wait_s", "expected", "why"),
    [
        (0.2, 0.7, True, "starved: little CPU, much waiting for one"),
        (0.49, 0.25, True, "just inside both bounds"),
        (0.5, 0.5, False, "half the limit in CPU: the program was slow"),
        (0.9, 0.1, False, "busy loop that got its CPU"),
        (0.0, 0.0, False, "slept or blocked: wanted no CPU"),
        (0.1, 0.24, False, "waited under a quarter of the limit"),
        (0.0, None, False, "no schedstat: the wait is unknown, never retried"),
        (None, 0.9, False, "CPU unknown (another machine)"),
        (None, None, False, "nothing known"),
    ],
)
def test_busy_machine_table(cpu_s, cpu_wait_s, expected, why):
    assert busy_machine(cpu_s=cpu_s, cpu_wait_s=cpu_wait_s, limit_s=1.0) is expected, why


def test_the_bounds_scale_with_the_limit():
    assert busy_machine(cpu_s=2.0, cpu_wait_s=3.0, limit_s=10.0)
    assert not busy_machine(cpu_s=2.0, cpu_wait_s=3.0, limit_s=4.0)  # 2.0 is half of 4


def test_sandbox_contention_is_the_same_rule_on_timeouts_only():
    starved = ExecResult(outcome="timeout", cpu_s=0.2, cpu_wait_s=0.7)
    assert starved.contention(1.0)
    assert not ExecResult(outcome="timeout", cpu_s=0.2, cpu_wait_s=None).contention(1.0)  # no schedstat
    assert not ExecResult(outcome="timeout", cpu_s=0.0, cpu_wait_s=0.0).contention(1.0)  # slept
    assert not ExecResult(outcome="exited", exit_code=0, cpu_s=0.2, cpu_wait_s=0.7).contention(1.0)


def _group(code: str, cpu: int | None = None) -> subprocess.Popen[bytes]:
    """A Python process leading its own process group, pinned to `cpu` if given."""
    pin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\n" if cpu is not None else ""
    return subprocess.Popen([sys.executable, "-c", pin + code], start_new_session=True)


def _measure(pgid: int, seconds: float, schedstat: bool) -> tuple[float, float | None]:
    """CPU and CPU-wait seconds the group used over `seconds` of wall time (as the pools measure a task)."""
    cpu0, wait0 = usage(pgid=pgid, schedstat=schedstat)
    time.sleep(seconds)
    cpu1, wait1 = usage(pgid=pgid, schedstat=schedstat)
    return cpu1 - cpu0, (None if wait1 is None or wait0 is None else wait1 - wait0)


@pytest.fixture
def procs():
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def _started(procs: list[subprocess.Popen[bytes]], p: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    procs.append(p)
    time.sleep(0.3)  # past the interpreter's start-up
    return p


def test_without_schedstat_a_sleeper_is_never_retried(procs):
    sleeper = _started(procs, _group(SLEEP))
    cpu, cpu_wait = _measure(sleeper.pid, 1.0, schedstat=False)
    assert cpu_wait is None and cpu < 0.1  # what a pool sees on a kernel without schedstat
    assert not busy_machine(cpu_s=cpu, cpu_wait_s=cpu_wait, limit_s=1.0)


def test_without_schedstat_usage_still_counts_cpu(procs):
    spinner = _started(procs, _group(SPIN))
    cpu, cpu_wait = _measure(spinner.pid, 1.0, schedstat=False)
    assert cpu_wait is None and cpu > 0.1


@pytest.mark.skipif(not HAVE_SCHEDSTAT, reason="this kernel has no /proc/<pid>/schedstat")
def test_with_schedstat_a_sleeper_is_not_retried_and_a_starved_spinner_is(procs):
    sleeper = _started(procs, _group(SLEEP))
    cpu, cpu_wait = _measure(sleeper.pid, 1.0, schedstat=True)
    assert cpu_wait is not None and not busy_machine(cpu_s=cpu, cpu_wait_s=cpu_wait, limit_s=1.0)
    # Four busy loops on one CPU: each gets about a quarter of it and waits the rest.
    cpu_id = min(os.sched_getaffinity(0))
    spinner = _started(procs, _group(SPIN, cpu_id))
    for _ in range(3):
        _started(procs, _group(SPIN, cpu_id))
    cpu, cpu_wait = _measure(spinner.pid, 1.0, schedstat=True)
    assert cpu_wait is not None and cpu < 0.5 and cpu_wait >= 0.25
    assert busy_machine(cpu_s=cpu, cpu_wait_s=cpu_wait, limit_s=1.0)


def test_own_usage_reads_this_process():
    fd = os.open("/proc/self/schedstat", os.O_RDONLY) if HAVE_SCHEDSTAT else None
    try:
        cpu, cpu_wait = own_usage(fd)
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
        cpu2, _ = own_usage(fd)
    finally:
        if fd is not None:
            os.close(fd)
    assert cpu2 - cpu >= 0.15 and cpu_wait >= 0.0  # os.times counts in clock ticks (10 ms here)
    assert own_usage(None)[1] == 0.0  # no schedstat: no wait reported
