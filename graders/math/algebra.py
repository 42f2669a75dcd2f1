"""Exact values without sympy: sums of ``c * sqrt(r) * pi^k`` (rational c, square-free integer r, integer k).

That canonical form covers integers, decimals, fractions, scientific notation, radicals and multiples of
pi: two such values are equal exactly when their forms are equal (square roots of distinct square-free
integers are linearly independent over Q, and pi is transcendental), so equality is decided exactly and
fast. `value(node)` returns None for anything else (symbols, e, logarithms, ...), which goes to sympy, and
raises `TooBig` rather than compute a number too large to compare (``9^{9^{9}}``, ``100000!``).
"""

from __future__ import annotations

from fractions import Fraction
from math import comb, factorial, gcd, isqrt
from typing import Any

__all__ = ["Alg", "TooBig", "value", "to_float", "is_rational", "MAX_BITS"]

Alg = dict[tuple[int, int], Fraction]  # (square-free radicand, power of pi) -> coefficient, no zeros
Node = tuple[Any, ...]

MAX_BITS = 200_000  # the largest integer (in bits) built while evaluating
MAX_TERMS = 64
MAX_RADICAND = 10**12
MAX_FACTORIAL = 5000


class TooBig(ArithmeticError):
    """A value too large to compute exactly within the grader's budget."""


def _check(q: Fraction) -> Fraction:
    if q.numerator.bit_length() > MAX_BITS or q.denominator.bit_length() > MAX_BITS:
        raise TooBig("number too large")
    return q


