"""Contamination reports (`rft.envs.overlap`, `rft task overlap`): planted duplicates of each kind, a clean
pair, the command's exit status and JSON, and every built-in training suite against every benchmark suite."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import rft.envs
from rft.app.cli import app
from rft.app.overlap_cli import OVERLAP_FOUND_EXIT
from rft.envs import SuiteError, load_suite, overlap
from rft.envs.contamination import OverlapIndex, normalised, words
from rft.envs.sources import SourceUnavailable

GRADER = {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}"}

# Train problems and the held-out problem planted against each (the clean one shares only common words).
TRAIN = {
    "t-exact": "A baker sells 24 muffins in the morning and 18 in the afternoon. How many muffins does she sell?",
    "t-numbers": (
        "Tom has 12 red marbles and 7 blue marbles. He gives 3 red marbles to Ann and buys 5 blue ones. "
        "How many marbles does Tom have now?"
    ),
    "t-reworded": (
        "A rectangular garden is 30 meters long. The gardener plants a row of tulips along each of the four "
        "sides of the garden, one tulip every meter. How many tulips does she plant?"
    ),
    "t-clean": "Find the number of positive divisors of 360.",
}
HELDOUT = {
    "h-exact": "a baker sells 24 muffins in the morning   and 18 in the afternoon; how many muffins does she sell",
    "h-numbers": (
        "Tom has 15 red marbles and 9 blue marbles. He gives 4 red marbles to Ann and buys 2 blue ones. "
        "How many marbles does Tom have now?"
    ),
    "h-reworded": (
        "Along each of the four sides of the garden, one tulip every meter, a gardener plants a row of tulips. "
        "The garden is a square whose area is 400 square meters. Count the tulips."
    ),
    "h-clean": "How many positive integers less than 1000 are perfect cubes?",
}
EXPECTED = {"h-exact": ("exact", "t-exact"), "h-numbers": ("near", "t-numbers"),
            "h-reworded": ("ngram", "t-reworded")}  # fmt: skip


def write_suite(tmp_path: Path, name: str, rows: dict[str, str], split: float) -> Path:
    data = tmp_path / f"{name}.jsonl"
    data.write_text(
        "".join(json.dumps({"id": k, "question": q, "answer": "1"}) + "\n" for k, q in rows.items())
    )
    spec = {"id": f"{name}-v0", "source": {"type": "jsonl", "path": str(data)},
            "fields": {"id": "id", "reference": "answer"},
            "prompt": {"system": "Box the answer.", "user": "{{ item.question }}"}, "grader": GRADER,
            "split": split}  # fmt: skip
    path = tmp_path / f"{name}-v0.yaml"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture
def planted(tmp_path):
    """(train suite file: every row in its train split, benchmark suite file: every row held-out)."""
    return write_suite(tmp_path, "train", TRAIN, 0.0), write_suite(tmp_path, "bench", HELDOUT, 1.0)


def test_each_planted_duplicate_is_reported_under_its_kind_and_the_clean_pair_is_not(planted):
    train, bench = planted
    report = overlap(train, bench)
    assert (report.train, report.heldout, report.train_items, report.heldout_items) == (
        "train-v0",
        "bench-v0",
        4,
        4,
    )
    got = {m.heldout_id: (m.kind, m.train_id) for m in report.matches}
    assert got == EXPECTED  # nothing for h-clean
    by_id = {m.heldout_id: m for m in report.matches}
    assert by_id["h-exact"].score == 1.0
    assert by_id["h-numbers"].score == 1.0  # the same problem with other numbers
    reworded = by_id["h-reworded"]
    assert reworded.shared == "along each of the four sides of the garden one tulip every meter"
    assert reworded.score < report.threshold
    assert reworded.shared in " ".join(words(reworded.train_text))
    assert report.counts() == {"exact": 1, "near": 1, "ngram": 1} and not report.clean
    assert overlap(train, bench, n=30).counts() == {
        "exact": 1,
        "near": 1,
        "ngram": 0,
    }  # no 30-word run shared


def test_near_duplicates_need_the_similarity_threshold():
    base = (
        "Sara reads 14 pages of a book on Monday and twice as many on Tuesday. How many pages has she read?"
    )
    index = OverlapIndex([base], ["b"])
    edited = "Sara reads 20 pages of her book on Monday and twice as many pages on Tuesday. How many pages did she read?"
    m = index.match(edited)
    assert m is not None and m.kind == "near" and 0.85 <= m.score < 1.0
    assert index.match(edited, threshold=0.99) is None  # no 13-gram in common either
    # the same scaffold, another question: not the same problem
    other = "Sara reads 14 pages of a book on Monday. Which day of the week will she finish the book?"
    assert index.match(other) is None


def test_latex_spacing_and_markup_do_not_hide_a_duplicate():
    train = r"Let $a_1,$ $a_2,$ $\dots$ be a sequence with $a_{n+1} = \dfrac{a_n}{2} + 3$. If $a_1 = 10$, find $a_5.$"
    held = r"Let $a_{1}, a_{2}, \ldots$ be a sequence with $a_{n+1}=\frac{a_{n}}{2}+3$. If $a_{1}=10$, find $a_{5}$."
    m = OverlapIndex([train]).match(held)
    assert m is not None and m.kind == "near" and m.score == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=6), st.data())
def test_changing_the_numbers_keeps_the_normalised_text(numbers, data):
    template = (
        "A shop has {} boxes with {} pens each, sells {} pens, gets {} more, keeps {} and gives away {}."
    )
    text = template.format(*(numbers + [1] * 6)[:6])
    others = data.draw(st.lists(st.integers(0, 10**6), min_size=6, max_size=6))
    other = template.format(*others)
    assert normalised(text) == normalised(other)
    shouted = re.sub(r" ", "   ", text.upper())
    m = OverlapIndex([text]).match(shouted)
    assert m is not None and m.kind == "exact"


def test_a_benchmark_is_not_a_training_suite_and_errors_say_what_to_do(planted):
    train, bench = planted
    with pytest.raises(SuiteError, match="bench-v0 is a benchmark .*give it as the held-out suite"):
        overlap(bench, train)
    with pytest.raises(ValueError, match=r"threshold .* must be in \(0, 1\]"):
        overlap(train, bench, threshold=0)
    with pytest.raises(SuiteError, match="no held-out items .*split > 0"):
        overlap(train, train)  # split 0: no held-out split


runner = CliRunner()


def test_the_command_exits_1_on_overlap_0_when_clean_and_writes_every_match(planted, tmp_path):
    train, bench = planted
    res = runner.invoke(app, ["task", "overlap", "--train", str(train), "--heldout", str(bench), "--out",
                              str(tmp_path / "r.json"), "--show", "1"])  # fmt: skip
    assert res.exit_code == OVERLAP_FOUND_EXIT == 1, res.output
    text = " ".join(res.output.split())
    assert "exact 1.00: bench-v0 h-exact ~ train-v0 t-exact" in text
    assert "near 1.00: bench-v0 h-numbers ~ train-v0 t-numbers" in text
    assert "shared: 'along each of the four sides" in text
    assert "2 held-out item(s) overlap a train item (exact,near)" in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failed"] and report["fail_on"] == ["exact", "near"]
    (r,) = report["reports"]
    assert r["counts"] == {"exact": 1, "near": 1, "ngram": 1}
    assert {m["heldout_id"] for m in r["matches"]} == set(EXPECTED)

    clean = write_suite(tmp_path, "clean", {"c1": HELDOUT["h-clean"], "c2": HELDOUT["h-reworded"]}, 1.0)
    res = runner.invoke(app, ["task", "overlap", "--train", str(train), "--heldout", str(clean)])
    assert res.exit_code == 0 and "clean: no exact or near overlap" in res.output, res.output
    strict = ["task", "overlap", "--train", str(train), "--heldout", str(clean), "--fail-on", "exact,near,ngram"]  # fmt: skip
    assert runner.invoke(app, strict).exit_code == 1  # the shared 13-gram counts when asked to


def test_help_states_the_exit_status_and_the_default_kinds():
    res = runner.invoke(app, ["task", "overlap", "--help"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0
    assert f"Exit status: 0 no overlap of the --fail-on kinds; {OVERLAP_FOUND_EXIT} at least one" in text
    assert "[default: exact,near]" in text and "[default: 13]" in text and "[default: 0.85]" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fail-on", "typo"], "--fail-on takes kinds among exact,near,ngram"),
        (["--show", "-1"], "--show must be >= 0"),
        (["--threshold", "1.5"], "threshold"),
    ],
)
def test_bad_options_are_user_errors(planted, args, message):
    train, bench = planted
    res = runner.invoke(app, ["task", "overlap", "--train", str(train), "--heldout", str(bench), *args])
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output


def test_a_benchmark_given_as_train_is_a_user_error(planted):
    train, bench = planted
    res = runner.invoke(app, ["task", "overlap", "--train", str(bench), "--heldout", str(train)])
    assert res.exit_code == 2 and "is a benchmark" in res.output


def test_heldout_benchmarks_means_every_registered_benchmark_and_skips_those_without_data(
    planted, monkeypatch
):
    train, bench = planted
    missing = write_suite(bench.parent, "gone", {"g": "x"}, 1.0)
    (bench.parent / "gone.jsonl").unlink()  # a benchmark whose data is not here (e.g. a hub dataset offline)
    args = ["task", "overlap", "--train", str(train), "--heldout", "benchmarks"]
    monkeypatch.setattr(rft.envs, "registered_ids", lambda: [str(train), str(bench), str(missing)])
    res = runner.invoke(app, args)
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "skipped" in text and "gone.jsonl does not exist" in text, res.output
    assert "bench-v0 h-exact ~ train-v0 t-exact" in text
    named = runner.invoke(app, ["task", "overlap", "--train", str(train), "--heldout", str(missing)])
    assert named.exit_code == 2 and "does not exist" in named.output  # a suite named outright must be there
    monkeypatch.setattr(rft.envs, "registered_ids", lambda: [str(train), str(missing)])
    assert "nothing compared" in runner.invoke(app, args).output
    monkeypatch.setattr(rft.envs, "registered_ids", lambda: [str(train)])
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "no registered suite is a benchmark" in res.output


# --- the built-in training suites against the benchmark suites ---------------------------------------------

BENCH = (rft.envs.data_dir() or Path("no-data-folder")) / "bench"
# Benchmark suites over ../shared/data/bench (README there) until the built-in ones are merged; a built-in
# benchmark suite reading the same file replaces its stand-in here.
STAND_INS = {
    "aime24.jsonl": ("aime24-v0", "id", "problem"),
    "amc23.jsonl": ("amc23-v0", "id", "problem"),
    "minerva_math.jsonl": ("minerva-math-v0", "idx", "problem"),
    "olympiadbench.jsonl": ("olympiadbench-v0", "id", "question"),
}
# What the data holds (found by this test, kept so that a new overlap or a vanished one fails it): the train
# items (ids) of a training suite that are benchmark problems, exact or near (score >= 0.85).
# - math-v0 (MATH test split without MATH-500): test/intermediate_algebra/2144.json is OlympiadBench's
#   problem 2918 (c_n = a_n + b_n, c_1..c_4 = 1, 4, 15, 2: compute c_5), the same text in other LaTeX
#   (similarity 1.0 after normalising). MATH's test/precalculus/216.json is OlympiadBench 2713 too, but it
#   falls in math-v0's held-out split, so training never sees it.
KNOWN = {("math-v0", "olympiadbench-v0"): {"test/intermediate_algebra/2144.json"}}
# Benchmarks made of a training suite's own problems (EvalPlus adds tests to HumanEval's and MBPP's): a
# train split and such a benchmark overlap by construction, and the report must show it.
BY_CONSTRUCTION = {("humaneval-v0", "humaneval-plus-v0"), ("mbpp-v0", "mbpp-plus-v0")}


def _files(suite) -> set[str]:
    alts = getattr(suite.source, "alternatives", (suite.source,))
    return {Path(a.path).name for a in alts if a.type == "jsonl"}


def benchmark_suites() -> list:
    builtin = [rft.envs.get_suite(i) for i in rft.envs.registered_ids()]
    bench = [s for s in builtin if s.heldout_only]
    covered = set().union(*(_files(s) for s in bench)) if bench else set()
    for file, (sid, id_field, text) in STAND_INS.items():
        if file not in covered and (BENCH / file).is_file():
            bench.append(load_suite({"id": sid, "source": {"type": "jsonl", "path": str(BENCH / file)},
                                     "fields": {"id": id_field, "reference": id_field},  # no grading here
                                     "prompt": {"user": f"{{{{ item.{text} }}}}"}, "grader": GRADER, "split": 1}))  # fmt: skip
    return bench


TRAINING = [i for i in rft.envs.registered_ids() if not rft.envs.get_suite(i).heldout_only]
PAIRS = list(itertools.product(TRAINING, benchmark_suites()))  # training suite outer: its index is built once


@pytest.mark.parametrize("train, bench", PAIRS, ids=[f"{t.split('/')[1]}-x-{b.id}" for t, b in PAIRS])
def test_builtin_training_suites_hold_no_benchmark_problem(train, bench):
    suite = rft.envs.get_suite(train)
    for s, split in ((suite, "train"), (bench, "heldout")):
        try:
            s.items(split)
        except SourceUnavailable as e:
            pytest.skip(f"{s.id}: data not available here: {e.reason}")
    report = overlap(suite, bench)
    found = {m.train_id for m in report.found(["exact", "near"])}
    if (suite.id, bench.id) in BY_CONSTRUCTION:
        assert found and found <= {it["id"] for it in suite.items("train")}
        return
    assert found == KNOWN.get((suite.id, bench.id), set()), [
        (m.kind, m.score, m.heldout_id, m.train_id, m.heldout_text[:200])
        for m in report.found(["exact", "near"])
    ]
    assert all(m.score < report.threshold for m in report.found(["ngram"]))
