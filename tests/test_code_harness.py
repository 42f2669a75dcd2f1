"""The function-test harness: which tests are judged outside the sandbox, the value codec (subclasses and
always-equal objects lose their tricks), the outside evaluator, and the event log."""

from __future__ import annotations

import ast
import json
from collections import Counter, OrderedDict, namedtuple

import pytest

from rft.graders.code_harness import SafeEval, decode_value, plan_tests, read_events
from rft.graders.sandbox.harness_runtime import encode


def judged(test_code: str, entry: str | None = "f") -> list[str]:
    return [t.judged for t in plan_tests(test_code, entry).tests]


@pytest.mark.parametrize(
    "line,where",
    [
        ("assert candidate(1) == 2", "outside"),
        ("assert 2 == candidate(1)", "outside"),
        ("assert candidate([1, 2], k=3) == [3]", "outside"),
        ("assert abs(candidate(1.5) - 2.25) < 1e-6", "outside"),
        ("assert math.isclose(candidate(2), 4.0, rel_tol=1e-9)", "outside"),
        ("assert candidate('x') is True", "outside"),
        ("assert not candidate(0)", "outside"),
        ("assert candidate(0)", "outside"),
        ("assert sorted(candidate(3)) == [1, 2, 3]", "outside"),
        ("assert tuple(candidate(3)) == (1, 2)", "outside"),
        ("assert candidate(candidate(1)) == 3", "outside"),
        ("assert candidate(1) == candidate(2)", "outside"),
        ("assert candidate(1) == helper(1)", "inside"),  # the expected value is computed in the sandbox
        ("assert candidate(1) == x", "inside"),  # a local variable
        ("assert candidate(1) == 2 or candidate(2) == 3", "inside"),  # conditional evaluation
        ("assert all(candidate(i) == i for i in range(3))", "inside"),
        ("assert candidate(1) == 2 ** 10", "inside"),  # ** is not evaluated outside
    ],
)
def test_which_asserts_are_judged_outside(line, where):
    assert judged(f"def check(candidate):\n    {line}\n") == [where]


def test_loops_setup_and_trivial_asserts():
    code = (
        "import math\nMETA = 1\n"
        "def check(candidate):\n"
        "    assert True, 'not a test'\n"
        "    x = 3\n"
        "    for i in range(2):\n        assert candidate(i) == i\n"
        "    assert candidate(x) == 3\n"
        "check(f)\n"
    )
    plan = plan_tests(code, "f")
    assert [t.judged for t in plan.tests] == ["inside", "outside"]
    assert "META = 1" in plan.preamble and "check(f)" not in plan.preamble
    assert "__rft.values(1" in plan.check and "== 3" not in plan.check  # the expected value stays here


def test_mbpp_asserts_call_the_function_by_name():
    plan = plan_tests(
        ["assert add(1, 2) == 3", "assert set(pairs(2)) == {(0, 1)}", "assert add(*[1, 2]) == 3"]
    )
    assert [t.judged for t in plan.tests] == ["outside", "outside", "outside"]
    assert "3" not in plan.check.replace("__rft.values", "")  # no expected value reaches the sandbox
    with pytest.raises(ValueError, match="no assert"):
        plan_tests("x = 1\n")
    with pytest.raises(SyntaxError):
        plan_tests("assert f(1 ==\n")


class AlwaysEqualInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class AlwaysEqualList(list):
    def __eq__(self, other):
        return True


@pytest.mark.parametrize(
    "value,plain",
    [
        (None, None), (True, True), (3, 3), (-(2**100), -(2**100)), (1.5, 1.5), (float("inf"), float("inf")),
        (1 + 2j, 1 + 2j), ("é\ud800", "é\ud800"), (b"\x00\xff", b"\x00\xff"), ([1, (2, 3)], [1, (2, 3)]),
        ({1, 2}, {1, 2}), (frozenset({"a"}), frozenset({"a"})), ({"a": [1]}, {"a": [1]}),
        (Counter("aab"), {"a": 2, "b": 1}), (OrderedDict(x=1), {"x": 1}),
        (namedtuple("P", "x y")(1, 2), (1, 2)),
        (AlwaysEqualInt(5), 5), (AlwaysEqualList([1]), [1]),
    ],
)  # fmt: skip
def test_values_survive_the_trip_as_plain_data(value, plain):
    back = decode_value(json.loads(json.dumps(encode(value))))
    assert back == plain and type(back) is type(plain)


def test_objects_that_are_not_data_are_refused():
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    for bad in (AlwaysEqual(), iter([1]), lambda: 1, [AlwaysEqual()]):
        with pytest.raises(ValueError, match="not plain data"):
            encode(bad)
    nested: list = []
    nested.append(nested)
    with pytest.raises(ValueError, match="deeply"):
        encode(nested)
    for junk in ([], ["i"], ["?", 1], {"a": 1}, ["l", 3], 5):
        with pytest.raises((ValueError, TypeError)):
            decode_value(junk)


def evaluate(expr: str, *values):
    tree = ast.Expression(ast.parse(expr, mode="eval").body)
    assert SafeEval.allowed(tree, len(values)), expr
    return SafeEval(list(values)).run(tree)


def test_safe_eval():
    assert evaluate("__v0 == 3", 3) and not evaluate("__v0 == 3", 3.5)
    assert evaluate("__v0 == [1, (2, 3)]", [1, (2, 3)]) and not evaluate("__v0 == [1, [2, 3]]", [1, (2, 3)])
    assert evaluate("abs(__v0 - 2.5) < 1e-6", 2.5000001)
    assert evaluate("math.isclose(__v0, 1.0, rel_tol=1e-3)", 1.0001)
    assert evaluate("sorted(__v0)[-1] == 9", [9, 1]) and evaluate("len(__v0) == 2", "ab")
    assert evaluate("__v0 is None", None) and evaluate("not __v0", 0) and evaluate("1 < __v0 <= 3", 3)
    assert evaluate("isinstance(__v0, int) and __v0 == True", 1)
    with pytest.raises(TypeError):
        evaluate("__v0 * 10", [1])  # no sequence repetition outside (memory)
    with pytest.raises(TypeError):
        evaluate("__v0 + 1", "a")
    for forbidden in (
        "__import__('os')",
        "open('x')",
        "__v0.__class__",
        "(lambda: 1)()",
        "2 ** 100",
        "[x for x in __v0]",
    ):
        assert not SafeEval.allowed(ast.Expression(ast.parse(forbidden, mode="eval").body), 1), forbidden


def test_events_need_the_nonce_the_start_and_count_once():
    lines = [
        {"n": "bad", "e": "start", "i": -1},
        {"n": "k", "e": "values", "i": 0, "v": [["i", "1"]]},  # before start: ignored
        {"n": "k", "e": "start", "i": -1},
        {"n": "k", "e": "values", "i": 0, "v": [["i", "2"]]},
        {"n": "k", "e": "ok", "i": 0},  # a second report for test 0: ignored
        {"n": "other", "e": "ok", "i": 1},
        {"n": "k", "e": "fail", "i": -1, "t": "NameError", "m": "x"},
        {"n": "k", "e": "done", "i": -1},
        {"n": "k", "e": "ok", "i": 1},  # after done: ignored
    ]
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    v = read_events(data + b'{"n": "k", "e": "ok", "i": 2', "k", truncated=False)
    assert v.started and v.done and list(v.events) == [0] and v.events[0]["v"] == [["i", "2"]]
    assert v.setup_errors == ["NameError: x"]
