"""The `multi` grader: combining sub-grades, status rules, and the formula's safety and arithmetic."""

from __future__ import annotations

import math

import pytest

from rft.graders import GraderSpecError, load_grader
from rft.graders.multi import Multi

# OpenAI's documented example, verbatim.
OPENAI_EXAMPLE = {
    "type": "multi",
    "graders": {
        "name": {
            "name": "name_grader",
            "type": "text_similarity",
            "input": "{{sample.output_json.name}}",
            "reference": "{{item.name}}",
            "evaluation_metric": "fuzzy_match",
            "pass_threshold": 0.9,
        },
        "email": {
            "name": "email_grader",
            "type": "string_check",
            "input": "{{sample.output_json.email}}",
            "reference": "{{item.email}}",
            "operation": "eq",
        },
    },
    "calculate_output": "(name + email) / 2",
}


def eq(field: str) -> dict:
    return {
        "type": "string_check",
        "name": f"{field}_eq",
        "input": f"{{{{ sample.output_json.{field} }}}}",
        "reference": f"{{{{ item.{field} }}}}",
        "operation": "eq",
    }


def multi(formula: str = "(a + b) / 2", graders: dict | None = None, **kw) -> Multi:
    spec = {
        "type": "multi",
        "name": "m",
        "graders": {"a": eq("a"), "b": eq("b")} if graders is None else graders,
    }
    grader = load_grader({**spec, "calculate_output": formula, **kw})
    assert isinstance(grader, Multi)
    return grader


ITEM = {"a": "x", "b": "y"}
BOTH = {"output_json": {"a": "x", "b": "y"}}
ONLY_A = {"output_json": {"a": "x", "b": "z"}}
NEITHER = {"output_json": {"a": "q", "b": "z"}}

NESTED = {
    "inner": {"type": "multi", "graders": {"a": eq("a"), "b": eq("b")}, "calculate_output": "a * b"},
    "a": eq("a"),
}

# (grader, sample, item, expected score)
POSITIVES = [
    (lambda: multi(), BOTH, ITEM, 1.0),
    (lambda: multi("min(a, b)"), BOTH, ITEM, 1.0),
    (lambda: multi("a ^ 2 * b"), BOTH, ITEM, 1.0),
    (lambda: multi(pass_threshold=0.5), ONLY_A, ITEM, 0.5),
    (lambda: multi("max(a, b)", pass_threshold=1), ONLY_A, ITEM, 1.0),
    (lambda: multi("(inner + a) / 2", NESTED), BOTH, ITEM, 1.0),
    (
        lambda: load_grader(OPENAI_EXAMPLE),
        {"output_json": {"name": "John Smith", "email": "john@example.com"}},
        {"name": "Jon Smith", "email": "john@example.com"},
        None,
    ),
]
NEAR_MISSES = [
    (lambda: multi(), ONLY_A, ITEM, 0.5),  # no threshold: every sub-grade must pass
    (lambda: multi("min(a, b)"), ONLY_A, ITEM, 0.0),
    (lambda: multi(pass_threshold=0.6), ONLY_A, ITEM, 0.5),
    (lambda: multi(), NEITHER, ITEM, 0.0),
    (lambda: multi("(inner + a) / 2", NESTED), ONLY_A, ITEM, 0.5),
    (
        lambda: load_grader(OPENAI_EXAMPLE),
        {"output_json": {"name": "John Smith", "email": "john@example.org"}},
        {"name": "John Smith", "email": "john@example.com"},
        0.5,
    ),
    (
        lambda: load_grader(OPENAI_EXAMPLE),
        {"output_text": '{"name": "Jane Doe", "email": "john@example.com"}'},
        {"name": "John Smith", "email": "john@example.com"},
        None,
    ),
]


@pytest.mark.parametrize(("make", "sample", "item", "score"), POSITIVES)
def test_true_positives(make, sample, item, score):
    g = make().grade(sample, item)
    assert (g.status, g.passed) == ("ok", True), g
    if score is not None:
        assert g.score == pytest.approx(score)


@pytest.mark.parametrize(("make", "sample", "item", "score"), NEAR_MISSES)
def test_near_misses(make, sample, item, score):
    g = make().grade(sample, item)
    assert (g.status, g.passed) == ("ok", False), g
    if score is not None:
        assert g.score == pytest.approx(score)


def test_openai_example_details():
    g = load_grader(OPENAI_EXAMPLE).grade(
        {"output_json": {"name": "Jon Smith", "email": "jon@x.com"}},
        {"name": "John Smith", "email": "jon@x.com"},
    )
    assert g.status == "ok" and 0.9 < g.score < 1.0
    assert set(g.details["graders"]) == {"name", "email"}
    assert g.details["graders"]["email"] == {
        "score": 1.0,
        "status": "ok",
        "passed": True,
        "extracted": "jon@x.com",
        "details": {},
    }
    assert g.extracted == {"name": g.details["graders"]["name"]["score"], "email": 1.0}


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("2 + 3 ^ 2", 11.0),  # ^ binds like a power, not like Python's xor
        ("-2 ^ 2", -4.0),
        ("2 ^ 3 ^ 2", 512.0),
        ("2 ** 3", 8.0),
        ("(a + b) * 3 - 1 / 4", 5.75),
        ("sqrt(a * 4) + abs(-3)", 5.0),
        ("log(exp(2))", 2.0),
        ("log(8, 2)", 3.0),
        ("floor(2.7) + ceil(0.2)", 3.0),
        ("max(a, b, 0.5) + min(0.25, a)", 1.25),
        ("+a - -b", 2.0),
        ("1e-3 * 1000", 1.0),
    ],
)
def test_formula_arithmetic(formula, expected):
    g = multi(formula).grade(BOTH, ITEM)
    assert g.status == "ok", g
    assert g.score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("formula", "words"),
    [
        ("a / (b - b)", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("log(a - 1)", "math domain error"),
        ("exp(1000)", "range"),
        ("(-8) ^ 0.5", "math domain error"),
        ("10 ^ 10 ^ 10", "range"),
        ("1e308 * 10", "inf"),
    ],
)
def test_formula_failures_are_errors(formula, words):
    g = multi(formula).grade(BOTH, ITEM)
    assert (g.status, g.score, g.passed) == ("error", 0.0, False), g
    assert "calculate_output" in g.details["error"] and words in g.details["error"]
    assert set(g.details["graders"]) == {"a", "b"}