def _squarefree(n: int) -> tuple[int, int] | None:
    """n = s*s*r with r square-free, as (s, r); None when n is too large to factor quickly."""
    if n > MAX_RADICAND:
        r = isqrt(n)
        return (r, 1) if r * r == n else None
    s, r, m, p = 1, 1, n, 2
    while p * p <= m and p <= 10_000:
        if m % p == 0:
            e = 0
            while m % p == 0:
                m //= p
                e += 1
            s *= p ** (e // 2)
            if e % 2:
                r *= p
        p += 1 if p == 2 else 2
    if m > 1:  # 1, a prime, or (stopped at 10^4 with m <= 10^12) p*q or p*p of primes > 10^4
        t = isqrt(m)
        if t * t == m and p > 10_000:
            s *= t
        else:
            r *= m
    return s, r


def _add(a: Alg, b: Alg, sign: int = 1) -> Alg:
    out = dict(a)
    for k, c in b.items():
        v = out.get(k, 0) + sign * c
        if v:
            out[k] = v
        else:
            out.pop(k, None)
    return out


def _mul(a: Alg, b: Alg) -> Alg:
    if len(a) * len(b) > MAX_TERMS * MAX_TERMS:
        raise TooBig("too many terms")
    out: Alg = {}
    for (r1, k1), c1 in a.items():
        for (r2, k2), c2 in b.items():
            g = gcd(r1, r2)
            key = ((r1 // g) * (r2 // g), k1 + k2)
            v = out.get(key, 0) + _check(c1 * c2 * g)
            if v:
                out[key] = v
            else:
                out.pop(key, None)
    if len(out) > MAX_TERMS:
        raise TooBig("too many terms")
    return out


def _rational(q: Fraction) -> Alg:
    return {(1, 0): q} if q else {}


def is_rational(a: Alg) -> bool:
    return not a or (len(a) == 1 and (1, 0) in a)


def _as_rational(a: Alg) -> Fraction | None:
    return a.get((1, 0), Fraction(0)) if is_rational(a) else None


def _sqrt_rational(q: Fraction) -> Alg | None:
    if q < 0:
        return None  # imaginary: sympy's
    sf = _squarefree(q.numerator * q.denominator)
    if sf is None:
        return None
    s, r = sf
    return {(r, 0): Fraction(s, q.denominator)} if q else {}


def _inverse(a: Alg) -> Alg | None:
    if not a:
        return None  # division by zero
    if len(a) == 1:
        ((r, k), c) = next(iter(a.items()))
        return {(r, -k): 1 / (c * r)}  # 1/(c sqrt(r) pi^k) = sqrt(r) / (c r pi^k)
    if len(a) == 2 and all(k == 0 for _, k in a):  # 1/(x + y sqrt r) = (x - y sqrt r)/(x^2 - y^2 r)
        keys = sorted(a)
        if keys[0][0] == 1:
            x, (r, _), y = a[keys[0]], keys[1], a[keys[1]]
            den = x * x - y * y * r
            if den:
                return {(1, 0): x / den, (r, 0): -y / den}
    return None


def _root(q: Fraction, n: int) -> Fraction | None:
    """The exact n-th root of a rational, or None."""
    if q < 0:
        if n % 2 == 0:
            return None
        r = _root(-q, n)
        return -r if r is not None else None
    out = []
    for part in (q.numerator, q.denominator):
        if part.bit_length() > MAX_BITS:
            raise TooBig("number too large")
        x = round(part ** (1.0 / n)) if part.bit_length() < 50 else _int_root(part, n)
        found = next((y for y in (x - 1, x, x + 1) if y >= 0 and y**n == part), None)
        if found is None:
            return None
        out.append(found)
    return Fraction(out[0], out[1])


def _int_root(m: int, n: int) -> int:
    lo, hi = 0, 1 << (m.bit_length() // n + 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mid**n <= m:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _pow(base: Alg, e: Fraction) -> Alg | None:
    if e.denominator == 1:
        n = int(e)
        if not base:
            return {} if n > 0 else ({(1, 0): Fraction(1)} if n == 0 else None)
        if len(base) == 1:
            ((r, k), c) = next(iter(base.items()))
            bits = max(c.numerator.bit_length(), c.denominator.bit_length(), r.bit_length(), 1)
            if abs(n) * bits > MAX_BITS:
                raise TooBig("power too large")
            if n < 0:
                inv = _inverse(base)
                return _pow(inv, Fraction(-n)) if inv is not None else None
            return {(r if n % 2 else 1, k * n): c**n * Fraction(r) ** (n // 2)}
        if abs(n) > 32:
            raise TooBig("power of a sum too large")
        result: Alg = {(1, 0): Fraction(1)}
        for _ in range(abs(n)):
            result = _mul(result, base)
        return result if n >= 0 else _inverse(result)
    q = _as_rational(base)
    if q is None:
        return None
    if e.denominator == 2 and q > 0:  # q^(m/2) = sqrt(q)^m
        root = _sqrt_rational(q)
        return _pow(root, Fraction(e.numerator)) if root is not None else None
    if e.denominator <= 64:
        root_q = _root(q, e.denominator)
        if root_q is not None:
            return _pow(_rational(root_q), Fraction(e.numerator))
    return None


def value(node: Node) -> Alg | None:
    """The exact value of a numeric AST node, or None where it is not of the supported form."""
    tag = node[0]
    if tag == "num":
        return _rational(node[1])
    if tag == "add":
        out: Alg = {}
        for t in node[1]:
            v = value(t)
            if v is None:
                return None
            out = _add(out, v)
        return out
    if tag == "neg":
        v = value(node[1])
        return None if v is None else {k: -c for k, c in v.items()}
    if tag == "mul":
        out = {(1, 0): Fraction(1)}
        for f in node[1]:
            v = value(f)
            if v is None:
                return None
            out = _mul(out, v)
        return out
    if tag == "div":
        a, b = value(node[1]), value(node[2])
        if a is None or b is None:
            return None
        inv = _inverse(b)
        return None if inv is None else _mul(a, inv)
    if tag == "const":
        return {(1, 1): Fraction(1)} if node[1] == "pi" else None
    if tag == "pow":
        base, e = value(node[1]), value(node[2])
        if base is None or e is None:
            return None
        q = _as_rational(e)
        return None if q is None else _pow(base, q)
    if tag == "root":
        x, n = value(node[1]), value(node[2])
        if x is None or n is None:
            return None
        qn = _as_rational(n)
        if qn is None or qn.denominator != 1 or qn <= 0:
            return None
        return _pow(x, 1 / qn)
    if tag in ("fact", "binom", "abs", "mod"):
        return _integer_fn(node)
    return None


def _integer_fn(node: Node) -> Alg | None:
    qs: list[Fraction] = []
    for x in node[1:]:
        a = value(x)
        q = None if a is None else _as_rational(a)
        if q is None:
            return None
        qs.append(q)
    if node[0] == "abs":
        return _rational(abs(qs[0]))
    if node[0] == "mod":  # integers only, a positive modulus
        if qs[0].denominator != 1 or qs[1].denominator != 1 or qs[1] <= 0:
            return None
        return _rational(qs[0] % qs[1])
    if any(q.denominator != 1 or q < 0 for q in qs):
        return None
    ints = [int(q) for q in qs]
    if max(ints) > MAX_FACTORIAL:
        raise TooBig("factorial too large")
    if node[0] == "fact":
        return _rational(Fraction(factorial(ints[0])))
    return _rational(Fraction(comb(ints[0], ints[1])))


def to_float(a: Alg) -> float:
    """An approximation (for tolerance checks only); may be inf for huge values."""
    import math

    total = 0.0
    for (r, k), c in a.items():
        try:
            total += float(c) * math.sqrt(r) * math.pi**k
        except OverflowError:
            return math.inf if c > 0 else -math.inf
    return total
