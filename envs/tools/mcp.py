"""MCP tools: every tool of an MCP server started over stdio, as a `ToolProvider` (``tools: [{mcp: ...}]``).

```yaml
tools:
  - mcp:
      command: [python, examples/mcp/calculator.py]   # argv: an executable on PATH or a path, then its
                                                      # arguments; `python` is the trainer's interpreter
      env: {UNITS: metric}                            # optional: extra variables (over HOME, PATH, ...)
      scope: episode                                  # episode (default): a fresh server per episode;
                                                      # pool: one server shared by all episodes (stateless)
      timeout: 30                                     # optional: seconds per call (then the server is killed)
      startup_timeout: 60                             # optional: seconds to spawn and answer initialize
      cwd: /path/to/dir                               # optional: the server's working directory
```

The server declares its scope through this option: a server with state (a counter, a file system, a
database) keeps ``episode`` so each episode starts from a fresh process; a stateless one may say ``pool`` and
pay the start-up once (a Python server built on the SDK's MCPServer: 1-3 s here, mostly imports; an
episode's server starts in the background at `open`, so the model's first turn hides most of it). The tools' schemas come from the server's
``tools/list`` (a server is started once to read them). A result's text blocks are joined; ``isError`` is
`ToolOutput.is_error` (shown to the model); a server that died, hung past the timeout or answered
nonsense gives `ToolOutput.failure` (the step is masked, never scored 0). Servers are cleaned up on every
path: `Tool.close` (episode end, reset), `McpProvider.close` (env close), a timeout, garbage collection,
interpreter exit, and (through ``setpriv --pdeathsig``) the trainer being killed.
"""

from __future__ import annotations

import shutil
import sys
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .base import Tool, ToolOutput, ToolSpec
from .mcp_connection import McpConnection, McpServerError

__all__ = ["McpProvider", "McpTool", "McpServerError"]

Scope = Literal["episode", "pool"]
_OPTIONS = ("command", "env", "scope", "timeout", "startup_timeout", "cwd")
_EXAMPLE = "tools: [{mcp: {command: [python, server.py], env: {KEY: value}, scope: episode}}]"


class _Episode:
    """The server behind one `open`'s tools; GC of the last of those tools kills it (weakref.finalize)."""

    def __init__(self, connection: McpConnection) -> None:
        self.connection = connection
        self.finalizer = weakref.finalize(self, connection.kill)  # also runs at interpreter exit

    def close(self, wait: bool = False) -> None:
        self.finalizer.detach()
        self.connection.close(wait=wait)  # an episode's end does not wait for its server's exit


class McpTool:
    """One MCP tool opened for an episode; `call` never raises for what the server does."""

    def __init__(self, spec: ToolSpec, provider: McpProvider, episode: _Episode | None) -> None:
        self.spec = spec
        self._provider = provider
        self._episode = episode  # None: the provider's pool server
        self._closed = False

    def call(self, arguments: dict[str, Any]) -> ToolOutput:
        if self._closed:
            raise RuntimeError(f"MCP tool {self.spec.name!r} called after its episode closed it")
        if not isinstance(arguments, dict):
            return ToolOutput(
                content=f"Error: arguments must be a JSON object, got {arguments!r}", is_error=True
            )
        return self.connection.call(self.spec.name, arguments, self._provider.timeout)

    @property
    def connection(self) -> McpConnection:
        """The server this tool calls (its pid, its stderr): the episode's, or the provider's pool server."""
        return self._episode.connection if self._episode else self._provider.pool_connection()

    def close(self) -> None:
        """Closes the episode's server (the first tool of the episode to close does it; pool: nothing)."""
        self._closed = True
        if self._episode is not None:
            self._episode.close()


