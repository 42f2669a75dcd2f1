"""OpenAI-compatible templating: ``{{ item.answer }}``, ``{{ sample.output_json.x[0] }}``.

A template that is exactly one ``{{ path }}`` yields the raw value (a list stays a list); otherwise
every placeholder is replaced by its text (dicts and lists as JSON).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["TemplateError", "render", "resolve", "placeholders", "reads_sample", "as_text", "SAMPLE_FIELDS"]

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_STEP = re.compile(r"\.?([A-Za-z_][\w\-]*)|\[(\d+)\]|\[\"([^\"]*)\"\]|\['([^']*)'\]")
NAMESPACES = ("item", "sample")
# What a sample holds (OpenAI's grader namespace); item fields are the user's own.
SAMPLE_FIELDS = ("output_text", "output_json", "output_tools", "choices")
_PATH = r"[A-Za-z_][\w\-]*(?:\.[A-Za-z_][\w\-]*|\[[^\]{}]*\])*"
# Left over once the placeholders are taken out: an opening `{{` before a path, a path before `}}`.
_UNCLOSED = re.compile(r"\{\{\s*(" + _PATH + r")\s*\}?")
_UNOPENED = re.compile(r"\{?\s*\b((?:item|sample)(?:\.[A-Za-z_][\w\-]*|\[[^\]{}]*\])*)\s*\}\}")


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


def _check_path(path: str) -> None:
    """A path that can resolve: known root, a sample field rft fills, nothing looked up inside a text."""
    if not path.strip():
        raise ValueError("empty placeholder '{{ }}': put a path in it, like {{ sample.output_text }}")
    steps = _steps(path)
    if steps[0] not in NAMESPACES:
        root = str(steps[0])
        guess = f" (did you mean {_near(root, NAMESPACES) + path[len(root) :]!r}?)"
        raise ValueError(f"template path {path!r} must start with one of {NAMESPACES}{guess}")
    if steps[0] != "sample" or len(steps) == 1:
        return
    field = steps[1]
    if field not in SAMPLE_FIELDS:
        raise ValueError(
            f"template path {path!r}: a sample has no field {field!r}"
            f"{_hint(str(field), SAMPLE_FIELDS)}; its fields are {', '.join(SAMPLE_FIELDS)}"
        )
    if field == "output_text" and len(steps) > 2 and isinstance(steps[2], str):
        raise ValueError(
            f"template path {path!r} can never resolve: output_text is text, it has no field {steps[2]!r}"
            " (use sample.output_json for fields of a JSON answer)"
        )


def _near(word: str, choices: tuple[str, ...]) -> str:
    import difflib

    return (difflib.get_close_matches(word, choices, n=1, cutoff=0.0) or [choices[0]])[0]


def _hint(word: str, choices: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_braces(template: str) -> None:
    """A `{{ path` never closed or a `path }}` never opened is a typo that renders as literal text."""
    rest = _PLACEHOLDER.sub(lambda _: "\x00", template)  # each placeholder as one NUL
    for pattern, what in ((_UNCLOSED, "is not closed with '}}'"), (_UNOPENED, "has no opening '{{'")):
        m = pattern.search(rest)
        if m is not None:
            raise ValueError(f"malformed placeholder {m.group(0).strip()!r}: it {what}")


def placeholders(template: Any) -> list[str]:
    """Every placeholder path in a template (strings inside lists/dicts too). Raises ValueError for a
    placeholder that can never resolve: bad syntax, an unclosed or unopened brace pair, a root other than
    ``item``/``sample``, a sample field rft never fills, a field looked up inside ``output_text``."""
    if isinstance(template, str):
        _check_braces(template)
        paths = [m.group(1) for m in _PLACEHOLDER.finditer(template)]
        for p in paths:
            _check_path(p)
        return paths
    if isinstance(template, list):
        return [p for t in template for p in placeholders(t)]
    if isinstance(template, dict):
        return [p for t in template.values() for p in placeholders(t)]
    return []


def reads_sample(template: Any) -> bool:
    """Whether a template (checked by `placeholders`) reads the sample, i.e. depends on the model's output."""
    return any(_steps(p)[0] == "sample" for p in placeholders(template))


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
