"""EvalPlus-scale grading: a HumanEval+ row (hub layout) with many inputs, graded by humaneval-plus-v0's code
grader (one assert per input, judged outside the sandbox) vs the anchor: the row's own `test` program run
with the solution in a plain `python` subprocess (what a harness without a sandbox does; numpy needed).

Rows are synthetic (no EvalPlus copy here) at the real scale: HumanEval+ has up to ~1,000 inputs per task,
some with outputs of hundreds of elements. Prints a table and the ratio to the anchor.

    python bench/code_bench_grading.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rft.envs import load_suite
from rft.envs.code_bench import humaneval_plus_row
from rft.graders import load_grader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "data"))
from make_code_bench_fixtures import he_test  # noqa: E402

PROMPT = 'def spread(n: int, k: int) -> list:\n    """ The first k multiples of n. """\n'
SOLUTION = "    return [n * i for i in range(k)]\n"


def row(n_inputs: int, width: int) -> dict:
    inputs = [[i, width] for i in range(n_inputs)]
    results = [[n * j for j in range(width)] for n, _ in inputs]
    return {
        "task_id": f"Synthetic/{n_inputs}x{width}",
        "prompt": PROMPT,
        "canonical_solution": SOLUTION,
        "entry_point": "spread",
        "test": he_test(inputs, results),
    }


def anchor(r: dict) -> float:
    program = r["prompt"] + r["canonical_solution"] + r["test"] + f"\ncheck({r['entry_point']})\n"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(program)
    start = time.perf_counter()
    subprocess.run([sys.executable, f.name], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    suite = load_suite(ROOT / "tasks" / "humaneval-plus-v0.yaml")
    grader = load_grader(suite.grader)
    print(
        f"{'row':<22} {'tests':>6} {'outside':>7} {'rft s':>8} {'anchor s':>9} {'ratio':>6}  passed  sandbox"
    )
    for n_inputs, width in [(100, 1), (1000, 1), (1000, 200)]:
        r = row(n_inputs, width)
        item = humaneval_plus_row(r)
        ours, theirs, grade = [], [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            grade = grader.grade(r["canonical_solution"], item)
            ours.append(time.perf_counter() - start)
            theirs.append(anchor(r))
        assert grade is not None
        a, b = statistics.median(ours), statistics.median(theirs)
        outside = sum(t["judged"] == "outside" for t in grade.details["tests"])
        print(
            f"{r['task_id']:<22} {len(item['plus_tests']):>6} {outside:>7} {a:>8.3f} {b:>9.3f} {a / b:>6.2f}  "
            f"{grade.passed!s:<6}  {grade.details.get('sandbox')} "
            f"{json.dumps({k: grade.details[k] for k in ('passed_tests', 'total_tests')})}"
        )


if __name__ == "__main__":
    main()
