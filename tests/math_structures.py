"""The answer structures of `math_strategies`: numbers, radicals, pi and e, polynomials, rational expressions,
equations, inequalities, intervals, labelled assignments, tuples, sets of tuples, solution lists, matrices, ratios,
multiple choice, text, and values with units, percent, degrees or dollars. Each perturbation is checked on the
semantic value to change the answer (it returns None where it would not)."""

from __future__ import annotations

import math
from fractions import Fraction as Q
from typing import Any

from hypothesis import strategies as st
from math_strategies import (
    Draw,
    Structure,
    add,
    canon,
    decimal_str,
    desc,
    lin,
    nonzero,
    num,
    number_forms,
    poly_mul,
    poly_str,
    render_number,
    shuffled,
)

# ---- integers -----------------------------------------------------------------------------------------------


def thousands(n: int, mark: str) -> str:
    s = f"{abs(n):,}".replace(",", mark)
    return ("-" if n < 0 else "") + s


def scientific(n: int, op: str) -> str | None:
    """1500 -> '1.5 \\times 10^{3}' (None below 10)."""
    if abs(n) < 10:
        return None
    k = len(str(abs(n))) - 1
    return f"{decimal_str(Q(n, 10**k))} {op} 10^{{{k}}}"


def big(f: Any) -> Any:
    return lambda draw, n: f(draw, n) if abs(n) >= 1000 else None


add(Structure(
    "integer", st.integers(-10**7, 10**7), str,
    forms={
        "plain": lambda d, n: str(n),
        "dot_zero": lambda d, n: f"{n}.0",
        "thousands_comma": lambda d, n: thousands(n, ","),
        "thousands_brace": lambda d, n: thousands(n, "{,}"),
        "thousands_thin": lambda d, n: thousands(n, "\\,"),
        "thousands_comma_negspace": lambda d, n: thousands(n, ",\\!"),
        "text": lambda d, n: f"\\text{{{n}}}",
        "scientific": lambda d, n: scientific(n, "\\times"),
        "scientific_cdot": lambda d, n: scientific(n, "\\cdot"),
    },
    perturbations={
        "changed_number": lambda d, n: str(n + d(nonzero(-3, 3))),
        "sign_flip": lambda d, n: str(-n) if n else None,
        "digit_dropped": lambda d, n: str(n)[:-1] if abs(n) >= 10 else None,
        "digit_added": lambda d, n: f"{n}{d(st.integers(0, 9))}" if n else None,
        "changed_thousands": big(lambda d, n: thousands(n + 1, ",")),
    },
))  # fmt: skip


# ---- fractions and decimals -----------------------------------------------------------------------------------

fractions = st.builds(Q, nonzero(-199, 199), st.integers(2, 40)).filter(lambda q: q.denominator > 1)


def close_decimal(q: Q) -> str:
    """A decimal close to q but not equal: rounded to 3 places, or one more in the last place."""
    s = f"{float(q):.3f}"
    return s if Q(s) != q else decimal_str(q + Q(1, 1000))


def frac_form(name: str) -> Any:
    return lambda d, q: render_number(q, name) if name in number_forms(q) else None


add(Structure(
    "fraction", fractions, canon,
    forms={name: frac_form(name) for name in
           ("frac", "dfrac", "tfrac", "slash", "scaled", "neg_inside", "short", "decimal", "mixed")}
    | {"left_right": lambda d, q: f"\\left({canon(q)}\\right)"},
    perturbations={
        "numerator": lambda d, q: canon(Q(q.numerator + 1, q.denominator)) if q.numerator != -1 else None,
        "denominator": lambda d, q: f"\\frac{{{q.numerator}}}{{{q.denominator + 1}}}",
        "sign_flip": lambda d, q: canon(-q),
        "reciprocal": lambda d, q: canon(1 / q),
        "close_decimal": lambda d, q: close_decimal(q),
    },
))  # fmt: skip

decimals = st.builds(
    lambda m, k: Q(m, 10**k), nonzero(-99999, 99999).filter(lambda m: m % 10), st.integers(1, 3)
)

