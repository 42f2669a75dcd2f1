"""rft's `math` grader against Math-Verify 0.9.0 on labelled MATH answer pairs, one process, same run.

Anchor: Math-Verify (``pip install math-verify==0.9.0``; defaults, the gold wrapped in ``$...$``), timed
pair by pair in this process, in its main thread. rft is timed the same way through `MathGrader.grade`,
twice: with its caches cleared before every pair (each pair parsed from scratch) and in one pass over the
file from empty caches (the gold of a problem is parsed once for its several samples, as in training).
Both are warmed up on a few pairs outside the file first, so neither pays its imports in the timings.
Prints pairs/s, median, p99 and max per pair, the ratio to Math-Verify, and each grader's false
negatives/positives on the file (rows whose kind starts with ``policy_`` are counted apart); for rft also
how many pairs needed its second parser (latex2sympy2_extended, for notation its own parser does not
read) and the pairs per second on those alone. One table per input file; by default both dev files;
``--conformance`` adds Math-Verify's and ten other checkers' test cases (tests/data, judged against rft's
policy verdict where the port records a documented difference; those rows are counted apart).

Run: python bench/math_grading.py [--input FILE ...] [--conformance] [--limit N] [--misses]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TESTS_DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
DEFAULT_INPUTS = [DATA / "math_pairs_dev.jsonl", DATA / "math_pairs_dev2.jsonl"]
CONFORMANCE = [TESTS_DATA / "math_verify_cases.jsonl", TESTS_DATA / "peer_checker_cases.jsonl"]
WARMUP = [("\\frac{1}{2}", "The answer is $0.5$."), ("x^2+1", "\\boxed{1+x^2}"), ("\\sqrt{2}", "\\boxed{2^{1/2}}"),
          ("e^{2}", "\\boxed{e^2}"), ("(1,2)", "$(1, 2)$"), ("\\sin x", "$\\sin(x)$"), ("3", "\\boxed{4}"),
          ("6", "\\boxed{\\gcd(12, 18)}"), ("x < 1", "$-x > -1$")]  # fmt: skip  (the last two: second parser, solveset)


Graded = tuple[bool, bool]  # (passed, the second parser read one side)


def rft_grader(clear_each: bool) -> Callable[[str, str], Graded]:
    from rft.graders import load_grader
    from rft.graders.math import clear_caches as clear

    g = load_grader({"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"})

    def grade(gold: str, text: str) -> Graded:
        if clear_each:
            clear()
        result = g.grade({"output_text": text}, {"answer": gold})
        kinds = (result.details.get("gold", {}).get("kind"), result.details.get("pred", {}).get("kind"))
        return result.passed, "sympy" in kinds

    for gold, text in WARMUP:
        grade(gold, text)
    clear()
    return grade


def math_verify_grader() -> Callable[[str, str], Graded]:
    from math_verify import parse, verify

    def grade(gold: str, text: str) -> Graded:
        try:
            return bool(verify(parse(f"${gold}$"), parse(text))), False
        except Exception:  # noqa: BLE001  (a crash of the anchor counts as a fail, as in its own harness)
            return False, False

    for gold, text in WARMUP:
        grade(gold, text)
    return grade


def run(grade: Callable[[str, str], Graded], rows: list[dict[str, Any]]) -> dict[str, Any]:
    times, passed, second = [], [], []
    for r in rows:
        t0 = time.perf_counter()
        ok, used_second = grade(r["item"]["answer"], r["sample"]["output_text"])
        times.append(time.perf_counter() - t0)
        passed.append(ok)
        second.append(used_second)
    ordered = sorted(times)
    core = [(r, p) for r, p in zip(rows, passed, strict=True) if not _policy_row(r)]
    policy = [(r, p) for r, p in zip(rows, passed, strict=True) if _policy_row(r)]
    pos = sum(1 for r, _ in core if r["expected"])
    neg = len(core) - pos
    misses = [r for r, p in core if r["expected"] != p]
    second_times = [t for t, s in zip(times, second, strict=True) if s]
    return {
        "pairs_per_s": len(rows) / sum(times),
        "median_ms": 1e3 * statistics.median(times),
        "p99_ms": 1e3 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max_ms": 1e3 * ordered[-1],
        "fn": sum(1 for r in misses if r["expected"]),
        "fn_rate": sum(1 for r in misses if r["expected"]) / pos if pos else 0.0,
        "fp": sum(1 for r in misses if not r["expected"]),
        "fp_rate": sum(1 for r in misses if not r["expected"]) / neg if neg else 0.0,
        "policy_passed": f"{sum(p for _, p in policy)}/{len(policy)}",
        "second_parser_pairs": len(second_times),
        "second_parser_pairs_per_s": len(second_times) / sum(second_times) if second_times else None,
        "misses": [{"id": r.get("id"), "kind": r["kind"], "expected": r["expected"]} for r in misses],
    }


def _policy_row(r: dict[str, Any]) -> bool:
    """A row where reasonable graders differ (``policy_*`` kinds, conformance rows marked ``differs``)."""
    return r["kind"].startswith("policy_") or r.get("policy") == "differs"


def _load_rows(path: Path, limit: int | None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:  # conformance data: rft's policy verdict where its port records one
        if "rft_expected" in r:
            r["expected"] = r["rft_expected"]
    return [r for r in rows if r["expected"] is not None][:limit]


def table(path: Path, limit: int | None, show_misses: bool) -> dict[str, dict[str, Any]]:
    rows = _load_rows(path, limit)
    load = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    results["math-verify 0.9.0 (anchor)"] = run(math_verify_grader(), rows)
    results["rft math, cold caches per pair"] = run(rft_grader(clear_each=True), rows)
    results["rft math, one pass, caches on"] = run(rft_grader(clear_each=False), rows)
    base = results["math-verify 0.9.0 (anchor)"]["pairs_per_s"]
    print(f"\n{len(rows)} pairs from {path.name}; load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"{'grader':<32} {'pairs/s':>9} {'median ms':>10} {'p99 ms':>8} {'max ms':>8} {'x anchor':>9}"
          f" {'FN (rate)':>14} {'FP':>4} {'policy':>8} {'2nd parser: pairs, pairs/s':>27}")  # fmt: skip
    for name, r in results.items():
        second = (
            ""
            if name.startswith("math-verify")
            else (f"{r['second_parser_pairs']:>8}, {r['second_parser_pairs_per_s'] or 0:>6.0f}")
        )
        print(f"{name:<32} {r['pairs_per_s']:>9.0f} {r['median_ms']:>10.3f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.1f}"
              f" {r['pairs_per_s'] / base:>9.1f} {r['fn']:>6} ({100 * r['fn_rate']:.2f}%) {r['fp']:>4}"
              f" {r['policy_passed']:>8} {second:>27}")  # fmt: skip
        if show_misses and r["misses"] and not name.startswith("math-verify"):
            print(
                "   misses:",
                ", ".join(f"{m['id']} ({m['kind']}, expected {m['expected']})" for m in r["misses"]),
            )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, nargs="+", default=DEFAULT_INPUTS)
    ap.add_argument(
        "--conformance",
        action="store_true",
        help="also Math-Verify's and other checkers' test cases (tests/data)",
    )
    ap.add_argument("--limit", type=int, default=None, help="grade only the first N pairs of each file")
    ap.add_argument("--misses", action="store_true", help="list the ids of the rows each grader gets wrong")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = ap.parse_args()
    if args.conformance:
        args.input = [*args.input, *CONFORMANCE]
    for path in args.input:
        if not path.is_file():
            raise SystemExit(f"{path} not found: the shared data lives in ../shared/data beside the checkout")
    try:
        import math_verify  # noqa: F401
    except ImportError:
        raise SystemExit(
            "Math-Verify is not installed: pip install math-verify==0.9.0 (or '.[bench]')"
        ) from None
    results = {path.name: table(path, args.limit, args.misses) for path in args.input}
    print("\nFN/FP over rows whose kind does not start with policy_; policy: policy_* rows passed;")
    print(
        "2nd parser: pairs where latex2sympy2_extended read the gold or the answer, and pairs/s on those alone."
    )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
