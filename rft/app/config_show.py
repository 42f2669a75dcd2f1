"""`rft config show KIND`: every key of a training recipe with its default and meaning, read from the config
dataclasses themselves (fields, defaults, and the comment written beside each field), so it cannot drift."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import textwrap
import tokenize
import typing
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from rft.app.errors import App

__all__ = ["KINDS", "SET_EXAMPLES", "ConfigKey", "config_app", "config_keys", "field_comments", "set_option"]

KINDS = ("sft", "dpo", "grpo", "ppo")
REQUIRED = "(required)"

# `rft train KIND --help`'s example of --set: a valid override of that kind's recipe (tests/test_cli_help.py parses it)
SET_EXAMPLES = {
    "sft": "--set lr=1e-5 --set epochs=3",
    "dpo": "--set beta=0.2 --set samples=runs/samples.jsonl",
    "grpo": "--set lr=1e-5 --set loss.beta=0.01",
    "ppo": "--set lr=1e-5 --set loss.vf_coef=0.2",
}

config_app = App(no_args_is_help=True, help="Show what a training recipe can set.")


@dataclass(frozen=True)
class ConfigKey:
    """One settable key of a recipe: `key` as written in YAML or `--set key=value` (dotted when nested)."""

    key: str
    type: str
    default: str  # as YAML would read it back; REQUIRED when the recipe must set it
    meaning: str


def field_comments(cls: type) -> dict[str, str]:
    """The comment written beside each field of the dataclass `cls` (and its dataclass bases; a subclass's
    comment wins, and a field a subclass redeclares without a comment keeps its base's). A comment carried on
    to the next comment-only lines is joined."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        source = textwrap.dedent(inspect.getsource(klass))
        by_line: dict[int, str] = {}
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                by_line[tok.start[0]] = tok.string.lstrip("#").strip()
        tree = ast.parse(source)
        code_lines = {node.lineno for node in ast.walk(tree) if isinstance(node, ast.stmt)}
        for node in typing.cast(ast.ClassDef, tree.body[0]).body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            end = node.end_lineno or node.lineno
            parts = [by_line[n] for n in range(node.lineno, end + 1) if n in by_line]
            n = end + 1
            while n in by_line and n not in code_lines:  # a comment-only line carrying on
                parts.append(by_line[n])
                n += 1
            if parts:
                comments[node.target.id] = " ".join(parts)
    return comments


def _type_name(tp: Any) -> str:
    """`tp` as a reader of a YAML recipe thinks of it: ``hf|vllm``, ``list of str``, ``float or null``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin in (tuple, list):
        return f"list of {_type_name(args[0])}" if args else "list"
    if args and type(None) in args:
        rest = [_type_name(a) for a in args if a is not type(None)]
        return f"{' or '.join(rest)} or null"
    if origin is dict:
        return "mapping"
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return json.dumps(list(value))
    if isinstance(value, dict):
        return json.dumps(value) if value else "{}"
    return str(value)


def config_keys(cls: type, prefix: str = "") -> list[ConfigKey]:
    """Every key of the config dataclass `cls`, nested dataclasses as dotted keys, in declaration order."""
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    keys: list[ConfigKey] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            if f.name in comments:
                keys.append(ConfigKey(prefix + f.name, tp.__name__, "", comments[f.name]))
            keys += config_keys(tp, f"{prefix}{f.name}.")
            continue
        shown = REQUIRED if default is dataclasses.MISSING else _yaml_value(default)
        keys.append(ConfigKey(prefix + f.name, _type_name(tp), shown, comments.get(f.name, "")))
    return keys


def set_option(kind: str) -> Any:
    """The `--set` option of `rft train KIND`, its help showing a valid example for that kind."""
    return typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help=f"override a recipe key: {SET_EXAMPLES[kind]} (all keys: rft config show {kind})",
    )


def recipe_class(kind: str) -> type:
    """The config dataclass of a training kind, or a `typer.BadParameter` naming the kinds."""
    if kind not in KINDS:
        raise typer.BadParameter(f"unknown recipe kind {kind!r}; choose one of {', '.join(KINDS)}")
    from rft.app.pipeline_config import stage_class

    return stage_class(kind)


@config_app.command("show")
def show(
    kind: Annotated[str, typer.Argument(help=f"the recipe: {', '.join(KINDS)}")],
    json_out: Annotated[bool, typer.Option("--json", help="print the keys as JSON")] = False,
) -> None:
    """Every key a `rft train KIND` recipe (YAML or --set key=value) can set: default and meaning."""
    keys = config_keys(recipe_class(kind))
    if json_out:
        print(json.dumps([dataclasses.asdict(k) for k in keys], indent=1))
        return
    print(f"# rft train {kind}: every recipe key (YAML, or --set key=value), its default, type and meaning")
    width = min(36, max(len(f"{k.key}: {k.default}") for k in keys))
    for k in keys:
        about = "; ".join(x for x in (k.type, k.meaning) if x)
        print(f"{f'{k.key}: {k.default}':<{width}}  # {about}")
