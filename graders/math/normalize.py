"""String clean-up of one answer before it is parsed: decorations out, flags for what was removed.

`clean(s)` strips math delimiters, spacing commands, ``\\left``/``\\right``, ``\\$``, thousands separators,
units written with ``\\text{}``, a trailing ``\\%`` (flag `percent`) and ``^\\circ`` (flag `degrees`),
and unwraps ``\\text{}``-like commands. It never raises and runs in linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Cleaned", "clean", "matching_brace", "strip_delimiters"]

# Plain substitutions, in order (str.replace is fast and linear).
_REPLACE: tuple[tuple[str, str], ...] = (
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("\\cfrac", "\\frac"),
    ("\\dbinom", "\\binom"),
    ("\\tbinom", "\\binom"),
    ("\\displaystyle", ""),
    ("\\left.", ""),
    ("\\right.", ""),
    ("{,}", ","),
    ("\\qquad", " "),
    ("\\quad", " "),
    ("~", " "),
    ("\\$", ""),
    ("\\lbrace", "\\{"),
    ("\\rbrace", "\\}"),
    ("\\lvert", "|"),
    ("\\rvert", "|"),
    ("\\vert", "|"),
    ("\\mid", "|"),
    ("\\dots", ""),
    ("\\varnothing", "\\emptyset"),
    ("\\angle", " "),
    ("\\measuredangle", " "),
    ("\\ldots", ""),
    ("\\cdots", ""),
    ("\u2212", "-"),
    ("\u2013", "-"),
    ("\u00d7", "\\times "),
    ("\u00f7", "\\div "),
    ("\u00b7", "\\cdot "),
    ("\u03c0", "\\pi "),
    ("\u221a", "\\sqrt "),
    ("\u221e", "\\infty "),
    ("\u2264", "\\le "),
    ("\u2265", "\\ge "),
    ("\u2260", "\\ne "),
    ("\u222a", "\\cup "),
    ("\u00b0", "^\\circ "),
    ("**", "^"),  # x**2 written in Python
    ("\\colon", ":"),
    ("\u00bd", "\\frac{1}{2}"),
    ("\u2153", "\\frac{1}{3}"),
    ("\u2154", "\\frac{2}{3}"),
    ("\u00bc", "\\frac{1}{4}"),
    ("\u00be", "\\frac{3}{4}"),
)
_THOUSANDS_MARK = re.compile(r"(?<=\d)(?:,\\!\s*|\{,\})(?=\d{3}(?!\d))")  # 15,\!000  11,\! 111  1{,}000
_SPACING = re.compile(r"(?<!\\)\\[,;:> !]")  # thin spaces etc., not the row break \\
_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![A-Za-z])")
_DEGREES = re.compile(r"\^\s*+\{\s*+\\circ\s*+\}|\^\s*+\\circ|\\circ|\\degree")
_PERCENT = re.compile(r"\\?%")
_TEXT_CMD = re.compile(
    r"\\(?:text|textbf|textit|textrm|textsf|texttt|textnormal|textup|mathrm|mathbf|mathit|mathsf|mathtt"
    r"|mbox|hbox)\s*\{"
)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# A unit in \text{}/\mathrm{} after a value: words, `/` between them (m/s, km/h), a power (cm^2, s^{-1}).
_UNIT_WORDS = re.compile(
    r"[A-Za-z][A-Za-z.\- ]*+(?:/\s*+[A-Za-z][A-Za-z.\- ]*+)*+(?:\^\s*+\{?\s*+-?\d\s*+\}?)?"
)
_UNIT_POWER = re.compile(r"\s*\^\s*(?:\{\s*-?[1-9]\s*\}|-?[1-9])")
_UNIT_JOIN = re.compile(r"\s*(?:/|\\cdot|\\times)?\s*")  # between two units: m / s, kg \cdot m
_MATH_LETTERS = frozenset("eid")  # \mathrm{e}, \mathrm{i}, \mathrm{d}: Euler's number, i, a differential
_CONNECTIVE = {
    w: "," for w in ("and", "or", ",", "and/or", "ou", "et", "oder", "und", "\u6216", "\u548c")
} | {"": ""}
_THOUSANDS_ONLY = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_THOUSANDS_SPACE = re.compile(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?")
_TRAILING_WORDS = re.compile(
    r"(.*[\d})])\s++([A-Za-z][A-Za-z.]++(?:\s++[A-Za-z][A-Za-z.]++){0,3})(?:\^\{?[23]\}?)?"
)  # 5 cm, 1 cm^2
# Words after a number that are never taken for a unit.
_MATH_WORDS = frozenset(
    {"pi", "sqrt", "sin", "cos", "tan", "sec", "csc", "cot", "log", "ln", "exp"}
    | {"inf", "infinity", "or", "and"}
)
_SPACES = re.compile(r"\s+")
_OVERLINE_WORD = re.compile(r"\\overline\s*\{\s*([A-Za-z]+)\s*\}")
_DOUBLE_COMMA = re.compile(r",\s*,")
_DELIMS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


@dataclass(frozen=True, slots=True)
class Cleaned:
    text: str  # the cleaned answer
    percent: bool = False  # a percent sign was removed
    degrees: bool = False  # a degree sign was removed
    units: bool = False  # unit words were removed
    was_text: bool = False  # the whole answer was one \text{...}


def matching_brace(s: str, open_at: int, limit: int | None = None) -> int:
    """Index of the ``}`` that closes the ``{`` at `open_at`, or -1 (also when it is more than `limit`
    characters away). Linear, no recursion."""
    depth = 0
    i = open_at
    n = len(s) if limit is None else min(len(s), open_at + limit)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2  # an escaped brace does not count
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def strip_delimiters(s: str) -> str:
    """``$x$``, ``$$x$$``, ``\\(x\\)``, ``\\[x\\]`` -> ``x`` (repeatedly), and surrounding space."""
    s = s.strip()
    changed = True
    while changed and s:
        changed = False
        for a, b in _DELIMS:
            if len(s) >= len(a) + len(b) and s.startswith(a) and s.endswith(b):
                s = s[len(a) : len(s) - len(b)].strip()
                changed = True
                break
    return s


def _unwrap_command(s: str, pattern: re.Pattern[str]) -> str:
    """Replace ``\\cmd{x}`` by ``x`` for every match of `pattern` (which ends at the ``{``)."""
    out = []
    pos = 0
    while True:
        m = pattern.search(s, pos)
        if m is None:
            break
        close = matching_brace(s, m.end() - 1)
        if close < 0:
            break
        out.append(s[pos : m.start()])
        out.append(s[m.end() : close])
        pos = close + 1
    out.append(s[pos:])
    return "".join(out)


def _math_letter(cmd: str, inner: str, joined: bool) -> bool:
    """A lone letter in a command that is maths, not a unit: ``\\mathrm{e}``/``{i}``/``{d}``, and
    ``\\mathbf{v}``-style letters unless spaced (``\\mathit{ m}``) or joined to a unit before them."""
    letter = inner.replace("~", " ").strip()
    if len(letter) != 1:
        return False
    if cmd.startswith("\\mathrm"):  # \mathrm{J}, \mathrm{K}: units
        return letter in _MATH_LETTERS
    return cmd.startswith("\\math") and inner[:1] not in " ~" and not joined


def _texts(s: str) -> tuple[str, list[str], bool]:
    """Handle ``\\text{...}`` groups: the whole answer -> its content (was_text); units after a value
    -> dropped (and returned); ``and``/``or`` between values -> a comma; anything else -> its content."""
    units: list[str] = []
    m = _TEXT_CMD.match(s)
    if m is not None and matching_brace(s, m.end() - 1) == len(s) - 1:
        inner = s[m.end() : -1].strip()
        if _TEXT_CMD.search(inner) is None:
            return inner, [], True
    out: list[str] = []
    pos = 0
    after_unit = False  # the last group was a unit: a next unit joined by / or \cdot is dropped with the join
    while True:
        m = _TEXT_CMD.search(s, pos)
        if m is None:
            break
        close = matching_brace(s, m.end() - 1)
        if close < 0:
            break
        inner = s[m.end() : close]
        unit = inner.replace("~", " ").strip()  # \mathrm{~m}: ~ is a space
        word = inner.strip().lower()
        between = s[pos : m.start()]
        before = "".join(out) + between
        out.append(between)
        pos = close + 1
        joined = after_unit and _UNIT_JOIN.fullmatch(between) is not None
        after_unit = False
        if word in _CONNECTIVE:
            out.append(_CONNECTIVE[word])
        elif (
            before.strip()
            and not _math_letter(m.group(), inner, joined)
            and _UNIT_WORDS.fullmatch(unit)
            and not before.rstrip().endswith((",", "("))
        ):
            units.append(word)  # units after a value: dropped, with a power such as ^2 that follows them
            if joined:
                out.pop()  # the / or \cdot between two units
            p = _UNIT_POWER.match(s, pos)
            if p is not None:
                pos = p.end()
            after_unit = True
        else:
            out.append(inner)
    out.append(s[pos:])
    return "".join(out), units, False


_APPROX = re.compile(r"\\approx|\u2248")
_LONE_LABEL = re.compile(r"\s*[A-Za-z](?:_\{?\w+\}?)?\s*(?:=\s*)?")


def _exact_part(s: str) -> str:
    """``\\frac{1}{3} \\approx 0.333`` -> ``\\frac{1}{3}``: the value stated before an approximation is
    the answer; ``x \\approx 0.33`` (nothing exact stated) keeps the approximation."""
    parts = _APPROX.split(s)
    first = parts[0].strip()
    if first and not _LONE_LABEL.fullmatch(first):
        return first
    if first and len(parts) == 2 and "=" not in first:  # x \approx 11: nothing exact is stated; x = 11
        return f"{first} = {parts[1].strip()}"
    return s


# Plain-text function names and pi (sqrt(4), sin(pi/2), exp(0), pi + 1) as the LaTeX commands they mean.
_PLAIN_NAMES = re.compile(r"(?<![\\A-Za-z])(sqrt|sin|cos|tan|exp|ln|log|pi)(?![A-Za-z])")
_CJK_UNIT = re.compile(r"(?<=[\d})])\s*[\u4e00-\u9fff]{1,4}$")  # 40厘米, (\frac{2}{5}) 吨
_BRACED_COMMA = re.compile(r"(?<=\d)\s*\{\s*,\s*\}\s*(?=\d)")
_DOUBLED = re.compile(r"(?<!\\)\\\\(?=[A-Za-z]{2})")  # \\frac: a command escaped twice (JSON in JSON)
_DOLLAR = re.compile(r"(?<!\\)\$")
_GLUED_OR = re.compile(
    r"(?<=[)\]}])\s*(?:or|and)\s*(?=[(\[{\\])|(?<=[\d)\]}])or(?=[A-Za-z\d(\[{\\])"
)  # (11,7)or(7,11), W(x)=1orW(x)=-1


def clean(s: str) -> Cleaned:
    """Strip decorations from one answer string (see the module docstring)."""
    if "\\\\" in s:
        s = _DOUBLED.sub(r"\\", s)
    if "{" in s and "," in s:
        s = _BRACED_COMMA.sub("{,}", s)  # 14 {, }916
    s = strip_delimiters(s)
    if "$" in s:  # $125$ miles: the math delimiters of a span inside the answer
        s = _DOLLAR.sub("", s).strip()
    if "or" in s or "and" in s:
        s = _GLUED_OR.sub(", ", s)
    if s.endswith("\\") and not s.endswith("\\\\"):  # 185\ : a stray backslash
        s = s[:-1].rstrip()
    cjk_unit = False
    if s and "\u4e00" <= s[-1] <= "\u9fff":
        s, n = _CJK_UNIT.subn("", s)
        cjk_unit = n > 0
    for _ in range(3):  # \boxed{\boxed{A}}
        if "\\boxed" not in s and "\\fbox" not in s:
            break
        s = strip_delimiters(_unwrap_command(s, _BOXED))
    if ",\\!" in s or "{,}" in s:
        s = _THOUSANDS_MARK.sub("", s)
    for a, b in _REPLACE:
        if a in s:
            s = s.replace(a, b)
    if ("sqrt" in s or "pi" in s or "sin" in s or "cos" in s or "tan" in s or "exp" in s or "ln" in s
            or "log" in s):  # fmt: skip
        s = _PLAIN_NAMES.sub(r"\\\1", s)
    if "\\" in s:
        s = _SPACING.sub(lambda m: "" if m.group() == "\\!" else " ", s)
        s = _LEFT_RIGHT.sub("", s)
    degrees = percent = False
    signs = 0  # several signs removed: 45^\circ,135^\circ is a list, not a number with a comma
    if "circ" in s or "degree" in s:
        s, n = _DEGREES.subn("", s)
        degrees, signs = n > 0, n
    if "%" in s:
        s, n = _PERCENT.subn("", s)
        percent, signs = n > 0, signs + n
    was_text = False
    unit_words: list[str] = []
    if "\\" in s and _TEXT_CMD.search(s):
        s, unit_words, was_text = _texts(s)
        if not was_text and "%" in s:  # \text{\%}
            s, n = _PERCENT.subn("", s)
            percent = percent or n > 0
    if "\\approx" in s or "\u2248" in s:
        s = _exact_part(s)
    if "\\overline" in s:
        s = _OVERLINE_WORD.sub(r"\1", s)  # \overline{CD}: a segment's name
    s = s.strip().rstrip(".;,").strip()
    if ",," in s or ", ," in s:
        s = _DOUBLE_COMMA.sub(",", s)
    if s.startswith("$") or s.startswith("\\("):
        s = strip_delimiters(s)
    if "," in s and signs < 2 and _THOUSANDS_ONLY.fullmatch(s):  # only a lone number loses its commas: 1,000
        s = s.replace(",", "")
    if " " in s:
        if _THOUSANDS_SPACE.fullmatch(s):
            s = s.replace(" ", "")
        m = _TRAILING_WORDS.fullmatch(s) if ":" not in s else None  # 1:03 PM is a time
        if m is not None and not any(w.lower().rstrip(".") in _MATH_WORDS for w in m.group(2).split()):
            s = m.group(1)
            unit_words.append(m.group(2).lower())
        s = _SPACES.sub(" ", s).strip()
    degrees = degrees or any("degree" in w for w in unit_words)
    percent = percent or any("percent" in w for w in unit_words)
    return Cleaned(s, percent, degrees, bool(unit_words) or cjk_unit, was_text)
