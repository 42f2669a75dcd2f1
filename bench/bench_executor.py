"""GraderPool overhead: 10,000 string_check rows graded in worker processes vs inline.

Anchor: the same grader called in a plain loop in this process (no processes, no deadlines).
Pool rows count the whole `with GraderPool(...)` block: worker start, grading, shutdown; "warm" rows
grade a second batch on a pool that is already running.
Run: python bench/bench_executor.py [--rows 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from rft.graders import Grade, load_grader
from rft.graders.executor import GraderPool

SPEC = {
    "type": "string_check",
    "name": "exact",
    "input": "{{ sample.output_text }}",
    "reference": "{{ item.answer }}",
    "operation": "eq",
}


def make_rows(n: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    samples, items = [], []
    for i in range(n):
        answer = str(rng.randint(0, 10_000))
        output = answer if rng.random() < 0.5 else str(rng.randint(0, 10_000))
        samples.append({"output_text": output})
        items.append({"id": i, "answer": answer})
    return samples, items


def best_of(repeat: int, fn: Callable[[], list[Grade]]) -> tuple[float, list[Grade]]:
    best, out = float("inf"), []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    args = ap.parse_args()
    grader = load_grader(SPEC)
    samples, items = make_rows(args.rows)

    def inline() -> list[Grade]:
        return [grader.grade(s, i) for s, i in zip(samples, items, strict=True)]

    def cold(workers: int) -> Callable[[], list[Grade]]:
        def run() -> list[Grade]:
            with GraderPool(workers=workers) as pool:
                return pool.grade(grader, samples, items)

        return run

    results: list[tuple[str, float]] = []
    anchor_s, expected = best_of(args.repeat, inline)
    results.append(("inline loop (anchor)", anchor_s))
    for workers in (1, 2):
        seconds, got = best_of(args.repeat, cold(workers))
        assert got == expected, f"pool with {workers} workers disagrees with the inline loop"
        results.append((f"GraderPool({workers}), new pool", seconds))
        with GraderPool(workers=workers) as pool:
            pool.grade(grader, samples[:100], items[:100])  # start the workers
            seconds, got = best_of(args.repeat, lambda pool=pool: pool.grade(grader, samples, items))
        assert got == expected
        results.append((f"GraderPool({workers}), warm pool", seconds))

    print(f"{args.rows} string_check rows, best of {args.repeat}")
    print(f"{'how':32} {'seconds':>8} {'rows/s':>9} {'x anchor time':>14}")
    for name, seconds in results:
        print(f"{name:32} {seconds:8.3f} {args.rows / seconds:9.0f} {seconds / anchor_s:14.1f}")


if __name__ == "__main__":
    main()
