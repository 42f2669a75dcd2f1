"""Which ``tools:`` entries a suite may name: a registry of `ToolProvider` factories by key.

A ``tools:`` entry is a mapping with one key: ``{python_exec: {...}}``, ``{function: "module:callable"}``,
``{python: {...}}``, ``{mcp: {command: [...]}}``. The key picks a factory registered with
`register_tool_provider`; the factory gets the entry's value and the episode's `ToolSettings` (sandbox and
limits) and returns the `ToolProvider`. The built-ins (``python_exec``, ``function``) register when
`rft.envs.tools` is imported; other providers register the same way.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import ToolProvider

__all__ = [
    "ToolSettings",
    "ProviderFactory",
    "register_tool_provider",
    "tool_provider_keys",
    "make_tool_provider",
]


@dataclass(frozen=True)
class ToolSettings:
    """What an episode sets for its tools: the sandbox that runs code, and per-call limits."""

    sandbox: str = "auto"
    sandbox_options: dict[str, Any] = field(default_factory=dict)
    timeout: float = 5.0  # wall seconds per call
    memory_mb: int = 512
    output_chars: int = 2000  # a tool message is cut to this many characters


ProviderFactory = Callable[[Any, ToolSettings], ToolProvider]
_FACTORIES: dict[str, ProviderFactory] = {}
_LOCK = threading.Lock()


def register_tool_provider(key: str, factory: ProviderFactory, *, replace: bool = False) -> None:
    """Make ``tools: [{key: options}]`` resolve to ``factory(options, settings)``. A key registered twice
    raises unless `replace` (tests, reloads)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
        raise ValueError(f"a tool provider key is lower-case letters, digits and _, got {key!r}")
    if not callable(factory):
        raise TypeError(f"the factory for {key!r} must be callable (options, ToolSettings) -> ToolProvider")
    with _LOCK:
        if key in _FACTORIES and not replace and _FACTORIES[key] is not factory:
            raise ValueError(f"tool provider {key!r} is already registered; pass replace=True to replace it")
        _FACTORIES[key] = factory


def tool_provider_keys() -> list[str]:
    """The keys a ``tools:`` entry may use, sorted."""
    with _LOCK:
        return sorted(_FACTORIES)


def make_tool_provider(entry: Any, settings: ToolSettings) -> ToolProvider:
    """The provider of one ``tools:`` entry; ValueError says what a malformed entry should look like."""
    if isinstance(entry, str):
        entry = {entry: {}}
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError(
            f"a tools: entry is a mapping with one key (one of {tool_provider_keys()}), e.g. "
            f"{{python_exec: {{}}}} or {{function: 'module:callable'}}; got {entry!r}"
        )
    ((key, options),) = entry.items()
    with _LOCK:
        factory = _FACTORIES.get(key)
    if factory is None:
        raise ValueError(f"unknown tool provider {key!r}; registered: {tool_provider_keys()}")
    provider = factory(options, settings)
    if not isinstance(provider, ToolProvider):
        raise TypeError(f"the {key!r} factory returned {type(provider).__name__}, not a ToolProvider")
    return provider
