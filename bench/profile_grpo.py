"""Where an rft GRPO step spends its host time: cProfile over `--steps` steps from the tiny warm start
(2-digit addition, 8 prompts x 8 samples, max 12 new tokens, grader inline). With a tiny model on a GPU
the host (Python, kernel launches, synchronisations) is the bottleneck, so host time is step time.
Prints the mean step time split into rollout and update (metrics.jsonl), then the functions with the most
cumulative and own time. Run: python bench/profile_grpo.py [--device cuda] [--steps 30] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import tempfile
from pathlib import Path

SUITE = "rft/addition-v0"  # 2-digit addition: the tests' and the demo's task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--set", nargs="*", default=[], help="GRPOConfig overrides, e.g. shared_prefix=false")
    ap.add_argument("--warm", default=None, help="keep the warm start in this folder (reused when there)")
    ap.add_argument("--no-profile", action="store_true", help="time the steps only (no cProfile overhead)")
    ap.add_argument(
        "--sdp",
        choices=["default", "no-cudnn", "math", "flash", "efficient"],
        default="default",
        help="scaled_dot_product_attention backends allowed on a GPU (default: torch's choice)",
    )
    args = ap.parse_args()

    import logging
    import warnings

    import torch

    torch.set_num_threads(1)
    if args.sdp != "default":
        torch.backends.cuda.enable_cudnn_sdp(False)
        if args.sdp != "no-cudnn":
            torch.backends.cuda.enable_flash_sdp(args.sdp == "flash")
            torch.backends.cuda.enable_mem_efficient_sdp(args.sdp == "efficient")
            torch.backends.cuda.enable_math_sdp(args.sdp == "math")
    warnings.filterwarnings("ignore")
    logging.getLogger("rft.rl.grpo").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from rft.config import load_config
    from rft.envs import get_suite
    from rft.rl.grpo import GRPOConfig, train
    from rft.tiny import warm_start

    with tempfile.TemporaryDirectory(prefix="rft-profile-") as tmp:
        work = Path(tmp)
        suite = SUITE
        model = Path(args.warm or work / "warm")
        if not (model / "config.json").is_file():
            warm_start(get_suite(suite), model)
        cfg = load_config(
            GRPOConfig,
            None,
            [f"model={model}", f"suite={suite}", f"out={work / 'run'}", f"steps={args.steps}",
             "prompts_per_step=8", "group_size=8", "gen.max_new_tokens=12", "lr=1e-4", "eval.n=0",
             "grader_workers=0", "save_every=0", f"device={args.device}", *args.set],
        )  # fmt: skip
        prof = cProfile.Profile()
        if args.no_profile:
            train(cfg)
        else:
            prof.runcall(train, cfg)
        rows = [json.loads(x) for x in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "time/step_s" in r][1:]  # the first step warms up
    step, roll, upd = (
        statistics.fmean(r[k] for r in rows) for k in ("time/step_s", "time/rollout_s", "time/update_s")
    )
    print(
        f"sdp {args.sdp}, {' '.join(args.set)}: mean over steps 2..{args.steps}: step {step:.4f} s = rollout {roll:.4f} + update {upd:.4f} (+ rest)"
    )
    for key in () if args.no_profile else ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(args.top)
        print(f"--- by {key} (whole run, start-up included)")
        print("\n".join(line for line in buf.getvalue().splitlines() if line.strip()))


if __name__ == "__main__":
    main()
