"""Training data built from task suites and graders, with no hand work.

- `sft_rows`: conversations ``{"messages": prompt + [assistant reply]}`` from a suite's worked solutions
  (the suite's ``solution:`` template: generated step-by-step solutions, GSM8K rationales, MATH solutions,
  HumanEval/MBPP reference code), or from graded samples (`rft sample`): the ones the grader passed
  (rejection sampling).
- `dpo_pairs`: preference rows ``{"prompt", "chosen", "rejected"}`` (TRL's conversational format) from graded
  samples: within a prompt, a passing sample is chosen over a failing one.

The prompt messages are the suite's own (`Suite.messages`), so SFT, DPO, RL and evaluation see the same
conversation; the chat template is applied later, by the tokenizer of the model being trained.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rft.envs import Suite, get_suite
from rft.envs.mix import MixSpec, load_mix, mix_counts, read_mix

__all__ = ["sft_rows", "mixed_sft_rows", "dpo_pairs", "balance_by_suite", "read_samples", "solution_text",
           "write_jsonl", "SAMPLE_KEYS"]  # fmt: skip

Message = dict[str, str]
SAMPLE_KEYS = ("id", "messages", "completion", "reward", "passed", "status")  # what a sample row must have

_FINAL = re.compile(r"^####\s*(.+?)\s*$", re.M)  # GSM8K's closing answer line
_CALC = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: 48/2 = <<48/2=24>>24


def solution_text(suite: Suite, item: dict[str, Any]) -> str | None:
    """The item's worked solution as a reply: the suite's ``solution`` template filled in, with a GSM8K-style
    ``#### n`` line turned into ``The answer is \\boxed{n}.`` (what the suites' graders read) and calculator
    annotations (``<<48/2=24>>``) removed. None when the suite has no solutions."""
    text = suite.solution_text(item)
    if text is None:
        return None
    if _FINAL.search(text) and "\\boxed{" not in text:
        text = _CALC.sub("", text)
        text = _FINAL.sub(lambda m: f"The answer is \\boxed{{{m.group(1)}}}.", text)
    return text


def sft_rows(
    suite: Suite | str | Path,
    split: Literal["train", "heldout"] = "train",
    *,
    source: Literal["solutions", "samples"] = "solutions",
    samples: str | Path | None = None,
    limit: int | None = None,
) -> list[dict[str, list[Message]]]:
    """Conversational SFT rows ``{"messages": [...]}`` for the first `limit` problems of `split` (all when
    None): the worked solution of each (``source="solutions"``), or every passing sample of `samples`, a
    JSONL file written by `rft sample` (``source="samples"``; rejection sampling, `split` and `limit` unused)."""
    if source == "samples":
        if samples is None:
            raise ValueError("source='samples' needs samples=: a JSONL file written by `rft sample`")
        rows = read_samples(samples)
        kept = [r for r in rows if _good(r)]
        if not kept:
            raise ValueError(
                f"no sample in {samples} passes its grader ({len(rows)} samples): nothing to imitate. Sample "
                "more (--n), at another temperature, or from a stronger model, or use the suite's solutions"
            )
        return [{"messages": [*r["messages"], *r["completion"]]} for r in kept]
    if source != "solutions":
        raise ValueError(f"source must be 'solutions' or 'samples', got {source!r}")
    s = get_suite(suite)
    if s.solution is None:
        raise ValueError(
            f"suite {s.id} has no worked solutions (no `solution:` template in its YAML); add one, e.g. "
            'solution: "{{ item.solution }}", or build SFT data by rejection sampling: '
            "`rft sample --model M --suite S --n K --out samples.jsonl`, then source=samples"
        )
    items = s.items(split)[:limit]
    if not items:
        raise ValueError(f"suite {s.id} has no {split} problems; nothing to build SFT rows from")
    out = []
    for item in items:
        text = solution_text(s, item)
        assert text is not None
        out.append({"messages": [*s.messages(item), {"role": "assistant", "content": text}]})
    return out


def mixed_sft_rows(
    suite: str | MixSpec,
    *,
    source: Literal["solutions", "samples"] = "solutions",
    samples: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """`sft_rows` of a suite or a mix of suites (`rft.envs.mix.read_mix`). A mix: each suite's rows (its
    worked solutions, the first `limit` of each, or the passing samples of it in `samples`) in proportion
    to its weight, as many as the scarcest suite allows (`balance_by_suite`)."""
    spec = read_mix(suite)
    if len(spec.mix) == 1:
        return list(sft_rows(spec.suites[0], "train", source=source, samples=samples, limit=limit))
    suites = load_mix(spec)
    if source == "samples":
        if samples is None:
            raise ValueError("source='samples' needs samples=: a JSONL file written by `rft sample`")
        rows = [{"suite": r.get("suite"), "messages": [*r["messages"], *r["completion"]]}
                for r in read_samples(samples) if _good(r)]  # fmt: skip
    else:
        rows = [{"suite": s.id, **r} for s in suites for r in sft_rows(s, "train", limit=limit)]
    kept = balance_by_suite(rows, spec, seed=seed, what="SFT rows")
    return [{"messages": r["messages"]} for r in kept]


def balance_by_suite(
    rows: Sequence[dict[str, Any]], spec: MixSpec, *, seed: int = 0, what: str = "rows"
) -> list[dict[str, Any]]:
    """Rows of a mix's suites (each row's ``suite``: a suite id) kept in proportion to the mix's weights,
    as many as the scarcest suite allows (`rft.envs.mix.mix_counts`), each suite's first ones, then
    shuffled by `seed`. Rows of suites outside the mix are refused, and so is a suite with no rows."""
    ids = [s.id for s in load_mix(spec, train=False)]
    by_suite: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for r in rows:
        if r.get("suite") not in by_suite:
            raise ValueError(
                f"a row of suite {r.get('suite')!r} is not in the mix ({', '.join(ids)}); sample the mix with "
                "`rft sample --suite` and the same mix (each row then names its suite)"
            )
        by_suite[r["suite"]].append(r)
    empty = [i for i in ids if not by_suite[i]]
    if empty:
        raise ValueError(
            f"no {what} of {', '.join(empty)} in the mix's data: sample it (more samples per problem: --n) or leave it out of the mix"
        )
    counts = mix_counts([len(by_suite[i]) for i in ids], spec.weights)
    out = [r for i, n in zip(ids, counts, strict=True) for r in by_suite[i][:n]]
    random.Random(f"{seed}:mix").shuffle(out)
    return out


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """The rows of an `rft sample` file, checked: each has ``id``, ``messages``, ``completion``, ``reward``,
    ``passed`` and ``status``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"samples file {path} does not exist; write it with `rft sample ... --out {path}`")
    rows = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
            missing = [k for k in SAMPLE_KEYS if not isinstance(row, dict) or k not in row]
            if missing:
                raise ValueError(f"{path}:{n}: not an `rft sample` row: missing {', '.join(missing)}")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} has no samples; was `rft sample` given an empty suite or --limit 0?")
    return rows


