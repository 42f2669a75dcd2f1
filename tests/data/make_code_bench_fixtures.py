"""Writes the code-benchmark fixtures (hand-written problems in the real schemas, not copies of the data):

- humanevalplus_sample.jsonl: HumanEval+ rows, two in the Hugging Face layout (``evalplus/humanevalplus``:
  ``test`` holds ``inputs``/``results`` and ``assertion``), one in EvalPlus's release layout
  (``HumanEvalPlus.jsonl``: ``base_input``/``plus_input``/``atol``, no outputs), one ``find_zero``.
- mbppplus_sample.jsonl: MBPP+ rows in the Hugging Face layout (``evalplus/mbppplus``), one with ``inf``
  and float outputs, one whose outputs come from ``ref_func``.
- livecodebench_sample.jsonl: ``livecodebench/code_generation_lite`` rows: a stdin problem and two
  functional (LeetCode) ones; private test cases encoded the real way (base64 of zlib of a pickled JSON
  string) or as plain JSON. ``solution`` is a fixture-only column (the real data has no solutions).

Run: python tests/data/make_code_bench_fixtures.py
"""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

HE_HELPERS = """import numpy as np

def is_floats(x) -> bool:
    # check if it is float; List[float]; Tuple[float]
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)):
        return all(isinstance(i, float) for i in x)
    if isinstance(x, np.ndarray):
        return x.dtype == np.float64 or x.dtype == np.float32
    return False


def assertion(out, exp, atol):
    exact_match = out == exp

    if atol == 0 and is_floats(exp):
        atol = 1e-6
    if not exact_match and atol != 0:
        np.testing.assert_allclose(out, exp, atol=atol)
    else:
        assert exact_match

"""


# HumanEval/32's hub test as published: its assert splats the root (a float), so it cannot pass as written;
# rft grades the inputs with EvalPlus's own oracle instead.
ZERO_TEST = """
import math

def _poly(xs: list, x: float):
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])

def check(candidate):
    inputs = {inputs}
    results = {results}
    for i, (inp, exp) in enumerate(zip(inputs, results)):
        assert _poly(*candidate(*inp), inp) <= 0.0001
"""


def he_test(inputs, results, atol=0):
    return HE_HELPERS + (
        f"\ndef check(candidate):\n    inputs = {inputs!r}\n    results = {results!r}\n"
        "    for i, (inp, exp) in enumerate(zip(inputs, results)):\n"
        f"        assertion(candidate(*inp), exp, {atol})\n"
    )


def mbpp_test(fn, inputs, results=None, ref=None, atol=0, inf=False):
    head = "import numpy as np\n" + ("from math import inf\n" if inf else "") + HE_HELPERS.split("\n", 1)[1]
    body = f"\ninputs = {inputs}\n"
    if results is not None:
        body += f"results = {results}\n"
        body += (
            f"for i, (inp, exp) in enumerate(zip(inputs, results)):\n    assertion({fn}(*inp), exp, {atol})\n"
        )
    else:
        body = f"\n{ref}\n" + body
        body += f"for i, inp in enumerate(inputs):\n    assertion({fn}(*inp), ref_func(*inp), {atol})\n"
    return head + body


def _run(source, name, inp):
    """The canonical solution's output (our own code, written above), as EvalPlus computes `results`."""
    namespace = {}
    exec(source, namespace)  # noqa: S102 - the fixture's own solution, not model output
    return namespace[name](*inp)


