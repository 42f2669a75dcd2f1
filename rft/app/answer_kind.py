"""The structure of a gold answer, from its string: what `rft grader audit` groups unlabelled rows by.

A small, dependency-free classifier (regular expressions and a bracket-depth scan, no parsing): it names
the shape of an answer (a number, an interval, a labelled assignment, ...) so that disagreements between
two graders can be counted per shape. It does not decide equality and never needs to be exact; an answer
it cannot place is ``other``.
"""

from __future__ import annotations

import re

__all__ = ["ANSWER_KINDS", "answer_kind", "split_top_level"]

ANSWER_KINDS = (
    "number",  # 42, -3.5, 1{,}000, 50\%, 30^\circ, 9e11, 1.5 \times 10^{3}
    "number+units",  # 5\text{ cm}, \$3800, 12 \mbox{ inches}
    "fraction",  # \frac{1}{2}, -3/4, 2\frac{1}{3}
    "expression",  # 2\sqrt{3}, x^2+1, \frac{\pi}{4}, 1 \pm \sqrt{2} is a list (tuple/set)
    "equation/relation",  # x + y = 1, x \ge 5, -2 \le x \le 7, x \in [0, 1]
    "labelled",  # x = 5, (p,q)=(3,2), k = 45, n = 2, |AB| = 1
    "ratio",  # 7:32, S_{MBCN}:S=7:32 is labelled
    "interval",  # [0, 1), (-\infty, 2] \cup (3, \infty)
    "tuple/set",  # (1, 2), \{1, 2\}, 1, 2, 3, (0;-2;6), 12 \text{ and } 13, A or B
    "matrix",  # \begin{pmatrix} ... \end{pmatrix}
    "text/choice",  # \text{(B)}, C, Monday, \text{no solution}
    "other",  # empty, or nothing above
)

_OPEN, _CLOSE = "([{", ")]}"
_WRAPPERS = re.compile(r"^\s*(?:\\boxed|\\fbox)\s*\{(.*)\}\s*\.?\s*$", re.S)
_DOLLARS = re.compile(r"^\s*\$+([^$]*)\$+\s*$", re.S)
_DISPLAY = re.compile(r"^\s*\\[\[(](.*)\\[\])]\s*$", re.S)
_SIZING = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|displaystyle|,|;|!|quad|qquad)(?![a-zA-Z])"
)
_NUMBER = re.compile(
    r"^[-+]?(?:\d{1,3}(?:(?:,|\{,\}|,\\!|\\,)\d{3})+|\d+)(?:\.\d*(?:\\overline\{\d+\})?)?(?:\\%|%|\^\{?\\circ\}?|\\circ|\\degree)?$"
    r"|^[-+]?\.\d+$"
    r"|^[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+|\s*\\(?:times|cdot)\s*10\^\{?[-+]?\d+\}?)$"  # 9e11, 1.5\times10^{3}
)
_FRACTION = re.compile(
    r"^[-+]?(?:\d+\s*)?(?:\\[dt]?frac\s*(?:\{\s*-?\d+\s*\}|\d)\s*(?:\{\s*-?\d+\s*\}|\d)|\d+\s*/\s*\d+)$"
)
_UNIT_TEXT = re.compile(r"\\(?:text|mbox|textnormal|mathrm|textrm)\s*\{\s*[^{}]*[a-zA-Z]{1,}[^{}]*\}")
_CHOICE = re.compile(r"^\(?[A-J]\)?$")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|textnormal|textrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}")
_RELATION = re.compile(r"\\(?:leq?|geq?|lt|gt|neq?|ne|leqslant|geqslant|in|notin|subset|subseteq|approx)(?![a-zA-Z])|[<>]=?|=|≤|≥")  # fmt: skip
_LABEL = re.compile(
    r"^(?:[a-zA-Z](?:_\{?[a-zA-Z0-9,]+\}?)?'*(?:\([a-zA-Z, ]*\))?"  # x, x_1, a_{n}, f(x), y'
    r"|\\[a-zA-Z]+(?:_\{?[a-zA-Z0-9]+\}?)?"  # \alpha, \theta_1, \angle ABC is caught below
    r"|\\angle\s*[A-Z]+|\|[^|]+\||[A-Z]{2,3}"  # \angle ABC, |AB|, AB
    r"|\((?:\s*[a-zA-Z](?:_\{?\w+\}?)?\s*,)+\s*[a-zA-Z](?:_\{?\w+\}?)?\s*\)"  # (p, q, r)
    r"|\\frac\{[A-Za-z]+\}\{[A-Za-z]+\}|[A-Za-z_{}]+\s*:\s*[A-Za-z_{}]+)$"  # \frac{NO}{BO}, V_1:V_2
)
_LIST_WORDS = re.compile(
    r"\\text\s*\{\s*(?:and|or)\s*\}|\s(?:and|or)\s|(?<=[)\]}])\s*(?:and|or)\s*(?=[(\[{\\])|\\(?:quad|qquad)|;"
)
_INFINITY = re.compile(r"\\infty|∞")


