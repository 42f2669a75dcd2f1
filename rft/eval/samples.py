"""Graded samples: `n` episodes per problem of a suite, each graded by the suite's grader, one JSON line each.

The file is the raw material of rejection-sampled SFT data (the passing samples) and of DPO pairs (a
passing and a failing sample of one prompt), see `rft.sft_dpo.data`. Sampling is seeded: the same model,
suite and arguments write the same file.

Each row::

    {"id", "split", "index", "sample", "messages": [prompt messages], "completion": [assistant and
     environment messages], "reward", "passed", "status", "grade", "reference", "overlong"}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch

from rft.chat import ChatConfig, use_chat_template
from rft.engines import HFEngine, Sampling
from rft.envs import SuiteEnv, get_suite
from rft.graders.executor import GraderPool, GradingPool
from rft.models import load_policy
from rft.rollout import Trajectory, sample_problems

__all__ = ["sample_suite", "sample_row"]


def sample_suite(
    model: str | Path,
    suite: str,
    out: str | Path,
    *,
    n: int = 8,
    split: Literal["train", "heldout"] = "train",
    limit: int | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    batch_prompts: int = 16,
    grader_workers: int = 1,
    torch_threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
    chat: ChatConfig | None = None,
) -> dict[str, Any]:
    """Write `n` graded samples of each of the first `limit` problems of `split` (all when None) to the JSONL
    file `out`; returns a summary (rows, problems, pass rate, how many problems have both a passing and a
    failing sample, grader failures). `chat`: the chat template and its kwargs (`rft.chat`)."""
    if n < 1:
        raise ValueError(f"n must be >= 1 samples per problem, got {n}")
    if temperature == 0 and n > 1:
        raise ValueError("temperature 0 (greedy) gives n identical samples; use temperature > 0 or n=1")
    torch.set_num_threads(torch_threads)  # 1 for tiny models on CPU: a second thread slows them down
    src = get_suite(suite)
    items = src.items(split)[:limit]
    if not items:
        raise ValueError(f"suite {src.id} has no {split} problems to sample (limit={limit})")
    chat = chat or ChatConfig()
    policy, tokenizer = load_policy(model)
    use_chat_template(tokenizer, chat)
    engine = HFEngine(policy, tokenizer)
    envs = [SuiteEnv(src, split=split) for _ in range(batch_prompts * n)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    rows = passed = failed = mixed = 0
    executor: GradingPool | None = GraderPool(workers=grader_workers) if grader_workers > 0 else None
    try:
        with tmp.open("w") as f:
            sampling = Sampling(
                temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed
            )
            batches = sample_problems(
                engine,
                tokenizer,
                envs,
                split,
                len(items),
                n,
                sampling,
                executor=executor,
                progress=progress,
                chat_template_kwargs=chat.kwargs,
            )
            for start, trajs in batches:
                for j in range(len(trajs) // n):
                    group = trajs[j * n : (j + 1) * n]
                    for k, t in enumerate(group):
                        row = sample_row(t, split, start + j, k)
                        f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                        passed += row["passed"]
                        failed += t.failed
                    ok = [t for t in group if not t.failed]
                    mixed += any(_passed(t) for t in ok) and not all(_passed(t) for t in ok)
                    rows += len(group)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
        if executor is not None:
            executor.close()
    return {
        "path": str(out),
        "rows": rows,
        "problems": len(items),
        "pass_rate": passed / rows,
        "mixed_problems": mixed,  # a passing and a failing sample: what DPO pairs come from
        "grader_failed": failed,
    }


def _passed(t: Trajectory) -> bool:
    grade = t.info.get("grade") or {}
    return bool(grade.get("passed")) and not t.failed


def sample_row(t: Trajectory, split: str, index: int, sample: int) -> dict[str, Any]:
    """One graded sample as a JSON-able row (prompt messages and completion messages kept apart)."""
    row = t.record()
    return {
        "id": row.pop("id"),
        "split": split,
        "index": index,
        "sample": sample,
        **row,
        "passed": _passed(t),
    }
