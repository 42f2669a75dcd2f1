"""The code benchmarks (humaneval-plus-v0, mbpp-plus-v0, livecodebench-v0) on hand-written fixtures in the
real schemas (tests/data/make_code_bench_fixtures.py writes them): loaders, EvalPlus grading semantics,
LiveCodeBench's test-case decoding (never unpickling) and its date window, and `rft task check`."""

from __future__ import annotations

import base64
import datetime
import json
import math
import pickle
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rft.envs
import rft.tasks
from rft.envs import SuiteError, get_suite, load_suite
from rft.envs.check import check_task
from rft.envs.code_bench import (
    _assert,
    _literal,
    _source,
    decode_private_cases,
    humaneval_plus_row,
    in_date_window,
    livecodebench_row,
    mbpp_plus_row,
)
from rft.envs.sources import Source
from rft.graders import load_grader
from rft.graders.code_harness import SafeEval, evalplus_close, plan_tests

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from make_code_bench_fixtures import he_test  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sandboxes import BACKENDS, backend_or_skip  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
TASKS = Path(rft.tasks.__file__).resolve().parent
RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
FILES = {  # suite -> (fixture, the file name the suite reads from $RFT_DATA)
    "humaneval-plus-v0": ("humanevalplus_sample.jsonl", "HumanEvalPlus.jsonl"),
    "mbpp-plus-v0": ("mbppplus_sample.jsonl", "MbppPlus.jsonl"),
    "livecodebench-v0": ("livecodebench_sample.jsonl", "livecodebench.jsonl"),
}


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def _forget() -> None:
    for suite_id in FILES:  # get_suite caches by path; items are cached per suite
        rft.envs.registry._SUITES.pop(str(TASKS / f"{suite_id}.yaml"), None)


@pytest.fixture
def bench_data(tmp_path, monkeypatch):
    """$RFT_DATA holds the three fixtures under the names the suites read."""
    for fixture, name in FILES.values():
        shutil.copy(DATA / fixture, tmp_path / name)
    monkeypatch.setenv("RFT_DATA", str(tmp_path))
    _forget()
    yield tmp_path
    _forget()


def _item(suite_id: str, item_id: str) -> dict:
    return next(i for i in get_suite(suite_id).items() if i["id"] == item_id)


def _grade(suite_id: str, item_id: str, answer: str, **overrides):
    suite = get_suite(suite_id)
    return load_grader({**suite.grader, **overrides}).grade(answer, _item(suite_id, item_id))


# ---- loaders ---------------------------------------------------------------------------------------


def test_humaneval_plus_rows_of_both_layouts():
    rows = {r["task_id"]: r for r in _rows("humanevalplus_sample.jsonl")}
    hub = humaneval_plus_row(rows["HumanEval/0"])
    assert len(hub["plus_tests"]) == 6  # one assert per input of the hub's `inputs`
    assert hub["plus_tests"][0] == "assert close_pair(*[[1.0, 2.0, 3.0], 0.5]) == False"
    release = humaneval_plus_row(rows["HumanEval/2"])  # base_input + plus_input, no outputs
    assert len(release["plus_tests"]) == 3 + 4
    assert all("_rft_reference(*" in t and ", 1e-06)" in t for t in release["plus_tests"])
    assert "_rft_reference = _rft_ns['fraction_part']" in release["plus_setup"]
    floats = humaneval_plus_row(rows["HumanEval/4"])  # float outputs: EvalPlus's tolerance
    assert all(t.startswith("assert evalplus_close(mean_gap(") for t in floats["plus_tests"])
    zero = humaneval_plus_row(rows["HumanEval/32"])  # special oracle: any root
    # the hub's own check splats the root and cannot pass; EvalPlus's oracle with the hub's bound instead
    assert zero["plus_tests"][0] == "assert abs(_rft_poly(*[[1, 2]], find_zero(*[[1, 2]]))) <= 0.0001"


