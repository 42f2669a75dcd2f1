"""Procedural generators for task suites: ``fn(size=..., seed=..., **params) -> iterable of rows``.

Each row's id is its problem text, so a problem drawn twice is one item (the suite keeps the first) and
the hash split can never put the same problem in both train and held-out. Rows carry the `answer` and a
short worked `solution` ending in ``\\boxed{answer}`` (or, for coding tasks, the reference code).

A user generator is any importable function with that signature, named ``module:function`` in a suite.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

from .code_tasks import code_functions

__all__ = [
    "GENERATORS",
    "arithmetic",
    "linear_equations",
    "word_arithmetic",
    "fractions",
    "polynomials",
    "code_functions",
]


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def _fraction_text(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def arithmetic(
    *, size: int, seed: int, digits: int = 2, operands: int = 2, ops: str = "+-*"
) -> Iterator[dict[str, Any]]:
    """Integer expressions such as ``37 + 12 * 5``: `digits` per number and `operands` numbers set the
    difficulty; `ops` picks the operators (``+``, ``-``, ``*``). Answers are exact integers."""
    if digits < 1 or operands < 2:
        raise ValueError(f"arithmetic needs digits >= 1 and operands >= 2, got {digits=} {operands=}")
    if not ops or set(ops) - set("+-*"):
        raise ValueError(f"ops must be made of '+', '-', '*', got {ops!r}")
    rng = random.Random(seed)
    for _ in range(size):
        nums = [_number(rng, digits) for _ in range(operands)]
        parts = [str(nums[0])]
        for x in nums[1:]:
            parts += [rng.choice(ops), str(x)]
        expr = " ".join(parts)
        value, steps = _eval(parts)
        yield {
            "id": expr,
            "question": f"What is {expr}?",
            "expression": expr,
            "answer": str(value),
            "solution": _worked(steps, str(value)),
        }


def _worked(steps: list[str], answer: str) -> str:
    return "\n".join([*steps, f"The answer is \\boxed{{{answer}}}."])


def _eval(parts: list[str]) -> tuple[int, list[str]]:
    """`a op b op c ...` with * before + and -, without eval; returns the value and the worked steps."""
    terms: list[int] = [int(parts[0])]
    signs: list[str] = []
    steps: list[str] = []
    for op, x in zip(parts[1::2], parts[2::2], strict=True):
        if op == "*":
            steps.append(f"{terms[-1]} * {x} = {terms[-1] * int(x)}")
            terms[-1] *= int(x)
        else:
            signs.append(op)
            terms.append(int(x))
    if steps and signs:
        steps = ["Multiply first:", *steps, "Then add and subtract from left to right:"]
    total = terms[0]
    for sign, t in zip(signs, terms[1:], strict=True):
        new = total + t if sign == "+" else total - t
        steps.append(f"{total} {sign} {t} = {new}")
        total = new
    return total, steps


def linear_equations(
    *, size: int, seed: int, max_coef: int = 12, fractions: bool = True
) -> Iterator[dict[str, Any]]:
    """``a x + b = c`` with integer a (non-zero), b, c; the answer is an integer or, with `fractions`, a
    reduced fraction such as ``-7/3``."""
    if max_coef < 2:
        raise ValueError(f"max_coef must be >= 2, got {max_coef}")
    rng = random.Random(seed)
    for _ in range(size):
        a = rng.choice([k for k in range(-max_coef, max_coef + 1) if k not in (0,)])
        b = rng.randint(-5 * max_coef, 5 * max_coef)
        if fractions:
            c = rng.randint(-5 * max_coef, 5 * max_coef)
        else:
            c = a * rng.randint(-max_coef, max_coef) + b
        x = Fraction(c - b, a)
        lhs = f"{a}x" if a not in (1, -1) else ("x" if a == 1 else "-x")
        lhs += f" + {b}" if b > 0 else (f" - {-b}" if b < 0 else "")
        answer = _fraction_text(x)
        steps = []
        if b:
            verb = f"Subtract {b} from" if b > 0 else f"Add {-b} to"
            steps.append(f"{verb} both sides: {lhs.split(' ')[0]} = {c - b}.")
        if a != 1:
            steps.append(f"Divide both sides by {a}: x = {c - b}/{a if a > 0 else f'({a})'} = {answer}.")
        yield {
            "id": f"{lhs} = {c}",
            "equation": f"{lhs} = {c}",
            "answer": answer,
            "solution": _worked(steps, answer),
        }


# -- word problems

_PEOPLE = [("Ana", "she", "her"), ("Ben", "he", "him"), ("Carla", "she", "her"), ("David", "he", "him"),
           ("Emma", "she", "her"), ("Farid", "he", "him"), ("Grace", "she", "her"), ("Hiro", "he", "him"),
           ("Ines", "she", "her"), ("Jamal", "he", "him"), ("Kofi", "he", "him"), ("Lena", "she", "her"),
           ("Mateo", "he", "him"), ("Nadia", "she", "her"), ("Omar", "he", "him"), ("Priya", "she", "her"),
           ("Quinn", "he", "him"), ("Rosa", "she", "her"), ("Sam", "he", "him"), ("Tara", "she", "her")]  # fmt: skip
_OBJECTS = ["apples", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "cards", "books",
            "coins", "beads", "balloons", "oranges", "crayons", "buttons", "toy cars"]  # fmt: skip
_CONNECTORS = ["", "Then ", "After that, ", "Later, ", "Next, "]


def _word_step(
    rng: random.Random, s: int, max_value: int, who: tuple[str, str, str], obj: str, friend: str
) -> tuple[str, str, int] | None:
    """One operation on the count `s`: (sentence with the subject pronoun first, worked step, new count),
    or None when the drawn operation does not fit (a negative, fractional or too large count)."""
    _, p, o = who
    k = rng.randint(1, max_value)
    kind = rng.choice(["add", "add", "sub", "sub", "groups_add", "groups_sub", "times", "share"])
    if kind == "add":
        text = rng.choice(
            [f"{p} buys {k} more.", f"{p} finds {k} more.", f"{p} gets {k} more from {friend}."]
        )
        return text, f"{s} + {k} = {s + k}", s + k
    if kind == "sub" and k <= s:
        text = rng.choice([f"{p} gives {k} to {friend}.", f"{p} loses {k}.", f"{p} sells {k} of them."])
        return text, f"{s} - {k} = {s - k}", s - k
    groups, each = rng.randint(2, 6), rng.randint(2, max(2, min(12, max_value // 2)))
    if kind == "groups_add":
        text = f"{p} buys {groups} bags with {each} {obj} in each bag."
        return text, f"{s} + {groups} * {each} = {s + groups * each}", s + groups * each
    if kind == "groups_sub" and groups * each <= s:
        text = f"{p} gives {each} {obj} to each of {groups} friends."
        return text, f"{s} - {groups} * {each} = {s - groups * each}", s - groups * each
    if kind == "times" and s <= 5 * max_value:
        factor, word = rng.choice([(2, "doubles"), (3, "triples")])
        text = f"{friend} {word} the number of {obj} {p} has by giving {o} more."
        return text, f"{s} * {factor} = {s * factor}", s * factor
    if kind == "share" and s >= 2 * groups and s % groups == 0:
        text = f"{p} splits the {obj} into {groups} equal piles and keeps only one pile."
        return text, f"{s} / {groups} = {s // groups}", s // groups
    return None


def word_arithmetic(*, size: int, seed: int, steps: int = 2, max_value: int = 50) -> Iterator[dict[str, Any]]:
    """Multi-step word problems (buy, give away, bags of n, double, share equally) about one person's
    count of things: `steps` operations and `max_value` (the largest starting count and amount) set the
    difficulty. Every intermediate count is a non-negative integer."""
    if steps < 1 or max_value < 5:
        raise ValueError(f"word_arithmetic needs steps >= 1 and max_value >= 5, got {steps=} {max_value=}")
    rng = random.Random(seed)
    for _ in range(size):
        who = rng.choice(_PEOPLE)
        friend = rng.choice([p[0] for p in _PEOPLE if p != who])
        obj = rng.choice(_OBJECTS)
        s = rng.randint(2, max_value)
        sentences, work = [f"{who[0]} has {s} {obj}."], [f"{who[0]} starts with {s} {obj}."]
        while len(work) <= steps:
            step = _word_step(rng, s, max_value, who, obj, friend)
            if step is None:
                continue  # redraw: that operation does not fit the current count
            text, line, s = step
            connector = rng.choice(_CONNECTORS) if len(sentences) > 1 else ""
            sentences.append(connector + (text if connector else text[0].upper() + text[1:]))
            work.append(f"{text[0].upper() + text[1:-1]}: {line}.")
        question = " ".join([*sentences, f"How many {obj} does {who[0]} have now?"])
        yield {"id": question, "question": question, "answer": str(s), "solution": _worked(work, str(s))}


# -- fractions

_SYMBOL = {"+": "+", "-": "-", "*": "×", "/": "÷"}


def fractions(
    *, size: int, seed: int, max_den: int = 12, operands: int = 2, ops: str = "+-*/"
) -> Iterator[dict[str, Any]]:
    """``Compute 3/4 + 5/6 × 7/2.``: `operands` reduced fractions with denominators 2..`max_den` (× and ÷
    bind tighter than + and -). The answer is a reduced fraction ``a/b`` or an integer."""
    if max_den < 2 or operands < 2:
        raise ValueError(f"fractions needs max_den >= 2 and operands >= 2, got {max_den=} {operands=}")
    if not ops or set(ops) - set("+-*/"):
        raise ValueError(f"ops must be made of '+', '-', '*', '/', got {ops!r}")
    rng = random.Random(seed)
    pool = [
        Fraction(n, d) for d in range(2, max_den + 1) for n in range(1, max_den + 1) if math.gcd(n, d) == 1
    ]
    for _ in range(size):
        nums = [rng.choice(pool) for _ in range(operands)]
        signs = [rng.choice(ops) for _ in range(operands - 1)]
        expr = _fraction_text(nums[0])
        for sign, x in zip(signs, nums[1:], strict=True):
            expr += f" {_SYMBOL[sign]} {_fraction_text(x)}"
        value, work = _eval_fractions(nums, signs)
        question = f"Compute {expr}. Give the answer as a reduced fraction."
        answer = _fraction_text(value)
        row = {"id": question, "question": question, "expression": expr, "answer": answer}
        yield row | {"solution": _worked(work, answer)}


def _eval_fractions(nums: list[Fraction], signs: list[str]) -> tuple[Fraction, list[str]]:
    """The value of ``n0 s0 n1 s1 ...`` (× ÷ first, then + - left to right) and the worked steps."""
    terms, add_signs, work = [nums[0]], [], []
    for sign, x in zip(signs, nums[1:], strict=True):
        if sign in "*/":
            new = terms[-1] * x if sign == "*" else terms[-1] / x
            a, b = _fraction_text(terms[-1]), _fraction_text(x)
            how = f"{a} × {b}" if sign == "*" else f"{a} ÷ {b} = {a} × {_fraction_text(1 / x)}"
            work.append(f"{how} = {_fraction_text(new)}")
            terms[-1] = new
        else:
            add_signs.append(sign)
            terms.append(x)
    total = terms[0]
    for sign, t in zip(add_signs, terms[1:], strict=True):
        new = total + t if sign == "+" else total - t
        lcd = math.lcm(total.denominator, t.denominator)
        left, right = int(total * lcd), int(t * lcd)
        line = f"{_fraction_text(total)} {sign} {_fraction_text(t)} = {left}/{lcd} {sign} {right}/{lcd}"
        line += f" = {left + right if sign == '+' else left - right}/{lcd}"
        work.append(line + (f" = {_fraction_text(new)}" if new.denominator != lcd else ""))
        total = new
    return total, work


# -- polynomials: coefficient lists, index = power of x

Poly = list[int]


def _trim(p: Poly) -> Poly:
    p = list(p)
    while len(p) > 1 and p[-1] == 0:
        p.pop()
    return p


def _padd(p: Poly, q: Poly, sign: int = 1) -> Poly:
    n = max(len(p), len(q))
    return _trim([(p[i] if i < len(p) else 0) + sign * (q[i] if i < len(q) else 0) for i in range(n)])


def _pmul(p: Poly, q: Poly) -> Poly:
    out = [0] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return _trim(out)


def poly_text(p: Poly) -> str:
    """``[-3, 5, 1]`` -> ``x^2 + 5x - 3`` (the form the `math` grader and sympy with implicit
    multiplication and ``^`` as power both read)."""
    out = ""
    for power in range(len(p) - 1, -1, -1):
        c = p[power]
        if c == 0:
            continue
        mag = "" if abs(c) == 1 and power > 0 else str(abs(c))
        var = "" if power == 0 else ("x" if power == 1 else f"x^{power}")
        if not out:
            out = ("-" if c < 0 else "") + mag + var
        else:
            out += (" - " if c < 0 else " + ") + mag + var
    return out or "0"


def _nonzero(rng: random.Random, m: int) -> int:
    return rng.choice([k for k in range(-m, m + 1) if k])


def _factor(rng: random.Random, degree: int, max_coef: int, terms: int = 2) -> Poly:
    """A polynomial of exactly `degree` with a leading term and up to `terms - 1` lower ones."""
    p = [0] * (degree + 1)
    p[degree] = rng.choice([1, 1, _nonzero(rng, max_coef)])
    for power in rng.sample(range(degree), min(terms - 1, degree)):
        p[power] = _nonzero(rng, max_coef)
    return p


def _piece(rng: random.Random, degree: int, max_coef: int) -> tuple[str, Poly, bool]:
    """A product, a multiple, a power or a monomial of `degree`: (text, expanded value, needs expanding)."""
    kinds = ["scale", "mono"] + (["prod", "prod", "power"] if degree >= 2 else [])
    kind = rng.choice(kinds)
    if kind == "prod":
        d1 = rng.randint(1, degree - 1)
        f, g = _factor(rng, d1, max_coef), _factor(rng, degree - d1, max_coef)
        return f"({poly_text(f)})({poly_text(g)})", _pmul(f, g), True
    if kind == "power" and degree <= 3:
        f = _factor(rng, 1, max_coef)
        value = [1]
        for _ in range(degree):
            value = _pmul(value, f)
        return f"({poly_text(f)})^{degree}", value, True
    if kind == "mono":
        c = rng.randint(1, max_coef)  # positive: the sign comes from the + or - joining the parts
        p = [0] * degree + [c]
        return poly_text(p), p, False
    f = _factor(rng, degree, max_coef, terms=3)
    c = rng.randint(2, max(2, max_coef))
    return f"{c}({poly_text(f)})", [c * a for a in f], True


def polynomials(
    *, size: int, seed: int, degree: int = 2, terms: int = 3, max_coef: int = 9
) -> Iterator[dict[str, Any]]:
    """``Expand and simplify: (x + 3)(2x - 1) - x^2``: `terms` parts (products, multiples, powers,
    monomials) of degree up to `degree` (the first has exactly `degree`), integer coefficients up to
    `max_coef`. The answer is the expanded polynomial in descending powers, e.g. ``x^2 + 5x - 3``."""
    if not 1 <= degree <= 6 or not 1 <= terms <= 6 or max_coef < 1:
        raise ValueError(
            f"polynomials needs 1 <= degree <= 6, 1 <= terms <= 6 and max_coef >= 1, got {degree=} {terms=} {max_coef=}"
        )
    rng = random.Random(seed)
    n = 0
    while n < size:
        text, value, expand = _piece(rng, degree, max_coef)
        while not expand:  # the first part must need expanding
            text, value, expand = _piece(rng, degree, max_coef)
        work = [f"{text} = {poly_text(value)}"]
        for _ in range(terms - 1):
            part, p, expand = _piece(rng, rng.randint(1, degree), max_coef)
            sign = rng.choice([1, -1])
            text += (" + " if sign > 0 else " - ") + part
            value = _padd(value, p, sign)
            if expand:
                work.append(f"{part} = {poly_text(p)}")
        if len(value) < 2:
            continue  # everything cancelled down to a constant: draw again
        answer = poly_text(value)
        question = f"Expand and simplify: {text}"
        steps = ["Expand each part:", *work, "Combine like terms."]
        n += 1
        row = {"id": question, "question": question, "expression": text, "answer": answer}
        yield row | {"solution": _worked(steps, answer)}


GENERATORS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {
    "arithmetic": arithmetic,
    "linear_equations": linear_equations,
    "word_arithmetic": word_arithmetic,
    "fractions": fractions,
    "polynomials": polynomials,
    "code_functions": code_functions,
}
