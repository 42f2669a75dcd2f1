"""Contamination: is a held-out (benchmark) problem also a training problem?

`overlap(train_suite, heldout_suite)` compares every held-out item with the train split of another suite (or
of the same one) and reports, per held-out item, its strongest overlap with a train item:

- ``exact``: the same text after normalising case, spaces and sentence punctuation;
- ``near``: the same problem with other numbers or small edits: after every number is replaced by ``#``
  and LaTeX spacing (``\\,``, ``\\left``, ``$``, braces ...) is dropped, the two token sequences' difflib
  ratio is at least `threshold` (0.85). Candidates come from an index of 5-token shingles, so a held-out
  item is compared with a few train items, not all of them;
- ``ngram``: shares a word `n`-gram (13, as in GPT-3's decontamination) without being exact or near.

What is compared is the rendered user prompt of each item (``suite.messages(item)[-1]``): what a model is
trained and evaluated on, whatever a suite's fields are called. The system prompt, the same for every item
of a suite, is left out. `find_overlaps` and `decontamination` are the older pairwise form (exact and
n-gram only) that `rft task check` runs between a suite's own splits.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path
from typing import Any

from .registry import get_suite
from .suite import Suite, SuiteError

__all__ = [
    "KINDS",
    "Match",
    "OverlapReport",
    "OverlapIndex",
    "overlap",
    "prompt_text",
    "words",
    "ngram_words",
    "normalised",
    "similarity",
    "Overlap",
    "find_overlaps",
    "decontamination",
]

KINDS = ("exact", "near", "ngram")  # strongest first; a held-out item is reported under its strongest kind
SHINGLE = 5  # tokens per shingle of the near-duplicate index
CANDIDATES = 5  # train items scored (difflib) per held-out item: those sharing the most shingles
COMMON = 50  # a shingle in more train items than this is template text: not used to find candidates


def words(text: str) -> list[str]:
    """Lowercased words and symbols; sentence punctuation dropped, maths (``+ - * / = ^ ( )``) kept."""
    return re.findall(r"\w+|[^\w\s.,;:!?'\"`]", text.lower())


def ngram_words(text: str) -> list[str]:
    """The words n-grams are made of: lowercased, LaTeX commands, symbols and punctuation dropped
    (``$\\frac{m}{n}$`` is ``m n``), so that an n-gram is `n` words of the problem, not markup."""
    return re.findall(r"\w+", re.sub(r"\\[a-zA-Z]+", " ", text.lower()))


_LATEX_NOISE = re.compile(
    r"\\(?:[,;:! ]|q?quad\b|left\b|right\b|displaystyle\b|mathrm\b|text\b|mbox\b|[lc]?dots\b)|\\[\[\](){}]|[$~{}_]"
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def normalised(text: str) -> list[str]:
    """`words` after every number became ``#`` (a list of numbers: one ``#``) and LaTeX spacing, dots, ``$``,
    braces and ``\\left``/``\\right`` were dropped (``\\dfrac``/``\\tfrac`` read as ``\\frac``): the tokens
    that near-duplicates share."""
    text = re.sub(r"\\[dt]frac\b", r"\\frac", text)
    tokens = words(_NUMBER.sub(" # ", _LATEX_NOISE.sub(" ", text)))
    return [t for k, t in enumerate(tokens) if t != "#" or k == 0 or tokens[k - 1] != "#"]


def _shingles(tokens: Sequence[str]) -> set[tuple[str, ...]]:
    if len(tokens) <= SHINGLE:
        return {tuple(tokens)}
    return {tuple(tokens[k : k + SHINGLE]) for k in range(len(tokens) - SHINGLE + 1)}


def _grams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[k : k + n]) for k in range(len(tokens) - n + 1)}


def similarity(a: Sequence[str], b: Sequence[str]) -> float:
    """difflib's ratio of two token sequences: 2 * matched tokens / all tokens, in [0, 1]."""
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


