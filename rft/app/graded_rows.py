"""Graded rows: read `{"item", "sample"}` JSONL, grade it through the executor, summarise.

Used by `rft grade`, which streams: rows are read, graded and written in a bounded window (`grade_stream`),
counted as they pass (`Tally`), and a killed run continues from its output file (`resume_from`). A bad
line never stops a file: it becomes an `error` grade naming its line.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rft.graders import STATUSES, Grade, Grader
from rft.graders.executor import GraderPool

__all__ = [
    "Row",
    "read_rows",
    "data_rows",
    "grade_rows",
    "grade_stream",
    "grade_file",
    "output_line",
    "write_rows",
    "resume_from",
    "ResumeError",
    "Tally",
    "summarize",
]


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line number in the input file
    raw: str
    data: dict[str, Any] | None  # the parsed row; None when the line is not a JSON object
    problem: str | None = None  # why the row cannot be graded at all
    end: int = 0  # byte offset just past the line in the input file (for progress)


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
    """Each non-blank line of a JSONL file as a `Row` (blank lines are skipped), read as it goes."""
    end = 0
    with open(path, "rb") as f:
        for n, raw_bytes in enumerate(f, start=1):
            end += len(raw_bytes)
            try:
                raw = raw_bytes.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raw = raw_bytes.decode("utf-8", errors="replace").rstrip("\r\n")
                yield Row(n, raw, None, f"not UTF-8 text (byte {e.start + 1}: {e.reason})", end)
                continue
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as e:
                yield Row(n, raw, None, f"invalid JSON ({e.msg} at column {e.colno})", end)
                continue
            problem = _check(data)
            yield Row(n, raw, data if isinstance(data, dict) else None, problem, end)


def data_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, read as they are used; a line that is not one is a ValueError
    naming it (`rft eval --samples`)."""
    for r in read_rows(path):
        if r.data is None:
            raise ValueError(f"{path} line {r.line}: {r.problem}")
        yield r.data


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
    """`grade_stream` into a list: the grades of `rows` in order, `on_result(index, grade)` as each is
    taken. Unparseable rows get `error` grades; `workers=0` grades in this thread, without deadlines."""
    grades = []
    for i, (_, grade) in enumerate(grade_stream(grader, rows, workers=workers, timeout=timeout)):
        grades.append(grade)
        if on_result is not None:
            on_result(i, grade)
    return grades


def grade_stream(
    grader: Grader,
    rows: Iterable[Row],
    *,
    workers: int | None = None,
    timeout: float = 30.0,
    window: int | None = None,
) -> Iterator[tuple[Row, Grade]]:
    """Each row with its grade, in input order, holding at most `window` rows at a time (default 64 per
    worker, at least 256): memory stays bounded whatever the input size. `workers=0` grades in this
    thread, without deadlines; otherwise a `GraderPool` grades while more rows are read."""
    if workers == 0:
        for row in rows:
            yield row, _grade_here(grader, row)
        return
    size = window if window is not None else max(256, 64 * (workers or os.cpu_count() or 1))
    if size < 1:
        raise ValueError(f"window must be at least 1, got {size}")
    queue: deque[tuple[Row, Future[Grade] | Grade]] = deque()
    with GraderPool(workers=workers, timeout=timeout) as pool:
        for row in rows:
            if row.problem is not None:
                queue.append((row, _bad_row(row)))
            else:
                data = row.data or {}
                queue.append((row, pool.submit(grader, data["sample"], data.get("item") or {})))
            while len(queue) >= size:
                yield _done(queue.popleft())
        while queue:
            yield _done(queue.popleft())


def _bad_row(row: Row) -> Grade:
    return Grade.error(f"line {row.line}: {row.problem}", line=row.line)


def _grade_here(grader: Grader, row: Row) -> Grade:
    if row.problem is not None:
        return _bad_row(row)
    data = row.data or {}
    return _name_line(grader.grade(data["sample"], data.get("item") or {}), row.line)


def _done(entry: tuple[Row, Future[Grade] | Grade]) -> tuple[Row, Grade]:
    row, pending = entry
    if isinstance(pending, Grade):
        return row, pending
    return row, _name_line(pending.result(), row.line)


def output_row(row: Row) -> dict[str, Any]:
    """What `rft grade -o` writes for a row, less its grade: the input row, or ``{"line", "raw"}``
    for a line that was not a JSON object."""
    return dict(row.data) if row.data is not None else {"line": row.line, "raw": row.raw}


def output_line(row: Row, grade: Grade) -> str:
    """One line of `rft grade -o`: the input row plus its `"grade"`."""
    return json.dumps({**output_row(row), "grade": grade.to_dict()}, ensure_ascii=False) + "\n"


