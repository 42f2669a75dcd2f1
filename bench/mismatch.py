"""Sampler/trainer mismatch on a tiny model: do the `mismatch/*` metrics rise with a deliberately
perturbed sampler, and does the correction (TIS/MIS, `loss.correction`) change what GRPO learns?

The sampler samples from softmax(scale * logits / T) (`engine_options: {logit_scale: scale}`, the
`rft.engines.LogitScaled` wrapper) while the trainer scores softmax(logits / T). From the same
SFT warm start on 2-digit addition (`rft.tiny.warm_start`, about half right, as in tests/test_grpo.py):

1. `--scales`: a short GRPO run per scale; the mean of each `mismatch/*` metric over its steps.
2. `--runs`: for each (scale, correction) pair, `--steps` GRPO steps; held-out greedy pass@1 on `--eval-n`
   problems at the end, the mean `mismatch/kl`, `mismatch/masked_frac` and training reward (of the
   perturbed sampler's samples) over the steps. The anchor is the first run (by default the unperturbed,
   uncorrected one) measured in the same invocation.

    python bench/mismatch.py --out /tmp/mismatch --steps 120

Prints two tables and, last, `kl_ratio_at_max_scale=<kl at the largest scale / kl at scale 1>`.

Measured (2 CPU cores shared with other jobs, so the seconds are noisy; 120 steps, lr 1e-4, 200 problems):
mismatch/kl 1.3e-13 at scale 1 (float32 rounding), 0.005 (1.2), 0.010 (1.5), 0.019 (2.0), 0.045 (0.8),
0.48 (0.6). Held-out pass@1, seeds 0 / 1, from 0.48: unperturbed 0.620 / 0.615; 1.5: none 0.615, tis 0.625;
0.8: none 0.630 / 0.590, tis 0.655 / 0.565, tis+mis 0.635; 0.6: none 0.485 / 0.480, tis 0.475 / 0.400,
tis+mis 0.375. The perturbation did not make the uncorrected runs drift, and the correction did not help.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from statistics import mean

import torch

from rft.config import load_config
from rft.envs import load_suite
from rft.rl.grpo import GRPOConfig, train
from rft.tiny import warm_start

SUITE = """\
id: add-v0
source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2, ops: "+"}, size: 3000, seed: 0}
fields: {id: id, reference: answer}
prompt: {user: "{{ item.question }}"}
grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}", form: number}
split: 0.1
"""
CORRECTIONS = {
    "none": [],
    "tis": ["loss.correction.tis=token", "loss.correction.cap=2.0"],
    "tis+mis": [
        "loss.correction.tis=token",
        "loss.correction.mis=geometric",
        "loss.correction.band=[0.5,2.0]",
    ],
}
KEYS = ("kl", "kl_k1", "is_ratio_mean", "is_ratio_min", "is_ratio_max", "masked_frac")


def run(args: argparse.Namespace, model: Path, suite: Path, name: str, scale: float, extra: list[str],
        steps: int, eval_n: int) -> tuple[list[dict[str, float]], dict[str, float], float]:  # fmt: skip
    out = args.out / name
    opts = [] if scale == 1.0 else [f"engine_options={{logit_scale: {scale}}}"]
    cfg = load_config(GRPOConfig, None, [
        f"model={model}", f"suite={suite}", f"out={out}", f"steps={steps}", "prompts_per_step=8", "group_size=8",
        "gen.max_new_tokens=12", f"lr={args.lr}", f"eval.n={eval_n}", f"eval.every={steps}", "grader_workers=0",
        f"seed={args.seed}", *opts, *extra,
    ])  # fmt: skip
    t0 = time.perf_counter()
    final = train(cfg)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "mismatch/kl" in r], final, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/rft-mismatch"))
    ap.add_argument("--scales", type=float, nargs="*", default=[1.0, 0.8, 1.2, 1.5, 2.0])
    ap.add_argument("--metric-steps", type=int, default=4)
    ap.add_argument("--runs", nargs="*", default=["1.0:none", "0.6:none", "0.6:tis", "0.6:tis+mis"])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--eval-n", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    suite = args.out / "add-v0.yaml"
    suite.write_text(SUITE)
    model = args.out / "warm"
    if not (model / "config.json").exists():
        warm_start(load_suite(suite), model)

    print(f"{'scale':>6} " + " ".join(f"{k:>13}" for k in KEYS))
    kl = {}
    for s in args.scales:
        rows, _, _ = run(args, model, suite, f"metrics-{s}", s, [], args.metric_steps, 0)
        means = {k: mean(r[f"mismatch/{k}"] for r in rows) for k in KEYS}
        kl[s] = means["kl"]
        print(f"{s:>6} " + " ".join(f"{means[k]:>13.4g}" for k in KEYS), flush=True)

    print(f"\n{'scale':>6} {'correction':>11} {'pass@1 start':>13} {'pass@1 end':>11} {'vs anchor':>10} "
          f"{'kl':>8} {'masked':>7} {'reward':>7} {'s':>6}")  # fmt: skip
    anchor = None
    for spec in args.runs:
        s, corr = spec.split(":")
        rows, final, secs = run(args, model, suite, f"run-{s}-{corr}", float(s), CORRECTIONS[corr], args.steps,
                                args.eval_n)  # fmt: skip
        first = json.loads((args.out / f"run-{s}-{corr}" / "metrics.jsonl").read_text().splitlines()[0])
        end = final["eval/accuracy"]
        anchor = end if anchor is None else anchor
        print(f"{s:>6} {corr:>11} {first['eval/accuracy']:>13.3f} {end:>11.3f} {end - anchor:>+10.3f} "
              f"{mean(r['mismatch/kl'] for r in rows):>8.4f} {mean(r['mismatch/masked_frac'] for r in rows):>7.3f} "
              f"{mean(r['reward/mean'] for r in rows):>7.3f} {secs:>6.0f}", flush=True)  # fmt: skip
    top = max(args.scales)
    if 1.0 in kl and kl[1.0] > 0:
        print(f"kl_ratio_at_max_scale={kl[top] / kl[1.0]:.3g}")
    else:
        print(f"kl_at_scale_1={kl.get(1.0, float('nan')):.3g} kl_at_max_scale={kl[top]:.3g}")


if __name__ == "__main__":
    main()
