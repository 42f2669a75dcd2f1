"""A stateful MCP server for the tests: a counter that lives as long as its process."""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("counter", log_level="WARNING")
count = 0


@server.tool()
def increment(by: int = 1) -> int:
    """Add `by` to the counter and return its new value."""
    global count
    count += by
    return count


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


if __name__ == "__main__":
    server.run()
