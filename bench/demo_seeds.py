"""`rft demo` at several seeds: is the demo a recipe or a lucky run?

Runs `rft demo --seed S` for each seed, one after the other (each in its own process and folder), and prints
per seed the held-out pass@1 (greedy, 200 problems, 95% CI) of the base, SFT and final model, the wall time,
the diagnose verdict of its GRPO stage, and whether each goal of issue 22 was met: final >= 0.70, final - SFT
>= 25 points with the CIs apart, at most 5 minutes. The anchor is the default seed (0), run in the same
invocation when listed. Last line: `seeds_meeting_goals=<k>/<n>`.

    python bench/demo_seeds.py --seeds 0 1 2 3 4 [--out runs/demo-seeds] [--set grpo.steps=300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rft.app.demo import FINAL_MIN, GAIN_MIN, SECONDS_MAX  # the demo's own goals


def run_seed(seed: int, out: Path, sets: list[str]) -> dict:
    folder = out / f"seed{seed}"
    cmd = [sys.executable, "-m", "rft", "demo", "--seed", str(seed), "--out", str(folder)]
    cmd += [x for s in sets for x in ("--set", s)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    wall = time.perf_counter() - t0
    row: dict = {"seed": seed, "wall_s": wall, "rc": res.returncode}
    results = folder / "results.json"
    if not results.is_file():
        row["error"] = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no results.json"]
        return row
    doc = json.loads(results.read_text())
    acc = {r["model"]: r for r in doc["results"] if r["metric"] == "pass@1"}
    row |= {k: acc[k] for k in ("base", "sft", "grpo") if k in acc}
    row["verdict"] = next((ln for ln in res.stdout.splitlines() if ln.startswith("diagnose:")), "")
    final, sft = acc.get("grpo"), acc.get("sft")
    row["goal_final"] = bool(final and final["value"] >= FINAL_MIN)
    row["goal_gain"] = bool(
        final and sft and final["value"] - sft["value"] >= GAIN_MIN and final["ci95"][0] > sft["ci95"][1]
    )
    row["goal_time"] = wall <= SECONDS_MAX
    return row


def cell(r: dict | None) -> str:
    return "-" if r is None else f"{r['value']:.3f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", type=Path, default=Path("runs/demo-seeds"))
    ap.add_argument(
        "--set", dest="sets", action="append", default=[], help="a demo override, e.g. grpo.steps=300"
    )
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(seed, args.out, args.sets))
        r = rows[-1]
        print(f"seed {seed}: {r.get('error') or cell(r.get('grpo'))} in {r['wall_s']:.0f} s", flush=True)
    print()
    head = f"{'seed':>4}  {'base':<20} {'sft':<20} {'final':<20} {'final-sft':>9} {'s':>5}  goals (>=0.70, +25 apart, <=300 s)  verdict"
    print(head)
    print("-" * len(head))
    met = 0
    for r in rows:
        if "error" in r:
            print(f"{r['seed']:>4}  failed (exit {r['rc']}): {r['error']}")
            continue
        gain = r["grpo"]["value"] - r["sft"]["value"]
        goals = [r["goal_final"], r["goal_gain"], r["goal_time"]]
        met += all(goals)
        marks = " ".join("met" if g else "MISSED" for g in goals)
        print(
            f"{r['seed']:>4}  {cell(r.get('base')):<20} {cell(r.get('sft')):<20} {cell(r.get('grpo')):<20} "
            f"{100 * gain:>+8.1f}  {r['wall_s']:>5.0f}  {marks:<34} {r['verdict'].removeprefix('diagnose: ')}"
        )
    anchor = next((r for r in rows if r["seed"] == 0 and "grpo" in r), None)
    if anchor is not None:
        others = [r["grpo"]["value"] for r in rows if r["seed"] != 0 and "grpo" in r]
        if others:
            print(
                f"mean final of the other seeds / seed 0's: {sum(others) / len(others) / anchor['grpo']['value']:.3f}"
            )
    print(f"seeds_meeting_goals={met}/{len(rows)}")


if __name__ == "__main__":
    main()
