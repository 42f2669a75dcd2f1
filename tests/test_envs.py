"""Gymnasium environments over task suites: make, check_env, stepping, user suites, the task checker, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env, check_returned_data_not_reused

import rft.envs
from rft.envs import SuiteEnv, SuiteError, register_suite
from rft.envs.check import DEFAULT_COMPLETION, check_task
from rft.graders import render

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder {DATA} is absent")
MBPP_DATA = DATA / "mbpp.jsonl"
needs_mbpp = pytest.mark.skipif(
    not MBPP_DATA.is_file(), reason=f"{MBPP_DATA} is absent (tests/test_mbpp.py checks mbpp-v0 on a fixture)"
)
# the code benchmarks' files (absent here: tests/test_code_bench.py checks them on fixtures)
CODE_BENCH = {
    "rft/humaneval-plus-v0": "HumanEvalPlus.jsonl",
    "rft/mbpp-plus-v0": "MbppPlus.jsonl",
    "rft/livecodebench-v0": "livecodebench.jsonl",
}
MATH500_DATA = DATA / "math500.jsonl"
needs_math500 = pytest.mark.skipif(
    not MATH500_DATA.is_file(),
    reason=f"{MATH500_DATA} is absent (tests/test_math_benchmarks.py checks math500-v0 on a fixture)",
)
GENERATED = [
    "rft/arithmetic-v0",
    "rft/linear-equations-v0",
    "rft/word-arithmetic-v0",
    "rft/fractions-v0",
    "rft/polynomials-v0",
    "rft/code-functions-v0",
    "rft/code-feedback-v0",
    "rft/python-tool-v0",
]
BENCHMARKS = ["rft/aime24-v0", "rft/amc23-v0", "rft/minerva-math-v0", "rft/olympiadbench-v0"]  # split: 1
FILE_BACKED = ["rft/gsm8k-v0", "rft/math-v0", "rft/humaneval-v0", *BENCHMARKS]
BUILTIN = GENERATED + FILE_BACKED
CODE = {"rft/humaneval-v0", "rft/code-functions-v0", "rft/code-feedback-v0"}  # graded by running code
RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))


def _param(env_id: str):
    marks = [needs_data] if env_id in FILE_BACKED else []
    if env_id == "rft/humaneval-v0":
        marks.append(pytest.mark.slow)
    if env_id == "rft/mbpp-v0":  # no data by default; tests/test_mbpp.py runs it on a fixture
        marks.append(needs_mbpp)
    if env_id in CODE_BENCH:
        path = DATA / CODE_BENCH[env_id]
        reason = f"{path} is absent (tests/test_code_bench.py checks {env_id} on a fixture)"
        if env_id == "rft/livecodebench-v0" and path.is_file():
            reason = (
                "LiveCodeBench has no reference solutions to check (tests/test_code_bench.py uses a fixture)"
            )
        marks.append(
            pytest.mark.skipif(not path.is_file() or env_id == "rft/livecodebench-v0", reason=reason)
        )
    if env_id == "rft/math500-v0":
        marks.append(needs_math500)
    return pytest.param(env_id, marks=marks, id=env_id.removeprefix("rft/"))


@pytest.fixture(autouse=True)
def _data(monkeypatch):
    monkeypatch.setenv("RFT_DATA", str(DATA))


def test_builtin_ids_are_registered():
    assert set(BUILTIN) <= set(rft.envs.registered_ids())
    assert set(BUILTIN) <= set(gym.registry)


@pytest.mark.parametrize("env_id", [_param(i) for i in BUILTIN])
def test_make_and_check_env(env_id):
    env = gym.make(env_id)
    assert isinstance(env.unwrapped, SuiteEnv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if env_id in CODE:
            # The code grader's details carry the run's measured wall and CPU seconds, so two steps with
            # the same seed and action usually differ in info (only there): check_env then stops at that
            # check, whose only successor (data not reused) runs below; everything else in info must be equal.
            try:
                check_env(env.unwrapped, skip_render_check=True)
            except AssertionError as e:
                assert "Deterministic step info" in str(e), e
            check_returned_data_not_reused(env.unwrapped)
            infos = []
            for _ in range(2):
                env.reset(seed=5)
                info = env.step("```python\ndef f():\n    return 0\n```")[4]
                for key in ("wall_s", "cpu_s"):
                    info["grade"]["details"].pop(key)
                infos.append(info)
            assert infos[0] == infos[1]
        else:
            check_env(env.unwrapped, skip_render_check=True)
    assert not [str(w.message) for w in caught], [str(w.message) for w in caught]
    obs, info = env.reset(seed=7)
    assert env.observation_space.contains(obs)
    messages = json.loads(obs)
    assert messages[-1]["role"] == "user" and messages[-1]["content"]
    assert env.reset(seed=7) == (obs, info)
    env.close()


@pytest.mark.parametrize("env_id", [_param(i) for i in BUILTIN])
def test_reference_scores_one_and_wrong_answer_zero(env_id):
    env = gym.make(env_id)
    for index in range(2):
        _, info = env.reset(options={"split": "heldout", "index": index})
        suite = env.unwrapped.suite
        item = suite.items("heldout")[index]
        right = str(render(suite.check.get("completion", DEFAULT_COMPLETION), {"item": item, "sample": {}}))
        _, reward, terminated, truncated, step_info = env.step(right)
        assert (reward, terminated, truncated) == (1.0, True, False), step_info["grade"]
        assert step_info["reference"] == info["reference"] and step_info["grade_failed"] is False
        json.dumps(step_info)
        env.reset(options={"split": "heldout", "index": index})
        wrong = suite.check.get("decoy", "The answer is \\boxed{-99991}.")
        _, reward, *_, step_info = env.step(wrong)
        assert reward == 0.0 and step_info["grade"]["status"] == "ok"
    env.close()


def test_reset_options_and_errors():
    env = gym.make("rft/arithmetic-v0")
    _, a = env.reset(options={"split": "heldout", "index": 3})
    assert a["split"] == "heldout" and a["index"] == 3
    assert env.reset(seed=1)[1]["id"] != env.reset(seed=2)[1]["id"]
    with pytest.raises(IndexError, match="out of range"):
        env.reset(options={"index": 10**6})
    with pytest.raises(SuiteError, match="split must be one of"):
        env.reset(options={"split": "test"})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"idx": 1})
    with pytest.raises(TypeError, match="completion text"):
        env.reset(seed=0)
        env.step(42)


def test_failed_grade_is_flagged_and_zero(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"q": "say hi", "a": "hi"}\n{"q": "say yo", "a": "yo"}\n')
    suite = tmp_path / "fail.yaml"
    suite.write_text(
        "id: fail-v0\nsource: {type: jsonl, path: rows.jsonl}\nfields: {reference: a}\nsplit: 0\n"
        "prompt: {user: '{{ item.q }}'}\n"
        "grader: {type: string_check, input: '{{ sample.output_text }}', reference: '{{ item.missing }}',"
        " operation: eq}\n"
    )
    env = SuiteEnv(str(suite))
    env.reset(seed=0)
    _, reward, *_, info = env.step("hi")
    assert reward == 0.0 and info["grade_failed"] is True and info["grade"]["status"] == "error"


USER_SUITE = """
id: squares-v0
description: squares from a user generator
source: {type: generator, name: "squaregen:squares", size: 40, seed: 0, params: {start: 2}}
fields: {id: id, reference: a}
prompt: {system: "Box the answer.", user: "{{ item.q }}"}
grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}"}
split: 0.25
"""

GEN = """
def squares(*, size, seed, start=1):
    for i in range(start, start + size):
        yield {"id": f"sq{i}", "q": f"What is {i} squared?", "a": str(i * i)}