class McpProvider:
    """Every tool of one MCP server (stdio). See the module docstring for the YAML and the scopes."""

    def __init__(
        self,
        command: list[str],
        env: Mapping[str, str] | None = None,
        scope: Scope = "episode",
        timeout: float = 30.0,
        startup_timeout: float = 60.0,
        cwd: str | None = None,
    ) -> None:
        if not command or not all(isinstance(c, str) and c for c in command):
            raise ValueError(f"mcp: command must be a non-empty list of strings (the server's argv), got "
                             f"{command!r}; e.g. {_EXAMPLE}")  # fmt: skip
        if scope not in ("episode", "pool"):
            raise ValueError(f"mcp: scope must be 'episode' (a fresh server per episode) or 'pool' (one shared "
                             f"server, for stateless servers), got {scope!r}")  # fmt: skip
        for name, value in (("timeout", timeout), ("startup_timeout", startup_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"mcp: {name} must be a positive number of seconds, got {value!r}")
        if env is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ValueError(f"mcp: env must map names to strings (quote numbers in YAML), got {dict(env)!r}")
        if cwd is not None and not Path(cwd).is_dir():
            raise ValueError(f"mcp: cwd {cwd!r} is not a directory")
        if command[0] in ("python", "python3"):  # the trainer's own interpreter, with its packages (mcp)
            command = [sys.executable, *command[1:]]
        path = (env or {}).get("PATH")  # the server is looked up the way the spawn will look it up
        if shutil.which(command[0], path=path) is None:
            where = "a path to an executable file" if "/" in command[0] else "an executable on PATH"
            raise ValueError(f"mcp: the server command {command[0]!r} was not found: give {where} "
                             f"(install the server, or write its full path), e.g. {_EXAMPLE}")  # fmt: skip
        self.command = list(command)
        self.env = dict(env or {})
        self.scope: Scope = scope
        self.timeout = float(timeout)
        self.startup_timeout = float(startup_timeout)
        self.cwd = cwd
        self._lock = threading.Lock()
        self._specs: list[ToolSpec] | None = None
        self._pool: McpConnection | None = None
        self._pool_finalizer: weakref.finalize | None = None
        self._episodes: weakref.WeakSet[_Episode] = weakref.WeakSet()  # open ones, for `close`
        self._spare: _Episode | None = None  # the server `specs` started, for the first episode

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> McpProvider:
        """Validates a suite's ``{mcp: {command: [...], env: {...}, scope: episode}}`` entry."""
        if not isinstance(spec, Mapping) or set(spec) != {"mcp"}:
            raise ValueError(f"an MCP tools entry is a mapping with the one key 'mcp', got {spec!r}; "
                             f"e.g. {_EXAMPLE}")  # fmt: skip
        return cls.from_options(spec["mcp"])

    @classmethod
    def from_options(cls, options: Any) -> McpProvider:
        """The provider from the mapping under ``mcp:`` (what a ``tools:`` registry hands its factory)."""
        if not isinstance(options, Mapping):
            raise ValueError(
                f"mcp: expected a mapping with at least 'command', got {options!r}; e.g. {_EXAMPLE}"
            )
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"mcp: unknown option(s) {unknown}; the options are {list(_OPTIONS)}")
        if "command" not in options:
            raise ValueError(f"mcp: 'command' is required (the server's argv as a list); e.g. {_EXAMPLE}")
        command = options["command"]
        if isinstance(command, str):
            raise ValueError(
                f"mcp: command must be a list (argv), not a string: write [{', '.join(command.split())}]"
            )
        if not isinstance(command, list):
            raise ValueError(f"mcp: command must be a list of strings, got {command!r}")
        env = options.get("env")
        if env is not None and not isinstance(env, Mapping):
            raise ValueError(f"mcp: env must be a mapping of variable names to strings, got {env!r}")
        return cls(
            command=command,
            env=env,
            scope=options.get("scope", "episode"),
            timeout=options.get("timeout", 30.0),
            startup_timeout=options.get("startup_timeout", 60.0),
            cwd=options.get("cwd"),
        )

    def _connection(self) -> McpConnection:
        return McpConnection(
            self.command, self.env, cwd=self.cwd, startup_timeout=self.startup_timeout
        ).start()

    def specs(self) -> list[ToolSpec]:
        """The server's tools, read once from a server started for it (then the pool server, or the first
        episode's server: a fresh one, not called yet)."""
        with self._lock:
            if self._specs is not None:
                return list(self._specs)
        connection = self.pool_connection() if self.scope == "pool" else self._connection()
        if not connection.wait_ready() or not connection.specs:
            tail = connection.stderr_tail()
            why = connection.error or f"the MCP server {self.command} lists no tools: check the command"
            connection.close()
            raise McpServerError(why + (f"\n--- server stderr (last lines) ---\n{tail}" if tail else ""))
        with self._lock:
            first = self._specs is None
            if first:
                self._specs = list(connection.specs)
                if self.scope == "episode":
                    self._spare = _Episode(connection)  # kept for the first episode
                    self._episodes.add(self._spare)
            specs = list(self._specs or [])
        if not first and self.scope == "episode":
            connection.close(wait=False)  # another thread listed the tools first
        return specs

    def open(self) -> list[Tool]:
        """Tools for one episode. Episode scope: a fresh server, started now in the background (the first
        call waits for it), closed by the first `McpTool.close`."""
        specs = self.specs()
        if self.scope == "pool":
            return [McpTool(s, self, None) for s in specs]
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and spare.connection.error is None:
            episode = spare
        else:
            if spare is not None:
                spare.close()  # died unused
            episode = _Episode(self._connection())
            self._episodes.add(episode)
        return [McpTool(s, self, episode) for s in specs]

    def pool_connection(self) -> McpConnection:
        """The shared server of ``scope: pool`` (started on first use, restarted after it died or hung)."""
        dead = None
        with self._lock:
            if self._pool is None or self._pool.error is not None:
                if self._pool_finalizer is not None:
                    self._pool_finalizer.detach()
                dead, self._pool = self._pool, self._connection()
                self._pool_finalizer = weakref.finalize(self, self._pool.kill)
            pool = self._pool
        if dead is not None:
            dead.close(wait=False)  # already killed or exited
        return pool

    def close(self) -> None:
        """Stops the pool server and every episode server still open, and waits for them (env close).
        Idempotent; the provider stays usable: a later `open` or pool call starts a server again."""
        with self._lock:
            pool, finalizer, self._pool = self._pool, self._pool_finalizer, None
            episodes, self._spare = list(self._episodes), None
        if finalizer is not None:
            finalizer.detach()
        if pool is not None:
            pool.close()
        for episode in episodes:
            episode.close(wait=True)
