"""`EnvPool`: step many `SuiteEnv`s at once, grading in a `GradingPool` while the caller does other work.

    with EnvPool("rft/arithmetic-v0", 256) as pool:
        obs, infos = pool.reset(seed=0)  # env i gets seed 0 + i
        pool.step_async(completions)  # each env's begin_step; grades and tool runs start
        ...  # generate the next batch meanwhile
        out = pool.step_wait()  # each env's finish_step, in this thread

An action of None leaves that env alone (its episode ended, or it waits); trainers restart episodes
themselves with `reset_at`. Not a gymnasium `VectorEnv`: its autoreset steps every env on every call,
and its shared-memory `AsyncVectorEnv` silently corrupts `Text` observations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rft.graders.executor import GraderPool, GradingPool

from .env import SuiteEnv
from .episode import start_job
from .registry import get_suite
from .suite import Suite

__all__ = ["EnvPool", "PoolStep"]


@dataclass(frozen=True)
class PoolStep:
    """One pool step, as lists aligned with the envs; None where an env did not step."""

    obs: list[str | None]
    rewards: list[float | None]
    terminated: list[bool | None]
    truncated: list[bool | None]
    infos: list[dict[str, Any] | None]


class EnvPool:
    """`num_envs` envs stepped together; grades run in a `GradingPool`, tool calls in threads.

    `env`: a registered id (``"rft/arithmetic-v0"``), a suite file or `Suite` (then `num_envs` copies on
    `split`), or a list of `SuiteEnv` (suites may differ). `executor`: None makes a `GraderPool(workers)`
    that `close` closes; a `GradingPool` given (a `GraderPool`, a `RayGraderPool`) is shared and left open;
    ``"inline"`` grades in `step_async`'s thread, at once (cheap graders, debugging; no deadlines). Tool calls run in
    `tool_threads` threads.
    """

    def __init__(
        self,
        env: str | Path | Suite | Sequence[SuiteEnv],
        num_envs: int | None = None,
        *,
        split: str = "train",
        executor: GradingPool | Literal["inline"] | None = None,
        workers: int | None = None,
        tool_threads: int = 4,
    ) -> None:
        self.envs: list[SuiteEnv] = _make_envs(env, num_envs, split)
        if workers is not None and executor is not None:
            raise ValueError("workers sizes the pool's own GraderPool; with executor= given, leave it out")
        if (
            executor is not None
            and executor != "inline"
            and (isinstance(executor, type) or not isinstance(executor, GradingPool))
        ):
            raise TypeError(
                f"executor must be a GradingPool instance (GraderPool(), RayGraderPool()), 'inline' or None, "
                f"got {executor!r}"
            )
        self._own_executor = executor is None
        self._executor: GradingPool | Literal["inline"] = (
            GraderPool(workers=workers) if executor is None else executor
        )
        self._tools = ThreadPoolExecutor(tool_threads, thread_name_prefix="rft-tool")
        # The step in flight: env index -> its job's future.
        self._pending: dict[int, Future[Any]] | None = None
        self._closed = False

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    def reset(
        self,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Reset every env. An int `seed` s seeds env i with ``s + i``; a list gives one seed per env.
        `options` is one dict for all envs or a list of one per env (see `SuiteEnv.reset`)."""
        self._check_open()
        if self._pending is not None:
            raise RuntimeError("a step is in flight: call step_wait() before reset()")
        seeds = _per_env("seed", seed, self.num_envs, lambda s, i: s + i)
        opts = _per_env("options", options, self.num_envs, lambda o, _: o)
        out = [env.reset(seed=s, options=o) for env, s, o in zip(self.envs, seeds, opts, strict=True)]
        return [o for o, _ in out], [i for _, i in out]

    def reset_at(
        self, i: int, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Reset env `i` alone (e.g. after its episode ended), also while other envs' steps are in flight."""
        self._check_open()
        if self._pending is not None and i in self._pending:
            raise RuntimeError(f"env {i} has a step in flight: call step_wait() before reset_at({i})")
        return self.envs[i].reset(seed=seed, options=options)

    def step_async(self, actions: Sequence[str | None]) -> None:
        """Begin a step of every env whose action is not None and start its grade or tool run; returns at
        once. Nothing begins when an env is not ready (finished, or never reset)."""
        self._check_open()
        if self._pending is not None:
            raise RuntimeError("step_async() was called twice: call step_wait() for the first step's results")
        if len(actions) != self.num_envs:
            raise ValueError(
                f"actions ({len(actions)}) must have one entry per env ({self.num_envs}); None skips an env"
            )
        for i, a in enumerate(actions):
            if a is not None and not isinstance(a, str):
                raise TypeError(
                    f"actions[{i}] must be the completion text (str) or None, got {type(a).__name__}"
                )
        for i, action in enumerate(actions):
            if action is not None and self.envs[i].done:
                raise RuntimeError(f"env {i}: the episode has ended or was never reset: reset_at({i}) first")
        grades = None if self._executor == "inline" else self._executor
        self._pending = {
            i: start_job(self.envs[i].begin_step(a), grades, self._tools)
            for i, a in enumerate(actions)
            if a is not None
        }

    def step_wait(self, timeout: float | None = None) -> PoolStep:
        """Wait for the step begun by `step_async` and finish it in every env that stepped.
        After `timeout` seconds (grades and tool runs only), TimeoutError; the step stays in flight."""
        self._check_open()
        if self._pending is None:
            raise RuntimeError("no step is in flight: call step_async(actions) first")
        futures = list(self._pending.values())
        not_done = wait_all(futures, timeout).not_done
        if not_done:
            raise TimeoutError(f"{len(not_done)} of {len(futures)} jobs still running after {timeout} s")
        pending, self._pending = self._pending, None
        n = self.num_envs
        out = PoolStep([None] * n, [None] * n, [None] * n, [None] * n, [None] * n)
        for i, job in pending.items():
            try:
                result = job.result()
            except Exception as e:  # not a grader failure (that is a Grade): the pool was closed, say
                raise RuntimeError(f"env {i}: its step's job failed: {e!r}; reset_at({i}) restarts it") from e
            obs, reward, terminated, truncated, info = self.envs[i].finish_step(result)
            out.obs[i], out.rewards[i], out.infos[i] = obs, reward, info
            out.terminated[i], out.truncated[i] = terminated, truncated
        return out

    def step(self, actions: Sequence[str | None]) -> PoolStep:
        self.step_async(actions)
        return self.step_wait()

    def close(self) -> None:
        """Stop the tool threads and, if the pool made it, the GraderPool (a shared one stays open)."""
        if self._closed:
            return
        self._closed = True
        self._tools.shutdown(wait=True, cancel_futures=True)
        if self._own_executor and isinstance(self._executor, GradingPool):
            self._executor.close(cancel=True)
        for env in self.envs:
            env.close()

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this EnvPool is closed; make a new one")


def _make_envs(
    env: str | Path | Suite | Sequence[SuiteEnv], num_envs: int | None, split: str
) -> list[SuiteEnv]:
    if isinstance(env, str | Path | Suite):
        if num_envs is None or num_envs < 1:
            raise ValueError(f"num_envs ({num_envs}) must be >= 1: how many copies of the suite's env to run")
        suite = get_suite(env)
        return [SuiteEnv(suite, split) for _ in range(num_envs)]
    envs = list(env)
    if not envs or not all(isinstance(e, SuiteEnv) for e in envs):
        raise TypeError("env must be an env id, a suite file or Suite, or a non-empty list of SuiteEnv")
    if num_envs is not None and num_envs != len(envs):
        raise ValueError(
            f"num_envs ({num_envs}) differs from the number of envs given ({len(envs)}); leave it out"
        )
    return envs


def _per_env(name: str, value: Any, n: int, spread: Callable[[Any, int], Any]) -> list[Any]:
    """None -> n Nones; a sequence (not a dict) -> checked to have n entries; else `spread(value, i)`."""
    if value is None:
        return [None] * n
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries; give one per env ({n}), or a single value")
        return list(value)
    return [spread(value, i) for i in range(n)]
