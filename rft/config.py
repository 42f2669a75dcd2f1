"""Configs: one dataclass per entry point, built from a YAML recipe plus ``key=value`` overrides.

``load_config(GRPOConfig, "recipe.yaml", ["lr=1e-4", "loss.agg=dapo"])`` reads the recipe, applies the
overrides (values parsed as YAML), then `from_dict` builds the nested dataclasses, checking every key and
value against the annotations. Errors name the dotted key and say what is allowed. `save_config` writes
the resolved config (beside every run); `config_diff` lists what changed between two of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

__all__ = ["ConfigError", "from_dict", "load_config", "to_dict", "save_config", "config_diff"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key or value is wrong; the message names the dotted key and how to fix it."""


def _name(where: str) -> str:
    return repr(where) if where else "the config"


def _unknown(key: str, where: str, allowed: Sequence[str]) -> ConfigError:
    dotted = f"{where}.{key}" if where else key
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown key {dotted!r}{hint}; {_name(where)} allows: {', '.join(allowed)}")


def _init_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _optional_dataclass(tp: Any) -> type | None:
    """The dataclass in `tp` (``D`` or ``D | None``), else None."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        found = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a) and isinstance(a, type)]
        return found[0] if len(found) == 1 else None
    return None


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _number(value: Any) -> Any:
    """YAML 1.1 reads 1e-4 and 1e3 (no dot) as strings: read such strings as numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp` and convert what is safe (int -> float, list -> tuple)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        options = [a for a in args if a is not type(None)]
        for arg in sorted(options, key=lambda a: a is not type(value)):  # an exact type match first
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        if len(options) == 1:
            raise ConfigError(errors[0])
        raise ConfigError(f"{where}: {_shown(value)} matches none of {tp}: " + "; ".join(errors))
    if origin is Literal:
        for choice in args:
            if value == choice and type(value) is type(choice):
                return choice
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}; got {value!r}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return value if isinstance(value, tp) else from_dict(tp, value, where=where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {_shown(value)}")
    if tp is int:
        value = _number(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {_shown(value)}")
    if tp is float:
        value = _number(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {_shown(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {_shown(value)} (quote it in YAML)")
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"{where} must be a path (a string), got {_shown(value)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where} must be null, got {_shown(value)}")
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {_shown(value)}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{where} must be a list of {len(args)} items, got {len(value)}")
            return tuple(
                _coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list or tp is list else tuple(items)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {_shown(value)}")
        key_tp, val_tp = args if args else (Any, Any)
        return {_coerce(k, key_tp, where): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in tp)
            raise ConfigError(f"{where} must be one of {allowed}; got {value!r}") from None
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: cannot read {_shown(value)} as {tp}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build the dataclass `cls` (and its nested dataclasses) from a mapping, checking keys and types."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"from_dict needs a dataclass type, got {cls!r}")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_name(where)} must be a mapping of keys to values, got {_shown(data)}")
    hints = typing.get_type_hints(cls)
    fields = _init_fields(cls)
    names = [f.name for f in fields]
    for key in data:
        if key not in names:
            raise _unknown(str(key), where, names)
    missing = [
        f.name
        for f in fields
        if f.name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        dotted = [f"{where}.{m}" if where else m for m in missing]
        raise ConfigError(
            f"missing required key(s): {', '.join(dotted)}; set them in the YAML or with key=value"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}" if where else str(e)) from e


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge `extra` into `base` in place, recursing into mappings."""
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), Mapping):
            base[k] = dict(base[k])
            _merge(base[k], v)
        else:
            base[k] = v


def _apply_override(cls: type, data: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in `data`, checking each key against the schema of `cls`."""
    key, sep, text = override.partition("=")
    key = key.strip().removeprefix("--")
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like key=value, e.g. loss.beta=0.04")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {override!r}: the value is not valid YAML ({e})") from None
    parts = key.split(".")
    node, tp = data, cls
    for i, part in enumerate(parts):
        where = ".".join(parts[:i])
        sub = _optional_dataclass(tp)
        if sub is not None:
            hints = typing.get_type_hints(sub)
            names = [f.name for f in _init_fields(sub)]
            if part not in names:
                raise _unknown(part, where, names)
            tp = hints[part]
        elif tp is Any or typing.get_origin(tp) in (dict, Mapping) or tp in (dict, Mapping):
            args = typing.get_args(tp)
            tp = args[1] if args else Any
        else:
            raise ConfigError(f"override {override!r}: {where!r} is a {tp} and has no sub-keys")
        if i == len(parts) - 1:
            if isinstance(value, Mapping) and _optional_dataclass(tp) and isinstance(node.get(part), Mapping):
                node[part] = dict(node[part])
                _merge(node[part], value)  # a mapping for a sub-config updates it; dict fields are replaced
            else:
                node[part] = value
        else:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Read a YAML recipe (a mapping; optional), apply ``a.b.c=value`` overrides, build `cls`."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping of config keys, got {_shown(loaded)}")
        data = dict(loaded or {})
    if isinstance(overrides, str):
        overrides = [overrides]
    for override in overrides:
        _apply_override(cls, data, override)
    return from_dict(cls, data)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain YAML/JSON data: nested dicts in field order, paths as str, tuples as lists."""
    if not (dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)):
        raise TypeError(f"to_dict needs a dataclass instance, got {type(cfg).__name__}")
    return _plain(dataclasses.asdict(cfg))


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (keys in field order), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
    os.replace(tmp, path)
    return path


_ABSENT = object()


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (a key on one side only counts)."""
    out = []
    for key in [*a, *(k for k in b if k not in a)]:
        va, vb = a.get(key, _ABSENT), b.get(key, _ABSENT)
        dotted = f"{prefix}{key}"
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += config_diff(va, vb, prefix=f"{dotted}.")
        elif va is _ABSENT or vb is _ABSENT or _plain(va) != _plain(vb):
            out.append(dotted)
    return out
