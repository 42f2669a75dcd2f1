"""A demo-like pipeline folder for `rft view`'s tests, written in the real schemas of `rft demo`'s output
(pipeline.yaml; sft/ and grpo/ metrics.jsonl; grpo/rollouts.jsonl; eval/<stage>/ results.json, problems.jsonl,
samples.jsonl; compare/<b>-vs-<a>/compare.json), with the rows a viewer must get right: every grade status, a
multi-turn episode with a tool call, a code grade with failing tests, a row the held-out grader fails, and
completions holding HTML and script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Each sets window.__pwned (checked by the browser test) if the page ever treats it as HTML.
HOSTILE = [
    '<script>window.__pwned = "script"</script>\\boxed{5}',
    "<img src=x onerror=\"window.__pwned = 'img'\">\\boxed{5}",
    '"><svg onload="window.__pwned=\'svg\'"></svg>',
]
STEPS = 4
PER_STEP = 8


def _grade(score: float, status: str, extracted: str | None, gold: str) -> dict[str, Any]:
    return {"score": score, "status": status, "passed": score >= 1, "extracted": extracted,
            "details": {"rule": "exact" if score < 1 else "string", "extraction": "boxed",
                        "gold": {"text": gold, "kind": "number"}}}  # fmt: skip


def _rollout(step: int, k: int) -> dict[str, Any]:
    a, b = step + 10, k + 20
    gold = str(a + b)
    answer = gold if k % 2 == 0 else str(a + b + 1)
    status = ["ok", "ok", "ok", "ok", "no_answer", "timeout", "error", "ok"][k]
    reward = 1.0 if answer == gold and status == "ok" else 0.0
    row = {"step": step, "group": k // 4, "prompt": f"What is {a} + {b}?", "id": f"{a} + {b}",
           "completion": [{"role": "assistant", "content": f"The sum is \\boxed{{{answer}}}"}],
           "reward": reward, "status": status, "grade": _grade(reward, status, answer, gold),
           "reference": gold, "overlong": False}  # fmt: skip
    if step == 2 and k == 1:  # multi-turn: a tool call, its result, the final answer
        row["completion"] = [
            {"role": "assistant", "content": "Let me compute.", "tool_calls": [{"name": "python", "arguments": {"code": f"print({a}+{b})"}}]},
            {"role": "tool", "content": gold},
            {"role": "assistant", "content": f"\\boxed{{{gold}}}"},
        ]  # fmt: skip
        row.update(reward=1.0, status="ok", grade=_grade(1.0, "ok", gold, gold))
    if step == 2 and k == 3:  # a code grade: failing tests with their errors
        row["grade"] = {"score": 0.5, "status": "ok", "passed": False, "extracted": "def f(x): return x",
                        "details": {"tests": [{"test": "assert f(1) == 1", "passed": True},
                                              {"test": "assert f(2) == 3", "passed": False, "error": "AssertionError: f(2) == 2"}],
                                    "passed_tests": 1, "total_tests": 2, "stdout_tail": "tail of stdout"}}  # fmt: skip
        row["reward"] = 0.5
    if step == 3 and k == 0:  # rewarded, but the held-out grader says no
        row["heldout_grade"] = {
            "score": 0.0,
            "status": "ok",
            "passed": False,
            "extracted": answer,
            "details": {"rule": "form"},
        }
    if step == 3 and k in (1, 2, 3):
        row["prompt"] = row["completion"] = HOSTILE[k - 1]
        row["completion"] = [{"role": "assistant", "content": HOSTILE[k - 1]}]
        row["id"] = f"hostile-{k}"
        row["grade"]["extracted"] = "5" if "boxed" in HOSTILE[k - 1] else None
        row["grade"]["details"]["error"] = HOSTILE[k - 1]
        row["reference"] = HOSTILE[k - 1]
    return row


def _eval(folder: Path, stage: str, right: set[int]) -> None:
    folder.mkdir(parents=True)
    problems, samples = [], []
    for i in range(10):
        pid = f"{i} + {i}"
        ok = i in right
        answer = str(2 * i) if ok else str(2 * i + 1)
        problems.append({"suite": "addition-v0", "split": "heldout", "id": pid, "n": 1, "correct": int(ok),
                         "passes": [ok], "pass@1": float(ok), "maj@1": float(ok), "mean@n": float(ok),
                         "first_pass": ok, "timeouts": 0, "errors": 0})  # fmt: skip
        samples.append({"suite": "addition-v0", "id": pid, "split": "heldout", "index": i, "sample": 0,
                        "messages": [{"role": "user", "content": f"What is {pid}?"}],
                        "completion": [{"role": "assistant", "content": f"\\boxed{{{answer}}}"}],
                        "reward": float(ok), "status": "ok", "grade": _grade(float(ok), "ok", answer, str(2 * i)),
                        "reference": str(2 * i), "overlong": False, "passed": ok})  # fmt: skip
    value = len(right) / 10
    results = {"results": [{"model": f"/x/{stage}/model", "suite": "addition-v0", "split": "heldout", "metric": "pass@1",
                            "value": value, "ci95": [max(0, value - 0.2), min(1, value + 0.2)], "n_problems": 10}],
               "config": {"model": f"/x/{stage}/model", "suite": "addition-v0", "split": "heldout", "n": 1}}  # fmt: skip
    (folder / "results.json").write_text(json.dumps(results))
    _jsonl(folder / "problems.jsonl", problems)
    _jsonl(folder / "samples.jsonl", samples)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def demo_like_folder(root: Path) -> Path:
    """Write the folder under `root` / "demo" and return it."""
    out = root / "demo"
    (out / "sft").mkdir(parents=True)
    (out / "grpo").mkdir()
    (out / "pipeline.yaml").write_text(
        "out: demo\nsuite: rft/addition-v0\nstages:\n- name: sft\n  type: sft\n- name: grpo\n  type: grpo\n"
    )
    sft = [{"step": 0, "eval/accuracy": 0.0, "eval/reward": 0.0, "eval/failed_rate": 0.0}]
    sft += [{"step": s, "loss/sft": 4.0 / s, "sft/entropy": 3.0 - 0.1 * s, "lr": 0.001} for s in range(1, 11)]
    sft.append({"step": 10, "eval/accuracy": 0.3, "eval/reward": 0.3, "eval/failed_rate": 0.0})
    _jsonl(out / "sft" / "metrics.jsonl", sft)
    grpo: list[dict[str, Any]] = [
        {"step": 0, "eval/accuracy": 0.3, "eval/reward": 0.3, "eval/failed_rate": 0.0}
    ]
    for s in range(1, STEPS + 1):
        grpo.append({"step": s, "reward/mean": 0.3 + 0.1 * s, "reward/addition-v0": 0.3 + 0.1 * s,
                     "grader/error_rate": 0.125, "grader/timeout_rate": 0.125, "grader/no_answer_rate": 0.125,
                     "rollout/completion_len": 7.0 + s, "loss/policy": 0.01, "loss/approx_kl": 0.001 * s})  # fmt: skip
    grpo.append({"step": STEPS, "eval/accuracy": 0.6, "eval/reward": 0.6, "eval/failed_rate": 0.0})
    _jsonl(out / "grpo" / "metrics.jsonl", grpo)
    _jsonl(
        out / "grpo" / "rollouts.jsonl",
        [_rollout(s, k) for s in range(1, STEPS + 1) for k in range(PER_STEP)],
    )
    (out / "grpo" / "config.yaml").write_text("suite: rft/addition-v0\n")
    _eval(out / "eval" / "sft", "sft", {0, 1, 2})
    _eval(out / "eval" / "grpo", "grpo", {0, 1, 3, 4, 5, 6})
    per = [
        {"id": f"{i} + {i}", "a": float(i in {0, 1, 2}), "b": float(i in {0, 1, 3, 4, 5, 6})}
        for i in range(10)
    ]
    for p in per:
        p["diff"] = p["b"] - p["a"]
    cmp = {"a": str(out / "eval" / "sft"), "b": str(out / "eval" / "grpo"),
           "comparisons": [{"suite": "addition-v0", "split": "heldout", "n_problems": 10, "a": "/x/sft/model",
                            "b": "/x/grpo/model", "diff": 0.3, "ci95": [0.0, 0.6],
                            "verdict": "B is better than A on addition-v0 heldout: +0.300 pass@1", "per_problem": per}]}  # fmt: skip
    (out / "compare" / "grpo-vs-sft").mkdir(parents=True)
    (out / "compare" / "grpo-vs-sft" / "compare.json").write_text(json.dumps(cmp))
    return out