@pytest.mark.parametrize(
    "formula",
    [
        "__import__('os').system('x')",
        "a.__class__",
        "[1][0]",
        "lambda: 1",
        "open('f')",
        "unknown + 1",
        "a < b",
        "a if b else 1",
        "a and b",
        "a ^ 'x'",
        "True + a",
        "a & b",
        "a // b",
        "a % b",
        "min(*[a, b])",
        "max(a, key=b)",
        "(a := 1)",
        "[x for x in (a, b)]",
        "{a: b}",
        "f'{a}'",
        "1j * a",
        "a; b",
        "",
        "(a + b",
    ],
)
def test_unsafe_or_bad_formulas_fail_at_load(formula):
    with pytest.raises(GraderSpecError) as e:
        multi(formula)
    assert "calculate_output" in str(e.value)


def test_load_error_says_what_is_allowed():
    with pytest.raises(GraderSpecError) as e:
        multi("pow(a, 2)")
    msg = str(e.value)
    assert "pow(a, 2)" in msg and "sub-grader names (a, b)" in msg and "min, max, abs" in msg


@pytest.mark.parametrize(
    ("formula", "words"), [("abs(a, b)", "abs() takes 1 argument, got 2"), ("min()", "1 or more")]
)
def test_function_arity_is_checked_at_load(formula, words):
    with pytest.raises(GraderSpecError, match=words.replace("(", r"\(").replace(")", r"\)")):
        multi(formula)


def test_bad_sub_grader_names_it():
    bad = {"a": eq("a"), "b": {"type": "string_check", "name": "b_eq", "input": "{{ sample.output_text }}"}}
    with pytest.raises(GraderSpecError, match="sub-grader 'b'.*operation"):
        multi(graders=bad)
    with pytest.raises(GraderSpecError, match="sub-grader 'b'.*unknown grader type"):
        multi(graders={"a": eq("a"), "b": {"type": "nope"}})
    with pytest.raises(GraderSpecError, match="sub-grader 'x'.*sub-grader 'b'"):
        multi("x", graders={"x": {"type": "multi", "graders": bad, "calculate_output": "a"}})
    with pytest.raises(GraderSpecError, match="graders"):
        multi(graders={})


PY_TIMEOUT = {
    "type": "python",
    "source": "import time\ndef grade(s, i):\n    time.sleep(100)\n",
    "timeout": 0.6,
}
PY_RAISES = {"type": "python", "source": "def grade(s, i):\n    raise RuntimeError('boom')\n"}
NO_GROUP = {"type": "regex", "pattern": "x", "group": 3}  # matches, then fails: an error grade
NO_MATCH = {"type": "regex", "pattern": "nothing-matches-this"}  # a no_answer grade


@pytest.mark.parametrize(
    ("graders", "status", "words"),
    [
        ({"a": eq("a"), "b": PY_TIMEOUT}, "timeout", ["b: python grader", "wall-clock"]),
        ({"a": PY_RAISES, "b": PY_TIMEOUT}, "timeout", ["b:"]),  # timeout wins over error
        ({"a": eq("a"), "b": PY_RAISES}, "error", ["sub-grader error", "b:", "RuntimeError: boom"]),
        ({"a": NO_GROUP, "b": eq("b")}, "error", ["a: pattern has no group 3"]),
    ],
)
def test_failed_sub_grades(graders, status, words):
    g = multi(graders=graders).grade({"output_text": "x", "output_json": {"a": "x", "b": "y"}}, ITEM)
    assert (g.status, g.score, g.passed) == (status, 0.0, False), g
    for w in words:
        assert w in g.details["error"]
    assert g.failed
    assert set(g.details["graders"]) == set(graders)


def test_no_answer_only_when_every_sub_grade_has_none():
    both_missing = multi().grade("not json", ITEM)
    assert (both_missing.status, both_missing.score) == ("no_answer", 0.0)
    one_missing = multi("a + b", {"a": eq("a"), "b": NO_MATCH}).grade({"output_json": {"a": "x"}}, ITEM)
    assert (one_missing.status, one_missing.score, one_missing.passed) == ("ok", 1.0, False)
    assert one_missing.details["graders"]["b"]["status"] == "no_answer"


def test_spec_round_trip():
    for grader in (multi(pass_threshold=0.5), multi("(inner + a) / 2", NESTED), load_grader(OPENAI_EXAMPLE)):
        spec = grader.spec()
        assert load_grader(spec) == grader
        assert spec["graders"]["a" if "a" in spec["graders"] else "email"]["type"] == "string_check"
    nested = multi("(inner + a) / 2", NESTED).spec()
    assert nested["graders"]["inner"]["graders"]["b"] == load_grader(eq("b")).spec()


def test_results_are_finite_floats():
    g = multi("a * 0.1 + b * 0.2").grade(BOTH, ITEM)
    assert isinstance(g.score, float) and math.isclose(g.score, 0.3)
