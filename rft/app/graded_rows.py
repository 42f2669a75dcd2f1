"""Graded rows: read `{"item", "sample"}` JSONL, grade it through the executor, summarise.

Used by `rft grade`; a bad line never stops a file: it becomes an `error` grade naming its line.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rft.graders import STATUSES, Grade, Grader
from rft.graders.executor import GraderPool

__all__ = ["Row", "read_rows", "grade_rows", "summarize", "write_rows"]


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line number in the input file
    raw: str
    data: dict[str, Any] | None  # the parsed row; None when the line is not a JSON object
    problem: str | None = None  # why the row cannot be graded at all


def _check(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"row must be a JSON object, got {type(data).__name__}"
    if "sample" not in data:
        return 'row has no \'sample\' (expected {"item": {...}, "sample": {"output_text": ...}})'
    if not isinstance(data["sample"], dict | str):
        return "'sample' must be an object or a string"
    if not isinstance(data.get("item", {}), dict):
        return "'item' must be an object"
    return None


def read_rows(path: str | Path) -> Iterator[Row]:
    """Each non-blank line of a JSONL file as a `Row` (blank lines are skipped)."""
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            raw = raw.rstrip("\n")
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as e:
                yield Row(n, raw, None, f"invalid JSON ({e.msg} at column {e.colno})")
                continue
            problem = _check(data)
            yield Row(n, raw, data if isinstance(data, dict) else None, problem)


def _name_line(grade: Grade, line: int) -> Grade:
    details = {**grade.details, "line": line}
    if grade.failed and "error" in details:
        details["error"] = f"line {line}: {details['error']}"
    return replace(grade, details=details)


def grade_rows(
    grader: Grader,
    rows: list[Row],
    *,
    workers: int | None = None,
    timeout: float = 30.0,
    on_result: Callable[[int, Grade], None] | None = None,
) -> list[Grade]:
    """Grade rows in order. Unparseable rows get `error` grades; the rest go through a `GraderPool`
    (`workers=0` grades in this thread, without deadlines)."""
    grades: list[Grade | None] = [None] * len(rows)
    good = [i for i, r in enumerate(rows) if r.problem is None]
    for i, r in enumerate(rows):
        if r.problem is not None:
            grades[i] = Grade.error(f"line {r.line}: {r.problem}", line=r.line)
            if on_result is not None:
                on_result(i, grades[i])  # type: ignore[arg-type]

    def record(j: int, grade: Grade) -> None:
        i = good[j]
        grades[i] = _name_line(grade, rows[i].line)
        if on_result is not None:
            on_result(i, grades[i])  # type: ignore[arg-type]

    samples = [rows[i].data["sample"] for i in good]  # type: ignore[index]
    items = [rows[i].data.get("item") or {} for i in good]  # type: ignore[union-attr]
    if workers == 0:
        for j, (s, it) in enumerate(zip(samples, items, strict=True)):
            record(j, grader.grade(s, it))
    elif good:
        with GraderPool(workers=workers, timeout=timeout) as pool:
            pool.grade(grader, samples, items, on_result=record)
    return [g for g in grades if g is not None]


def write_rows(path: str | Path, rows: list[Row], grades: list[Grade]) -> None:
    """Each input row plus its `"grade"`; a line that was not JSON is kept as `{"line", "raw"}`."""
    with open(path, "w", encoding="utf-8") as f:
        for row, grade in zip(rows, grades, strict=True):
            out = dict(row.data) if row.data is not None else {"line": row.line, "raw": row.raw}
            out["grade"] = grade.to_dict()
            f.write(json.dumps(out, ensure_ascii=False) + "\n")


def summarize(grades: list[Grade], seconds: float | None = None) -> dict[str, Any]:
    """Counts per status, mean score and pass rate over the rows the grader could judge
    (ok and no_answer; timeouts and errors are not zeros), and the grader failure rates."""
    n = len(grades)
    counts = Counter(g.status for g in grades)
    judged = [g for g in grades if not g.failed]
    out: dict[str, Any] = {
        "rows": n,
        "status": {s: counts.get(s, 0) for s in STATUSES},
        "mean_score": sum(g.score for g in judged) / len(judged) if judged else None,
        "pass_rate": sum(g.passed for g in judged) / len(judged) if judged else None,
        "grader/error_rate": counts.get("error", 0) / n if n else 0.0,
        "grader/timeout_rate": counts.get("timeout", 0) / n if n else 0.0,
    }
    if seconds is not None:
        out["seconds"] = round(seconds, 3)
        out["rows_per_s"] = round(n / seconds, 1) if seconds > 0 else None
    return out
