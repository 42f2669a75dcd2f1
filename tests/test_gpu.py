"""The GPU paths of the training loops, run where a CUDA device is (skipped elsewhere, so on CI): `dtype:
auto` is bf16 mixed precision there (float32 weights, bf16 forward passes), a LoRA base loads in bf16, the
async sampler runs on the GPU too, TRL's SFT trains with bf16 autocast. The learning tests are the CPU ones
(tests/test_grpo.py, tests/test_ppo.py) with the device and precision changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rft.config import from_dict, load_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _saved(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / f"step-{step:06d}" / "model" / "model.safetensors")


def test_auto_is_bf16_mixed_on_this_gpu():
    from rft.models import training_precision

    assert torch.cuda.is_bf16_supported()
    assert training_precision("auto", "auto", lora=False) == ("bf16-mixed", torch.bfloat16)
    assert training_precision("auto", "cuda", lora=True) == ("auto", None)  # the base in bf16 (pick_dtype)


def test_grpo_learns_on_the_gpu_in_bf16_mixed(tmp_path, warm):
    """tests/test_grpo.py's learning test on the GPU with dtype auto: +0.08 held-out in 120 steps."""
    from rft.rl.grpo import GRPOConfig, train

    model, suite = warm
    cfg = load_config(
        GRPOConfig,
        None,
        [f"model={model}", f"suite={suite}", f"out={tmp_path / 'run'}", "steps=120", "prompts_per_step=8",
         "group_size=8", "gen.max_new_tokens=12", "lr=1e-4", "eval.n=200", "grader_workers=0",
         "device=cuda", "save_every=60"],
    )  # fmt: skip
    final = train(cfg)
    first = _metrics(tmp_path / "run")[0]
    assert final["eval/accuracy"] >= first["eval/accuracy"] + 0.08, (first, final)
    weights = _saved(tmp_path / "run", 120)
    assert all(t.dtype == torch.float32 for t in weights.values())  # the master weights


def test_ppo_learns_on_the_gpu_in_bf16_mixed(tmp_path, warm):
    """tests/test_ppo.py's learning test on the GPU with dtype auto: +0.06 held-out in 40 steps."""
    from rft.rl.ppo import PPOConfig, train

    model, suite = warm
    cfg = from_dict(
        PPOConfig,
        {"model": str(model), "suite": str(suite), "out": str(tmp_path / "run"), "steps": 40,
         "prompts_per_step": 64, "micro_batch": 64, "lr": 1e-4, "critic_lr": 1e-2,
         "gen": {"max_new_tokens": 12}, "eval": {"n": 200}, "grader_workers": 0, "device": "cuda"},
    )  # fmt: skip
    final = train(cfg)
    first = _metrics(tmp_path / "run")[0]
    assert final["eval/accuracy"] >= first["eval/accuracy"] + 0.06, (first, final)


def test_lora_on_the_gpu_keeps_a_bf16_base_and_a_float32_adapter(tmp_path, warm):
    from rft.models import load_policy
    from rft.rl.grpo import GRPOConfig, train

    model, suite = warm
    cfg = load_config(
        GRPOConfig,
        None,
        [f"model={model}", f"suite={suite}", f"out={tmp_path / 'run'}", "steps=3", "prompts_per_step=8",
         "group_size=8", "gen.max_new_tokens=12", "lr=1e-3", "eval.n=0", "grader_workers=0",
         "device=cuda", "lora.r=8", "lora.target_modules=[q_proj,v_proj]"],
    )  # fmt: skip
    policy, _ = load_policy(model, lora=cfg.lora, device="cuda")
    base = [p for n, p in policy.named_parameters() if "lora_" not in n]
    adapter = [p for n, p in policy.named_parameters() if "lora_" in n]
    assert {p.dtype for p in base} == {torch.bfloat16} and {p.dtype for p in adapter} == {torch.float32}
    train(cfg)
    saved = load_file(
        tmp_path / "run" / "checkpoints" / "step-000003" / "model" / "adapter_model.safetensors"
    )
    lora_b = [t for n, t in saved.items() if "lora_B" in n]  # initialised to zeros: trained if non-zero
    assert lora_b and all(t.dtype == torch.float32 for t in lora_b)
    assert any(t.abs().max() > 0 for t in lora_b)


@pytest.mark.parametrize("staleness", [1, 3])
def test_async_rollout_samples_on_the_gpu(tmp_path, warm, staleness):
    """The async sampler's child process loads its copy on the trainer's device, in bf16 (it never trains);
    with max_staleness 3 it takes CPU copies of the GPU weights (`weight_snapshot`)."""
    from rft.rl.grpo import GRPOConfig, train

    model, suite = warm
    cfg = load_config(
        GRPOConfig,
        None,
        [f"model={model}", f"suite={suite}", f"out={tmp_path / 'run'}", "steps=4", "prompts_per_step=8",
         "group_size=8", "gen.max_new_tokens=12", "eval.n=0", "grader_workers=0", "device=cuda",
         "async_rollout=true", f"max_staleness={staleness}"],
    )  # fmt: skip
    train(cfg)
    rows = [r for r in _metrics(tmp_path / "run") if "time/step_s" in r]
    assert len(rows) == 4 and all(r["loss/clip_frac"] >= 0 for r in rows)
    assert [r["rollout/weight_version"] for r in rows] == [max(0, s - staleness) for s in range(4)]
    assert all(0 <= r["reward/mean"] <= 1 for r in rows)


def test_sft_on_the_gpu_trains_float32_weights_under_bf16_autocast(tmp_path):
    from test_sft_dpo import tiny_model, write_suite

    from rft.sft_dpo import SFTConfig, train_sft
    from rft.sft_dpo.stage import load_model, trl_args

    suite = write_suite(tmp_path)
    base = tiny_model(tmp_path / "base", suite)
    cfg = load_config(
        SFTConfig,
        None,
        [f"model={base}", f"suite={suite}", f"out={tmp_path / 'run'}", "steps=40", "batch_size=32",
         "lr=2e-3", "eval.n=0", "grader_workers=0"],
    )  # fmt: skip
    model, _ = load_model(cfg)
    assert next(model.parameters()).dtype == torch.float32 and next(model.parameters()).is_cuda
    from trl import SFTConfig as TRLSFTConfig

    assert trl_args(TRLSFTConfig, cfg).bf16
    train_sft(cfg)
    losses = [m["loss/sft"] for m in _metrics(tmp_path / "run") if "loss/sft" in m]
    assert len(losses) >= 20 and losses[-1] < losses[0] / 2
    saved = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in saved.values())
