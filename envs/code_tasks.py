"""Small Python coding tasks on lists and strings, with tests computed by a trusted reference.

Each family draws its parameters (a constant, a variant, the function name) and returns a `Task`: the
reference as source text (the row's answer) and as a Python function (run here, on generated inputs, to
compute the expected values of the tests). The two are written side by side; the tests run the source
against the asserts, so a mismatch between them fails there.

The `Task` type, the random draw helpers and the level-1 families live in `code_families`; the level-2
families, the `FAMILIES` registry and the row builder are here.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from .code_families import (
    Args,
    Task,
    caesar,
    capitalize,
    char_freq,
    chunks,
    clamp,
    count_chars,
    dedupe,
    flatten,
    ints,
    kth_distinct,
    palindrome,
    rle,
    rotate,
    running,
    split_join,
    sum_where,
    window,
    words,
)

__all__ = ["Task", "FAMILIES", "code_functions"]


# -- level 2 families


Step = Callable[[list[int]], list[int]]


def _pipeline_step(rng: random.Random, src: str) -> tuple[str, str, Step]:
    """One list step reading the list `src`: (source line, description, function)."""
    k, t = rng.randint(2, 5), rng.randint(-3, 8)
    kind = rng.choice(["filter", "filter", "map", "map", "order"])
    if kind == "filter":
        filters: list[tuple[str, str, Callable[[int], bool]]] = [
            (f"x > {t}", f"keeps the elements greater than {t}", lambda x: x > t),
            (f"x < {t}", f"keeps the elements less than {t}", lambda x: x < t),
            ("x % 2 == 0", "keeps the even elements", lambda x: x % 2 == 0),
            ("x % 2 != 0", "keeps the odd elements", lambda x: x % 2 != 0),
            (f"x % {k} == 0", f"keeps the elements divisible by {k}", lambda x: x % k == 0),
        ]
        cond, desc, pred = rng.choice(filters)
        return f"    ys = [x for x in {src} if {cond}]", desc, lambda ys: [x for x in ys if pred(x)]
    if kind == "map":
        maps: list[tuple[str, str, Callable[[int], int]]] = [
            (f"x * {k}", f"multiplies each element by {k}", lambda x: x * k),
            (f"x + {k}", f"adds {k} to each element", lambda x: x + k),
            (f"x - {k}", f"subtracts {k} from each element", lambda x: x - k),
            ("x * x", "squares each element", lambda x: x * x),
            ("abs(x)", "replaces each element by its absolute value", abs),
        ]
        expr, desc, f = rng.choice(maps)
        return f"    ys = [{expr} for x in {src}]", desc, lambda ys: [f(x) for x in ys]
    if rng.random() < 0.5:
        return f"    ys = sorted({src})", "sorts the elements in increasing order", sorted
    return f"    ys = {src}[::-1]", "reverses the order of the elements", lambda ys: ys[::-1]


def _pipeline(rng: random.Random, steps: int) -> Task:
    """`steps` list steps (filter, map, sort, reverse) followed by a reduction."""
    lines, descs, fns = zip(
        *(_pipeline_step(rng, "xs" if n == 0 else "ys") for n in range(steps)), strict=True
    )
    finals: list[tuple[str, str, str, Callable[[list[int]], Any]]] = [
        ("sum(ys)", "returns their sum", "int", sum),
        ("len(ys)", "returns how many elements remain", "int", len),
        ("ys", "returns the resulting list", "list[int]", lambda ys: ys),
        (
            "max(ys, default=0)",
            "returns the largest of them (0 when none remain)",
            "int",
            lambda ys: max(ys, default=0),
        ),
    ]
    final, fdesc, returns, ffn = rng.choice(finals)

    def ref(xs: list[int]) -> Any:
        ys = xs
        for fn in fns:
            ys = fn(ys)
        return ffn(ys)

    return Task(
        rng.choice(["transform", "process", "pipeline", "crunch"]),
        "xs: list[int]",
        returns,
        "takes `xs`, " + ", then ".join(descs) + f", and {fdesc}",
        "\n".join([*lines, f"    return {final}"]) + "\n",
        ref,
        lambda r: (ints(r, -10, 15, 9),),
        (([],),),
    )


def _balanced(rng: random.Random) -> Task:
    kinds = rng.choice(["()", "()[]", "()[]{}", "[]{}", "()<>"])
    opens, closes = kinds[0::2], kinds[1::2]
    pairs = dict(zip(closes, opens, strict=True))

    def ref(s: str) -> bool:
        stack: list[str] = []
        for c in s:
            if c in opens:
                stack.append(c)
            elif c in pairs and (not stack or stack.pop() != pairs[c]):
                return False
        return not stack

    def draw(r: random.Random) -> Args:
        out = ""
        for _ in range(r.randint(1, 4)):
            i = r.randrange(len(opens))
            inner = r.choice(["", "a", "1", opens[i - 1] + closes[i - 1]])
            out += opens[i] + inner + closes[i]
        chars = list(out)
        if r.random() < 0.5:  # break it: drop, swap or add a bracket
            j = r.randrange(len(chars))
            r.choice(
                [lambda: chars.pop(j), lambda: chars.insert(j, r.choice(kinds)), lambda: chars.reverse()]
            )()
        return ("".join(chars),)

    body = (
        f"    pairs = {pairs!r}\n    stack: list[str] = []\n    for c in s:\n        if c in {opens!r}:\n"
        "            stack.append(c)\n        elif c in pairs:\n            if not stack or stack.pop() != pairs[c]:\n"
        "                return False\n    return not stack\n"
    )
    listed = " ".join(kinds[i : i + 2] for i in range(0, len(kinds), 2))
    return Task(
        rng.choice(["is_balanced", "brackets_ok", "well_nested"]),
        "s: str",
        "bool",
        f"returns True if the brackets {listed} in `s` are balanced and properly nested (every other character "
        "is ignored), else False",
        body,
        ref,
        draw,
        (("",),),
    )


def _pair_sums(rng: random.Random) -> Task:
    t = rng.randint(-5, 15)
    return Task(
        rng.choice(["count_pairs", "pairs_with_sum", "two_sum_count"]),
        "xs: list[int]",
        "int",
        f"returns the number of index pairs (i, j) with i < j and xs[i] + xs[j] == {t}",
        f"    return sum(1 for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[i] + xs[j] == {t})\n",
        lambda xs: sum(1 for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[i] + xs[j] == t),
        lambda r: (ints(r, -5, 12, 9),),
        (([],),),
    )


def _longest_run(rng: random.Random) -> Task:
    t = rng.randint(1, 3)
    conds: list[tuple[str, str, Callable[[int, int], bool]]] = [
        ("xs[i - 1] == x", "equals the one before it", lambda a, b: a == b),
        ("xs[i - 1] < x", "is greater than the one before it", lambda a, b: a < b),
        ("xs[i - 1] <= x", "is at least the one before it", lambda a, b: a <= b),
        ("xs[i - 1] > x", "is less than the one before it", lambda a, b: a > b),
        (
            f"abs(xs[i - 1] - x) <= {t}",
            f"differs from the one before it by at most {t}",
            lambda a, b: abs(a - b) <= t,
        ),
    ]
    cond, desc, pred = rng.choice(conds)

    def ref(xs: list[int]) -> int:
        best = run = 0
        for i, x in enumerate(xs):
            run = run + 1 if i > 0 and pred(xs[i - 1], x) else 1
            best = max(best, run)
        return best

    return Task(
        rng.choice(["longest_run", "longest_streak", "max_run_length"]),
        "xs: list[int]",
        "int",
        "returns the length of the longest stretch of consecutive elements of `xs` in which each element "
        f"after the stretch's first {desc} (0 for an empty list)",
        "    best = run = 0\n    for i, x in enumerate(xs):\n"
        f"        run = run + 1 if i > 0 and {cond} else 1\n        best = max(best, run)\n    return best\n",
        ref,
        lambda r: (ints(r, 0, 5, 10),),
        (([],),),
    )


def _vowels(w: str) -> int:
    return sum(c in "aeiou" for c in w.lower())


def _group_words(rng: random.Random) -> Task:
    keys: list[tuple[str, str, str, Callable[[str], Any]]] = [
        ("len(w)", "their length", "int", len),
        ("w[0].lower()", "their first letter, lower-cased", "str", lambda w: w[0].lower()),
        ("w[-1].lower()", "their last letter, lower-cased", "str", lambda w: w[-1].lower()),
        (
            "sum(c in 'aeiou' for c in w.lower())",
            "their number of vowels (a, e, i, o, u in either case)",
            "int",
            _vowels,
        ),
    ]
    key, what, ktype, fn = rng.choice(keys)

    def ref(words: list[str]) -> dict[Any, list[str]]:
        groups: dict[Any, list[str]] = {}
        for w in words:
            groups.setdefault(fn(w), []).append(w)
        return groups

    return Task(
        rng.choice(["group_words", "bucket_words", "index_words"]),
        "words: list[str]",
        f"dict[{ktype}, list[str]]",
        f"groups the (non-empty) strings of `words` by {what}: it returns a dict mapping each key to the list of "
        "words with that key, in their original order",
        f"    groups: dict[{ktype}, list[str]] = {{}}\n    for w in words:\n"
        f"        groups.setdefault({key}, []).append(w)\n    return groups\n",
        ref,
        lambda r: (words(r, 7),),
        (([],),),
    )


def _interleave(rng: random.Random) -> Task:
    b_first, k = rng.random() < 0.5, rng.randint(1, 3)
    first, second = ("b", "a") if b_first else ("a", "b")

    def ref(a: list[int], b: list[int]) -> list[int]:
        x, y = (b, a) if b_first else (a, b)
        out = []
        for i in range(0, max(len(x), len(y)), k):
            out += x[i : i + k] + y[i : i + k]
        return out

    return Task(
        rng.choice(["interleave", "zip_merge", "alternate"]),
        "a: list[int], b: list[int]",
        "list[int]",
        f"returns the elements of `a` and `b` taking {k} at a time from each in turn: `{first}[0:{k}]`, then "
        f"`{second}[0:{k}]`, then `{first}[{k}:{2 * k}]`, and so on; when one list runs out the rest of the "
        "other follows",
        f"    out = []\n    for i in range(0, max(len({first}), len({second})), {k}):\n"
        f"        out += {first}[i : i + {k}] + {second}[i : i + {k}]\n    return out\n",
        ref,
        lambda r: (ints(r, 0, 9, 5), ints(r, 10, 30, 5)),
        (([], []), ([1, 2], [])),
    )


FAMILIES: dict[str, tuple[int, Callable[[random.Random], Task]]] = {
    "sum_where": (1, sum_where),
    "count_chars": (1, count_chars),
    "split_join": (1, split_join),
    "running": (1, running),
    "dedupe": (1, dedupe),
    "rotate": (1, rotate),
    "palindrome": (1, palindrome),
    "kth_distinct": (1, kth_distinct),
    "flatten": (1, flatten),
    "char_freq": (1, char_freq),
    "clamp": (1, clamp),
    "capitalize": (1, capitalize),
    "caesar": (1, caesar),
    "chunks": (1, chunks),
    "window": (1, window),
    "rle": (1, rle),
    "balanced": (2, _balanced),
    "pair_sums": (2, _pair_sums),
    "longest_run": (2, _longest_run),
    "group_words": (2, _group_words),
    "interleave": (2, _interleave),
}
"""name -> (the lowest difficulty that uses it, draw a task). From difficulty 2 on, `pipeline` tasks of
`difficulty` composed steps are added."""


def _call(name: str, args: Args) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def _row(task: Task, rng: random.Random) -> dict[str, Any] | None:
    """A row with 4-5 tests and one example, or None when the draws give too few distinct inputs or values.

    The tests are the edge cases, then inputs chosen so that the expected values vary as much as they can
    (a function returning a constant fails most of them); the example is another input."""
    want = rng.randint(4, 5)
    inputs: dict[str, Args] = {repr(a): a for a in task.edge}
    for _ in range(30):
        args = task.draw(rng)
        inputs.setdefault(repr(args), args)
    pool = [(a, task.ref(*copy.deepcopy(a))) for a in inputs.values()]
    tested, pool = pool[: len(task.edge)], pool[len(task.edge) :]
    if len(tested) + len(pool) < want + 1:
        return None
    counts = Counter(repr(v) for _, v in tested)
    while len(tested) < want:
        best = min(range(len(pool)), key=lambda i: counts[repr(pool[i][1])])  # the least common value
        tested.append(pool.pop(best))
        counts[repr(tested[-1][1])] += 1
    if len(counts) < 2:
        return None  # a degenerate task (e.g. "keep the odd elements, then the even ones"): draw another
    edge_values = {repr(v) for _, v in tested[: len(task.edge)]}
    pick = next((i for i, (_, v) in enumerate(pool) if repr(v) not in edge_values), 0)
    shown, value_shown = pool[pick]  # the example: preferably a value no edge case has
    tests = [f"assert {_call(task.name, a)} == {v!r}" for a, v in tested]
    question = (
        f"Write a Python function `{task.signature}` that {task.does}.\n\n"
        f"Example: `{_call(task.name, shown)}` returns `{value_shown!r}`."
    )
    return {
        "id": question,
        "question": question,
        "entry_point": task.name,
        "tests": tests,
        "answer": task.source,
        "solution": f"```python\n{task.source}```",
    }


def code_functions(*, size: int, seed: int, difficulty: int = 1) -> Iterator[dict[str, Any]]:
    """Python function tasks on lists and strings from the `FAMILIES` (each with drawn constants, variants
    and names), tests computed by a reference. `difficulty` 1: the basic families; 2: more families and
    two-step pipelines (filter/map/sort, then a reduction); 3: three-step pipelines."""
    if difficulty not in (1, 2, 3):
        raise ValueError(f"code_functions difficulty must be 1, 2 or 3, got {difficulty!r}")
    rng = random.Random(seed)
    names = [n for n, (level, _) in FAMILIES.items() if level <= difficulty]
    if difficulty >= 2:
        names += ["pipeline"] * (len(names) // 3)  # composed tasks: a quarter of the rows
    n = 0
    while n < size:
        family = rng.choice(names)
        task = _pipeline(rng, difficulty) if family == "pipeline" else FAMILIES[family][1](rng)
        row = _row(task, rng)
        if row is not None:
            n += 1
            yield row
