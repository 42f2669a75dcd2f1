"""Episodes against a served model: `sample_served` plays `n` episodes of each problem with up to
`concurrency` requests in flight, and grades them as they finish.

Text goes in and out (`rft.engines.served`): no token ids, so the trajectories carry messages, grades and
rewards only. The environments, their grading and their tool runs stay in the calling thread (a grader
pool or a tool thread does the work); only the requests run in the thread pool. A request that fails for
good (`RequestFailed` after the client's retries) ends its episode with an ``error`` grade whose details
say ``source: request``: a failed sample that is counted and reported, never a wrong answer. A refusal that
every request would share (HTTP 401, 403, 404) stops the run instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

from rft.engines import Sampling
from rft.engines.api import RequestFailed
from rft.engines.served import Reply, ServedModel
from rft.envs import SuiteEnv
from rft.envs.episode import start_job
from rft.graders import Grade
from rft.graders.executor import GradingPool
from rft.rollout import Trajectory

__all__ = ["sample_served", "request_failures", "REQUEST_ERROR"]

REQUEST_ERROR = "request"  # Grade.details["source"] of a sample whose request failed


@dataclass
class _Episode:
    index: int  # problem * n + sample
    env: SuiteEnv
    traj: Trajectory


def _seed(base: int | None, index: int, turn: int) -> int | None:
    """A seed per episode and turn, so that a problem's samples differ and a rerun repeats them."""
    return None if base is None else (base * 1_000_003 + index * 7919 + turn) % 2**31


def sample_served(
    model: ServedModel,
    make_env: Callable[[], SuiteEnv],
    split: str,
    n_problems: int,
    n: int,
    sampling: Sampling,
    *,
    concurrency: int = 8,
    executor: GradingPool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Trajectory]:
    """`n` graded episodes of each of the first `n_problems` problems of `split`, problem by problem (sample
    `j` of problem `i` at ``i * n + j``). One request per model turn, each with its own seed (see `_seed`);
    `progress(problems done, n_problems)` after each problem whose samples have all finished."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    total = n_problems * n
    trajs: list[Trajectory | None] = [None] * total
    left = [n] * n_problems
    done_problems = 0
    free: list[SuiteEnv] = []
    pending = iter(range(total))
    running: dict[Future[Any], tuple[_Episode, str]] = {}  # a request's or a grade/tool job's future
    requests = ThreadPoolExecutor(concurrency, thread_name_prefix="rft-request")
    tools = ThreadPoolExecutor(4, thread_name_prefix="rft-tool")

    def ask(ep: _Episode) -> None:
        s = replace(sampling, n=1, seed=_seed(sampling.seed, ep.index, ep.traj.turns))
        running[requests.submit(model.reply, ep.env.messages, s)] = (ep, "request")

    def start() -> None:
        k = next(pending, None)
        if k is None:
            return
        env = free.pop() if free else make_env()
        if env.episode.type == "tools":  # the request carries messages only: no tools, no tool_calls parsing
            raise ValueError(
                f"suite {env.suite.id} has tools episodes, which served models do not run yet (the request "
                "would not declare the tools); evaluate it with a local engine (rft eval --engine hf or vllm)"
            )
        _, info = env.reset(options={"split": split, "index": k // n})
        msgs = env.messages
        traj = Trajectory(k // n, [], [], 0, messages=msgs, prompt_messages=len(msgs), info=info)
        trajs[k] = traj
        ask(_Episode(k, env, traj))

    def finish(ep: _Episode) -> None:
        nonlocal done_problems
        free.append(ep.env)
        left[ep.index // n] -= 1
        if left[ep.index // n] == 0:
            done_problems += 1
            if progress is not None:
                progress(done_problems, n_problems)
        start()

    try:
        for _ in range(min(concurrency, total)):
            start()
        while running:
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                ep, kind = running.pop(fut)
                t = ep.traj
                if kind == "request":
                    try:
                        [reply] = fut.result()
                    except RequestFailed as e:
                        if e.fatal:
                            raise
                        _failed(t, e, ep.env.messages)
                        finish(ep)
                        continue
                    _took_turn(t, reply)
                    running[start_job(ep.env.begin_step(reply.text), executor, tools)] = (ep, "step")
                    continue
                _, reward, term, trunc, info = ep.env.finish_step(fut.result())
                t.info, t.messages = info, ep.env.messages
                if "grade" in info:
                    t.status, t.failed = info["grade"]["status"], info["grade_failed"]
                if term or trunc:
                    t.reward = float(reward)
                    finish(ep)
                else:
                    ask(ep)
    finally:
        requests.shutdown(wait=False, cancel_futures=True)
        tools.shutdown(wait=True, cancel_futures=True)
    return [t for t in trajs if t is not None]


def _took_turn(t: Trajectory, reply: Reply) -> None:
    t.turns += 1
    t.overlong |= reply.finish_reason == "length"


def _failed(t: Trajectory, e: RequestFailed, messages: Sequence[dict[str, str]]) -> None:
    """End an episode whose request failed for good: an ``error`` grade from the request, reward 0, masked."""
    grade = Grade.error(
        f"request failed: {e}", source=REQUEST_ERROR, attempts=e.attempts, http_status=e.status
    )
    t.info = {**t.info, "grade": grade.to_dict(), "grade_failed": True}
    t.status, t.failed, t.reward, t.messages = "error", True, 0.0, [dict(m) for m in messages]


def request_failures(rows: Sequence[dict[str, Any]], show: int = 3) -> dict[str, Any]:
    """How many sample rows' requests failed for good, of how many, and the first `show` distinct errors."""
    errors: list[str] = []
    failed = 0
    for row in rows:
        details = (row.get("grade") or {}).get("details") or {}
        if details.get("source") == REQUEST_ERROR:
            failed += 1
            if details.get("error") not in errors and len(errors) < show:
                errors.append(str(details.get("error")))
    return {"failed": failed, "total": len(rows), "errors": errors}
