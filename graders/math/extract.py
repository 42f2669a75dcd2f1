"""Find the final answer in a model's text.

Rules, strongest first: the last ``<answer>...</answer>`` (then the rules below inside it); the last
``\\boxed{}``/``\\fbox{}``; whichever of the last "the answer is ..." / "Answer: ..." / "final answer: ..."
and the last GSM8K ``#### ...`` line comes later in the text; the last math span (``$...$``, ``$$...$$``,
``\\(...\\)``, ``\\[...\\]``) when only punctuation follows it; the whole text when it is short and
parses as an answer (in words: at most three); the last number (optional). Everything runs in linear
time on the text: a 1 MB string is fine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .normalize import matching_brace
from .parse import parse

__all__ = ["Extraction", "extract_answer", "SHORT_ANSWER_CHARS"]

SHORT_ANSWER_CHARS = 200  # a short text that parses may be the answer itself
_TAIL = 4000  # the fallbacks look at the end of the text only
_MAX_WORDS = 3  # a whole text answer in words is short: "Monday", "no solution"; not "I do not know"
_BOX_SCAN = 100_000  # a box whose closing brace is further away than this is not an answer

# "the answer is", "Answer:", "the correct option is", and the same in French, Spanish, German and Chinese.
# Possessive quantifiers only: linear time.
_PHRASE = re.compile(
    r"\b(?:answers?|option|choice)(?:\s++(?:is|are|would\s++be|will\s++be)\b|(?:\s*+\*\*)?\s*+[:\uff1a]|\s*+=)"
    r"|\br\u00e9ponse(?:\s++(?:finale\s++)?est\b|\s*+[:\uff1a])"
    r"|\brespuesta(?:\s++(?:final\s++)?es\b|\s*+[:\uff1a])"
    r"|\bantwort(?:\s++(?:ist|lautet)\b|\s*+[:\uff1a])"
    r"|\u7b54\u6848\s*+(?:\u662f|\u4e3a|\u70ba|[:\uff1a])?+",
    re.I,
)
_PHRASE_HINTS = (
    "nswer",
    "NSWER",
    "ption",
    "PTION",
    "hoice",
    "HOICE",
    "ponse",
    "spuesta",
    "ntwort",
    "\u7b54\u6848",
)
# A lead-in before the value in an answer sentence: "The largest $n$ is 34", "la r\u00e9ponse est 5".
_LEAD_IN = re.compile(
    r"(?:\s(?:is|are|equals|est|es|ist|lautet)|\u662f|\u4e3a|\u70ba|\uff1a|(?<=[A-Za-z]):(?=\s))\s*+", re.I
)  # a colon after a word ("The answer:"), not a ratio's ("1 : 2")
# Prose between two values that joins them into one answer of several values (or a hedge between them).
# "or" and "and" in English, French, Spanish, German, Chinese
_OR = r"(?:or|ou|o|oder|\u6216|\u6216\u8005)"
_AND = r"(?:and|et|y|und|\u548c|\u4ee5\u53ca)"
_MAYBE = r"(?:possibly\s++|maybe\s++|perhaps\s++|peut-\u00eatre\s++|vielleicht\s++)?"
_JOIN = re.compile(rf"\s*+(?:[,;/]\s*+)?\(?(?:(?:{_AND}|{_OR})(?:/or)?\s*+{_MAYBE})?", re.I)
_JOIN_OR = re.compile(rf"\s*+(?:,\s*+)?\(?{_OR}\s*+{_MAYBE}", re.I)  # "$-44$ (or possibly $44$)"
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}\s+[A-Za-z]{2,}")  # two words in a row, not commands
_REASON = re.compile(
    r",?\s+(?:because|since|as|which|so|for|when|where|given|by|from|after)\s.*", re.S | re.I
)
_NEXT_LABEL = re.compile(r"\s*[A-Za-z](?:_\{?\w{1,3}\}?)?\s*=\s*$")  # "and y_2 =" before the next box
# A math span stated to be the answer: "Therefore $x \geq 5$ is the solution.", "$7$ is our answer".
_MATH_IS_ANSWER = re.compile(
    r"(?:is|are)\s++(?:the|our|my)\s++(?:final\s++|correct\s++)?(?:answer|solution)s?\b", re.I
)
# An alternative offered after the answer, the value right after the cue: "Alternatively, it could be $79$."
_ALTERNATIVE = re.compile(
    r"\b(?:alternatively,?\s*(?:the answer |it |the value )?(?:is|could be|might be|may be|would be)"
    r"|or (?:possibly|maybe|perhaps)|(?:it )?(?:could|might|may) also be"
    r"|another possible (?:answer|value) is|it might be)\s*+",
    re.I,
)
_VALUE_START = re.compile(r"\$|\\\(|\\boxed|-?\d")
_NUMBER_OR_BEFORE = re.compile(
    r"(?<![A-Za-z])(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s*+,?\s*+(?:or|ou|oder|\u6216)\s*+(?:maybe\s+|possibly\s+|perhaps\s+)?$",
    re.I,
)
_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "</s>")
_UNIT_TAIL = re.compile(r"[A-Za-z]+(?:\^?\d)?(?: [A-Za-z]+)?")  # "cm", "square units"
_NUMBER = re.compile(r"(?<![A-Za-z])(?:-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+)")  # not inside a word: AZ2A


@dataclass(frozen=True, slots=True)
class Extraction:
    text: str  # the answer as written (LaTeX or plain text)
    rule: str  # answer_tag, boxed, boxes_joined, answer_phrase, math_is_answer, gsm8k, hedged_alternative,
    # last_math, last_math_hedged, whole, last_number, last_number_hedged


def _last_boxed(text: str) -> tuple[str, int] | None:
    """The content of the last ``\\boxed{...}`` or ``\\fbox{...}`` and where it starts."""
    end = len(text)
    for _ in range(3):
        at = max(text.rfind("\\boxed", 0, end), text.rfind("\\fbox", 0, end))
        if at < 0:
            return None
        j = at + (6 if text.startswith("\\boxed", at) else 5)
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            close = matching_brace(text, j, limit=_BOX_SCAN)
            if close >= 0:
                return text[j + 1 : close], at
        elif j < len(text) and text[j] not in "\\$":  # \boxed 5
            m = re.match(r"[^\s$]+", text[j : j + 200])
            if m is not None:
                return m.group(), at
        end = at  # unbalanced: try an earlier one
    return None


_WRAPPED_WORD = re.compile(r"\\(?:text|mbox|textrm|textnormal)\s*\{([^{}]*)\}|\$|\\[()]|\\q?quad|\\[,;]")


def _joined(between: str, join: re.Pattern[str], adjacent: bool = False) -> bool:
    """Is the text between two answers a connective that makes them one answer of several values:
    ``,``, ``and``, ``or``, ``\\text{ or }``, ``$ or $``, ``and $y_2 =`` (with `adjacent`, nothing but
    spaces on one line too: ``\\boxed{1}\\boxed{2}``)?"""
    words = _WRAPPED_WORD.sub(lambda m: m.group(1) or " ", between)
    if not words.strip():
        return adjacent and "\n" not in words
    words = _NEXT_LABEL.sub("", words)
    return join.fullmatch(words) is not None


def _boxes_before(text: str, at: int) -> list[str]:
    """The boxes joined to the box at `at` by a connective, nearest last: ``\\boxed{80} or \\boxed{79}``."""
    found: list[str] = []
    for _ in range(16):  # OlympiadBench lists up to 16 answers (as `_all_boxes` reads a reference's)
        prev = max(text.rfind("\\boxed", max(0, at - 2000), at), text.rfind("\\fbox", max(0, at - 2000), at))
        if prev < 0:
            break
        j = text.find("{", prev, prev + 8)
        close = matching_brace(text, j, limit=at - j) if j >= 0 else -1
        if close < 0 or not _joined(text[close + 1 : at], _JOIN, adjacent=True):
            break
        found.append(text[j + 1 : close].strip())
        at = prev
    return found[::-1]


def _find_unescaped(s: str, delim: str, start: int) -> int:
    """The next `delim` at or after `start` that no backslash escapes (``\\$`` is a dollar sign)."""
    while True:
        at = s.find(delim, start)
        if at <= 0 or s[at - 1] != "\\" or delim[0] == "\\":
            return at
        start = at + 1


def _spans(s: str) -> list[tuple[int, int, str]]:
    """The math spans of `s` as (start, end, content), left to right; linear time."""
    out: list[tuple[int, int, str]] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            nxt = s[i + 1 : i + 2]
            if nxt in ("(", "["):
                close = s.find("\\)" if nxt == "(" else "\\]", i + 2)
                if close < 0:
                    return out
                out.append((i, close + 2, s[i + 2 : close]))
                i = close + 2
            else:
                i += 2
        elif c == "$":
            delim = "$$" if s.startswith("$$", i) else "$"
            close = _find_unescaped(s, delim, i + len(delim))
            if close < 0:
                return out
            out.append((i, close + len(delim), s[i + len(delim) : close]))
            i = close + len(delim)
        else:
            i += 1
    return out


def _math_at_start(s: str) -> str | None:
    """The content of a math span that `s` starts with, if any."""
    if not s.startswith(("$", "\\(", "\\[")):
        return None
    spans = _spans(s[:2000])
    return spans[0][2] if spans and spans[0][0] == 0 and spans[0][2].strip() else None


def _sentence(s: str) -> str:
    """`s` up to the end of its sentence (a full stop before a space or the end, or a line break), not
    counting those inside braces or a ``\\begin...\\end`` environment."""
    depth = env = i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            if s.startswith("\\begin{", i):
                env += 1
            elif s.startswith("\\end{", i):
                env -= 1
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif (
            depth <= 0 and env <= 0 and (c in "\n\u3002" or (c == "." and (i + 1 == n or s[i + 1].isspace())))
        ):
            break
        i += 1
    return s[:i]


def _plain(s: str) -> str:
    """Prose with its math delimiters removed (the math kept): ``$80$ or $79$`` -> ``80 or 79``."""
    return _UNESCAPED_DOLLAR.sub("", s).replace("\\(", "").replace("\\)", "").strip()


def _chain(s: str, first: tuple[int, int, str], spans: list[tuple[int, int, str]]) -> tuple[str, int]:
    """The value in `first` and the values that follow it joined by "," / "and" / "or" (a list of answers,
    or a hedge between candidates, which `verify` then judges as a list): (joined text, end)."""
    parts, end = [first[2].strip()], first[1]
    for span in spans:
        if span[0] < end:
            continue
        between = s[end : span[0]]
        if not between.strip() or _JOIN.fullmatch(between) is None:
            break
        parts.append(span[2].strip())
        end = span[1]
    return ", ".join(p for p in parts if p), end


def _after_phrase(rest: str) -> str:
    """The answer in the text after "the answer is": the rest of the sentence, after a lead-in such as
    "The largest $n$ is" when there is one; a math span (or several joined by "or"/"and"/",") that starts
    it, without the prose that follows."""
    rest = rest.lstrip(" \t*:\uff1a")
    if rest.startswith("\n"):
        rest = rest.lstrip()
    sentence = _sentence(rest[:1000])
    if sentence.endswith("I hope it is correct"):
        sentence = sentence[: -len("I hope it is correct")]
    spans = _spans(sentence)
    if not (spans and spans[0][0] == 0):  # the first lead-in outside math: "The largest $n$ is 34"
        pos = 0
        for a, b, _ in [*spans, (len(sentence), len(sentence), "")]:
            m = _LEAD_IN.search(sentence, pos, a)
            if m is not None:
                sentence = sentence[m.end() :]
                spans = _spans(sentence)
                break
            pos = b
    if spans and spans[0][0] == 0 and spans[0][2].strip():
        joined, end = _chain(sentence, spans[0], spans[1:])
        tail = _plain(sentence[end:]).rstrip(".*").strip()
        if tail and _UNIT_TAIL.fullmatch(tail):  # $5$ cm
            return f"{joined} {tail}"
        return joined
    answer = _REASON.sub("", _plain(sentence)).rstrip(".*").strip()
    if _PROSE.search(answer) is not None:  # "Jane started growing Sphere 3 hours ago": its one number
        numbers = _NUMBER.findall(answer)
        if len(numbers) == 1:
            return numbers[0].rstrip(",")
    return answer


def _strong(text: str, all_boxes: bool = False) -> Extraction | None:
    """The last box, unless an answer phrase with a math value comes after it; else the later of the
    last answer phrase, the last "$...$ is the answer" and the last GSM8K line."""
    boxed = _last_boxed(text)
    if boxed is not None:  # the last box, as MATH keys are made, with the boxes joined to it by "or"/"and"
        # an answer phrase after the box (only the text after it is searched): "\boxed{255} ... The final
        # answer is $10,455$."
        later = _strong_phrases(text[boxed[1] + len(boxed[0]) :])
        if later is not None:
            value = later[1].text
            if parse(value).kind not in _NOT_MATH and _PROSE.search(value) is None:
                return later[1]
        before = _all_boxes(text, boxed[1]) if all_boxes else _boxes_before(text, boxed[1])
        joined = [b for b in before if b != boxed[0].strip()] + [boxed[0].strip()]
        return Extraction(", ".join(joined), "boxed" if len(joined) == 1 else "boxes_joined")
    phrase = _strong_phrases(text)
    return phrase[1] if phrase is not None else None


_NOT_MATH = ("text", "unparsed", "empty")


def _all_boxes(text: str, at: int) -> list[str]:
    """Every box before the one at `at` (a reference's boxes are all its answer), in order."""
    found: list[str] = []
    pos = 0
    while len(found) < 16:
        start = min(
            (i for i in (text.find("\\boxed", pos, at), text.find("\\fbox", pos, at)) if i >= 0), default=-1
        )
        if start < 0:
            break
        j = text.find("{", start, start + 8)
        close = matching_brace(text, j, limit=_BOX_SCAN) if j >= 0 else -1
        if close < 0 or close > at:
            break
        box = text[j + 1 : close].strip()
        if box not in found:  # the same answer boxed twice is one answer
            found.append(box)
        pos = close + 1
    return found


def _strong_phrases(text: str) -> tuple[int, Extraction] | None:
    """The later of the last answer phrase, the last "$...$ is the answer" and the last GSM8K line."""
    found: list[tuple[int, Extraction]] = []
    if "answer" in text or "solution" in text:
        last = None
        for last in _MATH_IS_ANSWER.finditer(text, max(0, len(text) - _TAIL)):  # noqa: B007
            pass
        if last is not None:
            lo = max(0, last.start() - 1000)
            lo = max(lo, text.find("\n", lo, last.start()) + 1)  # from a line start: $ pairs stay paired
            before = text[lo : last.start()].rstrip()
            spans = _spans(before)
            if spans and spans[-1][1] == len(before) and spans[-1][2].strip():
                found.append((lo + spans[-1][0], Extraction(spans[-1][2].strip(), "math_is_answer")))
    if any(h in text for h in _PHRASE_HINTS):
        last = None
        for last in _PHRASE.finditer(text):  # noqa: B007
            pass
        if last is not None:
            answer = _after_phrase(text[last.end() :])
            if answer:
                found.append((last.start(), Extraction(answer, "answer_phrase")))
    if "####" in text:
        at = text.rfind("####")
        m = _GSM8K.match(text, at)
        if m is not None and m.group(1).strip():
            found.append((at, Extraction(m.group(1).strip().rstrip("."), "gsm8k")))
    return max(found, key=lambda f: f[0]) if found else None


def extract_answer(text: str, *, last_number: bool = True, all_boxes: bool = False) -> Extraction | None:
    """The final answer in `text`, or None when there is none. Text after a chat template's end or
    turn marker (``<|im_start|>``, ``<|endoftext|>``, ...) is not the model's answer and is dropped.
    With `all_boxes` (a reference's own answer), every box is part of the answer."""
    if "<|" in text or "</s>" in text:
        cut = min((i for i in (text.find(t, 1) for t in _SPECIAL_TOKENS) if i > 0), default=-1)
        if cut > 0:
            text = text[:cut]
    close = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, close) if close > 0 else -1
    if start >= 0:
        inner = text[start + len("<answer>") : close].strip()
        sub = _strong(inner, all_boxes)
        if sub is not None:
            return Extraction(sub.text, f"answer_tag+{sub.rule}")
        return Extraction(inner, "answer_tag") if inner else None
    strong = _strong(text, all_boxes)
    if strong is not None:
        return strong if all_boxes else _with_alternative(text, strong)
    stripped = text.strip()
    if not stripped:
        return None
    tail = stripped[-_TAIL:]
    if len(stripped) > _TAIL and "\n" in tail:  # start at a line, not inside a $...$ pair
        tail = tail[tail.index("\n") + 1 :]
    spans = _spans(tail)
    if spans and not tail[spans[-1][1] :].strip(" .!,;\n"):
        content = spans[-1][2].strip()
        hedged = [content]  # "$n = 80$ or $n = 79$": a hedge between candidates, judged as a list
        for k in range(len(spans) - 1, max(0, len(spans) - 8), -1):
            if not _joined(tail[spans[k - 1][1] : spans[k][0]], _JOIN_OR):
                break
            hedged.insert(0, spans[k - 1][2].strip())
        if len(hedged) > 1:
            return Extraction(", ".join(hedged), "last_math_hedged")
        if content:
            return Extraction(content, "last_math")
    if len(stripped) <= SHORT_ANSWER_CHARS:
        candidate = stripped.rstrip(".")
        if "$" in candidate:  # "$28$ percent"
            candidate = _plain(candidate).rstrip(".")
        parsed = parse(candidate)
        kind = parsed.kind
        prose = kind != "text" and _PROSE.search(parsed.text) is not None  # "the value is 9": not math
        if (
            kind not in ("unparsed", "empty")
            and not prose
            and (kind != "text" or candidate.count(" ") < _MAX_WORDS)
        ):
            return Extraction(candidate, "whole")
    if last_number:
        number = None
        for number in _NUMBER.finditer(tail):  # noqa: B007
            pass
        if number is not None:
            value = number.group().rstrip(",")
            before = _NUMBER_OR_BEFORE.search(tail, max(0, number.start() - 80), number.start())
            if before is not None:  # "80 or maybe 79": a hedge between numbers
                return Extraction(f"{before.group(1).rstrip(',')}, {value}", "last_number_hedged")
            return Extraction(value, "last_number")
    return None


def _with_alternative(text: str, found: Extraction) -> Extraction:
    """`found`, joined with an alternative the text offers after it ("... is $80$. Alternatively, it could
    be $79$."): a hedge, judged as a list."""
    at = text.rfind(found.text)
    if at < 0:
        return found
    after = text[at + len(found.text) : at + len(found.text) + 400]
    cue = _ALTERNATIVE.search(after)
    if cue is None:
        return found
    rest = _sentence(after[cue.end() :])
    spans = _spans(rest)
    value = spans[0][2].strip() if spans else None
    if value is None:
        box = _last_boxed(rest)
        number = _NUMBER.search(rest)
        value = box[0].strip() if box else (number.group().rstrip(",") if number else None)
    return Extraction(f"{found.text}, {value}", "hedged_alternative") if value else found
