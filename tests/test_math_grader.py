"""The `math` grader: answer families (true positives and near misses), extraction, Math-Verify's known
false positives, pathological inputs under a deadline (also from a thread), the policy options, and the
whole labelled dev file (FN <= 0.2%, FP == 0 outside the policy rows)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from rft.graders import load_grader
from rft.graders.executor import GraderPool
from rft.graders.math import extract_answer, parse, verify
from rft.graders.math.verify import Policy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MATH = load_grader({"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"})

# (gold, prediction) pairs per answer family: EQUAL must verify, NEAR_MISS must not.
EQUAL = {
    "integers": [("42", "42"), ("1000", "1,000"), ("15000", "15,\\!000"), ("1545", "1{,}545"), ("-7", "-7.0"),
                 ("1000000", "1\\,000\\,000"), ("0", "-0")],
    "decimals": [("0.5", ".5"), ("7.5", "7.50"), ("-13.5", "-13.50"), ("0.25", "\\frac14"), ("3.125", "25/8"),
                 ("0.\\overline{3}", "\\frac{1}{3}"), ("0.1\\overline{6}", "1/6")],
    "fractions": [("\\frac{1}{2}", "1/2"), ("\\frac{2}{3}", "\\dfrac{2}{3}"), ("\\frac{2}{3}", "\\tfrac23"),
                  ("-\\frac{1}{2}", "\\frac{-1}{2}"), ("\\frac{19}{4}", "\\frac{38}{8}"), ("\\frac{1}{4}", "0.25"),
                  ("\\frac{5}{4}", "\\frac 54"), ("\\frac{3}{2}", "1.5")],
    "mixed numbers": [("6\\frac{3}{4}", "\\frac{27}{4}"), ("1\\frac{12}{13}", "25/13"), ("3 \\frac{3}{8}", "3.375"),
                      ("-2\\frac12", "-\\frac52"), ("11 \\frac{2}{3}", "11 2/3")],
    "radicals": [("2\\sqrt{2}", "\\sqrt{8}"), ("3\\sqrt{3}", "\\sqrt{27}"), ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
                 ("10\\sqrt 2", "10\\sqrt{2}"), ("2\\sqrt{3}", "2\\cdot\\sqrt{3}"), ("\\sqrt[3]{16}", "2\\sqrt[3]{2}"),
                 ("\\frac{1-\\sqrt{5}}{2}", "\\frac12-\\frac{\\sqrt5}{2}"), ("\\sqrt{3}-1", "\\frac{2}{1+\\sqrt{3}}")],
    "pi": [("\\frac{\\pi}{4}", "\\frac{1}{4}\\pi"), ("9\\pi", "9\\cdot\\pi"), ("\\frac{4}{3}\\pi", "\\dfrac{4\\pi}{3}"),
           ("26\\pi", "26 \\pi"), ("2\\pi r", "2 r \\pi"), ("\\pi^2", "\\pi\\cdot\\pi")],
    "exponentials": [("e^2", "e\\cdot e"), ("2^{10}", "1024"), ("2^{-3}", "\\frac18"), ("\\ln 8", "3\\ln 2"),
                     ("\\log_2 8", "3"), ("e^{x+1}", "e\\cdot e^{x}"), ("4^{1/2}", "2")],
    "scientific": [("1.5\\times10^{3}", "1500"), ("3\\cdot 10^{-2}", "0.03"), ("2.5 \\times 10^{6}", "2500000"),
                   ("6.02\\times 10^{23}", "602000000000000000000000"), ("1e-3", "0.001")],
    "percent": [("50\\%", "50"), ("44\\%", "0.44"), ("7.2\\%", "0.072"), ("25\\%", "25 \\%"), ("100\\%", "100%")],
    "degrees": [("25^\\circ", "25^{\\circ}"), ("70^\\circ", "70"), ("180^{\\circ}", "180^\\circ"),
                ("45^\\circ", "45\\text{ degrees}"), ("30^\\circ", "30\\degree")],
    "units and text": [("5\\text{ cm}", "5"), ("\\$3800", "3800"), ("575\\text{ students}", "575 students"),
                       ("440\\text{ cm}^2", "440"), ("\\frac{68}{3}\\text{ pounds}", "\\frac{68}{3} \\text{ pounds}"),
                       ("9\\text{ a.m.}", "9")],
    "sets": [("\\{1, 2\\}", "\\{2, 1\\}"), ("\\{-1, 3\\}", "\\left\\{ 3, -1 \\right\\}"), ("\\{\\frac12\\}", "\\{0.5\\}"),
             ("\\{1,2,3\\}", "\\{3,1,2\\}"), ("\\{a, b\\}", "\\{b, a\\}")],
    "tuples": [("(1,4)", "\\left( 1, 4 \\right)"), ("(-7, 3)", "(-7,3)"), ("(1,\\frac{9}{2})", "(1, 9/2)"),
               ("\\left(\\frac{17}{4},0\\right)", "(17/4, 0)"), ("(1, 2, 3)", "(1,2,3.0)")],
    "intervals": [("[6,\\infty)", "[6, \\infty)"), ("(-\\infty,0)", "\\left(-\\infty, 0\\right)"), ("[-3,2]", "[-3, 2]"),
                  ("(-\\infty, 1) \\cup (2, \\infty)", "(2,\\infty)\\cup(-\\infty,1)"), ("(3, \\infty)", "x > 3"),
                  ("[1, 5)", "1 \\le x < 5")],
    "matrices": [("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{bmatrix} 1 \\\\ 2 \\end{bmatrix}"),
                 ("\\begin{pmatrix} 7 & 1 \\\\ -1 & -3 \\end{pmatrix}", "\\begin{pmatrix}7&1\\\\-1&-3\\end{pmatrix}"),
                 ("\\begin{pmatrix} 5/3 \\\\ 4/3 \\end{pmatrix}", "\\begin{pmatrix} \\frac53 \\\\ \\frac{4}{3} \\end{pmatrix}"),
                 ("\\begin{pmatrix} 1 \\\\ 2 \\\\ 3 \\end{pmatrix}", "(1, 2, 3)"),
                 ("\\begin{pmatrix} 0.5 & 0 \\\\ 0 & 1 \\end{pmatrix}", "\\begin{bmatrix} 1/2 & 0 \\\\ 0 & 1 \\end{bmatrix}")],
    "equations": [("x=5", "5"), ("5", "x = 5"), ("y = 2x + 3", "y = 3 + 2x"), ("y = 2x + 3", "2x - y + 3 = 0"),
                  ("x = 2", "2 = x"), ("x + y = 1", "y + x = 1"), ("f(x) = x + 1", "x + 1"), ("(1, 2)", "x=1, y=2")],
    "inequalities": [("x > 3", "3 < x"), ("x \\ge 2", "x \\geq 2"), ("-1 < x < 1", "1 > x > -1"),
                     ("x \\le 5", "(-\\infty, 5]"), ("x < 0", "x<0"), ("x \\in [-2,7]", "-2 \\le x \\le 7")],
    "expressions": [("x^2+7x+10", "10 + 7x + x^2"), ("(x+1)^2", "x^2+2x+1"), ("8x^3 - 6x - 1", "-1 - 6x + 8x^3"),
                    ("\\frac{x}{2}", "0.5x"), ("7p+4e", "4e+7p"), ("\\frac{1}{y} + y", "\\frac{y^2+1}{y}"),
                    ("\\sin^2 x + \\cos^2 x", "1")],
    "multiple choice": [("\\text{(C)}", "C"), ("\\text{(C)}", "(C)"), ("\\text{(B)}", "\\textbf{(B)}"),
                        ("\\text{(E)}", "\\text{E}"), ("(A)", "\\mathrm{(A)}")],
    "plain text": [("\\text{Monday}", "Monday"), ("\\text{odd}", "Odd"), ("\\text{neither}", "neither."),
                   ("\\text{no solution}", "No Solution"), ("\\text{VW}", "VW")],
    "comma lists": [("6, -2", "-2, 6"), ("7,9,12,13", "7, 9, 12, 13"), ("0, \\frac{2\\pi}{3}", "\\frac{2\\pi}{3}, 0"),
                    ("1 \\pm \\sqrt{2}", "1+\\sqrt2, 1-\\sqrt2"), ("x=1, x=2", "1, 2"), ("12, 10, 6", "6,10,12")],
    "bases": [("1202_3", "1202_{3}"), ("1202_3", "1202"), ("4210_{7}", "4210_7"), ("11010_2", "11010"), ("42_7", "42")],
}  # fmt: skip

NEAR_MISS = {
    "integers": [("42", "43"), ("8", "-8"), ("1000", "100"), ("15000", "15001"), ("0", "1"), ("1545", "1,546")],
    "decimals": [("920.25", "920.26"), ("3.5", "-3.5"), ("\\frac{1}{3}", "0.333"), ("\\frac{1}{3}", "0.3333333333"),
                 ("0.5", "0.55"), ("2", "2.00000001")],
    "fractions": [("\\frac{7}{25}", "\\frac{8}{25}"), ("\\frac{1}{2}", "-\\frac12"), ("\\frac{2}{3}", "\\frac{3}{2}"),
                  ("\\frac{1}{4}", "0.26"), ("\\frac{49}{64}", "\\frac{50}{64}"), ("\\frac{1}{3}", "0.\\overline{33}4")],
    "mixed numbers": [("6\\frac{3}{4}", "7\\frac{3}{4}"), ("1\\frac{12}{13}", "\\frac{12}{13}"),
                      ("3\\frac{1}{2}", "\\frac{3}{2}"), ("-2\\frac12", "-1.5"), ("11\\frac{2}{3}", "\\frac{22}{3}")],
    "radicals": [("3\\sqrt{2}", "3\\sqrt{3}"), ("\\sqrt{10}", "2\\sqrt{10}"), ("2\\sqrt{2}", "2.828"),
                 ("\\sqrt{2}", "\\sqrt[3]{2}"), ("\\frac{\\sqrt{3}}{9}", "\\frac{\\sqrt{3}}{3}"), ("6\\sqrt{3}", "6\\sqrt{4}")],
    "pi": [("26\\pi", "27\\pi"), ("\\frac{\\pi}{4}", "\\frac{2\\pi}{4}"), ("\\pi", "3.14159"), ("2\\pi", "2"),
           ("\\pi^2", "2\\pi"), ("\\frac{4}{3}\\pi", "\\frac{5\\pi}{3}")],
    "exponentials": [("e^2", "e^3"), ("2^{10}", "1023"), ("2^{-99}", "2^{-98}"), ("\\ln 8", "\\ln 9"), ("e", "2.718281828"),
                     ("\\frac{1}{2004!}", "\\frac{1}{2006!}")],
    "scientific": [("1.5\\times10^{3}", "150"), ("3\\cdot 10^{-2}", "3\\cdot 10^{-3}"), ("10^{-100}", "0"),
                   ("6.02\\times 10^{23}", "6.03\\times 10^{23}"), ("1e-3", "0.0011")],
    "percent": [("44\\%", "45\\%"), ("50\\%", "5"), ("7.2\\%", "0.72"), ("100\\%", "101"), ("25\\%", "0.2")],
    "degrees": [("25^\\circ", "26^\\circ"), ("70^\\circ", "71"), ("45^\\circ", "\\frac{\\pi}{4}"), ("90^\\circ", "-90^\\circ"),
                ("30^\\circ", "60^\\circ")],
    "units and text": [("5\\text{ cm}", "6\\text{ cm}"), ("\\$3800", "\\$3801"), ("575\\text{ students}", "576"),
                       ("\\frac{68}{3}\\text{ pounds}", "\\frac{69}{3}\\text{ pounds}"), ("9\\text{ a.m.}", "10")],
    "sets": [("\\{1, 2\\}", "\\{1, 3\\}"), ("\\{1, 2\\}", "\\{1, 2, 3\\}"), ("\\{1, 2\\}", "(1, 2)"), ("\\{1,2\\}", "\\{1\\}"),
             ("\\{-1, 3\\}", "\\{1, -3\\}")],
    "tuples": [("(1,4)", "(4,1)"), ("(-6, 10)", "(-6, 11)"), ("(1,2)", "[1,2]"), ("(1, 2, 3)", "(1, 2)"), ("(1,-2)", "(1, -1)"),
               ("(3, 4)", "3, 4")],
    "intervals": [("(-\\infty,0)", "(-\\infty, 0]"), ("[-3,2]", "[-3, 2)"), ("[6,\\infty)", "[7, \\infty)"),
                  ("(3, \\infty)", "x \\ge 3"), ("(0,1]", "0, 1"), ("(-\\infty, 1) \\cup (2, \\infty)", "(-\\infty, 1) \\cup [2, \\infty)")],
    "matrices": [("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix}"),
                 ("\\begin{pmatrix} 7 & 1 \\\\ -1 & -3 \\end{pmatrix}", "\\begin{pmatrix} 7 & 1 \\\\ -1 & -2 \\end{pmatrix}"),
                 ("\\begin{pmatrix} 1 & 2 \\end{pmatrix}", "\\begin{pmatrix} 2 & 1 \\end{pmatrix}"),
                 ("\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}", "\\begin{pmatrix} 1 & 0 & 0 & 1 \\end{pmatrix}"),
                 ("\\begin{pmatrix} 5/3 \\\\ 5/3 \\end{pmatrix}", "\\begin{pmatrix} 5/3 \\\\ 6/3 \\end{pmatrix}")],
    "equations": [("x+z=1", "1"), ("1", "x + z = 1"), ("y = 2x + 3", "y = 2x + 4"), ("x = 5", "x = -5"),
                  ("y = 2x", "y = x/2"), ("x=5", "6"), ("2x = 4", "4"), ("(1, 2)", "x=2, y=1"), ("(1, 2)", "x=1, x=2")],
    "inequalities": [("x > 3", "x < 3"), ("x \\ge 2", "x > 2"), ("-1 < x < 1", "-1 \\le x < 1"), ("x \\le 5", "(-\\infty, 5)"),
                     ("x < 0", "x < 1")],
    "expressions": [("x^2+7x+10", "x^2+7x+11"), ("(x+1)^2", "x^2+1"), ("8x^3 - 6x - 1", "8x^3 - 6x + 1"),
                    ("7p+4e", "7p+4"), ("\\frac{1}{y} + y", "\\frac{y+1}{y}"), ("x^2", "|x|^2 + 1"), ("\\sqrt{x^2}", "x")],
    "multiple choice": [("\\text{(C)}", "D"), ("\\text{(C)}", "(D)"), ("\\text{(B)}", "\\textbf{(C)}"), ("\\text{(A)}", "a"),
                        ("\\text{(E)}", "3")],
    "plain text": [("\\text{Monday}", "Tuesday"), ("\\text{odd}", "even"), ("\\text{neither}", "both"),
                   ("\\text{no}", "on"), ("\\text{VW}", "VX")],
    "comma lists": [("6, -2", "6, 2"), ("7,9,12,13", "7, 9, 12, 14"), ("1, 2", "1, 2, 3"), ("1, 2", "1"),
                    ("1 \\pm \\sqrt{2}", "1+\\sqrt2"), ("6, -2", "(6, -2)")],
    "bases": [("1202_3", "1201_3"), ("1202_3", "47"), ("1202_3", "1202_4"), ("42_7", "43"), ("11010_2", "1101")],
}  # fmt: skip


def _pairs(table: dict[str, list[tuple[str, str]]]) -> list:
    return [pytest.param(g, p, id=f"{family}:{g}|{p}") for family, pairs in table.items() for g, p in pairs]


def test_every_family_has_five_of_each():
    assert set(EQUAL) == set(NEAR_MISS)
    for family in EQUAL:
        assert len(EQUAL[family]) >= 5 and len(NEAR_MISS[family]) >= 5, family


@pytest.mark.parametrize(("gold", "pred"), _pairs(EQUAL))
def test_equal(gold, pred):
    verdict = verify(gold=parse(gold), pred=parse(pred))
    assert verdict, verdict


@pytest.mark.parametrize(("gold", "pred"), _pairs(NEAR_MISS))
def test_near_miss(gold, pred):
    verdict = verify(gold=parse(gold), pred=parse(pred))
    assert not verdict, verdict


@pytest.mark.parametrize(
    ("gold", "pred"),
    [("\\frac{1}{2004!}", "\\frac{1}{2006!}"), ("2^{-99}", "2^{-98}"), ("x+z=1", "1"), ("10^{-30}", "0"),
     ("1 + 10^{-40}", "1"), ("2^{-1000}", "2^{-1001}")],
)  # fmt: skip
def test_math_verify_known_false_positives_are_rejected(gold, pred):
    grade = MATH.grade({"output_text": f"The answer is ${pred}$."}, {"answer": gold})
    assert grade.status == "ok" and grade.score == 0.0, grade


# ---- extraction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer", "rule"),
    [
        ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", "boxed"),
        ("\\boxed{1} then \\fbox{\\{1, \\{2\\}\\}}", "\\{1, \\{2\\}\\}", "boxed"),
        ("\\boxed 5", "5", "boxed"),
        ("Final Answer: The final answer is $x=5$. I hope it is correct.", "x=5", "answer_phrase"),
        ("The answer is 7/20.", "7/20", "answer_phrase"),
        ("Answer: Monday", "Monday", "answer_phrase"),
        ("**Final answer:** $-\\frac12$", "-\\frac12", "answer_phrase"),
        ("Thus, the answer is \\(\\$15001\\).", "\\$15001", "answer_phrase"),
        ("The answer is -2, 6.", "-2, 6", "answer_phrase"),
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72", "gsm8k"),
        ("<think>2+2</think><answer>4</answer>", "4", "answer_tag"),
        ("<answer>so \\boxed{4}</answer>", "4", "answer_tag+boxed"),
        ("After simplifying, we obtain $$1/2$$", "1/2", "last_math"),
        ("17x-13", "17x-13", "whole"),
        ("We add the numbers and get 12 apples, then 13 pears", "13", "last_number"),
    ],
)
def test_extraction(text, answer, rule):
    found = extract_answer(text)
    assert found is not None and (found.text, found.rule) == (answer, rule)


def test_no_answer_and_last_number_option():
    grade = MATH.grade({"output_text": "I do not know."}, {"answer": "3"})
    assert grade.status == "no_answer"
    strict = load_grader({"type": "math", "last_number": False})
    text = "There are several ways to count this, say 3 or more.\nLet me think again about the setup."
    assert strict.grade({"output_text": text}, {"answer": "3"}).status == "no_answer"
    assert MATH.grade({"output_text": text}, {"answer": "3"}).passed


def test_reference_with_a_final_answer_is_extracted():
    gsm = load_grader({"type": "math", "reference": "{{ item.solution }}"})
    assert gsm.grade({"output_text": "The answer is 72."}, {"solution": "48 + 24 = 72\n#### 72"}).passed
    assert gsm.grade({"output_text": "\\boxed{8}"}, {"solution": "so $\\boxed{8}$."}).passed


def test_grade_details_name_the_rule_and_the_parsed_forms():
    grade = MATH.grade({"output_text": "So we get $\\boxed{0.5}$."}, {"answer": "\\frac12"})
    assert grade.passed and grade.extracted == "0.5"
    assert grade.details["extraction"] == "boxed" and grade.details["rule"] in ("exact", "fast_path")
    assert grade.details["gold"]["kind"] == "expr" and grade.details["pred"] == {
        "text": "0.5",
        "kind": "number",
    }
    json.dumps(grade.to_dict())  # JSON-able
    assert MATH.grade({"output_text": "x"}, {"answer": ""}).status == "error"


def test_unparseable_prediction_is_wrong_not_an_error():
    grade = MATH.grade({"output_text": "\\boxed{\\frac}"}, {"answer": "1"})
    assert (grade.status, grade.score) == ("ok", 0.0) and grade.details["pred"]["kind"] == "unparsed"


# ---- policy ----------------------------------------------------------------------------------------------


def test_policy_options():
    assert verify(gold="50\\%", pred="0.5") and not verify(
        gold="50\\%", pred="0.5", policy=Policy(percent="value")
    )
    assert verify(gold="50\\%", pred="50", policy=Policy(percent="value"))
    assert verify(gold="30^\\circ", pred="30") and not verify(
        gold="30^\\circ", pred="30", policy=Policy(degrees="strict")
    )
    assert verify(gold="3, 1", pred="1, 3") and not verify(
        gold="3, 1", pred="1, 3", policy=Policy(ordered_lists=True)
    )
    assert verify(gold="0.3", pred="0.30000000000000004")
    assert not verify(gold="0.3", pred="0.30000000000000004", policy=Policy(rel_tol=0))
    assert not verify(gold="0.3333333333", pred="\\frac13")  # the tolerance stays below the gold's last digit
    spec = load_grader(
        {"type": "math", "percent": "value", "degrees": "strict", "ordered_lists": True, "rel_tol": 0}
    )
    assert not spec.grade({"output_text": "\\boxed{0.5}"}, {"answer": "50\\%"}).passed
    assert load_grader(spec.spec()) == spec


def _dev_rows() -> list[dict]:
    path = DATA / "math_pairs_dev.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the checkout needs shared/ beside it)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_policy_rows_follow_the_documented_policy():
    rows = [r for r in _dev_rows() if r["kind"].startswith("policy_")]
    assert rows
    grades = [MATH.grade(r["sample"], r["item"]) for r in rows]
    assert all(g.passed for g in grades)  # degrees dropped, percent = value or fraction
    strict = load_grader({"type": "math", "percent": "value", "degrees": "strict"})
    assert not any(strict.grade(r["sample"], r["item"]).passed for r in rows)


def test_whole_dev_file():
    rows = _dev_rows()
    t0 = time.perf_counter()
    grades = [MATH.grade(r["sample"], r["item"]) for r in rows]
    seconds = time.perf_counter() - t0
    counted = [(r, g) for r, g in zip(rows, grades, strict=True) if not r["kind"].startswith("policy_")]
    positives = [g for r, g in counted if r["expected"]]
    fn = [r["id"] for r, g in counted if r["expected"] and not g.passed]
    fp = [r["id"] for r, g in counted if not r["expected"] and g.passed]
    assert len(fn) <= 0.002 * len(positives), fn[:20]
    assert fp == []
    assert all(g.status == "ok" for g in grades)
    assert seconds < 30, f"{len(rows)} rows took {seconds:.1f}s"


# ---- pathological inputs: bounded, and under a hard deadline -----------------------------------------------

PATHOLOGICAL = [
    ("tower", "\\boxed{9^{9^{9}}}"),
    ("tower_plain", "The answer is 9^{9^{9^{9}}}."),
    ("one_megabyte", "1" * 1_000_000),
    ("one_megabyte_text", "ab " * 350_000),
    ("nested_braces", "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}"),
    ("unclosed_braces", "\\boxed{" * 100_000),
    ("nested_parens", "$" + "(" * 10_000 + "1" + ")" * 10_000 + "$"),
    ("frac_without_arguments", "\\boxed{\\frac}"),
    ("huge_factorial", "\\boxed{(10^{6})!}"),
    ("huge_power_of_sum", "\\boxed{(x+1)^{100000}}"),
    ("huge_sqrt", "\\boxed{\\sqrt{" + "7" * 390 + "}}"),
]


def _check_pathological(grades, deadline: float, seconds: float) -> None:
    for (name, _), g in zip(PATHOLOGICAL, grades, strict=True):
        assert g.status in ("ok", "no_answer", "timeout", "error"), name
        assert not g.passed, name
        if g.status == "timeout":
            assert g.details["deadline_s"] == deadline
    assert seconds < deadline * len(PATHOLOGICAL), seconds


def test_pathological_inputs_inline_are_fast():
    for name, text in PATHOLOGICAL:
        t0 = time.perf_counter()
        grade = MATH.grade({"output_text": text}, {"answer": "2"})
        assert time.perf_counter() - t0 < 2.0, name
        assert grade.status in ("ok", "no_answer") and not grade.passed, (name, grade)


def test_pathological_inputs_through_the_pool_from_a_thread():
    deadline = 3.0
    grader = load_grader({"type": "math", "timeout": deadline})
    samples = [{"output_text": text} for _, text in PATHOLOGICAL]
    items = [{"answer": "2"}] * len(samples)
    result: dict[str, object] = {}

    def run() -> None:
        t0 = time.perf_counter()
        with GraderPool(workers=2, timeout=deadline) as pool:
            result["grades"] = pool.grade(grader, samples, items)
        result["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    assert not thread.is_alive()
    _check_pathological(result["grades"], deadline, result["seconds"])  # type: ignore[arg-type]


def test_grading_from_threads_matches_inline():
    rows = [(f"\\boxed{{{i}/7}}", f"\\frac{{{i}}}{{7}}") for i in range(40)] + [("$e^{x}$", "e^x")] * 5
    expected = [MATH.grade({"output_text": t}, {"answer": a}).passed for t, a in rows]
    got: list[bool | None] = [None] * len(rows)

    def work(k: int) -> None:
        for i in range(k, len(rows), 4):
            got[i] = MATH.grade({"output_text": rows[i][0]}, {"answer": rows[i][1]}).passed

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected and all(expected)
