"""`rft grader audit`: a grader against labelled rows, and against a second grader.

Rows are ``{"item": {...}, "sample": {...}, "expected": true|false}`` with an optional ``"kind"`` and
``"id"``; ``expected`` may be left out (an unlabelled row). The report counts false negatives (expected
true, not passed) and false positives (expected false, passed) overall and per kind on the labelled rows,
lists the mistakes, and with a second grader (``--compare``) its counts and the rows where the two
disagree, labelled or not: counted per kind (the row's ``kind``, else the answer structure of its gold,
`answer_kind`) with a few examples each. A timeout or error on a labelled row counts as a mistake (it
earned no reward) and is also counted under ``failed``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from rft.app.answer_kind import answer_kind
from rft.app.graded_rows import Row, grade_rows, read_rows
from rft.graders import Grade, Grader, load_grader
from rft.graders.base import register
from rft.graders.template import as_text

__all__ = ["MathVerifyGrader", "COMPARE", "load_labelled", "run_audit", "report_renderables"]


INSTALL_MATH_VERIFY = "pip install math-verify==0.9.0"


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

    def model_post_init(self, _context: Any) -> None:
        super().model_post_init(_context)
        if importlib.util.find_spec("math_verify") is None:  # a load-time error, not an error grade per row
            raise ValueError(f"math-verify is not installed in {sys.prefix}: {INSTALL_MATH_VERIFY}")

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        from math_verify import parse, verify

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


def answer_group(row: Row) -> str:
    """What a disagreement is counted under: the row's ``kind``, else the answer structure of its gold."""
    kind = row.data.get("kind") if row.data is not None else None
    return str(kind) if kind is not None else answer_kind(_gold(row))


def _other(grade: Grade) -> dict[str, Any]:
    extracted = None if grade.extracted is None else as_text(grade.extracted)
    return {"passed": grade.passed, "status": grade.status, "extracted": extracted}


