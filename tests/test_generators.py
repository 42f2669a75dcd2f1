"""Procedural generators: seeded, a difficulty knob, answers checked independently, graded by the real graders."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from fractions import Fraction
from functools import cache
from typing import Any

import gymnasium as gym
import pytest
import sympy
from gymnasium.utils.env_checker import check_env, check_returned_data_not_reused
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

import rft.envs  # noqa: F401  (registers the built-in suites)
from rft.envs.code_tasks import FAMILIES
from rft.envs.generators import (
    GENERATORS,
    arithmetic,
    code_functions,
    fractions,
    linear_equations,
    polynomials,
    word_arithmetic,
)
from rft.graders import load_grader

MATH = {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}"}
CODE = {
    "type": "code",
    "tests": "{{ item.tests }}",
    "entry_point": "{{ item.entry_point }}",
    "sandbox": "local",
}
NEW = {
    "word_arithmetic": {"steps": 3},
    "fractions": {"operands": 3},
    "polynomials": {"degree": 3},
    "code_functions": {"difficulty": 2},
}


def rows(name: str, size: int = 200, seed: int = 0, **params: Any) -> list[dict[str, Any]]:
    return list(GENERATORS[name](size=size, seed=seed, **params))


@cache
def math_grader():
    return load_grader(MATH)


def math_score(text: str, reference: str) -> float:
    grade = math_grader().grade({"output_text": text}, {"reference": reference})
    assert grade.status == "ok", grade
    return grade.score


@pytest.mark.parametrize("name", sorted(NEW))
def test_seeded_and_mostly_distinct(name):
    a = rows(name, **NEW[name])
    assert a == rows(name, **NEW[name])
    assert a != rows(name, seed=1, **NEW[name])
    assert len(a) == 200 and len({r["id"] for r in a}) >= 195
    for r in a:
        assert r["id"] == r["question"] and isinstance(r["answer"], str) and r["solution"]


def test_existing_ids_unchanged_and_solutions_added():
    """The split hashes depend on the ids: the rows of `arithmetic` and `linear_equations` are the ones they
    were before `solution` was added (hashes taken from the earlier implementation)."""

    def digest(rs) -> str:
        stripped = [{k: v for k, v in r.items() if k != "solution"} for r in rs]
        return hashlib.sha256(json.dumps(stripped).encode()).hexdigest()[:16]

    first = ["59 - 63 * 15", "72 - 61 - 48", "84 + 37 - 74"]
    assert [r["id"] for r in arithmetic(size=3, seed=0, digits=2, operands=3)] == first
    assert [r["id"] for r in linear_equations(size=3, seed=0)] == [
        "x + 37 = 53",
        "2x - 55 = -27",
        "5x + 2 = -9",
    ]
    assert digest(arithmetic(size=300, seed=1, digits=3, operands=4)) == "250330eb9471e507"
    assert digest(linear_equations(size=300, seed=1, fractions=False)) == "031a5e3d2cb13446"


@pytest.mark.parametrize(
    "name, params",
    [
        ("arithmetic", {"operands": 4}),
        ("linear_equations", {}),
        ("word_arithmetic", {"steps": 4}),
        ("fractions", {"operands": 3}),
        ("polynomials", {"degree": 3, "terms": 4}),
    ],
)
def test_worked_solution_ends_in_the_boxed_answer_and_grades_one(name, params):
    for r in rows(name, size=30, **params):
        assert r["solution"].endswith(f"\\boxed{{{r['answer']}}}."), r
        assert math_score(r["solution"], r["answer"]) == 1.0, r


# -- word problems


_OPS = [  # an independent reading of the templates: pattern -> new count
    (r"(?:buys|finds) (\d+) more\.$|gets (\d+) more from \w+\.$", lambda s, a: s + a[0]),
    (r"gives (\d+) to \w+\.$|loses (\d+)\.$|sells (\d+) of them\.$", lambda s, a: s - a[0]),
    (r"buys (\d+) bags with (\d+) .+ in each bag\.$", lambda s, a: s + a[0] * a[1]),
    (r"gives (\d+) .+ to each of (\d+) friends\.$", lambda s, a: s - a[0] * a[1]),
    (r"doubles the number", lambda s, a: 2 * s),
    (r"triples the number", lambda s, a: 3 * s),
    (r"into (\d+) equal piles and keeps only one pile\.$", lambda s, a: s / a[0]),
]


def _solve_word_problem(question: str) -> tuple[int, int]:
    """(the final count, the number of operations) read from the question text alone."""
    first, *middle, last = re.split(r"(?<=[.?])\s+", question)
    s: int | float = int(re.search(r" has (\d+) ", first).group(1))
    assert last.startswith("How many") and last.endswith("have now?"), last
    for sentence in middle:
        found = [
            (fn, [int(x) for x in m.groups() if x is not None])
            for pattern, fn in _OPS
            if (m := re.search(pattern, sentence))
        ]
        assert len(found) == 1, sentence
        fn, args = found[0]
        s = fn(s, args)
        assert s >= 0 and s == int(s), (question, sentence, s)  # a non-negative whole count at every step
    return int(s), len(middle)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_word_arithmetic_answers_and_steps(steps):
    rs = rows("word_arithmetic", size=300, steps=steps, max_value=30)
    for r in rs:
        assert _solve_word_problem(r["question"]) == (int(r["answer"]), steps), r
    kinds = {p for r in rs for s in re.split(r"(?<=\.) ", r["question"]) for p, _ in _OPS if re.search(p, s)}
    assert len(kinds) == len(_OPS)  # every template is used


def test_word_arithmetic_max_value_bounds_the_start():
    small = rows("word_arithmetic", steps=2, max_value=8)
    assert max(int(re.search(r" has (\d+) ", r["question"]).group(1)) for r in small) <= 8


# -- fractions


def _value(expr: str) -> Fraction:
    """The value of a question's expression, computed with Python's precedence over `Fraction`s."""
    py = re.sub(r"(\d+)/(\d+)", r"Fraction(\1, \2)", expr).replace("×", "*").replace("÷", "/")
    return eval(py, {"Fraction": Fraction})  # trusted generator output, not model output


@pytest.mark.parametrize("params", [{}, {"operands": 4, "max_den": 20}, {"ops": "*/", "max_den": 5}])
def test_fractions_answers_are_reduced_and_right(params):
    operands, max_den = params.get("operands", 2), params.get("max_den", 12)
    for r in rows("fractions", **params):
        m = re.fullmatch(r"Compute (.+)\. Give the answer as a reduced fraction\.", r["question"])
        assert m and m.group(1) == r["expression"], r
        terms = re.findall(r"(\d+)/(\d+)", r["expression"])
        assert len(terms) == operands and all(2 <= int(d) <= max_den for _, d in terms)
        assert all(Fraction(int(n), int(d)).denominator == int(d) for n, d in terms)  # operands are reduced
        want = _value(r["expression"])
        assert Fraction(r["answer"]) == want
        assert r["answer"] == (
            str(want.numerator) if want.denominator == 1 else f"{want.numerator}/{want.denominator}"
        )
        if "ops" in params:
            assert not re.search(r" [+-] ", r["expression"])


def test_fractions_graded_by_value():
    for r in rows("fractions", size=20):
        assert math_score(f"\\boxed{{{r['answer']}}}", r["answer"]) == 1.0
        wrong = Fraction(r["answer"]) + Fraction(1, 7)
        assert math_score(f"\\boxed{{{wrong}}}", r["answer"]) == 0.0


# -- polynomials

_X = sympy.Symbol("x")
_TRANSFORMS = (*standard_transformations, implicit_multiplication_application, convert_xor)


def _sym(text: str) -> sympy.Expr:
    return parse_expr(text, local_dict={"x": _X}, transformations=_TRANSFORMS)


@pytest.mark.parametrize("params", [{"degree": 1, "terms": 2}, {}, {"degree": 4, "terms": 4, "max_coef": 5}])
def test_polynomials_answer_is_the_expansion(params):
    rs = rows("polynomials", size=150, **params)
    degree = params.get("degree", 2)
    terms = params.get("terms", 3)
    seen_degree = 0
    for r in rs:
        assert r["question"] == f"Expand and simplify: {r['expression']}"
        want = sympy.expand(_sym(r["expression"]))
        got = _sym(r["answer"])
        assert sympy.expand(got - want) == 0, r
        assert "(" not in r["answer"] and got == sympy.expand(got)  # already expanded
        poly = sympy.Poly(want, _X)
        assert 1 <= poly.degree() <= degree
        seen_degree = max(seen_degree, poly.degree())
        # the parts joined by + and - (outside parentheses)
        depth, parts = 0, 1
        for i, ch in enumerate(r["expression"]):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            parts += depth == 0 and r["expression"][i - 1 : i + 2] in (" + ", " - ")
        assert parts == terms, r
    assert seen_degree == degree


def test_polynomials_graded_by_the_math_grader():
    for r in rows("polynomials", size=25, degree=3):
        ref = r["answer"]
        assert math_score(f"The result is \\boxed{{{ref}}}.", ref) == 1.0
        sympy_form = str(_sym(ref)).replace("**", "^")  # another order and spelling of the same polynomial
        assert math_score(f"\\boxed{{{sympy_form}}}", ref) == 1.0
        # a wrong coefficient: change the constant term or the x term by one
        assert math_score(f"\\boxed{{{ref} + 1}}", ref) == 0.0
        assert math_score(f"\\boxed{{{ref} - x}}", ref) == 0.0
        assert math_score(f"\\boxed{{{ref} + x^{_degree(ref) + 1}}}", ref) == 0.0


def _degree(text: str) -> int:
    return int(sympy.Poly(_sym(text), _X).degree())


# -- coding tasks


def _run_reference(row: dict[str, Any]) -> None:
    """Run the reference against its tests and its example, in this process (trusted generator output)."""
    ns: dict[str, Any] = {}
    exec(row["answer"], ns)
    for test in row["tests"]:
        exec(test, dict(ns))
    call, value = re.search(r"Example: `(.+)` returns `(.+)`\.$", row["question"], re.S).groups()
    assert eval(call, dict(ns)) == eval(value), row


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_code_functions_references_pass_their_tests(difficulty):
    rs = rows("code_functions", size=400, difficulty=difficulty)
    for r in rs:
        assert 3 <= len(r["tests"]) <= 6
        assert f"`{r['entry_point']}(" in r["question"] and r["answer"].startswith(f"def {r['entry_point']}(")
        assert r["solution"] == f"```python\n{r['answer']}```"
        assert all(t.startswith(f"assert {r['entry_point']}(") for t in r["tests"])
        sig = re.search(r"`(\w+\(.*?\) -> .+?)` that", r["question"]).group(1)
        assert r["answer"].startswith(f"def {sig}:")
        _run_reference(r)
    pipelines = [r for r in rs if r["answer"].count("    ys = ") > 0]
    if difficulty == 1:
        assert not pipelines
    else:
        assert pipelines and all(r["answer"].count("    ys = ") == difficulty for r in pipelines)


LEVEL_2 = ["brackets", "index pairs", "longest stretch", "groups the", "at a time from each", "takes `xs`, "]


def test_code_functions_families_and_difficulty():
    assert len(FAMILIES) >= 12 and sum(level == 1 for level, _ in FAMILIES.values()) >= 12
    easy = rows("code_functions", size=300, difficulty=1)
    hard = rows("code_functions", size=300, difficulty=3)
    for marker in LEVEL_2:  # difficulty 2 and 3 add families and composed pipelines
        assert not any(marker in r["question"] for r in easy), marker
        assert any(marker in r["question"] for r in hard), marker
    assert len({r["entry_point"] for r in easy}) >= 30
    statements = {r["question"].split("\n\nExample")[0] for r in easy}
    assert len(statements) >= 150  # many distinct tasks, not one task with different examples


def test_code_functions_graded_in_the_sandbox():
    grader = load_grader(CODE)
    rs = rows("code_functions", size=6, seed=3, difficulty=2)
    for r in rs:
        right = grader.grade({"output_text": r["solution"]}, r)
        assert (right.score, right.status, right.passed) == (1.0, "ok", True), right.details
    r = rs[0]
    for wrong in (f"def {r['entry_point']}(*args):\n    return None\n", "def f():\n    return None\n"):
        grade = grader.grade({"output_text": f"```python\n{wrong}```"}, r)
        assert grade.status == "ok" and not grade.passed and grade.score <= 0.5, grade.details


def test_code_functions_env():
    """What test_envs runs for the GENERATED suites, adapted to a code suite: the reference is code, not a
    boxed number, and the grade details carry measured run times (as for humaneval)."""
    env = gym.make("rft/code-functions-v0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check_env(env.unwrapped, skip_render_check=True)
        except AssertionError as e:
            assert "Deterministic step info" in str(e), e
        check_returned_data_not_reused(env.unwrapped)
    assert not [str(w.message) for w in caught]
    for index in range(2):
        _, info = env.reset(options={"split": "heldout", "index": index})
        _, reward, terminated, truncated, step = env.step(f"```python\n{info['reference']}```")
        assert (reward, terminated, truncated) == (1.0, True, False), step["grade"]
        env.reset(options={"split": "heldout", "index": index})
        _, reward, *_, step = env.step("The answer is \\boxed{-99991}.")
        assert reward == 0.0 and step["grade"]["status"] == "ok"
    env.close()


# -- errors


@pytest.mark.parametrize(
    "fn, params, message",
    [
        (word_arithmetic, {"steps": 0}, "steps >= 1"),
        (word_arithmetic, {"max_value": 2}, "max_value >= 5"),
        (fractions, {"max_den": 1}, "max_den >= 2"),
        (fractions, {"operands": 1}, "operands >= 2"),
        (fractions, {"ops": "+%"}, "ops must be made of"),
        (fractions, {"ops": ""}, "ops must be made of"),
        (polynomials, {"degree": 0}, "1 <= degree <= 6"),
        (polynomials, {"terms": 7}, "1 <= terms <= 6"),
        (polynomials, {"max_coef": 0}, "max_coef >= 1"),
        (code_functions, {"difficulty": 4}, "difficulty must be 1, 2 or 3"),
    ],
)
def test_invalid_params_say_what_to_fix(fn, params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        list(fn(size=1, seed=0, **params))
