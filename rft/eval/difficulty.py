"""Difficulty pre-filter: keep the train problems whose pass rate under a model lies in a band.

A prompt that the model always or never solves gives GRPO no gradient (all rewards of its group are
equal). `filter_suite` samples `n` answers per train problem, grades them, and writes the problems whose
pass rate is inside ``[low, high]`` as a new suite (a JSONL file beside a YAML file with the same prompt,
grader and episode) whose items are all train items; evaluate on the original suite's held-out split.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from rft.engines import HFEngine, Sampling
from rft.envs import SuiteEnv, get_suite, suite_path
from rft.graders.executor import GraderPool, GradingPool
from rft.models import load_policy
from rft.rollout import sample_problems

__all__ = ["FilterResult", "filter_suite"]


@dataclass(frozen=True)
class FilterResult:
    suite_path: Path
    rows_path: Path
    kept: int
    total: int
    pass_rates: dict[str, float]  # item id -> pass rate (every problem looked at)


def filter_suite(
    model: str,
    suite: str,
    out: str | Path,
    *,
    band: tuple[float, float] = (0.1, 0.9),
    n: int = 8,
    limit: int | None = None,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    batch_prompts: int = 16,
    seed: int = 0,
    grader_workers: int = 1,
    torch_threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> FilterResult:
    """Write ``out/<id>-band-v0.yaml`` and ``out/rows.jsonl``: the train problems (the first `limit`, or
    all) whose pass rate over `n` samples lies in `band`. Reproducible from `seed`."""
    low, high = band
    if not 0 <= low <= high <= 1:
        raise ValueError(f"band must be two numbers 0 <= low <= high <= 1, got {band}")
    if n < 1:
        raise ValueError(f"n must be >= 1 samples per problem, got {n}")
    torch.set_num_threads(torch_threads)  # 1 for tiny models on CPU: a second thread slows them down
    src_path = suite_path(suite)
    src = get_suite(src_path)
    items = src.items("train")[:limit]
    if not items:
        raise ValueError(f"suite {src.id} has no train items to filter")
    policy, tokenizer = load_policy(model)
    engine = HFEngine(policy, tokenizer)
    envs = [SuiteEnv(src) for _ in range(batch_prompts * n)]
    rates: dict[str, float] = {}
    executor: GradingPool | None = GraderPool(workers=grader_workers) if grader_workers > 0 else None
    try:
        sampling = Sampling(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        batches = sample_problems(
            engine, tokenizer, envs, "train", len(items), n, sampling, executor=executor, progress=progress
        )
        for start, trajs in batches:
            for j in range(len(trajs) // n):
                group = [t for t in trajs[j * n : (j + 1) * n] if not t.failed]
                rate = sum(t.reward >= 1.0 for t in group) / len(group) if group else float("nan")
                rates[items[start + j]["id"]] = rate
    finally:
        if executor is not None:
            executor.close()
    kept = [it for it in items if low <= rates[it["id"]] <= high]  # NaN (every grade failed) is never kept
    return _write(src, kept, rates, Path(out), len(items))


def _write(
    src: Any, kept: list[dict[str, Any]], rates: dict[str, float], out: Path, total: int
) -> FilterResult:
    if not kept:
        raise ValueError(
            f"no problem of {src.id} has a pass rate inside the band (looked at {total}); widen --band, "
            "or warm the model up first (rft train sft) if it solves none"
        )
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    with rows_path.open("w") as f:
        for it in kept:
            f.write(json.dumps({**it, "pass_rate": rates[it["id"]]}) + "\n")
    base = yaml.safe_load(src.path.read_text()) if src.path else {}
    name = src.id.rsplit("-v", 1)[0]
    spec = {
        **{k: v for k, v in base.items() if k not in ("source", "fields", "split", "id", "description")},
        "id": f"{name}-band-v0",
        "description": f"{src.id} train problems with a pass rate in the band ({len(kept)} of {total})",
        "source": {"type": "jsonl", "path": rows_path.name},
        "fields": {"id": "id", "reference": "reference"},
        "split": 0.0,
    }
    suite_path = out / f"{name}-band-v0.yaml"
    suite_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return FilterResult(suite_path, rows_path, len(kept), total, rates)