def disagreements_by_kind(
    rows: list[Row], ours: list[Grade], theirs: list[Grade], examples: int = 3
) -> dict[str, dict[str, Any]]:
    """Per group (`answer_group`): its rows, the disagreements, how many only the first grader passed
    (``grader_only``), only the second (``compare_only``), where either failed (timeout or error:
    ``failed``), and the first `examples` of them. Most disagreements first."""
    out: dict[str, dict[str, Any]] = {}
    for row, a, b in zip(rows, ours, theirs, strict=True):
        group = out.setdefault(answer_group(row), {"rows": 0, "disagreements": 0, "grader_only": 0,
                                                   "compare_only": 0, "failed": 0, "examples": []})  # fmt: skip
        group["rows"] += 1
        if a.passed == b.passed:
            continue
        group["disagreements"] += 1
        group["failed" if a.failed or b.failed else "grader_only" if a.passed else "compare_only"] += 1
        if len(group["examples"]) < examples:
            group["examples"].append({**_describe(row, a), "other": _other(b)})
    return dict(sorted(out.items(), key=lambda kv: (-kv[1]["disagreements"], kv[0])))


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
        "group": answer_group(row),
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
    examples: int = 3,
) -> dict[str, Any]:
    """Grade `rows` with `grader` (and `compare`), and report FN/FP overall and per kind, the mistakes,
    and the disagreements (all of them, and per kind with `examples` each). `exclude_kinds`: kind
    prefixes left out of the overall rates (still shown per kind). Returns a JSON-able dict."""
    t0 = time.perf_counter()
    grades = grade_rows(grader, rows, workers=workers, timeout=timeout, on_result=on_result)
    seconds = time.perf_counter() - t0
    report: dict[str, Any] = {
        "grader": grader.name or grader.type,
        "input_rows": len(rows),
        "labelled": sum(_label(r) is not None for r in rows),
        **_summarise(rows, grades, exclude_kinds),
        "passed": sum(g.passed for g in grades),
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
        theirs["passed"] = sum(g.passed for g in other)
        disagreements = [
            {**_describe(r, ours), "other": _other(them)}
            for r, ours, them in zip(rows, grades, other, strict=True)
            if ours.passed != them.passed
        ]
        report["compare"] = {
            "grader": compare.name or compare.type,
            **theirs,
            "seconds": round(seconds, 3),
            "rows_per_s": round(len(rows) / seconds, 1) if seconds > 0 else None,
            "disagreements": disagreements,
            "disagreements_by_kind": disagreements_by_kind(rows, grades, other, examples),
        }
    return report


def load_compare(spec: str) -> Grader:
    """A second grader: a known name (``math_verify``) or any grader spec (file or inline JSON)."""
    return load_grader(COMPARE.get(spec, spec))


def _rate(n: int, of: int) -> str:
    return f"{n} / {of} ({100 * n / of:.2f}%)" if of else f"{n} / 0"


def _verdict(passed: bool, status: str, extracted: Any) -> str:
    return f"{'pass' if passed else 'fail'}{'' if status == 'ok' else f' ({status})'} {str(extracted)[:60]}"


def report_renderables(report: dict[str, Any], show: int = 20) -> list[Any]:
    """Rich tables for a report (what `rft grader audit` prints)."""
    from rich.table import Table

    labelled = report["labelled"] > 0
    out: list[Any] = []
    head = Table(title=f"audit of {report['grader']}", show_header=False)
    head.add_row("rows", f"{report['input_rows']} ({report['labelled']} labelled)")
    if report["exclude_kinds"]:
        head.add_row("overall leaves out kinds", ", ".join(f"{k}*" for k in report["exclude_kinds"]))
    if labelled:
        head.add_row("false negatives", _rate(report["fn"], report["positives"]))
        head.add_row("false positives", _rate(report["fp"], report["negatives"]))
    head.add_row("passed", _rate(report["passed"], report["input_rows"]))
    head.add_row("status", ", ".join(f"{k} {v}" for k, v in report["status"].items()))
    head.add_row("rows/s", str(report["rows_per_s"]))
    c = report.get("compare")
    if c is not None:
        if labelled:
            head.add_row(f"{c['grader']}: false negatives", _rate(c["fn"], c["positives"]))
            head.add_row(f"{c['grader']}: false positives", _rate(c["fp"], c["negatives"]))
        head.add_row(f"{c['grader']}: passed", _rate(c["passed"], report["input_rows"]))
        head.add_row(f"{c['grader']}: status", ", ".join(f"{k} {v}" for k, v in c["status"].items()))
        head.add_row(f"{c['grader']}: rows/s", str(c["rows_per_s"]))
        head.add_row("disagreements", _rate(len(c["disagreements"]), report["input_rows"]))
    out.append(head)
    if report["by_kind"]:
        kinds = Table(title="per kind")
        for col in ("kind", "rows", "FN", "FP", "failed"):
            kinds.add_column(col, justify="left" if col == "kind" else "right")
        for kind, s in report["by_kind"].items():
            name = kind + (" (left out)" if s.get("excluded") else "")
            failed = sum(s["failed"].values())
            fn, fp = _rate(s["fn"], s["positives"]), _rate(s["fp"], s["negatives"])
            kinds.add_row(name, str(s["rows"]), fn, fp, str(failed))
        out.append(kinds)
    flat = c["disagreements"] if c is not None and labelled else None
    for title, entries in (("mistakes", report["mistakes"]), ("disagreements", flat)):
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
                cells.append(_verdict(o["passed"], o["status"], o["extracted"]))
            t.add_row(*cells)
        out.append(t)
    if c is not None and c["disagreements"]:
        out += _by_kind_tables(report["grader"], c, show, labelled)
    return out


def _by_kind_tables(grader: str, c: dict[str, Any], show: int, labelled: bool) -> list[Any]:
    from rich.table import Table

    groups = {k: g for k, g in c["disagreements_by_kind"].items() if g["disagreements"]}
    t = Table(title="disagreements by kind (the row's kind, else the gold's answer structure)")
    cols = ("kind", "rows", "disagreements", f"{grader} passes only", f"{c['grader']} passes only", "failed")
    for col in cols:
        t.add_column(
            col, justify="left" if col == "kind" else "right", no_wrap=col in ("kind", "disagreements")
        )
    for kind, g in groups.items():
        share = f"{g['disagreements']} ({100 * g['disagreements'] / g['rows']:.1f}%)"
        t.add_row(kind, str(g["rows"]), share, str(g["grader_only"]),
                  str(g["compare_only"]), str(g["failed"]))  # fmt: skip
    out: list[Any] = [t]
    if show > 0:
        ex = Table(title="examples per kind")
        for col in ("kind", "line", *(["expected"] if labelled else []), "gold", grader, c["grader"]):
            ex.add_column(col, overflow="fold")
        for kind, g in groups.items():
            for e in g["examples"]:
                o = e["other"]
                label = [str(e["expected"])] if labelled else []
                ex.add_row(kind, str(e["line"]), *label, e["gold"][:80],
                           _verdict(e["passed"], e["status"], e["extracted"]),
                           _verdict(o["passed"], o["status"], o["extracted"]))  # fmt: skip
        out.append(ex)
    return out
