"""`rft view` on a large run: open time and peak memory on a generated run folder with 1,000,000 rollout rows.

Generates (once, reused with --keep) a run folder: metrics.jsonl (one row per step) and rollouts.jsonl (64 rows
per step, shaped like the demo's, ~600 bytes each), starts `python -m rft view FOLDER --port 0` as a process of
its own and times what the page asks for: the folder's tree, the first page of rollouts (the line index built
on the way, and the step list), the last step's page (the page's default), the curves, a filtered page over all
steps, and a refresh after the run appended a step. Memory: the server process's peak resident size (VmHWM).

Anchor: `wc -l` on the same file, timed in the same run (the file is in the page cache for both). The machine
is shared (2 cores, other jobs running): timings are noisy; take the best of --repeat.
Goal (issue 19): open (process start to first page served) < 2 s, peak memory < 300 MB.
Run: python bench/view_load.py [--rows 1000000] [--repeat 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PER_STEP = 64


def row(step: int, k: int) -> str:
    a, b = (step * 7 + k) % 90 + 10, (step * 13 + 3 * k) % 90 + 10
    right = k % 3 != 0
    answer = a + b if right else a + b + 1
    status = "ok" if k % 50 else "timeout"
    grade = {"score": float(right), "status": status, "passed": right, "extracted": str(answer),
             "details": {"rule": "string" if right else "exact", "extraction": "boxed",
                         "gold": {"text": str(a + b), "kind": "number"}, "pred": {"text": str(answer), "kind": "number"}}}  # fmt: skip
    return json.dumps({"step": step, "group": k // 8, "prompt": f"What is {a} + {b}? Put the answer in \\boxed{{}}.",
                       "id": f"{a} + {b}", "completion": [{"role": "assistant", "content": f"{a} plus {b} makes \\boxed{{{answer}}}"}],
                       "reward": float(right), "status": status, "grade": grade, "reference": str(a + b), "overlong": False})  # fmt: skip


def generate(folder: Path, rows: int) -> None:
    steps = rows // PER_STEP
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "metrics.jsonl").open("w") as m:
        for s in range(1, steps + 1):
            m.write(json.dumps({"step": s, "reward/mean": min(1.0, s / steps + 0.3), "grader/timeout_rate": 0.02,
                                "rollout/completion_len": 9.0, "loss/policy": 0.01, "loss/approx_kl": 0.001}) + "\n")  # fmt: skip
    with (folder / "rollouts.jsonl").open("w") as f:
        for s in range(1, steps + 1):
            f.write("\n".join(row(s, k) for k in range(PER_STEP)) + "\n")
    (folder / "config.yaml").write_text("suite: rft/addition-v0\n")


def get(url: str) -> tuple[float, dict]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = json.loads(r.read())
    return time.perf_counter() - t, body


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def one_run(folder: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "rft", "view", str(folder), "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line.startswith("rft view: http"):
            raise RuntimeError(f"rft view did not start: {line}{p.stdout.read()}")
        base = line.split()[2]
        up = time.perf_counter() - t0
        out = {"server up (process start)": up}
        out["tree"] = get(base + "api/tree")[0]
        dt, first = get(base + "api/rows?file=rollouts.jsonl&steps=1&limit=50")
        out["first page + line index"] = dt
        out["open: start to first page"] = time.perf_counter() - t0
        out["last step's page"] = get(
            base + f"api/rows?file=rollouts.jsonl&step={first['steps'][-1]}&limit=50"
        )[0]
        out["curves"] = get(base + "api/curves")[0]
        out["filter status=timeout, all steps"] = get(
            base + "api/rows?file=rollouts.jsonl&status=timeout&limit=50"
        )[0]
        out["text search, all steps (20k-line budget)"] = get(
            base + "api/rows?file=rollouts.jsonl&q=zzz&limit=50"
        )[0]
        with (folder / "rollouts.jsonl").open("a") as f:  # the run writes another step
            f.write("\n".join(row(10**9, k) for k in range(PER_STEP)) + "\n")
        dt, page = get(base + "api/rows?file=rollouts.jsonl&steps=1&step=1000000000&limit=50")
        assert len(page["rows"]) == 50 and page["steps"][-1] == 10**9, page.get("steps", [])[-3:]
        out["refresh after a new step"] = dt
        out["peak memory (MB)"] = peak_mb(p.pid)
        out["indexed rows"] = float(page["indexed"])
        return out
    finally:
        p.terminate()
        p.wait(timeout=30)
        truncate_appended(folder)


def truncate_appended(folder: Path) -> None:
    f = folder / "rollouts.jsonl"
    data_end = f.stat().st_size
    with f.open("rb") as h:  # drop the rows of step 10**9 appended by one_run
        h.seek(max(0, data_end - 64 * 2000))
        tail = h.read()
    cut = tail.find(b'{"step": 1000000000,')
    if cut >= 0:
        with f.open("r+b") as h:
            h.truncate(data_end - len(tail) + cut)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="generate into (or reuse) this folder and keep it")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="rft-view-bench-")) / "run"
    try:
        rollouts = folder / "rollouts.jsonl"
        if not rollouts.is_file():
            t = time.perf_counter()
            generate(folder, args.rows)
            print(f"generated {folder} in {time.perf_counter() - t:.1f} s")
        size = rollouts.stat().st_size
        anchors, runs = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            subprocess.run(["wc", "-l", str(rollouts)], check=True, capture_output=True)
            anchors.append(time.perf_counter() - t)
            runs.append(one_run(folder))
        anchor = min(anchors)
        print(f"\nrollouts.jsonl: {size / 1e6:.0f} MB, {int(runs[0]['indexed rows']) - PER_STEP:,} rows; "
              f"best of {args.repeat}; anchor `wc -l` on the same file: {anchor:.3f} s")  # fmt: skip
        print(f"{'what':44} {'seconds':>9} {'x wc -l':>9}")
        for key in runs[0]:
            if key in ("peak memory (MB)", "indexed rows"):
                continue
            best = min(r[key] for r in runs)
            print(f"{key:44} {best:9.3f} {best / anchor:9.1f}")
        peak = max(r["peak memory (MB)"] for r in runs)
        opened = min(r["open: start to first page"] for r in runs)
        print(f"{'peak memory of the server (VmHWM, MB)':44} {peak:9.0f}")
        print(f"goal: open < 2 s ({'met' if opened < 2 else 'missed'}: {opened:.2f} s), "
              f"memory < 300 MB ({'met' if peak < 300 else 'missed'}: {peak:.0f} MB)")  # fmt: skip
    finally:
        if args.keep is None:
            shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