def humaneval_rows():
    close_prompt = (
        "from typing import List\n\n\ndef close_pair(numbers: List[float], gap: float) -> bool:\n"
        '    """ True when two of the numbers are closer to each other than gap.\n'
        "    >>> close_pair([1.0, 2.0, 3.0], 0.5)\n    False\n"
        "    >>> close_pair([1.0, 2.8, 3.0], 0.3)\n    True\n"
        '    """\n'
    )
    close_solution = "    s = sorted(numbers)\n    return any(b - a < gap for a, b in zip(s, s[1:]))\n"
    close_inputs = [
        [[1.0, 2.0, 3.0], 0.5],
        [[1.0, 2.8, 3.0], 0.3],
        [[], 1.0],
        [[5.0, 5.0], 0.1],
        [[1.5, -2.0, 9.25, 1.0], 0.6],
        [[0.1, 0.35], 0.25],
    ]
    close_results = [_run(close_prompt + close_solution, "close_pair", inp) for inp in close_inputs]
    mean_prompt = (
        "from typing import List\n\n\ndef mean_gap(numbers: List[float]) -> List[float]:\n"
        '    """ Each number minus the mean of the numbers.\n'
        "    >>> mean_gap([1.0, 3.0])\n    [-1.0, 1.0]\n"
        '    """\n'
    )
    mean_solution = "    m = sum(numbers) / len(numbers)\n    return [x - m for x in numbers]\n"
    mean_inputs = [[[1.0, 3.0]], [[0.1, 0.2, 0.3]], [[1e9, 1.0, -7.5]], [[2.0]]]
    mean_results = [[x - sum(xs) / len(xs) for x in xs] for [xs] in mean_inputs]
    frac_prompt = (
        "def fraction_part(number: float) -> float:\n"
        '    """ The part of a positive number after its decimal point.\n'
        "    >>> fraction_part(3.5)\n    0.5\n"
        '    """\n'
    )
    zero_prompt = (
        "import math\n\n\ndef poly(xs: list, x: float):\n"
        '    """ xs[0] + xs[1] * x + xs[2] * x^2 + ... """\n'
        "    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])\n\n\n"
        "def find_zero(xs: list):\n"
        '    """ One zero of the polynomial with coefficients xs (odd degree).\n'
        "    >>> round(find_zero([1, 2]), 2)\n    -0.5\n"
        '    """\n'
    )
    zero_solution = (
        "    lo, hi = -1.0, 1.0\n    while poly(xs, lo) * poly(xs, hi) > 0:\n        lo *= 2.0\n        hi *= 2.0\n"
        "    while hi - lo > 1e-10:\n        mid = (lo + hi) / 2.0\n"
        "        if poly(xs, mid) * poly(xs, lo) > 0:\n            lo = mid\n        else:\n            hi = mid\n"
        "    return lo\n"
    )
    zero_inputs = [[[1, 2]], [[-6, 11, -6, 1]], [[3, -4, 0, 2]]]
    return [
        {
            "task_id": "HumanEval/0",
            "prompt": close_prompt,
            "canonical_solution": close_solution,
            "entry_point": "close_pair",
            "test": he_test(close_inputs, close_results),
        },
        {
            "task_id": "HumanEval/4",
            "prompt": mean_prompt,
            "canonical_solution": mean_solution,
            "entry_point": "mean_gap",
            "test": he_test(mean_inputs, mean_results),
        },
        {
            "task_id": "HumanEval/2",
            "prompt": frac_prompt,
            "canonical_solution": "    return number % 1.0\n",
            "entry_point": "fraction_part",
            "contract": '\n    assert number > 0, "invalid inputs"\n',
            "base_input": [[3.5], [1.33], [123.456]],
            "plus_input": [[0.0001], [1000000.3], [7.0], [2.675]],
            "atol": 1e-06,
        },
        {
            "task_id": "HumanEval/32",
            "prompt": zero_prompt,
            "canonical_solution": zero_solution,
            "entry_point": "find_zero",
            "test": ZERO_TEST.format(inputs=zero_inputs, results=[-0.5, 1.0, -1.0]),
        },
    ]


def mbpp_rows():
    common_code = "def common_items(a, b):\n    return tuple(sorted(set(a) & set(b)))\n"
    common_inputs = [
        ((3, 4, 5, 6), (5, 7, 4, 10)),
        ((1, 2, 3, 4), (5, 4, 3, 7)),
        ((), (1,)),
        ((11, 12, 14, 13), (17, 15, 14, 13)),
        ((2, 2, 2), (2,)),
    ]
    common_results = [tuple(sorted(set(a) & set(b))) for a, b in common_inputs]
    area_code = "import math\ndef disc_area(r):\n    return math.pi * r * r\n"
    area_inputs = [[1], [2.5], [0], [1e-3], ["inf"]]
    area_results = [3.141592653589793 * r * r if r != "inf" else "inf" for [r] in area_inputs]
    area_inputs_src = "[[1], [2.5], [0], [0.001], [inf]]"
    area_results_src = "[" + ", ".join("inf" if r == "inf" else repr(r) for r in area_results) + "]"
    similar_code = "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n"
    similar_inputs = [
        [(3, 4, 5, 6), (5, 7, 4, 10)],
        [(1, 2, 3, 4), (5, 4, 3, 7)],
        [(11, 12, 14, 13), (17, 15, 14, 13)],
    ]
    similar_results = [_run(similar_code, "similar_elements", inp) for inp in similar_inputs]
    ab_code = "import re\ndef text_starta_endb(text):\n    return re.search('a.*?b$', text)\n"
    ab_inputs = [["aabbbb"], ["aabAbbbc"], ["accddbbjjj"], ["ab"], [""]]
    ab_results = [_run(ab_code, "text_starta_endb", inp) is not None for inp in ab_inputs]
    rev_code = "def reverse_words(s):\n    return ' '.join(reversed(s.split()))\n"
    rev_ref = "def ref_func(s):\n    return ' '.join(reversed(s.split()))"
    return [
        {
            "task_id": 3,
            "prompt": "Write a function to find the shared elements of two tuples, in order.",
            "code": common_code,
            "source_file": "Benchmark Questions Verification V2.ipynb",
            "test_imports": [],
            "test_list": [
                "assert common_items((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
                "assert common_items((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)",
            ],
            "test": mbpp_test("common_items", repr([list(x) for x in common_inputs]), repr(common_results)),
        },
        {
            "task_id": 2,
            "prompt": "Write a function to find the shared elements from the given two lists.",
            "code": similar_code,
            "source_file": "Benchmark Questions Verification V2.ipynb",
            "test_imports": [],
            "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"],
            "test": mbpp_test("similar_elements", repr(similar_inputs), repr(similar_results)),
        },
        {
            "task_id": 794,
            "prompt": "Write a function that matches a string that has an 'a' followed by anything, ending in 'b'.",
            "code": ab_code,
            "source_file": "mbpp.jsonl",
            "test_imports": [],
            "test_list": ['assert text_starta_endb("aabbbb")'],
            "test": mbpp_test("text_starta_endb", repr(ab_inputs), repr(ab_results)),
        },
        {
            "task_id": 17,
            "prompt": "Write a function to find the area of a disc of radius r.",
            "code": area_code,
            "source_file": "Benchmark Questions Verification V2.ipynb",
            "test_imports": ["import math"],
            "test_list": ["assert math.isclose(disc_area(1), 3.141592653589793, rel_tol=0.001)"],
            "test": mbpp_test("disc_area", area_inputs_src, area_results_src, inf=True),
        },
        {
            "task_id": 604,
            "prompt": "Write a function to reverse the words of a string.",
            "code": rev_code,
            "source_file": "Benchmark Questions Verification V2.ipynb",
            "test_imports": [],
            "test_list": ['assert reverse_words("python program")==("program python")'],
            "test": mbpp_test(
                "reverse_words", repr([["python program"], ["a"], [""], ["  x  y "]]), ref=rev_ref
            ),
        },
    ]


