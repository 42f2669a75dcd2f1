"""Tools for tool-calling episodes: the contract (`base`), the provider registry, the built-in providers
(``python_exec``, ``function``, ``python``: a stateful session, ``mcp``: an MCP server's tools), call parsing per chat-template family and schemas of Python functions."""

from .base import Tool, ToolOutput, ToolProvider, ToolSpec
from .builtin import FunctionProvider, PythonExecProvider
from .mcp import McpProvider
from .parse import TOOL_FORMATS, ParsedReply, ToolCall, detect_tool_format, parse_tool_calls
from .providers import mcp_provider, python_session_provider
from .python_session import PythonSessionProvider
from .registry import ToolSettings, make_tool_provider, register_tool_provider, tool_provider_keys
from .schema import check_arguments, function_spec

__all__ = [
    "Tool",
    "ToolOutput",
    "ToolProvider",
    "ToolSpec",
    "ToolSettings",
    "register_tool_provider",
    "tool_provider_keys",
    "make_tool_provider",
    "PythonExecProvider",
    "FunctionProvider",
    "PythonSessionProvider",
    "McpProvider",
    "python_session_provider",
    "mcp_provider",
    "TOOL_FORMATS",
    "ToolCall",
    "ParsedReply",
    "parse_tool_calls",
    "detect_tool_format",
    "function_spec",
    "check_arguments",
]
