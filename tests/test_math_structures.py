"""Answer structures competition answers take, as users report them (issue 21's kinds, written here from
scratch: the unseen rows stay unseen), each against the math grader: equal forms pass, hedges and
perturbed values fail. One row per shape; the generated cases are in test_math_properties.py."""

from __future__ import annotations

import pytest

from rft.graders import load_grader

GRADER = load_grader({"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"})

# (gold, model output, passes?)
CASES = [

 ("34", "Final Answer: The largest $n$ is 34.", True),
 ("C", "The correct option is (C).", True),
 ("A", "So we choose $\\text{(A)}$", True),
 ("12", "Réponse : 12", True),
 ("12", "所以答案：12", True),
 ("12", "答案是 $12$。", True),
 ("x \\ge 5", "$x \\geq 5$", True),
 ("x >= 5", "$x \\geq 5$", True),
 ("x > 5", "$x \\gt 5$", True),
 ("x < 1", "The answer is $-x > -1$", True),
 ("r = 36", "The answer is $36 = r$", True),
 ("[0, +\\infty)", "$\\{x \\mid x \\geq 0\\}$", True),
 ("1 \\le |z| \\le \\frac{3}{2}", "\\boxed{1 \\leq |z| \\leq 3/2}", True),
 ("0<f(x)<1", "\\boxed{0 < f(x) < 1}", True),
 ("(3,2)", "\\boxed{(p,q)=(3,2)}", True),
 ("k = 45, n = 2", "\\boxed{n=2, k=45}", True),
 ("(45, 2)", "\\boxed{k = 45, n = 2}", True),
 ("p=5,q=2;p=7,q=2", "\\boxed{p=7,q=2; p=5,q=2}", True),
 ("1", "\\boxed{|AB|=1}", True),
 ("x_1 = 1, x_2 = 2", "\\boxed{x_1 = 1, \\quad x_2 = 2}", True),
 ("P(\\{1\\})=3/8, P(\\{2\\})=5/24, P(\\{3\\})=5/12", "\\boxed{P(\\{1\\})=3/8, P(\\{3\\})=5/12, P(\\{2\\})=5/24}", True),
 ("y = -2x - 3", "\\boxed{y = \\left(-1\\right) 2 x - 3}", True),
 ("(1,2),(3,4)", "\\boxed{(3,4),(1,2)}", True),
 ("(11,7),(7,11)", "\\boxed{(11,7) \\text{ or } (7,11)}", True),
 ("(0,-2,6)", "\\boxed{(0;-2;6)}", True),
 ("\\{1,3\\}", "\\boxed{(1,3)}", False),
 ("1 \\pm \\sqrt{2}", "\\boxed{1+\\sqrt2, 1-\\sqrt2}", True),
 ("\\frac{1}{3}", "\\boxed{\\frac13 \\approx 0.333}", True),
 ("5", "\\boxed{5 \\textnormal{ miles}}", True),
 ("14916", "\\boxed{14{,}916}", True),
 ("11111111100", "\\boxed{11,\\! 111,\\! 111,\\! 100}", True),
 ("12, 13", "\\boxed{12 \\text{ and } 13}", True),
 ("1-\\frac{1}{e}", "\\boxed{1-\\frac{1}{\\mathrm{e}}}", True),
 ("2^{k-n}", "\\boxed{2^{k} 2^{-n}}", True),
 ("2", "AZYUK2A", False),
 ("80", "Final Answer: The final answer is $80$ or $79$.", False),
 ("80", "\\boxed{80 \\text{ or } 79}", False),
 ("80", "\\boxed{80, 79}", False),
 ("80", "\\boxed{\\pm 80}", False),
 ("80", "either 80 or 79", False),
 ("80", "\\boxed{\\{80, 79\\}}", False),
 ("3", "\\boxed{x=3 \\text{ or } x=-3}", False),

 ("80", "So \\boxed{80} or \\boxed{79}.", False),
 ("79", "So \\boxed{80} or \\boxed{79}.", False),
 ("3, 4", "First part: \\boxed{3} and second \\boxed{4}", False),
 ("3, 4", "\\boxed{3} and \\boxed{4}", True),
 ("79", "Therefore $n = 80$ or $n = 79$.", False),
 ("4", "We have $a = 3$ and $b = 4$.", True),
 ("79", "The answer is $80$, or possibly $79$.", False),
 ("5", "The answer is $5$ because it is the only one.", True),
 ("5", "The answer is $5$ cm.", True),
 ("C", "The correct option is \\text{(C)}.", True),
 ("C", "Answer: (C) 12", True),
 ("x \\in (-\\infty, 1)", "\\boxed{x<1}", True),
 ("(-\\infty, 1)", "\\boxed{1 - x > 0}", True),
 ("x > 1", "\\boxed{y > 1}", False),
 ("(1,2)", "\\boxed{(2,1)}", False),

 ("2, 3", "\\boxed{x=2 \\text{ or } x=3}", True),
 ("\\{2,3\\}", "\\boxed{2 \\text{ and } 3}", True),
 ("\\{(2,3),(3,2)\\}", "\\boxed{(3,2),(2,3)}", True),
 ("(-\\infty, -2) \\cup (3, \\infty)", "\\boxed{x < -2 \\text{ or } x > 3}", True),
 ("(-\\infty, -2) \\cup (3, \\infty)", "\\boxed{x < -2 \\text{ or } x > 4}", False),
 ("x<-2 \\text{ or } x>3", "\\boxed{(-\\infty, -2) \\cup (3, +\\infty)}", True),
 ("[2, 5)", "\\boxed{2 \\le x < 5}", True),
 ("30", "\\boxed{\\angle A = 30^\\circ}", True),
 ("y = \\frac{1}{2}x + 1", "\\boxed{y=0.5x+1}", True),
 ("x^2", "\\boxed{f(x) = x^2}", True),
 ("\\frac{\\pi}{4}", "\\boxed{\\frac{\\pi}{4} \\text{ radians}}", True),
 ("1500", "\\boxed{1.5 \\times 10^{3}}", True),
 ("\\frac{\\sqrt2}{2}", "\\boxed{\\sqrt{2}/2}", True),
 ("\\log_2 3", "\\boxed{\\frac{\\ln 3}{\\ln 2}}", True),
 ("\\text{no solution}", "\\boxed{\\text{No solution}}", True),
 ("\\emptyset", "\\boxed{\\varnothing}", True),
 ("\\infty", "\\boxed{+\\infty}", True),
 ("(x+1)^2", "\\boxed{x^2+2x+1}", True),
 ("\\text{Yes}", "The answer is yes.", True),
 ("2", "\\boxed{x = 2}", True),
 ("-1", "Final Answer: The final answer is $-1$. I hope it is correct.", True),
 ("\\frac{3}{4}", "**Answer:** $\\frac{3}{4}$", True),
 ("7", "**Final Answer**\n\\[ \\boxed{7} \\]", True),
 ("7", "**Final Answer**\n\n7", True),
 ("E", "The answer is $\\boxed{\\textbf{(E)}\\ 12}$", True),
 ("E", "$\\textbf{(E) }12$", True),
 ("12", "$\\textbf{(E) }12$", True),
 ("3", "So $x$ equals $3$.", True),
 ("5", "Therefore, the number of ways is 5.", True),
 ("5", "Therefore, the number of ways is $5$ or $6$.", False),
 ("6", "Therefore, the number of ways is $5$ or $6$.", False),
 ("2", "x=2 or x=-2", False),
 ("2", "The solutions are $x = \\pm 2$.", False),
 ("\\pm 2", "The solutions are $x = \\pm 2$.", True),
 ("2, -2", "\\boxed{\\pm 2}", True),
 ("2", "The answer is either 2 or 3.", False),
 ("3", "The answer is either 2 or 3.", False),
 ("\\{1, 2\\}", "\\boxed{1, 2}", True),
 ("1", "\\boxed{\\{1\\}}", True),
 ("(1,2)", "\\boxed{\\{(1,2)\\}}", True),
 ("0.5", "\\boxed{50\\%}", True),
 ("2", "\\boxed{2.0}", True),
 ("\\sqrt{3}", "\\boxed{1.732}", False),
 ("\\sqrt{3}", "\\boxed{\\sqrt{3} \\approx 1.732}", True),
 ("a=1, b=2", "\\boxed{b=2, a=1}", True),
 ("a=1, b=2", "\\boxed{a=2, b=1}", False),
 ("(1, 2)", "\\boxed{a=2, b=1}", False),
 ("x \\in [1, 3]", "\\boxed{[1,3]}", True),
 ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\boxed{(1, 2)}", True),
 ("11:21", "\\boxed{V_1:V_2=11:21}", True),
 ("11:21", "\\boxed{21:11}", False),
 ("\\frac{11}{21}", "\\boxed{11:21}", True),
 ("6", "Réponse : $6$", True),
 ("6", "**Respuesta:** 6", True),
 ("6", "最终答案是 6。", True),
]  # fmt: skip


