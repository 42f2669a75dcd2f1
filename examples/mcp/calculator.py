"""A calculator MCP server over stdio: add, sub, mul, div (division by zero is a tool error the model sees).

Run it from a suite: ``tools: [{mcp: {command: [python, examples/mcp/calculator.py], scope: pool}}]``
(stateless, so one server can serve every episode). Needs ``pip install 'rft[mcp]'``.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("calculator", log_level="WARNING")


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers: a + b."""
    return a + b


@server.tool()
def sub(a: float, b: float) -> float:
    """Subtract b from a: a - b."""
    return a - b


@server.tool()
def mul(a: float, b: float) -> float:
    """Multiply two numbers: a * b."""
    return a * b


@server.tool()
def div(a: float, b: float) -> float:
    """Divide a by b: a / b."""
    if b == 0:
        raise ToolError("division by zero: b must not be 0")
    return a / b


if __name__ == "__main__":
    server.run()