add(Structure(
    "decimal", decimals, decimal_str,
    forms={
        "plain": lambda d, q: decimal_str(q),
        "leading_dot": lambda d, q: decimal_str(q).replace("0.", ".", 1) if abs(q) < 1 else None,
        "trailing_zeros": lambda d, q: decimal_str(q) + "0" * d(st.integers(1, 2)),
        "fraction": lambda d, q: num(d, q, exclude=("decimal", "mixed")),
        "mixed": lambda d, q: render_number(q, "mixed") if abs(q) > 1 else None,
    },
    perturbations={
        "last_digit": lambda d, q: decimal_str(q + Q(1, 10 ** len(decimal_str(q).split(".")[1]))),
        "sign_flip": lambda d, q: decimal_str(-q),
        "shifted": lambda d, q: decimal_str(q * 10),
        "truncated": lambda d, q: decimal_str(q)[:-1].rstrip("."),
    },
))  # fmt: skip


SPACES = ["\\,", "\\!", "~", "\\ ", "\\;", "\\quad", ""]


def spaced(draw: Draw, s: str) -> str:
    """The same answer with LaTeX spacing commands around its binary operators."""
    for op in (" + ", " - "):
        s = s.replace(op, f"{draw(st.sampled_from(SPACES))}{op.strip()}{draw(st.sampled_from(SPACES))}")
    return s


# ---- radicals, pi and e ----------------------------------------------------------------------------------------

SQUAREFREE = [2, 3, 5, 6, 7, 10, 11, 13, 14, 15, 17, 19, 21]


def surd(a: int, b: int, style: str = "") -> str:
    """a*sqrt(b) with its sign: '3\\sqrt{2}', '-\\sqrt{5}'."""
    coef = {1: "", -1: "-"}.get(a, str(a))
    root = f"\\sqrt {b}" if style == "bare" else f"\\sqrt{{{b}}}"
    if style in ("cdot", "times") and abs(a) != 1:
        return f"{a} \\{style} {root}"
    return f"{coef}{root}"


def plus(c: int, s: str) -> str:
    """c + s for a signed s: '1 + 2\\sqrt{3}', '1 - \\sqrt{3}', '2\\sqrt{3}' for c = 0."""
    if c == 0:
        return s
    return f"{c} - {s[1:]}" if s.startswith("-") else f"{c} + {s}"


radicals = st.tuples(st.integers(-9, 9), nonzero(-9, 9), st.sampled_from(SQUAREFREE))


def rad_gold(v: tuple[int, int, int]) -> str:
    c, a, b = v
    return plus(c, surd(a, b))


def absorbed(c: int, a: int, b: int) -> str:
    root = f"\\sqrt{{{a * a * b}}}"
    return plus(c, root if a > 0 else "-" + root)


def swapped_terms(c: int, a: int, b: int) -> str | None:
    if c == 0:
        return None
    return f"{surd(a, b)} {'+' if c > 0 else '-'} {abs(c)}"


add(Structure(
    "radical", radicals, rad_gold,
    forms={
        "absorbed": lambda d, v: absorbed(*v),
        "cdot": lambda d, v: plus(v[0], surd(v[1], v[2], "cdot")),
        "times": lambda d, v: plus(v[0], surd(v[1], v[2], "times")),
        "bare_radicand": lambda d, v: plus(v[0], surd(v[1], v[2], "bare")) if v[2] < 10 else None,
        "terms_swapped": lambda d, v: swapped_terms(*v),
        "root_first": lambda d, v: plus(v[0], f"{'-' if v[1] < 0 else ''}\\sqrt{{{v[2]}}} \\cdot {abs(v[1])}"),
        "rationalized": lambda d, v: plus(v[0], f"\\frac{{{v[1] * v[2]}}}{{\\sqrt{{{v[2]}}}}}"),
        "over_two": lambda d, v: f"\\frac{{{plus(2 * v[0], surd(2 * v[1], v[2]))}}}{{2}}",
        "spaces": lambda d, v: spaced(d, rad_gold(v)),
    },
    perturbations={
        "radicand": lambda d, v: rad_gold((v[0], v[1], SQUAREFREE[(SQUAREFREE.index(v[2]) + 1) % len(SQUAREFREE)])),
        "coefficient": lambda d, v: rad_gold((v[0], v[1] + 1 if v[1] != -1 else 1, v[2])),
        "constant": lambda d, v: rad_gold((v[0] + 1, v[1], v[2])),
        "sign_flip": lambda d, v: rad_gold((-v[0], -v[1], v[2])),
        "conjugate": lambda d, v: rad_gold((v[0], -v[1], v[2])) if v[0] else None,
        "close_decimal": lambda d, v: f"{v[0] + v[1] * v[2] ** 0.5:.3f}",
    },
))  # fmt: skip

