"""Tools for tool-calling episodes: the contract (`base`) and the built-in providers."""

from .base import Tool, ToolOutput, ToolProvider, ToolSpec

__all__ = ["Tool", "ToolOutput", "ToolProvider", "ToolSpec"]
