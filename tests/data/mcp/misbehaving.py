"""An MCP server that misbehaves on request: hangs in a call, exits mid-call, spawns a grandchild."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("misbehaving", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


@server.tool()
def hang() -> str:
    """Sleep forever (a hung tool)."""
    while True:
        time.sleep(1)


@server.tool()
def exit_now(code: int = 3) -> str:
    """Exit the server process in the middle of the call."""
    sys.stderr.write("misbehaving: exiting mid-call\n")
    sys.stderr.flush()
    os._exit(code)


@server.tool()
def spawn_sleeper() -> int:
    """Start a grandchild that sleeps for a minute; return its pid."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]).pid


if __name__ == "__main__":
    if "--crash-on-start" in sys.argv:
        sys.stderr.write("misbehaving: refusing to start\n")
        sys.exit(2)
    if "--hang-on-start" in sys.argv:
        time.sleep(3600)
    server.run()