pi_coefs = st.builds(Q, nonzero(-20, 20), st.integers(1, 12))


def pi_gold(q: Q) -> str:
    p, d = q.numerator, q.denominator
    sign, p = ("-" if p < 0 else ""), abs(p)
    head = f"{p}\\pi" if p != 1 else "\\pi"
    return f"{sign}{head}" if d == 1 else f"{sign}\\frac{{{head}}}{{{d}}}"


def pi_times(q: Q, style: str) -> str:
    if q == 1:
        return "\\pi"
    if q == -1:
        return "-\\pi"
    n = canon(q) if style != "slash" else render_number(q, "slash" if q.denominator > 1 else "int")
    return {"after": f"{n}\\pi", "cdot": f"{n} \\cdot \\pi", "before": f"\\pi \\cdot {n}",
            "slash": f"({n})\\pi", "space": f"{n} \\pi"}[style]  # fmt: skip


add(Structure(
    "pi", pi_coefs, pi_gold,
    forms={
        "coef_after": lambda d, q: pi_times(q, "after"),
        "coef_cdot": lambda d, q: pi_times(q, "cdot"),
        "pi_first": lambda d, q: pi_times(q, "before") if q > 0 else None,
        "slash_coef": lambda d, q: pi_times(q, "slash"),
        "space": lambda d, q: pi_times(q, "space"),
        "dfrac": lambda d, q: pi_gold(q).replace("\\frac", "\\dfrac"),
        "over_slash": lambda d, q: (f"{pi_gold(Q(q.numerator))}/{q.denominator}" if q.denominator > 1 else None),
    },
    perturbations={
        "coefficient": lambda d, q: pi_gold(q + 1),
        "sign_flip": lambda d, q: pi_gold(-q),
        "pi_dropped": lambda d, q: canon(q),
        "pi_to_e": lambda d, q: pi_gold(q).replace("\\pi", "e"),
        "close_decimal": lambda d, q: f"{float(q) * 3.14159265:.4f}",
    },
))  # fmt: skip


def e_pow(k: int, style: str = "") -> str:
    if style == "mathrm":
        return f"\\mathrm{{e}}^{{{k}}}"
    if style == "exp":
        return f"\\exp({k})"
    if style == "bare" and 0 <= k < 10:
        return f"e^{k}"
    return f"e^{{{k}}}"


add(Structure(
    "e_power", nonzero(-9, 9).filter(lambda k: k != 1), e_pow,
    forms={
        "bare": lambda d, k: e_pow(k, "bare"),
        "mathrm": lambda d, k: e_pow(k, "mathrm"),
        "exp": lambda d, k: e_pow(k, "exp"),
        "reciprocal": lambda d, k: f"\\frac{{1}}{{{e_pow(-k)}}}",
        "product": lambda d, k: f"e \\cdot {e_pow(k - 1)}" if k != 2 else "e \\cdot e",
    },
    perturbations={
        "exponent": lambda d, k: e_pow(k + 1),
        "sign_flip": lambda d, k: e_pow(-k),
        "e_to_pi": lambda d, k: f"\\pi^{{{k}}}",
        "close_decimal": lambda d, k: f"{2.718281828459045**k:.4f}",
    },
))  # fmt: skip


# ---- polynomials and rational expressions ----------------------------------------------------------------------

VARS = ["x", "t", "y", "n"]


@st.composite
def factored_polys(draw: Draw) -> tuple[int, list[int], str]:
    return (
        draw(nonzero(-3, 3)),
        draw(st.lists(st.integers(-5, 5), min_size=1, max_size=3)),
        draw(st.sampled_from(VARS)),
    )


