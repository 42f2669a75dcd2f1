"""The math grader's `fallback` judge, against a real served model (a tiny Llama taught the judge's
replies, as in test_judge.py): consulted only on rule negatives with an extracted answer, its verdict
and cost in the details, a failing judge an error rather than a 0."""

from __future__ import annotations

import math
import socket

import pytest

from rft.graders import GraderSpecError, load_grader
from rft.graders.judge import judge_messages

JUDGE = {
    "type": "label_model",
    "name": "math_judge",
    "model": "tiny-math-judge",
    "input": [
        {"role": "system", "content": "Is the response's final answer equal to the reference? Reply correct or incorrect."},
        {"role": "user", "content": "Reference: {{ item.answer }}\nResponse: {{ sample.output_text }}"},
    ],
    "labels": ["correct", "incorrect"],
    "passing_labels": ["correct"],
    "sampling_params": {"temperature": 0, "max_completions_tokens": 16},
}  # fmt: skip
ROOT3 = {"answer": "\\frac{\\sqrt{3}}{2}"}
FIVE = {"answer": "5"}
WORDS = "The answer is: root three over two"  # the rules cannot read it; the judge can
TAUGHT = [(WORDS, ROOT3, '{"result": "correct"}'), ("\\boxed{6}", FIVE, '{"result": "incorrect"}')]


def spec(base_url: str) -> dict:
    return {"type": "math", "fallback": {**JUDGE, "base_url": base_url}}


@pytest.fixture(scope="module")
def judge_url(tmp_path_factory):
    import torch

    from rft.app.serve import serve
    from rft.tiny import fit_replies, make_model, make_tokenizer, save_tiny

    torch.set_num_threads(1)
    judge = load_grader(JUDGE)
    pairs = [(judge_messages(judge, out, item), reply) for out, item, reply in TAUGHT]
    chats = [m + [{"role": "assistant", "content": r}] for m, r in pairs]
    tok = make_tokenizer(make_tokenizer().apply_chat_template(chats, tokenize=False))
    model = make_model(tok, seed=0)
    losses = fit_replies(model, tok, pairs, steps=150, lr=3e-3)
    assert math.isfinite(losses[-1]) and losses[-1] < 0.05
    path = save_tiny(tmp_path_factory.mktemp("math-judge"), model, tok)
    with serve(path, name="tiny-math-judge") as server:
        yield server.url


@pytest.mark.slow
def test_judge_decides_rule_negatives_only(judge_url):
    g = load_grader(spec(judge_url))
    rescued = g.grade(WORDS, ROOT3)
    assert (rescued.status, rescued.passed, rescued.details["rule"]) == ("ok", True, "fallback"), (
        rescued.details
    )
    assert rescued.details["rule_verdict"] != "fallback"
    verdict = rescued.details["fallback"]
    assert verdict["status"] == "ok" and verdict["passed"] and verdict["seconds"] > 0
    assert verdict["usage"]["completion_tokens"] > 0 and verdict["reply"] == '{"result": "correct"}'

    wrong = g.grade("\\boxed{6}", FIVE)
    assert (wrong.status, wrong.passed, wrong.details["rule"]) == ("ok", False, "fallback")
    assert wrong.details["fallback"]["reply"] == '{"result": "incorrect"}'

    right = g.grade("\\boxed{5}", FIVE)  # the rules accept it: the judge is not asked
    assert right.passed and "fallback" not in right.details
    empty = g.grade("", FIVE)  # no answer extracted: not asked either
    assert empty.status == "no_answer" and "fallback" not in empty.details
    form = load_grader({**spec(judge_url), "form": "number"}).grade("\\boxed{2+3}", FIVE)
    assert not form.passed and "fallback" not in form.details  # a wrong form is not the judge's call


def test_unreachable_judge_is_an_error_not_a_zero():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    g = load_grader(
        {"type": "math", "fallback": {**JUDGE, "base_url": f"http://127.0.0.1:{port}/v1", "max_retries": 0}}
    )
    grade = g.grade("\\boxed{6}", FIVE)
    assert grade.status == "error" and not grade.passed
    assert grade.details["error"].startswith("fallback judge failed: cannot reach judge")
    assert grade.details["rule_verdict"] == "exact" and grade.details["fallback"]["status"] == "error"
    assert g.grade("\\boxed{5}", FIVE).passed  # rule positives never need the judge


def test_fallback_spec():
    g = load_grader(spec("http://127.0.0.1:1/v1"))
    assert load_grader(g.spec()) == g
    assert g.timeout == 5.0 + 60.0 * 3  # the judge's requests and retries fit the deadline
    assert load_grader({**spec("http://x/v1"), "timeout": 30}).timeout == 30
    with pytest.raises(GraderSpecError, match="fallback must be a score_model or label_model"):
        load_grader({"type": "math", "fallback": {"type": "string_check"}})
    with pytest.raises(GraderSpecError, match="fallback: .*labels"):
        load_grader({"type": "math", "fallback": {**JUDGE, "passing_labels": ["yes"]}})
