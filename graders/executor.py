"""Grade many samples in a pool of worker processes, with a hard deadline per sample.

`GraderPool` owns worker processes and one dispatcher thread. Callers (any thread, or an asyncio loop
through `agrade`) submit tasks; the dispatcher sends them to idle workers in chunks, receives the
grades one by one, and SIGKILLs the process group of a worker whose current sample runs past its
deadline, then starts a replacement. The sample gets ``status="timeout"``; the batch goes on.

- Workers are forked by multiprocessing's *forkserver* (which preloads `rft.graders`), never from the
  trainer. Like any spawned child they import the parent's ``__main__`` as ``__mp_main__``: on Python
  versions before the fix of CPython gh-126631 every new worker does so again, so keep an entry
  script's heavy imports under ``if __name__ == "__main__":``. Start-up does not count against deadlines.
- A worker gets a grader's spec the first time it sees that grader, and imports the module that
  defines the grader's class (so test and plugin grader types load there too).
- A sample's deadline (`grader.timeout`, else the pool's `timeout`) starts when its worker begins it.
- A timed-out sample is retried (once, by default) when its processes used under half the deadline in
  CPU *and* spent at least a quarter of it waiting for a CPU (``/proc/<pid>/schedstat``): the machine
  was busy, the grader was not slow (`rft.graders.procstat.busy_machine`). A grader that sleeps or
  blocks wanted no CPU: not retried. Without schedstat the wait is unknown and no timeout is retried.
- A worker that dies (segfault, ``os._exit``, OOM kill) gives its current sample an ``error`` grade;
  the samples queued behind it go to other workers.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import pickle
import selectors
import signal
import time
import weakref
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from .base import Grader
from .grade import Grade
from .pool_base import DispatcherBase, GradingPool, PoolBase, build_grader, check_items, check_pool_options
from .procstat import HAVE_SCHEDSTAT, busy_machine, own_usage, usage

__all__ = ["GraderPool", "GradingPool", "grade_batch"]

MAX_CHUNK = 32  # tasks per message to a worker; fewer when few are pending, so every worker gets some
STARTUP_TIMEOUT = 60.0  # seconds a new worker may take to import what it needs
_CONTEXT = mp.get_context("forkserver")


def grade_batch(
    grader: Grader,
    samples: Sequence[dict[str, Any] | str],
    items: Sequence[dict[str, Any] | None] | None = None,
    *,
    workers: int | None = None,
    timeout: float = 30.0,
) -> list[Grade]:
    """Grade ``samples[i]`` against ``items[i]`` in a pool made for this call; results in input order.

    `workers` defaults to the number of CPUs. ``workers=0`` grades in the calling thread: no processes,
    and no deadline is enforced (a grader that hangs hangs the caller).
    """
    items = check_items(samples, items)
    if workers == 0:
        return [grader.grade(s, i) for s, i in zip(samples, items, strict=True)]
    if not samples:
        return []
    n = min(workers or os.cpu_count() or 1, len(samples))
    with GraderPool(workers=n, timeout=timeout) as pool:
        return pool.grade(grader, samples, items)


class GraderPool(PoolBase):
    """Worker processes that grade with a hard per-sample deadline. Thread-safe; use as a context manager.

    `preload` names modules that the workers (and the fork server, if it is not running yet) import at
    start, e.g. heavy dependencies of a grader, so that replacement workers start fast.
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = 30.0,
        max_retries_on_contention: int = 1,
        preload: Sequence[str] = (),
    ) -> None:
        workers = (os.cpu_count() or 1) if workers is None else workers
        check_pool_options(workers, timeout, max_retries_on_contention, preload)
        self.workers = workers
        self.timeout = timeout
        self.max_retries_on_contention = max_retries_on_contention
        self._keys: dict[int, tuple[Grader, str]] = {}  # id(grader) -> (grader, spec key)
        self._task = _Task
        self._dispatcher = _Dispatcher(workers, tuple(preload))
        # Also runs at interpreter exit: kills the workers rather than waiting for them.
        self._finalizer = weakref.finalize(self, self._dispatcher.stop, False)

    def close(self, cancel: bool = False) -> None:
        """Finish the submitted samples, then stop the workers (killing any that do not exit).
        ``cancel=True`` kills them now; the futures of samples not yet graded raise RuntimeError."""
        self._dispatcher.stop(wait=not cancel)
        self._finalizer.detach()


@dataclass(eq=False, slots=True)
class _Task:
    future: Future[Grade]
    key: str  # which grader (spec key)
    payload: bytes  # pickled (sample, item)
    deadline: float  # seconds, from when a worker begins the task
    retries_left: int
    retried: bool = False


