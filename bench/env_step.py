"""Episodes/s of a batch of envs end to end (reset with seeds, step, grade): EnvPool vs a plain loop.

Anchor: a sequential loop over 256 rft/arithmetic-v0 `SuiteEnv`s calling `reset` and `step` (grading
inline). Half the answers are the reference, half wrong. Pool rows: `EnvPool` with its own
`GraderPool(workers=2)` (started by one untimed batch), and ``executor="inline"``. With the shared data
folder ($RFT_DATA or ../shared/data), also 64 rft/humaneval-v0 episodes (reference solutions, run in the
sandbox): a loop vs EnvPool. The last line is ``episodes_per_s=`` of the best arithmetic pool row.
Run: python bench/env_step.py [--envs 256] [--code-envs 64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

# The GraderPool workers import this file as __mp_main__: rft is imported in main() only.


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, default=256, help="arithmetic episodes per batch")
    ap.add_argument("--code-envs", type=int, default=64, help="humaneval episodes per batch (0: skip)")
    ap.add_argument("--workers", type=int, default=2, help="GraderPool workers")
    ap.add_argument("--repeat", type=int, default=5, help="report the median of this many batches")
    args = ap.parse_args()

    from rft.envs import EnvPool, SuiteEnv, data_dir, suite_path

    def answers(infos: list[dict], code: bool) -> list[str]:
        if code:
            return [str(i["reference"]) for i in infos]
        return [
            f"\\boxed{{{i['reference']}}}" if n % 2 == 0 else "\\boxed{-99991}" for n, i in enumerate(infos)
        ]

    Mode = tuple[Callable[[int], list[dict]], Callable[[list[dict]], list]]  # reset(seed), step(infos)

    def loop(env_id: str, n: int, code: bool) -> Mode:
        envs = [SuiteEnv(suite_path(env_id)) for _ in range(n)]

        def reset(seed: int) -> list[dict]:
            return [env.reset(seed=seed + i)[1] for i, env in enumerate(envs)]

        def step(infos: list[dict]) -> list:
            return [env.step(a)[1] for env, a in zip(envs, answers(infos, code), strict=True)]

        return reset, step

    def pooled(pool: EnvPool, code: bool) -> Mode:
        return lambda seed: pool.reset(seed=seed)[1], lambda infos: pool.step(answers(infos, code)).rewards

    def measure(mode: Mode, n: int, repeat: int) -> tuple[float, float, list]:
        """Median seconds of a batch and of its reset part, and the rewards of every batch."""
        reset, step = mode
        step(reset(10**6))  # warm-up: the suite's rows, grader workers, caches
        total, resets, rewards = [], [], []
        for r in range(repeat):
            t0 = time.perf_counter()
            infos = reset(r * n)
            t1 = time.perf_counter()
            rewards.append(step(infos))
            total.append(time.perf_counter() - t0)
            resets.append(t1 - t0)
        return statistics.median(total), statistics.median(resets), rewards

    rows: list[tuple[str, int, float, float, float]] = []  # (mode, episodes, seconds, reset s, anchor s)
    best = 0.0
    n = args.envs
    anchor, reset_s, expected = measure(loop("rft/arithmetic-v0", n, False), n, args.repeat)
    rows.append(("arithmetic: loop of SuiteEnv.step (anchor)", n, anchor, reset_s, anchor))
    for name, kw in [(f"arithmetic: EnvPool, GraderPool({args.workers})", {"workers": args.workers}),
                     ("arithmetic: EnvPool, inline", {"executor": "inline"})]:  # fmt: skip
        with EnvPool("rft/arithmetic-v0", n, **kw) as pool:
            seconds, reset_s, got = measure(pooled(pool, False), n, args.repeat)
        assert got == expected, f"{name} disagrees with the loop"
        rows.append((name, n, seconds, reset_s, anchor))
        best = max(best, n / seconds)

    m = args.code_envs
    if m and data_dir() is not None and (data_dir() / "humaneval.jsonl").is_file():
        repeat = max(1, args.repeat // 2)
        code_anchor, reset_s, expected = measure(loop("rft/humaneval-v0", m, True), m, repeat)
        rows.append(("humaneval: loop of SuiteEnv.step (anchor)", m, code_anchor, reset_s, code_anchor))
        with EnvPool("rft/humaneval-v0", m, workers=args.workers) as pool:
            seconds, reset_s, got = measure(pooled(pool, True), m, repeat)
        for mode, batches in (("loop", expected), ("EnvPool", got)):  # a grade may time out under load
            misses = sum(r != 1.0 for b in batches for r in b)
            if misses:
                print(f"humaneval {mode}: {misses} reference solutions not scored 1.0")
        rows.append((f"humaneval: EnvPool, GraderPool({args.workers})", m, seconds, reset_s, code_anchor))
    elif m:
        print("humaneval rows skipped: no humaneval.jsonl in $RFT_DATA or ../shared/data")

    print(
        f"median of {args.repeat} batches (humaneval: {max(1, args.repeat // 2)}); ratio = anchor time / time"
    )
    print(f"{'mode':46} {'episodes':>8} {'episodes/s':>11} {'ms/batch':>9} {'of it reset':>12} {'ratio':>6}")
    for name, count, seconds, reset_s, anchor_s in rows:
        print(
            f"{name:46} {count:8d} {count / seconds:11.0f} {seconds * 1e3:9.1f} {reset_s * 1e3:12.1f}"
            f" {anchor_s / seconds:6.2f}"
        )
    print(f"episodes_per_s={best:.1f}")


if __name__ == "__main__":
    main()