def grade_file(
    grader: Grader,
    input: Path,
    output: Path | None,
    tally: Tally,
    *,
    workers: int | None = None,
    timeout: float = 30.0,
    resume: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """`rft grade`: stream `input` through `grader` into `output` (appending after the rows a killed run
    wrote when `resume`), counting grades in `tally` (the caller's: it holds the counts if interrupted).
    `progress(rows, input bytes read, rows/s)` every 256 rows. Returns the summary. Raises `ResumeError`."""
    rows = read_rows(input)
    resumed = resume_from(output, rows, tally) if resume and output is not None and output.exists() else 0
    t0 = time.perf_counter()
    with open(output, "a" if resume else "w", encoding="utf-8") if output else nullcontext() as f:
        for row, grade in grade_stream(grader, rows, workers=workers, timeout=timeout):
            tally.add(grade, row.line)
            if f is not None:
                f.write(output_line(row, grade))
            if progress is not None and tally.rows % 256 == 0:
                progress(tally.rows, row.end, (tally.rows - resumed) / max(time.perf_counter() - t0, 1e-9))
    summary = tally.summary(time.perf_counter() - t0, graded=tally.rows - resumed)
    if resumed:
        summary["resumed"] = resumed
    if output is not None:
        summary["output"] = str(output)
    return summary


def write_rows(path: str | Path, rows: list[Row], grades: list[Grade]) -> None:
    """Each input row plus its `"grade"`; a line that was not JSON is kept as `{"line", "raw"}`."""
    with open(path, "w", encoding="utf-8") as f:
        for row, grade in zip(rows, grades, strict=True):
            f.write(output_line(row, grade))


class ResumeError(ValueError):
    """An output file that `--resume` cannot continue: it does not match the input's first rows."""


def resume_from(output: str | Path, rows: Iterator[Row], tally: Tally) -> int:
    """Check that `output` holds the graded first rows of `rows` (consuming them from the iterator) and
    count their grades in `tally`; cut a last line left half-written by a killed run. Returns how many
    rows were already graded. Raises `ResumeError` when a row differs from the input's."""
    output = Path(output)
    done, keep = 0, 0  # rows matched; bytes of the output that hold them
    with open(output, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # the half-written last line of a killed run: graded again
            where = f"{output} line {n}"
            try:
                got = json.loads(raw)
                grade = Grade.from_dict(got.pop("grade"))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
                raise ResumeError(f"{where} is not a graded row ({e}); {_FRESH}") from None
            row = next(rows, None)
            if row is None:
                raise ResumeError(f"{where}: the output has more rows than the input; {_FRESH}")
            expected = output_row(row)
            expected.pop("grade", None)
            if got != expected:
                raise ResumeError(f"{where} is not input line {row.line}: another input? {_FRESH}")
            tally.add(grade, row.line)
            done += 1
            keep += len(raw)
    if keep < output.stat().st_size:
        os.truncate(output, keep)
    return done


_FRESH = "grade into a new --output file, or delete this one (without --resume it is overwritten)"


class Tally:
    """Running counts of grades for the summary (no grade is kept): per status, scores and passes of the
    judged rows (ok and no_answer), and the first `keep_errors` distinct failure messages with counts."""

    def __init__(self, keep_errors: int = 3) -> None:
        self.rows = 0
        self.status: Counter[str] = Counter()
        self.score_sum = 0.0
        self.passed = 0
        self.keep_errors = keep_errors
        self.errors: dict[tuple[str, str], list[int]] = {}  # (status, message) -> [count, first line]
        self.other_errors = 0  # failures whose message is not among the kept ones

    def add(self, grade: Grade, line: int | None = None) -> None:
        self.rows += 1
        self.status[grade.status] += 1
        if not grade.failed:
            self.score_sum += grade.score
            self.passed += grade.passed
            return
        message = str(grade.details.get("error", ""))
        if line is not None:
            message = message.removeprefix(f"line {line}: ")
        key = (grade.status, message)
        if key in self.errors:
            self.errors[key][0] += 1
        elif len(self.errors) < self.keep_errors:
            self.errors[key] = [1, line if line is not None else 0]
        else:
            self.other_errors += 1

    @property
    def failed(self) -> int:
        return self.status["error"] + self.status["timeout"]

    def summary(self, seconds: float | None = None, graded: int | None = None) -> dict[str, Any]:
        """Counts per status, mean score and pass rate over the rows the grader could judge (timeouts and
        errors are not zeros), the grader failure rates, and the first distinct failures. `graded`: rows
        graded in `seconds` (default all; fewer after a resume)."""
        n = self.rows
        judged = n - self.failed
        out: dict[str, Any] = {
            "rows": n,
            "status": {s: self.status.get(s, 0) for s in STATUSES},
            "mean_score": self.score_sum / judged if judged else None,
            "pass_rate": self.passed / judged if judged else None,
            "grader/error_rate": self.status["error"] / n if n else 0.0,
            "grader/timeout_rate": self.status["timeout"] / n if n else 0.0,
            "first_errors": [
                {"status": status, "message": message, "count": count, "first_line": line}
                for (status, message), (count, line) in self.errors.items()
            ],
            "other_errors": self.other_errors,
        }
        if seconds is not None:
            graded = n if graded is None else graded
            out["seconds"] = round(seconds, 3)
            out["rows_per_s"] = round(graded / seconds, 1) if seconds > 0 else None
        return out


def summarize(grades: list[Grade], seconds: float | None = None) -> dict[str, Any]:
    """`Tally.summary` of a list of grades."""
    tally = Tally()
    for g in grades:
        tally.add(g, g.details.get("line"))
    return tally.summary(seconds)
