"""Checks for async runs with `max_staleness` (tests/test_async_rollout.py, tests/test_vllm_engine.py): keep
every checkpoint of a run, and check that the rollouts a checkpoint queued were sampled by the weights of
the version it records, not by the next ones."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from rft.batch import behaviour_logprobs, collate, token_logprobs
from rft.runs import Run


def keeper(run: Path, kept: Path) -> Callable[..., None]:
    """A `progress` callback that copies the run's checkpoints into `kept` (a run keeps its newest two);
    call it once more after the run for the last one."""
    kept.mkdir(parents=True, exist_ok=True)

    def keep(*_: Any) -> None:
        for ckpt in (run / "checkpoints").glob("step-*"):
            if not (kept / ckpt.name).exists():
                shutil.copytree(ckpt, kept / ckpt.name)

    return keep


def check_sampled_by_their_version(
    kept: Path, initial: Path, steps: int, staleness: int, *, atol: float, newer_gap: float
) -> set[int]:
    """For every kept checkpoint: it queued the rollouts of the next `staleness` steps, each with version
    max(0, step - staleness), whose sampler log-probabilities match that version's weights (`initial`: the
    model folder of version 0) within `atol` and miss the next version's by more than `newer_gap`. Returns
    the steps checked."""

    def weights(version: int) -> torch.nn.Module:
        folder = initial if version == 0 else kept / f"step-{version:06d}" / "model"
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    checked = set()
    for ckpt in sorted(kept.glob("step-*")):
        done = int(ckpt.name.removeprefix("step-"))
        pending = Run.load_state(ckpt)["pending_rollouts"]
        assert [p["step"] for p in pending] == list(range(done, min(done + staleness, steps)))
        for p in pending:
            assert p["version"] == max(0, p["step"] - staleness)
            trajs, _ = p["rollout"]
            batch = collate(trajs, pad_id=0)
            sampler = behaviour_logprobs(trajs, batch.ids.shape[1])  # (B, T-1)
            with torch.no_grad():
                own = token_logprobs(weights(p["version"]), batch)  # (B, T-1)
                newer = token_logprobs(weights(p["version"] + 1), batch)
            on = batch.mask.bool()
            torch.testing.assert_close(own[on], sampler[on], atol=atol, rtol=0)
            assert (newer[on] - sampler[on]).abs().max() > newer_gap, p["step"]
            checked.add(p["step"])
    return checked
