"""The math benchmark suites (split: 1): aime24-v0, amc23-v0, minerva-math-v0, olympiadbench-v0 on the shared
benchmark files (skipped where absent), math500-v0 on a hand-written fixture in MATH-500's schema, and the row
maps that give each benchmark's rows, local or Hugging Face layout, their `problem` and `answer`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import rft.envs
import rft.tasks
from rft.envs import SuiteError, get_suite
from rft.envs.bench_rows import amc_row, last_boxed, minerva_row, olympiadbench_row
from rft.envs.check import check_task
from rft.envs.sources import Source

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCH = DATA / "bench"
FILES = {"aime24-v0": "aime24.jsonl", "amc23-v0": "amc23.jsonl", "minerva-math-v0": "minerva_math.jsonl",
         "olympiadbench-v0": "olympiadbench.jsonl"}  # fmt: skip
ROWS = {"aime24-v0": 30, "amc23-v0": 40, "minerva-math-v0": 272, "olympiadbench-v0": 675}
FIXTURE = Path(__file__).resolve().parent / "data" / "math500_sample.jsonl"
MATH500 = Path(rft.tasks.__file__).resolve().parent / "math500-v0.yaml"
GOLD = "We check the result once more.\n\nThe final answer is $\\boxed{{{}}}$."
_LAST_INT = re.compile(r"\d+(?!.*\d)", re.S)


def _bench(suite_id: str) -> Any:
    path = BENCH / FILES[suite_id]
    marks = [pytest.mark.skipif(not path.is_file(), reason=f"{path} is absent")]
    if suite_id in ("minerva-math-v0", "olympiadbench-v0"):
        marks.append(pytest.mark.slow)  # a few hundred items, stepped one by one: 10-20 s each
    return pytest.param(suite_id, marks=marks, id=suite_id)


@pytest.fixture(autouse=True)
def _data(monkeypatch):
    monkeypatch.setenv("RFT_DATA", str(DATA))


def near_miss(gold: str, tolerance: str = "") -> str:
    """The gold with its last number changed by one (twice the tolerance where the item has one)."""
    if tolerance:
        return f"{float(gold) + 2 * float(tolerance):g}"
    m = _LAST_INT.search(gold)
    return "-31415926" if m is None else f"{gold[: m.start()]}{int(m.group()) + 1}{gold[m.end() :]}"


# ---- the benchmark files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite_id", [_bench(s) for s in ROWS if s not in ("minerva-math-v0", "olympiadbench-v0")]
                         + [pytest.param(s, marks=pytest.mark.skipif(not (BENCH / FILES[s]).is_file(), reason="absent"),
                                         id=s) for s in ("minerva-math-v0", "olympiadbench-v0")])  # fmt: skip
def test_every_gold_scores_one_and_every_near_miss_zero(suite_id):
    suite = get_suite(suite_id)
    assert suite.heldout_only and suite.items("train") == []
    items = suite.items("heldout")
    assert len(items) == ROWS[suite_id]
    grader = suite.load_grader()
    failed = []
    for item in items:
        gold = str(item["reference"])
        right = grader.grade({"output_text": GOLD.format(gold)}, item)
        wrong = grader.grade({"output_text": GOLD.format(near_miss(gold, item.get("tolerance", "")))}, item)
        if right.score != 1.0 or wrong.score != 0.0 or "error" in (right.status, wrong.status):
            failed.append((item["id"], gold, right.score, right.details, wrong.score, wrong.extracted))
    assert not failed, failed[:5]


@pytest.mark.parametrize("suite_id", [_bench(s) for s in ROWS])
def test_task_check_steps_every_item(suite_id):
    report = check_task(f"rft/{suite_id}", n=None)
    assert report.ok, [c for c in report.checks if not c.ok][:5]
    steps = [c for c in report.checks if c.name.startswith("reference answer scores 1")]
    assert len(steps) == ROWS[suite_id]


@pytest.mark.skipif(not (BENCH / "amc23.jsonl").is_file(), reason="the AMC 2023 file is absent")
def test_amc_answers_are_integers_and_the_float_form_still_passes():
    suite = get_suite("amc23-v0")
    item = suite.items("heldout")[0]
    assert item["reference"] == "27" and item["answer"] == "27"
    grader = suite.load_grader()
    for text in ("27", "27.0", "27.00", "x = 27"):
        assert grader.grade({"output_text": GOLD.format(text)}, item).score == 1.0, text
    assert grader.grade({"output_text": GOLD.format("27.1")}, item).score == 0.0


@pytest.mark.skipif(not (BENCH / "olympiadbench.jsonl").is_file(), reason="the OlympiadBench file is absent")
def test_olympiadbench_tolerance_row_reads_its_error():
    suite = get_suite("olympiadbench-v0")
    (item,) = [it for it in suite.items("heldout") if it["tolerance"]]
    assert (item["reference"], item["tolerance"], item["unit"]) == ("4.2", "1e-1", "%")
    grader = suite.load_grader()
    for text, score in (
        ("4.2", 1.0),
        ("4.25", 1.0),
        ("4.2\\%", 1.0),
        ("4.15 \\%", 1.0),
        ("4.35", 0.0),
        ("5", 0.0),
    ):
        assert grader.grade({"output_text": GOLD.format(text)}, item).score == score, text


# ---- row maps ------------------------------------------------------------------------------------------------


def test_amc_row_states_integral_floats_as_integers():
    assert amc_row({"id": 0, "question": "Q?", "answer": 27.0})["answer"] == "27"
    assert amc_row({"id": 0, "problem": "Q?", "answer": 2.5})["answer"] == "2.5"
    assert amc_row({"id": 0, "question": "Q?", "answer": "-1"}) == {"id": 0, "question": "Q?", "answer": "-1",
                                                                     "problem": "Q?"}  # fmt: skip
    with pytest.raises(ValueError, match="no `answer`"):
        amc_row({"id": 0, "question": "Q?"})
    with pytest.raises(ValueError, match="no `problem` or `question`"):
        amc_row({"id": 0, "answer": 3.0})


def test_minerva_row_takes_the_last_box_with_nested_braces():
    row = minerva_row({"problem": "P", "solution": "first \\boxed{1} then $\\boxed{\\frac{a}{b^{2}}} \\mathrm{~m}$",
                       "idx": 3})  # fmt: skip
    assert row["answer"] == "\\frac{a}{b^{2}}"
    assert (
        minerva_row({"question": "P", "answer": "5", "solution": "\\boxed{4}"})["answer"] == "5"
    )  # hub layout
    assert last_boxed("\\boxed{x} and \\boxed{unbalanced") == "x"
    with pytest.raises(ValueError, match="no `answer` and no"):
        minerva_row({"problem": "P", "solution": "no box"})


@pytest.mark.parametrize(
    ("final", "answer"),
    [
        (["2"], "2"),
        ("['2']", "2"),  # a list written as a string
        (["$69$,$84$"], "69,84"),
        (["$(1,8,19), (2,7,13)$"], "(1,8,19), (2,7,13)"),
        (["$f(x)=2 x$", "$g(x)=1$"], "f(x)=2 x, g(x)=1"),
        ('["$\\\\frac{1}{2}$", "3"]', "\\frac{1}{2}, 3"),
    ],
)
def test_olympiadbench_row_joins_its_final_answers(final, answer):
    row = olympiadbench_row({"id": 1, "question": "Q", "final_answer": final, "error": None})
    assert (row["problem"], row["answer"], row["tolerance"]) == ("Q", answer, "")


def test_olympiadbench_row_errors_say_what_is_wrong():
    assert (
        olympiadbench_row({"question": "Q", "final_answer": ["4.2"], "error": "1e-1"})["tolerance"] == "1e-1"
    )
    with pytest.raises(ValueError, match="not a number"):
        olympiadbench_row({"question": "Q", "final_answer": ["4.2"], "error": "ten"})
    with pytest.raises(ValueError, match="non-empty list"):
        olympiadbench_row({"question": "Q", "final_answer": []})
    with pytest.raises(ValueError, match="not a list literal"):
        olympiadbench_row({"question": "Q", "final_answer": "['2'"})
    with pytest.raises(ValueError, match="no `final_answer`"):
        olympiadbench_row({"question": "Q", "answer": "2"})


def test_a_map_failure_names_the_map(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text(json.dumps({"question": "Q", "final_answer": []}) + "\n")
    with pytest.raises(SuiteError, match="source.map 'olympiadbench' failed"):
        Source(type="jsonl", path=str(p), map="olympiadbench").rows()


# ---- MATH-500 on a fixture -----------------------------------------------------------------------------------


def _forget_math500() -> None:
    rft.envs.registry._SUITES.pop(
        str(MATH500), None
    )  # get_suite caches by path; its items are cached per suite


@pytest.fixture
def math500_data(tmp_path, monkeypatch):
    shutil.copy(FIXTURE, tmp_path / "math500.jsonl")
    monkeypatch.setenv("RFT_DATA", str(tmp_path))
    _forget_math500()
    yield tmp_path
    _forget_math500()


def test_math500_fixture_has_the_hub_schema():
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    for r in rows:
        assert set(r) == {"problem", "solution", "answer", "subject", "level", "unique_id"}
        assert last_boxed(r["solution"]) == r["answer"]  # as in MATH: the answer is the solution's box


def test_math500_loads_from_the_local_file_first(math500_data):
    suite = get_suite("math500-v0")
    items = suite.items("heldout")
    assert len(items) == 6 and suite.items("train") == []
    assert suite.source.used is not None and suite.source.used.type == "jsonl"
    assert items[0]["id"] == "test/precalculus/fixture-1.json"
    assert items[0]["reference"] == "\\left( 2, \\frac{3 \\pi}{2} \\right)"
    assert [a.label for a in suite.source.alternatives][1] == "hf HuggingFaceH4/MATH-500 (split test)"


def test_math500_task_check_and_near_misses(math500_data):
    report = check_task("rft/math500-v0", n=None)
    assert report.ok, [c for c in report.checks if not c.ok]
    env = gym.make("rft/math500-v0")
    grader = env.unwrapped.suite.load_grader()
    for item in env.unwrapped.items("heldout"):
        wrong = {"\\text{(B)}": "\\text{(C)}"}.get(item["reference"], near_miss(item["reference"]))
        assert grader.grade({"output_text": GOLD.format(wrong)}, item).score == 0.0, (
            item["reference"],
            wrong,
        )
    env.close()


def test_math500_without_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RFT_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network: the hub alternative fails at once
    _forget_math500()
    try:
        with pytest.raises(SuiteError, match="math500.jsonl"):
            get_suite("math500-v0").items("heldout")
    finally:
        _forget_math500()
