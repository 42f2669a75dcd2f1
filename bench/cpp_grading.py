"""C++ grading throughput: the `code` grader with ``language: cpp`` (g++ compiles each program once in the
sandbox, then each case runs the binary) vs the same grader on Python stdin/stdout programs (the anchor),
in the same run, on the same cases.

Each program is an A+B solution made distinct (its own constant in a comment, so that nothing could be
reused between programs), graded on `--cases` stdin/stdout cases through a `GraderPool` of `--workers`
worker processes (each with its own sandbox, started before the clock). Rows: Python cases (anchor), C++
(compile + cases), and the C++ compile alone (from the grades' details). Each row is the best of
`--repeat` passes, interleaved so that all see the same machine. The machine is shared: expect noise.
Run: python bench/cpp_grading.py [--programs 16] [--cases 5] [--workers 2] [--repeat 2] [--bwrap]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from rft.graders import load_grader
from rft.graders.executor import GraderPool

PYTHON = "# program {k}\na, b = map(int, input().split())\nprint(a + b)\n"
CPP = (
    "```cpp\n// program {k}\n#include <iostream>\n"
    "int main() {{ long long a, b; std::cin >> a >> b; std::cout << a + b << '\\n'; }}\n```\n"
)


def one_pass(
    pool: GraderPool, grader: Any, texts: list[str], item: dict[str, Any]
) -> tuple[float, list[Any]]:
    t0 = time.perf_counter()
    grades = pool.grade(grader, [{"output_text": t} for t in texts], [item] * len(texts))
    dt = time.perf_counter() - t0
    bad = [g for g in grades if not g.passed]
    if bad:
        raise SystemExit(f"{len(bad)} of {len(grades)} programs failed, first: {bad[0].details}")
    return dt, grades


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=16)
    ap.add_argument("--cases", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="report the best of this many passes")
    ap.add_argument("--bwrap", action="store_true", help="also the bwrap backend")
    args = ap.parse_args()
    item = {"cases": [{"input": f"{i} {2 * i + 1}\n", "output": f"{3 * i + 1}\n"} for i in range(args.cases)]}
    backends = ["local", *(["bwrap"] if args.bwrap else [])]
    spec = {"type": "code", "cases": "{{ item.cases }}", "run_timeout": 5}
    rows: dict[str, tuple[Any, list[str]]] = {}
    for b in backends:
        rows[f"python/{b}"] = (
            load_grader({**spec, "sandbox": b}),
            [PYTHON.format(k=k) for k in range(args.programs)],
        )
        rows[f"cpp/{b}"] = (
            load_grader({**spec, "sandbox": b, "language": "cpp"}),
            [CPP.format(k=k) for k in range(args.programs)],
        )
    print(f"programs: {args.programs} x {args.cases} cases; workers: {args.workers}; load: {os.getloadavg()}")
    times: dict[str, list[float]] = {name: [] for name in rows}
    compile_s: dict[str, list[float]] = {name: [] for name in rows if name.startswith("cpp")}
    with GraderPool(workers=args.workers, timeout=300) as pool:
        for grader, texts in rows.values():  # start the workers and their sandboxes
            one_pass(pool, grader, texts[: args.workers], item)
        for r in range(args.repeat):
            for name, (grader, texts) in rows.items():
                fresh = [t.replace("program ", f"program {r}.") for t in texts]  # nothing seen before
                dt, grades = one_pass(pool, grader, fresh, item)
                times[name].append(dt)
                if name in compile_s:
                    compile_s[name] += [g.details["compile"]["wall_s"] for g in grades]
    print(f"load after: {os.getloadavg()}\n")
    print(f"| {'row':<44} | programs/s | cases/s | passes (s)   |")
    print(f"|{'-' * 46}|------------|---------|--------------|")
    rate = {}
    for name in rows:
        best = min(times[name])
        rate[name] = args.programs / best
        lang, backend = name.split("/")
        label = f"{'Python' if lang == 'python' else 'C++ (compile + cases)'}, {backend} sandbox"
        passes = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"| {label:<44} | {rate[name]:>10.2f} | {rate[name] * args.cases:>7.1f} | {passes:<12} |")
    print()
    for name, walls in compile_s.items():
        b = name.split("/")[1]
        print(
            f"C++ compile alone ({b}): median {statistics.median(walls):.3f} s, max {max(walls):.3f} s per program"
        )
    for b in backends:
        print(f"ratio C++ / Python programs per second ({b}): {rate[f'cpp/{b}'] / rate[f'python/{b}']:.3f}x")


if __name__ == "__main__":
    main()
