"""An absolute tolerance for one-number answers (the ``tolerance`` option of the ``math`` grader).

OlympiadBench marks some numerical answers with an ``error``: a prediction within that distance of the
gold is correct (its own judge compares ``|gold - pred| <= error``). Only answers that are one real
number on both sides qualify (``4.2``, ``\\frac{21}{5}``, ``\\sqrt{17}``, ``4.2\\%``); lists, tuples,
intervals, expressions with variables and text never do, so a tolerance cannot make ``(1, 2)`` equal
``(1.05, 2)`` or ``x + 0.01`` equal ``x``. Numbers compare as written: a percent sign, a degree sign or a
unit is ignored, as in the exact comparison (``50\\% = 50``).
"""

from __future__ import annotations

import math

from . import algebra
from .parse import Answer

__all__ = ["parse_tolerance", "within_tolerance"]


def parse_tolerance(text: str) -> float | None:
    """``""`` -> None (no tolerance); ``"1e-1"`` -> 0.1; a negative, non-finite or non-numeric text raises
    ValueError saying what to write."""
    text = text.strip()
    if not text or text.lower() == "none":
        return None
    try:
        tol = float(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a number: write an absolute tolerance such as 0.1 or 1e-2"
        ) from None
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"{text!r} must be a finite number >= 0 (an absolute tolerance)")
    return tol


def _number(a: Answer) -> float | None:
    if a.kind not in ("number", "expr") or a.node is None:
        return None
    v = algebra.value(a.node)
    if v is None:
        return None
    f = algebra.to_float(v)
    return f if math.isfinite(f) else None


def within_tolerance(gold: Answer, pred: Answer, tol: float) -> bool:
    """Are `gold` and `pred` each one real number, at most `tol` apart (as written)?"""
    g, p = _number(gold), _number(pred)
    return g is not None and p is not None and abs(g - p) <= tol
