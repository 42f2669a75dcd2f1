"""Property-based tests of the `math` grader (issue 21, item 3): random answers of every structure competition
answers take (`math_structures`, `math_compound`), rendered in many equivalent LaTeX and plain forms and wrapped
as models write them, must pass; perturbations of them and hedges between a right and a wrong value must not.

Runs are derandomized (the same examples on every run) and use no example database, so CI is reproducible.
Branches the grader fails today are left out of the strict tests and listed in `KNOWN_*`; they are still drawn
by the ``*_known_*`` variants (xfail, not strict) and their minimal failing examples, as hypothesis shrank
them, are pinned one by one in `test_known_failure` (xfail, strict): a fix turns one into an XPASS, which fails
the run until the entry is removed from `KNOWN_FAILURES` (and its branch from `KNOWN_*`).
"""

from __future__ import annotations

from typing import Any

import math_compound  # noqa: F401  (registers the compound structures)
import math_structures  # noqa: F401  (registers the scalar structures)
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from math_strategies import HEDGES, STRUCTURES, WRAPPERS, Case, equivalent, hedged, perturbed

from rft.graders import load_grader

MATH = load_grader({"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"})

COMMON = {"deadline": None, "derandomize": True, "database": None,
          "suppress_health_check": [HealthCheck.filter_too_much, HealthCheck.too_slow]}  # fmt: skip
STRICT = settings(max_examples=40, **COMMON)
# the variants that include known failures: no shrinking (it is slow and the pinned examples are minimal already)
LOOSE = settings(max_examples=10, phases=[Phase.explicit, Phase.generate], **COMMON)

# Branches (form, wrapper, perturbation or hedge names) the grader gets wrong today, per structure.
KNOWN_FORMS: dict[str, set[str]] = {
    "inequality": {"set_builder", "negated"},
    "labelled": {"tuple", "cases"},
    "labelled_tuple": {"pairs", "pairs_reordered", "values_tuple", "semicolon", "and", "quad", "cases"},
    "multiple_choice_sentence": {"correct_option"},
    "plus_minus": {"over_two"},
    "ratio": {"colon_command", "labelled"},
    "units": {"plain", "textnormal"},
}
# 'Final Answer: The value we want is $5$.': the whole sentence is taken as the answer, for every structure
KNOWN_WRAPPERS: dict[str, set[str]] = {n: {"final_answer_sentence"} for n, s in STRUCTURES.items() if s.wrap}
# policy unclear (see the module docstring of rft.graders.math): a one-variable inequality equals its interval,
# so 'y < 3' may be meant to equal 'x < 3'; 'x = 1 or y = 2' is not the system 'x = 1, y = 2'
KNOWN_PERTURBATIONS: dict[str, set[str]] = {"inequality": {"variable"}, "labelled": {"joined_by_or"}}
HEDGED = ["integer", "fraction", "decimal", "radical", "pi", "e_power", "polynomial", "polynomial_2var",
          "rational_expression", "rational_expression_2var", "equation", "tuple", "matrix", "ratio",
          "multiple_choice", "text", "units", "percent", "degrees", "dollars"]  # fmt: skip
# 'The final answer is $A$ or/and/(or possibly) $B$.': the phrase takes its first math span, for every structure
KNOWN_HEDGES: dict[str, set[str]] = {name: {"or", "minerva_or", "and", "parenthetical"} for name in HEDGED}
KNOWN_HEDGES["multiple_choice"] |= {"or_in_math", "boxed_or", "answer_tag_or", "list"}

