"""The form an answer must have, on top of its value: ``check_form(pred, form) -> None | why not``.

Procedural "compute this" tasks need it: by value alone, ``\\boxed{37 + 12 * 5}`` equals 97, ``10/12``
equals 5/6 and ``(x+3)(2x-1) - x^2`` equals ``x^2 + 5x - 3``, so a policy can echo the question. Forms:

- ``any``: no check.
- ``number``: one numeric literal: an integer, a decimal, or a fraction ``a/b`` or ``\\frac{a}{b}`` of
  integer literals (either sign); no operators otherwise, no mixed numbers, no scientific notation.
  A lone variable may state it: ``x = -7/3``.
- ``reduced``: ``number``, and a fraction is in lowest terms with a positive denominator and is not an
  integer in disguise (``6/3``).
- ``expanded``: a sum of monomials ``c x^2 y`` (one numeric coefficient, positive integer powers of
  distinct variables), no parentheses, no two terms alike, no zero terms; a number alone also passes.

The check reads the cleaned answer text (``number``, ``reduced``: one regex, no parser) or the parsed
AST (``expanded``); never sympy.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from fractions import Fraction
from typing import Any, Literal

from .parse import Answer

__all__ = ["Form", "FORMS", "check_form"]

Form = Literal["any", "number", "reduced", "expanded"]
FORMS: tuple[str, ...] = ("any", "number", "reduced", "expanded")

_NUMBER = re.compile(
    r"(?P<sign>[-+]?)\s*(?:"
    r"(?P<dec>\d+\.\d*|\.\d+)"
    r"|(?P<int>\d+)"
    r"|(?P<num>-?\d+)\s*/\s*(?P<den>-?\d+)"
    r"|\\frac\s*(?:\{\s*(?P<fnum>-?\d+)\s*\}|(?P<fnum1>\d))\s*(?:\{\s*(?P<fden>-?\d+)\s*\}|(?P<fden1>\d))"
    r")"
)
_LONE_SYMBOL = re.compile(r"[A-Za-z]\s*=\s*")
_MIXED = re.compile(r"-?\d+\s*\\frac.*|-?\d+ \d+\s*/\s*\d+")
_OPERATOR = re.compile(r"\\(?:cdot|times|div|ast|pm|mp)(?![A-Za-z])|<=|>=|[-+*/^:!=<>]")
_SYMBOL = re.compile(r"\\[A-Za-z]+|[A-Za-z]")


def check_form(pred: Answer, form: str, *, gold: Answer | None = None) -> str | None:
    """None when `pred` has the required `form`, else why not (a short phrase for details and feedback).
    A percent or degree sign that was stripped from `pred` fails ``number``/``reduced`` unless the
    `gold` carries it too (``9700\\%`` is not how to write 97)."""
    if form == "any":
        return None
    if form in ("number", "reduced"):
        why = _number_form(pred.text, reduced=form == "reduced")
        if why is None and pred.percent and not (gold is not None and gold.percent):
            why = "not a single number: has a percent sign"
        if why is None and pred.degrees and not (gold is not None and gold.degrees):
            why = "not a single number: has a degree sign"
        return why
    if form == "expanded":
        return _expanded_form(pred)
    raise ValueError(f"form must be one of {FORMS}, got {form!r}")


def _number_form(s: str, *, reduced: bool) -> str | None:
    """Why the cleaned answer `s` is not one numeric literal (in lowest terms when `reduced`), or None."""
    lone = _LONE_SYMBOL.match(s)
    if lone is not None:  # x = -7/3 states the value as the parser and verify read it
        s = s[lone.end() :]
    m = _NUMBER.fullmatch(s)
    if m is None:
        return "not a single number: " + _not_number(s)
    num = m.group("num") or m.group("fnum") or m.group("fnum1")
    den = m.group("den") or m.group("fden") or m.group("fden1")
    if num is None or den is None:
        return None  # an integer or a decimal
    if (m.group("sign") == "-") + num.startswith("-") + den.startswith("-") > 1:
        return "not a single number: two minus signs"
    n, d = int(num), int(den)
    if d == 0:
        return "not a single number: the denominator is 0"
    if not reduced:
        return None
    if d < 0:
        return "not reduced: the denominator is negative"
    q = Fraction(n, d)
    if q.denominator == 1:
        return f"not reduced: {n}/{d} is the integer {q.numerator}"
    if math.gcd(n, d) != 1:
        return f"not reduced: {n}/{d} is {q.numerator}/{q.denominator} in lowest terms"
    return None


def _not_number(s: str) -> str:
    if not s:
        return "empty"
    if _MIXED.fullmatch(s):
        return "a mixed number (write an improper fraction)"
    body = s[1:] if s[0] in "+-" else s
    ops = [m.group() for m in _OPERATOR.finditer(body)]
    other = [op for op in ops if op != "/"]
    if other:
        return f"has operator '{other[0]}'"
    symbol = _SYMBOL.search(s)
    if symbol is not None and symbol.group() != "\\frac":
        return f"has '{symbol.group()}'"
    if ops or "\\frac" in s:
        return "a fraction whose parts are not integers" if ops.count("/") < 2 else "has operator '/'"
    if any(c in s for c in "()[]{}"):
        return "has brackets"
    return f"{s[:40]!r} is not an integer, a decimal or a fraction"


# -- expanded polynomials


class _NotExpanded(Exception):
    pass


_WHAT = {"root": "a root", "fn": "a function", "log": "a logarithm", "div": "a division", "add": "a sum",
         "abs": "an absolute value", "fact": "a factorial", "binom": "a binomial", "const": "infinity",
         "mul": "a product", "neg": "a sign inside a product", "num": "a number"}  # fmt: skip


def _expanded_form(pred: Answer) -> str | None:
    if pred.kind == "number":
        return None
    if pred.kind != "expr":
        what = "could not be parsed" if pred.kind == "unparsed" else f"a {pred.kind}"
        return f"not a polynomial: {what}"
    if any(c in pred.text for c in "()[]"):
        return "not expanded: has parentheses"
    node = pred.node
    terms = node[1] if node[0] == "add" else (node,)
    try:
        monomials = [_monomial(t) for t in terms]
    except _NotExpanded as e:
        return f"not expanded: {e}"
    if len(monomials) > 1 and any(zero for _, zero in monomials):
        return "not expanded: has a zero term"
    repeated = [sig for sig, n in Counter(sig for sig, _ in monomials).items() if n > 1]
    if repeated:
        return f"not expanded: like terms not combined ({_describe(repeated[0])})"
    return None


def _describe(signature: tuple[tuple[str, int], ...]) -> str:
    if not signature:
        return "constant terms"
    return "".join(name if power == 1 else f"{name}^{power}" for name, power in signature) + " terms"


def _is_number(f: Any) -> bool:
    """A numeric literal: a number, or a fraction of two integer literals."""
    if f[0] == "num":
        return True
    return (
        f[0] == "div"
        and f[1][0] == "num"
        and f[2][0] == "num"
        and f[1][1].denominator == f[2][1].denominator == 1
        and f[2][1] != 0
    )


def _monomial(term: Any) -> tuple[tuple[tuple[str, int], ...], bool]:
    """(sorted (variable, power) pairs, whether the coefficient is 0) of one term ``c x^a y^b``."""
    if term[0] == "neg":
        term = term[1]
        if term[0] == "neg":
            raise _NotExpanded("two signs in a row")
    if _is_number(term):
        return (), term[0] == "num" and term[1] == 0
    if term[0] == "div":  # \frac{x^2}{3}: a monomial over a positive integer
        den = term[2]
        if den[0] != "num" or den[1].denominator != 1 or den[1] <= 1:
            raise _NotExpanded("has a division that is not by a positive integer")
        term = term[1]
        if term[0] == "div":
            raise _NotExpanded("has a division inside a division")
    factors = term[1] if term[0] == "mul" else (term,)
    numbers = 0
    zero = False
    powers: dict[str, int] = {}
    for i, f in enumerate(factors):
        if f[0] == "neg" and i == 0:  # -19x^2 is mul(neg(19), x^2)
            f = f[1]
        if _is_number(f):
            numbers += 1
            if numbers > 1:
                raise _NotExpanded("multiplies numbers")
            zero = f[0] == "num" and f[1] == 0
            continue
        base, power = (f[1], f[2]) if f[0] == "pow" else (f, ("num", Fraction(1), 0))
        if base[0] not in ("sym", "const") or base[1] == "oo":
            what = _WHAT.get(f[0], f[0]) if f[0] != "pow" else "a power of " + _WHAT.get(base[0], base[0])
            raise _NotExpanded(f"has {what}")
        if power[0] != "num" or power[2] or power[1].denominator != 1 or power[1] < 1:
            raise _NotExpanded(f"has a power of {base[1]} that is not a positive integer")
        if base[1] in powers:
            raise _NotExpanded(f"{base[1]} appears twice in one term")
        powers[base[1]] = int(power[1])
    return tuple(sorted(powers.items())), zero