def test_mbpp_plus_rows_name_the_function_and_keep_tuples_and_inf():
    rows = {r["task_id"]: r for r in _rows("mbppplus_sample.jsonl")}
    common = mbpp_plus_row(rows[3])
    assert common["task_id"] == "Mbpp/3" and common["entry_point"] == "common_items"
    assert common["plus_tests"][0] == "assert common_items(*[(3, 4, 5, 6), (5, 7, 4, 10)]) == (4, 5)"
    assert common["text"].endswith("assert common_items((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)")
    disc = mbpp_plus_row(rows[17])
    assert disc["plus_tests"][-1] == "assert evalplus_close(disc_area(*[float('inf')]), float('inf'), 0.0)"
    assert disc["plus_setup"].startswith("import math")
    ref = mbpp_plus_row(rows[604])  # outputs computed by the row's ref_func, in the sandbox
    assert "def ref_func(s)" in ref["plus_setup"] and "ref_func(*['a'])" in ref["plus_tests"][1]
    # EvalPlus's special oracles: set equality (Mbpp/2), "not None" (Mbpp/794)
    assert mbpp_plus_row(rows[2])["plus_tests"][0].startswith("assert set(similar_elements(*[(3, 4, 5, 6), ")
    assert mbpp_plus_row(rows[794])["plus_tests"][0].startswith("assert _rft_oracle('text_starta_endb', ")


