"""OpenAI-compatible templating: ``{{ item.answer }}``, ``{{ sample.output_json.x[0] }}``.

A template that is exactly one ``{{ path }}`` yields the raw value (a list stays a list); otherwise
every placeholder is replaced by its text (dicts and lists as JSON).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["TemplateError", "render", "resolve", "placeholders", "as_text"]

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_STEP = re.compile(r"\.?([A-Za-z_][\w\-]*)|\[(\d+)\]|\[\"([^\"]*)\"\]|\['([^']*)'\]")
NAMESPACES = ("item", "sample")


class TemplateError(KeyError):
    """A placeholder could not be resolved. `namespace` says whose data was missing."""

    def __init__(self, path: str, namespace: str, reason: str) -> None:
        super().__init__(path)
        self.path = path
        self.namespace = namespace
        self.reason = reason

    def __str__(self) -> str:
        return f"{{{{ {self.path} }}}}: {self.reason}"


def _steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"bad template path {path!r} at character {pos}")
        name, index, dq, sq = m.groups()
        steps.append(int(index) if index is not None else (name or dq or sq or ""))
        pos = m.end()
    return steps


def placeholders(template: Any) -> list[str]:
    """Every placeholder path in a template (strings inside lists/dicts too); checks their syntax."""
    if isinstance(template, str):
        paths = [m.group(1) for m in _PLACEHOLDER.finditer(template)]
        for p in paths:
            steps = _steps(p)
            if not steps or steps[0] not in NAMESPACES:
                raise ValueError(f"template path {p!r} must start with one of {NAMESPACES}")
        return paths
    if isinstance(template, list):
        return [p for t in template for p in placeholders(t)]
    if isinstance(template, dict):
        return [p for t in template.values() for p in placeholders(t)]
    return []


def sample_json(sample: dict[str, Any]) -> Any:
    """`sample.output_json`: given, or parsed from `output_text` when that is JSON."""
    if "output_json" in sample and sample["output_json"] is not None:
        return sample["output_json"]
    text = sample.get("output_text")
    if not isinstance(text, str):
        raise LookupError("sample has no output_json and no output_text")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LookupError(f"output_text is not JSON ({e.msg})") from None


def resolve(path: str, context: dict[str, Any]) -> Any:
    """Look up ``item.a.b[0]`` in ``{"item": ..., "sample": ...}``."""
    steps = _steps(path)
    namespace = str(steps[0])
    if namespace not in context:
        raise TemplateError(path, namespace, f"unknown namespace {namespace!r}")
    value: Any = context[namespace]
    for i, step in enumerate(steps[1:], start=1):
        if namespace == "sample" and i == 1 and step == "output_json" and isinstance(value, dict):
            try:
                value = sample_json(value)
            except LookupError as e:
                raise TemplateError(path, namespace, str(e)) from None
            continue
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            where = ".".join(str(s) for s in steps[:i])
            raise TemplateError(path, namespace, f"{where} has no {step!r}") from None
    return value


def as_text(value: Any) -> str:
    """A value as template text: strings as they are, dicts and lists as JSON, the rest with str()."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render(template: Any, context: dict[str, Any]) -> Any:
    """Fill a template (a string, or lists/dicts of strings) from ``{"item": ..., "sample": ...}``."""
    if isinstance(template, list):
        return [render(t, context) for t in template]
    if isinstance(template, dict):
        return {k: render(v, context) for k, v in template.items()}
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template.strip())
    if whole is not None:
        return resolve(whole.group(1), context)
    return _PLACEHOLDER.sub(lambda m: as_text(resolve(m.group(1), context)), template)
