"""Tool calls out of a model's reply, per chat-template family (pure functions: text in, calls out).

Families (``tool_format``):

- ``hermes`` (Hermes, Qwen2.5, Qwen3): ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, any
  number per reply.
- ``llama3`` (Llama 3.1 / 3.2 JSON tool calls): the reply is ``{"name": ..., "parameters": {...}}``, optionally
  after ``<|python_tag|>``; several calls are separated by ``;`` (as vLLM's ``llama3_json`` parser reads them).
- ``mistral`` (Mistral v0.3 and later): ``[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]``.
- ``auto``: the family whose marker the reply holds (``<tool_call>``, ``[TOOL_CALLS]``), else ``llama3``.

`detect_tool_format` picks the family from a chat template's text. Text before a ``</think>`` (reasoning) is
never read for calls. A call that does not parse is not dropped silently: it becomes an entry of
`ParsedReply.errors`, which the environment shows to the model (and counts as a parse failure).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TOOL_FORMATS", "ToolCall", "ParsedReply", "parse_tool_calls", "detect_tool_format"]

TOOL_FORMATS = ("auto", "hermes", "llama3", "mistral")
_HERMES = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.S)
_PYTHON_TAG = "<|python_tag|>"
_MISTRAL = "[TOOL_CALLS]"


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: the tool's name and its JSON arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its text (`content`, the calls taken out) and its calls; `errors` says, per call
    that did not parse, what was wrong (in words for the model)."""

    content: str
    calls: tuple[ToolCall, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def attempted(self) -> bool:
        """The reply tried to call a tool (a call parsed, or one was malformed)."""
        return bool(self.calls or self.errors)


def detect_tool_format(chat_template: str | None) -> str:
    """The tool-call family a chat template renders (``hermes``, ``llama3`` or ``mistral``), from its markers.
    Raises ValueError when the template shows none of them: set ``episode.tool_format`` then."""
    text = chat_template or ""
    if "<tool_call>" in text:
        return "hermes"
    if "[TOOL_CALLS]" in text:
        return "mistral"
    if "<|python_tag|>" in text or "Environment: ipython" in text:
        return "llama3"
    raise ValueError(
        "the chat template shows no tool-call format this parser knows (<tool_call>, [TOOL_CALLS], "
        "<|python_tag|>); set episode.tool_format to hermes, llama3 or mistral, or use a template with tools"
    )


def parse_tool_calls(text: str, tool_format: str = "auto") -> ParsedReply:
    """The calls in a reply, in the given family's syntax (see the module's docstring)."""
    if tool_format not in TOOL_FORMATS:
        raise ValueError(f"tool_format must be one of {TOOL_FORMATS}, got {tool_format!r}")
    head, body = "", text
    if "</think>" in text:
        cut = text.rindex("</think>") + len("</think>")
        head, body = text[:cut], text[cut:]
    if tool_format == "auto":
        tool_format = "hermes" if "<tool_call>" in body else "mistral" if _MISTRAL in body else "llama3"
    parse = {"hermes": _hermes, "llama3": _llama3, "mistral": _mistral}[tool_format]
    content, calls, errors = parse(body)
    return ParsedReply((head + content).strip(), tuple(calls), tuple(errors))


def _call(obj: Any, args_key: str) -> ToolCall | str:
    """A ToolCall from a decoded JSON value, or what is wrong with it."""
    if not isinstance(obj, dict):
        return f"a tool call must be a JSON object with 'name' and '{args_key}', got {type(obj).__name__}"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return f"a tool call needs a 'name' (a string); got keys {sorted(obj)}"
    args = obj.get(args_key, obj.get("arguments", obj.get("parameters", {})))
    if isinstance(args, str):  # some models write the arguments as a JSON string (OpenAI's wire form)
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            return f"call to {name!r}: '{args_key}' is a string that is not JSON ({e.msg})"
    if not isinstance(args, dict):
        return f"call to {name!r}: '{args_key}' must be a JSON object, got {type(args).__name__}"
    return ToolCall(name, args)


def _add(call: ToolCall | str, calls: list[ToolCall], errors: list[str]) -> None:
    if isinstance(call, ToolCall):
        calls.append(call)
    else:
        errors.append(call)


def _decode(text: str, what: str) -> tuple[Any, str] | str:
    """(value, the text after it) of the JSON value at the start of `text`, or an error message."""
    text = text.lstrip()
    try:
        value, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        return f"{what} is not valid JSON ({e.msg} at character {e.pos}): {text[:120]!r}"
    return value, text[end:]


def _hermes(text: str) -> tuple[str, list[ToolCall], list[str]]:
    calls: list[ToolCall] = []
    errors: list[str] = []
    for m in _HERMES.finditer(text):
        if not m.group(2):
            errors.append("a <tool_call> was not closed with </tool_call>")
            continue
        decoded = _decode(m.group(1), "the <tool_call> body")
        if isinstance(decoded, str):
            errors.append(decoded)
            continue
        value, rest = decoded
        if rest.strip():
            errors.append(f"text after the JSON object inside <tool_call>: {rest.strip()[:80]!r}")
            continue
        call = _call(value, "arguments")
        _add(call, calls, errors)
    return _HERMES.sub("", text), calls, errors


def _llama3(text: str) -> tuple[str, list[ToolCall], list[str]]:
    body = text.strip()
    tagged = body.startswith(_PYTHON_TAG)
    if tagged:
        body = body[len(_PYTHON_TAG) :].strip()
    elif not (body.startswith("{") and re.match(r'\{\s*"name"\s*:', body)):
        return text, [], []  # an answer, not a call
    calls: list[ToolCall] = []
    errors: list[str] = []
    while body:
        decoded = _decode(body, "the tool call")
        if isinstance(decoded, str):
            return "", calls, [*errors, decoded]
        value, body = decoded
        call = _call(value, "parameters")
        _add(call, calls, errors)
        body = body.strip()
        if body.startswith(";"):
            body = body[1:].strip()
        elif body:
            return "", calls, [*errors, f"text after a tool call: {body[:80]!r} (separate calls with ';')"]
    return "", calls, errors


def _mistral(text: str) -> tuple[str, list[ToolCall], list[str]]:
    at = text.find(_MISTRAL)
    if at < 0:
        return text, [], []
    content, body = text[:at], text[at + len(_MISTRAL) :]
    decoded = _decode(body, "the [TOOL_CALLS] list")
    if isinstance(decoded, str):
        return content, [], [decoded]
    value, rest = decoded
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return (
            content,
            [],
            [f"[TOOL_CALLS] must be followed by a JSON list of calls, got {type(value).__name__}"],
        )
    calls: list[ToolCall] = []
    errors: list[str] = []
    for item in value:
        call = _call(item, "arguments")
        _add(call, calls, errors)
    if rest.strip():
        errors.append(f"text after the [TOOL_CALLS] list: {rest.strip()[:80]!r}")
    return content, calls, errors