@pytest.mark.parametrize(("gold", "output", "expected"), CASES)
def test_structure(gold, output, expected):
    grade = GRADER.grade({"output_text": output}, {"answer": gold})
    assert grade.status in ("ok", "no_answer")
    assert grade.passed is expected, grade.details


@pytest.mark.parametrize(
    ("gold", "output", "expected"),
    [
        ("12", "\\boxed{\\operatorname{lcm}(4,6)}", True),
        ("13", "\\boxed{\\operatorname{lcm}(4,6)}", False),
        ("6", "\\boxed{\\gcd(12, 18)}", True),
        ("3", "\\boxed{\\max(1,3)}", True),
        ("\\min(a,b)", "\\boxed{\\min(b,a)}", True),
        ("2", "\\boxed{\\sum_{k=1}^{2} 1}", True),
    ],
)
def test_second_parser_reads_what_the_first_does_not(gold, output, expected):
    grade = GRADER.grade({"output_text": output}, {"answer": gold})
    assert grade.details["pred"]["kind"] == "sympy", grade.details
    assert grade.passed is expected


def test_second_parser_bounded_work():
    from rft.graders.math.second import MAX_CHARS, parse_second

    assert parse_second("\\gcd(12, 18)")[0] == ("sympy", 6)
    for text, why in [
        ("2^{3^{4}}", "nested powers"),
        ("\\sum_{k=1}^{10000} k!", "exponent of 4 digits"),
        ("1" * 45 + "!", "40 digits"),
        ("1234!", "factorial"),
        ("\\gcd(" + "1," * MAX_CHARS + "1)", "longer than"),
    ]:
        node, reason = parse_second(text)
        assert node is None and why in reason, (text, reason)
    node, reason = parse_second("\\frac{")
    assert node is None and reason.startswith("second parser:")