def _grade_failed(row: dict[str, Any]) -> bool:
    """The grader itself failed (timeout/error): the sample is neither good nor bad, so it is never used."""
    return row["status"] in ("timeout", "error")


def _good(row: dict[str, Any]) -> bool:
    """A sample worth imitating: the grader passed it and it ended by itself (one cut at max_new_tokens
    may pass with a rambling tail, which SFT or DPO would teach)."""
    return bool(row["passed"]) and not _grade_failed(row) and not row.get("overlong", False)


def dpo_pairs(
    samples: str | Path | Sequence[dict[str, Any]],
    *,
    min_margin: float = 0.0,
    max_pairs_per_prompt: int = 4,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Preference rows ``{"prompt", "chosen", "rejected", "id", "margin"}`` from graded samples (an `rft sample`
    file, or its rows). Within a prompt id, a passing sample is chosen over a failing one whose reward is lower
    by more than `min_margin` (equal rewards, ties, are dropped); samples whose grade failed (timeout/error)
    and pairs with identical text are never used. At most `max_pairs_per_prompt` pairs per prompt, drawn
    from all (passing, failing) combinations by a generator seeded with (`seed`, prompt id): the same file and
    seed give the same pairs."""
    if min_margin < 0 or max_pairs_per_prompt < 1:
        raise ValueError(
            f"need min_margin >= 0 and max_pairs_per_prompt >= 1, got {min_margin}, {max_pairs_per_prompt}"
        )
    rows = read_samples(samples) if isinstance(samples, str | Path) else list(samples)
    where = samples if isinstance(samples, str | Path) else "the samples"
    if not rows:
        raise ValueError(f"{where} has no samples")
    usable = [r for r in rows if not _grade_failed(r)]
    passing = [r for r in usable if _good(r)]
    failing = [r for r in usable if not r["passed"]]
    if not passing:
        raise ValueError(
            f"no sample in {where} passes its grader ({len(rows)} samples): DPO needs a passing sample to "
            "prefer; warm the model up first (rft train sft), or sample more per problem (--n)"
        )
    if not failing:
        raise ValueError(
            f"every graded sample in {where} passes ({len(passing)}): DPO needs failing samples to prefer "
            "against; use harder problems, a higher --temperature, or more samples per problem (--n)"
        )
    by_id: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
    for r in usable:  # rows of a mix: ids are per suite
        by_id.setdefault((r.get("suite"), str(r["id"])), []).append(r)
    out = []
    for (_, pid), group in by_id.items():
        good = _unique(r for r in group if _good(r))
        bad = _unique(r for r in group if not r["passed"])
        combos = [
            (c, r)
            for c, r in itertools.product(good, bad)
            if c["reward"] - r["reward"] > 0
            and c["reward"] - r["reward"] >= min_margin
            and _text(c) != _text(r)
        ]
        random.Random(f"{seed}:{pid}").shuffle(combos)
        for c, r in combos[:max_pairs_per_prompt]:
            out.append(
                {
                    "id": pid,
                    "suite": c.get("suite"),
                    "prompt": c["messages"],
                    "chosen": c["completion"],
                    "rejected": r["completion"],
                    "margin": c["reward"] - r["reward"],
                }
            )
    if not out:
        raise ValueError(
            f"no prompt in {where} has a passing and a failing sample whose rewards differ by more than "
            f"min_margin={min_margin}: sample more per problem (--n), or lower min_margin"
        )
    return out


def _text(row: dict[str, Any]) -> str:
    return json.dumps(row["completion"], sort_keys=True)


def _unique(rows: Any) -> list[dict[str, Any]]:
    """Rows with distinct completions, in order (the same answer sampled twice is one candidate)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        seen.setdefault(_text(r), r)
    return list(seen.values())


def write_jsonl(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows as JSON lines (the SFT rows or DPO pairs, for inspection or another trainer)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path
