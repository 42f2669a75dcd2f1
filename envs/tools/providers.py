"""The ``python`` (stateful session) and ``mcp`` (MCP server over stdio) entries of a ``tools:`` list,
registered with the provider registry when `rft.envs.tools` is imported (the ``mcp`` package itself is
imported only when a server starts: ``pip install 'rft[mcp]'``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .mcp import McpProvider
from .python_session import PythonSessionProvider
from .registry import ToolSettings, register_tool_provider

__all__ = ["python_session_provider", "mcp_provider"]


def python_session_provider(options: Any, settings: ToolSettings) -> PythonSessionProvider:
    """``{python: {timeout, cpu_s, memory_mb, output_chars, sandbox, processes}}``; what the entry leaves out
    comes from the episode (``tool_timeout``, ``tool_memory_mb``, ``tool_output_chars``, ``sandbox``)."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ValueError(f"a python tools entry takes a mapping of options, e.g. {{python: {{timeout: 10}}}}; "
                         f"got {options!r}")  # fmt: skip
    defaults = {"timeout": settings.timeout, "memory_mb": settings.memory_mb,
                "output_chars": max(100, settings.output_chars), "sandbox": settings.sandbox}  # fmt: skip
    known = set(PythonSessionProvider.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"python tool: unknown options {unknown}; allowed: {sorted(known)}")
    return PythonSessionProvider(**{**defaults, **options})


def mcp_provider(options: Any, settings: ToolSettings) -> McpProvider:
    """``{mcp: {command: [...], env: {...}, scope: episode|pool, timeout, ...}}`` (see `McpProvider`)."""
    return McpProvider.from_options(options)


register_tool_provider("python", python_session_provider, replace=True)
register_tool_provider("mcp", mcp_provider, replace=True)
