"""LLM-judge graders (`score_model`, `label_model`) and `rft.app.serve`, against a real local server.

The slow tests fine-tune a tiny Llama (once per session) to answer the exact prompts that
`judge_messages` builds for a few (grader, sample, item) triples, serve it with `rft.app.serve`, and
grade through the OpenAI client with greedy decoding: no mocks.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from rft.graders import GraderSpecError, load_grader
from rft.graders.judge import embed, extract_result, judge_messages

SYSTEM = "You grade answers to questions. Compare the response with the reference."
USER = "Question: {{ item.question }}\nReference: {{ item.answer }}\nResponse: {{ sample.output_text }}"
INPUT = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
GREEDY = {"temperature": 0, "max_completions_tokens": 24}
SCORE = {
    "type": "score_model",
    "name": "judge_score",
    "model": "tiny-judge",
    "input": INPUT,
    "pass_threshold": 0.5,
    "sampling_params": GREEDY,
}
LABEL = {
    "type": "label_model",
    "name": "judge_label",
    "model": "tiny-judge",
    "input": INPUT,
    "labels": ["correct", "incorrect"],
    "passing_labels": ["correct"],
    "sampling_params": GREEDY,
}
ADD = {"question": "What is 2+2?", "answer": "4"}
CAPITAL = {"question": "What is the capital of France?", "answer": "Paris"}

# (spec, sample, item, what the tiny judge is taught to reply, expected (status, score, passed, extracted))
CASES = [
    (SCORE, "4", ADD, '{"result": 1}', ("ok", 1.0, True, 1.0)),
    (SCORE, "5", ADD, '{"result": 0}', ("ok", 0.0, False, 0.0)),
    (SCORE, "Lyon", CAPITAL, '{"result": 7}', ("error", 0.0, False, None)),  # outside range [0, 1]
    (SCORE, "Paris, I think", CAPITAL, "banana banana", ("error", 0.0, False, None)),  # garbage
    (LABEL, "4", ADD, '{"result": "correct"}', ("ok", 1.0, True, "correct")),
    (LABEL, "5", ADD, '{"result": "incorrect"}', ("ok", 0.0, False, "incorrect")),
    (LABEL, "Paris", CAPITAL, "Correct", ("ok", 1.0, True, "correct")),  # a bare label, any case
    (LABEL, "Lyon", CAPITAL, '{"result": "maybe"}', ("error", 0.0, False, None)),  # unknown label
]
CASE_IDS = ["score-pass", "score-fail", "score-out-of-range", "score-garbage", "label-pass", "label-fail", "label-bare", "label-unknown"]  # fmt: skip


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- spec validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**LABEL, "passing_labels": ["right"]}, "passing_labels ['right'] are not in labels"),
        ({**LABEL, "labels": ["a", "A"], "passing_labels": ["a"]}, "must be distinct"),
        ({k: v for k, v in SCORE.items() if k != "model"}, "model: Field required"),
        ({k: v for k, v in LABEL.items() if k != "model"}, "model: Field required"),
        ({**SCORE, "input": []}, "input"),
        ({**SCORE, "range": [1, 0]}, "low < high"),
        ({**SCORE, "sampling_params": {"temprature": 0}}, "temprature"),
        ({**SCORE, "input": [{"role": "judge", "content": "x"}]}, "input.0.role"),
        ({**SCORE, "input": [{"role": "user", "content": "{{ answer }}"}]}, "input[0].content"),
    ],
)
def test_spec_errors(spec, message):
    with pytest.raises(GraderSpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_grader(spec)


@pytest.mark.parametrize("spec", [SCORE, LABEL, {**SCORE, "range": [1, 10], "base_url": "http://x/v1"}])
def test_spec_round_trip(spec):
    g = load_grader(spec)
    assert load_grader(g.spec()) == g


def test_judge_messages_renders_and_appends_the_instruction():
    score = judge_messages(load_grader({**SCORE, "range": [0, 10]}), "5", ADD)
    assert [m["role"] for m in score] == ["system", "user"]
    assert score[0]["content"] == SYSTEM
    assert score[1]["content"].startswith("Question: What is 2+2?\nReference: 4\nResponse: 5\n\n")
    assert score[1]["content"].endswith('Reply with only a JSON object {"result": <score>}, where <score> is a number from 0 to 10.')  # fmt: skip
    label = judge_messages(load_grader(LABEL), {"output_text": "4"}, ADD)
    assert label[1]["content"].endswith('exactly one of: "correct", "incorrect".')
    # an input that does not end with a user turn gets the instruction as a user turn of its own
    ends_assistant = {**LABEL, "input": [*INPUT, {"role": "assistant", "content": "Noted."}]}
    msgs = judge_messages(load_grader(ends_assistant), "4", ADD)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[-1]["content"].startswith('Reply with only a JSON object {"result": "<label>"}')


def test_missing_sample_field_is_no_answer_without_a_request():
    g = load_grader({**SCORE, "base_url": f"http://127.0.0.1:{closed_port()}/v1"})
    grade = g.grade({"output_json": {"x": 1}}, ADD)
    assert grade.status == "no_answer"
    assert grade.to_dict()["details"]["reason"].startswith("model output lacks")


@pytest.mark.parametrize(
    ("reply", "labels", "result"),
    [
        ('{"result": 0.5}', None, 0.5),
        ('  {"result": 1}\n', None, 1),
        ('```json\n{"result": 3}\n```', None, 3),
        ('The answer matches. {"result": "correct"} Done.', None, "correct"),
        ('{"reasoning": "close", "result": 2}', None, 2),
        ('draft {"result": 1} then final {"result": 0}', None, 0),
        ('```\n{"result": "0.25"}\n```', None, "0.25"),
        (" Incorrect. ", ["correct", "incorrect"], "incorrect"),
        ('"correct"', ["correct", "incorrect"], "correct"),
    ],
)
def test_extract_result(reply, labels, result):
    assert extract_result(reply, labels=labels) == result


@pytest.mark.parametrize(
    ("reply", "labels"),
    [
        ("banana banana", None),
        ('{"score": 1}', None),
        ('{"result": 1', None),
        ("correct", None),  # bare labels count only for label graders
        ("it is correct", ["correct", "incorrect"]),
        ("", ["correct"]),
        ("[1, 2]", None),
    ],
)
def test_extract_result_rejects(reply, labels):
    with pytest.raises(ValueError, match="no"):
        extract_result(reply, labels=labels)


def test_unreachable_judge_is_an_error_quickly(monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RFT_JUDGE_BASE_URL", url)  # preferred over OPENAI_BASE_URL
    start = time.monotonic()
    grade = load_grader(SCORE).grade("4", ADD)  # default retries (2)
    assert time.monotonic() - start < 5
    assert grade.status == "error" and grade.score == 0.0 and not grade.passed
    assert grade.details["base_url"] == url
    assert "cannot reach judge 'tiny-judge'" in grade.details["error"]


def test_silent_judge_is_a_timeout():
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        grader = load_grader({**LABEL, "base_url": url, "request_timeout": 0.3, "max_retries": 0})
        start = time.monotonic()
        grade = grader.grade("4", ADD)
    assert time.monotonic() - start < 3
    assert grade.status == "timeout"
    assert "did not answer within 0.3s" in grade.details["error"]


def test_graders_import_neither_torch_nor_openai():
    code = "import sys, rft.graders.judge; print(sorted({'torch', 'openai', 'rft.tiny', 'rft.app.serve'} & set(sys.modules)))"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tiny_tokenizer_chat_template_and_round_trip(tmp_path):
    from rft.tiny import load_tiny, make_tokenizer, save_tiny

    tok = make_tokenizer(["the result is 42", "the result is 7"])
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    reply = {"role": "assistant", "content": "4"}
    prompt = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert prompt == "<|bos|><|system|>Be brief.<|eos|><|user|>2+2?<|eos|><|assistant|>"
    full = tok.apply_chat_template([*chat, reply], tokenize=False)
    assert full.startswith(prompt)
    ids = tok(full, add_special_tokens=False)["input_ids"]
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    assert ids == prompt_ids + tok("4", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    text = 'Digits 12345, tabs\tand {"json": [1]} caf\u00e9'
    assert tok.decode(tok(text)["input_ids"]) == text.replace("\u00e9", "<|unk|>")
    model, reloaded = load_tiny(save_tiny(tmp_path, tokenizer=tok))
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.vocab_size == len(tok)
    for s in (prompt, full, text, "the result is 42"):
        assert reloaded(s)["input_ids"] == tok(s)["input_ids"]
    assert reloaded.apply_chat_template([*chat, reply], tokenize=False) == full


# -- a real judge: a tiny model fine-tuned to answer the judge prompts, served over HTTP ----------


@pytest.fixture(scope="session")
def tiny_judge_path(tmp_path_factory):
    """A tiny model taught the replies in CASES, saved to a directory."""
    import torch

    from rft.tiny import fit_replies, load_tiny, make_model, make_tokenizer, save_tiny

    torch.set_num_threads(1)
    pairs = [
        (judge_messages(load_grader(spec), sample, item), reply) for spec, sample, item, reply, _ in CASES
    ]
    chats = [messages + [{"role": "assistant", "content": reply}] for messages, reply in pairs]
    corpus = make_tokenizer().apply_chat_template(chats, tokenize=False)
    tok = make_tokenizer(corpus)
    model = make_model(tok, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    losses = fit_replies(model, tok, pairs, steps=150, lr=3e-3)
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.05 < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    path = save_tiny(tmp_path_factory.mktemp("tiny-judge"), model, tok)
    _, reloaded = load_tiny(path)
    assert [reloaded(c)["input_ids"] for c in corpus] == [tok(c)["input_ids"] for c in corpus]
    return path


@pytest.fixture(scope="session")
def tiny_judge(tiny_judge_path):
    from rft.app.serve import serve

    with serve(tiny_judge_path, name="tiny-judge") as server:
        yield server


@pytest.fixture(scope="session")
def client(tiny_judge):
    import openai

    return openai.OpenAI(base_url=tiny_judge.url, api_key="unused", max_retries=0, timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "sample", "item", "reply", "expected"), CASES, ids=CASE_IDS)
def test_judge_grades_through_a_served_model(tiny_judge, spec, sample, item, reply, expected):
    grade = load_grader({**spec, "base_url": tiny_judge.url}).grade(sample, item)
    assert grade.details["reply"] == reply, grade.details
    assert (grade.status, grade.score, grade.passed, grade.extracted) == expected, grade.details
    assert grade.details["model"] == "tiny-judge"
    assert grade.details["usage"]["completion_tokens"] > 0
    if grade.status == "error":
        assert grade.details["error"].startswith("unusable judge reply")


@pytest.mark.slow
def test_judge_errors_from_the_server(tiny_judge):
    root = tiny_judge.url.removesuffix("/v1")  # no /v1: the server answers 404
    grade = load_grader({**SCORE, "base_url": root, "max_retries": 0}).grade("4", ADD)
    assert grade.status == "error"
    assert "answered HTTP 404" in grade.details["error"]
    # a score without a pass_threshold passes only at the top of the range
    no_threshold = {k: v for k, v in SCORE.items() if k != "pass_threshold"}
    assert load_grader({**no_threshold, "base_url": tiny_judge.url}).grade("4", ADD).passed


@pytest.mark.slow
def test_chat_completions_shape_and_options(tiny_judge, client):
    messages = judge_messages(load_grader(SCORE), "4", ADD)
    r = client.chat.completions.create(
        model="tiny-judge",
        messages=messages,
        temperature=0,
        max_tokens=24,
        response_format={"type": "json_object"},  # ignored
        extra_body={"unknown_field": 1, "logit_bias": None},
    )
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == "tiny-judge"
    assert [c.message.content for c in r.choices] == ['{"result": 1}']
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.role == "assistant"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.completion_tokens == len(tiny_judge.engine.tokenizer('{"result": 1}')["input_ids"]) + 1

    greedy = client.chat.completions.create(model="m", messages=messages, temperature=0, n=2, max_tokens=24)
    assert [c.index for c in greedy.choices] == [0, 1]
    assert {c.message.content for c in greedy.choices} == {'{"result": 1}'}

    stopped = client.chat.completions.create(model="m", messages=messages, temperature=0, stop=["1"])
    assert stopped.choices[0].message.content == '{"result": '
    assert stopped.choices[0].finish_reason == "stop"

    short = client.chat.completions.create(
        model="m", messages=messages, temperature=0, max_completion_tokens=2
    )
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2

    prompt = [{"role": "user", "content": "Say anything."}]
    a, b = (
        client.chat.completions.create(model="m", messages=prompt, temperature=1.0, n=3, seed=7, max_tokens=8)
        for _ in range(2)
    )
    assert len(a.choices) == 3 and a.usage.completion_tokens <= 3 * 8
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]


@pytest.mark.slow
def test_server_rejects_bad_requests(tiny_judge, client):
    import openai

    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError, match="temperature must be a number in"):
        client.chat.completions.create(model="m", messages=messages, temperature=5)
    with pytest.raises(openai.BadRequestError, match="stream=true is not supported"):
        client.chat.completions.create(model="m", messages=messages, stream=True)
    request = urllib.request.Request(f"{tiny_judge.url}/chat/completions", data=b"[1]", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=10)
    assert e.value.code == 400
    assert b'"invalid_request_error"' in e.value.read()


@pytest.mark.slow
def test_models_and_completions(tiny_judge, client):
    assert [m.id for m in client.models.list()] == ["tiny-judge"]
    r = client.completions.create(model="m", prompt=["Question:", "Reply"], max_tokens=3, temperature=0)
    assert r.object == "text_completion" and [c.index for c in r.choices] == [0, 1]
    assert all(c.finish_reason in ("stop", "length") for c in r.choices)
    assert r.usage.completion_tokens <= 6


@pytest.mark.slow
def test_embeddings(tiny_judge, client):
    texts = ["the same text", "the same text", "something else entirely"]
    vectors = embed(texts, model="tiny-judge", base_url=tiny_judge.url)
    assert len(vectors) == 3 and all(len(v) == 128 for v in vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert math.isclose(cos(vectors[0], vectors[1]), 1.0, rel_tol=1e-6)
    assert cos(vectors[0], vectors[2]) < 0.999
    # the client asks for base64 when no encoding_format is given; the server must honour it
    r = client.embeddings.create(model="m", input=texts)
    assert [d.index for d in r.data] == [0, 1, 2] and r.usage.prompt_tokens > 0
    assert all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(r.data[0].embedding, vectors[0], strict=True))
    assert embed([], model="m", base_url=tiny_judge.url) == []


@pytest.mark.slow
def test_text_similarity_cosine_through_served_embeddings(tiny_judge):
    spec = {"type": "text_similarity", "input": "{{ sample.output_text }}", "reference": "{{ item.ref }}",
            "evaluation_metric": "cosine", "pass_threshold": 0.999, "embedding_model": "tiny-judge",
            "base_url": tiny_judge.url}  # fmt: skip
    grader = load_grader(spec)
    same = grader.grade("the result is 42", {"ref": "the result is 42"})
    other = grader.grade("something else entirely", {"ref": "the result is 42"})
    assert same.status == other.status == "ok"
    assert same.score == pytest.approx(1.0, abs=1e-6) and same.passed
    assert other.score < same.score and not other.passed
    assert same.details["embedding_model"] == "tiny-judge"
    down = load_grader({**spec, "base_url": f"http://127.0.0.1:{closed_port()}/v1"}).grade("a", {"ref": "b"})
    assert down.status == "error" and "embedding request failed" in down.details["error"]


@pytest.mark.slow
def test_serve_entry_point(tiny_judge_path):
    cmd = [
        sys.executable,
        "-m",
        "rft.app.serve",
        "--model",
        str(tiny_judge_path),
        "--port",
        "0",
        "--name",
        "cli-judge",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = proc.stdout.readline()  # "serving cli-judge at http://127.0.0.1:PORT/v1"
        assert line.startswith("serving cli-judge at http://127.0.0.1:"), line
        url = line.split()[-1]
        with urllib.request.urlopen(f"{url}/models", timeout=10) as r:
            assert json.load(r)["data"][0]["id"] == "cli-judge"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