def expand(c: int, roots: list[int]) -> dict[tuple[int, ...], int]:
    p: dict[tuple[int, ...], int] = {(0,): c}
    for r in roots:
        p = poly_mul(p, {(1,): 1, (0,): -r})
    return p


def poly1_gold(v: tuple[int, list[int], str]) -> str:
    p = expand(v[0], v[1])
    return poly_str(p, (v[2],), desc(p), "")


def poly1(draw: Draw, v: tuple[int, list[int], str], style: str, shuffle: bool) -> str:
    p = expand(v[0], v[1])
    return poly_str(p, (v[2],), shuffled(draw, desc(p)) if shuffle else desc(p), style)


def factored(draw: Draw, v: tuple[int, list[int], str], left_right: bool, cdot: bool) -> str:
    c, roots, x = v
    paren = ("\\left(", "\\right)") if left_right else ("(", ")")
    factors = [x if r == 0 else f"{paren[0]}{lin(x, -r)}{paren[1]}" for r in shuffled(draw, roots)]
    if cdot:
        head = {1: "", -1: "-"}.get(c, f"{c} \\cdot ")
        return head + " \\cdot ".join(factors)
    return {1: "", -1: "-"}.get(c, str(c)) + "".join(factors)


def poly1_changed(v: tuple[int, list[int], str], how: str) -> str | None:
    p = expand(v[0], v[1])
    order = desc(p)
    if how == "constant":
        p = p | {(0,): p.get((0,), 0) + 1}
        p = {e: c for e, c in p.items() if c}
        order = desc(p)
    elif how == "leading":
        p = p | {order[0]: p[order[0]] + (1 if p[order[0]] != -1 else 2)}
    elif how == "drop":
        if len(order) < 2:
            return None
        p.pop(order[-1])
        order = order[:-1]
    elif how == "sign_flip":
        if len(order) < 2:
            return None
        p[order[-1]] = -p[order[-1]]
    return poly_str(p, (v[2],), order, "")


def other_var(x: str) -> str:
    return VARS[(VARS.index(x) + 1) % len(VARS)] if x in VARS else "z"


add(Structure(
    "polynomial", factored_polys(), poly1_gold,
    forms={
        "reordered": lambda d, v: poly1(d, v, "", True),
        "cdot": lambda d, v: poly1(d, v, "cdot", True),
        "star": lambda d, v: poly1(d, v, "star", False),
        "bare_power": lambda d, v: poly1(d, v, "bare_power", True),
        "factored": lambda d, v: factored(d, v, False, False),
        "factored_left_right": lambda d, v: factored(d, v, True, False),
        "factored_cdot": lambda d, v: factored(d, v, False, True),
        "spaces": lambda d, v: spaced(d, poly1(d, v, "", True)),
    },
    perturbations={
        "constant": lambda d, v: poly1_changed(v, "constant"),
        "leading": lambda d, v: poly1_changed(v, "leading"),
        "drop_term": lambda d, v: poly1_changed(v, "drop"),
        "sign_flip": lambda d, v: poly1_changed(v, "sign_flip"),
        "variable": lambda d, v: poly1_gold((v[0], v[1], other_var(v[2]))),
    },
))  # fmt: skip

MONOS2 = [(2, 0), (1, 1), (0, 2), (1, 0), (0, 1), (0, 0)]
polys2 = st.dictionaries(st.sampled_from(MONOS2), nonzero(-9, 9), min_size=2, max_size=4).filter(
    lambda p: any(e[0] for e in p) and any(e[1] for e in p)
)


def poly2_gold(p: dict[tuple[int, ...], int]) -> str:
    return poly_str(p, ("x", "y"), desc(p), "")


def poly2_swapped(p: dict[tuple[int, ...], int]) -> str | None:
    q = {(e[1], e[0]): c for e, c in p.items()}
    return None if q == p else poly2_gold(q)


def poly2_changed(draw: Draw, p: dict[tuple[int, ...], int], how: str) -> str | None:
    e = draw(st.sampled_from(sorted(p)))
    if how == "drop":
        return poly2_gold({k: c for k, c in p.items() if k != e})
    return poly2_gold(p | {e: p[e] + 1 if p[e] != -1 else 1})


