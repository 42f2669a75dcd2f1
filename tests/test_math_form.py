"""The `math` grader's `form` option: answers equal in value but not in the required form (an echoed
question, an unreduced fraction, an unexpanded polynomial) score 0 with status ok and say why; and the
procedural suites' own references pass their form while echoing the question does not."""

from __future__ import annotations

import pytest

from rft.envs import load_suite, suite_path
from rft.graders import GraderSpecError, load_grader
from rft.graders.math import parse
from rft.graders.math.form import check_form


def _grader(form: str):
    return load_grader({"type": "math", "form": form, "reference": "{{ item.answer }}"})


# form -> (reference, prediction) pairs that pass, and pairs equal in value that fail.
PASS = {
    "any": [("97", "37 + 12 * 5"), ("19/12", "3/4 + 5/6"), ("5/6", "10/12"), ("x^2 + 5x - 3", "(x+3)(2x-1) - x^2"),
            ("97", "97")],
    "number": [("97", "97"), ("-7", "-7"), ("2.5", "2.50"), ("1000", "1,000"), ("5/6", "\\frac{10}{12}"),
               ("-5/6", "\\frac{-5}{6}"), ("-5/6", "-\\dfrac{5}{6}"), ("1/2", "\\tfrac12"), ("97", "\\text{97}"),
               ("97", "$97$"), ("0.5", ".5"), ("97", "97 apples"), ("50\\%", "50\\%"), ("5", "x = 5")],
    "reduced": [("5/6", "5/6"), ("-5/6", "-5/6"), ("-5/6", "\\frac{-5}{6}"), ("5/6", "\\frac56"), ("2", "2"),
                ("-7/3", "-\\frac{7}{3}"), ("-7/3", "x = -7/3"), ("0", "0"), ("1.5", "1.5"), ("113/72", "\\dfrac{113}{72}")],
    "expanded": [("x^2 + 5x - 3", "x^2 + 5x - 3"), ("x^2 + 5x - 3", "-3 + 5x + x^2"), ("18x - 61", "18x-61"),
                 ("-19x^2 + 135x - 132", "-19x^{2} + 135x - 132"), ("5", "5"), ("x^2 - y^2", "x^2 - y^2"),
                 ("x^2/2 + 1", "\\frac{1}{2}x^2 + 1"), ("6x", "6 \\cdot x"), ("-x", "-x")],
}  # fmt: skip
FAIL = {
    "number": [("97", "37 + 12 * 5", "has operator '+'"), ("6", "2*3", "has operator '*'"),
               ("6", "10/2+1", "has operator '+'"), ("6", "x = 2 \\cdot 3", "has operator '\\cdot'"),
               ("7/2", "3\\frac{1}{2}", "mixed number"), ("4", "\\sqrt{16}", "\\sqrt"), ("1000", "10^3", "'^'"),
               ("-1/2", "-\\frac{-1}{-2}", "two minus signs"), ("97", "9700\\%", "percent"),
               ("1000", "1e3", "'e'")],
    "reduced": [("19/12", "3/4 + 5/6", "has operator '+'"), ("19/12", "\\frac{3}{4} + \\frac{5}{6}", "'+'"),
                ("5/6", "10/12", "10/12 is 5/6 in lowest terms"), ("5/6", "x=\\frac{10}{12}", "lowest terms"),
                ("2", "6/3", "is the integer 2"), ("-5/6", "5/-6", "denominator is negative"),
                ("-5/6", "\\frac{5}{-6}", "negative"), ("0", "0/4", "integer 0"), ("2", "2/1", "integer 2")],
    "expanded": [("x^2 + 5x - 3", "(x+3)(2x-1) - x^2", "parentheses"),
                 ("x^2 + 5x - 3", "x^2 + 2x + 3x - 3", "like terms"), ("x^2 + 2x + 1", "(x+1)^2", "parentheses"),
                 ("x^2 + x", "x(x+1)", "parentheses"), ("x^2 + 5", "x^2 + 2 + 3", "like terms"),
                 ("6x", "2 \\cdot 3x", "multiplies numbers"), ("x^3", "x \\cdot x^2", "twice"),
                 ("x^2 + x", "x^2 + x + 0x", "zero term"), ("8x", "2^3x", "power of a number"),
                 ("5", "2 + 3", "like terms")],
}  # fmt: skip


