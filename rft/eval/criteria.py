"""OpenAI Evals `testing_criteria` over samples (`rft eval --criteria testing_criteria.json`).

A criteria file is what an OpenAI eval held: a JSON list of grader specs, or an eval object whose
``testing_criteria`` is that list. Each spec is an rft grader as-is (`string_check`, `text_similarity`,
`score_model`, `label_model`, `python`, `multi`, ...), and a sample passes a criterion when its grade
passes: ``pass_threshold`` for scores (`text_similarity`, `score_model`, `python`), ``passing_labels`` for
`label_model`, the comparison for `string_check`. A criterion whose grader fails on a sample (timeout or
error) does not pass it, and the failure is counted (`errored`), as OpenAI's runs counted them.

The samples are rows of `rft grade` or OpenAI's eval JSONL (``{"item": {...}, "sample": {"output_text"}}``)
or of `rft sample`/`rft eval` (``{"id", "completion", ...}``: the last assistant message is
``sample.output_text`` and the suite's item with that id is ``item``). Each criterion's pass rate is the
mean over problems of the fraction of a problem's samples that pass, with a 95% bootstrap interval over
problems (as `rft.eval.metrics` does for pass@k).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rft.eval.evaluate import fmt_ci
from rft.eval.metrics import bootstrap_ci
from rft.graders import Grader, GraderSpecError, load_grader
from rft.graders.executor import grade_batch

__all__ = ["Criterion", "load_criteria", "criteria_inputs", "run_criteria", "write_criteria"]

FAILED = ("timeout", "error")


@dataclass(frozen=True)
class Criterion:
    """One testing criterion: its name, its grader and the spec it was loaded from."""

    name: str
    grader: Grader
    spec: dict[str, Any]

    @property
    def passes_when(self) -> str:
        """The pass rule in words, as the spec states it (or the grader's default)."""
        s = self.spec
        if "passing_labels" in s:
            return f"label in {s['passing_labels']}"
        if s.get("pass_threshold") is not None:
            return f"score >= {s['pass_threshold']:g}"
        if s.get("type") == "string_check":
            return f"{s.get('operation')} holds"
        if s.get("type") == "score_model":
            return f"score = {s.get('range', [0, 1])[1]:g} (top of the range)"
        return "score >= 1" if s.get("type") in ("text_similarity", "python") else "the grade passes"


def load_criteria(source: str | Path | list[Any] | dict[str, Any]) -> list[Criterion]:
    """Criteria from a JSON file, a list of grader specs or an eval object with ``testing_criteria``;
    raises ValueError naming the criterion and what to fix."""
    where = ""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"no such criteria file: {path}")
        try:
            source = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        where = f"{path}: "
    specs = source.get("testing_criteria") if isinstance(source, dict) else source
    if not isinstance(specs, list) or not specs:
        raise ValueError(
            f'{where}expected a non-empty list of grader specs, or an object with "testing_criteria": [...] '
            '(e.g. [{"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", '
            '"reference": "{{ item.answer }}", "operation": "eq"}])'
        )
    criteria: list[Criterion] = []
    for i, spec in enumerate(specs, start=1):
        if not isinstance(spec, dict):
            raise ValueError(
                f"{where}criterion {i} must be a grader spec (an object), got {type(spec).__name__}"
            )
        name = str(spec.get("name") or f"{spec.get('type', 'criterion')}_{i}")
        try:
            grader = load_grader(spec)
        except GraderSpecError as e:
            raise ValueError(f"{where}criterion {i} ({name}): {e}") from None
        if any(c.name == name for c in criteria):
            raise ValueError(f'{where}two criteria are named {name!r}; give each a distinct "name"')
        criteria.append(Criterion(name, grader, dict(spec)))
    return criteria


def _output(completion: Any, line: int) -> dict[str, Any]:
    """The sample namespace of an `rft sample` row: its last assistant message as ``output_text`` (and as
    ``output_json`` when that text is a JSON object)."""
    replies = [
        m.get("content") for m in completion or [] if isinstance(m, dict) and m.get("role") == "assistant"
    ]
    if not replies or not isinstance(replies[-1], str):
        raise ValueError(f"line {line}: the row's completion has no assistant message to grade")
    sample: dict[str, Any] = {"output_text": replies[-1]}
    try:
        parsed = json.loads(replies[-1])
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        sample["output_json"] = parsed
    return sample