add(Structure(
    "polynomial_2var", polys2, poly2_gold,
    forms={
        "reordered": lambda d, p: poly_str(p, ("x", "y"), shuffled(d, desc(p)), ""),
        "factors_reversed": lambda d, p: poly_str(p, ("x", "y"), shuffled(d, desc(p)), "reversed_factors"),
        "cdot": lambda d, p: poly_str(p, ("x", "y"), desc(p), "cdot"),
        "times": lambda d, p: poly_str(p, ("x", "y"), shuffled(d, desc(p)), "times"),
    },
    perturbations={
        "variables_swapped": lambda d, p: poly2_swapped(p),
        "coefficient": lambda d, p: poly2_changed(d, p, "coef"),
        "drop_term": lambda d, p: poly2_changed(d, p, "drop"),
        "variable": lambda d, p: poly2_gold(p).replace("y", "z"),
    },
))  # fmt: skip

rationals = st.tuples(st.integers(-9, 9), st.integers(-9, 9), st.sampled_from(VARS)).filter(
    lambda v: v[0] != v[1]
)


def rat_gold(v: tuple[int, int, str]) -> str:
    a, b, x = v
    return f"\\frac{{{lin(x, a)}}}{{{lin(x, b)}}}"


def rat_proper(a: int, b: int, x: str) -> str:
    k = a - b
    return f"1 {'+' if k > 0 else '-'} \\frac{{{abs(k)}}}{{{lin(x, b)}}}"


def neg_lin(x: str, k: int) -> str:
    """-(x + k) written out: '-x - 3'."""
    return f"-{x}" if k == 0 else f"-{x} {'-' if k > 0 else '+'} {abs(k)}"


def lin_rev(x: str, k: int) -> str:
    return x if k == 0 else f"{k} + {x}"


add(Structure(
    "rational_expression", rationals, rat_gold,
    forms={
        "slash": lambda d, v: f"({lin(v[2], v[0])})/({lin(v[2], v[1])})",
        "dfrac": lambda d, v: rat_gold(v).replace("\\frac", "\\dfrac"),
        "terms_reordered": lambda d, v: f"\\frac{{{lin_rev(v[2], v[0])}}}{{{lin_rev(v[2], v[1])}}}",
        "scaled": lambda d, v: f"\\frac{{2{v[2]} {'+' if v[0] >= 0 else '-'} {abs(2 * v[0])}}}"
                               f"{{2{v[2]} {'+' if v[1] >= 0 else '-'} {abs(2 * v[1])}}}",
        "proper": lambda d, v: rat_proper(*v),
        "negated": lambda d, v: f"\\frac{{{neg_lin(v[2], v[0])}}}{{{neg_lin(v[2], v[1])}}}",
    },
    perturbations={
        "numerator": lambda d, v: rat_gold((v[0] + 1, v[1], v[2])) if v[0] + 1 != v[1] else None,
        "denominator": lambda d, v: rat_gold((v[0], v[1] + 1, v[2])) if v[1] + 1 != v[0] else None,
        "reciprocal": lambda d, v: rat_gold((v[1], v[0], v[2])),
        "variable": lambda d, v: rat_gold((v[0], v[1], other_var(v[2]))),
    },
))  # fmt: skip


rationals2 = st.tuples(nonzero(-9, 9), st.integers(-9, 9))


def rat2_gold(v: tuple[int, int]) -> str:
    a, b = v
    return f"\\frac{{x {'+' if a > 0 else '-'} {abs(a) if abs(a) != 1 else ''}y}}{{{lin('y', b)}}}"


def rat2_split(a: int, b: int) -> str:
    coef = {1: "", -1: "-"}.get(a, str(a))
    return f"\\frac{{x}}{{{lin('y', b)}}} + \\frac{{{coef}y}}{{{lin('y', b)}}}"