@pytest.mark.parametrize("form", list(PASS))
def test_right_form_passes(form: str) -> None:
    assert len(PASS[form]) >= 5
    grader = _grader(form)
    for gold, pred in PASS[form]:
        grade = grader.grade(f"so \\boxed{{{pred}}}", {"answer": gold})
        assert (grade.score, grade.status) == (1.0, "ok"), (form, gold, pred, grade.details)
        assert "form" not in grade.details


@pytest.mark.parametrize("form", list(FAIL))
def test_wrong_form_scores_zero_with_a_reason(form: str) -> None:
    assert len(FAIL[form]) >= 5
    grader, anything = _grader(form), _grader("any")
    for gold, pred, why in FAIL[form]:
        sample = f"The answer is $\\boxed{{{pred}}}$."
        assert anything.grade(sample, {"answer": gold}).score == 1.0, (gold, pred)  # equal in value
        grade = grader.grade(sample, {"answer": gold})
        assert (grade.score, grade.status, grade.passed) == (0.0, "ok", False), (form, pred)
        assert grade.details["form"].startswith(f"form {form!r} required: "), grade.details
        assert why in grade.details["form"], (pred, grade.details["form"])
        assert grade.details["value_equal"] is True


def test_form_details_also_on_wrong_values() -> None:
    grade = _grader("number").grade("\\boxed{2 + 2}", {"answer": "5"})
    assert (grade.score, grade.status, grade.details["value_equal"]) == (0.0, "ok", False)
    assert "has operator '+'" in grade.details["form"]
    grade = _grader("number").grade("\\boxed{4}", {"answer": "5"})
    assert grade.score == 0.0 and "form" not in grade.details


def test_form_is_validated() -> None:
    with pytest.raises(GraderSpecError, match="form"):
        load_grader({"type": "math", "form": "simplified"})
    with pytest.raises(ValueError, match="form must be one of"):
        check_form(parse("1"), "simplified")
    assert _grader("any").form == "any" == load_grader({"type": "math"}).form  # type: ignore[attr-defined]


# suite id -> the form it requires, and the item field holding the question's expression (None: no echo)
SUITES = {
    "arithmetic-v0": ("number", "expression"),
    "python-tool-v0": ("number", "expression"),
    "word-arithmetic-v0": ("number", None),
    "fractions-v0": ("reduced", "expression"),
    "linear-equations-v0": ("reduced", None),
    "polynomials-v0": ("expanded", "expression"),
}


@pytest.mark.parametrize("suite_id", list(SUITES))
def test_suite_references_pass_and_echoes_fail(suite_id: str) -> None:
    form, field = SUITES[suite_id]
    suite = load_suite(suite_path(suite_id))
    grader = suite.load_grader()
    assert grader.form == form  # type: ignore[attr-defined]
    for item in suite.items()[:200]:
        ref = item["reference"]
        grade = grader.grade(f"\\boxed{{{ref}}}", item)
        assert (grade.score, grade.status) == (1.0, "ok"), (suite_id, ref, grade.details)
        echoes = [f"{ref} + 0", f"0 + {ref}"] if form != "expanded" else [f"({ref})", f"{ref} + 0"]
        if field is not None:
            echoes.append(item[field])
        for echo in echoes:
            grade = grader.grade(f"\\boxed{{{echo}}}", item)
            assert (grade.score, grade.status) == (0.0, "ok"), (suite_id, echo, grade.details)
            assert "form" in grade.details
        if form == "reduced" and "/" in ref:
            num, den = ref.split("/")
            grade = grader.grade(f"\\boxed{{{2 * int(num)}/{2 * int(den)}}}", item)
            assert grade.score == 0.0 and "lowest terms" in grade.details["form"], (ref, grade.details)
