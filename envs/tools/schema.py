"""JSON schemas of plain Python functions (`function_spec`) and a check of call arguments against them
(`check_arguments`).

A function tool is typed: ``int``, ``float``, ``str``, ``bool``, ``list[X]``, ``dict[str, X]``, ``X | None``
(``Optional[X]``) and ``Literal[...]`` map to JSON schema; a parameter with a default is not required. Its
docstring's first paragraph is the tool's description and a Google-style ``Args:`` section describes the
parameters. The checker covers what this mapping produces (types, ``enum``, ``items``, required and unknown
keys), which is what a model's arguments are checked against before a function runs.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from .base import ToolSpec

__all__ = ["function_spec", "check_arguments", "type_schema"]

_SIMPLE: dict[Any, str] = {int: "integer", float: "number", str: "string", bool: "boolean"}


def type_schema(tp: Any, where: str = "the type") -> dict[str, Any]:
    """The JSON schema of a Python annotation (see the module's docstring for what is supported)."""
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp]}
    if tp is type(None):
        return {"type": "null"}
    origin, args = get_origin(tp), get_args(tp)
    if tp is list or origin is list:
        return {"type": "array", "items": type_schema(args[0], where)} if args else {"type": "array"}
    if tp is dict or origin is dict:
        if args and args[0] is not str:
            raise TypeError(f"{where}: JSON object keys are strings; use dict[str, ...], got {tp!r}")
        return (
            {"type": "object", "additionalProperties": type_schema(args[1], where)}
            if args
            else {"type": "object"}
        )
    if origin is Literal:
        kinds = {_SIMPLE.get(type(a)) for a in args}
        if None in kinds or len(kinds) != 1:
            raise TypeError(f"{where}: Literal values must all be int, float, str or bool, got {args!r}")
        return {"type": kinds.pop(), "enum": list(args)}
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) == len(args) - 1 and len(members) == 1:
            inner = type_schema(members[0], where)
            if isinstance(inner.get("type"), str):
                out = {**inner, "type": [inner["type"], "null"]}
                if "enum" in out:
                    out["enum"] = [*out["enum"], None]
                return out
        return {"anyOf": [type_schema(a, where) for a in args]}
    raise TypeError(
        f"{where}: {tp!r} has no JSON schema here; use int, float, str, bool, list[...], dict[str, ...], "
        "Optional[...] or Literal[...]"
    )


def _docstring(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """(description, parameter descriptions) from a Google-style docstring."""
    doc = inspect.getdoc(fn) or ""
    parts = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)
    description = " ".join(parts[0].split()) if parts and not parts[0].startswith("Args:") else ""
    params: dict[str, str] = {}
    m = re.search(r"^(Args|Arguments|Parameters):\s*\n((?:[ \t]+.*\n?|\s*\n)*)", doc, re.M)
    if m:
        current = None
        for line in m.group(2).splitlines():
            item = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?\s*:\s*(.*)", line)
            if item and (current is None or len(line) - len(line.lstrip()) <= _indent(m.group(2))):
                current = item.group(1)
                params[current] = item.group(2).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
    return description, params


def _indent(block: str) -> int:
    lines = [ln for ln in block.splitlines() if ln.strip()]
    return min((len(ln) - len(ln.lstrip()) for ln in lines), default=0)


def function_spec(fn: Callable[..., Any], name: str | None = None) -> ToolSpec:
    """The `ToolSpec` of a typed function: its name, docstring and parameters as JSON schema.
    Raises TypeError for a parameter without annotation, ``*args``/``**kwargs`` or an unsupported type."""
    tool = name or getattr(fn, "__name__", None)
    if not tool or not re.fullmatch(r"[A-Za-z_][\w\-]*", tool):
        raise TypeError(f"a function tool needs a name made of letters, digits, _ and -; got {tool!r}")
    try:
        hints = get_type_hints(fn)
    except NameError as e:
        raise TypeError(f"tool {tool}: an annotation does not resolve ({e})") from e
    description, docs = _docstring(fn)
    props: dict[str, Any] = {}
    required: list[str] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise TypeError(f"tool {tool}: parameter {p.name!r} must be a plain or keyword parameter")
        if p.name not in hints:
            raise TypeError(f"tool {tool}: annotate parameter {p.name!r} (its type becomes the JSON schema)")
        schema = type_schema(hints[p.name], f"tool {tool}, parameter {p.name!r}")
        if p.name in docs:
            schema["description"] = docs[p.name]
        if p.default is p.empty:
            required.append(p.name)
        props[p.name] = schema
    params: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        params["required"] = required
    return ToolSpec(tool, description or f"Call {tool}.", params)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def check_arguments(parameters: dict[str, Any], arguments: dict[str, Any]) -> list[str]:
    """What is wrong with a call's `arguments` under a tool's `parameters` schema (empty: nothing)."""
    errors: list[str] = []
    props = parameters.get("properties", {})
    for key in parameters.get("required", []):
        if key not in arguments:
            errors.append(f"missing required argument {key!r}")
    extra = sorted(set(arguments) - set(props))
    if extra and not parameters.get("additionalProperties", False):  # strict unless the schema allows more
        errors.append(f"unknown arguments {extra}; the tool takes {sorted(props)}")
    for key, value in arguments.items():
        if key in props:
            errors += _check(props[key], value, key)
    return errors


def _check(schema: dict[str, Any], value: Any, where: str) -> list[str]:
    if "anyOf" in schema:
        if any(not _check(s, value, where) for s in schema["anyOf"]):
            return []
        return [f"{where}: {value!r} matches none of the allowed types"]
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        ok = any(
            isinstance(value, _JSON_TYPES.get(k, (object,)))
            and not (isinstance(value, bool) and k in ("integer", "number"))
            for k in names
        )
        if not ok:
            return [f"{where}: expected {' or '.join(names)}, got {type(value).__name__} {value!r:.60}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    out: list[str] = []
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += _check(schema["items"], v, f"{where}[{i}]")
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for k, v in value.items():
            out += _check(schema["additionalProperties"], v, f"{where}.{k}")
    if isinstance(value, dict) and "properties" in schema:
        out += [f"{where}: {e}" for e in check_arguments(schema, value)]
    return out
