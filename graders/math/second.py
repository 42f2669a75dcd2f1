"""The second parser: latex2sympy2_extended (the parser Math-Verify uses) for notation rft's own parser
does not read (``\\operatorname{lcm}``, ``\\gcd``, ``\\min``, sums, integrals, limits, ``\\mathbb{R}``, ...).

It is tried only after `latex.parse_latex` fails on an answer, and only under the same bounded-work rules
as the rest of the grader: short answers only, no nested powers, no huge literals or factorials (sympy
would evaluate them), symbols kept case-sensitive. What it returns is a sympy object, held in the node
``("sympy", obj)`` and compared by `equal` below: expressions by their difference (exactly, else
numerically at several points), sets as sets, relations by their solution sets or as equations, tuples
and matrices entry by entry.
"""

from __future__ import annotations

import re
from typing import Any

import sympy as sp

__all__ = ["MAX_CHARS", "parse_second", "equal", "to_sympy_any"]

MAX_CHARS = 300
Node = tuple[Any, ...]
_NESTED_POWER = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\d+\s*\^")
_BIG_NUMBER = re.compile(r"\d{40}")
_BIG_FACTORIAL = re.compile(r"\d{4,}\s*!")
_BIG_POWER = re.compile(r"\^\s*\{?\s*\d{4,}")


def _safe(text: str) -> str | None:
    """Why `text` is not given to latex2sympy (it evaluates what it parses), or None when it may be."""
    if len(text) > MAX_CHARS:
        return f"longer than {MAX_CHARS} characters"
    for pattern, why in (
        (_NESTED_POWER, "nested powers"),
        (_BIG_NUMBER, "a number of 40 digits or more"),
        (_BIG_FACTORIAL, "a factorial of a number of 4 digits or more"),
        (_BIG_POWER, "an exponent of 4 digits or more"),
    ):
        if pattern.search(text):
            return why
    return None


def parse_second(text: str) -> tuple[Node | None, str | None]:
    """``(("sympy", obj), None)`` when latex2sympy2_extended reads `text`, else ``(None, why not)``."""
    why = _safe(text)
    if why is not None:
        return None, f"second parser skipped: {why}"
    try:
        from latex2sympy2_extended import latex2sympy
        from latex2sympy2_extended.latex2sympy2 import ConversionConfig
    except ImportError:  # an optional speed-up of coverage: without it, the string comparison decides
        return None, "second parser not installed (pip install latex2sympy2_extended)"
    config = ConversionConfig(lowercase_symbols=False)
    try:
        obj = latex2sympy(text, conversion_config=config)
    except Exception as e:  # noqa: BLE001  (antlr and sympy raise many types; any of them means "not read")
        return None, f"second parser: {type(e).__name__}"
    if obj is None or isinstance(obj, str):
        return None, "second parser: nothing read"
    if isinstance(obj, sp.MatrixBase):
        obj = sp.ImmutableMatrix(obj)
    try:
        hash(obj)
    except TypeError:
        return None, f"second parser: {type(obj).__name__} cannot be compared"
    if isinstance(obj, sp.Basic) and obj.has(sp.UnevaluatedExpr):  # \gcd(12, 18) comes back held
        obj = obj.replace(lambda e: isinstance(e, sp.UnevaluatedExpr), lambda e: e.args[0])
    return ("sympy", obj), None


def to_sympy_any(node: Node) -> Any:
    """Any parsed node as a sympy object: scalars, tuples (Tuple), intervals, sets, unions, matrices,
    relations and lists (Tuple, unordered lists compared as FiniteSets by the caller)."""
    from .symbolic import to_sympy

    tag = node[0]
    if tag == "sympy":
        return node[1]
    if tag == "group":
        items = [to_sympy_any(x) for x in node[3]]
        if len(items) == 2 and node[1:3] != ("(", ")"):  # [1, 2), [1, 2]: intervals; (1, 2) stays a tuple
            return sp.Interval(items[0], items[1], node[1] == "(", node[2] == ")")
        return sp.Tuple(*items)
    if tag in ("set", "list"):
        return sp.FiniteSet(*(to_sympy_any(x) for x in node[1]))
    if tag == "union":
        return sp.Union(*(to_sympy_any(x) for x in node[1]))
    if tag == "matrix":
        return sp.Matrix([[to_sympy_any(x) for x in row] for row in node[1]])
    if tag == "rel":
        ops = {"=": sp.Eq, "<": sp.Lt, "<=": sp.Le, "!=": sp.Ne}
        sides = [to_sympy_any(x) for x in node[2]]
        parts = [ops[op](a, b) for op, a, b in zip(node[1], sides, sides[1:], strict=False) if op in ops]
        if len(parts) != len(node[1]):
            raise ValueError("relation sympy cannot hold")
        return parts[0] if len(parts) == 1 else sp.And(*parts)
    return to_sympy(node)


def _stated(eq: Any) -> bool:
    """Does ``lhs = rhs`` state the value rhs: a label on the left, or a computation (no free symbols)?"""
    return bool(eq.lhs.is_Symbol or (not eq.lhs.free_symbols and not eq.rhs.free_symbols))


def equal(a: Any, b: Any) -> bool:
    """Are two sympy objects the same answer?"""
    if a == b:
        return True
    if isinstance(a, sp.Tuple) and isinstance(b, sp.Tuple):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, sp.MatrixBase) and isinstance(b, sp.MatrixBase):
        return a.shape == b.shape and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, sp.FiniteSet) and isinstance(b, sp.FiniteSet):
        if len(a) != len(b):
            return False
        left = list(b)
        for x in a:
            k = next((j for j, y in enumerate(left) if equal(x, y)), None)
            if k is None:
                return False
            del left[k]
        return True
    if isinstance(a, sp.Set) and isinstance(b, sp.Set):
        diff = sp.Union(sp.Complement(a, b), sp.Complement(b, a))
        return diff.is_empty is True
    if isinstance(a, sp.Eq) and isinstance(b, sp.Eq):
        return bool(
            (equal(a.lhs, b.lhs) and equal(a.rhs, b.rhs)) or (equal(a.lhs, b.rhs) and equal(a.rhs, b.lhs))
        )
    if isinstance(a, sp.Eq) and _stated(a) and not isinstance(b, sp.Eq):
        return equal(a.rhs, b)  # x = 5, \lim_{x \to 0} \frac{\sin x}{x} = 1 against the value
    if isinstance(b, sp.Eq) and _stated(b) and not isinstance(a, sp.Eq):
        return equal(a, b.rhs)
    if isinstance(a, sp.Expr) and isinstance(b, sp.Expr):
        from .symbolic import expressions_equal

        return expressions_equal(a, b)[0]
    return False
