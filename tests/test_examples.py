"""The grader examples under examples/graders/ load and grade; OpenAI's documented ones run as-is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rft.graders import load_grader

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "graders"

APLUSB = "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a + b << '\\n'; }\n"
SUMS = {"cases": [{"input": "2 2\n", "output": "4\n"}, {"input": "1 5", "output": "6"}]}

# (file, sample, item, expected status, expected passed, score check)
CASES = [
    ("openai_string_check.json", "Paris", {"reference_answer": "Paris"}, "ok", True, 1.0),
    ("openai_string_check.json", "paris", {"reference_answer": "Paris"}, "ok", False, 0.0),
    (
        "openai_text_similarity.json",
        "The capital is Paris",
        {"reference_answer": "the capital is Paris."},
        "ok",
        True,
        None,
    ),
    (
        "openai_text_similarity.json",
        "Berlin",
        {"reference_answer": "the capital is Paris."},
        "ok",
        False,
        None,
    ),
    (
        "openai_python.json",
        "The capital is Paris",
        {"reference_answer": "The capital is Paris"},
        "ok",
        True,
        1.0,
    ),
    ("openai_python.json", "London", {"reference_answer": "The capital is Paris"}, "ok", False, None),
    ("openai_python.json", "x", {"other": 1}, "error", False, 0.0),  # item lacks reference_answer: KeyError
    (
        "openai_multi.json",
        json.dumps({"name": "Ada Lovelace", "email": "ada@x.org"}),
        {"name": "Ada Lovelace", "email": "ada@x.org"},
        "ok",
        True,
        1.0,
    ),  # fmt: skip
    (
        "openai_multi.json",
        json.dumps({"name": "Ada Lovelace", "email": "ada@y.org"}),
        {"name": "Ada Lovelace", "email": "ada@x.org"},
        "ok",
        False,
        0.5,
    ),  # fmt: skip
    ("openai_multi.json", "not json", {"name": "Ada", "email": "a@x.org"}, "no_answer", False, 0.0),
    ("think_answer.yaml", "<think>6*7</think><answer> 42 </answer>", {"answer": "42"}, "ok", True, 1.0),
    ("think_answer.yaml", "<think>6*7</think><answer>41</answer>", {"answer": "42"}, "ok", False, 0.1),
    ("think_answer.yaml", "The answer is 42", {"answer": "42"}, "ok", False, 0.0),  # format fails: a real 0
    ("code_cpp.yaml", "```cpp\n" + APLUSB + "```", SUMS, "ok", True, 1.0),
    ("code_cpp.yaml", "```cpp\n" + APLUSB.replace("a + b", "a * b") + "```", SUMS, "ok", False, 0.5),
    ("code_cpp.yaml", "```cpp\nint main() { return }\n```", SUMS, "ok", False, 0.0),  # does not compile
]


@pytest.mark.parametrize(("name", "sample", "item", "status", "passed", "score"), CASES)
def test_example_grades(name, sample, item, status, passed, score):
    grade = load_grader(EXAMPLES / name).grade(sample, item)
    assert (grade.status, grade.passed) == (status, passed), grade
    if score is not None:
        assert grade.score == pytest.approx(score)


def test_every_example_loads_and_round_trips():
    files = sorted(EXAMPLES.glob("*.json")) + sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 6
    for path in files:
        grader = load_grader(path)
        assert load_grader(grader.spec()) == grader, path.name


def test_openai_score_model_example_loads_as_is():
    grader = load_grader(EXAMPLES / "openai_score_model.json")
    assert grader.type == "score_model" and grader.pass_threshold == 0.5
