"""Math answers: extract the final answer from a model's text, parse it, and compare it with the gold.

    from rft.graders.math import parse, verify
    verify(gold=parse("\\frac{1}{2}"), pred=parse("0.5"))  # Verdict(equal=True, rule='fast_path')

As a grader: ``{"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"}``.

Pipeline: `extract_answer` (last ``\\boxed{}``/``\\fbox{}`` with the boxes joined to it by "or"/"and",
an answer sentence ("the answer is ...", "Final Answer: The largest $n$ is 34.", "the correct option is
(C)", "la réponse est", "答案是"), ``#### 42``, ``<answer>`` tags, a final math span, the whole short text,
the last number not inside a word) -> `parse` (clean-up, then a fast path for integers, decimals and
simple fractions, else a small LaTeX parser; no sympy, no eval; what it cannot read goes to a second
parser, latex2sympy2_extended, under bounded-work rules: `second`) -> `verify` (exact rational/radical/pi
arithmetic, sympy only for symbols, functions and solution sets). The result is cached.

Policy (what counts as the same answer; options of the grader spec in brackets):

- Value, not form: ``\\frac{1}{2}`` = ``1/2`` = ``0.5`` = ``\\dfrac12``; ``\\sqrt{8}`` = ``2\\sqrt2``;
  ``3\\frac{1}{2}`` is a mixed number (7/2); ``1,000`` = ``1{,}000`` = ``1000`` (a comma followed by three
  digits in a lone number is a thousands separator); ``0.\\overline{3}`` = 1/3 exactly.
- Decimals are exact: ``0.333`` is not 1/3. Where the gold is itself a decimal, a relative tolerance
  applies [rel_tol, default 1e-8], capped below the gold's last stated digit (gold ``920.25`` never
  accepts ``920.26``). Tiny values are never rounded to zero: ``2^{-99}`` is not ``2^{-98}``.
- Units and decoration are ignored: ``5\\text{ cm}`` = ``5`` = ``5 cm``; ``\\$``; a ``\\text{}`` wrapper;
  compound units after a value (``5 \\mathrm{~m} / \\mathrm{s}``, ``\\text{ m/s}``, ``\\mathrm{s}^{-1}``,
  ``\\mathrm{J}``; ``\\mathrm{e}``, ``\\mathrm{i}``, ``\\mathrm{d}`` are maths, not units).
- Absolute tolerance [tolerance, default none; a number or a per-item template]: answers that are one
  real number on both sides are equal within it; lists, tuples, intervals and expressions never are.
- Percent [percent]: ``50\\%`` = ``50``; with ``value_or_fraction`` (default) also ``0.5``; ``value``: not.
- Degrees [degrees]: ``30^\\circ`` = ``30`` (``ignore``, default); ``strict``: both or neither carry
  the sign. Degrees are never converted to radians.
- Multiple choice: ``\\text{(B)}`` = ``(B)`` = ``B`` = ``\\textbf{(B)}``; not ``(C)``.
- Text answers compare case-insensitively, ignoring spacing and final punctuation.
- Labelled values: ``x = 5``, ``f(x) = 5``, ``|AB| = 5``, ``P(\\{1\\}) = 5``, ``V_1:V_2 = 5`` equal ``5`` (a
  label on the left); ``(p,q)=(3,2)`` is ``p=3, q=2``; labelled values match label by label in any order,
  and a list of them equals the tuple of its values (``k = 45, n = 2`` = ``(45, 2)``). ``x + z = 1`` is an
  equation, not a label. Two equations are equal when one side minus the other is proportional.
- One-variable relations equal when they describe the same set of reals, with the same variable:
  ``-x > -1`` = ``x < 1`` = ``(-\\infty, 1)``; ``\\{x \\mid x \\geq 0\\}`` = ``[0, \\infty)``; ``x < -2`` or ``x > 3``
  = ``(-\\infty, -2) \\cup (3, \\infty)``.
- Hedging is wrong: an answer offering several candidates where one value is expected (``80 or 79``,
  ``\\boxed{80} or \\boxed{79}``, ``\\pm 80``, a list or set) does not equal a single value.
- ``\\frac13 \\approx 0.333``: the exact value before ``\\approx`` is the answer.
- Tuples ``(a, b)`` and intervals keep their order and their brackets (open vs closed ends matter);
  ``\\{...\\}`` sets are unordered; a bare comma list is unordered [ordered_lists=false]; ``;`` separates
  solutions (``p=5,q=2; p=7,q=2``) and elements of a tuple (``(0;-2;6)``). ``a \\pm b`` is the list
  ``a+b, a-b`` wherever the sign is. Matrices compare entrywise (shape too; a column vector equals a tuple).
- ``e`` is Euler's number and ``i`` the imaginary unit, on both sides alike.
- An answer that cannot be parsed is compared as a string; unequal means score 0 with status ok.
- Numbers too large to compute (``9^{9^{9}}``, ``10^{6}!``) are compared by their written structure.

Form [form], for "compute this" tasks where echoing the question would be equal in value (``37 + 12 * 5``
for 97): besides its value, the extracted answer (after the clean-up above) must have a form, else it
scores 0 with status ok, and ``details["form"]`` says which form was required and why it fails:

- ``any`` (default): no check; everything above applies as is.
- ``number``: one numeric literal: an integer, a decimal, or a fraction ``a/b`` / ``\\frac{a}{b}`` of
  integers (either sign, ``\\dfrac``/``\\tfrac`` too); no operators (``2*3``, ``10/2+1`` fail), no mixed
  numbers, roots, powers or ``1e3``; a percent or degree sign only where the gold has one; ``x = 5``
  (a lone variable on the left) is fine.
- ``reduced``: ``number``, and a fraction is in lowest terms with a positive denominator: ``5/6`` and
  ``-5/6`` pass, ``10/12``, ``5/-6`` and ``6/3`` (write ``2``) fail.
- ``expanded``: a polynomial written as a sum of monomials with numeric coefficients (``x^2 + 5x - 3``,
  ``\\frac{1}{2}x^2``, ``x^2 - y^2``): no parentheses, like terms combined, no zero terms; ``(x+1)^2``,
  ``x(x+1)`` and ``x^2 + 2x + 3x`` fail. A number alone passes.
"""

from __future__ import annotations

from .extract import Extraction, extract_answer
from .grader import MathGrader, clear_caches
from .parse import Answer, parse
from .verify import Policy, Verdict, verify

__all__ = [
    "MathGrader", "Answer", "Extraction", "Policy", "Verdict", "extract_answer", "parse", "verify", "clear_caches",
]  # fmt: skip
