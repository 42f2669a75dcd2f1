"""Every `rft` command, run as a subprocess with a bad input, ends in one line on stderr and exit status 2 (no
traceback); `--debug` / RFT_DEBUG=1 show the traceback; a bug ends in exit 1 with a hint; Ctrl-C in 130."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer

from rft.app.cli import app
from rft.app.errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USER, is_user_error

# A bad input for each command and subcommand (run in a folder holding bad.yaml, rows.jsonl, bad.jsonl, badeval/).
BAD_INPUTS: dict[str, list[str]] = {
    "grade": ["grade", "-g", "bad.yaml", "-i", "rows.jsonl"],  # malformed YAML spec
    "grader validate": ["grader", "validate", "bad.yaml"],
    "grader audit": ["grader", "audit", "-g", "missing.json", "-i", "rows.jsonl"],  # missing file
    "grader types": ["grader", "types", "extra"],  # takes no argument
    "serve": ["serve", "--model", "/nonexistent/model"],
    "diagnose": ["diagnose", "missing-run"],
    "demo": ["demo", "--set", "nonsense=1"],
    "run": ["run", "bad.yaml"],
    "export": ["export", "missing-run", "dest"],
    "sample": [
        "sample",
        "--model",
        "no-such-model",
        "--suite",
        "no-such-suite",
        "--out",
        "o.jsonl",
    ],  # model first
    "eval": ["eval", "--out", "ev", "--samples", "bad.jsonl"],  # malformed JSONL
    "compare": ["compare", "badeval", "badeval"],  # results.json is not JSON
    "task list": ["task", "list", "extra"],
    "task show": ["task", "show", "bad.yaml"],
    "task check": ["task", "check", "no-such-suite"],
    "task filter": ["task", "filter", "--model", "no-such-model", "--suite", "no-such-suite", "--out", "f"],
    "train sft": ["train", "sft", "--config", "bad.yaml"],
    "train dpo": ["train", "dpo", "--config", "missing.yaml"],
    "train grpo": [
        "train",
        "grpo",
        "--set",
        "model=m",
        "--set",
        "suite=s",
        "--set",
        "loss.beta=-1",
    ],  # invalid
    "train ppo": ["train", "ppo", "--set", "nosuchkey=1"],
    "sandbox serve": ["sandbox", "serve", "--token-file", "missing-token"],
    "config show": ["config", "show", "nosuchkind"],
    "import openai-job": ["import", "openai-job", "--train", "missing.jsonl", "--model", "m", "--out", "o"],
    "task overlap": ["task", "overlap", "--train", "no-such-suite", "--heldout", "aime24-v0"],
    "view": ["view", "missing-run"],
}


# What the one line must mention (the bad file, key or name).
MENTIONS = {
    "grade": "bad.yaml",
    "grader validate": "bad.yaml",
    "grader audit": "missing.json",
    "grader types": "extra",
    "serve": "/nonexistent/model",
    "diagnose": "missing-run",
    "demo": "nonsense",
    "run": "not valid YAML",
    "export": "missing-run",
    "sample": "no-such-model",
    "eval": "bad.jsonl",
    "compare": "badeval",
    "task list": "extra",
    "task show": "bad.yaml",
    "task check": "no-such-suite",
    "task filter": "no-such-model",
    "train sft": "bad.yaml",
    "train dpo": "missing.yaml",
    "train grpo": "beta",
    "train ppo": "nosuchkey",
    "sandbox serve": "missing-token",
    "config show": "nosuchkind",
    "import openai-job": "missing.jsonl",
    "task overlap": "no-such-suite",
    "view": "missing-run",
}


def command_paths(command=None, prefix: str = "") -> list[str]:
    """Every leaf command of the `rft` app, as "task show"."""
    command = command or typer.main.get_command(app)
    subs = getattr(command, "commands", None)
    if not subs:
        return [prefix.strip()]
    return [p for name, sub in subs.items() for p in command_paths(sub, f"{prefix} {name}")]


def rft(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "RFT_DEBUG"} | env
    return subprocess.run(
        [sys.executable, "-m", "rft", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    (d / "bad.yaml").write_text("a: [1, 2\n")
    (d / "bad.jsonl").write_text('{"a": 1\n')
    (d / "rows.jsonl").write_text(json.dumps({"item": {}, "sample": {"output_text": "1"}}) + "\n")
    (d / "badeval").mkdir()
    (d / "badeval" / "results.json").write_text("{\n")
    (d / "badeval" / "problems.jsonl").write_text("")
    return d


def test_every_command_has_a_bad_input_case():
    assert sorted(command_paths()) == sorted(BAD_INPUTS), "add a bad input for the new command to BAD_INPUTS"


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_a_user_error_is_one_line_and_exit_2(name, bad_dir):
    res = rft(BAD_INPUTS[name], bad_dir)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == EXIT_USER, res.stderr
    assert "Traceback" not in res.stderr and len(lines) == 1, res.stderr
    assert MENTIONS[name] in lines[0], lines[0]


@pytest.mark.parametrize("how", ["option", "env"])
def test_debug_shows_the_traceback(how, bad_dir):
    res = rft(["--debug", "run", "bad.yaml"], bad_dir) if how == "option" else rft(["run", "bad.yaml"], bad_dir,
                                                                                     RFT_DEBUG="1")  # fmt: skip
    assert res.returncode == EXIT_USER
    assert "Traceback (most recent call last)" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("not valid YAML")


def _run_app(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess:
    """A one-command App whose command runs `body`: how rft.app.errors ends what no command expected."""
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(f"""
        from rft.app.errors import App, add_global_options
        app = App()
        add_global_options(app)
        @app.command()
        def cmd() -> None:
            {body}
        @app.command()
        def other() -> None:
            pass
        app()
    """))  # fmt: skip
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)


def test_a_bug_is_one_line_with_a_hint_and_exit_1(tmp_path):
    res = _run_app(tmp_path, "{}['missing']", "cmd")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == EXIT_BUG and "Traceback" not in res.stderr
    assert lines[0] == "internal error: KeyError: 'missing'" and "--debug" in lines[1] and len(lines) == 2
    res = _run_app(tmp_path, "{}['missing']", "--debug", "cmd")
    assert res.returncode == EXIT_BUG and "Traceback (most recent call last)" in res.stderr


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    res = _run_app(tmp_path, "raise KeyboardInterrupt", "cmd")
    assert res.returncode == EXIT_INTERRUPTED and res.stderr.strip() == "interrupted (Ctrl-C)"


def test_os_errors_say_what_and_which_file(tmp_path):
    res = _run_app(tmp_path, "open('/nonexistent/x.yaml')", "cmd")
    assert (
        res.returncode == EXIT_USER and res.stderr.strip() == "No such file or directory: /nonexistent/x.yaml"
    )
    res = _run_app(tmp_path, "import socket; socket.create_connection(('127.0.0.1', 9), timeout=5)", "cmd")
    assert res.returncode == EXIT_USER and res.stderr.strip() == "Connection refused"


def test_network_and_input_errors_are_user_errors_and_the_rest_are_bugs():
    import httpx2
    import yaml

    from rft.config import ConfigError
    from rft.graders import GraderSpecError

    assert is_user_error(httpx2.ConnectError("connection refused"))
    assert is_user_error(ConnectionRefusedError(111, "Connection refused"))
    assert is_user_error(yaml.YAMLError("bad")) and is_user_error(json.JSONDecodeError("x", "doc", 0))
    assert is_user_error(ConfigError("x")) and is_user_error(GraderSpecError("x"))
    assert not is_user_error(KeyError("x")) and not is_user_error(TypeError("x"))


@pytest.mark.parametrize("args", [[], ["train"]])
def test_a_group_run_bare_prints_its_help(args, tmp_path):
    res = rft(args, tmp_path)
    assert res.returncode == EXIT_USER and res.stderr.startswith("Usage: ")
    assert "Commands:" in res.stderr and "Traceback" not in res.stderr
