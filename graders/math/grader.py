"""The ``math`` grader type: extract the final answer from the model's text and compare it with the gold."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, field_validator

from rft.graders.base import Grader, GraderSpecError, load_grader, register
from rft.graders.grade import Grade
from rft.graders.template import as_text

from .extract import extract_answer
from .form import Form, check_form
from .parse import parse
from .tolerance import parse_tolerance, within_tolerance
from .verify import Policy, cached_verify, verify

__all__ = ["MathGrader", "grade_answer", "clear_caches"]


def clear_caches() -> None:
    """Empty the caches of parsed answers, verdicts and gold answers (benchmarks measure cold runs)."""
    parse.cache_clear()
    cached_verify.cache_clear()
    _gold_answer.cache_clear()


@lru_cache(maxsize=65536)
def _gold_answer(reference: str, mode: str) -> str:
    """The gold answer in a reference: the reference itself, or what it states as its final answer
    (``auto``: when it holds a ``\\boxed{}`` or a GSM8K ``####`` line)."""
    if mode == "never" or (mode == "auto" and "\\boxed" not in reference and "####" not in reference):
        return reference.strip()
    found = extract_answer(reference, last_number=False, all_boxes=True)
    return found.text if found is not None else reference.strip()


def grade_answer(gold: str, pred: str, policy: Policy) -> tuple[bool, str, dict[str, Any]]:
    """Compare two answer strings: (equal, rule, parsed forms for the details)."""
    g, p = parse(gold), parse(pred)
    verdict = verify(gold=g, pred=p, policy=policy)
    return verdict.equal, verdict.rule, {"gold": g.summary(), "pred": p.summary()}


@register("math")
class MathGrader(Grader):
    """Math answers: the final answer in `input` (``\\boxed{}``, "the answer is", ``####``, ``<answer>``,
    ...) against `reference`, equal in value (see the policy in ``rft.graders.math``).

    Details: ``extraction`` (which rule found the answer), ``rule`` (what decided: string, fast_path,
    exact, symbolic, expand, cancel, numeric, numeric_probe, tolerance, abs_tolerance, too_large_structural, structure,
    relation, solution_set, second_parser, choice, text, base, string_fallback, fallback, ...; ``+percent``
    when a percent was rescaled) and the parsed ``gold`` and ``pred`` (cleaned text, kind, removed decorations, parse error). With a `form`
    other than ``any``, an answer of the wrong form scores 0 (status ok) whatever its value, and the
    details add ``form`` (the form required and why the answer fails it) and ``value_equal``.

    With a `fallback` judge (a ``score_model`` or ``label_model`` spec), an extracted answer the rules
    score 0 is shown to the judge, and the judge's verdict decides (``rule`` is then ``fallback``);
    ``details["fallback"]`` holds its status, score, reply and cost (seconds, tokens). A judge that fails
    (unreachable, unusable reply, timeout) makes the grade an ``error``/``timeout``, not a 0. Answers the
    rules accept, answers of the wrong `form` and samples without an answer never reach the judge."""

    type: Literal["math"] = "math"
    input: str = "{{ sample.output_text }}"
    reference: str = "{{ item.answer }}"
    timeout: float | None = Field(default=5.0, gt=0, description="hard per-sample deadline in seconds")
    last_number: bool = Field(default=True, description="fall back to the last number in the text")
    reference_extract: Literal["auto", "never", "always"] = Field(
        default="auto", description="take the final answer out of the reference (auto: if it has one)"
    )
    percent: Literal["value_or_fraction", "value"] = "value_or_fraction"
    degrees: Literal["ignore", "strict"] = "ignore"
    ordered_lists: bool = False
    rel_tol: float = Field(default=1e-8, ge=0, lt=1)
    form: Form = Field(
        default="any",
        description=(
            "the form the answer must have besides its value: any (no check); number (one integer, decimal "
            "or fraction a/b or \\frac{a}{b} of integers, no operators: not 37 + 12*5); reduced (number, "
            "fractions in lowest terms with a positive denominator: not 10/12, not 6/3); expanded (a sum of "
            "monomials with numeric coefficients, no parentheses, like terms combined: not (x+1)^2)"
        ),
    )

    tolerance: str = Field(
        default="",
        description=(
            "an absolute tolerance for answers that are one number: a number, or a template such as "
            "'{{ item.tolerance }}' that renders to one per item ('' or none: exact, as above)"
        ),
    )

    fallback: Grader | None = Field(
        default=None,
        description="a score_model/label_model judge consulted only when the rules score an extracted answer 0",
    )

    template_fields = ("input", "reference", "tolerance")

    @field_validator("fallback", mode="before")
    @classmethod
    def _load_fallback(cls, v: Any) -> Any:
        if v is None or isinstance(v, Grader):
            return v
        if not isinstance(v, dict) or v.get("type") not in ("score_model", "label_model"):
            raise ValueError(
                "fallback must be a score_model or label_model grader spec (a dict with its type)"
            )
        try:
            return load_grader(v)
        except GraderSpecError as e:
            raise ValueError(f"fallback: {e}") from None

    def model_post_init(self, _context: Any) -> None:
        super().model_post_init(_context)
        if self.fallback is not None and "timeout" not in self.model_fields_set:
            # the default 5 s deadline would cut the judge off: allow its requests and retries
            judge = self.fallback
            budget = getattr(judge, "request_timeout", 60.0) * (getattr(judge, "max_retries", 2) + 1)
            object.__setattr__(self, "timeout", 5.0 + budget)

    @field_validator("tolerance", mode="before")
    @classmethod
    def _check_tolerance(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = str(v)
        if isinstance(v, str) and "{{" not in v:
            parse_tolerance(v)  # a ValueError says what is wrong
        return v

    def spec(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude_none=True, by_alias=True, exclude={"fallback"})
        if self.fallback is not None:
            out["fallback"] = self.fallback.spec()
        return out

    def policy(self) -> Policy:
        return Policy(self.percent, self.degrees, self.ordered_lists, self.rel_tol)

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        text = as_text(self.render("input", ctx))
        reference = as_text(self.render("reference", ctx))
        gold = _gold_answer(reference, self.reference_extract)
        if not gold:
            return Grade.error("the reference answer is empty")
        found = extract_answer(text, last_number=self.last_number)
        if found is None or not found.text.strip():
            return Grade.no_answer(
                "no final answer found (no \\boxed{}, 'the answer is', ####, <answer> or number)"
            )
        ok, rule, forms = grade_answer(gold, found.text, self.policy())
        details = {"rule": rule, "extraction": found.rule, **forms}
        if not ok and self.tolerance:
            try:
                tol = parse_tolerance(as_text(self.render("tolerance", ctx)))
            except ValueError as e:
                return Grade.error(f"tolerance: {e}")
            if tol is not None and within_tolerance(parse(gold), parse(found.text), tol):
                ok = True
                details |= {"rule": "abs_tolerance", "tolerance": tol}
        if self.form != "any":
            why = check_form(parse(found.text), self.form, gold=parse(gold))  # parse is cached
            if why is not None:
                details |= {"form": f"form {self.form!r} required: {why}", "value_equal": ok}
                return Grade(0.0, "ok", False, found.text, details)
        if not ok and self.fallback is not None:
            return self._ask_fallback(ctx, found.text, details)
        return Grade(float(ok), "ok", ok, found.text, details)

    def _ask_fallback(self, ctx: dict[str, Any], answer: str, details: dict[str, Any]) -> Grade:
        """The judge's verdict on an answer the rules scored 0."""
        assert self.fallback is not None
        t0 = time.perf_counter()
        judged = self.fallback.grade(ctx["sample"], ctx["item"])
        seconds = round(time.perf_counter() - t0, 4)
        verdict: dict[str, Any] = {"status": judged.status, "passed": judged.passed, "score": judged.score,
                                   "seconds": seconds}  # fmt: skip
        for key in ("reply", "usage", "error", "model"):
            if key in judged.details:
                verdict[key] = judged.details[key]
        details = {**details, "rule_verdict": details["rule"], "fallback": verdict}
        if judged.status in ("error", "timeout"):
            why = judged.details.get("error", judged.status)
            return Grade(
                0.0, judged.status, False, answer, {**details, "error": f"fallback judge failed: {why}"}
            )
        ok = judged.status == "ok" and judged.passed
        return Grade(float(ok), "ok", ok, answer, {**details, "rule": "fallback"})
