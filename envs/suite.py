"""Task suites: a YAML file that names a data source, the prompt, the grader and the train/held-out split.

```yaml
id: arithmetic-v0                 # versioned: name-vN
source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2}, size: 2000, seed: 0}
fields: {id: id, reference: answer}
prompt:
  system: "Answer with the final number in \\boxed{}."
  user: "{{ item.question }}"
  chat_template_kwargs: {enable_thinking: false}  # optional: passed to the chat template with every prompt
grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}"}
split: 0.1                        # held-out fraction, by a hash of each row's id; 1 = a benchmark (held-out only)
solution: "{{ item.solution }}"   # optional: a worked solution per item (SFT data, `rft.sft_dpo`)
eval: {n: 16, k: [1, 16], temperature: 0.6}  # optional: sampling a benchmark fixes (envs/eval_settings.py)
```

Every row is an item; the reference answer is added to it as ``item.reference`` (``fields.reference``
names the row field, ``fields.reference: null`` when rows have none and the grader reads its own fields).

A row may carry its own conversation (OpenAI's RFT datasets: a `messages` list ending with a user turn):
``prompt: {messages: "{{ item.messages }}"}`` makes it the prompt, validated per item (roles system,
developer (sent as system), user, assistant; text content; the last turn a user's). Train and held-out
items may come from two sources (a training file and a validation file): ``heldout_source:`` (a source,
like ``source:``) holds the held-out items and every row of ``source`` is a train item; ``split`` is then
not given.

``fields.reference_pattern`` optionally cuts the reference out of its field, e.g. GSM8K's ``#### n``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from rft.graders import Grader, GraderSpecError, TemplateError, load_grader, render
from rft.graders.template import placeholders

from .episode import Episode
from .eval_settings import EvalSettings, eval_settings
from .sources import (
    Source,
    Sources,
    SourceUnavailable,
    SuiteError,
    data_dir,
    source_from_spec,
    typeerror_message,
)

__all__ = [
    "SuiteError",
    "SourceUnavailable",
    "Source",
    "Sources",
    "Fields",
    "Prompt",
    "chat_messages",
    "template_kwargs",
    "Suite",
    "load_suite",
    "data_dir",
    "split_of",
]

_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*-v\d+$")
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class Fields:
    """Which row fields hold the stable id and the reference answer."""

    id: str | None = None  # None: the sha256 of the row's JSON
    reference: str | None = "answer"  # None: rows have no reference field (item.reference is null)
    reference_pattern: str | None = None  # a regex whose group 1 is the reference (GSM8K: "####\\s*(.+)$")

    def __post_init__(self) -> None:
        if self.reference_pattern is not None:
            if self.reference is None:
                raise SuiteError("fields.reference_pattern needs fields.reference (the field it cuts)")
            try:
                rx = re.compile(self.reference_pattern, re.M)
            except re.error as e:
                raise SuiteError(f"fields.reference_pattern is not a valid regex: {e}") from None
            if rx.groups < 1:
                raise SuiteError("fields.reference_pattern needs a group: the reference is group 1")


@dataclass(frozen=True)
class Prompt:
    """Chat templates in OpenAI's `{{ item.x }}` syntax: a `user` turn (and a `system` one), or `messages`,
    a template naming a row's own conversation (``"{{ item.messages }}"``)."""

    user: str | None = None
    system: str | None = None
    messages: str | None = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # for the model's chat template

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "chat_template_kwargs",
            template_kwargs(self.chat_template_kwargs, "prompt.chat_template_kwargs"),
        )
        if self.messages is not None:
            if self.user is not None or self.system is not None:
                raise SuiteError("prompt: give messages ('{{ item.messages }}') or user/system, not both")
            if not isinstance(self.messages, str) or not self.messages.strip():
                raise SuiteError(
                    "prompt.messages must be a template naming a row's list, e.g. '{{ item.messages }}'"
                )
            return
        if not isinstance(self.user, str) or not self.user.strip():
            raise SuiteError("prompt.user must be a non-empty template, e.g. '{{ item.question }}'")

    def messages_of(self, item: dict[str, Any]) -> list[dict[str, str]]:
        """The item's prompt conversation; `SuiteError` naming the item and what to fix."""
        ctx = {"item": item, "sample": {}}
        if self.messages is not None:
            where = f"item {item.get('id')!r}: prompt.messages {self.messages!r}"
            try:
                value = render(self.messages, ctx)
            except TemplateError as e:
                raise SuiteError(f"{where}: {e}") from None
            return chat_messages(value, where)
        msgs = [{"role": "system", "content": str(render(self.system, ctx))}] if self.system else []
        return [*msgs, {"role": "user", "content": str(render(self.user or "", ctx))}]


