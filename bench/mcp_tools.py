"""MCP tools: what a call and an episode cost through `McpProvider` (sync, loop thread) vs the SDK used directly.

Anchor: the same calculator server called with ``await session.call_tool`` in a plain ``asyncio.run`` (no
thread hop, no bookkeeping). Rows: one call through `McpTool.call` (pool server, one thread); calls from 8
threads at once; a server's start (spawn -> initialize -> tools/list); an episode (open, first call, close)
with a fresh server, the first call waiting for the start that `open` began.
Run: python bench/mcp_tools.py [--calls 300] [--episodes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

from rft.envs.tools.mcp import McpProvider
from rft.envs.tools.mcp_connection import McpConnection

SERVER = [sys.executable, str(Path(__file__).resolve().parents[1] / "examples" / "mcp" / "calculator.py")]


async def sdk_calls(n: int) -> float:
    """Seconds per call, the SDK alone (the anchor)."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        await session.call_tool("add", {"a": 1, "b": 2})
        t = time.perf_counter()
        for i in range(n):
            await session.call_tool("add", {"a": i, "b": 2})
        return (time.perf_counter() - t) / n


def provider_calls(n: int) -> tuple[float, float]:
    """Seconds per call through McpTool.call: one thread, then 8 threads (wall time / calls)."""
    provider = McpProvider(SERVER, scope="pool")
    add = next(t for t in provider.open() if t.spec.name == "add")
    add.call({"a": 1, "b": 2})
    t = time.perf_counter()
    for i in range(n):
        assert add.call({"a": i, "b": 2}).content == f"{float(i + 2)}"
    one = (time.perf_counter() - t) / n

    def worker() -> None:
        for i in range(n // 8):
            assert not add.call({"a": i, "b": 2}).is_error

    threads = [threading.Thread(target=worker) for _ in range(8)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    eight = (time.perf_counter() - t) / (8 * (n // 8))
    provider.close()
    return one, eight


def starts(k: int) -> float:
    times = []
    for _ in range(k):
        t = time.perf_counter()
        c = McpConnection(SERVER).start()
        assert c.wait_ready()
        times.append(time.perf_counter() - t)
        c.close()
    return statistics.median(times)


def episodes(k: int) -> tuple[float, float]:
    provider = McpProvider(SERVER)
    provider.specs()
    whole, close = [], []
    for _ in range(k):
        t = time.perf_counter()
        tools = provider.open()
        assert tools[0].call({"a": 1, "b": 2}).content == "3.0"
        c = time.perf_counter()
        for tool in tools:
            tool.close()
        close.append(time.perf_counter() - c)
        whole.append(time.perf_counter() - t)
    provider.close()
    return statistics.median(whole), statistics.median(close)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--episodes", type=int, default=3)
    args = ap.parse_args()
    anchor = asyncio.run(sdk_calls(args.calls))
    one, eight = provider_calls(args.calls)
    start = starts(args.episodes)
    episode, close = episodes(args.episodes)
    rows = [
        ("SDK call, asyncio.run (anchor)", anchor),
        ("McpTool.call, 1 thread", one),
        ("McpTool.call, 8 threads (wall / call)", eight),
        ("server start (spawn, initialize, tools/list)", start),
        ("episode: open + first call + close", episode),
        ("  of which close", close),
    ]
    print(f"{'what':48} {'ms':>10} {'x anchor':>10}")
    for name, seconds in rows:
        print(f"{name:48} {seconds * 1e3:10.2f} {seconds / anchor:10.1f}")


if __name__ == "__main__":
    main()
