"""Multi-turn episodes: feedback (grade, reply with what failed, retry) and tool use (sandboxed Python)."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from rft.envs import SuiteEnv, SuiteError, load_suite
from rft.envs.episode import Episode, GradeJob, ToolJob, feedback_text
from rft.graders import Grade, load_grader


def suite(episode: dict | None, **changes) -> dict:
    spec = {
        "id": "adder-v0",
        "source": {
            "type": "generator",
            "name": "arithmetic",
            "params": {"digits": 2, "operands": 2},
            "size": 50,
        },
        "fields": {"id": "id", "reference": "answer"},
        "prompt": {"user": "{{ item.question }}"},
        "grader": {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}"},
        "split": 0.0,
        **changes,
    }
    if episode is not None:
        spec["episode"] = episode
    return spec


def make(episode: dict | None, **changes) -> SuiteEnv:
    return SuiteEnv(load_suite(suite(episode, **changes)))


def boxed(info: dict) -> str:
    return f"\\boxed{{{info['reference']}}}"


def roles(obs: str) -> list[str]:
    return [m["role"] for m in json.loads(obs)]


def test_single_turn_is_the_default():
    env = make(None)
    _, info = env.reset(seed=0)
    obs, reward, term, trunc, step = env.step(boxed(info))
    assert (reward, term, trunc, step["turn"]) == (1.0, True, False, 1)
    assert roles(obs) == ["user", "assistant"]
    with pytest.raises(RuntimeError, match="ended"):
        env.step("again")


def test_feedback_episode_retries_until_right_or_out_of_turns():
    env = make({"type": "feedback", "max_turns": 3, "turn_penalty": 0.25})
    _, info = env.reset(seed=1)
    obs, reward, term, trunc, step = env.step("\\boxed{-1}")
    assert (reward, term, trunc) == (0.0, False, False)
    assert step["grade"]["score"] == 0.0 and not step["grade_failed"]
    msgs = json.loads(obs)
    assert roles(obs) == ["user", "assistant", "user"]
    assert "not correct" in msgs[-1]["content"] and info["reference"] not in msgs[-1]["content"]
    obs, reward, term, trunc, step = env.step(boxed(info))
    assert (reward, term, trunc, step["turn"]) == (0.75, True, False, 2)  # 1 - 0.25 for the extra turn
    assert roles(obs) == ["user", "assistant", "user", "assistant"]

    env.reset(seed=1)
    results = [env.step("\\boxed{-1}")[1:4] for _ in range(3)]
    assert results == [
        (0.0, False, False),
        (0.0, False, False),
        (0.0, False, True),
    ]  # out of turns: truncated


def test_no_answer_gets_feedback_that_says_so():
    env = make({"type": "feedback", "max_turns": 2})
    env.reset(seed=0)
    obs = env.step("I am not sure")[0]
    assert "No answer was found" in json.loads(obs)[-1]["content"]


def test_tool_episode_runs_code_then_grades_the_answer():
    env = make({"type": "tool", "max_turns": 3})
    _, info = env.reset(seed=2)
    expr = info["id"]
    obs, reward, term, trunc, step = env.step(f"Let me compute.\n<python>print({expr})</python>")
    assert (reward, term, trunc) == (0.0, False, False)
    assert roles(obs)[-1] == "tool" and json.loads(obs)[-1]["content"].strip() == info["reference"]
    assert step["tool"]["exit_code"] == 0 and "grade" not in step
    obs, reward, term, trunc, step = env.step(boxed(info))
    assert (reward, term, trunc) == (1.0, True, False)
    assert roles(obs) == ["user", "assistant", "tool", "assistant"]


def test_tool_errors_timeouts_and_the_last_turn():
    env = make({"type": "tool", "max_turns": 3, "tool_timeout": 0.5, "tool_output_chars": 50})
    env.reset(seed=0)
    out = json.loads(env.step("<python>1/0</python>")[0])[-1]["content"]
    assert "ZeroDivisionError" in out
    out = json.loads(env.step("<python>while True: pass</python>")[0])[-1]["content"]
    assert "timed out after 0.5 s" in out
    # the third turn is the last: a tool call there is not run, the message is graded
    obs, reward, term, trunc, step = env.step("<python>print('x' * 1000)</python>")
    assert (reward, term, trunc) == (0.0, True, False) and "grade" in step and "tool" not in step
    env.reset(seed=0)
    out = json.loads(env.step("<python>print('x' * 1000)</python>")[0])[-1]["content"]
    assert out.endswith("[output cut]") and len(out) < 80


def test_tool_code_is_sandboxed():
    env = make({"type": "tool", "max_turns": 2})
    env.reset(seed=0)
    code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\n    print('net')\nexcept OSError:\n    print('no net')"
    out = json.loads(env.step(f"<python>{code}</python>")[0])[-1]["content"]
    assert out.strip() == "no net"


def test_begin_and_finish_step_split():
    env = make({"type": "tool", "max_turns": 2})
    _, info = env.reset(seed=4)
    job = env.begin_step("<python>print(1)</python>")
    assert isinstance(job, ToolJob)
    with pytest.raises(RuntimeError, match="pending"):
        env.begin_step("x")
    with pytest.raises(TypeError, match="ToolResult"):
        env.finish_step(Grade(1.0))
    env.reset(seed=4)
    job = env.begin_step(boxed(info))
    assert isinstance(job, GradeJob)
    obs, reward, *_ = env.finish_step(job.run())
    assert reward == 1.0
    with pytest.raises(RuntimeError, match="no step is pending"):
        env.finish_step(Grade(1.0))


def test_a_failed_grade_ends_the_episode_masked():
    env = make({"type": "feedback", "max_turns": 3})
    env.reset(seed=0)
    env.begin_step("\\boxed{1}")
    obs, reward, term, trunc, step = env.finish_step(Grade.timeout("grader too slow"))
    assert (reward, term, trunc, step["grade_failed"]) == (0.0, True, False, True)


@pytest.mark.parametrize(
    ("episode", "message"),
    [
        ({"type": "chat"}, "episode.type must be one of"),
        ({"type": "single", "max_turns": 2}, "single-turn episode has max_turns 1"),
        ({"type": "feedback", "max_turns": 1}, "needs max_turns >= 2"),
        ({"type": "feedback", "feedback": "try again"}, "must contain '{{ feedback }}'"),
        ({"type": "tool", "tool_tag": "<py>"}, "tool_tag must be a tag name"),
        ({"type": "tool", "sandbox": "none"}, "unisolated"),
        ({"type": "tool", "turns": 3}, "unknown keys \\['turns'\\]"),
    ],
)
def test_episode_validation(episode, message):
    with pytest.raises(SuiteError, match=message):
        load_suite(suite(episode))


def test_defaults_for_multi_turn():
    assert Episode.from_spec({"type": "feedback"}).max_turns == 3
    assert Episode.from_spec(None) == Episode()


def test_code_feedback_lists_failing_tests_not_the_solution():
    grader = load_grader({"type": "code", "input": "{{ sample.output_text }}", "tests": "{{ item.tests }}"})
    item = {"tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 0) == 0"]}
    grade = grader.grade({"output_text": "def add(a, b):\n    return a * b\n"}, item)
    assert grade.status == "ok" and not grade.passed
    text = feedback_text(grade)
    assert "assert add(1, 2) == 3" in text and "assert add(2, 2) == 4" not in text  # 2*2 == 4 passes
    grade = grader.grade({"output_text": "def add(a, b):\n    return a +\n"}, item)
    assert "did not load" in feedback_text(grade) or "SyntaxError" in feedback_text(grade)


def test_python_tool_suite_is_registered():
    env = gym.make("rft/python-tool-v0")
    _, info = env.reset(seed=0)
    assert "<python>" in json.loads(env.reset(seed=0)[0])[0]["content"]
    obs = env.step(f"<python>print({info['id']})</python>")[0]
    assert json.loads(obs)[-1]["content"].strip() == info["reference"]
    env.close()