# apply_chat_template's own arguments and the variables it fills in: not settable through template kwargs
_RESERVED_KWARGS = frozenset({
    "messages", "conversation", "tools", "documents", "chat_template", "add_generation_prompt",
    "continue_final_message", "tokenize", "padding", "truncation", "max_length", "return_tensors", "return_dict",
    "return_assistant_tokens_mask", "tokenizer_kwargs", "bos_token", "eos_token", "pad_token", "unk_token",
})  # fmt: skip


def _json_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False


def template_kwargs(value: Any, where: str) -> dict[str, Any]:
    """Chat template kwargs checked: a mapping of names (Jinja variables) to JSON values. Raises `SuiteError`
    saying `where` and what to fix."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SuiteError(
            f"{where} must be a mapping, e.g. {{enable_thinking: false}}; got {type(value).__name__}"
        )
    for key, v in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise SuiteError(f"{where}: key {key!r} is not a template variable name (letters, digits, _)")
        if key in _RESERVED_KWARGS:
            raise SuiteError(f"{where}: {key!r} is set by rft itself, not a template kwarg; remove it")
        if not _json_value(v):
            raise SuiteError(
                f"{where}.{key}: {type(v).__name__} {v!r:.60} is not a JSON value (null, bool, number, string, "
                "list or mapping of those)"
            )
    return dict(value)


_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def chat_messages(value: Any, where: str) -> list[dict[str, str]]:
    """A prompt conversation from a row's `messages` (OpenAI's chat format): a list of ``{role, content}``
    with roles system, developer (sent as system: open models' chat templates have no developer role),
    user, assistant; content a string or a list of text parts; the last turn a user's, which the model
    answers. Raises `SuiteError` saying `where` and what to fix."""
    if not isinstance(value, list) or not value:
        raise SuiteError(
            f"{where}: messages must be a non-empty list of {{role, content}}, got {type(value).__name__}"
        )
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise SuiteError(f"{where}: messages[{i}] must be an object with role and content, got {m!r:.80}")
        role, content = m["role"], m["content"]
        if role not in _ROLES:
            raise SuiteError(
                f"{where}: messages[{i}] has role {role!r}; use one of {', '.join(_ROLES)} (tool turns are not "
                "supported in a prompt)"
            )
        if isinstance(content, list):
            kinds = {p.get("type") if isinstance(p, dict) else type(p).__name__ for p in content}
            if kinds - {"text", "input_text"}:
                raise SuiteError(
                    f"{where}: messages[{i}] has content parts {sorted(map(str, kinds))}; only text parts are "
                    "supported (no images or files)"
                )
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise SuiteError(f"{where}: messages[{i}].content must be text, got {type(content).__name__}")
        out.append({"role": _ROLES[role], "content": content})
    if out[-1]["role"] != "user":
        raise SuiteError(
            f"{where}: the last message is the {value[-1]['role']}'s; a prompt must end with a user turn, which "
            "the model answers: drop the trailing assistant turn (its answer belongs in a field the grader reads)"
        )
    return out


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
    eval: EvalSettings = field(default_factory=EvalSettings)  # sampling settings the benchmark fixes
    heldout_source: Source | Sources | None = None  # the held-out items' own source (a validation file)
    path: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise SuiteError(f"id {self.id!r} must be lowercase and versioned, like 'arithmetic-v0'")
        if not 0.0 <= self.split <= 1.0:
            raise SuiteError(
                f"split is the held-out fraction and must be in [0, 1] (1: a benchmark, held-out only), "
                f"got {self.split}"
            )
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

    @property
    def heldout_only(self) -> bool:
        """A benchmark suite (`split: 1`): every item is held-out, none is ever trained on."""
        return self.split == 1.0

    def load_grader(self) -> Grader:
        return load_grader(self.grader)

    def items(self, split: str | None = None) -> list[dict[str, Any]]:
        """The suite's items (all, or one split), each with `id` and `reference` set."""
        if split is not None and split not in SPLITS:
            raise SuiteError(f"split must be one of {SPLITS}, got {split!r}")
        return list(_items(self) if split is None else _split_items(self, split))

    def messages(self, item: dict[str, Any]) -> list[dict[str, str]]:
        return self.prompt.messages_of(item)

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
    if heldout >= 1.0:
        return "heldout"
    h = int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:8], "big") / 2**64
    return "heldout" if h < heldout else "train"


