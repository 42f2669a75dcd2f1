"""Hypothesis strategies for math answers (issue 21, item 3): random answers of the structures competition answers
take, each a semantic value (ints, Fractions, coefficient tables) with a canonical gold rendering, many equivalent
LaTeX and plain renderings (`forms`), wrong answers derived from it (`perturbations`), and the ways a model wraps
its final answer (`WRAPPERS`). Every form and perturbation has a name, so a failure says which branch broke and
a test can leave out the branches known to fail today.

A renderer gets ``draw`` (hypothesis' interactive draw) for its free choices: term order, spacing, number forms.
A perturbation returns ``None`` where it does not apply to a value (swapping equal coordinates changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction as Q
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

Draw = Callable[[st.SearchStrategy[Any]], Any]
Render = Callable[[Draw, Any], "str | None"]
Perturb = Callable[[Draw, Any], "str | None"]


@dataclass(frozen=True)
class Structure:
    """One answer structure: values, the gold rendering, equivalent forms and wrong answers, all by name."""

    name: str
    values: st.SearchStrategy[Any]
    gold: Callable[[Any], str]
    forms: dict[str, Render]
    perturbations: dict[str, Perturb]
    wrap: bool = True  # False: the forms are whole sentences already

    def __repr__(self) -> str:  # shown in pytest ids and hypothesis output
        return f"Structure({self.name})"


@dataclass(frozen=True)
class Case:
    """A gold answer and a model output, with the branch names that built them."""

    structure: str
    branch: str  # form or perturbation name
    wrapper: str
    gold: str
    output: str


STRUCTURES: dict[str, Structure] = {}  # filled by math_structures and math_compound


def add(s: Structure) -> None:
    STRUCTURES[s.name] = s


def nonzero(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi).filter(bool)


# ---- numbers ------------------------------------------------------------------------------------------------


def terminating(q: Q) -> bool:
    d = q.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def decimal_str(q: Q) -> str:
    """The exact decimal of a terminating fraction: 7/4 -> '1.75'."""
    k = 0
    while (q * 10**k).denominator != 1:
        k += 1
    n = abs((q * 10**k).numerator)
    digits = str(n).rjust(k + 1, "0")
    body = f"{digits[:-k]}.{digits[-k:]}" if k else digits
    return ("-" if q < 0 else "") + body


def number_forms(q: Q) -> list[str]:
    """The names of the equivalent renderings `render_number` knows for this value."""
    if q.denominator == 1:
        return ["int", "dot_zero", "scaled"]
    forms = ["frac", "dfrac", "tfrac", "slash", "scaled"]
    if q < 0:
        forms.append("neg_inside")
    if abs(q.numerator) < 10 and q.denominator < 10:
        forms.append("short")
    if terminating(q):
        forms.append("decimal")
    if abs(q) > 1:
        forms.append("mixed")
    return forms


def render_number(q: Q, form: str) -> str:
    sign = "-" if q < 0 else ""
    p, d = abs(q.numerator), q.denominator
    if form == "int":
        return str(q.numerator)
    if form == "dot_zero":
        return f"{q.numerator}.0"
    if form in ("frac", "dfrac", "tfrac"):
        return f"{sign}\\{form}{{{p}}}{{{d}}}"
    if form == "slash":
        return f"{sign}{p}/{d}"
    if form == "scaled":
        return f"{sign}\\frac{{{2 * p}}}{{{2 * d}}}"
    if form == "neg_inside":
        return f"\\frac{{-{p}}}{{{d}}}"
    if form == "short":
        return f"{sign}\\frac{p}{d}"
    if form == "decimal":
        return decimal_str(q)
    if form == "mixed":
        return f"{sign}{p // d}\\frac{{{p % d}}}{{{d}}}"
    raise ValueError(f"unknown number form {form!r}")


def canon(q: Q) -> str:
    return render_number(q, "int" if q.denominator == 1 else "frac")


def num(draw: Draw, q: Q, exclude: tuple[str, ...] = ("mixed",)) -> str:
    """A random equivalent rendering of a number (mixed numbers left out inside larger answers)."""
    return render_number(q, draw(st.sampled_from([f for f in number_forms(q) if f not in exclude])))


def small_q(lo: int = -30, hi: int = 30, max_den: int = 9) -> st.SearchStrategy[Q]:
    return st.builds(Q, st.integers(lo, hi), st.integers(1, max_den))


SEPARATORS = [", ", ",", ",\\,", ", \\ ", ",~", " , ", ",\\quad "]


def sep(draw: Draw) -> str:
    return draw(st.sampled_from(SEPARATORS))


def shuffled(draw: Draw, items: list[Any]) -> list[Any]:
    return draw(st.permutations(items))


def differs(draw: Draw, items: list[Any]) -> list[Any] | None:
    """The items in an order that differs from the given one, or None where all orders are the same."""
    if len(set(map(str, items))) < 2:
        return None
    order = draw(st.permutations(items))
    return order if list(order) != list(items) else list(reversed(items))


# ---- polynomials as {exponent tuple: coefficient} --------------------------------------------------------------


def poly_mul(a: dict[tuple[int, ...], int], b: dict[tuple[int, ...], int]) -> dict[tuple[int, ...], int]:
    out: dict[tuple[int, ...], int] = {}
    for ea, ca in a.items():
        for eb, cb in b.items():
            e = tuple(x + y for x, y in zip(ea, eb, strict=True))
            out[e] = out.get(e, 0) + ca * cb
    return {e: c for e, c in out.items() if c}


def monomial(exps: tuple[int, ...], names: tuple[str, ...], style: str) -> str:
    parts = []
    for e, v in zip(exps, names, strict=True):
        if e == 1:
            parts.append(v)
        elif e > 1:
            parts.append(f"{v}^{{{e}}}" if style != "bare_power" else f"{v}^{e}")
    if style == "reversed_factors":
        parts.reverse()
    joiner = {"cdot": " \\cdot ", "times": " \\times ", "star": "*"}.get(style, "")
    return joiner.join(parts)


def term(c: int, exps: tuple[int, ...], names: tuple[str, ...], style: str) -> str:
    """A signed term: '+ 3x^{2}', '- y', '+ 7' (the caller strips a leading '+ ')."""
    sign = "-" if c < 0 else "+"
    mono = monomial(exps, names, style)
    if not mono:
        return f"{sign} {abs(c)}"
    if abs(c) == 1:
        return f"{sign} {mono}"
    joiner = {"cdot": " \\cdot ", "times": " \\times ", "star": "*"}.get(style, "")
    return f"{sign} {abs(c)}{joiner}{mono}"


def poly_str(
    poly: dict[tuple[int, ...], int], names: tuple[str, ...], order: list[tuple[int, ...]], style: str
) -> str:
    if not poly:
        return "0"
    s = " ".join(term(poly[e], e, names, style) for e in order)
    return s[2:] if s.startswith("+ ") else "-" + s[2:]


def desc(poly: dict[tuple[int, ...], int]) -> list[tuple[int, ...]]:
    return sorted(poly, key=lambda e: (-sum(e), [-x for x in e]))


def lin(v: str, k: int) -> str:
    """'x + 3', 'x - 3', 'x'."""
    return v if k == 0 else f"{v} {'+' if k > 0 else '-'} {abs(k)}"


# ---- wrappers -----------------------------------------------------------------------------------------------

WRAPPERS: dict[str, str] = {
    "bare": "{A}",
    "dollars": "${A}$",
    "boxed": "So the answer is $\\boxed{{A}}$.",
    "boxed_after_work": "We get $2 + 3 = 5$ and $7 \\cdot 8 = 56$ on the way.\nTherefore $\\boxed{{A}}$ is the answer.",
    "boxed_display": "Hence\n\\[\n\\boxed{{A}}\n\\]",
    "final_answer": "The final answer is ${A}$.",
    "minerva": "Final Answer: The final answer is ${A}$. I hope it is correct.",
    "answer_tag": "<think>first 12, then 13</think><answer>{A}</answer>",
    "bold_answer": "**Answer:** ${A}$",
    "bold_answer_plain": "**Answer:** {A}",
    "answer_colon": "Answer: ${A}$",
    "final_answer_sentence": "Final Answer: The value we want is ${A}$.",
    "french": "Réponse : ${A}$",
    "chinese": "答案：${A}$",
}


def wrap(wrapper: str, answer: str) -> str:
    return WRAPPERS[wrapper].replace("{A}", answer)


@st.composite
def equivalent(draw: Draw, s: Structure, forms: list[str], wrappers: list[str]) -> Case:
    """A gold answer and an equivalent rendering of it, wrapped as a model writes it."""
    value = draw(s.values)
    form = draw(st.sampled_from(forms))
    answer = s.forms[form](draw, value)
    assume(answer is not None)
    assert answer is not None
    wrapper = draw(st.sampled_from(wrappers)) if s.wrap else "bare"
    return Case(s.name, form, wrapper, s.gold(value), wrap(wrapper, answer))


@st.composite
def perturbed(draw: Draw, s: Structure, names: list[str], wrappers: list[str]) -> Case:
    """A gold answer and a wrong one derived from it (a perturbation that applies to the value)."""
    value = draw(s.values)
    name = draw(st.sampled_from(names))
    wrong = s.perturbations[name](draw, value)
    assume(wrong is not None)
    assert wrong is not None
    wrapper = draw(st.sampled_from(wrappers)) if s.wrap else "bare"
    return Case(s.name, name, wrapper, s.gold(value), wrap(wrapper, wrong))


# ---- hedges: a right value offered beside a wrong one ------------------------------------------------------------

HEDGES: dict[str, str] = {
    "or": "The final answer is ${A}$ or ${B}$.",
    "or_reversed": "The final answer is ${B}$ or ${A}$.",
    "or_in_math": "The final answer is ${A} \\text{ or } {B}$.",
    "either": "The answer is either ${A}$ or ${B}$.",
    "two_boxed": "So $\\boxed{{A}}$ or $\\boxed{{B}}$.",
    "boxed_or": "So the answer is $\\boxed{{A} \\text{ or } {B}}$.",
    "minerva_or": "Final Answer: The final answer is ${A}$ or ${B}$. I hope it is correct.",
    "answer_tag_or": "<answer>{A} or {B}</answer>",
    "list": "The final answer is ${A}, {B}$.",
    "set": "The final answer is $\\{{A}, {B}\\}$.",
    "plus_minus": "The final answer is $\\pm {A}$.",
    "two_boxed_comma": "So $\\boxed{{A}}$, $\\boxed{{B}}$.",
    "and": "The final answer is ${A}$ and ${B}$.",
    "parenthetical": "The final answer is ${A}$ (or possibly ${B}$).",
    "answer_tag_two": "<answer>{A}</answer> <answer>{B}</answer>",
}


@st.composite
def hedged(draw: Draw, s: Structure, hedges: list[str]) -> Case:
    """The gold answer offered beside a wrong one (a perturbation of it), or as ``\\pm`` gold."""
    value = draw(s.values)
    hedge = draw(st.sampled_from(hedges))
    right = s.gold(value)
    name = draw(st.sampled_from(sorted(s.perturbations)))
    wrong = s.perturbations[name](draw, value)
    assume(wrong is not None)
    assert wrong is not None
    if hedge == "plus_minus":
        assume(right[:1].isdigit() and right not in ("0", "0.0"))
    text = HEDGES[hedge].replace("{A}", right).replace("{B}", wrong)
    return Case(s.name, f"{hedge}/{name}", "sentence", right, text)
