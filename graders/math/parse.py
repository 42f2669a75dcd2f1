"""One answer string -> a parsed `Answer`: its kind, its AST and the decorations that were removed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from .latex import ParseError, parse_latex
from .normalize import clean
from .second import parse_second

__all__ = ["Answer", "parse", "MAX_ANSWER_CHARS"]

MAX_ANSWER_CHARS = 2000

_INT = re.compile(r"-?\d{1,300}")
_DEC = re.compile(r"-?(?:\d{1,300}\.\d{0,300}|\.\d{1,300})")
_FRAC = re.compile(r"(-?)\\frac\{(\d{1,300})\}\{(\d{1,300})\}")
_MIXED = re.compile(r"(-?)(\d{1,300}) (\d{1,300})/(\d{1,300})")
_SLASH = re.compile(r"(-?)(\d{1,300})/(\d{1,300})")
# (B), B, (B) 12, and a letter that starts a sentence about it: "A. Blue", "D, it can't be A", "B。不是 A";
# not "(A), (B)" or "(A), B": several options are a hedge.
_CHOICE = re.compile(
    r"\(([A-Ja-j])\)|([A-J])|\(([A-J])\)\s*+(?![,;]|(?:or|and|ou|et|oder|und)\b|.*\([A-J]\)).+|([A-J])(?:[.:)]\s+\S.*|,\s+[a-z].*|\s+(?:non|not|nicht|no)\b.*"
    r"|\s*\u3002.*|\s*\u4e0d\u662f.*)",
    re.S,
)
_WORDS = re.compile(r"[A-Za-z][A-Za-z'\-]*(?: [A-Za-z][A-Za-z'\-]*)*")
_LONG_WORD = re.compile(r"[A-Za-z]{3}")
_DOUBLE_COMMA = re.compile(r",\s*,")
_TIME = re.compile(r"\d{1,2}:\d\d\s*[AaPp]\.?\s*[Mm]\.?|\d{1,2}:0\d|\d{1,2}:\d\d:\d\d")
_BASED = re.compile(r"(-?)([0-9A-Za-z]+(?:\.[0-9A-Za-z]+)?)_\{?(\d{1,2})\}?")
_CONNECTIVES = re.compile(
    r"\s+(?:and|or|ou|et|oder|und)\s+|\s*[\u6216\u548c]\s*|\\(?:text|mbox)\{\s*(?:and|or|ou|et|oder|und)\s*\}"
)


@dataclass(frozen=True, slots=True)
class Answer:
    """A parsed answer. `kind` is one of: number, expr, group (tuple/interval), set, list, matrix,
    relation, union, choice, based (digits in a base: ``1202_3``), text, empty, unparsed, and sympy
    (read by the second parser, `second.parse_second`: the node is ``("sympy", object)``)."""

    raw: str  # as given
    text: str  # after clean-up (decorations removed)
    kind: str
    node: Any = None  # the AST (see latex.py); the letter for a choice; the folded words for text
    percent: bool = False
    degrees: bool = False
    units: bool = False
    error: str | None = None  # why a non-empty answer could not be parsed

    def summary(self) -> dict[str, Any]:
        """A small JSON-able description for grade details."""
        out: dict[str, Any] = {"text": self.text, "kind": self.kind}
        for flag in ("percent", "degrees", "units"):
            if getattr(self, flag):
                out[flag] = True
        if self.error:
            out["error"] = self.error
        return out


def _kind(node: Any) -> str:
    tag = node[0]
    if tag == "num":
        return "number"
    return {"group": "group", "set": "set", "list": "list", "matrix": "matrix", "rel": "relation",
            "union": "union", "builder": "set", "or": "relation"}.get(tag, "expr")  # fmt: skip


_MAX_PM = 3  # at most this many \pm signs are written out (2**3 values)


def _split_pm(node: Any) -> tuple[Any, Any] | None:
    """`node` with its first ``a \\pm b`` replaced by ``a + b`` and by ``a - b``; None without one."""
    if not isinstance(node, tuple) or not node or not isinstance(node[0], str):
        return None
    if node[0] == "pm":
        a, b = node[1], node[2]
        return ("add", (a, b)), ("add", (a, ("neg", b)))
    for k, child in enumerate(node[1:], start=1):
        if isinstance(child, tuple) and child and isinstance(child[0], tuple):  # a tuple of nodes
            for j, sub in enumerate(child):
                split = _split_pm(sub)
                if split is not None:
                    return tuple(
                        node[:k] + (child[:j] + (v,) + child[j + 1 :],) + node[k + 1 :] for v in split
                    )  # type: ignore[return-value]
        else:
            split = _split_pm(child)
            if split is not None:
                return tuple(node[:k] + (v,) + node[k + 1 :] for v in split)  # type: ignore[return-value]
    return None


def _pm_values(node: Any) -> list[Any]:
    """The values of an expression with ``\\pm`` signs: ``\\frac{-4 \\pm \\sqrt{31}}{15}`` -> two."""
    values = [node]
    for _ in range(_MAX_PM):
        split = [_split_pm(v) for v in values]
        if all(s is None for s in split):
            return values
        values = [w for v, s in zip(values, split, strict=True) for w in (s if s is not None else (v,))]
    return values


def _expand_pm(node: Any) -> Any:
    """``a \\pm b`` -> the list ``a + b, a - b``, wherever the sign is (at the top, in a list element, in
    the right side of ``x = ...``, inside a fraction)."""
    if node[0] == "list":
        items: list[Any] = []
        for x in node[1]:
            e = _expand_pm(x)
            items.extend(e[1] if e[0] == "list" and x[0] != "list" else [e])
        return ("list", tuple(items))
    if node[0] == "rel" and len(node[1]) == 1 and node[1][0] == "=":  # x = 1 \pm \sqrt{2}
        lhs, rhs = node[2]
        values = _pm_values(rhs)
        if len(values) > 1:
            return ("list", tuple(("rel", node[1], (lhs, r)) for r in values))
        return node
    if node[0] in ("rel", "group", "set", "matrix", "union", "builder"):
        return node
    values = _pm_values(node)
    return values[0] if len(values) == 1 else ("list", tuple(values))


def _fast(s: str) -> Any:
    """Integers, decimals and simple fractions without the parser (the fast path)."""
    if _INT.fullmatch(s):
        return ("num", Fraction(int(s)), 0)
    if _DEC.fullmatch(s):
        digits = s.replace("-", "").replace(".", "").lstrip("0")
        return ("num", Fraction(s), max(len(digits), 1))
    m = _MIXED.fullmatch(s)
    if m is not None and int(m.group(4)) != 0:  # 6 3/4 written in plain text
        q = int(m.group(2)) + Fraction(int(m.group(3)), int(m.group(4)))
        return ("num", -q if m.group(1) else q, 0)
    m = _FRAC.fullmatch(s) or _SLASH.fullmatch(s)
    if m is not None and int(m.group(3)) != 0:
        q = Fraction(int(m.group(2)), int(m.group(3)))
        return ("num", -q if m.group(1) else q, 0)
    return None


@lru_cache(maxsize=65536)
def parse(raw: str) -> Answer:
    """Parse one final answer (LaTeX or plain text; no surrounding prose)."""
    if len(raw) > MAX_ANSWER_CHARS:
        return Answer(
            raw[:80] + "...", raw[:80], "unparsed", error=f"answer longer than {MAX_ANSWER_CHARS} characters"
        )
    c = clean(raw)
    s = c.text

    def answer(kind: str, node: Any = None, error: str | None = None) -> Answer:
        return Answer(raw, c.text, kind, node, c.percent, c.degrees, c.units, error)

    if not s:
        return answer("empty")
    node = _fast(s)
    if node is not None:
        return answer("number", node)
    if ":" in s and _TIME.fullmatch(s):  # 1:03 PM: a time of day, not a ratio
        return answer("text", " ".join(s.casefold().replace(".", "").split()))
    m = _BASED.fullmatch(s)
    if m is not None and m.group(2)[0].isdigit():  # 1202_3: digits in base 3
        return answer("based", (m.group(1), m.group(2).upper().lstrip("0") or "0", int(m.group(3))))
    m = _CHOICE.fullmatch(s)
    if m is not None:
        return answer("choice", (m.group(1) or m.group(2) or m.group(3) or m.group(4)).upper())
    if _WORDS.fullmatch(s) and (c.was_text or " " in s or _LONG_WORD.search(s)) and not _has_math_word(s):
        return answer("text", " ".join(s.casefold().split()))
    if _CONNECTIVE_HINT.search(s) is not None:
        s = _DOUBLE_COMMA.sub(",", _CONNECTIVES.sub(", ", s))
    try:
        node = _disjunction(_expand_pm(parse_latex(s)), raw)
    except ParseError as e:
        why = str(e)
        if not c.was_text and _PROSE.search(s) is None:  # notation this parser does not know
            second, reason = parse_second(s)
            if second is not None:
                return answer("sympy", second)
            why = f"{why}; {reason}"  # both parsers' reasons in the details
        return answer("text" if c.was_text else "unparsed", " ".join(c.text.casefold().split()), why)
    return answer(_kind(node), node)


_PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}\s+[A-Za-z]{2,}")  # two words in a row: prose, not math
_OR_WORD = re.compile(r"(?<![A-Za-z])(?:or|ou|oder)(?![A-Za-z])|\u6216")


def _disjunction(node: Any, raw: str) -> Any:
    """``x = 0 or y = 0`` (values of different variables joined by "or") is a disjunction, not the point
    ``(0, 0)``: ``("or", items)``, equal only to the same disjunction."""
    if node[0] != "list" or _OR_WORD.search(raw) is None:
        return node
    items = node[1]
    if not all(x[0] == "rel" and x[1] == ("=",) and x[2][0][0] == "sym" for x in items):
        return node
    labels = [x[2][0] for x in items]
    return ("or", items) if len(set(labels)) == len(labels) else node


_CONNECTIVE_HINT = re.compile(r" (?:and|or|ou|et|oder|und) |[\u6216\u548c]|\\text|\\mbox")
_MATH_WORD = re.compile(r"\b(?:sqrt|frac|pi|sin|cos|tan|log|ln|exp)\b")


def _has_math_word(s: str) -> bool:
    return _MATH_WORD.search(s) is not None
