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
  was busy, the grader was not slow. A grader that sleeps or blocks wanted no CPU: not retried.
- A worker that dies (segfault, ``os._exit``, OOM kill) gives its current sample an ``error`` grade;
  the samples queued behind it go to other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import multiprocessing as mp
import os
import pickle
import selectors
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError, as_completed
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any, Generic, Protocol, Self, TypeVar

from .base import Grader, GraderSpecError, as_sample, load_grader
from .grade import Grade
from .procstat import HAVE_SCHEDSTAT, usage

__all__ = ["GraderPool", "grade_batch"]

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
    items = _check_items(samples, items)
    if workers == 0:
        return [grader.grade(s, i) for s, i in zip(samples, items, strict=True)]
    if not samples:
        return []
    n = min(workers or os.cpu_count() or 1, len(samples))
    with GraderPool(workers=n, timeout=timeout) as pool:
        return pool.grade(grader, samples, items)


def _check_items(samples: Sequence[Any], items: Sequence[Any] | None) -> Sequence[Any]:
    if items is None:
        return [None] * len(samples)
    if len(items) != len(samples):
        raise ValueError(f"items ({len(items)}) must match samples ({len(samples)}) one to one, or be None")
    return items


def _check_pool_options(
    workers: int | None, timeout: float, max_retries_on_contention: int, preload: Sequence[str]
) -> None:
    """The options every pool takes; `preload` is imported here, so an import error shows at once, not as a
    crash or an error grade in every worker."""
    if workers is not None and workers < 1:
        raise ValueError(f"workers ({workers}) must be at least 1; grade_batch(..., workers=0) grades inline")
    if timeout <= 0:
        raise ValueError(f"timeout ({timeout}) must be a positive number of seconds")
    if max_retries_on_contention < 0:
        raise ValueError(f"max_retries_on_contention ({max_retries_on_contention}) must be >= 0")
    for name in preload:
        importlib.import_module(name)


class _PoolAPI:
    """What every grading pool offers on top of its dispatcher: submit, grade (in order, with a callback
    per grade), agrade (asyncio), a context manager, and grader spec keys. A pool sets `_dispatcher`
    (`add_spec`, `submit(tasks)`), `_task` (its task type), `_keys`, `timeout`, `max_retries_on_contention`,
    and defines `close`."""

    _dispatcher: Any
    _task: Callable[..., Any]
    _keys: dict[int, tuple[Grader, str]]
    timeout: float
    max_retries_on_contention: int

    def close(self, cancel: bool = False) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(cancel=exc_type is not None)  # after Ctrl-C, say, do not grade the rest first

    def submit(
        self, grader: Grader, sample: dict[str, Any] | str, item: dict[str, Any] | None = None
    ) -> Future[Grade]:
        """Queue one sample; the future's result is its `Grade` (a failure is a grade, never an exception)."""
        return self._submit(grader, [sample], [item])[0]

    def grade(
        self,
        grader: Grader,
        samples: Sequence[dict[str, Any] | str],
        items: Sequence[dict[str, Any] | None] | None = None,
        on_result: Callable[[int, Grade], None] | None = None,
    ) -> list[Grade]:
        """Grade a batch; results in input order. `on_result(index, grade)` is called in this thread
        as each grade arrives (in completion order), e.g. to advance a progress bar."""
        futures = self._submit(grader, samples, _check_items(samples, items))
        if on_result is None:
            wait_all(futures)  # one wake-up for the batch, not one per grade
        else:
            index = {f: i for i, f in enumerate(futures)}
            for f in as_completed(futures):
                on_result(index[f], f.result())
        return [f.result() for f in futures]

    async def agrade(
        self,
        grader: Grader,
        samples: Sequence[dict[str, Any] | str],
        items: Sequence[dict[str, Any] | None] | None = None,
    ) -> list[Grade]:
        """`grade` for asyncio: awaits the batch without blocking the event loop."""
        futures = self._submit(grader, samples, _check_items(samples, items))
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    def _submit(self, grader: Grader, samples: Sequence[Any], items: Sequence[Any]) -> list[Future[Grade]]:
        key = self._key(grader)
        deadline = grader.timeout or self.timeout
        # Pickled here, in the caller's thread: an unpicklable sample fails at submit, not in the pool.
        payloads = [pickle.dumps((as_sample(s), i), -1) for s, i in zip(samples, items, strict=True)]
        tasks = [self._task(Future(), key, p, deadline, self.max_retries_on_contention) for p in payloads]
        self._dispatcher.submit(tasks)
        return [t.future for t in tasks]

    def _key(self, grader: Grader) -> str:
        """The hash of the grader's canonical spec, computed once per grader object (graders are frozen)."""
        hit = self._keys.get(id(grader))
        if hit is not None and hit[0] is grader:
            return hit[1]
        spec = grader.spec()
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]
        self._dispatcher.add_spec(key, type(grader).__module__, spec)
        if len(self._keys) >= 1024:
            self._keys.clear()
        self._keys[id(grader)] = (grader, key)  # holding the grader keeps its id from being reused
        return key


