"""`rft grade` on 10,000 string_check rows, end to end (process start, reading, grading, writing).

Anchor: a plain Python loop over the same file (json.loads + `==` + json.dumps), measured in the same run.
Run: python bench/bench_grade.py [--rows 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = {
    "type": "string_check",
    "name": "exact",
    "input": "{{ sample.output_text }}",
    "reference": "{{ item.answer }}",
    "operation": "eq",
}


def make_rows(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            answer = str(rng.randint(0, 10_000))
            output = answer if rng.random() < 0.5 else str(rng.randint(0, 10_000))
            f.write(
                json.dumps({"item": {"id": i, "answer": answer}, "sample": {"output_text": output}}) + "\n"
            )


def anchor(rows: Path, out: Path) -> float:
    t0 = time.perf_counter()
    with open(rows) as f, open(out, "w") as g:
        for line in f:
            row = json.loads(line)
            ok = row["sample"]["output_text"] == row["item"]["answer"]
            row["grade"] = {"score": float(ok), "status": "ok", "passed": ok}
            g.write(json.dumps(row) + "\n")
    return time.perf_counter() - t0


def run_cli(rows: Path, spec: Path, out: Path, workers: int) -> tuple[float, dict]:
    rft = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
    cmd = [rft, "grade", "--grader", str(spec), "--input", str(rows), "--output", str(out),
           "--workers", str(workers), "--json"]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    return wall, json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows, spec = tmp / "rows.jsonl", tmp / "spec.json"
        make_rows(rows, args.rows)
        spec.write_text(json.dumps(SPEC))
        base = anchor(rows, tmp / "anchor.jsonl")
        results = [("plain loop (anchor)", base, None)]
        for workers in (0, 1, 2):
            wall, summary = run_cli(rows, spec, tmp / f"out{workers}.jsonl", workers)
            assert summary["rows"] == args.rows and summary["status"]["ok"] == args.rows, summary
            results.append((f"rft grade --workers {workers}", wall, summary["seconds"]))
    print(f"{args.rows} string_check rows")
    print(f"{'what':<26} {'wall s':>8} {'grading s':>10} {'rows/s':>9} {'x anchor':>9}")
    for name, wall, grading in results:
        g = f"{grading:.3f}" if grading is not None else "-"
        print(f"{name:<26} {wall:>8.3f} {g:>10} {args.rows / wall:>9.0f} {wall / base:>9.1f}")


if __name__ == "__main__":
    main()