add(Structure(
    "rational_expression_2var", rationals2, rat2_gold,
    forms={
        "slash": lambda d, v: "(" + rat2_gold(v)[6:].replace("}{", ")/(")[:-1] + ")",
        "split": lambda d, v: rat2_split(*v),
        "numerator_reordered": lambda d, v: rat2_gold(v).replace("{x + ", "{", 1).replace("{x - ", "{-", 1)
        .replace("y}{", "y + x}{", 1),
        "scaled": lambda d, v: f"\\frac{{2x {'+' if v[0] > 0 else '-'} {abs(2 * v[0])}y}}{{{lin('2y', 2 * v[1])}}}",
    },
    perturbations={
        "variables_swapped": lambda d, v: rat2_gold(v).replace("x", "Y").replace("y", "x").replace("Y", "y"),
        "coefficient": lambda d, v: rat2_gold((v[0] + 1, v[1])) if v[0] != -1 else None,
        "denominator": lambda d, v: rat2_gold((v[0], v[1] + 1)),
    },
))  # fmt: skip


# ---- ratios, multiple choice, text --------------------------------------------------------------------------------

ratios = st.tuples(st.integers(1, 30), st.integers(1, 30)).filter(lambda v: math.gcd(*v) == 1)

add(Structure(
    "ratio", ratios, lambda v: f"{v[0]}:{v[1]}",
    forms={
        "spaced": lambda d, v: f"{v[0]} : {v[1]}",
        "colon_command": lambda d, v: f"{v[0]} \\colon {v[1]}",
        "scaled": lambda d, v: f"{2 * v[0]}:{2 * v[1]}",
        "labelled": lambda d, v: f"V_1 : V_2 = {v[0]} : {v[1]}",
    },
    perturbations={
        "swapped": lambda d, v: f"{v[1]}:{v[0]}" if v[0] != v[1] else None,
        "changed": lambda d, v: f"{v[0]}:{v[1] + 1}",
    },
))  # fmt: skip

LETTERS = "ABCDE"
CHOICE_GOLD = ["\\text{({L})}", "{L}", "({L})", "\\textbf{({L})}"]
choices = st.tuples(st.sampled_from(LETTERS), st.sampled_from(CHOICE_GOLD))


def choice_form(pattern: str) -> Any:
    return lambda d, v: pattern.replace("{L}", v[0])


add(Structure(
    "multiple_choice", choices, lambda v: v[1].replace("{L}", v[0]),
    forms={f"mc{k}": choice_form(p) for k, p in enumerate(
        ["{L}", "({L})", "\\text{({L})}", "\\textbf{({L})}", "\\mathrm{({L})}", "\\text{{L}}", "\\textbf{{L}}",
         "\\boxed{{L}}"])},
    perturbations={
        "other_letter": lambda d, v: d(st.sampled_from([c for c in LETTERS if c != v[0]])),
        "other_letter_text": lambda d, v: f"\\text{{({LETTERS[(LETTERS.index(v[0]) + 1) % 5]})}}",
    },
))  # fmt: skip

add(Structure(
    "multiple_choice_sentence", choices, lambda v: v[1].replace("{L}", v[0]),
    forms={
        "correct_option": choice_form("The correct option is ({L})."),
        "answer_is": choice_form("So the answer is ({L})."),
        "final_answer_option": choice_form("Final Answer: The final answer is $\\text{({L})}$."),
        "boxed_letter": choice_form("Comparing the options, the answer is $\\boxed{{L}}$."),
    },
    perturbations={
        "other_letter": lambda d, v: f"The correct option is ({LETTERS[(LETTERS.index(v[0]) + 1) % 5]}).",
    },
    wrap=False,
))  # fmt: skip

WORDS = ["Monday", "Friday", "odd", "even", "neither", "both", "yes", "no", "increasing", "decreasing",
         "infinite", "finite", "no solution", "Alice", "Bob"]  # fmt: skip
words = st.sampled_from(WORDS)

add(Structure(
    "text", words, lambda w: f"\\text{{{w}}}",
    forms={
        "plain": lambda d, w: w,
        "capitalized": lambda d, w: w.capitalize(),
        "upper": lambda d, w: w.upper(),
        "textbf": lambda d, w: f"\\textbf{{{w}}}",
        "mathrm": lambda d, w: f"\\mathrm{{{w}}}" if " " not in w else None,
        "period": lambda d, w: f"{w}.",
    },
    perturbations={
        "other_word": lambda d, w: WORDS[(WORDS.index(w) + 1) % len(WORDS)],
    },
))  # fmt: skip