class GraderPool(_PoolAPI):
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
        _check_pool_options(workers, timeout, max_retries_on_contention, preload)
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


class _Queued(Protocol):
    future: Future[Grade]


TaskT = TypeVar("TaskT", bound=_Queued)  # a pool's task type: what it queues carries its future


class _DispatcherBase(Generic[TaskT]):
    """The front of a pool's dispatcher, which runs in one thread started by the first `submit`; `submit`,
    `add_spec` and `stop` may be called from any thread. A subclass defines `_loop` (returns once closed
    and done, or aborted), `_wake` (under `lock`: rouse the loop), `_inflight` (tasks handed to workers)
    and `_release` (after the loop: stop the workers); `_close` (under `lock`, at the end or when the
    thread never started), `_before_start` and `_why` may be extended."""

    pool = "GraderPool"  # the class named in messages
    thread_name = "rft-grader-pool"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # Shared with callers, under `lock`:
        self.incoming: list[TaskT] = []
        self.specs: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (module, spec)
        self.closing = False  # no new tasks; finish the queued ones, then stop
        self.aborting = False  # stop now; queued tasks fail
        self.crashed: BaseException | None = None
        self.thread: threading.Thread | None = None
        # The dispatcher thread's own:
        self.pending: deque[TaskT] = deque()

    def add_spec(self, key: str, module: str, spec: dict[str, Any]) -> None:
        with self.lock:
            self.specs.setdefault(key, (module, spec))

    def submit(self, tasks: list[TaskT]) -> None:
        with self.lock:
            if self.crashed is not None:
                raise RuntimeError(f"the {self.pool}'s dispatcher crashed: {self.crashed!r}")
            if self.closing:
                raise RuntimeError(f"this {self.pool} is closed; make a new one")
            self.incoming.extend(tasks)
            if self.thread is None:
                self._before_start()
                self.thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
                self.thread.start()
            self._wake()

    def stop(self, wait: bool) -> None:
        with self.lock:
            self.closing = True
            self.aborting = self.aborting or not wait
            thread = self.thread
            if thread is None:
                self._close()
                return
            self._wake()
        if thread is not threading.current_thread():
            thread.join(None if wait else 10.0)

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:
            with self.lock:
                self.crashed = e
            raise
        finally:
            with self.lock:
                leftovers = self.incoming + list(self.pending) + self._inflight()
                self.incoming.clear()
                self._close()
            self._release()
            why = self._why()
            for t in leftovers:
                with contextlib.suppress(InvalidStateError):
                    t.future.set_exception(RuntimeError(f"{self.pool}: {why} before this sample was graded"))

    def _why(self) -> str:
        return f"its dispatcher crashed: {self.crashed!r}" if self.crashed else "it was closed"

    def _before_start(self) -> None:  # under lock
        pass

    def _close(self) -> None:  # under lock
        pass

    def _loop(self) -> None:
        raise NotImplementedError

    def _wake(self) -> None:  # under lock
        raise NotImplementedError

    def _inflight(self) -> list[TaskT]:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class _Dispatcher(_DispatcherBase[_Task]):
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
            starved = cpu < task.deadline / 2 and (cpu_wait is None or cpu_wait >= task.deadline / 4)
            if starved and task.retries_left > 0:
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
    conn.send((None, *_own_usage(schedstat)))  # ready
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the pool is gone
            return
        if message is None:
            return
        specs, tasks = message
        for key, (module, spec) in specs.items():
            graders[key] = _build(module, spec)
        for key, payload in tasks:
            grader = graders[key]
            if isinstance(grader, str):
                grade = Grade.error(grader)
            else:
                sample, item = pickle.loads(payload)
                grade = grader.grade(sample, item)
            conn.send((grade.to_dict(), *_own_usage(schedstat)))


def _build(module: str, spec: dict[str, Any]) -> Grader | str:
    try:
        importlib.import_module(module)  # registers the grader type (a test or plugin module, say)
        return load_grader(spec)
    except ImportError as e:
        return (
            f"grader worker could not import {module!r}, which defines grader type {spec.get('type')!r}: {e}"
        )
    except GraderSpecError as e:
        return f"grader worker could not build the grader: {e}"


def _own_usage(schedstat: int | None) -> tuple[float, float]:
    t = os.times()
    cpu_wait = int(os.pread(schedstat, 128, 0).split()[1]) / 1e9 if schedstat is not None else 0.0
    return t.user + t.system + t.children_user + t.children_system, cpu_wait


def _die_with_parent() -> None:
    """SIGKILL this worker when the fork server exits (it does when the pool's process dies)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux
