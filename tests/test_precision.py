"""Training precision (`dtype`): pure bf16 weights lose Adam's small updates; bf16-mixed (float32 weights,
bf16 forward passes) keeps them. On a CPU bf16 runs through torch's CPU autocast; tests/test_gpu.py runs
`dtype: auto` (bf16-mixed there) on a GPU when there is one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rft.config import load_config
from rft.models import fast_attention, pick_dtype, training_precision

torch.set_num_threads(1)


def test_training_precision_resolves_auto_per_device_and_lora():
    cpu = torch.device("cpu")
    assert training_precision("auto", "cpu", lora=False) == ("auto", None)  # float32 on a CPU
    assert pick_dtype("auto", cpu) == torch.float32
    assert training_precision("bfloat16", "cpu", lora=False) == ("bfloat16", None)
    for lora in (False, True):
        assert training_precision("bf16-mixed", "cpu", lora=lora) == ("bf16-mixed", torch.bfloat16)
    assert pick_dtype("bf16-mixed", cpu) == torch.float32  # the weights; autocast does the bf16


def test_fast_attention_keeps_cudnn_out_on_a_gpu_only():
    """torch's attention flags are process-wide and exist without a GPU: a CUDA device turns cuDNN off for
    the context's life (and restores it); a CPU leaves the flags alone."""
    flags = torch.backends.cuda
    assert flags.cudnn_sdp_enabled()
    with fast_attention("cpu"):
        assert flags.cudnn_sdp_enabled()
    with fast_attention("cuda:0"):
        assert not flags.cudnn_sdp_enabled()
        assert flags.flash_sdp_enabled() and flags.mem_efficient_sdp_enabled() and flags.math_sdp_enabled()
    assert flags.cudnn_sdp_enabled()


def _grpo(model: Path, suite: Path, out: Path, *extra: str) -> dict:
    from rft.rl.grpo import GRPOConfig, train

    cfg = load_config(
        GRPOConfig,
        None,
        [f"model={model}", f"suite={suite}", f"out={out}", "steps=2", "prompts_per_step=4", "group_size=8",
         "gen.max_new_tokens=12", "eval.n=0", "grader_workers=0", "device=cpu", *extra],
    )  # fmt: skip
    train(cfg)
    return load_file(out / "checkpoints" / "step-000002" / "model" / "model.safetensors")


def _changed(before: dict, after: dict) -> float:
    """The share of weights that differ, compared in the saved dtype."""
    moved = total = 0
    for k, a in after.items():
        moved += int((a != before[k].to(a.dtype)).sum())
        total += a.numel()
    return moved / total


@pytest.mark.slow
def test_pure_bf16_loses_small_updates_and_bf16_mixed_keeps_them(tmp_path, warm):
    """Two GRPO steps at lr 1e-6: AdamW moves each weight by about 1e-6, below half the bf16 spacing of
    all but the smallest weights, so pure bf16 weights barely change (measured: 1.6% of them; 12% at lr
    1e-5); float32 weights under bf16 autocast all move (100%), as do plain float32 ones."""
    model, suite = warm
    before = load_file(model / "model.safetensors")
    pure = _grpo(model, suite, tmp_path / "bf16", "lr=1e-6", "dtype=bfloat16")
    mixed = _grpo(model, suite, tmp_path / "mixed", "lr=1e-6", "dtype=bf16-mixed")
    fp32 = _grpo(model, suite, tmp_path / "fp32", "lr=1e-6", "dtype=float32")
    assert all(t.dtype == torch.bfloat16 for t in pure.values())
    assert all(t.dtype == torch.float32 for t in mixed.values())  # master weights stay float32
    shares = {name: _changed(before, w) for name, w in (("bf16", pure), ("mixed", mixed), ("fp32", fp32))}
    assert shares["bf16"] < 0.1, shares
    assert shares["mixed"] > 0.9 and shares["fp32"] > 0.9, shares
    rows = [json.loads(x) for x in (tmp_path / "mixed" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["loss/grad_norm"] > 0 for r in rows if "loss/grad_norm" in r)


@pytest.mark.slow
def test_ppo_trains_in_bf16_mixed(tmp_path, warm):
    """PPO under bf16 autocast: float32 policy and value head, finite losses, every weight moves."""
    from rft.rl.ppo import PPOConfig, train

    model, suite = warm
    cfg = load_config(
        PPOConfig,
        None,
        [f"model={model}", f"suite={suite}", f"out={tmp_path / 'run'}", "steps=2", "prompts_per_step=8",
         "gen.max_new_tokens=12", "eval.n=0", "grader_workers=0", "device=cpu", "dtype=bf16-mixed",
         "lr=1e-5"],
    )  # fmt: skip
    train(cfg)
    after = load_file(tmp_path / "run" / "checkpoints" / "step-000002" / "model" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in after.values())
    assert _changed(load_file(model / "model.safetensors"), after) > 0.9
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r[k] for r in rows for k in ("loss/policy", "loss/value") if k in r]
    assert losses and all(torch.isfinite(torch.tensor(x)) for x in losses)


def test_a_mixed_precision_policy_samples_in_bf16():
    """The sampler follows the policy's compute dtype, not its float32 weights: hf autocasts, vllm runs in
    bf16 unless the recipe names its dtype."""
    from rft.rl.grpo import GRPOConfig
    from rft.rl.harness import engine_options

    cfg = GRPOConfig(model="m", suite="rft/addition-v0", engine_options={"batch_size": 8})
    assert engine_options(cfg, torch.bfloat16) == {"batch_size": 8, "autocast": torch.bfloat16}
    assert engine_options(cfg, None) == {"batch_size": 8}
    vllm = GRPOConfig(model="m", suite="rft/addition-v0", engine="vllm")
    assert engine_options(vllm, torch.bfloat16) == {"dtype": "bfloat16"}
    named = GRPOConfig(model="m", suite="rft/addition-v0", engine="vllm", engine_options={"dtype": "float16"})
    assert engine_options(named, torch.bfloat16) == {"dtype": "float16"}
