"""What every grading pool shares: the public `GradingPool` interface, and the parts both pools build on.

`GradingPool` is what callers use of a pool (`rft.graders.executor.GraderPool`, worker processes on this
machine; `rft.graders.ray_pool.RayGraderPool`, a Ray cluster): type an executor argument with it. `PoolBase`
implements it over a pool's dispatcher, `DispatcherBase` is the front of that dispatcher (a thread that
hands tasks to workers), and `build_grader` is what a worker does with a grader spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import pickle
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError, as_completed
from concurrent.futures import wait as wait_all
from typing import Any, Generic, Protocol, Self, TypeVar, runtime_checkable

from .base import Grader, GraderSpecError, as_sample, load_grader
from .grade import Grade

__all__ = [
    "GradingPool",
    "PoolBase",
    "DispatcherBase",
    "build_grader",
    "check_items",
    "check_pool_options",
]


@runtime_checkable
class GradingPool(Protocol):
    """A pool that grades samples off the caller's thread, with a hard deadline per sample: `GraderPool`
    and `RayGraderPool`. A failure (timeout, crash, error) is a `Grade`, never an exception."""

    def submit(
        self, grader: Grader, sample: dict[str, Any] | str, item: dict[str, Any] | None = None
    ) -> Future[Grade]:
        """Queue one sample; the future's result is its `Grade`."""
        ...

    def grade(
        self,
        grader: Grader,
        samples: Sequence[dict[str, Any] | str],
        items: Sequence[dict[str, Any] | None] | None = None,
        on_result: Callable[[int, Grade], None] | None = None,
    ) -> list[Grade]:
        """Grade a batch; results in input order; `on_result(index, grade)` as each grade arrives."""
        ...

    async def agrade(
        self,
        grader: Grader,
        samples: Sequence[dict[str, Any] | str],
        items: Sequence[dict[str, Any] | None] | None = None,
    ) -> list[Grade]:
        """`grade` for asyncio: awaits the batch without blocking the event loop."""
        ...

    def close(self, cancel: bool = False) -> None:
        """Finish the submitted samples and stop; ``cancel=True`` stops now (unfinished futures raise)."""
        ...


def check_items(samples: Sequence[Any], items: Sequence[Any] | None) -> Sequence[Any]:
    """`items` checked to pair with `samples` one to one; None -> a None item for each sample."""
    if items is None:
        return [None] * len(samples)
    if len(items) != len(samples):
        raise ValueError(f"items ({len(items)}) must match samples ({len(samples)}) one to one, or be None")
    return items


def check_pool_options(
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


class PoolBase:
    """`GradingPool` over a pool's dispatcher: submit, grade (in order, with a callback per grade), agrade
    (asyncio), a context manager, and grader spec keys. A pool sets `_dispatcher`
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
        futures = self._submit(grader, samples, check_items(samples, items))
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
        futures = self._submit(grader, samples, check_items(samples, items))
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


class _Queued(Protocol):
    future: Future[Grade]


TaskT = TypeVar("TaskT", bound=_Queued)  # a pool's task type: what it queues carries its future


class DispatcherBase(Generic[TaskT]):
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


def build_grader(module: str, spec: dict[str, Any]) -> Grader | str:
    """In a worker: import `module` (which registers the grader's type), then build the grader from `spec`;
    a string says why it could not be built (the worker grades its samples ``error`` with it)."""
    try:
        importlib.import_module(module)  # registers the grader type (a test or plugin module, say)
        return load_grader(spec)
    except ImportError as e:
        return (
            f"grader worker could not import {module!r}, which defines grader type {spec.get('type')!r}: {e}"
        )
    except GraderSpecError as e:
        return f"grader worker could not build the grader: {e}"
