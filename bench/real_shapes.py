"""One GRPO update at real shapes, rft against TRL's GRPOTrainer: peak memory, s/update, gradient cosine.

The model is a Qwen2 architecture built from a config with Qwen2.5-0.5B's widths (vocabulary 151,936, hidden
896, 14 heads, 2 key/value heads, intermediate 4,864, tied embeddings) and `--layers` layers, random init,
seeded: this measures memory and time, not learning. The batch is `--prompts` x `--group` rows: one prompt of
`--prompt-len` random tokens per group (all prompts of one length: TRL's training forward left-pads prompts
without position ids, so prompts of different lengths would give TRL other positions than rft and than the
sampler), completions of random tokens with lengths drawn uniformly in [`--min-completion`,
`--max-completion`], rewards drawn from a normal distribution (variance in every group), all from `--seed`.
Advantages are rft's `group_advantages` (group mean and std, as TRL's scale_rewards="group"), computed once and
given to both trainers.

Each trainer runs in its OWN subprocess, so its peak RSS (VmHWM, reset with /proc/self/clear_refs after the
model and optimizer are built) is the update's alone; "before" is the RSS just before the update (weights,
inputs, the runtime), "peak" the highest RSS during it (it adds gradients, AdamW's two moments, created at its
first step, and the activations). On CUDA the GPU's peak allocated memory is reported instead.

Equal settings: loss "dapo" (token sum over the minibatch's completion tokens), eps 0.2 / 0.28, beta 0, one
pass (old log-probs = current, detached), the same micro-batch size (`--micro` rows), gradient-norm clip 1.0,
AdamW with the same lr and weight decay 0 (each trainer's own: `rft.models.adamw` and TRL's default `optim`,
adamw_torch_fused; both torch's fused AdamW here), the same weights, token ids, masks and advantages, float32 on CPU
(`--device cuda --dtype bf16-mixed`: float32 weights, bf16 autocast, for both).
- rft: `rft.rl.grpo._update` (the function `train` calls each step), with its defaults for everything not
  named above (shared prompt prefix, rows sorted by length into micro-batches, `--micro-tokens`).
- TRL 1.16: a `GRPOTrainer` built on the same model object (it patches the model with its fused chunked LM
  head, `trl.trainer.utils.add_fused_lm_head`), then its `compute_loss` (`_compute_loss`) on each micro-batch
  of the batch as its `_generate_and_score_completions` lays it out (prompts left-padded, completions right-
  padded to the longest completion of the whole batch, `num_items_in_batch` = the batch's completion tokens),
  `accelerator.backward`, clip, AdamW step: what its `training_step` does, without generation.
Time is wall-clock of the update (first forward to the end of the optimizer step), after one warm-up of
neither trainer (both pay their first-call costs; the comparison is like for like).

Gradients (before clipping; cosine does not depend on the clip's scale) of the embedding (every 8th row: it is
also the tied head) and of every other parameter are saved by each side and compared here.

Prints a table and last lines `peak_mem_ratio_vs_trl=`, `update_time_ratio_vs_trl=`, `grad_cosine=`
(ratio = rft / TRL of the update's peak memory and of s/update).
Run: python bench/real_shapes.py [--layers 2] [--prompts 8 --group 8] [--max-completion 1024] [--micro 8]
[--threads 1] [--device cpu|cuda --dtype float32|bf16-mixed]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VOCAB, HIDDEN, HEADS, KV_HEADS, INTER = 151_936, 896, 14, 2, 4_864
EMBED_STRIDE = 8  # embedding rows saved for the cosine: every 8th


def build_model(layers: int, seed: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=layers,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        intermediate_size=INTER,
        tie_word_embeddings=True,
        max_position_embeddings=32_768,
        rope_theta=1_000_000.0,
        use_sliding_window=False,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def make_batch(args: argparse.Namespace) -> dict[str, Any]:
    """Token ids, completion lengths, rewards and advantages, from `args.seed`."""
    import torch

    from rft.losses import group_advantages

    gen = torch.Generator().manual_seed(args.seed + 1)
    n = args.prompts * args.group
    prompts = torch.randint(0, VOCAB, (args.prompts, args.prompt_len), generator=gen)  # (P, L)
    lengths = torch.randint(args.min_completion, args.max_completion + 1, (n,), generator=gen)  # (N,)
    completions = [torch.randint(0, VOCAB, (int(k),), generator=gen) for k in lengths]
    rewards = torch.randn(n, generator=gen)  # (N,): every group has variance
    adv = group_advantages(rewards, args.group, "group")  # (N,)
    return {"prompts": prompts, "completions": completions, "adv": adv}


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def memory_mark(device: str) -> float:
    """Bytes in use now: RSS on CPU, allocated GPU memory on CUDA."""
    import torch

    if device == "cuda":
        return float(torch.cuda.memory_allocated())
    return status_kb("VmRSS") * 1024.0


def memory_peak(device: str) -> float:
    import torch

    if device == "cuda":
        return float(torch.cuda.max_memory_allocated())
    return status_kb("VmHWM") * 1024.0


def save_grads(model: Any, path: Path) -> None:
    import torch

    out = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        g = p.grad.detach().float().cpu()
        out[name] = g[::EMBED_STRIDE].clone() if "embed_tokens" in name else g.clone()
    torch.save(out, path)


# ---- the two trainers, each in its own process ----------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = build_model(args.layers, args.seed).to(device)
    model.train()
    data = make_batch(args)
    optimizer: Any = None  # each trainer's own AdamW: rft's `adamw`, TRL's `optim` default (fused)
    grads = Path(args.out) / f"{args.side}-grads.pt"

    def save_before_step(opt: Any, *_: Any) -> None:
        mark["peak_before_step"] = memory_peak(args.device)
        save_grads(model, grads)  # copies: the peak is reset after them, so they do not count
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            reset_peak()

    mark: dict[str, float] = {}
    run = run_rft if args.side == "rft" else run_trl
    update, optimizer = run(args, model, data, device)  # builds what the side needs, returns the update
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    reset = reset_peak()
    before = memory_mark(args.device)
    optimizer.register_step_pre_hook(save_before_step)
    t0, c0 = time.perf_counter(), time.process_time()
    update()
    if args.device == "cuda":
        torch.cuda.synchronize()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    result = {
        "side": args.side,
        "seconds": seconds,
        "cpu": cpu,
        "before": before,
        "peak": max(memory_peak(args.device), mark.get("peak_before_step", 0.0)),
        "peak_reset": reset,
        "params": sum(p.numel() for p in model.parameters()),
        "tokens": int(sum(len(c) for c in data["completions"])),
    }
    (Path(args.out) / f"{args.side}.json").write_text(json.dumps(result))


def run_rft(args: argparse.Namespace, model: Any, data: dict[str, Any], device: Any) -> tuple[Any, Any]:
    import torch

    from rft.models import adamw
    from rft.rl.grpo import CorrectionConfig, GenConfig, GRPOConfig, LossConfig, _update
    from rft.rollout import Trajectory

    cfg = GRPOConfig(
        model="(in memory)",
        suite="(none)",
        prompts_per_step=args.prompts,
        group_size=args.group,
        lr=args.lr,
        max_grad_norm=1.0,
        micro_batch=args.micro,
        micro_tokens=int(args.micro_tokens[0].split(":")[0]),  # a child gets one value
        gen=GenConfig(temperature=1.0, max_new_tokens=args.max_completion),
        # hand-made rollouts carry no sampler log-probs: no mismatch metrics
        loss=LossConfig(agg="dapo", eps_low=0.2, eps_high=0.28, beta=0.0, correction=CorrectionConfig(metrics=False)),
        dtype=args.dtype,
        device=args.device,
    )
    if args.micro_tokens[0].endswith(":plain"):
        import rft.rl.grpo

        rft.rl.grpo.LINEAR_AT_RATIO_1 = ()  # the checkpointed head (recomputation in backward)
    trajs = []
    for i, comp in enumerate(data["completions"]):
        prompt = data["prompts"][i // args.group].tolist()
        ids = prompt + comp.tolist()
        trajs.append(Trajectory(i // args.group, ids, [0] * len(prompt) + [1] * len(comp), len(prompt)))
    adv = data["adv"]
    valid = torch.ones(len(trajs), dtype=torch.bool)

    optimizer = adamw(model.parameters(), lr=args.lr, weight_decay=0.0)  # as `rft.rl.grpo.train`

    def update() -> None:
        _update(cfg, model, None, optimizer, trajs, adv, valid, 0, device, 1, 0)

    return update, optimizer


def run_trl(args: argparse.Namespace, model: Any, data: dict[str, Any], device: Any) -> tuple[Any, Any]:
    import torch
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    n = args.prompts * args.group
    if n % args.micro:
        raise SystemExit(f"--micro {args.micro} must divide prompts x group ({n}) for TRL")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1, "<unk>": 2}, unk_token="<unk>")),
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
    )
    accum = n // args.micro
    config = GRPOConfig(
        output_dir=str(Path(args.out) / "trl"),
        per_device_train_batch_size=args.micro,
        gradient_accumulation_steps=accum,
        num_generations=args.group,
        max_completion_length=args.max_completion,
        learning_rate=args.lr,
        weight_decay=0.0,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        loss_type="dapo",
        epsilon=0.2,
        epsilon_high=0.28,
        beta=0.0,
        scale_rewards="group",
        num_iterations=1,
        gradient_checkpointing=False,
        use_cpu=args.device == "cpu",
        bf16=args.dtype == "bf16-mixed",
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=args.seed,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **_: [0.0] * len(completions),
        args=config,
        train_dataset=Dataset.from_list([{"prompt": "x"}] * n),
        processing_class=tok,
    )
    trainer.current_gradient_accumulation_steps = accum  # set by Trainer's loop; _compute_loss reads it
    # the batch as `_generate_and_score_completions` lays it out: prompts left-padded (all one length here),
    # completions right-padded to the longest of the whole generation batch
    comps = data["completions"]
    width = max(len(c) for c in comps)
    completion_ids = torch.zeros((n, width), dtype=torch.long)  # (N, C)
    completion_mask = torch.zeros((n, width), dtype=torch.long)  # (N, C)
    for i, c in enumerate(comps):
        completion_ids[i, : len(c)] = c
        completion_mask[i, : len(c)] = 1
    prompt_ids = data["prompts"].repeat_interleave(args.group, dim=0)  # (N, L)
    batch = {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": data["adv"],
        "num_items_in_batch": completion_mask.sum(),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    trained = trainer.model  # the same object, patched with the fused head
    optimizer = trainer.create_optimizer()  # its default `optim`: adamw_torch_fused (torch >= 2.8)

    def update() -> None:
        optimizer.zero_grad(set_to_none=True)
        for start in range(0, n, args.micro):
            inputs = {
                k: (v if k == "num_items_in_batch" else v[start : start + args.micro])
                for k, v in batch.items()
            }
            with trainer.compute_loss_context_manager():
                loss = trainer.compute_loss(trained, inputs)
            trainer.accelerator.backward(loss)
        torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        optimizer.step()

    return update, optimizer


# ---- the parent: both children, the table -----------------------------------------------------------------


def cosine(a: Path, b: Path) -> tuple[float, dict[str, float]]:
    import torch

    ga, gb = torch.load(a), torch.load(b)
    if set(ga) != set(gb):
        raise RuntimeError(f"the two sides have gradients for different parameters: {set(ga) ^ set(gb)}")
    dot = na = nb = 0.0
    per: dict[str, float] = {}
    for k in ga:
        x, y = ga[k].double().flatten(), gb[k].double().flatten()
        dot, na, nb = dot + float(x @ y), na + float(x @ x), nb + float(y @ y)
        per[k] = float(x @ y) / max(1e-300, (float(x @ x) * float(y @ y)) ** 0.5)
    return dot / max(1e-300, (na * nb) ** 0.5), per


def gib(x: float) -> str:
    return f"{x / 2**30:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2, help="decoder layers (Qwen2.5-0.5B has 24)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8, help="samples per prompt")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--min-completion", type=int, default=64)
    ap.add_argument("--max-completion", type=int, default=1024)
    ap.add_argument("--micro", type=int, default=8, help="rows per micro-batch, both trainers")
    ap.add_argument(
        "--micro-tokens",
        nargs="+",
        default=["0"],
        help="one rft row per value of its micro_tokens (0: off, micro-batches of --micro rows; N:plain: the "
        "head's gradient by recomputation in backward, as before the on-policy fast path); the ratios are the "
        "first row's",
    )
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in each child")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bf16-mixed"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["rft", "trl"], help="run one side (profiling)")
    ap.add_argument("--side", choices=["rft", "trl"], help=argparse.SUPPRESS)  # a child's side
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        child(args)
        return
    if args.device == "cpu" and args.dtype != "float32":
        raise SystemExit("--dtype bf16-mixed needs --device cuda (TRL refuses bf16 on CPU)")
    with tempfile.TemporaryDirectory(prefix="real-shapes-") as tmp:
        results: dict[str, dict[str, Any]] = {}
        runs = [("trl", "0")] + [("rft", t) for t in args.micro_tokens]
        runs = [r for r in runs if args.only in (None, r[0])]
        base = sys.argv[1:]
        for side, tokens in runs:
            key = side if side == "trl" else f"rft{tokens}"
            cmd = [sys.executable, __file__, *base, "--side", side, "--out", f"{tmp}/{key}"]
            cmd += ["--micro-tokens", tokens]  # the last value given wins in argparse
            Path(tmp, key).mkdir()
            subprocess.run(cmd, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            results[key] = json.loads((Path(tmp) / key / f"{side}.json").read_text())
            if "trl" in results and side == "rft":
                results[key]["cos"] = cosine(Path(tmp, key, "rft-grads.pt"), Path(tmp, "trl", "trl-grads.pt"))
    sides = list(results)
    r0 = results[sides[0]]
    what = "GPU allocated" if args.device == "cuda" else "RSS"
    print(
        f"Qwen2 shapes: vocab {VOCAB}, hidden {HIDDEN}, {args.layers} layers, {r0['params'] / 1e6:.0f}M params;"
        f" {args.prompts} prompts x {args.group} samples, prompt {args.prompt_len} tokens, completions"
        f" {args.min_completion}-{args.max_completion} ({r0['tokens']} completion tokens); micro-batch {args.micro}"
        f" rows; {args.device} {args.dtype},"
        f" {args.threads} torch thread(s); load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'trainer':34} {what + ' before GiB':>16} {'peak GiB':>9} {'update GiB':>11} {'s/update':>9}"
        f" {'cpu s':>7} {'grad cosine':>12}"
    )
    for key in sides:
        r = results[key]
        tokens, _, plain = key[3:].partition(":")
        name = "TRL GRPOTrainer 1.16"
        if key != "trl":
            name = "rft _update, " + (
                f"micro_tokens {tokens}" if int(tokens) else f"micro_batch {args.micro}"
            )
            name += ", plain head" if plain else ""
        cos = f"{r['cos'][0]:.6f}" if "cos" in r else ""
        print(
            f"{name:34} {gib(r['before']):>16} {gib(r['peak']):>9} {gib(r['peak'] - r['before']):>11}"
            f" {r['seconds']:9.1f} {r['cpu']:7.1f} {cos:>12}"
        )
    print(
        f"static part of the update: gradients {gib(4 * r0['params'])} GiB + AdamW moments"
        f" {gib(8 * r0['params'])} GiB (float32, {r0['params'] / 1e6:.0f}M parameters)"
    )
    if "trl" not in results or len(sides) < 2:
        return
    rft, trl = results[sides[1]], results["trl"]
    cos, per = rft["cos"]
    worst = min(per, key=lambda k: per[k])
    print(f"{sides[1]}: lowest gradient cosine of one parameter {per[worst]:.6f} ({worst})")
    print(
        f"update memory (peak - before) ratio {(rft['peak'] - rft['before']) / (trl['peak'] - trl['before']):.3f};"
        f" cpu time ratio {rft['cpu'] / trl['cpu']:.3f}"
    )
    print(f"peak_mem_ratio_vs_trl={rft['peak'] / trl['peak']:.3f}")
    print(f"update_time_ratio_vs_trl={rft['seconds'] / trl['seconds']:.3f}")
    print(f"grad_cosine={cos:.6f}")


if __name__ == "__main__":
    main()
