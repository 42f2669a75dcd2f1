"""reasoning-gym as a source of suites: any of its procedural datasets is a suite in a few lines of YAML.

```yaml
source: {type: reasoning_gym, dataset: chain_sum, config: {min_terms: 2, max_terms: 4}, size: 1000, seed: 0}
fields: {id: id, reference: answer}
prompt: {user: "{{ item.question }}"}
grader: {type: reasoning_gym, input: "{{ sample.output_text }}"}
```

Rows are the dataset's entries as they are (``question``, ``answer``, ``metadata``) with an ``id``
(``dataset/seed/index``: the train/held-out split, a hash of the id, is the same on every load) and a
``reasoning_gym`` field (dataset, config, seed, size, index) from which the ``reasoning_gym`` grader
rebuilds the dataset in its own process. Entry ``i`` of a seed does not depend on `size`, so a larger
`size` keeps the earlier items and their split. An entry whose question repeats an earlier one is dropped
(small configs repeat problems; a repeat could land in both splits), so a suite may have fewer than `size`. `rft task list --reasoning-gym` lists the datasets and
their config keys. reasoning-gym is optional: ``pip install 'rft[reasoning-gym]'``.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from rft.graders.rgym import INSTALL_HINT, ITEM_KEY, import_reasoning_gym, make_dataset

from .errors import SourceUnavailable, SuiteError

__all__ = ["DatasetInfo", "reasoning_gym_datasets", "reasoning_gym_rows", "item_id"]

_RESERVED = ("seed", "size")  # given as source.seed / source.size, not inside config


@dataclass(frozen=True)
class DatasetInfo:
    """One reasoning-gym dataset: its name, category (the package folder) and config keys with defaults."""

    name: str
    category: str
    config: dict[str, Any]


def _registry() -> dict[str, tuple[type, type]]:
    try:
        import_reasoning_gym()
    except ImportError:
        raise SourceUnavailable("reasoning-gym is not installed", INSTALL_HINT) from None
    from reasoning_gym.factory import DATASETS

    return dict(DATASETS)


def _defaults(config_cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if f.name in _RESERVED:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = None
    return out


def reasoning_gym_datasets() -> list[DatasetInfo]:
    """Every dataset reasoning-gym registers, by name (`SourceUnavailable` when it is not installed)."""
    infos = []
    for name, (dataset_cls, config_cls) in sorted(_registry().items()):
        parts = dataset_cls.__module__.split(".")
        infos.append(DatasetInfo(name, parts[1] if len(parts) >= 3 else "other", _defaults(config_cls)))
    return infos


def item_id(dataset: str, seed: int, index: int) -> str:
    """The stable id of entry `index` of `dataset` with `seed`."""
    return f"{dataset}/{seed}/{index}"


def reasoning_gym_rows(
    dataset: str, config: dict[str, Any] | None, size: int, seed: int
) -> list[dict[str, Any]]:
    """The `size` entries of `dataset` built with `config` and `seed`, as suite rows (see the module doc).
    A wrong name or config is a `SuiteError` listing the near names or the keys the dataset accepts."""
    registry = _registry()
    if dataset not in registry:
        near = difflib.get_close_matches(dataset, list(registry), n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise SuiteError(
            f"reasoning-gym has no dataset {dataset!r}: {hint}`rft task list --reasoning-gym` lists all "
            f"{len(registry)}"
        )
    config = dict(config or {})
    accepted = _defaults(registry[dataset][1])
    reserved = sorted(set(config) & set(_RESERVED))
    if reserved:
        raise SuiteError(
            f"source.config of {dataset}: give {reserved} as source.seed / source.size, not in config"
        )
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise SuiteError(
            f"source.config of {dataset}: unknown keys {unknown}; {dataset} accepts {_keys(accepted)}"
        )
    errors = (AssertionError, ValueError, TypeError, KeyError)  # its configs' validate() asserts
    try:
        ds = make_dataset(dataset, config, seed, size)
    except errors as e:
        raise SuiteError(
            f"reasoning-gym rejected source.config {config} of {dataset} ({type(e).__name__}: {e}); "
            f"{dataset} accepts {_keys(accepted)}"
        ) from None
    key = {"dataset": dataset, "config": config, "seed": seed, "size": size}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index in range(size):
        try:
            entry = ds[index]
        except errors as e:
            raise SuiteError(
                f"reasoning-gym failed to generate entry {index} of {dataset} (seed {seed}, config {config}): "
                f"{type(e).__name__}: {e}"
            ) from None
        question = str(entry.get("question"))
        if question in seen:  # small configs repeat problems: a repeat could be held out and trained on
            continue
        seen.add(question)
        rows.append({**entry, "id": item_id(dataset, seed, index), ITEM_KEY: {**key, "index": index}})
    return rows


def _keys(accepted: dict[str, Any]) -> str:
    return ", ".join(f"{k} (default {v!r})" for k, v in accepted.items()) or "no config keys"
