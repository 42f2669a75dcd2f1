"""Train TRL's GRPOTrainer on an rft task suite with the suite's grader as the reward (rft.integrations.trl).

By default a tiny Llama is warm-started here on 2-digit addition (SFT to about half right, ~30 s on one CPU
thread), then trained with GRPO; the script prints the mean train reward of the first and last steps and
the greedy held-out accuracy before and after. With ``--model`` and ``--suite`` it trains a real model on a
registered suite or a suite file; multi-turn suites (feedback, tool episodes) are played by
`SuiteRollout` as TRL's ``rollout_func``.

    python examples/trl_grpo.py                                   # tiny model, 2-digit addition, 150 steps
    python examples/trl_grpo.py --model Qwen/Qwen2.5-0.5B-Instruct --suite rft/gsm8k-v0 \\
        --max-new 512 --steps 200 --lr 1e-6 --workers 4 --eval-n 0

Keep the ``__main__`` guard: grader worker processes (``--workers``) import this file again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def warm_start(suite: Any, out: Path, steps: int, seed: int) -> Path:
    """A tiny Llama taught the suite by SFT on ``\\boxed{reference}`` replies (`rft.tiny.warm_start`)."""
    from rft.tiny import warm_start as tiny_warm_start

    return tiny_warm_start(suite, out, steps=steps, seed=seed)


def heldout_accuracy(model: Any, tok: Any, suite: Any, n: int, max_new: int) -> float:
    """Greedy accuracy on the first `n` held-out problems (whole episodes for multi-turn suites)."""
    from rft.engines import HFEngine
    from rft.envs import SuiteEnv
    from rft.eval.heldout import evaluate

    envs = [SuiteEnv(suite) for _ in range(min(n, len(suite.items("heldout"))))]
    return evaluate(HFEngine(model, tok), tok, envs, "heldout", max_new, None)["eval/accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="HF model id or folder (default: a tiny model warm-started here)")
    ap.add_argument(
        "--suite", default="rft/addition-v0", help="registered suite id (rft/gsm8k-v0) or suite YAML"
    )
    ap.add_argument("--steps", type=int, default=150, help="GRPO steps (one generation batch each)")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="samples per prompt (num_generations)")
    ap.add_argument("--micro", type=int, default=64, help="completions per forward/backward micro-batch")
    ap.add_argument("--max-new", type=int, default=12, help="max_completion_length (per turn for episodes)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument(
        "--workers", type=int, default=0, help="grader worker processes (0: grade in this process)"
    )
    ap.add_argument("--async-reward", action="store_true", help="an async reward function (TRL awaits it)")
    ap.add_argument("--eval-n", type=int, default=200, help="held-out problems scored greedily before/after")
    ap.add_argument("--warm-steps", type=int, default=250, help="SFT steps of the default tiny model")
    ap.add_argument("--out", help="output folder (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    batch = args.prompts * args.group
    if batch % args.micro:
        raise SystemExit(f"--micro ({args.micro}) must divide prompts x group ({batch})")

    import logging
    import warnings

    import torch

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL 1.16
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rft.envs import get_suite
    from rft.graders.executor import GraderPool
    from rft.integrations.trl import SuiteRollout, env_reward, suite_dataset, suite_reward_func

    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(1)  # tiny models on CPU: a second thread only slows them down
    with tempfile.TemporaryDirectory(prefix="trl-grpo-") as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        suite = get_suite(args.suite)  # an env id, a suite id or a suite YAML path
        model_path: str | Path | None = args.model
        if model_path is None:
            t0 = time.perf_counter()
            model_path = warm_start(suite, out / "warm", args.warm_steps, args.seed)
            print(f"warm start: {args.warm_steps} SFT steps in {time.perf_counter() - t0:.0f} s")
        tok = AutoTokenizer.from_pretrained(model_path)
        # float32 weights; on a GPU TRL's bf16 autocasts the forwards (pure bf16 weights would lose AdamW's
        # small updates: rft.models.training_precision)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        if cuda:
            model.to("cuda")
        before = heldout_accuracy(model, tok, suite, args.eval_n, args.max_new) if args.eval_n else None

        pool = GraderPool(workers=args.workers) if args.workers else None
        multi_turn = suite.episode.type != "single"
        if multi_turn:  # the episode's reward comes back from the rollout as a dataset column
            reward_funcs: Any = env_reward
            rollout = SuiteRollout(suite, pool=pool)
        else:
            reward_funcs = suite_reward_func(suite, pool=pool, asynchronous=args.async_reward)
            rollout = None
        config = GRPOConfig(
            output_dir=str(out / "trl"),
            per_device_train_batch_size=args.micro,  # completions, not prompts
            gradient_accumulation_steps=batch // args.micro,
            num_generations=args.group,
            max_completion_length=args.max_new,
            temperature=args.temperature,
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            optim="adamw_torch",
            beta=0.0,
            loss_type="dapo",
            gradient_checkpointing=False,
            use_cpu=not cuda,
            bf16=cuda and torch.cuda.is_bf16_supported(),
            report_to=[],
            logging_steps=1,
            save_strategy="no",
            disable_tqdm=True,
            max_steps=args.steps,
            seed=args.seed,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward_funcs,
            args=config,
            train_dataset=suite_dataset(suite),
            processing_class=tok,
            rollout_func=rollout,
        )

        class Progress(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
                if logs and "reward" in logs and (state.global_step % 25 == 0 or state.global_step == 1):
                    print(f"step {state.global_step}: reward {logs['reward']:.3f}", flush=True)

        trainer.remove_callback(PrinterCallback)  # it prints every step's metrics dict
        trainer.add_callback(Progress())
        t0 = time.perf_counter()
        try:
            trainer.train()
        finally:
            if pool is not None:
                pool.close()
        seconds = time.perf_counter() - t0
        rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
        k = max(1, min(25, len(rewards) // 4))
        first, last = statistics.fmean(rewards[:k]), statistics.fmean(rewards[-k:])
        print(f"{suite.id}: {len(rewards)} TRL GRPO steps in {seconds:.0f} s")
        print(f"train reward (mean of {k} steps): start {first:.3f} -> end {last:.3f}")
        if before is not None:
            after = heldout_accuracy(trainer.model, tok, suite, args.eval_n, args.max_new)
            print(
                f"held-out accuracy (greedy, {args.eval_n} problems): start {before:.3f} -> end {after:.3f}"
            )
        if args.out:
            trainer.save_model(str(out / "model"))


if __name__ == "__main__":
    main()
