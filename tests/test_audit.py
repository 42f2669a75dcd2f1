"""`rft grader audit` run as a subprocess on a small labelled file, as a user runs it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
MATH = json.dumps({"type": "math", "name": "m"})
EXACT = json.dumps({"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
                    "reference": "{{ item.answer }}", "operation": "eq"})  # fmt: skip

ROWS = [
    # (gold, output, expected, kind)
    ("\\frac{1}{2}", "The answer is $0.5$.", True, "rewrite"),
    ("3", "\\boxed{3}", True, "rewrite"),
    ("(1,2)", "\\boxed{(2,1)}", False, "perturb"),
    ("7", "\\boxed{8}", False, "perturb"),
    ("x+z=1", "\\boxed{1}", False, "trap"),  # Math-Verify's known false positive
    ("0.333", "\\boxed{\\frac13}", True, "mislabelled"),  # a wrong label: reported as a false negative
    ("5", "\\boxed{5}", False, "mislabelled"),  # a wrong label: a false positive
    ("50\\%", "\\boxed{0.5}", True, "policy_percent"),
]


def rft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RFT, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    path = tmp_path / "labelled.jsonl"
    lines = [
        json.dumps(
            {"id": f"r{i}", "item": {"answer": g}, "sample": {"output_text": o}, "expected": e, "kind": k}
        )
        for i, (g, o, e, k) in enumerate(ROWS)
    ]
    lines.append(json.dumps({"item": {"answer": "1"}, "sample": {"output_text": "1"}}))  # unlabelled
    path.write_text("\n".join(lines) + "\n")
    return path


def test_audit_counts_false_negatives_and_positives(labelled):
    res = rft("grader", "audit", "-g", MATH, "-i", str(labelled), "--workers", "1", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert (report["input_rows"], report["labelled"]) == (9, 8)
    assert (report["positives"], report["negatives"], report["fn"], report["fp"]) == (4, 4, 1, 1)
    assert report["fn_rate"] == pytest.approx(0.25) and report["fp_rate"] == pytest.approx(0.25)
    assert report["by_kind"]["mislabelled"] == {"rows": 2, "positives": 1, "negatives": 1, "fn": 1, "fp": 1,
                                                "fn_rate": 1.0, "fp_rate": 1.0, "failed": {}}  # fmt: skip
    assert report["by_kind"]["trap"]["fp"] == 0 and report["by_kind"]["policy_percent"]["fn"] == 0
    assert sorted(m["line"] for m in report["mistakes"]) == [6, 7]
    mistake = next(m for m in report["mistakes"] if m["line"] == 6)
    assert mistake["gold"] == "0.333" and mistake["extracted"] == "\\frac13" and mistake["rule"] == "exact"


def test_audit_excludes_kinds_from_the_overall_rates(labelled):
    res = rft("grader", "audit", "-g", MATH, "-i", str(labelled), "--workers", "0", "--exclude-kinds",
              "policy_,mislabelled", "--json")  # fmt: skip
    report = json.loads(res.stdout)
    assert (report["positives"], report["negatives"], report["fn"], report["fp"]) == (2, 3, 0, 0)
    assert report["by_kind"]["policy_percent"]["excluded"] is True


def test_audit_compares_with_a_second_grader_and_prints_tables(labelled):
    res = rft("grader", "audit", "-g", MATH, "-i", str(labelled), "--compare", EXACT, "--workers", "2",
              "--show", "3")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "false negatives" in out and "1 / 4 (25.00%)" in out
    assert "per kind" in out and "policy_percent" in out
    assert "mistakes (first 2 of 2)" in out
    assert "disagreements (first 3 of 4)" in out  # lines 1, 2, 7, 8: rft passes, the exact match does not
    res = rft(
        "grader", "audit", "-g", MATH, "-i", str(labelled), "--compare", EXACT, "--workers", "1", "--json"
    )
    compare = json.loads(res.stdout)["compare"]
    assert compare["grader"] == "exact" and compare["fn"] == 4 and compare["fp"] == 0
    assert sorted(d["line"] for d in compare["disagreements"]) == [1, 2, 7, 8]
    assert all(d["other"]["passed"] is False for d in compare["disagreements"])


@pytest.mark.skipif(importlib.util.find_spec("math_verify") is None, reason="math-verify is not installed")
def test_audit_against_math_verify(labelled):
    res = rft("grader", "audit", "-g", MATH, "-i", str(labelled), "--compare", "math_verify", "--workers", "2",
              "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    compare = json.loads(res.stdout)["compare"]
    assert compare["grader"] == "math_verify" and compare["status"].get("error", 0) == 0
    trap = [d for d in compare["disagreements"] if d["kind"] == "trap"]
    assert trap and trap[0]["passed"] is False and trap[0]["other"]["passed"] is True  # x+z=1 vs 1


def test_audit_errors_say_what_to_fix(labelled, tmp_path):
    res = rft("grader", "audit", "-g", json.dumps({"type": "math", "percent": "half"}), "-i", str(labelled))
    assert res.returncode == 2 and "percent" in res.stderr
    res = rft("grader", "audit", "-g", MATH, "-i", str(tmp_path / "missing.jsonl"))
    assert res.returncode == 2 and "no such input file" in res.stderr
    res = rft("grader", "audit", "-g", MATH, "-i", str(labelled), "--compare", "no_such_grader")
    assert res.returncode == 2 and "--compare" in res.stderr


# answer_kind: (gold, kind) per answer structure, LaTeX and plain forms, wrapped or not.
KINDS = [
    ("42", "number"), ("-3.5", "number"), ("1{,}000", "number"), ("50\\%", "number"), ("30^\\circ", "number"),
    ("$204$", "number"), ("\\boxed{7}", "number"), ("0.\\overline{3}", "number"), ("9e11", "number"),
    ("1.5 \\times 10^{3}", "number"),
    ("5\\text{ cm}", "number+units"), ("\\$3800", "number+units"),
    ("\\frac{1}{2}", "fraction"), ("-3/4", "fraction"), ("2\\frac{1}{3}", "fraction"), ("\\dfrac{38}{8}", "fraction"),
    ("2\\sqrt{3}", "expression"), ("x^2+1", "expression"), ("\\frac{\\pi}{4}", "expression"), ("e", "expression"),
    ("x + y = 1", "equation/relation"), ("x \\ge 5", "equation/relation"), ("-2 \\le x \\le 7", "equation/relation"),
    ("x \\in [0, 1]", "equation/relation"), ("\\{x \\mid x \\geq 0\\}", "equation/relation"),
    ("x = 5", "labelled"), ("(p,q)=(3,2)", "labelled"), ("k = 45, n = 2", "labelled"), ("|AB|=1", "labelled"),
    ("p=5,q=2;p=7,q=2", "labelled"), ("S_{MBCN}:S=7:32", "labelled"),
    ("7:32", "ratio"), ("1:2:3", "ratio"),
    ("[0, 1)", "interval"), ("(-\\infty, 2] \\cup (3, \\infty)", "interval"), ("[0, +\\infty)", "interval"),
    ("(-\\infty, 0) \\cup\\{1\\}", "interval"), ("[-3, 2]", "interval"),
    ("(1, 2)", "tuple/set"), ("\\{1, 2\\}", "tuple/set"), ("1, 2, 3", "tuple/set"), ("(0;-2;6)", "tuple/set"),
    ("12 \\text{ and } 13", "tuple/set"), ("(11,7)or(7,11)", "tuple/set"), ("1 \\pm \\sqrt{2}", "tuple/set"),
    ("\\boxed{1}\\boxed{2}", "tuple/set"), ("(37,3,3,13),(17,3,3,7)", "tuple/set"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "matrix"), ("\\left[\\begin{array}{cc}1&2\\end{array}\\right]", "matrix"),
    ("\\text{(B)}", "text/choice"), ("C", "text/choice"), ("\\textbf{(E)}", "text/choice"), ("Monday", "text/choice"),
    ("\\text{no solution}", "text/choice"),
    ("", "other"), ("$ $", "other"),
]  # fmt: skip


@pytest.mark.parametrize(("gold", "kind"), KINDS)
def test_answer_kind(gold, kind):
    from rft.app.answer_kind import ANSWER_KINDS, answer_kind

    assert kind in ANSWER_KINDS and answer_kind(gold) == kind


def test_answer_kind_covers_every_kind():
    from rft.app.answer_kind import ANSWER_KINDS

    assert {k for _, k in KINDS} == set(ANSWER_KINDS)


# Unlabelled rows: (gold, output). Bare golds agree with an exact string match; rewritten ones only rft passes.
UNLABELLED = [
    ("42", "42"), ("42", "The answer is $\\boxed{42}$."), ("7", "\\boxed{8}"),
    ("\\frac{1}{2}", "\\frac{1}{2}"), ("\\frac{1}{2}", "so it is $0.5$"), ("\\frac{3}{4}", "\\boxed{0.75}"),
    ("[0, 1)", "\\boxed{[0,1)}"), ("(1, 2)", "(1, 2)"), ("(1, 2)", "\\boxed{(2, 1)}"),
    ("x = 5", "\\boxed{5}"), ("\\text{(B)}", "\\boxed{B}"),
]  # fmt: skip


@pytest.fixture
def unlabelled(tmp_path: Path) -> Path:
    path = tmp_path / "unlabelled.jsonl"
    rows = [{"item": {"answer": g}, "sample": {"output_text": o}} for g, o in UNLABELLED]
    rows.append({"item": {"answer": "9"}, "sample": {"output_text": "\\boxed{9.0}"}, "kind": "mine"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_audit_of_unlabelled_rows_groups_disagreements_by_kind(unlabelled):
    res = rft("grader", "audit", "-g", MATH, "-i", str(unlabelled), "--compare", EXACT, "--workers", "1",
              "--examples", "1", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert (report["input_rows"], report["labelled"], report["passed"]) == (12, 0, 10)
    assert report["by_kind"] == {} and report["mistakes"] == []
    compare = report["compare"]
    assert compare["passed"] == 3 and len(compare["disagreements"]) == 7
    by_kind = compare["disagreements_by_kind"]
    counts = {
        k: (g["rows"], g["disagreements"], g["grader_only"], g["compare_only"]) for k, g in by_kind.items()
    }
    assert counts == {"fraction": (3, 2, 2, 0), "number": (3, 1, 1, 0), "interval": (1, 1, 1, 0),
                      "labelled": (1, 1, 1, 0), "mine": (1, 1, 1, 0), "text/choice": (1, 1, 1, 0),
                      "tuple/set": (2, 0, 0, 0)}  # fmt: skip
    assert list(by_kind)[0] == "fraction"  # most disagreements first
    assert [len(g["examples"]) for g in by_kind.values()] == [1, 1, 1, 1, 1, 1, 0]  # --examples 1
    example = by_kind["fraction"]["examples"][0]
    assert (example["line"], example["gold"], example["passed"], example["other"]["passed"]) == (5, "\\frac{1}{2}", True, False)  # fmt: skip
    assert example["group"] == "fraction" and example["kind"] == "-" and example["expected"] is None

    res = rft("grader", "audit", "-g", MATH, "-i", str(unlabelled), "--compare", EXACT, "--workers", "0")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "12 (0 labelled)" in out and "false negatives" not in out and " FN " not in out
    assert "disagreements by kind" in out and "examples per kind" in out and "7 / 12" in out
    assert out.index("│ fraction") < out.index("│ labelled")


@pytest.mark.skipif(importlib.util.find_spec("math_verify") is None, reason="math-verify is not installed")
@pytest.mark.skipif(not (DATA / "bench").is_dir(), reason="../shared/data/bench is not there")
def test_audit_unlabelled_benchmark_answers_against_math_verify(tmp_path):
    """Gold answers of the benchmark files with synthetic outputs (boxed, a Final Answer line, a perturbed
    number), no labels: Math-Verify grades them in this process's main thread (--workers 0) without errors,
    and every disagreement is counted once, under its gold's answer structure."""
    from rft.app.answer_kind import ANSWER_KINDS

    golds = [json.loads(line)["answer"] for name in ("aime24", "amc23") for line in (DATA / "bench" / f"{name}.jsonl").open()][:20]  # fmt: skip
    for line in list((DATA / "bench" / "olympiadbench.jsonl").open())[:40:2]:
        answers = json.loads(line)["final_answer"]
        golds.append(", ".join(answers if isinstance(answers, list) else [answers]).strip("$"))
    outputs = ["The answer is $\\boxed{{{g}}}$.", "Final Answer: The final answer is ${g}$. I hope it is correct.",
               "\\boxed{{{g}1}}"]  # fmt: skip
    path = tmp_path / "bench_unlabelled.jsonl"
    rows = [{"item": {"answer": g}, "sample": {"output_text": o.format(g=g)}} for g in golds for o in outputs]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = rft(
        "grader", "audit", "-g", MATH, "-i", str(path), "--compare", "math_verify", "--workers", "0", "--json"
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    compare = report["compare"]
    assert report["labelled"] == 0 and compare["status"].get("error", 0) == 0, compare["status"]
    by_kind = compare["disagreements_by_kind"]
    assert set(by_kind) <= set(ANSWER_KINDS) and {"number", "tuple/set"} <= set(by_kind)
    assert sum(g["rows"] for g in by_kind.values()) == len(rows)
    assert sum(g["disagreements"] for g in by_kind.values()) == len(compare["disagreements"])
    for kind, group in by_kind.items():
        assert group["disagreements"] == group["grader_only"] + group["compare_only"] + group["failed"]
        assert all(e["group"] == kind and e["passed"] != e["other"]["passed"] for e in group["examples"])