@dataclass(frozen=True)
class Match:
    """A held-out item's strongest overlap with a train item.

    `score` is the `similarity` of the two number-normalised prompts (1.0 for exact); `shared` is one shared
    n-gram when the match was found by its n-grams, else ""; `train_matches` counts the train items with
    this kind of overlap (``near``: among the `CANDIDATES` that were scored)."""

    kind: str
    heldout_index: int
    heldout_id: str
    train_index: int
    train_id: str
    score: float
    shared: str
    train_matches: int
    heldout_text: str
    train_text: str


class OverlapIndex:
    """Train prompts indexed once (exact keys, word n-grams and, unless `near` is False, number-normalised
    shingles); `match` looks a held-out prompt up in it."""

    def __init__(
        self, texts: Sequence[str], ids: Sequence[str] | None = None, *, n: int = 13, near: bool = True
    ) -> None:
        if n < 1:
            raise ValueError(f"n (the n-gram length in words) must be >= 1, got {n}")
        self.texts = list(texts)
        self.ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(self.texts))]
        if len(self.ids) != len(self.texts):
            raise ValueError(f"{len(self.ids)} ids for {len(self.texts)} texts: give one id per text")
        self.n = n
        self.exact: dict[str, list[int]] = {}
        self.grams: dict[tuple[str, ...], list[int]] = {}
        self.norm: list[tuple[str, ...]] = []
        self.norm_exact: dict[tuple[str, ...], list[int]] = {}
        self.shingles: dict[tuple[str, ...], list[int]] = {}
        for i, text in enumerate(self.texts):
            w = words(text)
            self.exact.setdefault(" ".join(w), []).append(i)
            for g in _grams(ngram_words(text), n):
                self.grams.setdefault(g, []).append(i)
            if not near:  # exact and n-gram lookups only (`find_overlaps`)
                continue
            t = tuple(normalised(text))
            self.norm.append(t)
            self.norm_exact.setdefault(t, []).append(i)
            for s in _shingles(t):
                self.shingles.setdefault(s, []).append(i)

    def match(self, text: str, *, threshold: float = 0.85, index: int = 0, item_id: str = "") -> Match | None:
        """The strongest overlap of one held-out prompt with the train prompts, or None when it has none."""
        if len(self.norm) != len(self.texts):
            raise ValueError("this OverlapIndex was built with near=False: build it with near=True to match")
        w = words(text)
        t = tuple(normalised(text))
        if hits := self.exact.get(" ".join(w)):
            return self._match("exact", hits[0], 1.0, "", len(hits), text, index, item_id)
        if hits := self.norm_exact.get(t):
            return self._match("near", hits[0], 1.0, "", len(hits), text, index, item_id)
        near = [(similarity(t, self.norm[i]), i) for i in self._candidates(t)]
        above = sorted((-s, i) for s, i in near if s >= threshold)
        if above:
            return self._match("near", above[0][1], -above[0][0], "", len(above), text, index, item_id)
        shared: dict[int, tuple[str, ...]] = {}
        count: Counter[int] = Counter()
        for g in sorted(_grams(ngram_words(text), self.n)):
            for i in self.grams.get(g, ()):
                shared.setdefault(i, g)
                count[i] += 1
        if not count:
            return None
        best = max(count, key=lambda i: (count[i], -i))
        score = similarity(
            t, self.norm[best]
        )  # >= threshold: a near duplicate the shingles did not rank first
        kind = "near" if score >= threshold else "ngram"
        return self._match(kind, best, score, " ".join(shared[best]), len(count), text, index, item_id)

    def _candidates(self, t: tuple[str, ...]) -> list[int]:
        """The train items sharing the most distinctive shingles with `t` (a shingle in more than `COMMON`
        train items is template text; when every shingle is, the rarest one's items are used)."""
        posted = [p for s in _shingles(t) if (p := self.shingles.get(s))]
        if not posted:
            return []
        rare = [p for p in posted if len(p) <= COMMON] or [min(posted, key=len)[:COMMON]]
        shared: Counter[int] = Counter()
        for p in rare:
            shared.update(p)
        return [i for i, _ in shared.most_common(CANDIDATES)]

    def _match(self, kind: str, i: int, score: float, shared: str, count: int, text: str, index: int,
               item_id: str) -> Match:  # fmt: skip
        return Match(
            kind, index, item_id, i, self.ids[i], round(score, 4), shared, count, text, self.texts[i]
        )


@dataclass(frozen=True)
class OverlapReport:
    """The held-out items of `heldout` that overlap the train split of `train`, one `Match` each."""

    train: str  # suite ids
    heldout: str
    train_items: int
    heldout_items: int
    n: int
    threshold: float
    matches: tuple[Match, ...]
    seconds: float

    def counts(self) -> dict[str, int]:
        """Held-out items per kind of overlap (each counted under its strongest kind)."""
        return {k: sum(m.kind == k for m in self.matches) for k in KINDS}

    def found(self, kinds: Sequence[str] = KINDS) -> list[Match]:
        """The matches of the given kinds (e.g. ``["exact", "near"]``)."""
        return [m for m in self.matches if m.kind in kinds]

    @property
    def clean(self) -> bool:
        return not self.matches

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "matches": [asdict(m) for m in self.matches], "counts": self.counts()}


def prompt_text(suite: Suite, item: dict[str, Any]) -> str:
    """What `overlap` compares: the item's rendered user prompt (the system prompt is left out)."""
    return suite.messages(item)[-1]["content"]


@lru_cache(maxsize=4)
def _train_index(suite: Suite, n: int) -> OverlapIndex:
    items = suite.items("train")
    return OverlapIndex([prompt_text(suite, it) for it in items], [it["id"] for it in items], n=n)


def overlap(
    train: str | Path | Suite, heldout: str | Path | Suite, *, n: int = 13, threshold: float = 0.85
) -> OverlapReport:
    """Compare the held-out items of `heldout` (a benchmark: all of them) with the train split of `train`
    (suite ids, env ids, YAML paths or `Suite`s; the same suite twice checks its own splits). Raises
    `SuiteError` for a suite without a train split (a benchmark) or without held-out items."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold (the near-duplicate similarity) must be in (0, 1], got {threshold}")
    tr, ho = get_suite(train), get_suite(heldout)
    if tr.heldout_only:
        raise SuiteError(
            f"{tr.id} is a benchmark (split: 1): it has no train split to compare; give it as the held-out suite"
        )
    start = time.perf_counter()
    index = _train_index(tr, n)
    if not index.texts:
        raise SuiteError(f"{tr.id} has no train items (split: {tr.split:g})")
    items = ho.items("heldout")
    if not items:
        raise SuiteError(f"{ho.id} has no held-out items (split: {ho.split:g}); give a suite with split > 0")
    found = [
        m
        for j, it in enumerate(items)
        if (m := index.match(prompt_text(ho, it), threshold=threshold, index=j, item_id=str(it["id"])))
    ]
    return OverlapReport(tr.id, ho.id, len(index.texts), len(items), n, threshold, tuple(found),
                         round(time.perf_counter() - start, 3))  # fmt: skip


@dataclass(frozen=True)
class Overlap:
    train_index: int
    heldout_index: int
    kind: str  # "exact" or "ngram"


def find_overlaps(train: list[str], heldout: list[str], *, n: int = 13) -> list[Overlap]:
    """Decontamination: held-out prompts equal to a train prompt (after normalising case, spaces and
    sentence punctuation) or sharing a word `n`-gram with one. Returns every (train, heldout) pair found."""
    index = OverlapIndex(train, n=n, near=False)
    found: list[Overlap] = []
    for j, text in enumerate(heldout):
        w = words(text)
        hits = set(index.exact.get(" ".join(w), []))
        found += [Overlap(i, j, "exact") for i in sorted(hits)]
        near: set[int] = set()
        for g in _grams(ngram_words(text), n):
            near.update(index.grams.get(g, []))
        found += [Overlap(i, j, "ngram") for i in sorted(near - hits)]
    return found


def decontamination(suite: Suite, *, n: int = 13) -> list[Overlap]:
    """`find_overlaps` between the rendered user prompts of a suite's train and held-out splits (the system
    prompt is shared by every item, so it is left out)."""
    return find_overlaps(
        [prompt_text(suite, i) for i in suite.items("train")],
        [prompt_text(suite, i) for i in suite.items("heldout")],
        n=n,
    )