def encode_private(cases):
    """How LiveCodeBench stores private test cases: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def lcb_rows():
    stdin_solution = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    digits_solution = (
        "```python\nclass Solution:\n    def addDigits(self, num: int) -> int:\n"
        "        while num >= 10:\n            num = sum(int(d) for d in str(num))\n        return num\n```"
    )
    squares_solution = (
        "```python\nfrom typing import List\n\nclass Solution:\n"
        "    def sortedSquares(self, nums: List[int]) -> List[int]:\n        return sorted(x * x for x in nums)\n```"
    )
    stdin = lambda i, o: {"input": i, "output": o, "testtype": "stdin"}  # noqa: E731
    func = lambda i, o: {"input": i, "output": o, "testtype": "functional"}  # noqa: E731
    return [
        {
            "question_title": "A + B",
            "question_content": "Given integers A and B, print A+B.",
            "platform": "atcoder",
            "question_id": "abc999_a",
            "contest_id": "abc999",
            "contest_date": "2024-09-14T00:00:00",
            "starter_code": "",
            "difficulty": "easy",
            "public_test_cases": json.dumps([stdin("1 2\n", "3\n")]),
            "private_test_cases": encode_private(
                [stdin("10 -3\n", "7\n"), stdin("1000000000 1000000000\n", "2000000000\n")]
            ),
            "metadata": "{}",
            "solution": stdin_solution,
        },
        {
            "question_title": "add-digits",
            "question_content": "Given an integer num, repeatedly add all its digits "
            "until the result has only one digit, and return it.",
            "platform": "leetcode",
            "question_id": "258",
            "contest_id": "weekly-contest-1",
            "contest_date": "2023-05-01T00:00:00",
            "starter_code": "class Solution:\n    def addDigits(self, num: int) -> int:\n        ",
            "difficulty": "easy",
            "public_test_cases": json.dumps([func("38", "2")]),
            "private_test_cases": json.dumps([func("0", "0"), func("999999999", "9")]),
            "metadata": json.dumps({"func_name": "addDigits"}),
            "solution": digits_solution,
        },
        {
            "question_title": "squares-of-a-sorted-array",
            "question_content": "Given an integer array nums sorted in "
            "non-decreasing order, return the squares of each number sorted in non-decreasing order.",
            "platform": "leetcode",
            "question_id": "977",
            "contest_id": "weekly-contest-2",
            "contest_date": "2025-01-10T00:00:00",
            "starter_code": "class Solution:\n    def sortedSquares(self, nums: List[int]) -> List[int]:\n        ",
            "difficulty": "medium",
            "public_test_cases": json.dumps([func("[-4, -1, 0, 3, 10]", "[0, 1, 9, 16, 100]")]),
            "private_test_cases": encode_private(
                [func("[-7,-3,2,3,11]", "[4,9,9,49,121]"), func("[1]", "[1]")]
            ),
            "metadata": json.dumps({"func_name": "sortedSquares"}),
            "solution": squares_solution,
        },
    ]


def write(name, rows):
    with (HERE / name).open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    write("humanevalplus_sample.jsonl", humaneval_rows())
    write("mbppplus_sample.jsonl", mbpp_rows())
    write("livecodebench_sample.jsonl", lcb_rows())