# ---- units, percent, degrees, dollars --------------------------------------------------------------------------------

UNITS = ["cm", "m", "km", "miles", "students", "hours", "cm^2", "inches"]
with_units = st.tuples(st.integers(0, 5000), st.sampled_from(UNITS))


def with_unit(n: int, u: str, pattern: str) -> str:
    base, sq = (u[:-2], "^2") if u.endswith("^2") else (u, "")
    return pattern.replace("{n}", str(n)).replace("{u}", base).replace("{sq}", sq)


UNIT_FORMS = {"bare": "{n}", "plain": "{n} {u}{sq}", "thin_text": "{n}\\,\\text{{u}}{sq}",
              "space_text": "{n}\\ \\text{{u}}{sq}", "mathrm": "{n}\\mathrm{~{u}}{sq}",
              "textnormal": "{n}\\textnormal{ {u}}{sq}", "text_nospace": "{n} \\text{{u}}{sq}"}  # fmt: skip


def unit_form(pattern: str) -> Any:
    # a lone letter after a number reads as a product ('1 m' is 1 times m): plain units only where longer
    return lambda d, v: (
        None if pattern == UNIT_FORMS["plain"] and len(v[1].rstrip("^2")) == 1 else with_unit(*v, pattern)
    )


add(Structure(
    "units", with_units, lambda v: with_unit(*v, "{n}\\text{ {u}}{sq}"),
    forms={name: unit_form(p) for name, p in UNIT_FORMS.items()},
    perturbations={
        "number": lambda d, v: with_unit(v[0] + d(nonzero(-2, 2)), v[1], "{n}\\text{ {u}}{sq}"),
        "number_bare": lambda d, v: str(v[0] + 1),
    },
))  # fmt: skip

percents = st.builds(Q, st.integers(1, 999), st.sampled_from([1, 2, 4, 10]))

add(Structure(
    "percent", percents, lambda q: f"{decimal_str(q)}\\%",
    forms={
        "bare": lambda d, q: decimal_str(q),
        "ascii": lambda d, q: f"{decimal_str(q)}%",
        "spaced": lambda d, q: f"{decimal_str(q)} \\%",
        "fraction_of_one": lambda d, q: decimal_str(q / 100),
        "word": lambda d, q: f"{decimal_str(q)} percent",
    },
    perturbations={
        "number": lambda d, q: f"{decimal_str(q + 1)}\\%",
        "tenfold": lambda d, q: decimal_str(q * 10),
        "tenth": lambda d, q: decimal_str(q / 10),
    },
))  # fmt: skip

degrees = st.integers(-360, 360)

add(Structure(
    "degrees", degrees, lambda n: f"{n}^\\circ",
    forms={
        "bare": lambda d, n: str(n),
        "braced": lambda d, n: f"{n}^{{\\circ}}",
        "unicode": lambda d, n: f"{n}°",
        "degree_command": lambda d, n: f"{n}\\degree",
        "word": lambda d, n: f"{n} \\text{{ degrees}}",
    },
    perturbations={
        "number": lambda d, n: f"{n + 1}^\\circ",
        "sign_flip": lambda d, n: f"{-n}^\\circ" if n else None,
        "supplement": lambda d, n: f"{180 - n}^\\circ" if n != 90 else None,
    },
))  # fmt: skip

dollars = st.builds(Q, st.integers(1, 100000), st.sampled_from([1, 4, 100]))

add(Structure(
    "dollars", dollars, lambda q: f"\\${decimal_str(q)}",
    forms={
        "bare": lambda d, q: decimal_str(q),
        "cents": lambda d, q: f"\\${float(q):.2f}",
        "word": lambda d, q: f"{decimal_str(q)} dollars",
        "spaced": lambda d, q: f"\\$ {decimal_str(q)}",
        "text": lambda d, q: f"\\text{{\\${decimal_str(q)}}}",
    },
    perturbations={
        "number": lambda d, q: f"\\${decimal_str(q + 1)}",
        "cents_changed": lambda d, q: f"\\${float(q + Q(1, 100)):.2f}",
    },
))  # fmt: skip
