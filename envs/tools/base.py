"""The contract every tool of a tool-calling episode keeps (``episode: {type: tools, tools: [...]}``).

A suite's ``tools:`` entries are `ToolProvider` specs (a built-in such as ``python`` / ``python_exec``, an MCP
server, a ``function: module:callable``). Per episode the environment asks each provider to `open` its tools
(state lives there: a Python session, an MCP connection) and closes them when the episode ends, on every path
(a finished episode, a new `reset`, `close`, an exception). A tool call never raises into the environment:
what went wrong comes back as a `ToolOutput` with ``is_error`` (the model's fault: bad arguments, an
exception in its code; shown to the model) or ``failure`` (the environment's fault: a sandbox or server that
died; the step is masked like a grader failure, never scored as a wrong answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["ToolSpec", "ToolOutput", "Tool", "ToolProvider"]


@dataclass(frozen=True)
class ToolSpec:
    """A function tool as chat templates take it (OpenAI's function schema)."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def schema(self) -> dict[str, Any]:
        """``{"type": "function", "function": {...}}``: what ``apply_chat_template(tools=[...])`` takes."""
        fn = {"name": self.name, "description": self.description, "parameters": self.parameters}
        return {"type": "function", "function": fn}


@dataclass(frozen=True)
class ToolOutput:
    """One call's result: `content` becomes the ``tool`` message."""

    content: str
    is_error: bool = False  # the call failed through the model's doing (shown to it; counted in tools/error_rate)
    failure: str | None = None  # the tool itself failed (sandbox, server): the step is masked, not scored
    details: dict[str, Any] = field(default_factory=dict)  # outcome, exit code, wall time, ...


@runtime_checkable
class Tool(Protocol):
    """An open tool: called with parsed JSON arguments, closed with its episode."""

    spec: ToolSpec

    def call(self, arguments: dict[str, Any]) -> ToolOutput: ...

    def close(self) -> None: ...


@runtime_checkable
class ToolProvider(Protocol):
    """One ``tools:`` entry of a suite: validated when the suite loads; opens fresh tools per episode."""

    def specs(self) -> list[ToolSpec]:
        """The tools' schemas (for the prompt and `rft task show`); may start and stop a server once."""
        ...

    def open(self) -> list[Tool]:
        """Tools for one episode (their state starts empty)."""
        ...
