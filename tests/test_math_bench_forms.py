"""Math grader rules added for the benchmark suites (Minerva Math, OlympiadBench): compound units after a
value, step functions (floor, ceiling) probed where they differ, and the per-item absolute `tolerance`.
Each rule has near misses that must stay 0; the general ones are property tests (derandomized)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rft.graders import GraderSpecError, load_grader
from rft.graders.math import parse, verify

MATH = load_grader({"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"})
TOL = load_grader({"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}",
                   "tolerance": "{{ item.tolerance }}"})  # fmt: skip
PROPS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


def grade(gold: str, answer: str, grader: Any = MATH, **item: Any) -> Any:
    return grader.grade({"output_text": f"So the answer is $\\boxed{{{answer}}}$."}, {"answer": gold, **item})


# ---- units -------------------------------------------------------------------------------------------------

UNIT_TRUE = [
    ("5", r"5 \mathrm{~m} / \mathrm{s}"),
    ("5", r"5 \text{ m/s}"),
    ("1.6", r"1.6 \mathrm{~cm}"),
    ("4.5e33", r"4.5e33 \mathrm{ergs} \mathrm{s}^{-1}"),
    ("4.5e33", r"4.5 \times 10^{33} \mathrm{ergs} \mathrm{~s}^{-1}"),
    ("3", r"3 \mathrm{~cm}^{-3}"),
    ("5", r"5 \, \mathrm{J}"),
    ("5", r"5 \mathrm{K}"),
    ("8", r"8 \text{ m s}^{-1}"),
    ("10", r"10\ \text{kg}\cdot\text{m}^2"),
    ("10", r"10 \mathrm{~kg} \cdot \mathrm{m}^{2} / \mathrm{s}^{2}"),
    ("3e8", r"3 \times 10^8 \text{ m/s}"),
    (r"\frac{600}{7}", r"\frac{600}{7} \text{ km/h}"),
]
UNIT_FALSE = [
    ("5", r"6 \mathrm{~m} / \mathrm{s}"),
    ("5", r"5 \mathrm{~m} / 2"),  # a division, not a unit
    ("5", r"5 \mathrm{~m} + 2 \mathrm{~m}"),
    ("3", r"3 \mathrm{~cm}^{3} \cdot 2"),
    ("2", r"2\mathrm{e}"),  # Euler's number
    ("2", r"2\mathrm{i}"),  # the imaginary unit
    ("5", r"5 \mathbf{v}"),  # a vector, not a unit
    ("4.5e33", r"4.5e34 \mathrm{ergs} \mathrm{s}^{-1}"),
]


@pytest.mark.parametrize(("gold", "answer"), UNIT_TRUE)
def test_compound_units_are_ignored(gold, answer):
    g = grade(gold, answer)
    assert g.score == 1.0, g.details


@pytest.mark.parametrize(("gold", "answer"), UNIT_FALSE)
def test_unit_near_misses_score_zero(gold, answer):
    g = grade(gold, answer)
    assert g.score == 0.0 and g.status == "ok", g.details


ATOMS = ["m", "s", "cm", "km", "kg", "J", "K", "ergs", "Hz", "mol", "eV", "min", "h"]
JOINS = [" / ", " \\cdot ", " ", "/"]
WRAPS = ["\\mathrm{{~{}}}", "\\mathrm{{{}}}", "\\text{{ {}}}"]


@st.composite
def units(draw: st.DrawFn) -> str:
    """A unit as LaTeX: one to three atoms, each wrapped, joined by /, \\cdot or a space, with powers."""
    out = []
    for k in range(draw(st.integers(1, 3))):
        atom = draw(st.sampled_from(ATOMS))
        text = draw(st.sampled_from(WRAPS)).format(atom)
        power = draw(st.sampled_from(["", "^{2}", "^{-1}", "^3", "^{-2}"]))
        out.append((draw(st.sampled_from(JOINS)) if k else "") + text + power)
    return "".join(out)


values = st.one_of(
    st.integers(-10_000, 10_000).map(str),
    st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False).map(lambda d: f"{d:.2f}"),
)


@PROPS
@given(value=values, unit=units())
def test_property_a_value_with_any_compound_unit_equals_the_value(value, unit):
    g = grade(value, f"{value} {unit}")
    assert g.score == 1.0, (value, unit, g.details)


@PROPS
@given(value=st.integers(-10_000, 10_000), unit=units(), delta=st.sampled_from([1, -1, 10]))
def test_property_a_wrong_value_with_a_unit_is_still_wrong(value, unit, delta):
    g = grade(str(value), f"{value + delta} {unit}")
    assert g.score == 0.0, (value, unit, g.details)


# ---- step functions ------------------------------------------------------------------------------------------

FLOOR_TRUE = [
    (r"m n-\lfloor m / 2\rfloor", r"-\lfloor \frac{m}{2}\rfloor + nm"),
    (r"\lfloor x/2\rfloor", r"\lfloor \frac{2x}{4}\rfloor"),
    (r"y = \lfloor x/2\rfloor", r"2y = 2\lfloor x/2\rfloor"),
    (r"\lceil x \rceil", r"-\lfloor -x\rfloor"),
    (r"\lfloor 2x \rfloor", r"\lfloor x \rfloor + \lfloor x + \frac{1}{2} \rfloor"),  # Hermite's identity
]
FLOOR_FALSE = [
    (
        r"m n-\lfloor m / 2\rfloor",
        r"m n-\lfloor m / 3\rfloor",
    ),  # both OlympiadBench decoys the grader accepted
    (r"\lfloor\frac{2 n-1}{5}\rfloor", r"\lfloor\frac{2 n-1}{6}\rfloor"),
    (r"\lfloor x\rfloor", r"\lceil x\rceil"),
    (r"\lfloor x/2\rfloor", r"x/2"),
    (r"y = \lfloor x/2\rfloor", r"y = \lfloor x/3\rfloor"),
    (r"\lfloor 2x \rfloor", r"\lfloor x \rfloor + \lfloor x + \frac{1}{3} \rfloor"),
    (r"\lceil\frac{n}{10}\rceil", r"\lceil\frac{n}{11}\rceil"),
]


@pytest.mark.parametrize(("gold", "pred"), FLOOR_TRUE)
def test_step_functions_equal(gold, pred):
    assert verify(gold=parse(gold), pred=parse(pred)).equal


@pytest.mark.parametrize(("gold", "pred"), FLOOR_FALSE)
def test_step_functions_that_differ_somewhere_are_not_equal(gold, pred):
    assert not verify(gold=parse(gold), pred=parse(pred)).equal


@PROPS
@given(a=st.integers(2, 12), b=st.integers(2, 12), k=st.integers(2, 5), shift=st.integers(-3, 3),
       fn=st.sampled_from([("\\lfloor", "\\rfloor"), ("\\lceil", "\\rceil")]))  # fmt: skip
def test_property_floor_of_n_over_a_is_not_floor_of_n_over_b(a, b, k, shift, fn):
    left, right = fn
    gold = f"{left}\\frac{{n + {shift}}}{{{a}}}{right}"
    same = f"{left}\\frac{{{k}n + {k * shift}}}{{{k * a}}}{right}"
    assert verify(gold=parse(gold), pred=parse(same)).equal, (gold, same)
    if a != b:
        other = f"{left}\\frac{{n + {shift}}}{{{b}}}{right}"
        assert not verify(gold=parse(gold), pred=parse(other)).equal, (gold, other)


# ---- absolute tolerance ------------------------------------------------------------------------------------------

TOL_TRUE = [("4.2", "0.1", "4.25"), ("4.2", "0.1", "4.15"), ("4.2", "1e-1", "\\frac{17}{4}"), ("4.2", "0.1", "4.25\\%"),
            ("10", "0.5", "10.4 \\text{ cm}"), ("\\sqrt{2}", "0.01", "1.414")]  # fmt: skip
TOL_FALSE = [("4.2", "0.1", "4.35"), ("4.2", "", "4.25"), ("4.2", "0", "4.25"), ("(1,2)", "0.1", "(1.05,2)"),
             ("x+1", "0.1", "x+1.01"), ("4.2", "0.1", "4.25, 9"), ("[1,2]", "0.1", "[1,2.05]")]  # fmt: skip


@pytest.mark.parametrize(("gold", "tol", "answer"), TOL_TRUE)
def test_tolerance_accepts_numbers_within_it(gold, tol, answer):
    g = grade(gold, answer, TOL, tolerance=tol)
    assert g.score == 1.0, g.details


@pytest.mark.parametrize(("gold", "tol", "answer"), TOL_FALSE)
def test_tolerance_never_reaches_structures_or_beyond(gold, tol, answer):
    g = grade(gold, answer, TOL, tolerance=tol)
    assert g.score == 0.0 and g.status == "ok", g.details


@PROPS
@given(
    gold=st.integers(-1000, 1000),
    tol_exp=st.integers(-3, 1),
    frac=st.floats(0, 0.99),
    sign=st.sampled_from([1, -1]),
)
def test_property_tolerance_is_absolute_and_both_sided(gold, tol_exp, frac, sign):
    tol = 10.0**tol_exp
    inside = gold + sign * frac * tol
    outside = gold + sign * 1.5 * tol
    assert grade(str(gold), f"{inside:.6f}", TOL, tolerance=f"{tol:g}").score == 1.0
    assert grade(str(gold), f"{outside:.6f}", TOL, tolerance=f"{tol:g}").score == 0.0


def test_a_bad_tolerance_is_an_error_not_a_zero():
    g = grade("4.2", "4.25", TOL, tolerance="about 0.1")
    assert g.status == "error" and "tolerance" in g.details["error"]
    with pytest.raises(GraderSpecError, match="tolerance"):
        load_grader({"type": "math", "input": "{{ sample.output_text }}", "tolerance": "-1"})
    spec = load_grader({"type": "math", "input": "{{ sample.output_text }}", "tolerance": 0.1}).spec()
    assert spec["tolerance"] == "0.1" and load_grader(spec).spec() == spec


# ---- many answers, each in its own box ------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 9, 12, 16])
def test_up_to_sixteen_joined_boxes_are_one_list(count):
    values = [str(3 * k + 1) for k in range(count)]
    gold = ", ".join(values)
    text = "The answers are " + " and ".join(f"$\\boxed{{{v}}}$" for v in reversed(values)) + "."
    assert MATH.grade({"output_text": text}, {"answer": gold}).score == 1.0
    wrong = text.replace(f"\\boxed{{{values[0]}}}", "\\boxed{2}")  # one value off
    assert MATH.grade({"output_text": wrong}, {"answer": gold}).score == 0.0
    hedge = text.replace(" and ", " or ")  # several candidates for one value: a hedge
    assert MATH.grade({"output_text": hedge}, {"answer": values[0]}).score == 0.0
