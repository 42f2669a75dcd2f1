"""Graded samples: `n` episodes per problem of a suite, each graded by the suite's grader, one JSON line each.

The file is the raw material of rejection-sampled SFT data (the passing samples) and of DPO pairs (a
passing and a failing sample of one prompt), see `rft.sft_dpo.data`. Sampling is seeded: the same model,
suite and arguments write the same file. `suite` may name a mix (`rft.envs.mix.read_mix`: a mix YAML or a
list ``a:2,b:1``): each suite's first problems in proportion to the weights (`limit` problems in all, else
as many as the scarcest suite allows), each row naming its ``suite``.

Each row::

    {"id", "suite", "split", "index", "sample", "messages": [prompt messages], "completion": [assistant
     and environment messages], "reward", "passed", "status", "grade", "reference", "overlong"}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch

from rft.chat import ChatConfig, use_chat_template
from rft.engines import HFEngine, Sampling
from rft.envs import SuiteEnv
from rft.envs.mix import MixSpec, load_mix, mix_counts, read_mix
from rft.graders.executor import GraderPool, GradingPool
from rft.models import load_policy
from rft.rollout import Trajectory, sample_problems

__all__ = ["sample_suite", "sample_row"]


def sample_suite(
    model: str | Path,
    suite: str | MixSpec,
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
    spec = read_mix(suite)
    suites = load_mix(spec, train=split == "train")
    available = [len(s.items(split)) for s in suites]
    if len(suites) == 1:
        counts = [min(available[0], available[0] if limit is None else limit)]
    else:
        counts = mix_counts(available, spec.weights, total=limit)
    if not all(counts):
        empty = [s.id for s, c in zip(suites, counts, strict=True) if not c]
        raise ValueError(f"suite {', '.join(empty)} has no {split} problems to sample (limit={limit})")
    chat = chat or ChatConfig()
    policy, tokenizer = load_policy(model)
    use_chat_template(tokenizer, chat)
    engine = HFEngine(policy, tokenizer)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    rows = passed = failed = mixed = 0
    executor: GradingPool | None = GraderPool(workers=grader_workers) if grader_workers > 0 else None
    total, before = sum(counts), 0
    try:
        with tmp.open("w") as f:
            sampling = Sampling(
                temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed
            )
            for src, count in zip(suites, counts, strict=True):
                envs = [SuiteEnv(src, split=split) for _ in range(min(batch_prompts, count) * n)]
                tick = None if progress is None else _offset(progress, before, total)
                batches = sample_problems(
                    engine,
                    tokenizer,
                    envs,
                    split,
                    count,
                    n,
                    sampling,
                    executor=executor,
                    progress=tick,
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
                before += count
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
        if executor is not None:
            executor.close()
    return {
        "path": str(out),
        "rows": rows,
        "problems": total,
        "per_suite": dict(zip([s.id for s in suites], counts, strict=True)),
        "pass_rate": passed / rows,
        "mixed_problems": mixed,  # a passing and a failing sample: what DPO pairs come from
        "grader_failed": failed,
    }


def _offset(progress: Callable[[int, int], None], before: int, total: int) -> Callable[[int, int], None]:
    """One suite's progress as part of the whole file's."""
    return lambda done, _: progress(before + done, total)


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
