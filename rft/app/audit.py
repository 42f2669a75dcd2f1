"""`rft grader audit`: a grader against labelled rows, and against a second grader.

Rows are ``{"item": {...}, "sample": {...}, "expected": true|false}`` with an optional ``"kind"`` and
``"id"``. The report counts false negatives (expected true, not passed) and false positives (expected
false, passed) overall and per kind, lists the mistakes, and with a second grader (``--compare``) its
counts and the rows where the two disagree. A timeout or error on a labelled row counts as a mistake
(it earned no reward) and is also counted under ``failed``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from rft.app.graded_rows import Row, grade_rows, read_rows
from rft.graders import Grade, Grader, load_grader
from rft.graders.base import register
from rft.graders.template import as_text

__all__ = ["MathVerifyGrader", "COMPARE", "load_labelled", "run_audit", "report_renderables"]


@register("math_verify")
class MathVerifyGrader(Grader):
    """Hugging Face's Math-Verify as a grader, for audits and benchmarks (``pip install math-verify``).

    The gold is wrapped in ``$...$`` (Math-Verify's advice for bare answers); defaults otherwise. Math-Verify
    times out with SIGALRM, so it only works in a main thread: grade it through a GraderPool (its workers
    grade in their main thread) or in the main thread of this process."""

    type: Literal["math_verify"] = "math_verify"
    input: str = "{{ sample.output_text }}"
    reference: str = "{{ item.answer }}"

    template_fields = ("input", "reference")

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        try:
            from math_verify import parse, verify
        except ImportError:
            return Grade.error("math_verify is not installed: pip install math-verify==0.9.0")
        text = as_text(self.render("input", ctx))
        gold = parse(f"${as_text(self.render('reference', ctx))}$")
        pred = parse(text)
        if not pred:
            return Grade.no_answer("Math-Verify extracted no answer")
        ok = bool(verify(gold, pred))
        return Grade(float(ok), "ok", ok, str(pred[-1]), {"gold": str(gold[-1]) if gold else None})


COMPARE: dict[str, dict[str, Any]] = {"math_verify": {"type": "math_verify", "name": "math_verify"}}


def load_labelled(path: str | Path) -> list[Row]:
    """The rows of a JSONL file (bad lines included: they are graded as errors and reported)."""
    return list(read_rows(path))


def _label(row: Row) -> bool | None:
    value = row.data.get("expected") if row.data is not None else None
    return value if isinstance(value, bool) else None


def _kind(row: Row) -> str:
    return str(row.data.get("kind", "-")) if row.data is not None else "-"


def _gold(row: Row) -> str:
    item = row.data.get("item") if row.data is not None else None
    if isinstance(item, dict) and "answer" in item:
        return as_text(item["answer"])
    return json.dumps(item, ensure_ascii=False)[:120] if item is not None else ""


def _stats(labels: list[bool], grades: list[Grade]) -> dict[str, Any]:
    pos = sum(labels)
    neg = len(labels) - pos
    fn = sum(1 for e, g in zip(labels, grades, strict=True) if e and not g.passed)
    fp = sum(1 for e, g in zip(labels, grades, strict=True) if not e and g.passed)
    failed = Counter(g.status for g in grades if g.failed)
    return {
        "rows": len(labels),
        "positives": pos,
        "negatives": neg,
        "fn": fn,
        "fp": fp,
        "fn_rate": fn / pos if pos else 0.0,
        "fp_rate": fp / neg if neg else 0.0,
        "failed": dict(failed),
    }


def _summarise(rows: list[Row], grades: list[Grade], exclude: tuple[str, ...]) -> dict[str, Any]:
    labelled = [(r, g, e) for r, g in zip(rows, grades, strict=True) if (e := _label(r)) is not None]
    counted = [(r, g, e) for r, g, e in labelled if not _kind(r).startswith(exclude) or not exclude]
    out = _stats([e for *_, e in counted], [g for _, g, _ in counted])
    out["status"] = dict(Counter(g.status for g in grades))
    by_kind: dict[str, Any] = {}
    for kind in sorted({_kind(r) for r, _, _ in labelled}):
        sel = [(g, e) for r, g, e in labelled if _kind(r) == kind]
        by_kind[kind] = _stats([e for _, e in sel], [g for g, _ in sel])
        if exclude and kind.startswith(exclude):
            by_kind[kind]["excluded"] = True
    out["by_kind"] = by_kind
    return out


def _describe(row: Row, grade: Grade) -> dict[str, Any]:
    return {
        "line": row.line,
        "id": row.data.get("id") if row.data is not None else None,
        "kind": _kind(row),
        "expected": _label(row),
        "gold": _gold(row),
        "extracted": None if grade.extracted is None else as_text(grade.extracted),
        "passed": grade.passed,
        "status": grade.status,
        "rule": grade.details.get("rule") or grade.details.get("reason") or grade.details.get("error"),
    }


def run_audit(
    grader: Grader,
    rows: list[Row],
    *,
    compare: Grader | None = None,
    workers: int | None = None,
    timeout: float = 30.0,
    exclude_kinds: tuple[str, ...] = (),
    on_result: Callable[[int, Grade], None] | None = None,
) -> dict[str, Any]:
    """Grade `rows` with `grader` (and `compare`), and report FN/FP overall and per kind, the mistakes,
    and the disagreements. `exclude_kinds`: kind prefixes left out of the overall rates (still shown per
    kind). Returns a JSON-able dict."""
    t0 = time.perf_counter()
    grades = grade_rows(grader, rows, workers=workers, timeout=timeout, on_result=on_result)
    seconds = time.perf_counter() - t0
    report: dict[str, Any] = {
        "grader": grader.name or grader.type,
        "input_rows": len(rows),
        "labelled": sum(_label(r) is not None for r in rows),
        **_summarise(rows, grades, exclude_kinds),
        "seconds": round(seconds, 3),
        "rows_per_s": round(len(rows) / seconds, 1) if seconds > 0 else None,
        "exclude_kinds": list(exclude_kinds),
        "mistakes": [
            _describe(r, g)
            for r, g in zip(rows, grades, strict=True)
            if (e := _label(r)) is not None and e != g.passed
        ],
    }
    if compare is not None:
        t0 = time.perf_counter()
        other = grade_rows(compare, rows, workers=workers, timeout=timeout, on_result=on_result)
        seconds = time.perf_counter() - t0
        theirs = _summarise(rows, other, exclude_kinds)
        theirs.pop("by_kind")
        disagreements = []
        for r, ours, them in zip(rows, grades, other, strict=True):
            if ours.passed != them.passed:
                d = _describe(r, ours)
                d["other"] = {"passed": them.passed, "status": them.status, "extracted": None if them.extracted is None else as_text(them.extracted)}  # fmt: skip
                disagreements.append(d)
        report["compare"] = {
            "grader": compare.name or compare.type,
            **theirs,
            "seconds": round(seconds, 3),
            "rows_per_s": round(len(rows) / seconds, 1) if seconds > 0 else None,
            "disagreements": disagreements,
        }
    return report


def load_compare(spec: str) -> Grader:
    """A second grader: a known name (``math_verify``) or any grader spec (file or inline JSON)."""
    return load_grader(COMPARE.get(spec, spec))


def _rate(n: int, of: int) -> str:
    return f"{n} / {of} ({100 * n / of:.2f}%)" if of else f"{n} / 0"


def report_renderables(report: dict[str, Any], show: int = 20) -> list[Any]:
    """Rich tables for a report (what `rft grader audit` prints)."""
    from rich.table import Table

    out: list[Any] = []
    head = Table(title=f"audit of {report['grader']}", show_header=False)
    head.add_row("rows", f"{report['input_rows']} ({report['labelled']} labelled)")
    if report["exclude_kinds"]:
        head.add_row("overall leaves out kinds", ", ".join(f"{k}*" for k in report["exclude_kinds"]))
    head.add_row("false negatives", _rate(report["fn"], report["positives"]))
    head.add_row("false positives", _rate(report["fp"], report["negatives"]))
    head.add_row("status", ", ".join(f"{k} {v}" for k, v in report["status"].items()))
    head.add_row("rows/s", str(report["rows_per_s"]))
    if "compare" in report:
        c = report["compare"]
        head.add_row(f"{c['grader']}: false negatives", _rate(c["fn"], c["positives"]))
        head.add_row(f"{c['grader']}: false positives", _rate(c["fp"], c["negatives"]))
        head.add_row(f"{c['grader']}: rows/s", str(c["rows_per_s"]))
        head.add_row("disagreements", str(len(c["disagreements"])))
    out.append(head)
    kinds = Table(title="per kind")
    for col in ("kind", "rows", "FN", "FP", "failed"):
        kinds.add_column(col, justify="left" if col == "kind" else "right")
    for kind, s in report["by_kind"].items():
        name = kind + (" (left out)" if s.get("excluded") else "")
        failed = sum(s["failed"].values())
        kinds.add_row(
            name, str(s["rows"]), _rate(s["fn"], s["positives"]), _rate(s["fp"], s["negatives"]), str(failed)
        )
    out.append(kinds)
    for title, entries in (("mistakes", report["mistakes"]), ("disagreements", report.get("compare", {}).get("disagreements"))):  # fmt: skip
        if not entries or show <= 0:
            continue
        t = Table(title=f"{title} (first {min(show, len(entries))} of {len(entries)})")
        for col in ("line", "kind", "expected", "gold", "extracted", "status/rule"):
            t.add_column(col, overflow="fold")
        if title == "disagreements":
            t.add_column("other", overflow="fold")
        for e in entries[:show]:
            cells = [str(e["line"]), e["kind"], str(e["expected"]), e["gold"][:80], str(e["extracted"])[:80], f"{e['status']}: {e['rule']}"]  # fmt: skip
            if title == "disagreements":
                o = e["other"]
                cells.append(
                    f"{'pass' if o['passed'] else 'fail'} ({o['status']}) {str(o['extracted'])[:60]}"
                )
            t.add_row(*cells)
        out.append(t)
    return out
