"""`rft demo --grading`: a tour of the grading foundation in a few seconds, with no model.

It shows a batch of arithmetic answers (right, wrong,
badly formatted, and one that makes a naive checker hang) graded by a `multi` grader through the
worker pool. The hanging sample is reported as a timeout, not scored 0, and the batch goes on.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rft.app.graded_rows import grade_rows, read_rows, summarize, write_rows
from rft.graders import load_grader

# The correctness check a user might write: it supports `a^b` naively, so `9^9^9` never finishes.
CHECK_SOURCE = """
import re

def grade(sample, item):
    m = re.search(r"<answer>(.*?)</answer>", sample["output_text"], re.S)
    if m is None:
        return 0.0
    text = m.group(1).strip().replace(" ", "")
    if "^" in text:
        value = 1
        for part in reversed(text.split("^")):
            value = int(part) ** value
    else:
        value = int(text)
    return float(value == int(item["answer"]))
"""

SPEC = {
    "type": "multi",
    "name": "format_and_answer",
    "graders": {
        "format": {"type": "format", "name": "tags", "tags": ["think", "answer"]},
        "correct": {"type": "python", "name": "answer_check", "source": CHECK_SOURCE, "timeout": 3},
    },
    "calculate_output": "0.2 * format + 0.8 * correct",
}


def make_rows(n: int = 16, seed: int = 0) -> list[dict]:
    """Arithmetic items with samples of every kind a policy produces early in training."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        answer = a * b
        kind = ["right", "right", "wrong", "untagged"][i % 4]
        if kind == "right":
            text = f"<think>{a} times {b}</think><answer>{answer}</answer>"
        elif kind == "wrong":
            text = f"<think>{a} times {b}</think><answer>{answer + rng.randint(1, 9)}</answer>"
        else:
            text = f"The product is {answer}."
        rows.append({"item": {"id": i, "question": f"What is {a} * {b}?", "answer": str(answer)},
                     "sample": {"output_text": text}})  # fmt: skip
    rows.append({"item": {"id": n, "question": "What is 3^2?", "answer": "9"},
                 "sample": {"output_text": "<think>powers</think><answer>9^9^9</answer>"}})  # fmt: skip
    return rows


def run_tour(out_dir: Path, console: Console | None = None) -> dict:
    console = console or Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    spec_path, rows_path, graded_path = (
        out_dir / "grader.json",
        out_dir / "rows.jsonl",
        out_dir / "graded.jsonl",
    )
    spec_path.write_text(json.dumps(SPEC, indent=2))
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in make_rows()))

    grader = load_grader(spec_path)
    rows = list(read_rows(rows_path))
    console.print(
        f"[bold]rft demo --grading[/bold]: grading {len(rows)} samples with {grader.type} grader {grader.name!r}"
    )
    t0 = time.perf_counter()
    grades = grade_rows(grader, rows, workers=2, timeout=5.0)
    summary = summarize(grades, time.perf_counter() - t0)
    write_rows(graded_path, rows, grades)

    table = Table("question", "model output", "status", "score", "passed")
    for row, g in zip(rows, grades, strict=True):
        assert row.data is not None
        text = row.data["sample"]["output_text"]
        style = {"ok": "", "no_answer": "yellow", "timeout": "red", "error": "red"}[g.status]
        table.add_row(row.data["item"]["question"], text if len(text) < 48 else text[:45] + "...",
                      f"[{style}]{g.status}[/{style}]" if style else g.status, f"{g.score:.2f}", str(g.passed))  # fmt: skip
    console.print(table)
    console.print(
        f"mean score {summary['mean_score']:.3f} over {summary['rows'] - summary['status']['timeout'] - summary['status']['error']} "
        f"judged samples; grader/timeout_rate {summary['grader/timeout_rate']:.3f} "
        f"(timeouts are masked out, never scored 0); {summary['rows_per_s']} samples/s"
    )
    console.print(f"wrote {spec_path}, {rows_path}, {graded_path}")
    console.print(
        f"grade your own samples: rft grade --grader {spec_path} --input {rows_path} --output graded.jsonl"
    )
    return summary
