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


def like_a_suite(folder: Path) -> Path:
    """A suite file rewarding a sample that contains an "a": rewards vary even for a random tiny model, so
    every step updates the weights."""
    path = folder / "like-v0.yaml"
    path.write_text(
        "id: like-v0\n"
        "source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2}, size: 64}\n"
        "fields: {id: id, reference: answer}\n"
        'prompt: {user: "{{ item.question }}"}\n'
        'grader: {type: string_check, operation: like, input: "{{ sample.output_text }}", reference: "a"}\n'
        "split: 0.25\n"
    )
    return path


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
) -> tuple[set[int], set[int]]:
    """For every kept checkpoint: it queued the rollouts of the next `staleness` steps, each with version
    max(0, step - staleness), whose sampler log-probabilities match that version's weights (`initial`: the
    model folder of version 0) within `atol` and, where the next version's weights differ (an update with
    a gradient), miss those by more than `newer_gap`. Returns (the steps checked, those told apart from
    the next version)."""

    def weights(version: int) -> torch.nn.Module:
        folder = initial if version == 0 else kept / f"step-{version:06d}" / "model"
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    checked, told_apart = set(), set()
    for ckpt in sorted(kept.glob("step-*")):
        done = int(ckpt.name.removeprefix("step-"))
        pending = Run.load_state(ckpt)["pending_rollouts"]
        assert [p["step"] for p in pending] == list(range(done, min(done + staleness, steps)))
        for p in pending:
            assert p["version"] == max(0, p["step"] - staleness)
            trajs, _ = p["rollout"]
            batch = collate(trajs, pad_id=0)
            sampler = behaviour_logprobs(trajs, batch.ids.shape[1])  # (B, T-1)
            own, newer = weights(p["version"]), weights(p["version"] + 1)
            with torch.no_grad():
                own_lp = token_logprobs(own, batch)  # (B, T-1)
                newer_lp = token_logprobs(newer, batch)
            on = batch.mask.bool()
            torch.testing.assert_close(own_lp[on], sampler[on], atol=atol, rtol=0)
            checked.add(p["step"])
            pairs = zip(own.state_dict().values(), newer.state_dict().values(), strict=True)
            if all(torch.equal(a, b) for a, b in pairs):
                continue  # that update had no gradient (every group's rewards equal): nothing to tell apart
            assert (newer_lp[on] - sampler[on]).abs().max() > newer_gap, p["step"]
            told_apart.add(p["step"])
    return checked, told_apart
