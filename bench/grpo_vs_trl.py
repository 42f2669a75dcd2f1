"""rft GRPO against TRL's GRPOTrainer: seconds per step and held-out accuracy after equal steps, one run.

Anchor: TRL 1.16 `GRPOTrainer` (HF `generate`, no vLLM), timed in this process in the same run. Both trainers
start from the same saved warm start (a tiny Llama taught 2-digit addition by SFT to about 0.5 held-out accuracy,
built here, seeded) and train with the same task, prompts, group size, lengths, batch and optimiser:
8 prompts x 8 samples per step, max 12 new tokens, temperature 1.0, AdamW lr 1e-4 (weight decay 0, constant, no
warm-up), grad-norm clip 1.0, loss "dapo", eps 0.2 / 0.28, beta 0, advantages scaled by the group std, one
optimisation pass per batch, torch on one thread. TRL is fed rft's prompt order (`rft.rl.harness.prompt_indices`,
``shuffle_dataset=False``; checked after training), so at every step both see the same 8 problems; the samples
differ (separate RNG streams), so the held-out accuracies differ by sampling noise (about +-0.035 at n=200).

Timing excludes start-up. TRL: on_step_begin -> on_step_end of a `TrainerCallback` (generation, rewards,
advantages, forward/backward of the micro-batches, clip, optimizer step); its generation part is timed by
wrapping `_generate_and_score_completions`. rft: ``time/step_s`` of metrics.jsonl (rollout with grading, update,
weight push). "wall" is the time between consecutive step ends (adds data loading and logging); "cpu" is this
process's CPU seconds per step, which other load on a shared machine barely changes (for rft with
grader_workers=1 it leaves the grader worker out). Means leave the first step (warm-up, grader workers starting)
out. The rft rows run between two TRL rows, so a drift of the machine's load hits both trainers. Afterwards both
final models are saved, reloaded the same way and scored with `rft.eval.heldout.evaluate` (greedy, first 200 held-out).

Semantic differences found between the two implementations (TRL 1.16 `trainer/grpo_trainer.py`,
`grpo_config.py`; rft `rft/rl/grpo.py`):
- Batch semantics. TRL's `per_device_train_batch_size` counts completions, not prompts;
  ``generation_batch_size = per_device_train_batch_size * gradient_accumulation_steps`` (steps_per_generation
  defaults to the accumulation steps), and the whole generation batch (64 rows) is sampled by one `generate`
  call at the first micro-step, shuffled, split into micro-batches and buffered: one optimizer step per
  generation. rft samples ``group_size`` completions per prompt with ``n`` in chunks of ``rollout_chunk`` (64)
  rows, and grades each chunk (in a GraderPool, or inline) while the next one is generated.
- The ``async`` row (rft's ``async_rollout``) samples the next step's batch in a child process, with a copy
  of the weights one update behind, while this step trains: one step off-policy, the ratio taken against the sampler's
  log-probs (so clipping binds). It overlaps generation with the update on the machine's second core; TRL has
  no such mode without vLLM. Same problems, sizes and optimiser; a different schedule of weights.
  ``asyncK`` rows (``max_staleness: K``) queue the next K steps' rollouts: step s samples with the weights
  after update s - K.
- Old log-probs. With ``num_iterations=1`` and steps_per_generation == accumulation steps TRL skips the
  old-policy forward pass and uses ``per_token_logps.detach()`` (ratio 1: clipping never binds); rft does the
  same when ``epochs == minibatches == 1``. Neither needs a reference model at beta 0.
- DAPO normaliser. TRL divides each micro-batch's summed token loss by ``num_items_in_batch``, the completion
  tokens of the whole generation batch (x accumulation / steps_per_generation = 1), unscorable rows included.
  rft divides by the completion tokens of the minibatch's valid rows (rows whose grade failed are left out of
  the count). Equal when no grade fails (the math grader on this task never did in our runs).
- Zero-advantage rows. TRL runs every row through forward/backward; rft skips rows with advantage 0 (they add
  no gradient at beta 0) but keeps their tokens in the normaliser: the same gradient for less compute. On this
  task many groups are all right or all wrong.
- Log-prob computation. TRL patches the model with a chunked "fused LM head" that scores only completion
  positions without materialising (B, T, V) logits, and computes token entropies on every micro-batch (for
  logging). rft computes full logits for the rows it trains on and a selective log-softmax.
- Failed grades. The TRL reward function returns None for a timeout/error grade: NaN reward, left out of its
  group's mean/std, advantage 0, tokens still in the normaliser. rft masks such rows out of the statistics,
  the loss and the normaliser, and counts them (grader/error_rate, grader/timeout_rate).
- Advantages: identical, (r - mean_group) / (unbiased std_group + 1e-4).
- Net effect, checked once on one rft rollout batch (64 rows, 56 with advantage != 0): rft's `_update` and
  TRL's `_compute_loss` (per_device 64) give the same clipped gradient (cosine 1.0, max abs difference 7e-8).
- Completion masks: both train on the sampled tokens up to and including the first eos.
- Positions: TRL's training forward concatenates left-padded prompts and right-padded completions without
  position ids, so a shorter prompt's positions differ from those it was sampled with; rft right-pads whole
  sequences. All prompts of this suite have the same token length, so here this makes no difference.
- Config defaults that differ and are set explicitly for TRL: gradient_checkpointing (TRL default True),
  bf16 (True), optim (adamw_torch_fused; set to adamw_torch = `torch.optim.AdamW`, as rft), lr_scheduler_type
  (linear; set to constant).

Prints a table (trainer; median and mean s/step; median wall, cpu and generation s/step; s/step and cpu ratios
to the faster TRL row; mean train reward of the last 10 steps; held-out accuracy start -> end) and, last,
``step_time_ratio_vs_trl=`` (median s/step of the fastest rft row over that of the faster TRL row; the line
above it names both) and ``heldout_acc_rft= heldout_acc_trl=`` of those two rows.
Run: python bench/grpo_vs_trl.py [--steps 60] [--warm-steps 250] [--eval-n 200] [--rft 0:64 1:64 0:64:async 0:64:async2]
[--device cuda] [--seeds 0 1 2] (several seeds: per-seed tables, the paired held-out difference with a 95% CI,
and means in the machine-readable lines)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# GraderPool workers import this file as __mp_main__: torch, transformers, trl and rft are imported in
# functions only.

SUITE_YAML = """\
id: add-v0
source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2, ops: "+"}, size: 3000, seed: 0}
fields: {id: id, reference: answer}
prompt: {user: "{{ item.question }}"}
grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}"}
split: 0.1
"""
PROMPTS, GROUP, MAX_NEW, LR, SEED = 8, 8, 12, 1e-4, 0
DEFAULT_CHUNK = 64  # rft's GRPOConfig.rollout_chunk default


@dataclass
class Result:
    name: str
    step_s: list[float]  # per step, start-up excluded
    wall_s: list[float]  # between consecutive step ends
    cpu_s: list[float]  # CPU seconds of this process per step (robust to other load on the machine)
    gen_s: list[float]  # the generation (+ grading, advantages) part of each step
    rewards: list[float]  # mean train reward per step
    acc: float  # held-out accuracy of the final model


def warm_start(suite: Any, out: Path, steps: int, seed: int = SEED) -> Path:
    """A tiny Llama taught the suite by SFT on ``\\boxed{ref}`` replies (`rft.tiny.warm_start`: batch 64,
    AdamW lr 1e-3). Same seed, same weights (one torch thread)."""
    from rft.tiny import warm_start as tiny_warm_start

    return tiny_warm_start(suite, out, steps=steps, seed=seed)


def heldout_accuracy(path: Path, suite_file: Path, n: int) -> float:
    """Greedy accuracy of the model saved at `path` on the first `n` held-out problems (`rft.eval.heldout.evaluate`)."""
    from rft.engines import HFEngine
    from rft.envs import SuiteEnv, get_suite
    from rft.eval.heldout import evaluate
    from rft.models import load_policy

    model, tok = load_policy(path, device="cpu")
    model.eval()
    suite = get_suite(suite_file)
    envs = [SuiteEnv(suite) for _ in range(min(n, len(suite.items("heldout"))))]
    return evaluate(HFEngine(model, tok), tok, envs, "heldout", MAX_NEW, None)["eval/accuracy"]


def run_rft(
    warm: Path,
    suite_file: Path,
    work: Path,
    steps: int,
    workers: int,
    chunk: int,
    micro: int,
    n_eval: int,
    async_rollout: bool = False,
    device: str = "cpu",
    shared_prefix: bool = True,
    seed: int = SEED,
    max_staleness: int = 1,
) -> Result:
    from rft.rl.grpo import EvalConfig, GenConfig, GRPOConfig, LossConfig, train

    out = work / f"rft-w{workers}-c{chunk}-a{int(async_rollout)}{max_staleness}-s{int(shared_prefix)}"
    cfg = GRPOConfig(
        model=str(warm),
        suite=str(suite_file),
        out=str(out),
        steps=steps,
        prompts_per_step=PROMPTS,
        group_size=GROUP,
        lr=LR,
        weight_decay=0.0,
        warmup_steps=0,
        max_grad_norm=1.0,
        micro_batch=micro,
        gen=GenConfig(temperature=1.0, max_new_tokens=MAX_NEW),
        loss=LossConfig(agg="dapo", scale_rewards="group", eps_low=0.2, eps_high=0.28, beta=0.0),
        eval=EvalConfig(n=0),  # off during training: step times compare like for like
        grader_workers=workers,
        rollout_chunk=chunk,
        async_rollout=async_rollout,
        max_staleness=max_staleness,
        shared_prefix=shared_prefix,
        torch_threads=1,
        seed=seed,
        device=device,
        dtype="float32",  # as TRL's row (bf16=False)
    )
    ends: list[tuple[float, float]] = []  # (wall, cpu) at each step's end
    train(cfg, progress=lambda step, metrics: ends.append((time.perf_counter(), time.process_time())))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "time/step_s" in r]
    failed = sum(r["grader/error_rate"] + r["grader/timeout_rate"] for r in rows)
    if failed:
        print(f"rft grader_workers={workers}: failed grades (mean rate per step, summed) {failed:.3f}")
    ckpt = max((out / "checkpoints").glob("step-*")) / "model"
    return Result(
        f"rft GRPO, grader_workers={workers}, micro {micro}, chunk {chunk}"
        + (
            (", async" + (f" (max_staleness {max_staleness})" if max_staleness > 1 else ""))
            if async_rollout
            else ""
        )
        + ("" if shared_prefix else ", no shared prefix"),
        [r["time/step_s"] for r in rows],
        [b[0] - a[0] for a, b in zip(ends, ends[1:], strict=False)],
        [b[1] - a[1] for a, b in zip(ends, ends[1:], strict=False)],  # step end to step end: adds logging
        [r["time/rollout_s"] for r in rows],
        [r["reward/mean"] for r in rows],
        heldout_accuracy(ckpt, suite_file, n_eval),
    )


def run_trl(
    warm: Path,
    suite_file: Path,
    work: Path,
    steps: int,
    micro: int,
    n_eval: int,
    device: str = "cpu",
    seed: int = SEED,
) -> Result:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rft.envs import get_suite
    from rft.integrations.trl import suite_reward_func
    from rft.rl.harness import prompt_indices
    from rft.rollout import chat_prompt_ids

    suite = get_suite(suite_file)
    items = suite.items("train")
    tok = AutoTokenizer.from_pretrained(warm)
    # TRL tokenizes conversational prompts with apply_chat_template(tokenize=True): check it gives rft's ids
    msgs = suite.messages(items[0])
    trl_ids = tok.apply_chat_template([msgs], add_generation_prompt=True, tokenize=True, return_dict=True)
    if trl_ids["input_ids"][0] != chat_prompt_ids(tok, msgs):
        raise RuntimeError("TRL and rft tokenize the prompt differently; the comparison would not be fair")
    order = [i for s in range(steps) for i in prompt_indices(len(items), PROMPTS, s, seed)]  # rft's prompts
    data = Dataset.from_list(
        [
            {"prompt": suite.messages(items[i]), "id": items[i]["id"], "reference": items[i]["reference"]}
            for i in order
        ]
    )
    grade = suite_reward_func(suite)  # the suite's grader, inline: max(0, score); None when it failed
    rewards: list[float] = []
    failures = [0]
    seen: list[list[str]] = []  # the problems TRL drew at each step

    def math_reward(completions: list, id: list, reference: list, **_: Any) -> list[float | None]:
        out = grade(completions=completions, id=id, reference=reference)  # None: TRL leaves it out
        failures[0] += sum(r is None for r in out)
        ok = [r for r in out if r is not None]
        rewards.append(sum(ok) / max(1, len(ok)))
        seen.append(list(id))
        return out

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.begin, self.cpu, self.step_s, self.cpu_s, self.ends = 0.0, 0.0, [], [], []

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.begin, self.cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            now = time.perf_counter()
            self.step_s.append(now - self.begin)
            self.cpu_s.append(time.process_time() - self.cpu)
            self.ends.append(now)

    config = GRPOConfig(
        output_dir=str(work / f"trl-mb{micro}"),
        per_device_train_batch_size=micro,  # completions, not prompts
        gradient_accumulation_steps=PROMPTS * GROUP // micro,  # generation batch = 64 completions = 8 prompts
        num_generations=GROUP,
        max_completion_length=MAX_NEW,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        learning_rate=LR,
        weight_decay=0.0,
        warmup_steps=0,
        lr_scheduler_type="constant",
        optim="adamw_torch",
        max_grad_norm=1.0,
        loss_type="dapo",
        epsilon=0.2,
        epsilon_high=0.28,
        beta=0.0,
        scale_rewards="group",
        num_iterations=1,
        mask_truncated_completions=False,
        gradient_checkpointing=False,
        shuffle_dataset=False,
        max_steps=steps,
        use_cpu=device == "cpu",
        bf16=False,
        report_to="none",
        logging_steps=10**6,
        save_strategy="no",
        disable_tqdm=True,
        seed=seed,
    )
    model = AutoModelForCausalLM.from_pretrained(warm, dtype=torch.float32)
    timer = Timer()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=math_reward,
        args=config,
        train_dataset=data,
        processing_class=tok,
        callbacks=[timer],
    )
    trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict
    gen_s: list[float] = []
    generate = trainer._generate_and_score_completions

    def timed_generate(inputs: Any) -> Any:
        t0 = time.perf_counter()
        out = generate(inputs)
        gen_s.append(time.perf_counter() - t0)
        return out

    trainer._generate_and_score_completions = timed_generate
    if torch.get_num_threads() != 1:
        raise RuntimeError(f"torch uses {torch.get_num_threads()} threads; the bench needs 1")
    trainer.train()
    for step, ids in enumerate(seen):
        expected = sorted(
            items[i]["id"] for i in prompt_indices(len(items), PROMPTS, step, seed) for _ in range(GROUP)
        )
        if sorted(ids) != expected:
            raise RuntimeError(f"TRL step {step} drew other problems than rft's step {step}")
    if failures[0]:
        print(f"TRL micro-batch {micro}: {failures[0]} failed grades")
    final = work / f"trl-mb{micro}-final"
    trainer.model.save_pretrained(final)
    tok.save_pretrained(final)
    return Result(
        f"TRL GRPOTrainer, micro-batch {micro} x {PROMPTS * GROUP // micro}",
        timer.step_s,
        [b - a for a, b in zip(timer.ends, timer.ends[1:], strict=False)],
        timer.cpu_s,
        gen_s,
        rewards,
        heldout_accuracy(final, suite_file, n_eval),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="GRPO steps for each trainer")
    ap.add_argument("--warm-steps", type=int, default=250, help="SFT steps of the warm start")
    ap.add_argument("--eval-n", type=int, default=200, help="held-out problems scored (the first n)")
    ap.add_argument(
        "--trl-micro", type=int, nargs="+", default=[16, 64], help="TRL per_device_train_batch_size"
    )
    ap.add_argument(
        "--rft",
        nargs="+",
        default=["0:64", "1:64", "0:64:async"],
        help="rft rows as GRADER_WORKERS:ROLLOUT_CHUNK[:async|:asyncK][:noshare] (64 is rft's default chunk; "
        "async: async_rollout; asyncK: with max_staleness K; noshare: shared_prefix false)",
    )
    ap.add_argument("--rft-micro", type=int, default=64, help="rft micro_batch (as the TRL 64 x 1 row)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (both trainers; float32 weights)")
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[SEED], help="model, prompt order and sampling seeds"
    )
    args = ap.parse_args()
    for m in args.trl_micro:
        if (PROMPTS * GROUP) % m:
            raise SystemExit(f"--trl-micro {m}: must divide {PROMPTS * GROUP}")
    rft_rows = []
    for spec in args.rft:
        parts = spec.split(":")
        stale = [int(p.removeprefix("async") or 1) for p in parts[2:] if re.fullmatch(r"async\d*", p)]
        if len(parts) < 2 or len(stale) > 1 or len(parts[2:]) - len(stale) > ("noshare" in parts[2:]):
            raise SystemExit(
                "--rft takes GRADER_WORKERS:ROLLOUT_CHUNK[:async|:asyncK][:noshare], e.g. 0:64 0:64:async2"
            )
        rft_rows.append((int(parts[0]), int(parts[1]), stale[0] if stale else 0, "noshare" not in parts[2:]))

    import logging
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("rft.rl.grpo").setLevel(logging.ERROR)  # "groups have equal rewards" warnings
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    by_seed = [run_seed(args, rft_rows, seed) for seed in args.seeds]
    ratios = [med(best.step_s) / med(anchor.step_s) for anchor, best in by_seed]
    acc_trl, acc_rft = [a.acc for a, _ in by_seed], [b.acc for _, b in by_seed]
    if len(by_seed) > 1:  # the paired held-out difference over seeds, with a 95% t-interval
        diffs = [b - a for a, b in zip(acc_trl, acc_rft, strict=True)]
        m = statistics.fmean(diffs)
        half = T95.get(len(diffs) - 1, 1.96) * statistics.stdev(diffs) / len(diffs) ** 0.5
        print(
            f"{len(by_seed)} seeds {args.seeds}: step time ratio per seed {', '.join(f'{r:.3f}' for r in ratios)};"
            f" held-out rft - TRL per seed {', '.join(f'{d:+.3f}' for d in diffs)}: mean {m:+.3f}"
            f" [95% CI {m - half:+.3f}, {m + half:+.3f}]"
        )
    anchor, best = by_seed[0]
    print(
        f"machine-readable: the fastest rft row, {best.name}, against {anchor.name}"
        + (f" (means over {len(by_seed)} seeds)" if len(by_seed) > 1 else "")
    )
    print(f"step_time_ratio_vs_trl={statistics.fmean(ratios):.3f}")
    print(f"heldout_acc_rft={statistics.fmean(acc_rft):.3f} heldout_acc_trl={statistics.fmean(acc_trl):.3f}")


T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}  # t(0.975, df)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def run_seed(
    args: argparse.Namespace, rft_rows: list[tuple[int, int, int, bool]], seed: int
) -> tuple[Result, Result]:
    """One seed's warm start, TRL and rft rows, and table; returns (the faster TRL row, the fastest rft row)."""
    import torch

    from rft.envs import get_suite

    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="grpo-vs-trl-") as tmp:
        work = Path(tmp)
        suite_file = work / "add-v0.yaml"
        suite_file.write_text(SUITE_YAML)
        t0 = time.perf_counter()
        warm = warm_start(get_suite(suite_file), work / "warm", args.warm_steps, seed)
        warm_s = time.perf_counter() - t0
        start_acc = heldout_accuracy(warm, suite_file, args.eval_n)
        print(
            f"seed {seed}: warm start: {args.warm_steps} SFT steps in {warm_s:.0f} s, held-out accuracy {start_acc:.3f}"
        )
        # TRL rows before and after the rft rows, so a change of load on the machine hits both trainers
        runs = [("trl", m) for m in args.trl_micro[:1]] + [("rft", r) for r in rft_rows]
        runs += [("trl", m) for m in args.trl_micro[1:]]
        results: list[Result] = []
        for kind, spec in runs:
            if kind == "trl":
                results.append(
                    run_trl(warm, suite_file, work, args.steps, spec, args.eval_n, args.device, seed)
                )
            else:
                workers, chunk, stale, share = spec
                results.append(
                    run_rft(
                        warm,
                        suite_file,
                        work,
                        args.steps,
                        workers,
                        chunk,
                        args.rft_micro,
                        args.eval_n,
                        stale > 0,
                        args.device,
                        share,
                        seed,
                        max(1, stale),
                    )
                )
            load.append(os.getloadavg()[0])

    def mean(xs: list[float]) -> float:
        return statistics.fmean(xs[1:]) if len(xs) > 1 else float("nan")  # first step: warm-up

    trl = [r for r in results if r.name.startswith("TRL")]
    rft = [r for r in results if r.name.startswith("rft") and f"chunk {DEFAULT_CHUNK}" in r.name]
    anchor = min(trl, key=lambda r: med(r.step_s))
    best = min(rft or results, key=lambda r: med(r.step_s))
    print(
        f"{args.steps} steps each, 8 prompts x 8 samples, max {MAX_NEW} new tokens; held-out: greedy, first "
        f"{args.eval_n}; device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else "")
        + f"; load average (1 min) {' -> '.join(f'{x:.2f}' for x in load)}"
    )
    print(
        f"ratio = median s/step over that of the faster TRL row ({anchor.name}); cpu = CPU s/step of this process"
        " (rft grader_workers=1: without its grader worker); gen = generation, grading and advantages"
    )
    print(
        f"{'trainer':66} {'s/step med':>10} {'mean':>6} {'wall':>6} {'cpu':>6} {'gen':>6} {'ratio':>6}"
        f" {'cpu ratio':>9} {'reward last10':>13} {'held-out start -> end':>22}"
    )
    for r in results:
        print(
            f"{r.name:66} {med(r.step_s):10.3f} {mean(r.step_s):6.3f} {med(r.wall_s):6.3f} {med(r.cpu_s):6.3f}"
            f" {med(r.gen_s):6.3f} {med(r.step_s) / med(anchor.step_s):6.2f}"
            f" {med(r.cpu_s) / med(anchor.cpu_s):9.2f} {statistics.fmean(r.rewards[-10:]):13.3f}"
            f" {start_acc:>13.3f} -> {r.acc:.3f}"
        )
    return anchor, best


if __name__ == "__main__":
    main()
