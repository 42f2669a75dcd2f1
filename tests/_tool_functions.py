"""Plain typed functions that tool-calling tests serve as ``function:`` tools."""

from __future__ import annotations

from typing import Literal

CALLS: list[tuple[str, dict]] = []


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    CALLS.append(("add", {"a": a, "b": b}))
    return a + b


def convert(
    value: float, unit: Literal["km", "mi"], precision: int | None = None, tags: list[str] | None = None
) -> str:
    """Convert a distance between kilometres and miles.

    Args:
        value: The distance to convert.
        unit: The unit `value` is in; the result is in the other one.
        precision (int): Digits after the point; None keeps them all.
        tags: Labels, ignored.
    """
    out = value * 0.621371 if unit == "km" else value / 0.621371
    return str(out if precision is None else round(out, precision))


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


def slow(seconds: float) -> str:
    """Sleep, then say how long."""
    import time

    time.sleep(seconds)
    return str(seconds)
