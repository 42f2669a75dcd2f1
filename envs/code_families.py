"""The `Task` type, the random draw helpers and the level-1 code task families.

Split out of `code_tasks` (which holds the level-2 families, the `FAMILIES` registry and the row builder,
and imports from here, never the other way round).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Args = tuple[Any, ...]


@dataclass(frozen=True)
class Task:
    """One coding problem: `def name(params) -> returns` that `does` (a phrase after "that ...")."""

    name: str
    params: str
    returns: str
    does: str
    body: str  # the reference's body, indented by 4 spaces
    ref: Callable[..., Any]  # the same reference as a function, to compute the expected values
    draw: Callable[[random.Random], Args]  # one random argument tuple
    edge: tuple[Args, ...] = ()  # argument tuples always tested (empty input, ...)

    @property
    def signature(self) -> str:
        return f"{self.name}({self.params}) -> {self.returns}"

    @property
    def source(self) -> str:
        return f"def {self.signature}:\n{self.body}"


_WORDS = ["apple", "river", "stone", "level", "tree", "moon", "sun", "noon", "cat", "dog", "bird", "kayak",
          "green", "data", "code", "idea", "queue", "radar", "book", "light", "ocean", "zebra", "echo", "abba",
          "wow", "yes", "night", "pencil", "house", "eye"]  # fmt: skip


def ints(rng: random.Random, lo: int = -10, hi: int = 20, n: int = 8) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(1, n))]


def words(rng: random.Random, n: int = 5) -> list[str]:
    return [_case(rng, rng.choice(_WORDS)) for _ in range(rng.randint(1, n))]


def _case(rng: random.Random, w: str) -> str:
    r = rng.random()
    return w.upper() if r < 0.15 else (w.capitalize() if r < 0.4 else w)


def _text(rng: random.Random) -> str:
    return " ".join(words(rng))


def _ordinal(k: int) -> str:
    return {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}[k]


# -- level 1 families


def sum_where(rng: random.Random) -> Task:
    k, t = rng.randint(3, 9), rng.randint(-5, 12)
    cond, desc, pred = rng.choice(
        [
            ("x % 2 == 0", "even", lambda x: x % 2 == 0),
            ("x % 2 != 0", "odd", lambda x: x % 2 != 0),
            (f"x % {k} == 0", f"divisible by {k}", lambda x: x % k == 0),
            (f"x > {t}", f"greater than {t}", lambda x: x > t),
            (f"x < {t}", f"less than {t}", lambda x: x < t),
        ]
    )
    return Task(
        rng.choice(["sum_selected", "sum_where", "total_matching", "filtered_sum"]),
        "xs: list[int]",
        "int",
        f"returns the sum of the elements of `xs` that are {desc} (0 when there are none)",
        f"    return sum(x for x in xs if {cond})\n",
        lambda xs: sum(x for x in xs if pred(x)),
        lambda r: (ints(r),),
        (([],),),
    )


def count_chars(rng: random.Random) -> Task:
    chars = (
        "aeiou"
        if rng.random() < 0.3
        else "".join(sorted(rng.sample(string.ascii_lowercase, rng.randint(2, 5))))
    )
    fold = rng.random() < 0.5
    how = (
        "ignoring case (an upper-case letter counts as its lower-case form)"
        if fold
        else "case-sensitively (upper-case letters do not count)"
    )
    return Task(
        rng.choice(["count_chars", "count_letters", "letter_count", "tally_letters"]),
        "s: str",
        "int",
        f"returns how many characters of `s` are one of the letters {chars!r}, {how}",
        f"    return sum(1 for c in s{'.lower()' if fold else ''} if c in {chars!r})\n",
        lambda s: sum(1 for c in (s.lower() if fold else s) if c in chars),
        lambda r: (_text(r),),
        (("",),),
    )


_SEPS = [" ", ",", "-", "_", ";", "|", "/", ", "]


def split_join(rng: random.Random) -> Task:
    sep, joiner = rng.choice(_SEPS), rng.choice(_SEPS)
    return Task(
        rng.choice(["reverse_pieces", "flip_parts", "reverse_fields"]),
        "s: str",
        "str",
        f"splits `s` on {sep!r} (with `str.split`), reverses the order of the pieces and joins them with {joiner!r}",
        f"    return {joiner!r}.join(reversed(s.split({sep!r})))\n",
        lambda s: joiner.join(reversed(s.split(sep))),
        lambda r: (sep.join(words(r)),),
    )


def running(rng: random.Random) -> Task:
    ops: list[tuple[str, str, Callable[[int, int], int]]] = [
        ("max", "max(out[-1], x)", max),
        ("min", "min(out[-1], x)", min),
        ("sum", "out[-1] + x", lambda a, b: a + b),
        ("product", "out[-1] * x", lambda a, b: a * b),
    ]
    op, expr, fn = rng.choice(ops)

    def ref(xs: list[int]) -> list[int]:
        out: list[int] = []
        for x in xs:
            out.append(x if not out else fn(out[-1], x))
        return out

    return Task(
        rng.choice([f"running_{op}", f"prefix_{op}", f"cumulative_{op}"]),
        "xs: list[int]",
        "list[int]",
        f"returns a list of the same length whose i-th element is the {op} of `xs[0]` through `xs[i]`",
        f"    out: list[int] = []\n    for x in xs:\n        out.append(x if not out else {expr})\n    return out\n",
        ref,
        lambda r: (ints(r, -6, 9, 7) if op == "product" else ints(r),),
        (([],),),
    )


def dedupe(rng: random.Random) -> Task:
    name = rng.choice(["dedupe", "unique_in_order", "remove_duplicates", "distinct_items"])
    variant, m = rng.choice(["first", "last", "at_most", "casefold"]), rng.randint(2, 3)
    if variant == "casefold":

        def fold_ref(words: list[str]) -> list[str]:
            seen: set[str] = set()
            out = []
            for w in words:
                if w.lower() not in seen:
                    seen.add(w.lower())
                    out.append(w)
            return out

        body = (
            "    seen: set[str] = set()\n    out = []\n    for w in words:\n        if w.lower() not in seen:\n"
            "            seen.add(w.lower())\n            out.append(w)\n    return out\n"
        )
        does = (
            "returns `words` without repeats, where two words are repeats when they are equal ignoring case; "
            "it keeps the first occurrence of each word, as spelled there, in the original order"
        )
        return Task(
            name, "words: list[str]", "list[str]", does, body, fold_ref, lambda r: (words(r, 7),), (([],),)
        )
    if variant == "last":
        body = "    return [x for i, x in enumerate(xs) if x not in xs[i + 1 :]]\n"
        does = (
            "returns `xs` without repeated values, keeping only the last occurrence of each value, in order"
        )
        return Task(
            name,
            "xs: list[int]",
            "list[int]",
            does,
            body,
            lambda xs: [x for i, x in enumerate(xs) if x not in xs[i + 1 :]],
            lambda r: (ints(r, 0, 6),),
            (([],),),
        )
    keep = 1 if variant == "first" else m

    def ref(xs: list[int]) -> list[int]:
        counts: dict[int, int] = {}
        out = []
        for x in xs:
            if counts.get(x, 0) < keep:
                counts[x] = counts.get(x, 0) + 1
                out.append(x)
        return out

    body = (
        "    counts: dict[int, int] = {}\n    out = []\n    for x in xs:\n"
        f"        if counts.get(x, 0) < {keep}:\n            counts[x] = counts.get(x, 0) + 1\n"
        "            out.append(x)\n    return out\n"
    )
    does = (
        "returns `xs` without repeated values, keeping the first occurrence of each value, in the original order"
        if keep == 1
        else f"returns `xs` keeping only the first {keep} occurrences of each value (later ones are dropped), in the original order"
    )
    return Task(name, "xs: list[int]", "list[int]", does, body, ref, lambda r: (ints(r, 0, 6, 10),), (([],),))


def rotate(rng: random.Random) -> Task:
    k, left = rng.randint(1, 7), rng.random() < 0.5
    if left:
        body = f"    if not xs:\n        return []\n    k = {k} % len(xs)\n    return xs[k:] + xs[:k]\n"
        example = "[2, 3, 1]"
    else:
        body = f"    if not xs:\n        return []\n    k = {k} % len(xs)\n    return xs[len(xs) - k :] + xs[: len(xs) - k]\n"
        example = "[3, 1, 2]"

    def ref(xs: list[int]) -> list[int]:
        if not xs:
            return []
        n = k % len(xs)
        return xs[n:] + xs[:n] if left else xs[len(xs) - n :] + xs[: len(xs) - n]

    side = "left" if left else "right"
    return Task(
        rng.choice(["rotate", "rotate_list", "shift_items"]),
        "xs: list[int]",
        "list[int]",
        f"returns a new list: `xs` rotated {side} by {k} position{'s' if k > 1 else ''}, taken modulo the length (rotating "
        f"[1, 2, 3] {side} by 1 gives {example}; an empty list stays empty)",
        body,
        ref,
        lambda r: (ints(r),),
        (([],),),
    )


def palindrome(rng: random.Random) -> Task:
    c = rng.choice("bcdkqvxyz")
    keep, extra, pred = rng.choice(
        [
            ("", "", lambda ch: True),
            (" if c != ' '", " and ignoring spaces", lambda ch: ch != " "),
            (" if c.isalnum()", " and ignoring every character that is not a letter or digit", str.isalnum),
            (
                f" if c.lower() != {c!r}",
                f" and ignoring every letter {c!r} (either case)",
                lambda ch: ch.lower() != c,
            ),
        ]
    )

    def ref(s: str) -> bool:
        t = [ch.lower() for ch in s if pred(ch)]
        return t == t[::-1]

    def draw(r: random.Random) -> Args:
        w = "".join(r.sample(_WORDS, r.randint(1, 2)))
        s = w + r.choice(["", r.choice(string.ascii_lowercase)]) + w[::-1] if r.random() < 0.6 else w
        chars = [ch.upper() if r.random() < 0.3 else ch for ch in s]
        for _ in range(r.randint(0, 3)):
            chars.insert(r.randint(0, len(chars)), r.choice([" ", ",", "!", c, c.upper()]))
        return ("".join(chars),)

    return Task(
        rng.choice(["is_palindrome", "reads_same_backwards", "is_mirror_text"]),
        "s: str",
        "bool",
        f"returns True if `s` reads the same forwards and backwards when compared case-insensitively{extra}, "
        "else False",
        f"    t = [c.lower() for c in s{keep}]\n    return t == t[::-1]\n",
        ref,
        draw,
        (("",),),
    )


def kth_distinct(rng: random.Random) -> Task:
    k, largest = rng.randint(2, 4), rng.random() < 0.5
    word = "largest" if largest else "smallest"
    return Task(
        rng.choice([f"{_ordinal(k)}_{word}", "nth_distinct", "pick_distinct", "rank_value"]),
        "xs: list[int]",
        "int | None",
        f"returns the {_ordinal(k)} {word} distinct value in `xs` (equal values count once), or None when "
        f"`xs` has fewer than {k} distinct values",
        f"    values = sorted(set(xs){', reverse=True' if largest else ''})\n"
        f"    return values[{k - 1}] if len(values) >= {k} else None\n",
        lambda xs: sorted(set(xs), reverse=largest)[k - 1] if len(set(xs)) >= k else None,
        lambda r: (ints(r, -5, 10, 9),),
        (([],), ([3, 3, 3],)),
    )


def flatten(rng: random.Random) -> Task:
    t = rng.randint(1, 8)
    posts: list[tuple[str, str, Callable[[list[int]], list[int]]]] = [
        ("out", "", lambda out: out),
        ("sorted(out)", ", sorted in increasing order", sorted),
        ("out[::-1]", ", in reverse order", lambda out: out[::-1]),
        (
            "list(dict.fromkeys(out))",
            ", keeping only the first occurrence of each value",
            lambda out: list(dict.fromkeys(out)),
        ),
        (
            f"[x for x in out if x >= {t}]",
            f", keeping only the values of at least {t}",
            lambda out: [x for x in out if x >= t],
        ),
    ]
    post, desc, fn = rng.choice(posts)
    return Task(
        rng.choice(["flatten", "flatten_once", "concat_lists"]),
        "xss: list[list[int]]",
        "list[int]",
        f"returns the elements of the inner lists of `xss` in one list (the first inner list's elements, "
        f"then the second's, and so on){desc}",
        f"    out = [x for sub in xss for x in sub]\n    return {post}\n",
        lambda xss: fn([x for sub in xss for x in sub]),
        lambda r: ([ints(r, 0, 9, 4) if r.random() < 0.8 else [] for _ in range(r.randint(1, 4))],),
        (([],),),
    )


def char_freq(rng: random.Random) -> Task:
    letters, fold, m = rng.random() < 0.5, rng.random() < 0.5, rng.randint(1, 3)
    body = "    counts: dict[str, int] = {}\n" + f"    for c in s{'.lower()' if fold else ''}:\n"
    body += "        if c.isalpha():\n    " if letters else ""
    body += "        counts[c] = counts.get(c, 0) + 1\n"
    body += (
        "    return counts\n" if m == 1 else f"    return {{c: n for c, n in counts.items() if n >= {m}}}\n"
    )

    def ref(s: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ch in s.lower() if fold else s:
            if ch.isalpha() or not letters:
                counts[ch] = counts.get(ch, 0) + 1
        return {ch: n for ch, n in counts.items() if n >= m}

    what = "letters" if letters else "characters (spaces and punctuation included)"
    case = "after lower-casing `s`" if fold else "case-sensitively"
    keep = f", keeping only those that occur at least {m} times" if m > 1 else ""
    return Task(
        rng.choice(["char_frequency", "letter_counts", "count_each_char"]),
        "s: str",
        "dict[str, int]",
        f"counts the {what} of `s` {case} and returns a dict mapping each of them to its number of "
        f"occurrences{keep}",
        body,
        ref,
        lambda r: (_text(r) + r.choice(["", "!", ", ok."]),),
        (("",),),
    )


def clamp(rng: random.Random) -> Task:
    lo, hi = rng.randint(-10, 0), rng.randint(1, 15)
    return Task(
        rng.choice(["clamp", "clamp_values", "clip_all"]),
        "xs: list[int]",
        "list[int]",
        f"returns `xs` with every value below {lo} replaced by {lo} and every value above {hi} replaced by {hi}",
        f"    return [min(max(x, {lo}), {hi}) for x in xs]\n",
        lambda xs: [min(max(x, lo), hi) for x in xs],
        lambda r: (ints(r, -20, 25),),
        (([],),),
    )


def capitalize(rng: random.Random) -> Task:
    n, sep = rng.randint(1, 5), rng.choice([" ", "-", "_", "/"])
    return Task(
        rng.choice(["capitalize_words", "title_long_words", "format_title"]),
        "s: str",
        "str",
        f"splits `s` on {sep!r}; each piece of at least {n} character{'s' if n > 1 else ''} gets its first character upper-cased "
        "and the rest lower-cased (like `str.capitalize`), every shorter piece is lower-cased; the pieces are "
        f"joined back with {sep!r}",
        f"    return {sep!r}.join(w.capitalize() if len(w) >= {n} else w.lower() for w in s.split({sep!r}))\n",
        lambda s: sep.join(w.capitalize() if len(w) >= n else w.lower() for w in s.split(sep)),
        lambda r: (sep.join(words(r)),),
        (("",),),
    )


def caesar(rng: random.Random) -> Task:
    k = rng.randint(1, 25)
    return Task(
        rng.choice(["caesar", "shift_letters", "encode_shift"]),
        "s: str",
        "str",
        f"shifts every lowercase letter a-z of `s` {k} places forward in the alphabet, wrapping around from "
        "'z' to 'a', and leaves every other character unchanged",
        f"    return ''.join(chr((ord(c) - 97 + {k}) % 26 + 97) if 'a' <= c <= 'z' else c for c in s)\n",
        lambda s: "".join(chr((ord(c) - 97 + k) % 26 + 97) if "a" <= c <= "z" else c for c in s),
        lambda r: (_text(r),),
        (("",),),
    )


def chunks(rng: random.Random) -> Task:
    k, sums = rng.randint(2, 5), rng.random() < 0.5
    if sums:
        return Task(
            rng.choice(["chunk_sums", "group_totals", "batch_sums"]),
            "xs: list[int]",
            "list[int]",
            f"cuts `xs` into consecutive groups of {k} elements (the last group may be shorter) and returns the "
            "sum of each group",
            f"    return [sum(xs[i : i + {k}]) for i in range(0, len(xs), {k})]\n",
            lambda xs: [sum(xs[i : i + k]) for i in range(0, len(xs), k)],
            lambda r: (ints(r, -5, 15, 11),),
            (([],),),
        )
    return Task(
        rng.choice(["chunk", "split_into_groups", "batch"]),
        "xs: list[int]",
        "list[list[int]]",
        f"cuts `xs` into consecutive groups of {k} elements (the last group may be shorter) and returns the "
        "list of groups",
        f"    return [xs[i : i + {k}] for i in range(0, len(xs), {k})]\n",
        lambda xs: [xs[i : i + k] for i in range(0, len(xs), k)],
        lambda r: (ints(r, -5, 15, 11),),
        (([],),),
    )


def window(rng: random.Random) -> Task:
    k = rng.randint(2, 4)
    ops: list[tuple[str, Callable[[list[int]], int]]] = [("sum", sum), ("max", max), ("min", min)]
    op, fn = rng.choice(ops)
    return Task(
        rng.choice([f"window_{op}s", f"sliding_{op}", f"moving_{op}"]),
        "xs: list[int]",
        "list[int]",
        f"returns the {op} of every window of {k} consecutive elements of `xs`, from left to right (an empty "
        f"list when `xs` has fewer than {k} elements)",
        f"    return [{op}(xs[i : i + {k}]) for i in range(len(xs) - {k} + 1)]\n",
        lambda xs: [fn(xs[i : i + k]) for i in range(len(xs) - k + 1)],
        lambda r: (ints(r, -5, 15, 9),),
        (([],),),
    )


_RUNS = (
    "    out: list[tuple[str, int]] = []\n    for c in s:\n        if out and out[-1][0] == c:\n"
    "            out[-1] = (c, out[-1][1] + 1)\n        else:\n            out.append((c, 1))\n"
)


def _runs(s: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for c in s:
        if out and out[-1][0] == c:
            out[-1] = (c, out[-1][1] + 1)
        else:
            out.append((c, 1))
    return out


def rle(rng: random.Random) -> Task:
    form = rng.choice(["pairs", "char_count", "count_char"])
    name = rng.choice(["run_lengths", "rle", "encode_runs"])
    draw: Callable[[random.Random], Args] = lambda r: (  # noqa: E731
        "".join(r.choice("abcxy") * r.randint(1, 4) for _ in range(r.randint(1, 5))),
    )
    if form == "pairs":
        does = "returns the runs of equal consecutive characters of `s` as a list of (character, run length) tuples"
        return Task(
            name, "s: str", "list[tuple[str, int]]", does, _RUNS + "    return out\n", _runs, draw, (("",),)
        )
    order = "{c}{n}" if form == "char_count" else "{n}{c}"
    first, then, example = ("character", "run length", "'a3b1'")
    if form == "count_char":
        first, then, example = ("run length", "character", "'3a1b'")
    return Task(
        name,
        "s: str",
        "str",
        f"encodes each run of equal consecutive characters of `s` as the {first} followed by the {then}, "
        f"all concatenated ('aaab' gives {example}; '' gives '')",
        _RUNS + f"    return ''.join(f'{order}' for c, n in out)\n",
        lambda s: "".join(f"{c}{n}" if form == "char_count" else f"{n}{c}" for c, n in _runs(s)),
        draw,
        (("",),),
    )
