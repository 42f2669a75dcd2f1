"""Where a suite's rows come from: a seeded generator, a JSONL file, a Hugging Face dataset, or a
reasoning-gym dataset (`rft.envs.rgym`).

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
function from row to row, built in (`ROW_MAPS`) or ``module:function``, applied to every row read. Built in:
``mbpp``, the math benchmarks' ``amc``, ``minerva``, ``olympiadbench`` (`bench_rows`) and the code
benchmarks' ``humaneval_plus``, ``mbpp_plus``, ``livecodebench`` (`code_bench`).
``source.date_window: {after: 2024-08-01, before: 2025-01-01, field: contest_date}`` keeps the rows (after
`map`) dated on or after `after` and before `before`: a benchmark scored only on problems released after a
model's training cut-off.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bench_rows import amc_row, minerva_row, olympiadbench_row
from .code_bench import humaneval_plus_row, in_date_window, livecodebench_row, mbpp_plus_row, parse_date
from .errors import SourceUnavailable, SuiteError
from .rgym import reasoning_gym_rows

__all__ = ["SuiteError", "SourceUnavailable", "Source", "Sources", "ROW_MAPS", "data_dir", "source_from_spec"]

_SOURCE_TYPES = ("generator", "jsonl", "hf", "reasoning_gym")


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
    """Where rows come from: a `generator` (`name` built-in or `module:function`), a `jsonl` file, `hf`, or
    `reasoning_gym` (`dataset`, its `config` a mapping: `rft.envs.rgym`)."""

    type: str
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    size: int = 1000
    seed: int = 0
    path: str = ""
    config: str | dict[str, Any] | None = None  # hf: the dataset config's name; reasoning_gym: a mapping
    split: str = "train"
    map: str | None = None  # a row function applied to every row: built in (`ROW_MAPS`) or 'module:function'
    base: Path | None = None  # the suite file's folder: relative `path`s are resolved against it
    # keep rows dated in [after, before) (either optional; `field` defaults to contest_date), after `map`
    date_window: dict[str, Any] | None = None
    dataset: str = ""  # reasoning_gym: the dataset's name

    def __post_init__(self) -> None:
        if self.type not in _SOURCE_TYPES:
            raise SuiteError(f"source.type must be one of {_SOURCE_TYPES}, got {self.type!r}")
        if self.type == "reasoning_gym":
            self._check_reasoning_gym()
        elif self.dataset:
            raise SuiteError(
                f"source.dataset is for reasoning_gym sources; a {self.type} source has no dataset"
            )
        if self.type == "hf" and not (self.config is None or isinstance(self.config, str)):
            raise SuiteError(f"source.config of an hf source is the config's name, got {self.config!r}")
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

        if self.date_window is not None:
            if not isinstance(self.date_window, dict) or set(self.date_window) - {"field", "after", "before"}:
                raise SuiteError(
                    f"source.date_window must be a mapping with keys field, after, before "
                    f"(e.g. {{after: 2024-08-01}}), got {self.date_window!r}"
                )
            for key in ("after", "before"):
                if self.date_window.get(key) is not None:
                    parse_date(self.date_window[key], f"source.date_window.{key}")

    def _check_reasoning_gym(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise SuiteError(
                "a reasoning_gym source needs `dataset`: one of reasoning-gym's datasets "
                "(`rft task list --reasoning-gym` lists them)"
            )
        if not (self.config is None or isinstance(self.config, dict)):
            raise SuiteError(
                f"source.config of a reasoning_gym source must be a mapping, got {self.config!r}"
            )
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise SuiteError(f"source.size must be an integer >= 1, got {self.size!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise SuiteError(f"source.seed must be an integer, got {self.seed!r}")
        if self.name and self.name != self.dataset:
            raise SuiteError("a reasoning_gym source names its dataset with `dataset`, not `name`")
        object.__setattr__(self, "name", self.dataset)  # what listings show

    @property
    def label(self) -> str:
        """The source in a few words, for messages: ``jsonl ${RFT_DATA}/mbpp.jsonl``."""
        if self.type == "jsonl":
            return f"jsonl {self.path}"
        if self.type == "hf":
            config = f"config {self.config}, " if self.config else ""
            return f"hf {self.name} ({config}split {self.split})"
        if self.type == "reasoning_gym":
            return f"reasoning_gym {self.dataset}"
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
        elif self.type == "reasoning_gym":
            config = self.config if isinstance(self.config, dict) else None
            rows = reasoning_gym_rows(self.dataset, config, self.size, self.seed)
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
        if self.date_window is not None:
            rows = [r for r in rows if in_date_window(r, self.date_window)]
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
            ds = datasets.load_dataset(
                self.name, self.config if isinstance(self.config, str) else None, split=self.split
            )
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


ROW_MAPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "mbpp": _mbpp_row,
    "humaneval_plus": humaneval_plus_row,  # the code benchmarks: envs/code_bench.py
    "mbpp_plus": mbpp_plus_row,
    "livecodebench": livecodebench_row,
    "amc": amc_row,  # the math benchmarks' maps: envs/bench_rows.py
    "minerva": minerva_row,
    "olympiadbench": olympiadbench_row,
}

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


def typeerror_message(e: TypeError) -> str:
    m = re.search(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'", str(e))
    if m:
        return f"{m.group(1).lower()}: unknown key {m.group(2)!r}"
    return str(e)


def source_from_spec(spec: Any, base: Path | None) -> Source | Sources:
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
            raise SuiteError(f"source[{i}]: {typeerror_message(e).removeprefix('source: ')}") from None
        except SuiteError as e:
            raise SuiteError(f"source[{i}]: {e}") from None
    return Sources(tuple(alternatives))
