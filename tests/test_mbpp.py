"""The mbpp-v0 suite on a hand-written fixture (both Hugging Face layouts), and source alternatives."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env, check_returned_data_not_reused

import rft.envs
import rft.tasks
from rft.envs import SuiteEnv, SuiteError, load_suite
from rft.envs.check import check_task
from rft.envs.suite import Source, Sources

FIXTURE = Path(__file__).resolve().parent / "data" / "mbpp_sample.jsonl"
MBPP = Path(rft.tasks.__file__).resolve().parent / "mbpp-v0.yaml"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
WRONG = "```python\ndef {name}(*args):\n    return 12345\n```"

GRADER = {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}"}
GENERATED = {"type": "generator", "name": "arithmetic", "size": 20, "seed": 0}


def _forget_mbpp() -> None:
    rft.envs.registry._SUITES.pop(str(MBPP), None)  # get_suite caches by path; its items are cached per suite


@pytest.fixture
def mbpp_data(tmp_path, monkeypatch):
    """$RFT_DATA holds the fixture as mbpp.jsonl; the suite is loaded afresh."""
    shutil.copy(FIXTURE, tmp_path / "mbpp.jsonl")
    monkeypatch.setenv("RFT_DATA", str(tmp_path))
    _forget_mbpp()
    yield tmp_path
    _forget_mbpp()


def test_fixture_has_both_layouts():
    sanitized = [r for r in ROWS if "prompt" in r and "test_imports" in r]
    full = [r for r in ROWS if "text" in r and "test_setup_code" in r]
    assert len(sanitized) == 6 and len(full) == 2 and len(ROWS) == 8


def test_rows_are_normalised_and_prompted_like_mbpp(mbpp_data):
    env = gym.make("rft/mbpp-v0")
    suite = env.unwrapped.suite
    assert isinstance(suite.source, Sources) and suite.source.used is None
    items = {it["id"]: it for it in suite.items()}
    assert suite.source.used is suite.source.alternatives[0]  # the jsonl file, not the hub
    assert set(items) == {str(r["task_id"]) for r in ROWS}
    assert items["9003"]["test_setup_code"] == "import math"  # sanitized: from test_imports
    assert items["9008"]["test_setup_code"].startswith("DATA = ")  # full: as given
    user = suite.messages(items["9003"])[-1]["content"]
    assert user.startswith("Write a function to compute the area of a circle from its radius.\n")
    assert "Your code should pass these tests:\n\nassert math.isclose(circle_area(1)" in user
    assert user.endswith("assert circle_area(0) == 0")
    assert items["9008"]["text"] in suite.messages(items["9008"])[-1]["content"]
    assert "```python" in suite.messages(items["9008"])[0]["content"]
    env.close()


def test_make_and_check_env(mbpp_data):
    env = gym.make("rft/mbpp-v0")
    assert isinstance(env.unwrapped, SuiteEnv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # As for humaneval (tests/test_envs.py): the code grader's details carry measured wall and CPU
        # seconds, so two equal steps may differ in info there and only there.
        try:
            check_env(env.unwrapped, skip_render_check=True)
        except AssertionError as e:
            assert "Deterministic step info" in str(e), e
        check_returned_data_not_reused(env.unwrapped)
    assert not [str(w.message) for w in caught], [str(w.message) for w in caught]
    infos = []
    for _ in range(2):
        env.reset(seed=5)
        info = env.step("```python\ndef f():\n    return 0\n```")[4]
        for key in ("wall_s", "cpu_s"):
            info["grade"]["details"].pop(key)
        infos.append(info)
    assert infos[0] == infos[1]
    env.close()


def test_reference_scores_one_and_wrong_answer_zero(mbpp_data):
    env = gym.make("rft/mbpp-v0")
    for split in ("train", "heldout"):
        for index in range(len(env.unwrapped.items(split))):
            _, info = env.reset(options={"split": split, "index": index})
            item = env.unwrapped.items(split)[index]
            _, reward, terminated, truncated, step_info = env.step(f"```python\n{info['reference']}\n```")
            assert (reward, terminated, truncated) == (1.0, True, False), step_info["grade"]
            assert step_info["grade_failed"] is False
            json.dumps(step_info)
            name = item["test_list"][0].split("(")[0].split()[-1]  # the function the first assert calls
            env.reset(options={"split": split, "index": index})
            _, reward, *_, step_info = env.step(WRONG.format(name=name))
            assert reward == 0.0 and step_info["grade"]["status"] == "ok", step_info["grade"]
    env.close()


def test_task_checker_passes(mbpp_data):
    report = check_task("rft/mbpp-v0", n=6)
    assert report.ok, [c for c in report.checks if not c.ok]


# -- source alternatives


def _suite(source) -> rft.envs.Suite:
    spec = {"id": "alt-v0", "source": source, "fields": {"reference": "answer"},
            "prompt": {"user": "{{ item.question }}"}, "grader": GRADER}  # fmt: skip
    return load_suite(spec)


def _jsonl(tmp_path: Path, name: str, answer: str) -> str:
    p = tmp_path / name
    p.write_text(json.dumps({"question": f"from {name}", "answer": answer}) + "\n")
    return str(p)


def test_first_available_source_wins(tmp_path):
    a, b = _jsonl(tmp_path, "a.jsonl", "1"), _jsonl(tmp_path, "b.jsonl", "2")
    s = _suite([{"type": "jsonl", "path": a}, {"type": "jsonl", "path": b}, GENERATED])
    assert [i["reference"] for i in s.items()] == ["1"] and s.source.used == s.source.alternatives[0]
    assert s.source.type == "jsonl" and s.source.path == a  # the first alternative, for `rft task list`


def test_a_missing_file_falls_through_to_the_next(tmp_path):
    b = _jsonl(tmp_path, "b.jsonl", "2")
    s = _suite([{"type": "jsonl", "path": str(tmp_path / "nope.jsonl")}, {"type": "jsonl", "path": b}])
    assert [i["reference"] for i in s.items()] == ["2"] and s.source.used == s.source.alternatives[1]
    g = _suite([{"type": "jsonl", "path": "${RFT_DATA}/nope.jsonl"}, GENERATED])
    assert len(g.items()) > 1 and g.source.used is not None and g.source.used.type == "generator"


def test_a_broken_file_is_an_error_not_a_fall_through(tmp_path):
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    s = _suite([{"type": "jsonl", "path": str(tmp_path / "bad.jsonl")}, GENERATED])
    with pytest.raises(SuiteError, match="not JSON"):
        s.items()


def test_no_available_source_names_each_alternative_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("RFT_DATA", str(tmp_path))
    if importlib.util.find_spec("datasets") is not None:
        import datasets  # noqa: F401  (imported before the clock starts: the import alone takes ~1 s)
    s = _suite(
        [
            {"type": "jsonl", "path": "${RFT_DATA}/mbpp.jsonl"},
            {"type": "hf", "name": "rft-tests-nobody/no-such-dataset-7f3a", "split": "test"},
        ],
    )
    start = time.monotonic()
    with pytest.raises(SuiteError) as e:
        s.items()
    took = time.monotonic() - start
    msg = str(e.value)
    assert "none of the 2 sources is available" in msg
    assert f"1. jsonl ${{RFT_DATA}}/mbpp.jsonl: jsonl file {tmp_path / 'mbpp.jsonl'} does not exist" in msg
    assert "2. hf rft-tests-nobody/no-such-dataset-7f3a (split test): " in msg
    assert f"to fix: put mbpp.jsonl in {tmp_path}" in msg and "Hugging Face hub" in msg
    assert took < 5, f"an unavailable hub took {took:.1f} s to report"
    assert s.source.used is None


def test_builtin_mbpp_without_data_says_how_to_fix(tmp_path):
    s = load_suite(MBPP)
    assert isinstance(s.source, Sources) and [a.type for a in s.source.alternatives] == ["jsonl", "hf"]
    assert all(isinstance(a, Source) and a.map == "mbpp" for a in s.source.alternatives)
    env = {
        **os.environ,
        "RFT_DATA": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "COLUMNS": "400",
    }
    res = subprocess.run(
        [RFT, "task", "check", "mbpp-v0"], capture_output=True, text=True, timeout=120, env=env
    )
    out = res.stderr
    assert res.returncode == 2, res.stdout + res.stderr
    assert "none of the 2 sources is available" in out and "mbpp.jsonl does not exist" in out, out
    assert "hf google-research-datasets/mbpp (config sanitized, split test)" in out, out


@pytest.mark.parametrize(
    "source, message",
    [
        ([GENERATED, {"type": "csv", "path": "x"}], "source[1]: source.type must be one of"),
        ([{"type": "jsonl", "path": "x", "bogus": 1}], "source[0]: unknown key 'bogus'"),
        ([GENERATED, "x.jsonl"], "source[1] must be a mapping"),
        ([], "source is an empty list"),
        ("x.jsonl", "source must be a mapping or a list"),
        ([{"type": "jsonl", "path": "x", "map": "nope"}], "source[0]: unknown source.map 'nope'"),
    ],
)
def test_invalid_alternatives_fail_at_load(tmp_path, source, message):
    with pytest.raises(SuiteError, match=message.replace("[", r"\[")):
        _suite(source)


def test_user_row_map(tmp_path, monkeypatch):
    (tmp_path / "rowmaps.py").write_text(
        "def upper(row):\n    return {**row, 'question': row['q'].upper()}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "r.jsonl").write_text('{"q": "hi", "answer": "1"}\n')
    s = _suite([{"type": "jsonl", "path": str(tmp_path / "r.jsonl"), "map": "rowmaps:upper"}])
    assert s.messages(s.items()[0])[-1]["content"] == "HI"
    bad = _suite({"type": "jsonl", "path": str(tmp_path / "r.jsonl"), "map": "rowmaps:nope"})
    with pytest.raises(SuiteError, match="source.map 'rowmaps:nope' cannot be imported"):
        bad.items()
