"""The README's tool-using suite (examples/tools/calculator-v0.yaml): a calculator MCP server and the stateful
`python` tool in one `tools` episode, through the registry keys `mcp` and `python`; the tiny model's template
renders tools Hermes-style."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from rft.envs import SuiteEnv, get_suite, register_suite
from rft.envs.check import check_task
from rft.envs.tools import McpProvider, PythonSessionProvider
from rft.rollout import chat_prompt_ids
from rft.tiny import make_tokenizer

pytest.importorskip("mcp")
ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "examples" / "tools" / "calculator-v0.yaml"


@pytest.fixture(autouse=True)
def _from_the_checkout(monkeypatch):
    monkeypatch.chdir(ROOT)  # the suite names its server by a path relative to the checkout


def servers() -> list[int]:
    """Live processes running the example calculator server."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if b"examples/mcp/calculator.py" in cmd and state != b"Z":
            found.append(int(name))
    return found


def hermes(name: str, **arguments) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def test_the_entries_resolve_to_the_mcp_and_python_providers():
    suite = get_suite(SUITE)
    kinds = [type(p) for p in suite.episode.providers]
    assert kinds == [McpProvider, PythonSessionProvider]
    assert suite.episode.providers[1].timeout == 10  # the entry's own option; the rest from the episode


def test_an_episode_uses_both_tools_keeps_python_state_and_leaves_no_server(tmp_path):
    before = set(servers())
    env = SuiteEnv(get_suite(SUITE))
    env.use_chat_template("<tool_call>")  # a template that shows Hermes calls
    _, info = env.reset(options={"split": "train", "index": 0})
    obs, reward, term, _, step = env.step(hermes("add", a=2, b=3) + hermes("python", code="x = 6 * 7"))
    assert [m["content"] for m in json.loads(obs)[-2:]] == ["5.0", ""] and not term
    assert step["tool_stats"] == {"calls": 2, "errors": 0, "parse_failures": 0}
    obs, *_ = env.step(hermes("python", code="print(x)"))
    assert json.loads(obs)[-1]["content"].strip() == "42"  # the session kept x
    _, reward, term, _, _ = env.step(f"\\boxed{{{info['reference']}}}")
    assert reward == 1.0 and term
    env.reset(options={"split": "train", "index": 1})
    obs, *_ = env.step(hermes("python", code="print('x' in globals())"))
    assert json.loads(obs)[-1]["content"].strip() == "False"  # a new episode, a new session
    env.close()
    deadline = time.monotonic() + 10
    while set(servers()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not set(servers()) - before, "a calculator server outlived its episode"


def test_task_check_and_check_env_pass_on_the_example_suite():
    env_id = register_suite(SUITE)
    report = check_task(env_id, n=2)
    assert report.ok, [c for c in report.checks if not c.ok]
    names = [c.name for c in report.checks]
    assert "a python call sees the episode's earlier calls' variables" in names
    env = gym.make(env_id)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_the_tiny_template_renders_tools_hermes_style():
    tok = make_tokenizer(["What is 2 + 3?"])
    env = SuiteEnv(get_suite(SUITE))
    try:
        env.use_chat_template(tok.chat_template)
        assert env.tool_format == "hermes"
        env.reset(options={"split": "train", "index": 0})
        text = tok.decode(chat_prompt_ids(tok, env.messages, env.tool_schemas))
        assert "<tools>" in text and '"name": "add"' in text and '"name": "python"' in text
        plain = tok.decode(chat_prompt_ids(tok, env.messages))
        assert "<tools>" not in plain  # without tools the template is what it always was
    finally:
        env.close()
