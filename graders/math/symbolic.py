"""The sympy side: equality of what the exact fast path (`algebra`) cannot settle: symbols, e, logarithms,
trigonometry, imaginary numbers, nested radicals.

Imported lazily (sympy takes about half a second to import). Every sympy call here is bounded: numbers
too large to build raise `TooBig` before sympy sees them, `expand`/`cancel` run only on small expressions
with small exponents, and numeric checks use ``evalf`` at a fixed precision. Equal is concluded from an
exact rewrite to 0 or from a difference that evaluates to 0 at 30 digits (at several points when symbols
are free); not equal only from a difference that is certainly non-zero at some point.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from fractions import Fraction
from typing import Any, ParamSpec, TypeVar

import sympy as sp
from sympy.polys.polyerrors import BasePolynomialError

from .algebra import MAX_BITS, MAX_FACTORIAL, TooBig

__all__ = ["SymbolicError", "to_sympy", "equal", "expressions_equal", "equations_equal", "close", "same_set"]

Node = tuple[Any, ...]
P = ParamSpec("P")
R = TypeVar("R")
_CONSTS = {"pi": sp.pi, "E": sp.E, "I": sp.I, "oo": sp.oo}
_FUNCS = {
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "sec": sp.sec, "csc": sp.csc, "cot": sp.cot,
    "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan, "sinh": sp.sinh, "cosh": sp.cosh,
    "tanh": sp.tanh, "exp": sp.exp, "floor": sp.floor, "ceiling": sp.ceiling,
}  # fmt: skip
_POINTS = [Fraction(7, 5), Fraction(-3, 7), Fraction(11, 13), Fraction(5, 3), Fraction(-13, 11),
           Fraction(2, 9), Fraction(17, 6)]  # fmt: skip
_MAX_OPS = 200  # expand/cancel only below this many operations
_MAX_EXPAND_POWER = 24
_DIGITS = 30
_symbols: dict[str, sp.Symbol] = {}
# What sympy raises on inputs it cannot handle (a function of a matrix, an odd power of zoo, ...).
_SYMPY_ERRORS = (
    TypeError,
    ValueError,
    ZeroDivisionError,
    OverflowError,
    NotImplementedError,
    BasePolynomialError,
)


class SymbolicError(ValueError):
    """sympy could not compare the two expressions; the answers count as unequal."""


def _guarded(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TooBig:
            raise
        except _SYMPY_ERRORS as e:
            raise SymbolicError(f"{type(e).__name__}: {e}") from e

    return wrapper


def _symbol(name: str) -> sp.Symbol:
    s = _symbols.get(name)
    if s is None:
        s = _symbols[name] = sp.Symbol(name)
    return s


def _bits(x: sp.Expr) -> int:
    if x.is_Rational:
        return max(int(x.p).bit_length(), int(x.q).bit_length(), 1)
    return 64


def _pow(base: sp.Expr, exp: sp.Expr) -> sp.Expr:
    if exp.is_Rational and (base.is_Number or base.is_NumberSymbol):
        if abs(exp.p) * _bits(base) > MAX_BITS or exp.q > 64:
            raise TooBig("power too large")
        if exp.q != 1 and _bits(base) > 128:  # sympy would try to factor the base: keep it a power
            return sp.Pow(base, exp, evaluate=False)
    elif exp.is_Number and not exp.is_Rational and base.is_Number and abs(exp) * _bits(base) > MAX_BITS:
        raise TooBig("power too large")
    return sp.Pow(base, exp)


def _check_int_arg(x: sp.Expr) -> None:
    if x.is_Integer and abs(int(x)) > MAX_FACTORIAL:
        raise TooBig("factorial too large")


def to_sympy(node: Node) -> sp.Expr:
    """A scalar AST node as a sympy expression. Raises TooBig, or ValueError for non-scalars."""
    tag = node[0]
    if tag == "num":
        q = node[1]
        return sp.Rational(q.numerator, q.denominator)
    if tag == "sym":
        return _symbol(node[1])
    if tag == "const":
        return _CONSTS[node[1]]
    if tag == "add":
        return sp.Add(*(to_sympy(t) for t in node[1]))
    if tag == "neg":
        return -to_sympy(node[1])
    if tag == "mul":
        return sp.Mul(*(to_sympy(f) for f in node[1]))
    if tag == "div":
        return to_sympy(node[1]) / to_sympy(node[2])
    if tag == "pow":
        return _pow(to_sympy(node[1]), to_sympy(node[2]))
    if tag == "root":
        return _pow(to_sympy(node[1]), 1 / to_sympy(node[2]))
    if tag == "fn":
        return _FUNCS[node[1]](to_sympy(node[2]))
    if tag == "log":
        x = to_sympy(node[2])
        return sp.log(x) if node[1] is None else sp.log(x, to_sympy(node[1]))
    if tag == "fact":
        x = to_sympy(node[1])
        _check_int_arg(x)
        return sp.factorial(x)
    if tag == "binom":
        n, k = to_sympy(node[1]), to_sympy(node[2])
        _check_int_arg(n)
        return sp.binomial(n, k)
    if tag == "abs":
        return sp.Abs(to_sympy(node[1]))
    if tag == "mod":
        return sp.Mod(to_sympy(node[1]), to_sympy(node[2]))
    raise ValueError(f"not a scalar: {tag}")


def _small(e: sp.Expr) -> bool:
    if sp.count_ops(e) > _MAX_OPS:
        return False
    return all(not (p.exp.is_Integer and abs(int(p.exp)) > _MAX_EXPAND_POWER) for p in e.atoms(sp.Pow))


def _is_zero_number(v: Any) -> bool | None:
    """True: zero to the working precision; False: certainly not zero; None: not a finite number."""
    if v == 0:
        return True
    if not getattr(v, "is_number", False) or v.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        return None
    re_, im_ = v.as_real_imag()
    for part in (re_, im_):
        if part == 0:
            continue
        if not isinstance(part, sp.Float):
            return None
        if part._prec > 1:  # it has significant digits: certainly not zero
            return False
    return True


def _evalf(e: sp.Expr, subs: dict[sp.Symbol, sp.Rational] | None = None) -> Any:
    try:
        return e.evalf(_DIGITS, subs=subs, maxn=4 * _DIGITS)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError, RecursionError):
        return None


_UNEVALUATED = (sp.Sum, sp.Product, sp.Integral, sp.Limit, sp.Derivative)


# Step functions (floor, ceiling, mod) are constant between integers, so the small probe points above
# cannot tell floor(m/2) from floor(m/3): their differences are probed at every integer from -6 to 30
# (where floor(n/a) and floor(n/b), a < b <= 30, first differ: n = a) and at a few fractions too.
_STEP_POINTS = _POINTS + [Fraction(n) for n in range(-6, 31) if n] + [Fraction(43, 3), Fraction(-29, 4)]
_STEPS = (sp.floor, sp.ceiling, sp.Mod, sp.frac)


def _probe(d: sp.Expr, syms: set[sp.Symbol]) -> tuple[bool, str]:
    if d.has(*_UNEVALUATED):  # a sum to a symbolic bound at a fractional point: slow and meaningless
        return False, "numeric_probe"
    ordered = sorted(syms, key=lambda s: s.name)
    steps = d.has(*_STEPS)
    points, trials = (_STEP_POINTS, len(_STEP_POINTS)) if steps else (_POINTS, 4)
    zeros = 0
    for trial in range(trials):
        subs = {s: sp.Rational(*_ratio(points[(i * 3 + trial) % len(points)])) for i, s in enumerate(ordered)}
        exact = d.xreplace(subs) if steps else None  # floor of a rational is exact (evalf of it is slow)
        z = (exact == 0) if exact is not None and exact.is_Rational else _is_zero_number(_evalf(d, subs))
        if z is False:
            return False, "numeric_probe"
        zeros += z is True
    return zeros >= 2, "numeric_probe"


def _ratio(q: Fraction) -> tuple[int, int]:
    return q.numerator, q.denominator


@_guarded
def equal(gold: Node, pred: Node, scale: Fraction = Fraction(1)) -> tuple[bool, str]:
    """Is ``pred * scale`` equal to `gold`? Returns (equal, rule)."""
    a = to_sympy(gold)
    b = to_sympy(pred)
    if scale != 1:
        b = b * sp.Rational(scale.numerator, scale.denominator)
    return expressions_equal(a, b)


@_guarded
def expressions_equal(a: sp.Expr, b: sp.Expr) -> tuple[bool, str]:
    """Are two sympy expressions equal: exactly, after expand/cancel when small, else numerically (at
    several points when symbols are free)? Returns (equal, rule)."""
    if a == b:
        return True, "symbolic"
    if a.has(sp.oo, -sp.oo, sp.zoo, sp.nan) or b.has(sp.oo, -sp.oo, sp.zoo, sp.nan):
        return False, "symbolic"
    d = a - b
    if d == 0:
        return True, "symbolic"
    syms = d.free_symbols
    if _small(d):
        if sp.expand(d) == 0:
            return True, "expand"
        if syms and d.is_rational_function(*syms) and sp.cancel(sp.together(d)) == 0:
            return True, "cancel"
    if not syms:
        z = _is_zero_number(_evalf(d))
        return z is True, "numeric"
    return _probe(d, syms)


@_guarded
def equations_equal(gold: tuple[Node, Node], pred: tuple[Node, Node]) -> bool:
    """Are ``l1 = r1`` and ``l2 = r2`` the same equation (one side minus the other proportional)?"""
    d1 = to_sympy(gold[0]) - to_sympy(gold[1])
    d2 = to_sympy(pred[0]) - to_sympy(pred[1])
    if d1 == d2 or d1 == -d2:
        return True
    if d1 == 0 or d2 == 0:
        return False
    q = d1 / d2
    syms = q.free_symbols
    if _small(q):
        c = sp.cancel(sp.together(q))
        if not c.free_symbols:
            z = _is_zero_number(_evalf(c))
            return z is False
    if not syms:
        return False
    values = []
    ordered = sorted(syms, key=lambda s: s.name)
    points, trials = (_STEP_POINTS, len(_STEP_POINTS)) if q.has(*_STEPS) else (_POINTS, 3)
    for trial in range(trials):
        subs = {s: sp.Rational(*_ratio(points[(i * 3 + trial) % len(points)])) for i, s in enumerate(ordered)}
        v = _evalf(q, subs)
        if v is None or not getattr(v, "is_number", False) or v.has(sp.nan, sp.zoo):
            return False
        values.append(v)
    return all(_is_zero_number(_evalf(v - values[0])) is True for v in values[1:]) and not _is_zero_number(
        values[0]
    )


@_guarded
def close(gold: Node, pred: Node, rel_tol: float, scale: Fraction = Fraction(1)) -> bool:
    """``|pred*scale - gold| <= rel_tol * |gold|`` numerically (both must be constants)."""
    a = _evalf(to_sympy(gold))
    b = _evalf(to_sympy(pred) * sp.Rational(scale.numerator, scale.denominator))
    if a is None or b is None or not a.is_number or not b.is_number:
        return False
    try:
        diff = abs(complex(a) - complex(b))
        return diff <= rel_tol * abs(complex(a))
    except (TypeError, ValueError, OverflowError):
        return False


_SET_RELS = {"<": sp.Lt, "<=": sp.Le, "=": sp.Eq, "!=": sp.Ne}
_MAX_SET_DEGREE = 4


def _real_set(node: Node, var: sp.Symbol | None) -> tuple[sp.Set, sp.Symbol | None] | None:
    """The set of reals a node describes, and its variable: an interval ``[1, 2)``, a union, a set of
    numbers, a one-variable relation (``x > 3``, ``-x > -1``, ``1 \\le x^2 < 4``) or a set-builder.
    None when it describes no such set (or one too costly to solve)."""
    tag = node[0]
    if tag == "group" and len(node[3]) == 2 and node[1] in "([" and node[2] in ")]":
        a, b = to_sympy(node[3][0]), to_sympy(node[3][1])
        if not (a.is_real or a in (-sp.oo, sp.oo)) or not (b.is_real or b in (-sp.oo, sp.oo)):
            return None
        return sp.Interval(a, b, node[1] == "(", node[2] == ")"), None
    if tag == "union":
        parts = [_real_set(x, var) for x in node[1]]
        if any(p is None for p in parts):
            return None
        return sp.Union(*(p[0] for p in parts if p is not None)), None
    if tag == "list" and all(x[0] == "rel" for x in node[1]):  # x < -2, x > 3: "or" between them
        parts = [_real_set(x, var) for x in node[1]]
        if any(p is None for p in parts) or len({p[1] for p in parts if p is not None}) != 1:
            return None
        return sp.Union(*(p[0] for p in parts if p is not None)), parts[0][1] if parts[0] else None
    if tag == "set" and node[1]:
        values = [to_sympy(x) for x in node[1]]
        return (sp.FiniteSet(*values), None) if all(v.is_number for v in values) else None
    if tag == "builder":
        v = to_sympy(node[1])
        sets = [_real_set(c, v) for c in node[2]]
        if not isinstance(v, sp.Symbol) or any(x is None or x[1] != v for x in sets):
            return None
        return sp.Intersection(*(x[0] for x in sets if x is not None)), v
    if tag == "rel" and node[1] == ("in",) and node[2][0][0] == "sym":  # z \in [1, 2] \cup [3, 4]
        v = to_sympy(node[2][0])
        inner = _real_set(node[2][1], None)
        return None if inner is None or (var is not None and v != var) else (inner[0], v)
    if tag == "rel" and all(op in _SET_RELS for op in node[1]):
        sides = [to_sympy(x) for x in node[2]]
        syms = set().union(*(x.free_symbols for x in sides))
        if len(syms) != 1 or (var is not None and syms != {var}):
            return None
        (x,) = syms
        result: sp.Set = sp.S.Reals
        for op, a, b in zip(node[1], sides, sides[1:], strict=False):
            d = a - b
            line = _linear_set(op, d, x)
            if line is not None:  # a x + b < 0: solved here, without solveset
                result = sp.Intersection(result, line)
                continue
            if sp.count_ops(d) > _MAX_OPS // 4:
                return None
            poly = d if not d.has(sp.Abs) else d.replace(sp.Abs, lambda u: u)
            if not poly.is_polynomial(x) or not _solvable(poly, x):
                return None
            result = sp.Intersection(result, sp.solveset(_SET_RELS[op](a, b), x, sp.S.Reals))
        return result, x
    return None


def _linear_set(op: str, d: sp.Expr, x: sp.Symbol) -> sp.Set | None:
    """The reals where ``d op 0`` for d = a x + b with numbers a != 0, b; None for anything else."""
    if op not in ("<", "<=") or d.has(sp.Abs) or not d.is_polynomial(x):
        return None
    coeffs = sp.Poly(d, x).all_coeffs()
    if len(coeffs) != 2 or not all(c.is_real and c.is_number for c in coeffs) or coeffs[0] == 0:
        return None
    a, b = coeffs
    root = -b / a
    closed = op == "<="
    if a > 0:  # x < root
        return sp.Interval(-sp.oo, root, True, not closed)
    return sp.Interval(root, sp.oo, not closed, True)


def _solvable(poly: sp.Expr, x: sp.Symbol) -> bool:
    """Cheap for solveset: degree <= 2, or factors of degree <= 2 over the rationals (a quartic with
    irrational roots took 11 s)."""
    degree = sp.degree(poly, x)
    if degree <= 2:
        return True
    if degree > _MAX_SET_DEGREE or poly.free_symbols - {x}:
        return False
    return all(sp.degree(f, x) <= 2 for f, _ in sp.factor_list(poly, x)[1])


@_guarded
def same_set(gold: Node, pred: Node) -> bool | None:
    """Do two nodes describe the same set of reals (``x < 1`` and ``-x > -1``, ``\\{x \\mid x \\ge 0\\}``
    and ``[0, \\infty)``)? None when either is not such a set; relations must share their variable."""
    a, b = _real_set(gold, None), _real_set(pred, None)
    if a is None or b is None:
        return None
    if a[1] is not None and b[1] is not None and a[1] != b[1]:
        return False
    if a[0] == b[0]:
        return True
    diff = sp.Complement(a[0], b[0]) + sp.Complement(b[0], a[0])
    return diff.is_empty is True or diff == sp.S.EmptySet
