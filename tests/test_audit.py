"""`rft grader audit` run as a subprocess on a small labelled file, as a user runs it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
