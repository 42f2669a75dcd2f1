"""`rft grade` end to end (process start, reading, grading, writing): rows/s and peak memory.

Peak memory is the largest RSS (and PSS) summed over the `rft grade` process and all its descendants (the
grading workers count), sampled every 50 ms with psutil. Rows are math answers (about 210 bytes a row, like the
issue's 200,000-row, 42 MB file) or string_check rows.
Anchor: a plain Python loop over the same file (json.loads + `==` + json.dumps), measured in the same run.
Run: python bench/bench_grade.py [--rows 200000] [--kind math|string] [--workers 2] [--no-anchor] [--eval]
(`--eval` also times `rft eval --samples` on the last run's graded rows, one problem per row.)
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

import psutil

SPECS = {
    "string": {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
               "reference": "{{ item.answer }}", "operation": "eq"},
    "math": {"type": "math", "name": "math"},
}  # fmt: skip
FILLER = "Let me work through this step by step. First I add the tens, then the units, and check the sum."


def make_rows(path: Path, n: int, kind: str, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            answer = str(rng.randint(0, 10_000))
            got = answer if rng.random() < 0.5 else str(rng.randint(0, 10_000))
            output = got if kind == "string" else f"{FILLER} So the answer is \\boxed{{{got}}}."
            row = {"item": {"id": i, "answer": answer}, "sample": {"output_text": output}}
            f.write(json.dumps(row) + "\n")


def anchor(rows: Path, out: Path) -> float:
    t0 = time.perf_counter()
    with open(rows) as f, open(out, "w") as g:
        for line in f:
            row = json.loads(line)
            ok = row["sample"]["output_text"] == row["item"]["answer"]
            row["grade"] = {"score": float(ok), "status": "ok", "passed": ok}
            g.write(json.dumps(row) + "\n")
    return time.perf_counter() - t0


def tree_memory(proc: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over a process and all its descendants (those gone count 0). The RSS sum
    counts pages the processes share (forked workers) once per process; PSS splits them among sharers."""
    rss = pss = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for p in procs:
        try:
            m = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += m.rss
        pss += getattr(m, "pss", m.rss)
    return rss, pss


def measured(cmd: list[str]) -> tuple[float, tuple[int, int], str]:
    """(wall seconds, peak tree (RSS, PSS) bytes, stdout) of a command."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL)
        watched = psutil.Process(proc.pid)
        peak_rss = peak_pss = 0
        while proc.poll() is None:
            rss, pss = tree_memory(watched)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
        stdout.seek(0)
        return wall, (peak_rss, peak_pss), stdout.read().decode()


RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))


def run_cli(rows: Path, spec: Path, out: Path, workers: int) -> tuple[float, tuple[int, int], dict]:
    """(wall seconds, peak tree (RSS, PSS) bytes, the --json summary) of one `rft grade` run."""
    cmd = [RFT, "grade", "--grader", str(spec), "--input", str(rows), "--output", str(out),
           "--workers", str(workers), "--json"]  # fmt: skip
    wall, peak, stdout = measured(cmd)
    return wall, peak, json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--kind", choices=sorted(SPECS), default="math")
    ap.add_argument("--workers", default="0,1,2", help="comma-separated --workers values to run")
    ap.add_argument("--no-anchor", action="store_true", help="skip the plain-loop anchor")
    ap.add_argument("--eval", action="store_true", help="also `rft eval --samples` on the graded rows")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows, spec = tmp / "rows.jsonl", tmp / "spec.json"
        make_rows(rows, args.rows, args.kind)
        size_mb = rows.stat().st_size / 2**20
        spec.write_text(json.dumps(SPECS[args.kind]))
        base = None if args.no_anchor else anchor(rows, tmp / "anchor.jsonl")
        results: list[tuple[str, float, float | None, tuple[int, int] | None]] = []
        if base is not None:
            results.append(("plain loop (anchor)", base, None, None))
        for workers in (int(w) for w in args.workers.split(",")):
            out = tmp / f"out{workers}.jsonl"
            wall, peak, summary = run_cli(rows, spec, out, workers)
            assert summary["rows"] == args.rows and summary["status"]["error"] == 0, summary
            results.append((f"rft grade --workers {workers}", wall, summary["seconds"], peak))
        if args.eval:
            cmd = [RFT, "eval", "--samples", str(out), "--out", str(tmp / "eval")]
            wall, peak, _ = measured(cmd)
            results.append(("rft eval --samples", wall, None, peak))
    print(
        f"{args.rows} {args.kind} rows ({size_mb:.1f} MB); peak memory of the process tree, workers included"
    )
    head = f"{'what':<26} {'wall s':>8} {'grading s':>10} {'rows/s':>9} {'RSS MB':>7} {'PSS MB':>7} {'x anchor':>9}"
    print(head)
    for name, wall, grading, peak in results:
        g = f"{grading:.3f}" if grading is not None else "-"
        rss, pss = (f"{b / 2**20:.0f}" for b in peak) if peak is not None else ("-", "-")
        ratio = f"{wall / base:.1f}" if base else "-"
        print(f"{name:<26} {wall:>8.3f} {g:>10} {args.rows / wall:>9.0f} {rss:>7} {pss:>7} {ratio:>9}")


if __name__ == "__main__":
    main()
