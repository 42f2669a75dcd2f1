"""OpenAI's `multi` grader: run named sub-graders and combine their scores with a formula.

The formula (`calculate_output`) is parsed once, at load time, and evaluated by walking its syntax tree
over floats; it is never passed to `eval`. Allowed: numbers, the sub-graders' names, ``+ - * / ** ^``
(``^`` is power, as in OpenAI's formulas), unary minus, parentheses, and the functions listed in
`FUNCTIONS`.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, field_validator

from .base import Grader, GraderSpecError, load_grader, register
from .grade import Grade

__all__ = ["Multi", "FUNCTIONS"]

MAX_FORMULA_CHARS = 2000


def _min(*xs: float) -> float:
    return min(xs)


def _max(*xs: float) -> float:
    return max(xs)


# name -> (function, fewest arguments, most arguments or None for any number)
FUNCTIONS: dict[str, tuple[Callable[..., float], int, int | None]] = {
    "min": (_min, 1, None),
    "max": (_max, 1, None),
    "abs": (abs, 1, 1),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "exp": (math.exp, 1, 1),
    "sqrt": (math.sqrt, 1, 1),
    "log": (math.log, 1, 2),
}
_BINOPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: math.pow,  # floats only: a domain error instead of a complex number, overflow raises
}
_ALLOWED = (
    "numbers, the sub-grader names ({names}), + - * / ** ^ (power), unary minus, parentheses, "
    "and the functions " + ", ".join(FUNCTIONS)
)


@lru_cache(maxsize=256)
def parse_formula(formula: str, names: frozenset[str]) -> ast.expr:
    """Parse `formula` and check that it uses only what `_ALLOWED` lists. Raises ValueError.

    Cached: a grader parses at load time and finds the same tree when it grades (the tree is not
    stored on the model, so equal specs stay equal)."""
    allowed = _ALLOWED.format(names=", ".join(sorted(names)) or "none")
    if len(formula) > MAX_FORMULA_CHARS:
        raise ValueError(f"calculate_output is longer than {MAX_FORMULA_CHARS} characters")
    try:
        # `^` binds like `**` in maths (2 + 3 ^ 2 == 11), so swap the text, not the AST node.
        tree = ast.parse(formula.replace("^", "**").strip(), "<calculate_output>", mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        msg = e.msg if isinstance(e, SyntaxError) else str(e)
        raise ValueError(
            f"calculate_output {formula!r} does not parse ({msg}); it may use {allowed}"
        ) from None

    def check(node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, int | float) and not isinstance(node.value, bool):
                return
            bad = f"the constant {node.value!r}"
        elif isinstance(node, ast.Name):
            if node.id in names:
                return
            bad = f"the name {node.id!r} (not a sub-grader)"
        elif isinstance(node, ast.BinOp):
            if type(node.op) in _BINOPS:
                check(node.left)
                check(node.right)
                return
            bad = f"the operator {type(node.op).__name__}"
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub | ast.UAdd):
                check(node.operand)
                return
            bad = f"the operator {type(node.op).__name__}"
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords:
                _, lo, hi = FUNCTIONS[node.func.id]
                n = len(node.args)
                if (
                    n < lo
                    or (hi is not None and n > hi)
                    or any(isinstance(a, ast.Starred) for a in node.args)
                ):
                    want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi else f"{lo} or more"
                    plural = "" if want == "1" else "s"
                    raise ValueError(
                        f"calculate_output {formula!r}: {node.func.id}() takes {want} argument{plural}, got {n}"
                    )
                for a in node.args:
                    check(a)
                return
            bad = f"the call {ast.unparse(node)!r}"
        else:
            bad = f"{type(node).__name__} {ast.unparse(node)!r}"
        raise ValueError(f"calculate_output {formula!r} uses {bad}; it may use only {allowed}")

    check(tree.body)
    return tree.body


def evaluate(node: ast.expr, values: dict[str, float]) -> float:
    """Evaluate a tree checked by `parse_formula`. Raises ZeroDivisionError, ValueError, OverflowError."""
    if isinstance(node, ast.Constant):
        assert isinstance(node.value, int | float)
        return float(node.value)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](evaluate(node.left, values), evaluate(node.right, values))
    if isinstance(node, ast.UnaryOp):
        x = evaluate(node.operand, values)
        return -x if isinstance(node.op, ast.USub) else x
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        return float(FUNCTIONS[node.func.id][0](*(evaluate(a, values) for a in node.args)))
    raise AssertionError(f"unchecked node {type(node).__name__}")  # parse_formula lets none through


@register("multi")
class Multi(Grader):
    """OpenAI `multi`: grade with every sub-grader, then score = `calculate_output` over their scores.

    Status: ``timeout`` if a sub-grade timed out, else ``error`` if one errored (the score is then 0
    and no reward), else ``no_answer`` if all are ``no_answer``, else ``ok``. `passed` is
    ``score >= pass_threshold`` when given (an rft extension), else every sub-grade passed.
    Details hold each sub-grade under ``details["graders"][name]``.
    """

    type: Literal["multi"] = "multi"
    graders: dict[str, Grader] = Field(min_length=1)
    calculate_output: str
    pass_threshold: float | None = None

    @field_validator("graders", mode="before")
    @classmethod
    def _load_graders(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v  # pydantic reports the type error
        out: dict[str, Grader] = {}
        for key, spec in v.items():
            try:
                out[key] = load_grader(spec)
            except GraderSpecError as e:
                raise ValueError(f"sub-grader {key!r}: {e}") from None
        return out

    def model_post_init(self, _context: Any) -> None:
        super().model_post_init(_context)
        parse_formula(self.calculate_output, frozenset(self.graders))

    def spec(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude_none=True, exclude={"graders"})
        out["graders"] = {key: g.spec() for key, g in self.graders.items()}
        return out

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        subs = {key: g.grade(ctx["sample"], ctx["item"]) for key, g in self.graders.items()}
        details: dict[str, Any] = {"graders": {key: s.to_dict() for key, s in subs.items()}}
        scores = {key: s.score for key, s in subs.items()}
        for status in ("timeout", "error"):
            failed = {key: s.details.get("error", "") for key, s in subs.items() if s.status == status}
            if failed:
                why = "; ".join(f"{key}: {msg}" for key, msg in failed.items())
                return Grade(0.0, status, False, scores, {"error": f"sub-grader {status}: {why}", **details})
        if all(s.status == "no_answer" for s in subs.values()):
            return Grade(
                0.0, "no_answer", False, scores, {"reason": "every sub-grader found no answer", **details}
            )
        try:
            score = evaluate(parse_formula(self.calculate_output, frozenset(self.graders)), scores)
        except (ZeroDivisionError, ValueError, OverflowError) as e:
            return Grade(0.0, "error", False, scores, {"error": f"calculate_output failed: {e}", **details})
        if not math.isfinite(score):
            return Grade(0.0, "error", False, scores, {"error": f"calculate_output gave {score}", **details})
        if self.pass_threshold is not None:
            passed = score >= self.pass_threshold
        else:
            passed = all(s.passed for s in subs.values())
        return Grade(score, "ok", passed, scores, details)