@cache
def _split_items(suite: Suite, split: str) -> tuple[dict[str, Any], ...]:
    if suite.heldout_source is not None:  # a validation file: its rows are the held-out split
        return _source_items(suite, suite.heldout_source if split == "heldout" else suite.source)
    return tuple(it for it in _items(suite) if split_of(it["id"], suite.split) == split)


@cache
def _items(suite: Suite) -> tuple[dict[str, Any], ...]:
    if suite.heldout_source is None:
        return _source_items(suite, suite.source)
    train, heldout = _split_items(suite, "train"), _split_items(suite, "heldout")
    ids = {it["id"] for it in train}
    return (*train, *(it for it in heldout if it["id"] not in ids))


def _source_items(suite: Suite, source: Source | Sources) -> tuple[dict[str, Any], ...]:
    rx = re.compile(suite.fields.reference_pattern, re.M) if suite.fields.reference_pattern else None
    out, seen = [], set()
    for n, row in enumerate(source.rows()):
        if suite.fields.id is None:
            item_id = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()[:16]
        elif suite.fields.id in row:
            item_id = str(row[suite.fields.id])
        else:
            raise SuiteError(f"suite {suite.id}: row {n} has no id field {suite.fields.id!r}; fix fields.id")
        if suite.fields.reference is not None and suite.fields.reference not in row:
            raise SuiteError(
                f"suite {suite.id}: row {n} has no field {suite.fields.reference!r}; fix fields.reference "
                f"(row fields: {sorted(row)})"
            )
        ref = row[suite.fields.reference] if suite.fields.reference is not None else None
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
    "eval",
    "heldout_source",
}


_MAPPINGS = {  # the sections that must be mappings, with an example each for the error
    "prompt": "{user: '{{ item.question }}'}",
    "fields": "{id: id, reference: answer}",
    "check": "{completion: '{{ item.reference }}'}",
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
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise SuiteError(f"{path}: not valid YAML: {_yaml_problem(e)}") from None
    where = f"{path}: " if path else ""
    if not isinstance(spec, dict):
        raise SuiteError(f"{where}a suite must be a mapping with keys {sorted(_FIELDS)}")
    unknown = set(spec) - _FIELDS
    if unknown:
        raise SuiteError(f"{where}unknown keys {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
    missing = {"id", "source", "prompt", "grader"} - set(spec)
    if missing:
        raise SuiteError(f"{where}missing keys {sorted(missing)}")
    for key, example in _MAPPINGS.items():
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            raise SuiteError(f"{where}{key} must be a mapping like {example}, got {type(spec[key]).__name__}")
    if not isinstance(spec.get("description", ""), str):
        raise SuiteError(f"{where}description must be a string")
    if spec.get("heldout_source") is not None and "split" in spec:
        raise SuiteError(
            f"{where}give split (a held-out fraction) or heldout_source (a validation file), not both"
        )
    try:
        split = float(spec.get("split", 0.0 if spec.get("heldout_source") is not None else 0.1))
    except (TypeError, ValueError):
        raise SuiteError(
            f"{where}split is the held-out fraction, a number in [0, 1] (1: held-out only); got {spec['split']!r}"
        ) from None
    try:
        source = source_from_spec(spec["source"], path.parent if path else None)
        heldout = spec.get("heldout_source")
        heldout_source = None if heldout is None else source_from_spec(heldout, path.parent if path else None)
        fields = Fields(**(spec.get("fields") or {}))
        prompt = Prompt(**spec["prompt"])
        return Suite(
            id=spec["id"],
            source=source,
            prompt=prompt,
            grader=spec["grader"],
            fields=fields,
            split=split,
            description=spec.get("description", ""),
            check=dict(spec.get("check") or {}),
            episode=_episode(spec.get("episode")),
            solution=spec.get("solution"),
            eval=eval_settings(spec.get("eval")),
            heldout_source=heldout_source,
            path=path,
        )
    except TypeError as e:  # an unknown key inside source/fields/prompt
        raise SuiteError(f"{where}{typeerror_message(e)}") from None
    except SuiteError as e:
        raise SuiteError(f"{where}{e}") from None


def _yaml_problem(e: Exception) -> str:
    """A YAML error in one line: where (line, column) and what."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    if mark is None or problem is None:
        return " ".join(str(e).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _episode(spec: Any) -> Episode:
    try:
        return Episode.from_spec(spec)
    except (TypeError, ValueError) as e:
        raise SuiteError(str(e)) from None