def split_top_level(s: str, seps: str = ",") -> list[str]:
    """`s` split on the characters of `seps` that are outside any bracket or brace."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch in seps and depth == 0 and s[i - 1 : i] != "\\":
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _boxed(s: str) -> list[str]:
    """The contents of every `\\boxed{...}` / `\\fbox{...}` in `s`, in order."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", s):
        depth, i = 1, m.end()
        while i < len(s) and depth:
            depth += {"{": 1, "}": -1}.get(s[i], 0)
            i += 1
        if depth == 0:
            out.append(s[m.end() : i - 1])
    return out


def _strip(s: str) -> str:
    s = s.strip()
    if boxed := _boxed(s):  # a reference holding a solution: its boxed answer(s)
        s = ", ".join(b.strip() for b in boxed) if len(boxed) > 1 else boxed[0]
    for _ in range(3):
        before = s
        for pattern in (_DOLLARS, _DISPLAY, _WRAPPERS):
            if m := pattern.match(s):
                s = m.group(1).strip()
        s = s.rstrip(".").strip()
        if s == before:
            break
    return re.sub(r"\s+", " ", _SIZING.sub(" ", s)).strip()


def _encloses(s: str, open_: str, close: str) -> bool:
    """Whether `s` is one bracketed group: its first bracket closes at its last character."""
    if not (s.startswith(open_) and s.endswith(close)):
        return False
    depth = 0
    for i, ch in enumerate(s):
        depth += ch in _OPEN
        depth -= ch in _CLOSE
        if depth == 0 and i < len(s) - 1 and ch in _CLOSE:
            return False
    return True


def _is_interval(s: str) -> bool:
    """One interval, or a union of intervals and finite sets with at least one interval."""
    pieces = [p.strip() for p in re.split(r"\\cup|∪", s)]
    spans = [p for p in pieces if p[:1] in "([" and p[-1:] in ")]" and len(split_top_level(p[1:-1])) == 2]
    sets = [p for p in pieces if _encloses(p, "\\{", "\\}")]
    if not spans or len(spans) + len(sets) != len(pieces):
        return False
    return len(pieces) > 1 or bool(_INFINITY.search(s)) or s[0] + s[-1] in ("[)", "(]", "[]")


def _relation_kind(s: str) -> str:
    parts = [p for p in split_top_level(s, ",;") if p]
    labelled = all(
        len(sides := [x.strip() for x in re.split(r"(?<![<>!\\])=", p)]) == 2
        and not _RELATION.search(sides[0])
        and _LABEL.match(sides[0])
        for p in parts
    )
    return "labelled" if labelled else "equation/relation"


def answer_kind(gold: str) -> str:
    """The answer structure of a gold answer string: one of `ANSWER_KINDS`."""
    s = _strip(gold)
    if not s:
        return "other"
    if re.search(r"\\begin\{[bpvBV]?matrix\}|\\begin\{array\}", s):
        return "matrix"
    plain = _TEXT_WRAP.sub(r"\1", s).strip()
    if _CHOICE.match(plain) or re.fullmatch(r"\(?[A-J]\)?(?:\s*,\s*\(?[A-J]\)?)+", plain):
        return "text/choice"
    if _RELATION.search(s):
        return _relation_kind(s)
    if re.fullmatch(r"[^:]+:[^:]+(?::[^:]+)*", s) and not re.search(r"[a-zA-Z]{2,}", s):
        return "ratio"
    if _is_interval(s):
        return "interval"
    if (
        _encloses(s, "(", ")")
        or _encloses(s, "\\{", "\\}")
        or _encloses(s, "[", "]")
        or _encloses(s, "{", "}")
    ) and len(split_top_level(s.strip("\\")[1:-1], ",;")) > 1:
        return "tuple/set"
    if len(split_top_level(s, ",;")) > 1 or _LIST_WORDS.search(s) or "\\pm" in s or "\\mp" in s:
        return "tuple/set"
    if _NUMBER.match(plain) or _NUMBER.match(s.replace(" ", "")):
        return "number"
    if _FRACTION.match(s.replace(" ", "")):
        return "fraction"
    unitless = _UNIT_TEXT.sub("", s).replace("\\$", "").strip()
    bare = unitless.replace(" ", "")
    if (unitless != s.replace("\\$", "").strip() or s.startswith("\\$")) and (
        _NUMBER.match(bare) or _FRACTION.match(bare)
    ):
        return "number+units"
    words = re.findall(r"[A-Za-z]{3,}", re.sub(r"\\[a-zA-Z]+", " ", plain))
    if words and not re.search(r"[=^_\\]|\d", plain):
        return "text/choice"
    if re.search(r"[\dA-Za-z]", s):
        return "expression"
    return "other"
