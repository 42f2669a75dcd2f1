"""Procedural generators for task suites: ``fn(size=..., seed=..., **params) -> iterable of rows``.

Each row's id is its problem text, so a problem drawn twice is one item (the suite keeps the first) and
the hash split can never put the same problem in both train and held-out.

A user generator is any importable function with that signature, named ``module:function`` in a suite.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

__all__ = ["GENERATORS", "arithmetic", "linear_equations"]


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


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
        value = _eval(parts)
        yield {"id": expr, "question": f"What is {expr}?", "expression": expr, "answer": str(value)}


def _eval(parts: list[str]) -> int:
    """`a op b op c ...` with * before + and -, without eval."""
    terms: list[int] = [int(parts[0])]
    signs: list[str] = []
    for op, x in zip(parts[1::2], parts[2::2], strict=True):
        if op == "*":
            terms[-1] *= int(x)
        else:
            signs.append(op)
            terms.append(int(x))
    total = terms[0]
    for sign, t in zip(signs, terms[1:], strict=True):
        total = total + t if sign == "+" else total - t
    return total


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
        answer = str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
        yield {"id": f"{lhs} = {c}", "equation": f"{lhs} = {c}", "answer": answer}


GENERATORS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {
    "arithmetic": arithmetic,
    "linear_equations": linear_equations,
}
