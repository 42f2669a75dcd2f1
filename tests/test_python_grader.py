"""The `python` grader: scores, near misses, failures of the user's code, limits, and process hygiene."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rft.graders import Grade, GraderSpecError, load_grader
from rft.graders.python import DEFAULT_TIMEOUT, PythonGrader

EXACT = """
def grade(sample, item):
    return float(sample["output_text"] == item["answer"])
"""
# OpenAI's documented example, verbatim.
FUZZY = """
from rapidfuzz import fuzz, utils

def grade(sample, item) -> float:
    output_text = sample["output_text"]
    reference_answer = item["reference_answer"]
    return fuzz.WRatio(output_text, reference_answer, processor=utils.default_process) / 100.0
"""


def py(source: str, **kw) -> PythonGrader:
    grader = load_grader({"type": "python", "name": "t", "source": textwrap.dedent(source), **kw})
    assert isinstance(grader, PythonGrader)
    return grader


def body(expr: str, *, imports: str = "") -> str:
    return f"{imports}\ndef grade(sample, item):\n    return {expr}\n"


# (source, spec extras, sample, item, expected score)
POSITIVES = [
    (EXACT, {}, "42", {"answer": "42"}, 1.0),
    (FUZZY, {}, "Paris", {"reference_answer": "paris"}, 1.0),
    (body('abs(sample["output_json"]["x"] - item["x"]) < 1e-6'), {}, '{"x": 3.0}', {"x": 3}, 1.0),
    (body("1"), {}, "", {}, 1.0),
    (body("True"), {}, "", {}, 1.0),
    (body("numpy.float32(1.0)", imports="import numpy"), {}, "", {}, 1.0),
    (body("0.6"), {"pass_threshold": 0.5}, "", {}, 0.6),
    (body("len(sample['output_text']) / 4"), {"pass_threshold": 1.0}, "abcd", {}, 1.0),
]
NEAR_MISSES = [
    (EXACT, {}, "42 ", {"answer": "42"}, 0.0),
    (EXACT, {}, "43", {"answer": "42"}, 0.0),
    (FUZZY, {}, "Pariss", {"reference_answer": "Paris"}, None),
    (body("0.99"), {}, "", {}, 0.99),  # no pass_threshold: passing needs 1.0
    (body("0.69"), {"pass_threshold": 0.7}, "", {}, 0.69),
    (body("False"), {}, "", {}, 0.0),
    (body("-1"), {}, "", {}, -1.0),
]


@pytest.mark.parametrize(("source", "extra", "sample", "item", "score"), POSITIVES)
def test_true_positives(source, extra, sample, item, score):
    g = py(source, **extra).grade(sample, item)
    assert (g.status, g.passed) == ("ok", True), g
    assert g.score == pytest.approx(score)


@pytest.mark.parametrize(("source", "extra", "sample", "item", "score"), NEAR_MISSES)
def test_near_misses(source, extra, sample, item, score):
    g = py(source, **extra).grade(sample, item)
    assert (g.status, g.passed) == ("ok", False), g
    if score is not None:
        assert g.score == pytest.approx(score)
    else:
        assert 0.5 < g.score < 1.0


# (source, spec extras, item, words the error message must contain)
ERRORS = [
    (body("int('x')"), {}, {}, ["raised ValueError", "invalid literal"]),
    (body("item['missing']"), {}, {}, ["raised KeyError", "missing"]),
    ("import no_such_module_xyz\n" + body("1"), {}, {}, ["while loading", "ModuleNotFoundError"]),
    (body("'abc'"), {}, {}, ["returned str 'abc'", "must return a number"]),
    (body("None"), {}, {}, ["returned NoneType None"]),
    (body("float('nan')"), {}, {}, ["nan", "finite"]),
    (body("float('inf')"), {}, {}, ["inf", "finite"]),
    (body("10 ** 400"), {}, {}, ["must return a number"]),
    (body("bytearray(4 * 2**30) and 1"), {}, {}, ["memory", "memory_mb=2048"]),
    (body("[0] * 10**8 and 1"), {"memory_mb": 256}, {}, ["memory", "memory_mb=256"]),
    (body("os._exit(0)", imports="import os"), {}, {}, ["exited with code 0 without returning a score"]),
    (body("sys.exit()", imports="import sys"), {}, {}, ["called sys.exit()"]),
    (body("sys.exit(3)", imports="import sys"), {}, {}, ["sys.exit(3)"]),
    (body("os.kill(os.getpid(), 9)", imports="import os"), {}, {}, ["killed by SIGKILL"]),
    (body("float(input())"), {}, {}, ["EOFError"]),  # stdin is closed after the payload
    (body("open('big', 'wb').write(b'x' * 2**25)"), {}, {}, ["File too large"]),
]


@pytest.mark.parametrize(("source", "extra", "item", "words"), ERRORS)
def test_errors(source, extra, item, words):
    g = py(source, **extra).grade("x", item)
    assert g.status == "error" and g.score == 0.0 and not g.passed, g
    for w in words:
        assert w in g.details["error"] + g.details.get("traceback", ""), g.details


def test_exception_keeps_the_traceback_tail():
    g = py(body("1 / 0")).grade("x", {})
    assert "ZeroDivisionError: division by zero" in g.details["traceback"]
    assert '"<grader source>", line 3, in grade' in g.details["traceback"]


def test_sleep_forever_times_out_near_the_limit():
    grader = py(body("time.sleep(1000)", imports="import time"), timeout=1.5)
    start = time.monotonic()
    g = grader.grade("x", {})
    took = time.monotonic() - start
    assert g.status == "timeout" and g.score == 0.0, g
    assert grader.wall_limit() <= took < grader.wall_limit() + 1.0
    assert took < 1.5  # under the executor's own deadline
    assert "wall-clock" in g.details["error"]


def test_cpu_limit_is_a_timeout():
    g = py("def grade(sample, item):\n    while True:\n        pass\n", cpu_s=1, timeout=20).grade("x", {})
    assert g.status == "timeout", g
    assert "CPU-time limit" in g.details["error"]
    # the CPU limit fired, not the 20 s wall limit
    assert g.details["cpu_s"] >= 0.9 and g.details["wall_s"] < 15


def test_prints_do_not_corrupt_the_score():
    source = """
    import os, sys
    def grade(sample, item):
        print("junk " * 5000)
        print('{"status": "ok", "value": 1.0}')
        sys.stderr.write("warning: oops\\n")
        os.write(1, b"raw bytes on fd 1")
        return 0.25
    """
    g = py(source).grade("x", {})
    assert (g.status, g.score, g.passed) == ("ok", 0.25, False), g
    assert g.details["stdout"].startswith("[...]") and "raw bytes on fd 1" in g.details["stdout"]
    assert len(g.details["stdout"]) <= 2048 + 5
    assert g.details["stderr"] == "warning: oops\n"


def _gone(pid: int) -> bool:
    """True when `pid` has exited (killed processes may stay zombies until init reaps them)."""
    for _ in range(100):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.01)
    return False


def test_lingering_children_are_killed():
    # The child keeps stdout open and would outlive the grader; the grade must come back at once.
    grader = py(body("subprocess.Popen(['sleep', '100']).pid", imports="import subprocess"), pass_threshold=0)
    start = time.monotonic()
    g = grader.grade("x", {})
    assert g.status == "ok", g
    assert time.monotonic() - start < 2.0
    assert _gone(int(g.score))


def test_forked_child_on_timeout_is_killed():
    source = """
    import os, time
    def grade(sample, item):
        pid = os.fork()
        if pid == 0:
            time.sleep(100)
        print(pid, flush=True)
        time.sleep(100)
    """
    g = py(source, timeout=1.0).grade("x", {})
    assert g.status == "timeout", g
    assert _gone(int(g.details["stdout"].split()[0]))


def test_source_is_not_executed_at_load_time(tmp_path: Path):
    marker = tmp_path / "marker"
    grader = py(f"open({str(marker)!r}, 'w').close()\n" + body("1"))
    assert not marker.exists()
    assert grader.grade("x", {}).score == 1.0
    assert marker.exists()  # it ran in the child


def test_environment_and_cwd_are_scrubbed(monkeypatch):
    monkeypatch.setenv("RFT_TEST_SECRET", "hunter2")
    source = """
    import os, sys
    def grade(sample, item):
        clean_env = "RFT_TEST_SECRET" not in os.environ
        empty_cwd = os.listdir(".") == [] and os.getcwd() != item["parent_cwd"]
        fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
        return float(clean_env and empty_cwd and sys.flags.isolated == 1 and len(fds) <= 5)
    """
    g = py(source).grade("x", {"parent_cwd": os.getcwd()})
    assert (g.status, g.score) == ("ok", 1.0), g


def test_large_payload():
    g = py(body("len(item['blob']) / 5_000_000")).grade("x", {"blob": "y" * 5_000_000})
    assert (g.status, g.score) == ("ok", 1.0), g


def test_item_that_is_not_json_is_an_error():
    g = py(body("1")).grade("x", {"when": object()})
    assert g.status == "error" and "JSON" in g.details["error"]


def test_concurrent_calls_from_threads():
    grader = py(body("float(sample['output_text'])"))
    with ThreadPoolExecutor(4) as pool:
        grades = list(pool.map(lambda i: grader.grade(str(i), {}), range(12)))
    assert [g.score for g in grades] == [float(i) for i in range(12)]
    assert all(g.status == "ok" for g in grades)


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("def grade(sample, item):\n    return (\n", "does not compile"),
        ("def grade(sample, item):\nreturn 1\n", "does not compile"),
        ("return 1\n", "does not compile"),
        ("def score(sample, item):\n    return 1\n", "def grade(sample, item)"),
        ("class A:\n    def grade(sample, item):\n        return 1\n", "top-level"),
        ("async def grade(sample, item):\n    return 1\n", "top-level"),
        ("def grade(sample):\n    return 1\n", "two arguments"),
        ("def grade(sample, item, extra):\n    return 1\n", "two arguments"),
        ("def grade(sample, item, *, k):\n    return 1\n", "keyword-only"),
        ("grade = 1\n", "def grade"),
        ("", "def grade"),
    ],
)
def test_bad_source_fails_at_load(source, words):
    with pytest.raises(GraderSpecError, match="python grader 't'") as e:
        py(source)
    assert words in str(e.value)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"memory_mb": 10}, "memory_mb"),
        ({"cpu_s": 0}, "cpu_s"),
        ({"timeout": -1}, "timeout"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_limits_fail_at_load(extra, words):
    with pytest.raises(GraderSpecError, match=words):
        py(body("1"), **extra)


def test_accepted_signatures():
    for sig in (
        "sample, item",
        "sample, item, extra=None",
        "*args",
        "sample, /, item",
        "sample, item, *, k=1",
    ):
        assert py(f"def grade({sig}):\n    return 1\n").grade("x", {}).score == 1.0


def test_spec_round_trip_and_limits():
    grader = py(FUZZY, image_tag="2025-05-08", pass_threshold=0.9, memory_mb=512, cpu_s=3, timeout=5)
    assert load_grader(grader.spec()) == grader
    assert grader.spec()["image_tag"] == "2025-05-08"
    assert grader.wall_limit() == pytest.approx(4.5)
    assert py(body("1"), timeout=60).wall_limit() == pytest.approx(59.0)
    assert py(body("1")).wall_limit() == DEFAULT_TIMEOUT
    assert py(body("1")).cpu_limit() == DEFAULT_TIMEOUT + 1


def test_details_record_wall_and_cpu_time():
    g = py(body("sum(range(10**6)) and 1")).grade("x", {})
    assert isinstance(g, Grade) and g.status == "ok"
    assert g.details["wall_s"] > 0 and g.details["cpu_s"] > 0


def test_process_that_leaves_the_group_does_not_hang_the_grade():
    # Known limit until the namespace sandbox: a child that calls setsid() escapes the group kill.
    # It holds stdout open, yet the grade comes back after a short drain.
    grader = py(
        body("subprocess.Popen(['sleep', '30'], start_new_session=True).pid", imports="import subprocess"),
        pass_threshold=0,
    )
    start = time.monotonic()
    g = grader.grade("x", {})
    took = time.monotonic() - start
    assert g.status == "ok", g
    os.kill(int(g.score), signal.SIGKILL)  # the test's own clean-up of the process it made escape
    assert took < 1.0


def test_output_flood_is_bounded():
    g = py(body("sys.stdout.write('z' * 50_000_000) and 1", imports="import sys")).grade("x", {})
    assert (g.status, g.score) == ("ok", 1.0), g
    assert g.details["stdout"] == "[...]" + "z" * 2048
