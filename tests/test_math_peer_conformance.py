"""Other math answer checkers' public test cases, ported as data, graded by rft's `math` grader.

tests/data/peer_checker_cases.jsonl holds the cases of hendrycks MATH, lighteval, open-r1, TRL, NeMo-Skills,
slime, GLM-V, AReaL, SkyRL, tinker-cookbook and open-instruct (sources, commits and licences: tests/data/README.md).

Every case rft is judged on must get the verdict rft's policy wants (`rft_expected`: the peer's `expected` for
"same" cases, the documented policy for "differs" ones). Cases rft gets wrong today are listed in
tests/data/peer_checker_known_gaps.txt and run as strict xfails: fixing one fails the test until its line is
deleted. `python tests/test_math_peer_conformance.py` prints the numbers per source and the failures by group.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from _conformance import cases, known_gaps, params

from rft.graders import load_grader

CASES = cases("peer_checker_cases.jsonl")
MATH = load_grader({"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"})
LICENCES = {"MIT", "Apache-2.0"}


GAPS = known_gaps("peer_checker_known_gaps.txt")
JUDGED = [c for c in CASES if c["rft_expected"] is not None]


def grade(case: dict[str, Any]) -> Any:
    return MATH.grade({"output_text": case["prediction"]}, {"answer": case["item"]["answer"]})


@pytest.mark.parametrize("case", params(JUDGED, GAPS))
def test_case(case):
    g = grade(case)
    assert g.passed == case["rft_expected"], (
        f"gold {case['item']['answer']!r} vs {case['prediction'][-200:]!r}: {g.status} {g.details}"
    )


def test_the_port_is_whole_and_consistent():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate ids: rerun tests/data/port_peer_checker_tests.py"
    assert set(GAPS) <= set(ids), f"known gaps name unknown cases: {sorted(set(GAPS) - set(ids))}"
    assert {c["source"] for c in CASES} == {
        "hendrycks/math", "huggingface/lighteval", "huggingface/open-r1", "huggingface/trl", "NVIDIA/NeMo-Skills",
        "THUDM/slime", "zai-org/GLM-V", "inclusionAI/AReaL", "NovaSky-AI/SkyRL",
        "thinking-machines-lab/tinker-cookbook", "allenai/open-instruct",
    }  # fmt: skip
    for c in CASES:
        assert len(c["commit"]) == 40 and c["file"] and c["item"]["answer"].strip()
        assert c["licence"] in LICENCES, f"{c['source']}: only permissively licensed suites are ported"
        assert c["policy"] in ("same", "differs")
        if c["policy"] == "same":
            assert c["why"] is None and c["rft_expected"] == c["expected"]
        else:  # a difference says why, and names the verdict rft's policy wants (None: not judged)
            assert c["why"] and c["rft_expected"] != c["expected"]
    # every (true, false) kind is there: the suite can fail on both sides
    assert {c["rft_expected"] for c in JUDGED} == {True, False}


def summary() -> dict[str, Any]:
    """Per source: cases, "same" cases, "same" cases rft passes; and the judged cases rft gets wrong."""
    results = {c["id"]: grade(c) for c in JUDGED}
    per_source: dict[str, Counter[str]] = {}
    for c in CASES:
        n = per_source.setdefault(c["source"], Counter())
        n["cases"] += 1
        n["same"] += c["policy"] == "same"
        n["same_pass"] += c["policy"] == "same" and results[c["id"]].passed == c["expected"]
    wrong = [c for c in JUDGED if results[c["id"]].passed != c["rft_expected"]]
    fixed = [c["id"] for c in JUDGED if c["id"] in GAPS and results[c["id"]].passed == c["rft_expected"]]
    return {"per_source": per_source, "wrong": [(c, results[c["id"]]) for c in wrong], "fixed": fixed}


if __name__ == "__main__":
    s = summary()
    for source, n in s["per_source"].items():
        print(f"{source:24} {n['cases']:3} cases, {n['same']:3} same, rft passes {n['same_pass']:3}")
    for case_id in s["fixed"]:
        print(f"FIXED (delete from the known gaps): {case_id}")
    for c, g in sorted(s["wrong"], key=lambda cg: GAPS.get(cg[0]["id"], "NOT IN KNOWN GAPS")):
        d = g.details
        print(f"[{GAPS.get(c['id'], 'NOT IN KNOWN GAPS')[:50]}] {c['id']}  kind={c['kind']}")
        print(
            f"    gold {c['item']['answer'][:100]!r}  pred {c['prediction'][-100:]!r}  expected {c['rft_expected']}"
        )
        print(
            f"    got {g.status} rule={d.get('rule')} extraction={d.get('extraction')} gold={d.get('gold')} pred={d.get('pred')}"
        )