class _Worker:
    """The dispatcher's handle on one worker process: its pipe and the tasks sent to it, in order."""

    def __init__(self, preload: tuple[str, ...]) -> None:
        self.conn, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(
            target=_worker_main, args=(child, preload), daemon=True, name="rft-grader"
        )
        self.process.start()
        child.close()
        assert self.process.pid is not None
        self.pid: int = self.process.pid
        self.ready = False  # it has started (imports done) and said so
        self.inflight: deque[_Task] = deque()  # the head is the task it is working on
        self.started = time.monotonic()  # when the head task began (before `ready`: when the process did)
        self.usage = (0.0, 0.0)  # its CPU seconds and CPU-wait seconds when the head task began
        self.known: set[str] = set()  # spec keys it has been sent

    def deadline(self) -> float | None:
        if not self.ready:
            return self.started + STARTUP_TIMEOUT
        return self.started + self.inflight[0].deadline if self.inflight else None

    def kill(self) -> int | None:
        """SIGKILL the worker's process group (so what it spawned dies too); return its exit code."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.process.exitcode is None:  # it may not have made its group yet
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.process.join(5.0)
        self.conn.close()
        return self.process.exitcode


class _Dispatcher(DispatcherBase[_Task]):
    """Worker processes fed through pipes, watched with a selector (which a byte on the wake pipe wakes)."""

    def __init__(self, max_workers: int, preload: tuple[str, ...]) -> None:
        super().__init__()
        self.max_workers = max_workers
        self.preload = preload
        self.wake_r, self.wake_w = os.pipe()  # a byte here wakes the dispatcher
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        # The dispatcher thread's own:
        self.workers: list[_Worker] = []
        self.selector = selectors.DefaultSelector()  # the wake pipe and every worker's pipe
        self.selector.register(self.wake_r, selectors.EVENT_READ)

    def _before_start(self) -> None:  # under lock
        _CONTEXT.set_forkserver_preload(["__main__", __package__, *self.preload])

    def _wake(self) -> None:  # under lock
        if self.wake_w >= 0:
            with contextlib.suppress(BlockingIOError):  # the pipe is full: it will wake anyway
                os.write(self.wake_w, b"x")

    def _close(self) -> None:  # under lock: the wake pipe
        if self.wake_w >= 0:
            os.close(self.wake_w)
            os.close(self.wake_r)
            self.wake_w = self.wake_r = -1

    def _inflight(self) -> list[_Task]:
        return [t for w in self.workers for t in w.inflight]

    def _release(self) -> None:
        self._stop_workers()

    def _loop(self) -> None:
        while True:
            with self.lock:
                self.pending.extend(self.incoming)
                self.incoming.clear()
                if self.aborting:
                    return
                if self.closing and not self.pending and not any(w.inflight for w in self.workers):
                    return
            self._assign()
            for key, _ in self.selector.select(self._seconds_to_next_deadline()):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                elif key.data in self.workers:  # not retired earlier in this loop
                    self._receive(key.data)
            self._enforce_deadlines()

    def _assign(self) -> None:
        """Send chunks of pending tasks to idle workers; start workers (up to `max_workers`) for the rest."""
        idle = [w for w in self.workers if w.ready and not w.inflight]
        while self.pending and idle:
            worker = idle.pop()
            size = min(MAX_CHUNK, -(-len(self.pending) // self.max_workers))
            while self.pending and len(worker.inflight) < size:
                task = self.pending.popleft()
                if not task.future.cancelled():
                    worker.inflight.append(task)
            if worker.inflight:
                self._send(worker)
        starting = sum(not w.ready for w in self.workers)
        while len(self.workers) < self.max_workers and starting < len(self.pending):
            worker = _Worker(self.preload)  # it gets tasks once it says it is ready
            self.workers.append(worker)
            self.selector.register(worker.conn, selectors.EVENT_READ, worker)
            starting += 1

    def _send(self, worker: _Worker) -> None:
        with self.lock:
            new = {t.key: self.specs[t.key] for t in worker.inflight if t.key not in worker.known}
        worker.known.update(new)
        worker.started = time.monotonic()
        try:  # the worker is idle, so it is reading: this does not block for long
            worker.conn.send((new, [(t.key, t.payload) for t in worker.inflight]))
        except OSError:  # it died while idle
            self._retire_dead(worker)

    def _receive(self, worker: _Worker) -> None:
        """Read one message (the selector reports the pipe again while more are waiting)."""
        try:
            grade, cpu, cpu_wait = worker.conn.recv()
        except (EOFError, OSError):
            self._retire_dead(worker)
            return
        worker.started = time.monotonic()  # results stream in order: the next task begins now
        worker.usage = (cpu, cpu_wait)
        if grade is None:  # the "ready" message
            worker.ready = True
        else:
            self._resolve(worker.inflight.popleft(), Grade.from_dict(grade))

    def _retire(self, worker: _Worker) -> int | None:
        self.selector.unregister(worker.conn)
        self.workers.remove(worker)
        return worker.kill()

    def _retire_dead(self, worker: _Worker, why: str = "") -> None:
        """Its current task gets an error grade; the tasks queued behind it go back to the queue."""
        code = self._retire(worker)
        if not why:
            signame = f", {signal.Signals(-code).name}" if code is not None and code < 0 else ""
            why = f"grader worker died{'' if worker.ready else ' while starting'} (exit code {code}{signame})"
        if worker.inflight:
            self._resolve(worker.inflight.popleft(), Grade.error(why))
            self.pending.extendleft(reversed(worker.inflight))
        elif not worker.ready and self.pending:  # charge a task, or workers that cannot start loop forever
            self._resolve(self.pending.popleft(), Grade.error(why))

    def _seconds_to_next_deadline(self) -> float | None:
        ends = [end for w in self.workers if (end := w.deadline()) is not None]
        return max(0.0, min(ends) - time.monotonic()) if ends else None

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers):
            end = worker.deadline()
            if end is None or now < end or worker.conn.poll():  # idle, in time, or a message is waiting
                continue
            if not worker.ready:
                self._retire_dead(worker, f"grader worker did not start within {STARTUP_TIMEOUT:g}s")
                continue
            task = worker.inflight[0]
            wall = now - worker.started
            cpu, cpu_wait = usage(pgid=worker.pid)  # before the kill, while the processes exist
            cpu -= worker.usage[0]
            cpu_wait = None if cpu_wait is None else cpu_wait - worker.usage[1]
            self._retire(worker)
            worker.inflight.popleft()
            self.pending.extendleft(reversed(worker.inflight))
            if busy_machine(cpu_s=cpu, cpu_wait_s=cpu_wait, limit_s=task.deadline) and task.retries_left > 0:
                task.retries_left -= 1
                task.retried = True
                self.pending.appendleft(task)
                continue
            details: dict[str, Any] = {
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "deadline_s": task.deadline,
            }
            if cpu_wait is not None:
                details["cpu_wait_s"] = round(cpu_wait, 3)
            self._resolve(task, Grade.timeout(f"grader ran past its {task.deadline:g}s deadline", **details))

    def _resolve(self, task: _Task, grade: Grade) -> None:
        if task.retried:
            grade = replace(grade, details={**grade.details, "retried": 1})
        with contextlib.suppress(InvalidStateError):  # the caller cancelled it
            task.future.set_result(grade)

    def _stop_workers(self) -> None:
        if not self.aborting:
            for w in self.workers:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
            end = time.monotonic() + 2.0
            for w in self.workers:
                w.process.join(max(0.0, end - time.monotonic()))
        for w in list(self.workers):
            self._retire(w)  # stragglers, and anything the workers left running in their groups
        self.selector.close()


# ---- inside a worker process ------------------------------------------------------------------------


def _worker_main(conn: Connection, preload: tuple[str, ...]) -> None:
    """Say ready, then receive ``(new_specs, tasks)`` chunks and send back ``(grade_dict, cpu_s, cpu_wait_s)``
    per task (with ``None`` for the grade in the ready message)."""
    os.setpgid(0, 0)  # its own process group, so the pool can kill whatever a grader spawns
    _die_with_parent()
    for name in preload:
        importlib.import_module(name)
    graders: dict[str, Grader | str] = {}  # spec key -> grader, or why it could not be built
    schedstat = os.open("/proc/self/schedstat", os.O_RDONLY) if HAVE_SCHEDSTAT else None
    conn.send((None, *own_usage(schedstat)))  # ready
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the pool is gone
            return
        if message is None:
            return
        specs, tasks = message
        for key, (module, spec) in specs.items():
            graders[key] = build_grader(module, spec)
        for key, payload in tasks:
            grader = graders[key]
            if isinstance(grader, str):
                grade = Grade.error(grader)
            else:
                sample, item = pickle.loads(payload)
                grade = grader.grade(sample, item)
            conn.send((grade.to_dict(), *own_usage(schedstat)))


def _die_with_parent() -> None:
    """SIGKILL this worker when the fork server exits (it does when the pool's process dies)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux
