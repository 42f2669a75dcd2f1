"""Task suites: a YAML file that names a data source, the prompt, the grader and the train/held-out split.

```yaml
id: arithmetic-v0                 # versioned: name-vN
source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2}, size: 2000, seed: 0}
fields: {id: id, reference: answer}
prompt:
  system: "Answer with the final number in \\boxed{}."
  user: "{{ item.question }}"
grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}"}
split: 0.1                        # held-out fraction, by a hash of each row's id
solution: "{{ item.solution }}"   # optional: a worked solution per item (SFT data, `rft.sft_dpo`)
```

Every row is an item; the reference answer is added to it as ``item.reference`` (``fields.reference``
names the row field, ``fields.reference_pattern`` optionally cuts the answer out of it, e.g. GSM8K's
``#### n``).

``source`` may also be a list of alternatives, tried in order; the rows come from the first whose data
is available (`Sources`; ``suite.source.used`` says which):

```yaml
source:
  - {type: jsonl, path: "${RFT_DATA}/mbpp.jsonl", map: mbpp}       # used when the file exists
  - {type: hf, name: google-research-datasets/mbpp, config: sanitized, split: test, map: mbpp}
```

A generator is always available, a jsonl file when it exists, an hf dataset when `datasets` loads it (an
unreachable hub is found with one request, so an offline run fails in well under a second instead of
waiting out the retries). When none is, the `SuiteError` lists each alternative, why it failed and how
to fix it. A corrupt file or a wrong hf config/split is an error, not a reason to try the next one.

Templates only look fields up, so rows whose layout varies (MBPP's two Hugging Face configs) or needs
text built from lists (the test asserts shown in the prompt) are normalised by ``source.map``: a
function from row to row, built in (`ROW_MAPS`: ``mbpp``) or ``module:function``, applied to every row
read.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from rft.graders import Grader, GraderSpecError, TemplateError, load_grader, render
from rft.graders.template import placeholders

from .episode import Episode

__all__ = [
    "SuiteError",
    "SourceUnavailable",
    "Source",
    "Sources",
    "Fields",
    "Prompt",
    "Suite",
    "load_suite",
    "data_dir",
    "split_of",
    "find_overlaps",
    "decontamination",
    "Overlap",
]

_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*-v\d+$")
_SOURCE_TYPES = ("generator", "jsonl", "hf")
SPLITS = ("train", "heldout")


class SuiteError(ValueError):
    """A task suite is invalid or its data cannot be read; the message says what to fix."""


class SourceUnavailable(SuiteError):
    """A source's data is absent here (a missing file, an unreachable hub): the next alternative is tried."""

    def __init__(self, reason: str, fix: str, message: str | None = None) -> None:
        super().__init__(message or f"{reason}; {fix}")
        self.reason = reason
        self.fix = fix


def data_dir() -> Path | None:
    """Where file-backed suites find their data: ``$RFT_DATA``, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("RFT_DATA")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return beside if beside.is_dir() else None


def _expand(path: str, base: Path | None) -> Path:
    if "${RFT_DATA}" in path or "$RFT_DATA" in path:
        d = data_dir()
        if d is None:
            raise SourceUnavailable(
                f"path {path!r} needs the data folder", "set RFT_DATA to the folder holding the files"
            )
        path = path.replace("${RFT_DATA}", str(d)).replace("$RFT_DATA", str(d))
    p = Path(os.path.expandvars(os.path.expanduser(path)))
    if not p.is_absolute() and base is not None:
        p = base / p
    return p


@dataclass(frozen=True)
class Source:
    """Where rows come from: a `generator` (`name` built-in or `module:function`), a `jsonl` file, or `hf`."""

    type: str
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    size: int = 1000
    seed: int = 0
    path: str = ""
    config: str | None = None
    split: str = "train"
    map: str | None = None  # a row function applied to every row: built in (`ROW_MAPS`) or 'module:function'
    base: Path | None = None  # the suite file's folder: relative `path`s are resolved against it

    def __post_init__(self) -> None:
        if self.type not in _SOURCE_TYPES:
            raise SuiteError(f"source.type must be one of {_SOURCE_TYPES}, got {self.type!r}")
        if self.type == "generator" and not self.name:
            raise SuiteError("a generator source needs `name`: a built-in generator or 'module:function'")
        if self.type == "generator" and self.size < 1:
            raise SuiteError(f"source.size must be >= 1, got {self.size}")
        if self.type == "jsonl" and not self.path:
            raise SuiteError("a jsonl source needs `path` (relative to the suite file, ${RFT_DATA} allowed)")
        if self.type == "hf" and not self.name:
            raise SuiteError("an hf source needs `name`: the dataset id given to datasets.load_dataset")
        if not isinstance(self.params, dict):
            raise SuiteError(f"source.params must be a mapping, got {type(self.params).__name__}")
        if self.map is not None and not (
            isinstance(self.map, str) and (":" in self.map or self.map in ROW_MAPS)
        ):
            raise SuiteError(
                f"unknown source.map {self.map!r}: use one of {sorted(ROW_MAPS)} or 'module:function'"
            )

    @property
    def label(self) -> str:
        """The source in a few words, for messages: ``jsonl ${RFT_DATA}/mbpp.jsonl``."""
        if self.type == "jsonl":
            return f"jsonl {self.path}"
        if self.type == "hf":
            config = f"config {self.config}, " if self.config else ""
            return f"hf {self.name} ({config}split {self.split})"
        return f"generator {self.name}"

    def rows(self) -> list[dict[str, Any]]:
        """Read or generate every row (a list of dicts), passed through `map` when set. Raises
        `SourceUnavailable` when the data is not here (a missing file, an unreachable hub)."""
        if self.type == "generator":
            fn = _generator(self.name)
            try:
                rows = list(fn(size=self.size, seed=self.seed, **self.params))
            except TypeError as e:
                raise SuiteError(f"generator {self.name!r} rejected params {self.params}: {e}") from None
        elif self.type == "jsonl":
            p = _expand(self.path, self.base)
            if not p.is_file():
                raise SourceUnavailable(
                    f"jsonl file {p} does not exist",
                    f"put {p.name} in {p.parent}, or fix source.path / RFT_DATA",
                )
            rows = []
            with p.open() as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise SuiteError(f"{p}:{n}: not JSON ({e.msg})") from None
        else:
            rows = self._hf_rows()
        bad = [i for i, r in enumerate(rows) if not isinstance(r, dict)]
        if bad:
            raise SuiteError(f"source {self.label}: row {bad[0]} is not a mapping")
        if self.map is not None:
            row_map = ROW_MAPS[self.map] if ":" not in self.map else _import(self.map, "source.map")
            try:
                rows = [row_map(r) for r in rows]
            except SuiteError:
                raise
            except (KeyError, TypeError, ValueError) as e:  # a user map that does not fit the rows
                raise SuiteError(f"source.map {self.map!r} failed ({type(e).__name__}: {e})") from None
            if not all(isinstance(r, dict) for r in rows):
                raise SuiteError(f"source.map {self.map!r} must return a mapping for every row")
        return rows

    def _hf_rows(self) -> list[dict[str, Any]]:
        try:
            import datasets  # heavy: only for hf sources
        except ImportError:
            raise SourceUnavailable(
                f"hf dataset {self.name}: the `datasets` package is not installed", "pip install datasets"
            ) from None
        offline = datasets.config.HF_HUB_OFFLINE  # HF_HUB_OFFLINE=1: datasets reads its cache, no network
        if not offline:
            _probe_hub(self.name, datasets.config.HF_ENDPOINT)
        try:
            ds = datasets.load_dataset(self.name, self.config, split=self.split)
        except (ConnectionError, FileNotFoundError) as e:  # offline mode and not cached; the hub went away
            fix = "unset HF_HUB_OFFLINE and allow access to the Hugging Face hub" if offline else _HUB_FIX
            raise SourceUnavailable(
                f"datasets cannot load {self.name} ({type(e).__name__}: {e})", fix
            ) from None
        except ValueError as e:  # an unknown config or split
            raise SuiteError(f"hf dataset {self.name}: {e}; fix source.config / source.split") from None
        return [dict(r) for r in ds]


def _generator(name: str) -> Callable[..., Iterable[dict[str, Any]]]:
    from . import generators

    if ":" not in name:
        if name not in generators.GENERATORS:
            raise SuiteError(
                f"unknown generator {name!r}: use one of {sorted(generators.GENERATORS)} or 'module:function'"
            )
        return generators.GENERATORS[name]
    return _import(name, "generator")


def _import(name: str, what: str) -> Callable[..., Any]:
    module, _, attr = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise SuiteError(f"{what} {name!r} cannot be imported ({e}); is its folder on sys.path?") from None
    if not callable(fn):
        raise SuiteError(f"{what} {name!r} is not callable")
    return fn


def _mbpp_row(row: dict[str, Any]) -> dict[str, Any]:
    """An MBPP row in either Hugging Face layout, with `text` (the problem), `test_setup_code` (a string)
    and `test_block` (the asserts, one a line) set: ``sanitized`` rows name the problem `prompt` and give
    `test_imports` (a list); ``full`` rows have `text` and `test_setup_code`."""
    text = row["text"] if "text" in row else row.get("prompt")
    tests = row.get("test_list")
    if not isinstance(text, str) or not isinstance(tests, list) or not tests:
        raise SuiteError(
            f"not an MBPP row: it needs `prompt` (or `text`) and a `test_list` of asserts; fields {sorted(row)}"
        )
    setup = row.get("test_setup_code")
    if setup is None:
        setup = "\n".join(row.get("test_imports") or [])
    return {**row, "text": text, "test_setup_code": setup, "test_block": "\n".join(tests)}


ROW_MAPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"mbpp": _mbpp_row}

_HUB_TIMEOUT_S = 10.0  # the probe's limit; datasets itself retries an unreachable hub for ~25 s
_HUB_FIX = (
    "allow access to the Hugging Face hub (or set HF_HUB_OFFLINE=1 to use a copy in the datasets cache)"
)


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What huggingface_hub raises when the hub does not answer: OSError (requests' errors before 1.0,
    HfHubHTTPError, OfflineModeIsEnabled), and httpx's errors from 1.0 on."""
    try:
        from huggingface_hub.utils import httpx
    except ImportError:
        return (OSError,)
    return (OSError, httpx.HTTPError)


def _probe_hub(name: str, endpoint: str) -> None:
    """One request without retries: `SourceUnavailable` when the hub is unreachable or lacks the dataset."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import RepositoryNotFoundError

    try:
        HfApi(endpoint=endpoint).dataset_info(name, timeout=_HUB_TIMEOUT_S)
    except RepositoryNotFoundError:
        raise SourceUnavailable(
            f"the Hugging Face hub has no dataset {name} (or it is private)",
            "fix source.name, or log in (`hf auth login`) for a private dataset",
        ) from None
    except _hub_errors() as e:
        raise SourceUnavailable(
            f"cannot reach the Hugging Face hub at {endpoint} ({type(e).__name__}: {e})", _HUB_FIX
        ) from None


@dataclass(frozen=True, eq=False)
class Sources:
    """Alternative sources (a YAML list under `source`), tried in order: the rows come from the first whose
    data is available, and `used` says which. `type`, `name` and `path` are the first alternative's."""

    alternatives: tuple[Source, ...]
    _used: list[Source] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.alternatives:
            raise SuiteError("source is an empty list: give a source, or alternatives tried in order")

    @property
    def type(self) -> str:
        return self.alternatives[0].type

    @property
    def name(self) -> str:
        return self.alternatives[0].name

    @property
    def path(self) -> str:
        return self.alternatives[0].path

    @property
    def used(self) -> Source | None:
        """The alternative the rows were last read from; None before `rows()`."""
        return self._used[-1] if self._used else None

    def rows(self) -> list[dict[str, Any]]:
        """The rows of the first available alternative; `SourceUnavailable` listing why each failed."""
        failed: list[tuple[Source, SourceUnavailable]] = []
        for alt in self.alternatives:
            try:
                rows = alt.rows()
            except SourceUnavailable as e:
                failed.append((alt, e))
                continue
            self._used[:] = [alt]
            return rows
        reasons = "".join(f"\n  {i}. {alt.label}: {e.reason}" for i, (alt, e) in enumerate(failed, 1))
        fixes = "; or ".join(dict.fromkeys(e.fix for _, e in failed))
        reason = f"none of the {len(failed)} sources is available:{reasons}"
        raise SourceUnavailable(reason, fixes, f"{reason}\nto fix: {fixes}")


@dataclass(frozen=True)
class Fields:
    """Which row fields hold the stable id and the reference answer."""

    id: str | None = None  # None: the sha256 of the row's JSON
    reference: str = "answer"
    reference_pattern: str | None = None  # a regex whose group 1 is the reference (GSM8K: "####\\s*(.+)$")

    def __post_init__(self) -> None:
        if self.reference_pattern is not None:
            try:
                rx = re.compile(self.reference_pattern, re.M)
            except re.error as e:
                raise SuiteError(f"fields.reference_pattern is not a valid regex: {e}") from None
            if rx.groups < 1:
                raise SuiteError("fields.reference_pattern needs a group: the reference is group 1")


@dataclass(frozen=True)
class Prompt:
    """Chat templates in OpenAI's `{{ item.x }}` syntax."""

    user: str
    system: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.user, str) or not self.user.strip():
            raise SuiteError("prompt.user must be a non-empty template, e.g. '{{ item.question }}'")

    def messages(self, item: dict[str, Any]) -> list[dict[str, str]]:
        ctx = {"item": item, "sample": {}}
        msgs = [{"role": "system", "content": str(render(self.system, ctx))}] if self.system else []
        return [*msgs, {"role": "user", "content": str(render(self.user, ctx))}]


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, so its items are cached per suite
class Suite:
    """A validated task suite. `items(split)` gives its rows with `id` and `reference` filled in."""

    id: str
    source: Source | Sources  # Sources: alternatives, tried in order
    prompt: Prompt
    grader: dict[str, Any]
    fields: Fields = field(default_factory=Fields)
    split: float = 0.1
    description: str = ""
    check: dict[str, str] = field(default_factory=dict)  # `completion` / `decoy` templates for the checker
    episode: Episode = field(default_factory=Episode)  # single-turn, feedback or tool (see envs/episode.py)
    solution: str | None = None  # a worked solution's template, e.g. "{{ item.solution }}" (SFT data)
    path: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise SuiteError(f"id {self.id!r} must be lowercase and versioned, like 'arithmetic-v0'")
        if not 0.0 <= self.split < 1.0:
            raise SuiteError(f"split is the held-out fraction and must be in [0, 1), got {self.split}")
        try:
            load_grader(self.grader)
        except GraderSpecError as e:
            raise SuiteError(f"suite {self.id}: grader: {e}") from None
        unknown = set(self.check) - {"completion", "decoy"}
        if unknown:
            raise SuiteError(f"check: unknown keys {sorted(unknown)}; allowed: completion, decoy")
        if self.solution is not None:
            if not isinstance(self.solution, str) or not self.solution.strip():
                raise SuiteError("solution must be a non-empty template, e.g. '{{ item.solution }}'")
            try:
                placeholders(self.solution)
            except ValueError as e:
                raise SuiteError(f"solution: {e}") from None

    def load_grader(self) -> Grader:
        return load_grader(self.grader)

    def items(self, split: str | None = None) -> list[dict[str, Any]]:
        """The suite's items (all, or one split), each with `id` and `reference` set."""
        if split is not None and split not in SPLITS:
            raise SuiteError(f"split must be one of {SPLITS}, got {split!r}")
        return list(_items(self) if split is None else _split_items(self, split))

    def messages(self, item: dict[str, Any]) -> list[dict[str, str]]:
        return self.prompt.messages(item)

    def solution_text(self, item: dict[str, Any]) -> str | None:
        """The item's worked solution (the `solution` template filled in); None when the suite has none."""
        if self.solution is None:
            return None
        try:
            return str(render(self.solution, {"item": item, "sample": {}}))
        except TemplateError as e:
            raise SuiteError(f"suite {self.id}: item {item.get('id')!r}: solution {e}") from None


def split_of(item_id: str, heldout: float) -> str:
    """``"heldout"`` for a stable `heldout` fraction of ids (by sha256), else ``"train"``."""
    h = int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:8], "big") / 2**64
    return "heldout" if h < heldout else "train"


@cache
def _split_items(suite: Suite, split: str) -> tuple[dict[str, Any], ...]:
    return tuple(it for it in _items(suite) if split_of(it["id"], suite.split) == split)


@cache
def _items(suite: Suite) -> tuple[dict[str, Any], ...]:
    rx = re.compile(suite.fields.reference_pattern, re.M) if suite.fields.reference_pattern else None
    out, seen = [], set()
    for n, row in enumerate(suite.source.rows()):
        if suite.fields.id is None:
            item_id = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()[:16]
        elif suite.fields.id in row:
            item_id = str(row[suite.fields.id])
        else:
            raise SuiteError(f"suite {suite.id}: row {n} has no id field {suite.fields.id!r}; fix fields.id")
        if suite.fields.reference not in row:
            raise SuiteError(
                f"suite {suite.id}: row {n} has no field {suite.fields.reference!r}; fix fields.reference "
                f"(row fields: {sorted(row)})"
            )
        ref = row[suite.fields.reference]
        if rx is not None:
            m = rx.search(str(ref))
            if m is None:
                raise SuiteError(
                    f"suite {suite.id}: row {n}: fields.reference_pattern does not match {ref!r}"
                )
            ref = m.group(1).strip()
        if item_id in seen:
            continue  # a duplicate row: keep the first
        seen.add(item_id)
        out.append({**row, "id": item_id, "reference": ref})
    if not out:
        raise SuiteError(f"suite {suite.id}: the source has no rows")
    return tuple(out)


_FIELDS = {
    "id",
    "source",
    "fields",
    "prompt",
    "grader",
    "split",
    "description",
    "check",
    "episode",
    "solution",
}


def load_suite(spec: str | Path | dict[str, Any]) -> Suite:
    """Load a suite from a YAML file or a dict; raises `SuiteError` saying what to fix."""
    path: Path | None = None
    if isinstance(spec, str | Path):
        path = Path(spec).resolve()
        if not path.is_file():
            raise SuiteError(f"suite file {path} does not exist")
        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise SuiteError(f"{path}: not valid YAML: {e}") from None
    where = f"{path}: " if path else ""
    if not isinstance(spec, dict):
        raise SuiteError(f"{where}a suite must be a mapping with keys {sorted(_FIELDS)}")
    unknown = set(spec) - _FIELDS
    if unknown:
        raise SuiteError(f"{where}unknown keys {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
    missing = {"id", "source", "prompt", "grader"} - set(spec)
    if missing:
        raise SuiteError(f"{where}missing keys {sorted(missing)}")
    try:
        source = _source(spec["source"], path.parent if path else None)
        fields = Fields(**(spec.get("fields") or {}))
        prompt = Prompt(**spec["prompt"])
        return Suite(
            id=spec["id"],
            source=source,
            prompt=prompt,
            grader=spec["grader"],
            fields=fields,
            split=float(spec.get("split", 0.1)),
            description=spec.get("description", ""),
            check=dict(spec.get("check") or {}),
            episode=_episode(spec.get("episode")),
            solution=spec.get("solution"),
            path=path,
        )
    except TypeError as e:  # an unknown key inside source/fields/prompt
        raise SuiteError(f"{where}{_typeerror(e)}") from None
    except SuiteError as e:
        raise SuiteError(f"{where}{e}") from None


def _episode(spec: Any) -> Episode:
    try:
        return Episode.from_spec(spec)
    except (TypeError, ValueError) as e:
        raise SuiteError(str(e)) from None


def _typeerror(e: TypeError) -> str:
    m = re.search(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'", str(e))
    if m:
        return f"{m.group(1).lower()}: unknown key {m.group(2)!r}"
    return str(e)


def _source(spec: Any, base: Path | None) -> Source | Sources:
    """`source`: one mapping, or a list of them (alternatives tried in order), each validated here."""
    if isinstance(spec, dict):
        return Source(**spec, base=base)
    if not isinstance(spec, list):
        raise SuiteError(
            f"source must be a mapping or a list of mappings tried in order, got {type(spec).__name__}"
        )
    alternatives = []
    for i, alt in enumerate(spec):
        if not isinstance(alt, dict):
            raise SuiteError(f"source[{i}] must be a mapping like {{type: jsonl, path: ...}}, got {alt!r}")
        try:
            alternatives.append(Source(**alt, base=base))
        except TypeError as e:
            raise SuiteError(f"source[{i}]: {_typeerror(e).removeprefix('source: ')}") from None
        except SuiteError as e:
            raise SuiteError(f"source[{i}]: {e}") from None
    return Sources(tuple(alternatives))


@dataclass(frozen=True)
class Overlap:
    train_index: int
    heldout_index: int
    kind: str  # "exact" or "ngram"


def _words(text: str) -> list[str]:
    """Lowercased words and symbols; sentence punctuation dropped, maths (``+ - * / = ^ ( )``) kept."""
    return re.findall(r"\w+|[^\w\s.,;:!?'\"`]", text.lower())


def find_overlaps(train: list[str], heldout: list[str], *, n: int = 13) -> list[Overlap]:
    """Decontamination: held-out prompts equal to a train prompt (after normalising case, spaces and
    sentence punctuation) or sharing a word `n`-gram with one. Returns every (train, heldout) pair found."""
    exact: dict[str, list[int]] = {}
    grams: dict[tuple[str, ...], list[int]] = {}
    for i, text in enumerate(train):
        words = _words(text)
        exact.setdefault(" ".join(words), []).append(i)
        for k in range(len(words) - n + 1):
            grams.setdefault(tuple(words[k : k + n]), []).append(i)
    found: list[Overlap] = []
    for j, text in enumerate(heldout):
        words = _words(text)
        hits = set(exact.get(" ".join(words), []))
        found += [Overlap(i, j, "exact") for i in sorted(hits)]
        near: set[int] = set()
        for k in range(len(words) - n + 1):
            near.update(grams.get(tuple(words[k : k + n]), []))
        found += [Overlap(i, j, "ngram") for i in sorted(near - hits)]
    return found


def decontamination(suite: Suite, *, n: int = 13) -> list[Overlap]:
    """`find_overlaps` between the rendered user prompts of a suite's train and held-out splits (the system
    prompt is shared by every item, so it is left out)."""

    def text(item: dict[str, Any]) -> str:
        return suite.messages(item)[-1]["content"]

    return find_overlaps(
        [text(i) for i in suite.items("train")], [text(i) for i in suite.items("heldout")], n=n
    )
