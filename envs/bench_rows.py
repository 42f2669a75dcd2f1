"""Row maps of the math benchmark suites (``source.map`` in their YAML): each gives a benchmark's rows, from
its local copy or its Hugging Face copy, the fields the suite reads: `problem` and `answer` (the gold as a
model would box it), plus `tolerance` for OlympiadBench.

- ``amc``: AMC 2023 stores answers as floats (``27.0``): an integral value becomes ``27``; the problem is
  `problem` or `question`.
- ``minerva``: Minerva Math has no answer field: the answer is the last ``\\boxed{}`` of `solution`.
- ``olympiadbench``: `final_answer` is a list (or a list written as a string, ``"['2']"``) of LaTeX
  answers in ``$...$``; the answer is its entries without the dollars, joined by ``, `` (several answers
  when `is_multiple_answer`); `error` (an absolute tolerance, as OlympiadBench's own judge applies it)
  becomes `tolerance` (``""`` when the row has none), which the suite's grader reads.
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["amc_row", "minerva_row", "olympiadbench_row", "last_boxed"]


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in `text` (braces balanced), or None."""
    at = text.rfind("\\boxed{")
    while at >= 0:
        depth, start = 0, at + len("\\boxed{")
        for j in range(start - 1, len(text)):
            if text[j] == "{" and text[j - 1] != "\\":
                depth += 1
            elif text[j] == "}" and text[j - 1] != "\\":
                depth -= 1
                if depth == 0:
                    return text[start:j].strip()
        at = text.rfind("\\boxed{", 0, at)  # unbalanced: try an earlier one
    return None


def _problem(row: dict[str, Any], benchmark: str) -> str:
    for key in ("problem", "question", "Problem"):
        if isinstance(row.get(key), str) and row[key].strip():
            return str(row[key])
    raise ValueError(f"not a {benchmark} row: no `problem` or `question` text; fields {sorted(row)}")


def amc_row(row: dict[str, Any]) -> dict[str, Any]:
    """An AMC row with `problem` and a string `answer` (``27.0`` -> ``27``)."""
    answer = row.get("answer")
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    if answer is None or str(answer).strip() == "":
        raise ValueError(f"not an AMC row: no `answer`; fields {sorted(row)}")
    return {**row, "problem": _problem(row, "AMC"), "answer": str(answer).strip()}


def minerva_row(row: dict[str, Any]) -> dict[str, Any]:
    """A Minerva Math row with `answer` = the last ``\\boxed{}`` of `solution` (kept if the row has one)."""
    answer = row.get("answer")
    if not (isinstance(answer, str) and answer.strip()):
        answer = last_boxed(str(row.get("solution") or ""))
    if not answer:
        raise ValueError(
            f"not a Minerva Math row: no `answer` and no \\boxed{{}} in `solution`; fields {sorted(row)}"
        )
    return {**row, "problem": _problem(row, "Minerva Math"), "answer": answer}


def _answers(final: Any) -> list[str]:
    if isinstance(final, str):
        text = final.strip()
        if text.startswith("["):
            try:
                final = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError(f"OlympiadBench final_answer {final!r} is not a list literal") from None
        else:
            final = [text]
    if not isinstance(final, list | tuple) or not final or not all(isinstance(a, str) for a in final):
        raise ValueError(f"OlympiadBench final_answer must be a non-empty list of strings, got {final!r}")
    return [a.replace("$", "").strip() for a in final]


def olympiadbench_row(row: dict[str, Any]) -> dict[str, Any]:
    """An OlympiadBench row with `problem`, `answer` (the final answers joined by ``, ``) and
    `tolerance` (`error` as a string, ``""`` when none)."""
    if "final_answer" not in row:
        raise ValueError(f"not an OlympiadBench row: no `final_answer`; fields {sorted(row)}")
    error = row.get("error")
    if error not in (None, ""):
        try:
            tolerance = float(str(error))
        except ValueError:
            raise ValueError(f"OlympiadBench `error` {error!r} is not a number") from None
        if tolerance < 0:
            raise ValueError(f"OlympiadBench `error` {error!r} is negative")
    return {
        **row,
        "problem": _problem(row, "OlympiadBench"),
        "answer": ", ".join(_answers(row["final_answer"])),
        "tolerance": "" if error in (None, "") else str(error),
    }
