"""Ray grading vs the local pool: 10,000 math pairs graded by GraderPool(2) and by RayGraderPool.

Anchor: `GraderPool(workers=2)` on the same pairs, run first, before Ray starts. The Ray pool runs on a
local cluster started here (``ray.init(num_cpus=N)``, N = the pool's workers). Both pools are warmed on
other pairs first (worker start-up excluded; the math grader's per-process cache stays cold for the
measured pairs). ``grades_equal`` compares status, score and passed for every pair.
Needs Ray: pip install 'rft[ray]'.
Run: python bench/ray_grading.py [--pairs 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math_pairs_dev.jsonl"
SPEC = {"type": "math", "name": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"}
WARM = 200  # pairs graded before timing, taken from the end of the file


def load_pairs(path: Path, n: int) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if len(rows) < n + WARM:
        raise SystemExit(f"{path} has {len(rows)} pairs; --pairs {n} needs {n + WARM} (with the warm-up)")
    timed, warm = rows[:n], rows[-WARM:]
    return (
        [r["sample"] for r in timed],
        [r["item"] for r in timed],
        [r["sample"] for r in warm],
        [r["item"] for r in warm],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()

    import ray

    from rft.graders import load_grader
    from rft.graders.executor import GraderPool
    from rft.graders.ray_pool import RayGraderPool

    grader = load_grader(SPEC)
    samples, items, warm_samples, warm_items = load_pairs(args.data, args.pairs)

    with GraderPool(workers=args.workers) as pool:
        pool.grade(grader, warm_samples, warm_items)
        t0 = time.perf_counter()
        anchor = pool.grade(grader, samples, items)
        anchor_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="ERROR")
    init_s = time.perf_counter() - t0
    try:
        with RayGraderPool(workers=args.workers) as pool:
            t0 = time.perf_counter()
            pool.grade(grader, warm_samples, warm_items)
            warm_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            got = pool.grade(grader, samples, items)
            ray_s = time.perf_counter() - t0
    finally:
        ray.shutdown()

    def key(g):  # what must match
        return (g.status, g.score, g.passed)

    equal = [key(a) == key(b) for a, b in zip(anchor, got, strict=True)]
    same_grade = sum(a == b for a, b in zip(anchor, got, strict=True))
    statuses = {s: sum(g.status == s for g in anchor) for s in ("ok", "no_answer", "timeout", "error")}

    n = args.pairs
    print(f"{n} math pairs ({args.data.name}), {args.workers} workers each; anchor statuses: {statuses}")
    print(f"{'how':40} {'seconds':>8} {'pairs/s':>9} {'x anchor':>9}")
    print(f"{f'GraderPool({args.workers}) (anchor)':40} {anchor_s:8.2f} {n / anchor_s:9.0f} {1.0:9.2f}")
    label = f"RayGraderPool({args.workers}), local cluster"
    print(f"{label:40} {ray_s:8.2f} {n / ray_s:9.0f} {(n / ray_s) / (n / anchor_s):9.2f}")
    print(f"(ray.init {init_s:.1f}s; Ray warm-up of {WARM} pairs incl. worker start {warm_s:.1f}s)")
    print(f"identical Grade objects (extracted, details too): {same_grade}/{n}")
    print(f"grades_equal={all(equal)}")
    for i in [i for i, ok in enumerate(equal) if not ok][:10]:
        print(
            f"  differs at {i}: local {key(anchor[i])} {anchor[i].details} / ray {key(got[i])} {got[i].details}"
        )


if __name__ == "__main__":
    main()