"""


def test_user_suite_registers_without_editing_rft(tmp_path, monkeypatch):
    (tmp_path / "squaregen.py").write_text(textwrap.dedent(GEN))
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "squares.yaml"
    path.write_text(USER_SUITE)
    env_id = register_suite(path)
    try:
        assert env_id == "rft/squares-v0" and register_suite(path) == env_id  # idempotent
        env = gym.make(env_id)
        _, info = env.reset(seed=3)
        assert env.step(f"\\boxed{{{info['reference']}}}")[1] == 1.0
        assert check_task(env_id).ok
        other = tmp_path / "other" / "squares.yaml"
        other.parent.mkdir()
        other.write_text(USER_SUITE)
        with pytest.raises(SuiteError, match="already registered"):
            register_suite(other)
    finally:  # keep the registration local to this test
        gym.registry.pop(env_id, None)
        rft.envs.registry._REGISTERED.pop(env_id, None)


@pytest.mark.parametrize("env_id", [_param(i) for i in rft.envs.registered_ids()])  # $RFT_TASKS too
def test_task_checker_passes(env_id):
    report = check_task(env_id, n=2)
    assert report.ok, [c for c in report.checks if not c.ok]


def run_rft(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [RFT, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_cli_task_list_picks_up_rft_tasks(tmp_path):
    (tmp_path / "squaregen.py").write_text(textwrap.dedent(GEN))
    (tmp_path / "squares.yaml").write_text(USER_SUITE)
    res = run_rft(
        "task", "list", env={"RFT_TASKS": str(tmp_path), "PYTHONPATH": str(tmp_path), "COLUMNS": "200"}
    )
    assert res.returncode == 0, res.stderr
    for env_id in [*BUILTIN, "rft/squares-v0"]:
        assert env_id in res.stdout
    res = run_rft(
        "task", "check", "squares-v0", env={"RFT_TASKS": str(tmp_path), "PYTHONPATH": str(tmp_path)}
    )
    assert res.returncode == 0 and "all checks passed" in res.stdout, res.stdout + res.stderr


def test_cli_task_show_and_check(tmp_path):
    res = run_rft("task", "show", "arithmetic-v0", "--n", "3", env={"COLUMNS": "200"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("reference:") == 3 and res.stdout.count("What is") == 3
    res = run_rft("task", "check", "linear-equations-v0")
    assert res.returncode == 0 and "all checks passed" in res.stdout, res.stdout + res.stderr
    res = run_rft("task", "check", "nope-v0")
    assert res.returncode == 2 and "unknown task" in res.stderr
    res = run_rft("task", "check", "gsm8k-v0", env={"RFT_DATA": str(tmp_path)})
    assert res.returncode == 2 and "does not exist" in res.stderr, res.stderr