# (structure, property, gold, output): minimal failing examples as hypothesis shrank them; property "equal"
# must pass, "different" must not (a perturbation or a hedge).
KNOWN_FAILURES: list[tuple[str, str, str, str]] = [
    ("integer", "equal", "0", "Final Answer: The value we want is $0$."),
    ("tuple", "equal", "(2, -9)", "Final Answer: The value we want is $(2, -9)$."),
    ("inequality", "equal", "x < 0", "\\{x \\mid x < 0\\}"),
    ("inequality", "equal", "x < 0", "-x > 0"),
    ("labelled", "equal", "x = 0, y = 0", "(x, y) = (0, 0)"),
    ("labelled", "equal", "x = 0, y = 0", "\\begin{cases} x = 0 \\\\ y = 0 \\end{cases}"),
    ("labelled_tuple", "equal", "(x, y) = (0, 0)", "x = 0, y = 0"),
    ("labelled_tuple", "equal", "(x, y) = (0, 0)", "x = 0; y = 0"),
    ("labelled_tuple", "equal", "(x, y) = (0, 0)", "x = 0 \\text{ and } y = 0"),
    ("labelled_tuple", "equal", "(x, y) = (0, 0)", "(0, 0)"),
    ("multiple_choice_sentence", "equal", "\\text{(A)}", "The correct option is (A)."),
    ("plus_minus", "equal", "\\pm \\sqrt{2}", "\\frac{\\pm 2\\sqrt{2}}{2}"),
    ("ratio", "equal", "1:2", "1 \\colon 2"),
    ("ratio", "equal", "1:1", "V_1 : V_2 = 1 : 1"),
    ("units", "equal", "0\\text{ cm}", "So the answer is $\\boxed{0\\textnormal{ cm}}$."),
    ("units", "equal", "1\\text{ cm}^2", "1 cm^2"),
    ("inequality", "different", "x < 0", "y < 0"),
    ("labelled", "different", "x = 0, y = 0", "x = 0 \\text{ or } y = 0"),
    ("integer", "different", "-44", "The final answer is $-44$ or $44$."),
    ("integer", "different", "-44", "Final Answer: The final answer is $-44$ or $44$. I hope it is correct."),
    ("integer", "different", "-44", "The final answer is $-44$ and $44$."),
    ("integer", "different", "-44", "The final answer is $-44$ (or possibly $44$)."),
    ("fraction", "different", "\\frac{1}{2}", "The final answer is $\\frac{1}{2}$ or $0.501$."),
    ("decimal", "different", "0.1", "The final answer is $0.1$ or $0.2$."),
    ("radical", "different", "\\sqrt{2}", "The final answer is $\\sqrt{2}$ or $1.414$."),
    ("pi", "different", "\\pi", "The final answer is $\\pi$ or $3.1416$."),
    ("e_power", "different", "e^{-1}", "The final answer is $e^{-1}$ or $0.3679$."),
    ("polynomial", "different", "x", "The final answer is $x$ or $x + 1$."),
    ("equation", "different", "y = x", "The final answer is $y = x$ or $y = x + 1$."),
    (
        "tuple",
        "different",
        "(\\frac{16}{3}, 0)",
        "The final answer is $(\\frac{16}{3}, 0)$ or $[\\frac{16}{3}, 0]$.",
    ),
    (
        "matrix",
        "different",
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "The final answer is $\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}$ or $\\begin{pmatrix} 1 & 2 \\end{pmatrix}$.",
    ),
    ("ratio", "different", "1:1", "The final answer is $1:1$ or $1:2$."),
    ("percent", "different", "1\\%", "The final answer is $1\\%$ or $2\\%$."),
    ("dollars", "different", "\\$1", "The final answer is $\\$1$ or $\\$1.01$."),
    (
        "rational_expression",
        "different",
        "\\frac{x}{x + 1}",
        "The final answer is $\\frac{x}{x + 1}$ or $\\frac{x}{x + 2}$.",
    ),
    ("polynomial_2var", "different", "x^{2} + y", "The final answer is $x^{2} + y$ or $y^{2} + x$."),
    (
        "rational_expression_2var",
        "different",
        "\\frac{x + y}{y}",
        "The final answer is $\\frac{x + y}{y}$ or $\\frac{x + 2y}{y}$.",
    ),
    ("text", "different", "\\text{Monday}", "The final answer is $\\text{Monday}$ or $Friday$."),
    ("units", "different", "0\\text{ cm}", "The final answer is $0\\text{ cm}$ or $1$."),
    ("degrees", "different", "0^\\circ", "The final answer is $0^\\circ$ or $1^\\circ$."),
    ("multiple_choice", "different", "\\text{(A)}", "The final answer is $\\text{(A)}$ or $\\text{(B)}$."),
    ("multiple_choice", "different", "\\text{(A)}", "The final answer is $\\text{(A)} \\text{ or } B$."),
    (
        "multiple_choice",
        "different",
        "\\text{(A)}",
        "So the answer is $\\boxed{\\text{(A)} \\text{ or } B}$.",
    ),
    ("multiple_choice", "different", "\\text{(A)}", "<answer>\\text{(A)} or B</answer>"),
    ("multiple_choice", "different", "\\text{(A)}", "The final answer is $\\text{(A)}, B$."),
]


def grade(gold: str, output: str) -> Any:
    return MATH.grade({"output_text": output}, {"answer": gold})


def explain(case: Case, g: Any) -> str:
    return (f"{case.structure}/{case.branch} in {case.wrapper}: gold {case.gold!r}, output {case.output!r} -> "
            f"score {g.score}, status {g.status}, extracted {g.extracted!r}, details {g.details}")  # fmt: skip