def criteria_inputs(
    rows: Iterable[dict[str, Any]], suite: Any = None
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(problem id, item, sample) of each row. `suite` (a `Suite`): the items of `rft sample` rows, found by
    id (without it an item holds the row's ``id`` and ``reference`` only). A row without an id is a problem
    of its own item (rows of one item are samples of one problem)."""
    by_id = {str(it["id"]): it for it in suite.items()} if suite is not None else {}
    found = []
    for line, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise ValueError(f"line {line}: a row must be a JSON object")
        if "sample" in row and not isinstance(row["sample"], int):  # rft grade / OpenAI eval JSONL
            item = row.get("item") or {}
            sample = row["sample"]
            sample = {"output_text": sample} if isinstance(sample, str) else sample
            if not isinstance(item, dict) or not isinstance(sample, dict):
                raise ValueError(f"line {line}: 'item' and 'sample' must be objects")
            pid = item.get("id")
        elif "completion" in row and "id" in row:  # rft sample / rft eval
            pid = str(row["id"])
            if by_id and pid not in by_id:
                raise ValueError(
                    f"line {line}: problem {pid!r} is not in suite {suite.id}; name the suite it came from"
                )
            item = by_id.get(pid) or {"id": pid, "reference": row.get("reference")}
            sample = _output(row["completion"], line)
        else:
            raise ValueError(
                f'line {line}: expected {{"item": {{...}}, "sample": {{"output_text": ...}}}} (rft grade, '
                "OpenAI eval JSONL) or an rft sample/rft eval row (id, completion)"
            )
        if pid is None:
            pid = hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()[:16]
        found.append((str(pid), item, sample))
    if not found:
        raise ValueError("no samples to grade against the criteria")
    return found


def run_criteria(
    criteria: list[Criterion],
    rows: Iterable[dict[str, Any]],
    *,
    suite: Any = None,
    workers: int = 1,
    timeout: float = 30.0,
    n_boot: int = 2000,
    seed: int = 0,
    model: str = "",
    label: str = "samples",
    split: str = "heldout",
) -> dict[str, Any]:
    """Grade every row against every criterion. Returns ``{"criteria": [per criterion: name, type, the pass
    rule, pass_rate, ci95, passed, failed, errored, samples, problems], "results": [result rows, metric
    ``criteria/<name>``, as results.json holds]}``. `workers` 0 grades in this process."""
    inputs = criteria_inputs(rows, suite)
    pids = list(dict.fromkeys(p for p, _, _ in inputs))
    index = {p: i for i, p in enumerate(pids)}
    samples, items = [s for _, _, s in inputs], [it for _, it, _ in inputs]
    summaries, results = [], []
    for c in criteria:
        grades = grade_batch(c.grader, samples, items, workers=workers, timeout=timeout)
        passed_n, total = np.zeros(len(pids)), np.zeros(len(pids))
        errored, first_error = 0, None
        for (pid, _, _), g in zip(inputs, grades, strict=True):
            ok = g.passed and g.status not in FAILED
            passed_n[index[pid]] += ok
            total[index[pid]] += 1
            if g.status in FAILED:
                errored += 1
                first_error = first_error or f"{g.status}: {g.details.get('error', '')}".rstrip(": ")
        rates = passed_n / total
        lo, hi = bootstrap_ci(rates, n_boot=n_boot, seed=seed)
        n_passed = int(passed_n.sum())
        summaries.append({
            "name": c.name, "type": c.spec.get("type"), "passes_when": c.passes_when,
            "pass_rate": float(rates.mean()), "ci95": [lo, hi], "passed": n_passed,
            "failed": len(inputs) - n_passed - errored, "errored": errored, "samples": len(inputs),
            "problems": len(pids), "first_error": first_error,
        })  # fmt: skip
        results.append({"model": model, "suite": label, "split": split, "metric": f"criteria/{c.name}",
                        "value": float(rates.mean()), "ci95": [lo, hi], "n_problems": len(pids)})  # fmt: skip
    return {"criteria": summaries, "results": results}


def write_criteria(out: str | Path, found: dict[str, Any], *, config: dict[str, Any] | None = None) -> None:
    """Add the criteria's results to the evaluation folder `out` (its results.json and report.md); a folder
    without results.json gets one that holds the criteria alone (and `config`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res, report = out / "results.json", out / "report.md"
    doc: dict[str, Any] = {"results": [], **({"config": config} if config else {})}
    if res.is_file():
        doc = json.loads(res.read_text())
    doc["results"] = [r for r in doc["results"] if not r["metric"].startswith("criteria/")] + found["results"]
    doc["criteria"] = found["criteria"]
    res.write_text(json.dumps(doc, indent=2) + "\n")
    text = report.read_text() if report.is_file() else "# Evaluation\n\n"
    text = text.split("\n## Testing criteria\n")[0].rstrip("\n") + "\n\n" + _section(found["criteria"])
    report.write_text(text)


def _section(summaries: list[dict[str, Any]]) -> str:
    lines = ["## Testing criteria", "",
             "| criterion | type | passes when | pass rate | 95% CI | passed | failed | errored | problems |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in summaries:
        lines.append(f"| {s['name']} | {s['type']} | {s['passes_when']} | {s['pass_rate']:.3f} | {fmt_ci(s['ci95'])} "
                     f"| {s['passed']} | {s['failed']} | {s['errored']} | {s['problems']} |")  # fmt: skip
    lines += ["", "Pass rate: the mean over problems of the fraction of a problem's samples that pass; 95% "
              "percentile-bootstrap interval over problems. passed/failed/errored count samples; errored: the "
              "criterion's grader timed out or failed (not passed).", ""]  # fmt: skip
    return "\n".join(lines)
