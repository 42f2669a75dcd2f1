"""Math-Verify's own test cases, ported as data (tests/data/math_verify_cases.jsonl), graded by rft's `math`.

Every case rft is judged on must get the verdict rft's policy wants (`rft_expected`: Math-Verify's `expected`
for "same" cases, the documented policy for "differs" ones). Cases rft gets wrong today are listed in
tests/data/math_verify_known_gaps.txt and run as strict xfails: fixing one fails the test until its line is
deleted. `python tests/test_math_conformance.py` prints the current numbers and the failures by group.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from _conformance import cases, known_gaps, params

from rft.app.answer_kind import answer_kind
from rft.graders import load_grader

CASES = cases("math_verify_cases.jsonl")
MATH = load_grader({"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"})


GAPS = known_gaps("math_verify_known_gaps.txt")
JUDGED = [c for c in CASES if c["rft_expected"] is not None]


def grade(case: dict[str, Any]) -> bool:
    return MATH.grade(case["sample"], case["item"]).passed


@pytest.mark.parametrize("case", params(JUDGED, GAPS))
def test_case(case):
    assert grade(case) == case["rft_expected"], (
        f"gold {case['item']['answer']!r} vs {case['prediction'][-200:]!r}"
    )


def test_the_port_is_whole_and_consistent():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 270, "rerun tests/data/port_math_verify_tests.py"
    assert set(GAPS) <= set(ids), f"known gaps name unknown cases: {sorted(set(GAPS) - set(ids))}"
    assert all(not re.fullmatch(r"\s*", c["item"]["answer"]) for c in CASES)
    for c in CASES:
        assert c["policy"] in ("same", "differs")
        if c["policy"] == "same":
            assert (
                c["why"] is None
                and c["rft_expected"] == c["expected"]
                and not c["kind"].startswith("policy_")
            )
        else:  # a difference says why, and the audit leaves it out with --exclude-kinds policy_
            assert c["why"] and c["rft_expected"] != c["expected"] and c["kind"].startswith("policy_")
        assert c["kind"].removeprefix("policy_") == answer_kind(c["item"]["answer"])
    same = [c for c in CASES if c["policy"] == "same"]
    assert len(same) >= 0.9 * len(CASES)  # most of Math-Verify's expectations are rft's too


def summary() -> dict[str, Any]:
    """Current numbers: cases, passes, false negatives/positives on "same" cases, failures by gap group."""
    results = {c["id"]: grade(c) for c in JUDGED}
    same = [c for c in JUDGED if c["policy"] == "same"]
    wrong = [c for c in JUDGED if results[c["id"]] != c["rft_expected"]]
    return {
        "cases": len(CASES),
        "same": len(same),
        "same_pass": sum(results[c["id"]] == c["expected"] for c in same),
        "same_fn": sum(c["expected"] and not results[c["id"]] for c in same),
        "same_fp": sum(not c["expected"] and results[c["id"]] for c in same),
        "differs": len(CASES) - len(same),
        "differs_policy_met": sum(
            results[c["id"]] == c["rft_expected"] for c in JUDGED if c["policy"] == "differs"
        ),
        "wrong_by_group": dict(Counter(GAPS.get(c["id"], "NOT IN KNOWN GAPS") for c in wrong)),
        "wrong": [
            (GAPS.get(c["id"], "NOT IN KNOWN GAPS"), c["id"], c["item"]["answer"], c["prediction"][-120:])
            for c in wrong
        ],
    }


if __name__ == "__main__":
    s = summary()
    print({k: v for k, v in s.items() if k != "wrong"})
    for group, case_id, gold, pred in sorted(s["wrong"]):
        print(f"[{group[:40]}] {case_id}\n    gold {gold[:120]!r}\n    pred {pred!r}")
