"""MCP tools over stdio (`rft.envs.tools.mcp`): servers written with the `mcp` package serve tools; every way
an episode, a call or the process can end leaves no server process behind (counted in /proc)."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="pip install 'rft[mcp]'")

from rft.envs.tools import Tool, ToolOutput, ToolProvider  # noqa: E402
from rft.envs.tools.mcp import McpProvider, McpServerError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CALCULATOR = str(ROOT / "examples" / "mcp" / "calculator.py")
COUNTER = str(ROOT / "tests" / "data" / "mcp" / "counter.py")
MISBEHAVING = str(ROOT / "tests" / "data" / "mcp" / "misbehaving.py")
PY = sys.executable


def _ppid_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[1]), fields[0].decode()


def descendants(root: int | None = None) -> set[int]:
    """Every live or unreaped process below `root` (this test process by default)."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (info := _ppid_and_state(int(name))):
            parents.setdefault(info[0], []).append(int(name))
    found, todo = set(), [root or os.getpid()]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    info = _ppid_and_state(pid)
    return info is not None and info[1] != "Z"  # a zombie under init is dead, only not yet reaped by it


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def no_leak():
    """Yields a checker: `check()` asserts every process started since the test began is gone (reaped)."""
    before = descendants()

    def check(timeout: float = 10.0) -> None:
        assert wait_until(lambda: descendants() <= before, timeout), descendants() - before

    yield check
    check()


def mcp(command: list[str], **options) -> McpProvider:
    return McpProvider.from_spec({"mcp": {"command": command, **options}})


@pytest.fixture(scope="module")
def calculator():
    provider = mcp([PY, CALCULATOR], scope="pool")
    yield provider
    provider.close()


# -- the YAML entry and its errors ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"mcp": {"command": ["no-such-mcp-server-xyz"]}}, "'no-such-mcp-server-xyz' was not found"),
        ({"mcp": {"command": ["./nowhere/server.py"]}}, "a path to an executable file"),
        (
            {"mcp": {"command": "python server.py"}},
            "must be a list (argv), not a string: write [python, server.py]",
        ),
        ({"mcp": {"command": []}}, "non-empty list of strings"),
        ({"mcp": {"env": {}}}, "'command' is required"),
        ({"mcp": {"command": [PY], "scope": "global"}}, "scope must be 'episode'"),
        ({"mcp": {"command": [PY], "timeout": 0}}, "timeout must be a positive number"),
        ({"mcp": {"command": [PY], "env": {"N": 3}}}, "quote numbers in YAML"),
        ({"mcp": {"command": [PY], "comand": [PY]}}, "unknown option(s) ['comand']"),
        ({"mcp": {"command": [PY], "cwd": "/no/such/dir"}}, "is not a directory"),
        ({"mcp": [PY]}, "expected a mapping with at least 'command'"),
        ({"mcp": {"command": [PY]}, "scope": "pool"}, "the one key 'mcp'"),
    ],
)
def test_a_bad_entry_says_how_to_fix_it(spec, message):
    with pytest.raises(ValueError) as e:
        McpProvider.from_spec(spec)
    assert message in str(e.value)


def test_python_is_the_trainers_own_interpreter():
    provider = McpProvider.from_spec({"mcp": {"command": ["python", CALCULATOR], "env": {"A": "1"}}})
    assert provider.command == [PY, CALCULATOR] and provider.env == {"A": "1"} and provider.scope == "episode"


def test_a_server_that_fails_to_start_is_a_clear_error_with_its_stderr(no_leak):
    with pytest.raises(McpServerError, match=r"(?s)failed.*refusing to start"):
        mcp([PY, MISBEHAVING, "--crash-on-start"]).specs()
    no_leak()
    t = time.monotonic()
    with pytest.raises(McpServerError, match="did not answer initialize within 1 s"):
        mcp([PY, MISBEHAVING, "--hang-on-start"], startup_timeout=1).specs()
    assert time.monotonic() - t < 8
    no_leak()


# -- tools, calls, results ----------------------------------------------------------------------------------
def test_lists_every_tool_with_its_schema(calculator):
    assert isinstance(calculator, ToolProvider)
    specs = {s.name: s for s in calculator.specs()}
    assert sorted(specs) == ["add", "div", "mul", "sub"]
    assert specs["div"].description == "Divide a by b: a / b."
    params = specs["add"].parameters
    assert params["type"] == "object" and params["required"] == ["a", "b"]
    assert params["properties"]["a"]["type"] == "number"
    assert specs["mul"].schema()["function"]["name"] == "mul"