_SCALARS = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),  # inf included
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.complex_numbers(allow_nan=False, allow_infinity=False, max_magnitude=1e6),
)
_HASHABLE = st.recursive(
    st.one_of(st.integers(), st.text(max_size=4)), lambda c: st.tuples(c, c), max_leaves=4
)
_VALUES = st.recursive(
    _SCALARS,
    lambda c: st.one_of(
        st.lists(c, max_size=4),
        st.lists(c, max_size=4).map(tuple),
        st.sets(_HASHABLE, max_size=4),
        st.dictionaries(_HASHABLE, c, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(value=_VALUES)
def test_values_written_as_source_read_back_equal_and_are_judged_outside(value):
    """What EvalPlus writes (inputs, results) survives `_source` -> `_literal`, and an exact test on it
    can be judged outside the sandbox (SafeEval evaluates the expected side)."""
    import ast

    assert _literal(ast.parse(_source(value), mode="eval").body) == value
    test = _assert("f", [value], value, 0.0)
    (planned,) = plan_tests([test], "f").tests
    assert planned.judged == "outside", test
    assert planned.expr is not None and SafeEval([value]).run(planned.expr) is True


def test_rows_that_do_not_fit_say_why():
    with pytest.raises(SuiteError, match="not a HumanEval\\+ row"):
        humaneval_plus_row({"task_id": "x", "prompt": "def f():\n"})
    with pytest.raises(SuiteError, match="Hugging Face layout"):
        mbpp_plus_row({"task_id": "Mbpp/2", "base_input": [[1]], "plus_input": []})
    other = "def check(candidate):\n    assert candidate([1.0, 1.05], 0.1)\n"  # another shape: run as it is
    assert humaneval_plus_row(dict(_rows("humanevalplus_sample.jsonl")[0], test=other))["plus_tests"] == [
        other
    ]
    mbpp = {r["task_id"]: r for r in _rows("mbppplus_sample.jsonl")}[3]
    with pytest.raises(SuiteError, match="no `inputs"):
        mbpp_plus_row(dict(mbpp, test="assert common_items((1,), (1,)) == (1,)\n"))
    bad = dict(_rows("humanevalplus_sample.jsonl")[0])
    bad["test"] = bad["test"].replace("inputs = [", "inputs = [open('x'), ")
    with pytest.raises(SuiteError, match="not a literal"):
        humaneval_plus_row(bad)


def test_livecodebench_rows_stdin_and_functional():
    rows = {r["question_id"]: r for r in _rows("livecodebench_sample.jsonl")}
    stdin = livecodebench_row(rows["abc999_a"])
    assert stdin["driver"] == "" and stdin["func_name"] is None
    assert stdin["cases"] == [  # public, then the private ones decoded from base64+zlib+pickle
        {"input": "1 2\n", "output": "3\n"},
        {"input": "10 -3\n", "output": "7\n"},
        {"input": "1000000000 1000000000\n", "output": "2000000000\n"},
    ]
    assert stdin["private_test_cases"] == "" and stdin["contest_date"] == "2024-09-14T00:00:00"
    squares = livecodebench_row(rows["977"])
    assert squares["func_name"] == "sortedSquares" and "Solution()" in squares["driver"]
    assert squares["cases"][1] == {"input": "[-7,-3,2,3,11]", "output": "[4, 9, 9, 49, 121]\n"}
    assert "```python\nclass Solution:" in squares["format_note"]


# ---- LiveCodeBench's private tests: never unpickled ------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _blob(obj) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(obj))).decode()


def test_private_cases_decode_the_real_encoding():
    cases = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    assert decode_private_cases(_blob(json.dumps(cases))) == cases
    assert decode_private_cases(json.dumps(cases)) == cases  # some rows hold plain JSON
    assert decode_private_cases(_blob(json.dumps(cases).encode())) == cases  # a pickled bytes value
    assert decode_private_cases("") == []


def test_a_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(SuiteError, match="refusing a LiveCodeBench private test blob"):
        decode_private_cases(_blob(_Evil(marker)))
    assert not marker.exists()  # nothing ran
    with pytest.raises(SuiteError, match="refusing"):  # a pickled list is not a JSON string either
        decode_private_cases(_blob([{"input": "1", "output": "2"}]))
    with pytest.raises(SuiteError, match="refusing"):
        decode_private_cases(base64.b64encode(zlib.compress(b"\x80\x04garbage")).decode())
    with pytest.raises(SuiteError, match="neither JSON nor base64"):
        decode_private_cases("not json, not base64 !!")


def test_a_blob_too_large_once_decompressed_is_refused(monkeypatch):
    import rft.envs.code_bench as code_bench

    monkeypatch.setattr(code_bench, "MAX_DECODED_BYTES", 1000)
    with pytest.raises(SuiteError, match="larger than 1000 bytes"):
        decode_private_cases(_blob("x" * 5000))


# ---- the date window -------------------------------------------------------------------------------


def test_date_window_keeps_problems_released_in_it():
    path = str(DATA / "livecodebench_sample.jsonl")

    def ids(window):
        src = Source(type="jsonl", path=path, map="livecodebench", date_window=window)
        return sorted(r["question_id"] for r in src.rows())

    assert ids(None) == ["258", "977", "abc999_a"]
    assert ids({"after": "2024-08-01"}) == ["977", "abc999_a"]  # 258 is from 2023
    assert ids({"after": datetime.date(2024, 8, 1), "before": "2025-01-01"}) == ["abc999_a"]  # YAML dates
    assert ids({"before": "2024-09-14"}) == ["258"]  # `before` is exclusive, `after` inclusive
    assert ids({"after": "2024-09-14T00:00:00"}) == ["977", "abc999_a"]


def test_date_window_in_a_suite_file_and_its_errors(tmp_path):
    text = (TASKS / "livecodebench-v0.yaml").read_text()
    path = str(DATA / "livecodebench_sample.jsonl")
    text = text.replace(
        '  - {type: jsonl, path: "${RFT_DATA}/livecodebench.jsonl", map: livecodebench}\n',
        f'  - {{type: jsonl, path: "{path}", map: livecodebench, date_window: {{after: 2024-08-01}}}}\n',
    )
    (tmp_path / "lcb.yaml").write_text(text)
    assert sorted(i["id"] for i in load_suite(tmp_path / "lcb.yaml").items()) == ["977", "abc999_a"]
    with pytest.raises(SuiteError, match="date_window must be a mapping with keys field, after, before"):
        Source(type="jsonl", path=path, date_window={"since": "2024-01-01"})
    with pytest.raises(SuiteError, match="not a date like 2024-08-01"):
        Source(type="jsonl", path=path, date_window={"after": "August"})
    with pytest.raises(SuiteError, match="row has no field 'released'"):
        in_date_window({"question_id": "1"}, {"field": "released", "after": "2024-01-01"})


# ---- grading: EvalPlus semantics -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "exp", "atol", "ok"),
    [
        (3, 3, 0, True),
        ([1, 2], [1, 2], 0, True),
        (0.5 + 1e-7, 0.5, 0, True),  # floats: atol 1e-6 by default
        (0.5 + 1e-5, 0.5, 0, False),
        (0.5 + 1e-5, 0.5, 1e-4, True),
        ([0.1 + 1e-8, 0.2], [0.1, 0.2], 0, True),
        ((0.1, 0.2), [0.1, 0.2], 0, False),  # EvalPlus: same type
        ([0.1], [0.1, 0.2], 0, False),  # and length
        (math.inf, math.inf, 0, True),
        (math.nan, math.nan, 0, False),  # np.allclose: NaN is never close
        (1e9 + 50.0, 1e9, 0, True),  # within atol + 1e-7 * |exp| (= 100 here)
        (1e9 + 200.0, 1e9, 0, False),
        (1_000_000_050, 1e9, 0, False),  # an int for a float: EvalPlus asks for the same type
        ("0.5", 0.5, 0, False),
        (2, 2.0, 0, True),  # equal
        (3, 2, 0, False),  # ints: exact only
    ],
)
def test_evalplus_close(out, exp, atol, ok):
    assert evalplus_close(out, exp, atol) is ok


def test_gold_scores_one_and_wrong_answers_zero(bench_data):
    wrong = "```python\ndef close_pair(numbers, gap):\n    return False\n```"
    g = _grade("humaneval-plus-v0", "HumanEval/0", wrong)
    assert g.status == "ok" and not g.passed and 0 < g.score < 1  # right on some inputs only
    assert {t["judged"] for t in g.details["tests"]} == {"outside"}  # compared here, on values sent back
    item = _item("humaneval-plus-v0", "HumanEval/4")
    gold = _grade("humaneval-plus-v0", "HumanEval/4", item["canonical_solution"])
    assert gold.passed and gold.score == 1.0
    near = "    m = sum(numbers) / len(numbers)\n    return [x - m + 1e-9 for x in numbers]\n"  # within 1e-6
    assert _grade("humaneval-plus-v0", "HumanEval/4", near).passed
    off = "    m = sum(numbers) / len(numbers)\n    return [x - m + 1e-3 for x in numbers]\n"
    g = _grade("humaneval-plus-v0", "HumanEval/4", off)  # off by 1e-3: close only relative to 1e9
    assert [t["passed"] for t in g.details["tests"]] == [False, False, True, False]
    tup = "    m = sum(numbers) / len(numbers)\n    return tuple(x - m for x in numbers)\n"  # wrong type
    assert _grade("humaneval-plus-v0", "HumanEval/4", tup).score == 0.0


def test_outputs_too_large_to_send_back_are_compared_inside():
    """The sandbox sends back at most 1 MiB: large expected outputs are compared there instead."""
    inputs = [[i, 400] for i in range(300)]  # 300 outputs of 400 ints: ~2 MB encoded
    row = {
        "task_id": "Synthetic/1",
        "prompt": 'def spread(n: int, k: int) -> list:\n    """ The first k multiples of n. """\n',
        "canonical_solution": "    return [n * i for i in range(k)]\n",
        "entry_point": "spread",
        "test": he_test(inputs, [[n * j for j in range(k)] for n, k in inputs]),
    }
    item = humaneval_plus_row(row)
    suite = load_suite(TASKS / "humaneval-plus-v0.yaml")
    g = load_grader(suite.grader).grade(row["canonical_solution"], {**item, "id": "x", "reference": ""})
    judged = [t["judged"] for t in g.details["tests"]]
    assert g.passed and 0 < judged.count("outside") < 300 and "inside" in judged
    wrong = load_grader(suite.grader).grade("    return [n * i for i in range(k - 1)]\n", item)
    assert wrong.score == 0.0


def test_release_rows_compare_with_the_canonical_solution(bench_data):
    gold = _grade("humaneval-plus-v0", "HumanEval/2", "    return number - int(number)\n")
    assert gold.passed, gold.details["tests"]  # a different but equivalent solution, within atol
    g = _grade("humaneval-plus-v0", "HumanEval/2", "    return round(number % 1.0, 1)\n")
    assert not g.passed and 0 < g.score < 1  # right on 3.5 and 7.0 only


def test_special_oracle_accepts_any_root(bench_data):
    other = (
        "    x = 0.0\n    for _ in range(200):\n        d = sum(i * c * x ** (i - 1) for i, c in enumerate(xs) if i)\n"
        "        x = x - poly(xs, x) / d if d else x + 1.0\n    return x\n"
    )  # Newton from 0: may find a different root than the canonical bisection
    assert _grade("humaneval-plus-v0", "HumanEval/32", other).passed
    assert _grade("humaneval-plus-v0", "HumanEval/32", "    return 0.123\n").score == 0.0


def test_mbpp_plus_gold_and_decoys(bench_data):
    for item_id in ("Mbpp/2", "Mbpp/3", "Mbpp/17", "Mbpp/604", "Mbpp/794"):
        gold = _grade("mbpp-plus-v0", item_id, f"```python\n{_item('mbpp-plus-v0', item_id)['code']}\n```")
        assert gold.passed and gold.score == 1.0, (item_id, gold.details)
    as_list = "```python\ndef common_items(a, b):\n    return sorted(set(a) & set(b))\n```"  # list, not tuple
    assert _grade("mbpp-plus-v0", "Mbpp/3", as_list).score == 0.0
    reordered = (
        "```python\ndef similar_elements(a, b):\n    return sorted(set(a) & set(b), reverse=True)\n```"
    )
    assert _grade("mbpp-plus-v0", "Mbpp/2", reordered).passed  # Mbpp/2 compares sets
    as_bool = (
        "```python\nimport re\ndef text_starta_endb(text):\n    return bool(re.search('a.*b$', text))\n```"
    )
    assert _grade("mbpp-plus-v0", "Mbpp/794", as_bool).passed  # a match or True: not None is what counts
    never = "```python\ndef text_starta_endb(text):\n    return None\n```"
    g = _grade("mbpp-plus-v0", "Mbpp/794", never)
    assert not g.passed and {t["judged"] for t in g.details["tests"]} == {"inside"}
    forged = (
        "```python\nclass Yes(tuple):\n    def __eq__(self, other):\n        return True\n"
        "def common_items(a, b):\n    return Yes()\n```"
    )  # an __eq__ that is always True is lost on the way out of the sandbox
    assert _grade("mbpp-plus-v0", "Mbpp/3", forged).score < 1.0


def test_a_slow_input_fails_its_tests_not_the_grader(bench_data):
    slow = (
        "```python\nimport time\ndef common_items(a, b):\n    if not a:\n        time.sleep(60)\n"
        "    return tuple(sorted(set(a) & set(b)))\n```"
    )  # the third input is (); the ones before it pass (sleeping, not spinning: a spin on this busy
    # machine may be judged contention, status timeout, by design)
    g = _grade("mbpp-plus-v0", "Mbpp/3", slow, run_timeout=2)
    assert g.status == "ok" and not g.passed
    assert [t["passed"] for t in g.details["tests"]][:2] == [True, True]
    assert "time limit" in g.details["tests"][2]["error"]


# ---- grading: LiveCodeBench ------------------------------------------------------------------------


def test_livecodebench_stdin_and_functional_grading(bench_data):
    for item_id in ("abc999_a", "258", "977"):
        gold = _grade("livecodebench-v0", item_id, _item("livecodebench-v0", item_id)["solution"])
        assert gold.passed and gold.score == 1.0, (item_id, gold.details)
    as_tuple = (
        "```python\nclass Solution:\n    def sortedSquares(self, nums):\n"
        "        return tuple(sorted(x * x for x in nums))\n```"
    )  # LiveCodeBench turns a tuple into a list before comparing
    assert _grade("livecodebench-v0", "977", as_tuple).passed
    unsorted = "```python\nclass Solution:\n    def sortedSquares(self, nums):\n        return [x * x for x in nums]\n```"
    g = _grade("livecodebench-v0", "977", unsorted)
    assert not g.passed and g.details["passed_cases"] == 1  # only [1] comes out sorted
    wrong = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"
    assert _grade("livecodebench-v0", "abc999_a", wrong).score == 0.0


@pytest.mark.parametrize(
    ("printed", "ok"),
    [
        ("3\n", True),
        ("3", True),  # no final newline
        ("  3  \n\n", True),  # lines stripped, blank lines at the end dropped
        ("3.0\n", True),  # the same number as a decimal
        ("3.000\n", True),
        ("4\n", False),
        ("3\n0\n", False),  # a line too many
        ("three\n", False),
    ],
)
def test_livecodebench_stdout_comparison(printed, ok):
    grader = load_grader(
        {
            "type": "code",
            "cases": [{"input": "", "output": "3\n"}],
            "compare": "numeric_lines",
            "sandbox": "auto",
        }
    )
    assert grader.grade(f"```python\nimport sys\nsys.stdout.write({printed!r})\n```").passed is ok


def test_numeric_lines_compare_numbers_per_line_and_text_exactly():
    grader = load_grader(
        {"type": "code", "cases": [{"input": "", "output": "1 2.5\nYes\n"}], "compare": "numeric_lines"}
    )
    for printed, ok in [
        ("1 2.50\nYes", True),
        ("1  2.5\nYes", True),
        ("1 2.5\nyes", False),
        ("1 2.5 0\nYes", False),
    ]:
        assert grader.grade(f"```python\nprint({printed!r})\n```").passed is ok, printed


def test_livecodebench_time_limit_is_per_case(bench_data):
    slow = "```python\nimport time\na, b = map(int, input().split())\nif a > 100:\n    time.sleep(60)\nprint(a + b)\n```"
    g = _grade("livecodebench-v0", "abc999_a", slow, run_timeout=1)
    assert g.status == "ok" and [c["passed"] for c in g.details["cases"]] == [True, True, False]
    assert "time limit exceeded" in g.details["cases"][2]["error"]


@pytest.mark.parametrize(
    "backend", [pytest.param(b, marks=pytest.mark.docker) if b == "docker" else b for b in BACKENDS]
)
def test_every_backend_grades_the_benchmarks(bench_data, backend):
    """Per-input tests judged outside and inside, the release reference, and LiveCodeBench's driver (an
    atexit hook: it must run however the backend ends a program) in each sandbox that runs here."""
    backend_or_skip(backend)
    golds = [
        ("humaneval-plus-v0", "HumanEval/0", "canonical_solution"),
        ("humaneval-plus-v0", "HumanEval/2", "canonical_solution"),
        ("mbpp-plus-v0", "Mbpp/794", "code"),
        ("livecodebench-v0", "abc999_a", "solution"),
        ("livecodebench-v0", "977", "solution"),
    ]
    for suite_id, item_id, key in golds:
        text = _item(suite_id, item_id)[key]
        text = f"```python\n{text}\n```" if suite_id == "mbpp-plus-v0" else text
        g = _grade(suite_id, item_id, text, sandbox=backend)
        assert g.passed and g.details["sandbox"] == backend, (item_id, g.status, g.details)
    decoy = "```python\nclass Solution:\n    def sortedSquares(self, nums):\n        return []\n```"
    assert _grade("livecodebench-v0", "977", decoy, sandbox=backend).score == 0.0
    assert _grade("humaneval-plus-v0", "HumanEval/2", "    return -1.0\n", sandbox=backend).score == 0.0


# ---- the suites --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite_id", list(FILES))
def test_suites_are_benchmarks_with_source_license_and_convention(suite_id):
    suite = load_suite(TASKS / f"{suite_id}.yaml")
    assert suite.heldout_only
    text = suite.description
    assert "Source:" in text and "license" in text and "Answer convention:" in text


@pytest.mark.parametrize("suite_id", list(FILES))
def test_task_check_passes_on_the_fixtures(bench_data, suite_id):
    report = check_task(f"rft/{suite_id}", n=5)
    assert report.ok, [c for c in report.checks if not c.ok]


@pytest.mark.slow
def test_cli_task_check_on_a_fixture(bench_data):
    res = subprocess.run(
        [RFT, "task", "check", "rft/livecodebench-v0", "--n", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0 and "all checks passed" in res.stdout, res.stdout + res.stderr


def test_without_data_the_suites_say_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("RFT_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _forget()
    try:
        for suite_id, (_, name) in FILES.items():
            with pytest.raises(SuiteError, match=f"put {name} in {tmp_path}"):
                get_suite(suite_id).items()
    finally:
        _forget()