def keep(names: list[str] | dict[str, Any], known: set[str]) -> list[str]:
    return sorted(n for n in names if n not in known)


def check_equal(case: Case) -> None:
    g = grade(case.gold, case.output)
    assert g.passed, explain(case, g)


def check_different(case: Case) -> None:
    g = grade(case.gold, case.output)
    assert not g.passed, explain(case, g)


# ---- property 1: equivalent renderings pass ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STRUCTURES))
@STRICT
@given(data=st.data())
def test_equivalent_forms_pass(name: str, data: st.DataObject) -> None:
    s = STRUCTURES[name]
    forms = keep(s.forms, KNOWN_FORMS.get(name, set()))
    wrappers = keep(WRAPPERS, KNOWN_WRAPPERS.get(name, set()))
    check_equal(data.draw(equivalent(s, forms, wrappers)))


@pytest.mark.parametrize("name", sorted(KNOWN_FORMS))
@pytest.mark.xfail(strict=False, reason="draws the forms listed in KNOWN_FORMS")
@LOOSE
@given(data=st.data())
def test_equivalent_forms_pass_known_forms(name: str, data: st.DataObject) -> None:
    s = STRUCTURES[name]
    check_equal(
        data.draw(equivalent(s, sorted(KNOWN_FORMS[name]), keep(WRAPPERS, KNOWN_WRAPPERS.get(name, set()))))
    )


@pytest.mark.parametrize("name", sorted(KNOWN_WRAPPERS))
@pytest.mark.xfail(strict=False, reason="draws the wrappers listed in KNOWN_WRAPPERS")
@LOOSE
@given(data=st.data())
def test_equivalent_forms_pass_known_wrappers(name: str, data: st.DataObject) -> None:
    s = STRUCTURES[name]
    check_equal(
        data.draw(equivalent(s, keep(s.forms, KNOWN_FORMS.get(name, set())), sorted(KNOWN_WRAPPERS[name])))
    )


# ---- property 2: perturbations and hedges do not pass -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STRUCTURES))
@STRICT
@given(data=st.data())
def test_perturbations_fail(name: str, data: st.DataObject) -> None:
    s = STRUCTURES[name]
    perturbations = keep(s.perturbations, KNOWN_PERTURBATIONS.get(name, set()))
    wrappers = keep(WRAPPERS, KNOWN_WRAPPERS.get(name, set()))
    check_different(data.draw(perturbed(s, perturbations, wrappers)))


@pytest.mark.parametrize("name", sorted(KNOWN_PERTURBATIONS))
@pytest.mark.xfail(strict=False, reason="draws the perturbations listed in KNOWN_PERTURBATIONS")
@LOOSE
@given(data=st.data())
def test_perturbations_fail_known(name: str, data: st.DataObject) -> None:
    s = STRUCTURES[name]
    check_different(data.draw(perturbed(s, sorted(KNOWN_PERTURBATIONS[name]), ["bare", "boxed"])))


@pytest.mark.parametrize("name", HEDGED)
@STRICT
@given(data=st.data())
def test_hedges_fail(name: str, data: st.DataObject) -> None:
    check_different(data.draw(hedged(STRUCTURES[name], keep(HEDGES, KNOWN_HEDGES.get(name, set())))))


@pytest.mark.parametrize("name", sorted(KNOWN_HEDGES))
@pytest.mark.xfail(strict=False, reason="draws the hedges listed in KNOWN_HEDGES")
@LOOSE
@given(data=st.data())
def test_hedges_fail_known(name: str, data: st.DataObject) -> None:
    check_different(data.draw(hedged(STRUCTURES[name], sorted(KNOWN_HEDGES[name]))))


# ---- the minimal failing examples, one by one ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("structure", "prop", "gold", "output"),
    [pytest.param(*row, id=f"{row[0]}:{row[1]}:{row[2]}|{row[3]}",
                  marks=pytest.mark.xfail(strict=True, reason="a known failure: remove it from KNOWN_FAILURES"))
     for row in KNOWN_FAILURES],
)  # fmt: skip
def test_known_failure(structure: str, prop: str, gold: str, output: str) -> None:
    g = grade(gold, output)
    assert g.passed == (prop == "equal"), (structure, g)


def test_every_structure_has_forms_and_perturbations() -> None:
    for s in STRUCTURES.values():
        assert len(s.forms) >= 3 and s.perturbations, s.name
    assert set(HEDGED) <= set(STRUCTURES)
