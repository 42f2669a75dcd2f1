"""Hedging is wrong (issue 21's policy): an answer that offers several candidates where one value is
expected never passes, in any of the ways models write it, with the right value first or last. Golds
are the held-out benchmarks' answers (../shared/data/bench); the wrong candidate changes one digit.
Each hedge has a control: the same sentence with the right value alone must pass."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from rft.graders import load_grader
from rft.graders.math import extract_answer, parse, verify

BENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench"
GRADER = load_grader({"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"})

# (a hedge between A and B, the same sentence stating A alone)
TEMPLATES = [
    ("Final Answer: The final answer is ${a}$ or ${b}$. I hope it is correct.",
     "Final Answer: The final answer is ${a}$. I hope it is correct."),
    ("So the answer is \\boxed{{{a}}} or \\boxed{{{b}}}.", "So the answer is \\boxed{{{a}}}."),
    ("\\boxed{{{a} \\text{{ or }} {b}}}", "\\boxed{{{a}}}"),
    ("The answer is either ${a}$ or ${b}$.", "The answer is ${a}$."),
    ("The answer is ${a}$, or possibly ${b}$.", "The answer is ${a}$."),
    ("Hence the value is ${a}$ or ${b}$.", "Hence the value is ${a}$."),
    ("<answer>{a} or {b}</answer>", "<answer>{a}</answer>"),
    ("**Answer:** ${a}$ or ${b}$", "**Answer:** ${a}$"),
    ("Réponse : ${a}$ ou ${b}$", "Réponse : ${a}$"),
    ("The answer is ${a}$. Alternatively, it could be ${b}$.", "The answer is ${a}$."),
    ("\\boxed{{{a}}}. It might also be ${b}$.", "\\boxed{{{a}}}."),
]  # fmt: skip


def _golds() -> list[str]:
    out: list[str] = []
    for line in (BENCH / "aime24.jsonl").read_text().splitlines():
        out.append(str(json.loads(line)["answer"]))
    for line in (BENCH / "amc23.jsonl").read_text().splitlines():
        out.append(str(json.loads(line)["answer"]))
    for line in (BENCH / "olympiadbench.jsonl").read_text().splitlines():
        row = json.loads(line)
        if not row["is_multiple_answer"]:
            answers = row["final_answer"]
            out.extend(ast.literal_eval(answers) if isinstance(answers, str) else answers)
    for line in (BENCH / "minerva_math.jsonl").read_text().splitlines():
        found = extract_answer(json.loads(line)["solution"], last_number=False)
        if found is not None:
            out.append(found.text)
    # a single value is expected: no lists, tuples of several values or sets
    return [g.strip() for g in out if g.strip() and parse(g.strip()).kind in ("number", "expr", "relation")]


def _wrong(gold: str) -> str | None:
    """The gold with its first digit changed (one more, mod 10): a value that is not the gold."""
    m = re.search(r"\d", gold)
    if m is None:
        return None
    wrong = gold[: m.start()] + str((int(m.group()) + 1) % 10) + gold[m.end() :]
    return None if verify(gold=gold, pred=wrong) else wrong


@pytest.mark.skipif(not BENCH.is_dir(), reason="../shared/data/bench is not there")
def test_no_hedge_passes():
    golds = _golds()
    assert len(golds) > 500
    hedges_passed, controls_failed, hedges = [], [], 0
    for gold in golds:
        wrong = _wrong(gold)
        if wrong is None:
            continue
        for hedge, alone in TEMPLATES:
            for a, b in ((gold, wrong), (wrong, gold)):  # the right value first, then last
                hedges += 1
                out = hedge.format(a=a, b=b)
                if GRADER.grade({"output_text": out}, {"answer": gold}).passed:
                    hedges_passed.append((gold, out))
            if not GRADER.grade({"output_text": alone.format(a=gold)}, {"answer": gold}).passed:
                controls_failed.append((gold, alone.format(a=gold)))
    assert hedges > 10_000
    assert not hedges_passed, f"{len(hedges_passed)} of {hedges} hedges passed: {hedges_passed[:10]}"
    # the control: stated alone, the right value passes (the hedges fail for hedging, not for their form)
    assert len(controls_failed) <= hedges // 1000, controls_failed[:10]