def test_calls_return_text_and_errors_are_the_models(calculator):
    tools = {t.spec.name: t for t in calculator.open()}
    assert all(isinstance(t, Tool) for t in tools.values())
    out = tools["add"].call({"a": 2, "b": 3.5})
    assert (out.content, out.is_error, out.failure, out.details["outcome"]) == ("5.5", False, None, "ok")
    assert tools["mul"].call({"a": 6, "b": 7}).content == "42.0"
    zero = tools["div"].call({"a": 1, "b": 0})
    assert zero.is_error and zero.failure is None and "division by zero" in zero.content
    bad = tools["sub"].call({"a": "x"})
    assert bad.is_error and bad.failure is None and "validation error" in bad.content
    not_object = tools["sub"].call([1, 2])  # type: ignore[arg-type]  # a model may emit any JSON
    assert not_object.is_error and "JSON object" in not_object.content
    for t in tools.values():
        t.close()
    with pytest.raises(RuntimeError, match="after its episode closed it"):
        tools["add"].call({"a": 1, "b": 1})


def test_concurrent_calls_from_several_envs_threads(calculator):
    results: dict[tuple[int, int], ToolOutput] = {}

    def env(k: int) -> None:
        tools = {t.spec.name: t for t in calculator.open()}
        for i in range(10):
            results[k, i] = tools["mul"].call({"a": k, "b": i})
        for t in tools.values():
            t.close()

    threads = [threading.Thread(target=env, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 80
    assert all(out.content == f"{float(k * i)}" for (k, i), out in results.items())


def test_episode_scope_gives_each_episode_a_fresh_server_pool_scope_shares_one(no_leak):
    episodes = mcp([PY, COUNTER])  # scope: episode (the default)
    values = []
    for _ in range(2):
        tools = {t.spec.name: t for t in episodes.open()}
        values.append([tools["increment"].call({}).content, tools["increment"].call({"by": 5}).content])
        for t in tools.values():
            t.close()
    assert values == [["1", "6"], ["1", "6"]]  # state persists within an episode, never across
    no_leak()

    pooled = mcp([PY, COUNTER], scope="pool")
    a, b = pooled.open(), pooled.open()
    assert [a[0].call({}).content, b[0].call({}).content] == ["1", "2"]
    assert a[1].call({}).content == b[1].call({}).content  # one pid
    pooled.close()
    no_leak()


def test_concurrent_episodes_each_have_their_own_server(no_leak):
    provider = mcp([PY, COUNTER])
    pids: dict[int, set[str]] = {}

    def env(k: int) -> None:
        tools = {t.spec.name: t for t in provider.open()}
        got = [tools["increment"].call({}).content for _ in range(3)]
        assert got == ["1", "2", "3"]
        pids[k] = {tools["pid"].call({}).content}
        tools["pid"].close()

    threads = [threading.Thread(target=env, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(pids) == 4 and len(set.union(*pids.values())) == 4
    no_leak()


# -- cleanup on every path ----------------------------------------------------------------------------------
def _server_pid(tools) -> int:
    (echo,) = [t for t in tools if t.spec.name == "echo"]
    assert echo.call({"text": "hi"}).content == "hi"
    pid = echo.connection.pid
    assert pid is not None and alive(pid)
    return pid


def test_episode_end_reset_and_env_close_leave_no_server(no_leak):
    before = descendants()
    provider = mcp([PY, MISBEHAVING])
    provider.specs()  # its server is kept for the first episode
    (spare,) = descendants() - before
    tools = provider.open()
    pid = _server_pid(tools)
    assert pid == spare
    for t in tools:  # the episode ends
        t.close()
    assert wait_until(lambda: not alive(pid), 5)  # Tool.close does not wait for the exit
    no_leak()
    old = provider.open()  # a reset: the env closes the old episode's tools and opens new ones
    first = _server_pid(old)
    for t in old:
        t.close()
    new = provider.open()
    second = _server_pid(new)
    assert first != second and wait_until(lambda: not alive(first), 5)
    third = _server_pid(provider.open())  # env close with two episodes still open: both go
    provider.close()  # waits
    assert not alive(second) and not alive(third)
    no_leak()


def test_an_exception_in_a_call_and_a_server_exiting_mid_call(no_leak):
    provider = mcp([PY, MISBEHAVING])
    tools = {t.spec.name: t for t in provider.open()}
    pid = _server_pid(tools.values())
    unknown = tools["echo"].connection.call("no_such_tool", {}, 10)
    assert unknown.is_error and unknown.failure is None and "Unknown tool" in unknown.content
    died = tools["exit_now"].call({})
    assert died.failure and not died.is_error and died.details["outcome"] == "server_died"
    assert "exiting mid-call" in died.failure  # the server's stderr is quoted
    after = tools["echo"].call({"text": "x"})
    assert after.failure and after.details["outcome"] == "server_unavailable"
    assert wait_until(lambda: not alive(pid))
    no_leak()  # reaped before any close
    for t in tools.values():
        t.close()
    no_leak()


def test_a_timeout_kills_the_server_at_once(no_leak):
    provider = mcp([PY, MISBEHAVING], timeout=1)
    tools = {t.spec.name: t for t in provider.open()}
    pid = _server_pid(tools.values())
    t = time.monotonic()
    out = tools["hang"].call({})
    assert 0.9 < time.monotonic() - t < 5
    assert out.failure and "did not answer 'hang' within 1 s" in out.failure
    assert out.details["outcome"] == "timeout"
    assert wait_until(lambda: not alive(pid), 3)
    no_leak(3)
    assert tools["echo"].call({"text": "x"}).details["outcome"] == "server_unavailable"
    for tool in tools.values():
        tool.close()


def test_closing_while_a_call_hangs_kills_the_server_and_ends_the_call(no_leak):
    provider = mcp([PY, MISBEHAVING], timeout=600)
    tools = {t.spec.name: t for t in provider.open()}
    pid = _server_pid(tools.values())
    box: list[ToolOutput] = []
    caller = threading.Thread(target=lambda: box.append(tools["hang"].call({})))
    caller.start()
    time.sleep(0.5)
    t = time.monotonic()
    for tool in tools.values():
        tool.close()
    assert time.monotonic() - t < 3
    caller.join(5)
    assert not caller.is_alive() and box[0].failure
    assert wait_until(lambda: not alive(pid), 3)
    no_leak()


def test_a_pool_server_that_hung_is_replaced(no_leak):
    provider = mcp([PY, MISBEHAVING], scope="pool", timeout=1)
    tools = {t.spec.name: t for t in provider.open()}
    first = provider.pool_connection().pid
    assert tools["hang"].call({}).details["outcome"] == "timeout"
    assert tools["echo"].call({"text": "again"}).content == "again"  # a new server
    assert provider.pool_connection().pid != first
    provider.close()
    no_leak()


def test_what_the_server_started_goes_with_it(no_leak):
    provider = mcp([PY, MISBEHAVING])
    tools = {t.spec.name: t for t in provider.open()}
    grandchild = int(tools["spawn_sleeper"].call({}).content)
    assert alive(grandchild)
    for t in tools.values():
        t.close()
    assert wait_until(lambda: not alive(grandchild), 5)
    no_leak()


def test_garbage_collected_tools_take_their_server_with_them(no_leak):
    provider = mcp([PY, MISBEHAVING])
    tools = provider.open()
    pid = _server_pid(tools)
    del tools
    gc.collect()
    assert wait_until(lambda: not alive(pid), 5)
    no_leak()
    pooled = mcp([PY, MISBEHAVING], scope="pool")
    pool_pid = _server_pid_of_pool(pooled)
    del pooled
    gc.collect()
    assert wait_until(lambda: not alive(pool_pid), 5)
    no_leak()


def _server_pid_of_pool(provider: McpProvider) -> int:
    connection = provider.pool_connection()
    assert connection.wait_ready()
    assert connection.pid is not None
    return connection.pid


SCRIPT = """
import sys, threading, time
import rft.envs.tools.mcp_connection as connection_module
from rft.envs.tools.mcp import McpProvider
if {no_setpriv}:
    connection_module.PDEATHSIG_WRAPPER.clear()  # what is tested is the finalizer, not the kernel
provider = McpProvider(command=[sys.executable, {server!r}], scope={scope!r}, timeout=600)
tools = {{t.spec.name: t for t in provider.open()}}
assert tools["echo"].call({{"text": "hi"}}).content == "hi"
print(tools["echo"].connection.pid, flush=True)
threading.Thread(target=tools["hang"].call, args=({{}},), daemon=True).start()  # a hung server ignores EOF
time.sleep(0.5)
{end}
"""


@pytest.mark.parametrize(
    ("scope", "end"),
    [
        ("episode", "sys.exit(0)  # interpreter exit without closing anything"),
        ("pool", "sys.exit(0)"),
        ("episode", "time.sleep(600)  # SIGKILLed by the test"),
    ],
)
def test_interpreter_exit_or_sigkill_of_the_trainer_leaves_no_server(scope, end):
    killed = "SIGKILL" in end
    code = textwrap.dedent(SCRIPT.format(server=MISBEHAVING, scope=scope, end=end, no_setpriv=not killed))
    proc = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    assert line.strip().isdigit(), line
    pid = int(line)
    if killed:
        time.sleep(1.0)
        assert alive(pid)
        proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) in (0, -signal.SIGKILL)
    assert wait_until(lambda: not alive(pid), 5), f"server {pid} outlived the trainer"
