"""GRPO in three training precisions, one run: float32 (anchor), pure bfloat16 weights, bf16-mixed (float32
weights and AdamW state, forward passes under bf16 autocast; `dtype: auto` on a GPU).

From the same tiny warm start (2-digit addition, about half right: `rft.tiny.warm_start`), each precision
trains `--steps` GRPO steps (8 prompts x 8 samples, max 12 new tokens, lr `--lr`, grader inline) on the
device, then scores greedy held-out accuracy (first 200 held-out problems). Pure bf16 loses AdamW's updates
smaller than half a weight's bf16 spacing (|w| / 256); the table shows how many weights moved at all.
Prints a table with s/step and held-out accuracy, and the ratio of each to the float32 row.
Run: python bench/precision.py [--device cuda] [--steps 120] [--lr 1e-5 1e-4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

SUITE = "rft/addition-v0"  # 2-digit addition: the tests' and the demo's task


def run(model: Path, suite: str, out: Path, dtype: str, lr: str, steps: int, device: str) -> dict:
    from safetensors.torch import load_file

    from rft.config import load_config
    from rft.rl.grpo import GRPOConfig, train

    cfg = load_config(
        GRPOConfig,
        None,
        [f"model={model}", f"suite={suite}", f"out={out}", f"steps={steps}", "prompts_per_step=8",
         "group_size=8", "gen.max_new_tokens=12", f"lr={lr}", "eval.n=200", "grader_workers=0",
         f"dtype={dtype}", f"device={device}"],
    )  # fmt: skip
    t0 = time.perf_counter()
    final = train(cfg)
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    before = load_file(model / "model.safetensors")
    after = load_file(max((out / "checkpoints").glob("step-*")) / "model" / "model.safetensors")
    moved = sum(int((a != before[k].to(a.dtype)).sum()) for k, a in after.items())
    total = sum(a.numel() for a in after.values())
    return {
        "start": rows[0]["eval/accuracy"],
        "end": final["eval/accuracy"],
        "step_s": statistics.median(r["time/step_s"] for r in rows if "time/step_s" in r),
        "moved": moved / total,
        "wall": wall,
        "saved": str(next(iter(after.values())).dtype).removeprefix("torch."),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--lr", nargs="+", default=["1e-5"])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "bf16-mixed"])
    args = ap.parse_args()

    import logging
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("rft.rl.grpo").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from rft.envs import get_suite
    from rft.tiny import warm_start

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    with tempfile.TemporaryDirectory(prefix="rft-precision-") as tmp:
        work = Path(tmp)
        suite = SUITE
        model = warm_start(get_suite(suite), work / "warm")
        results = {
            (lr, d): run(model, suite, work / f"{d}-{lr}", d, lr, args.steps, device)
            for lr in args.lr
            for d in args.dtypes
        }
    print(f"GRPO, {args.steps} steps of 8 prompts x 8 samples on {name}; held-out: greedy, first 200")
    print(f"{'lr':>6} {'dtype':11} {'saved':9} {'s/step':>7} {'ratio':>6} {'held-out start -> end':>22}"
          f" {'gain':>6} {'gain ratio':>10} {'weights moved':>13}")  # fmt: skip
    for (lr, d), r in results.items():
        anchor = results.get((lr, "float32"), r)
        gain, anchor_gain = r["end"] - r["start"], anchor["end"] - anchor["start"]
        print(
            f"{lr:>6} {d:11} {r['saved']:9} {r['step_s']:7.3f} {r['step_s'] / anchor['step_s']:6.2f}"
            f" {r['start']:>13.3f} -> {r['end']:.3f} {gain:+6.3f}"
            f" {gain / anchor_gain if anchor_gain else float('nan'):10.2f} {r['moved']:13.4f}"
        )


if __name__ == "__main__":
    main()
