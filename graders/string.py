"""String graders: OpenAI's `string_check`, and rft's `regex` and `format` (tag structure) graders."""

from __future__ import annotations

from typing import Any, Literal

import regex
from pydantic import Field, PrivateAttr, field_validator

from .base import Grader, register
from .grade import Grade
from .template import as_text

__all__ = ["StringCheck", "Regex", "Format"]


@register("string_check")
class StringCheck(Grader):
    """OpenAI `string_check`: eq / ne (exact, case-sensitive), like (contains), ilike (contains, any case)."""

    type: Literal["string_check"] = "string_check"
    input: str
    reference: str
    operation: Literal["eq", "ne", "like", "ilike"]

    template_fields = ("input", "reference")

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        got = as_text(self.render("input", ctx))
        ref = as_text(self.render("reference", ctx))
        if self.operation == "eq":
            ok = got == ref
        elif self.operation == "ne":
            ok = got != ref
        elif self.operation == "like":
            ok = ref in got
        else:
            ok = ref.casefold() in got.casefold()
        return Grade(float(ok), "ok", ok, got)


_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "x": regex.VERBOSE}


@register("regex")
class Regex(Grader):
    """Match a regular expression against the input.

    Without `reference`, the score is 1 when the pattern matches. With `reference`, the captured
    `group` (default: the whole match) must equal the reference after stripping whitespace. The
    match itself runs under `match_timeout` seconds (ReDoS-safe: a pathological pattern times out).
    """

    type: Literal["regex"] = "regex"
    input: str = "{{ sample.output_text }}"
    pattern: str
    flags: str = ""
    mode: Literal["search", "fullmatch", "last"] = "search"
    group: int | str = 0
    reference: str | None = None
    match_timeout: float = Field(default=1.0, gt=0)

    template_fields = ("input", "reference")

    @field_validator("flags")
    @classmethod
    def _check_flags(cls, v: str) -> str:
        bad = set(v) - set(_FLAGS)
        if bad:
            raise ValueError(f"unknown flags {sorted(bad)}; use letters from {''.join(_FLAGS)}")
        return v

    _compiled: Any = PrivateAttr(default=None)  # compiled once at load, not per sample

    def model_post_init(self, _context: Any) -> None:
        super().model_post_init(_context)
        try:
            self._compiled = regex.compile(self.pattern, self._flags())
        except regex.error as e:
            raise ValueError(f"bad pattern {self.pattern!r}: {e}") from None

    def _flags(self) -> int:
        out = 0
        for f in self.flags:
            out |= _FLAGS[f]
        return out

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        text = as_text(self.render("input", ctx))
        pat = self._compiled
        try:
            if self.mode == "fullmatch":
                m = pat.fullmatch(text, timeout=self.match_timeout)
            elif self.mode == "search":
                m = pat.search(text, timeout=self.match_timeout)
            else:
                m = None
                for m in pat.finditer(text, timeout=self.match_timeout):  # noqa: B007
                    pass
        except TimeoutError:
            return Grade.timeout(f"pattern took over {self.match_timeout}s on this input")
        if m is None:
            return Grade.no_answer("pattern did not match")
        try:
            got = m.group(self.group)
        except IndexError:
            return Grade.error(f"pattern has no group {self.group!r}")
        if self.reference is None:
            return Grade(1.0, "ok", True, got)
        ref = as_text(self.render("reference", ctx)).strip()
        ok = (got or "").strip() == ref
        return Grade(float(ok), "ok", ok, got, {"reference": ref})


@register("format")
class Format(Grader):
    """Check a tag structure such as ``<think>...</think><answer>...</answer>``.

    Each tag in `tags` must appear exactly once, in order, with non-empty content. `strict` also
    forbids text outside the tags (whitespace aside). The extracted answer is the last tag's content.
    """

    type: Literal["format"] = "format"
    input: str = "{{ sample.output_text }}"
    tags: list[str] = Field(default_factory=lambda: ["think", "answer"], min_length=1)
    strict: bool = True

    template_fields = ("input",)

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, v: list[str]) -> list[str]:
        for t in v:
            if not regex.fullmatch(r"[A-Za-z_][\w\-]*", t):
                raise ValueError(f"tag {t!r} must be a plain name like 'answer'")
        return v

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        text = as_text(self.render("input", ctx))
        pos = 0
        contents: dict[str, str] = {}
        outside: list[str] = []
        for tag in self.tags:
            open_, close = f"<{tag}>", f"</{tag}>"
            if text.count(open_) != 1 or text.count(close) != 1:
                return Grade(0.0, "ok", False, None, {"reason": f"<{tag}> must appear exactly once"})
            start = text.find(open_)
            end = text.find(close)
            if start < pos or end < start:
                return Grade(0.0, "ok", False, None, {"reason": f"<{tag}> is out of order"})
            outside.append(text[pos:start])
            contents[tag] = text[start + len(open_) : end]
            pos = end + len(close)
        outside.append(text[pos:])
        if any(not c.strip() for c in contents.values()):
            empty = [t for t, c in contents.items() if not c.strip()]
            return Grade(0.0, "ok", False, None, {"reason": f"empty tags: {empty}"})
        if self.strict and any(o.strip() for o in outside):
            return Grade(0.0, "ok", False, None, {"reason": "text outside the tags"})
        answer = contents[self.tags[-1]].strip()
        return Grade(1.0, "ok", True, answer, {"tags": contents})
