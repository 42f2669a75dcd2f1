"""The `code` grader: extraction, the three test formats, scores and details, and HumanEval end to end on
every sandbox backend that can run here."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from _sandboxes import BACKENDS, backend_or_skip

from rft.graders import GraderSpecError, load_grader
from rft.graders.code import extract_code
from rft.graders.executor import GraderPool

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HUMANEVAL_SPEC = {
    "type": "code",
    "input": "{{ sample.output_text }}",
    "prefix": "{{ item.prompt }}",
    "tests": "{{ item.test }}",
    "entry_point": "{{ item.entry_point }}",
}
MBPP_SPEC = {"type": "code", "tests": "{{ item.test_list }}", "setup": "{{ item.test_setup_code }}"}
CASES_SPEC = {"type": "code", "cases": "{{ item.cases }}"}

FIB_ITEM = {
    "prompt": 'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n',
    "entry_point": "fib",
    "test": textwrap.dedent("""
        METADATA = {}

        def check(candidate):
            assert candidate(0) == 0
            assert candidate(1) == 1
            assert candidate(10) == 55
            assert candidate(20) == 6765
    """),
}
FIB = "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
MBPP_ITEM = {
    "test_list": [
        'assert remove_Occ("hello","l") == "heo"',
        'assert remove_Occ("abcda","a") == "bcd"',
        'assert remove_Occ("PHP","P") == "H"',
    ],
    "test_setup_code": "",
}
REMOVE_OCC = (
    "def remove_Occ(s, ch):\n"
    "    i, j = s.find(ch), s.rfind(ch)\n"
    "    if i == -1:\n        return s\n"
    "    if i == j:\n        return s[:i] + s[i + 1:]\n"
    "    return s[:i] + s[i + 1:j] + s[j + 1:]\n"
)
CASES_ITEM = {"cases": [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4\n", "output": "6\n"}]}
SUM = "a, b = map(int, input().split())\nprint(a + b)\n"


def fenced(code: str, tag: str = "python") -> str:
    return f"Here is my solution:\n\n```{tag}\n{code}```\n\nIt runs in O(n)."


# (spec, completion, item, expected score, expected passed)
POSITIVES = [
    (HUMANEVAL_SPEC, FIB, FIB_ITEM, 1.0),
    (HUMANEVAL_SPEC, fenced("def fib(n):\n" + FIB), FIB_ITEM, 1.0),  # a whole function in a fenced block
    (HUMANEVAL_SPEC, "<think>```python\nbroken(\n```</think>" + fenced("def fib(n):\n" + FIB), FIB_ITEM, 1.0),
    (
        HUMANEVAL_SPEC,
        fenced(
            "import functools\n@functools.cache\ndef fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n"
        ),
        FIB_ITEM,
        1.0,
    ),
    (MBPP_SPEC, REMOVE_OCC, MBPP_ITEM, 1.0),
    (MBPP_SPEC, fenced(REMOVE_OCC, "py"), MBPP_ITEM, 1.0),
    (CASES_SPEC, SUM, CASES_ITEM, 1.0),
    (CASES_SPEC, fenced("import sys\nprint(sum(map(int, sys.stdin.read().split())))\n"), CASES_ITEM, 1.0),
]
NEAR_MISSES = [
    (HUMANEVAL_SPEC, FIB.replace("a, b = 0, 1", "a, b = 1, 1"), FIB_ITEM, 0.25),  # off by one
    (HUMANEVAL_SPEC, "    return 0 if n == 0 else 1\n", FIB_ITEM, 0.5),
    (HUMANEVAL_SPEC, "    return float([0, 1, 55, 6765][[0, 1, 10, 20].index(n)]) + 1e-9\n", FIB_ITEM, 0.0),
    (HUMANEVAL_SPEC, "    return str(a)\n", FIB_ITEM, 0.0),  # NameError in every call
    (MBPP_SPEC, REMOVE_OCC.replace("s.rfind(ch)", "s.find(ch)"), MBPP_ITEM, 0.0),  # removes the first only
    (MBPP_SPEC, "def remove_occ(s, ch):\n    return s\n", MBPP_ITEM, 0.0),  # wrong name
    (CASES_SPEC, "a, b = map(int, input().split())\nprint(a - b)\n", CASES_ITEM, 0.0),
    (CASES_SPEC, "print(3)\n", CASES_ITEM, 0.5),
]


@pytest.mark.parametrize("spec,completion,item,score", POSITIVES)
def test_true_positives(spec, completion, item, score):
    grade = load_grader(spec).grade({"output_text": completion}, item)
    assert grade.status == "ok" and grade.passed and grade.score == score, grade


@pytest.mark.parametrize("spec,completion,item,score", NEAR_MISSES)
def test_near_misses(spec, completion, item, score):
    grade = load_grader(spec).grade({"output_text": completion}, item)
    assert grade.status == "ok" and not grade.passed, grade
    assert grade.score == pytest.approx(score), grade


def test_details_say_which_tests_passed_and_why_others_failed():
    grade = load_grader(HUMANEVAL_SPEC).grade({"output_text": "    return 0 if n == 0 else 1\n"}, FIB_ITEM)
    tests = grade.details["tests"]
    assert [t["passed"] for t in tests] == [True, True, False, False]
    assert (
        tests[2]["error"] == "AssertionError" and tests[2]["got"] == "1" and tests[2]["judged"] == "outside"
    )
    assert grade.details["passed_tests"] == 2 and grade.details["total_tests"] == 4
    assert grade.details["harness_complete"] is True and grade.details["sandbox"] == (
        "local" if os.geteuid() == 0 else "userns"
    )
    assert grade.extracted == "    return 0 if n == 0 else 1\n"


def test_errors_and_output_tails_in_details():
    code = "    print('thinking...')\n    import sys\n    sys.stderr.write('warn\\n')\n    return {}[n]\n"
    grade = load_grader(HUMANEVAL_SPEC).grade({"output_text": code}, FIB_ITEM)
    assert grade.score == 0 and grade.details["tests"][0]["error"].startswith("KeyError")
    assert "thinking..." in grade.details["stdout"] and "warn" in grade.details["stderr"]


def test_function_tests_drop_stdout_past_the_limit_instead_of_failing():
    """A correct function that prints 10 MB (10x the output limit) passes; what it printed past the limit
    is counted in details. A stdin/stdout program is judged on its stdout: there the limit still holds."""
    chatty = "    for _ in range(1000):\n        print('x' * 9999)\n" + FIB
    grade = load_grader(HUMANEVAL_SPEC).grade({"output_text": chatty}, FIB_ITEM)
    assert grade.passed and grade.status == "ok", grade
    printed = 4 * 1000 * 10_000  # four calls
    assert grade.details["stdout_dropped"] == printed - 2**20, grade.details
    raw = (
        "    import os\n    for _ in range(100):\n        os.write(1, b'y' * 100_000)\n" + FIB
    )  # past sys.stdout
    assert load_grader(HUMANEVAL_SPEC).grade({"output_text": raw}, FIB_ITEM).passed
    quiet = load_grader(HUMANEVAL_SPEC).grade({"output_text": FIB}, FIB_ITEM)
    assert quiet.passed and "stdout_dropped" not in quiet.details
    flood = "import sys\nsys.stdout.write('x' * 2**21)\n" + SUM
    cases = load_grader(CASES_SPEC).grade({"output_text": flood}, CASES_ITEM)
    assert cases.score == 0 and "output limit exceeded" in cases.details["cases"][0]["error"], cases


def test_timeout_fails_the_unfinished_tests_only():
    code = "    if n == 20:\n        while True:\n            pass\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
    grade = load_grader({**HUMANEVAL_SPEC, "run_timeout": 1.0}).grade({"output_text": code}, FIB_ITEM)
    assert grade.status in ("ok", "timeout"), grade
    if grade.status == "ok":
        assert grade.score == 0.75 and not grade.passed
        assert "time limit" in grade.details["tests"][3]["error"]


def test_load_errors_fail_every_test():
    grade = load_grader(HUMANEVAL_SPEC).grade({"output_text": "    return (\n"}, FIB_ITEM)
    assert grade.status == "ok" and grade.score == 0
    assert "SyntaxError" in grade.details["load_error"]
    assert all("failed to load" in t["error"] for t in grade.details["tests"])


def test_inside_judged_tests_are_marked():
    item = dict(
        FIB_ITEM,
        test="def check(candidate):\n    for n, want in [(1, 1), (2, 1)]:\n        assert candidate(n) == want\n    assert candidate(10) == 55\n",
    )
    grade = load_grader(HUMANEVAL_SPEC).grade({"output_text": FIB}, item)
    assert grade.passed and [t["judged"] for t in grade.details["tests"]] == ["inside", "outside"]


def test_no_code_is_no_answer():
    g = load_grader(HUMANEVAL_SPEC)
    assert g.grade({"output_text": "   \n"}, FIB_ITEM).status == "no_answer"
    assert g.grade({"output_text": "```cpp\nint main() {}\n```"}, FIB_ITEM).status == "no_answer"


def test_bad_rows_are_errors():
    g = load_grader(HUMANEVAL_SPEC)
    assert (
        g.grade({"output_text": FIB}, dict(FIB_ITEM, test="def check(candidate):\n    pass\n")).status
        == "error"
    )
    assert g.grade({"output_text": FIB}, dict(FIB_ITEM, test="def check(:\n")).status == "error"
    assert g.grade({"output_text": FIB}, {"prompt": "x"}).status == "error"  # no test field
    bad_cases = load_grader(CASES_SPEC).grade({"output_text": SUM}, {"cases": [{"input": 1}]})
    assert bad_cases.status == "error"


@pytest.mark.parametrize(
    "spec,why",
    [
        ({"type": "code"}, "exactly one"),
        ({"type": "code", "tests": "x", "cases": "y"}, "exactly one"),
        ({"type": "code", "tests": "x", "sandbox": "nope"}, "unknown sandbox"),
        ({"type": "code", "tests": "x", "sandbox": "none"}, "unsafe_local_exec"),
        ({"type": "code", "tests": "x", "compare": "fuzzy"}, "compare"),
    ],
)
def test_bad_specs(spec, why):
    with pytest.raises(GraderSpecError, match=why):
        load_grader(spec)


def test_compare_modes():
    item = {"cases": [{"input": "", "output": "1 2\n3\n"}]}
    loose = "print('1  2   ')\nprint(3)\nprint()\n"
    assert (
        load_grader({**CASES_SPEC, "compare": "lines"})
        .grade({"output_text": "print('1 2  ')\nprint(3)\n\n"}, item)
        .passed
    )
    assert not load_grader({**CASES_SPEC, "compare": "lines"}).grade({"output_text": loose}, item).passed
    assert load_grader({**CASES_SPEC, "compare": "tokens"}).grade({"output_text": loose}, item).passed
    assert (
        not load_grader({**CASES_SPEC, "compare": "exact"})
        .grade({"output_text": "print('1 2')\nprint(3, end='')\n"}, item)
        .passed
    )
    assert (
        load_grader({**CASES_SPEC, "compare": "exact"})
        .grade({"output_text": "print('1 2')\nprint(3)\n"}, item)
        .passed
    )


def test_cases_may_come_as_json_text():
    grade = load_grader(CASES_SPEC).grade({"output_text": SUM}, {"cases": json.dumps(CASES_ITEM["cases"])})
    assert grade.passed and grade.details["total_cases"] == 2


@pytest.mark.parametrize(
    "text,code,fenced_",
    [
        ("    return 1\n", "    return 1\n", False),
        ("```python\nx = 1\n```", "x = 1\n", True),
        ("```\nx = 1\n```", "x = 1\n", True),
        ("```py\na = 1\n```\nthen\n```python\nb = 2\n```", "b = 2\n", True),
        ("```python\nx = 1\n", "x = 1\n", True),  # cut off mid-block
        ("<think>```python\nwrong\n```</think>final: ```python\nright\n```", "right\n", True),
        ("```javascript\nlet x\n```", None, True),
        ("", None, False),
    ],
)
def test_extract_code(text, code, fenced_):
    assert extract_code(text) == (code, fenced_)


def test_extract_first_block():
    assert extract_code("```python\na\n```\n```python\nb\n```", "first") == ("a\n", True)


def test_unsafe_local_exec_runs_without_isolation(monkeypatch):
    g = load_grader({**HUMANEVAL_SPEC, "sandbox": "none", "unsafe_local_exec": True})
    grade = g.grade({"output_text": FIB}, FIB_ITEM)
    assert grade.passed and grade.details["sandbox"] == "none"


def test_unavailable_sandbox_is_an_error_not_a_silent_fallback():
    g = load_grader(
        {**HUMANEVAL_SPEC, "sandbox": "bwrap", "sandbox_options": {"bwrap": "/nonexistent/bwrap"}}
    )
    grade = g.grade({"output_text": FIB}, FIB_ITEM)
    assert grade.status == "error" and "bwrap" in grade.details["error"]
    g2 = load_grader({**g.spec(), "unsafe_local_exec": True})
    fallback = g2.grade({"output_text": FIB}, FIB_ITEM)
    assert (
        fallback.passed
        and fallback.details["sandbox"] == "none"
        and "unavailable" in fallback.details["sandbox_fallback"]
    )


def _humaneval() -> list[dict]:
    path = DATA / "humaneval.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not found (shared/data beside the checkout)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(
    "backend", [pytest.param(b, marks=pytest.mark.docker) if b == "docker" else b for b in BACKENDS]
)
def test_humaneval_canonical_pass_and_return_none_fails(backend):
    rows = _humaneval()
    backend_or_skip(backend)
    grader = load_grader({**HUMANEVAL_SPEC, "sandbox": backend})
    canonical = [{"output_text": r["canonical_solution"]} for r in rows]
    nothing = [{"output_text": "    return None\n"} for _ in rows]
    with GraderPool(workers=2, timeout=120) as pool:
        grades = pool.grade(grader, canonical + nothing, rows + rows)
    good, bad = grades[: len(rows)], grades[len(rows) :]
    failed = [
        (r["task_id"], g.status, g.details.get("tests"))
        for r, g in zip(rows, good, strict=True)
        if not g.passed
    ]
    assert failed == [], failed[:3]
    faked = [(r["task_id"], g.status) for r, g in zip(rows, bad, strict=True) if g.passed or g.status != "ok"]
    assert faked == [], faked[:3]
