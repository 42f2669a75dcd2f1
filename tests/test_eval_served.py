"""`rft eval` against served models (issue 20, items 1 and 13): through ``rft serve`` (a real server on
127.0.0.1, port 0) with the chat and the completions API, and through a small HTTP server written here that
fails on purpose (429 with Retry-After, 5xx, dropped connections, a refused key) to check the retries, the
backoff, the concurrency, and that a request that never succeeds is an ``error`` sample, never an answer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rft.app.cli import app
from rft.engines.api import ApiClient, RequestFailed, Retry
from rft.eval.spec import EvalSpec, ServerSpec, parse_model_args

RFT = str(Path(sys.executable).with_name("rft"))
SUITE = "rft/addition-v0"
LIMIT = 4


def heldout(limit: int = LIMIT) -> list[dict]:
    from rft.envs import get_suite

    suite = get_suite(SUITE)
    return [{"item": it, "messages": suite.messages(it)} for it in suite.items("heldout")[:limit]]


def results(folder: Path) -> dict[str, float]:
    doc = json.loads((folder / "results.json").read_text())
    return {r["metric"]: r["value"] for r in doc["results"]}


def samples(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------ rft serve, for real


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`rft serve` on a tiny model taught the right boxed answer to the first heldout problems."""
    import torch

    from rft.app.serve import serve
    from rft.tiny import fit_replies, make_model, make_tokenizer

    torch.set_num_threads(1)
    pairs = [(p["messages"], f"\\boxed{{{p['item']['reference']}}}") for p in heldout()]
    tok = make_tokenizer([m["content"] for ms, _ in pairs for m in ms] + [r for _, r in pairs] * 3)
    model = make_model(tok)
    fit_replies(model, tok, pairs, steps=150)
    path = tmp_path_factory.mktemp("served") / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    with serve(str(path)) as server:
        yield server, path


def test_rft_eval_through_rft_serve_chat_api(served, tmp_path):
    """Item 1: the README's command crashed with "make_engine() got multiple values for argument 'model'"."""
    server, path = served
    res = subprocess.run(
        [RFT, "eval", "--engine", "openai", "--base-url", server.url, "--model", str(path), "--suite", SUITE,
         "--limit", str(LIMIT), "--max-new-tokens", "12", "--workers", "0", "--out", str(tmp_path / "chat")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    got = results(tmp_path / "chat")
    assert got["pass@1"] == 1.0 and got["eval/request_error_rate"] == 0.0
    rows = samples(tmp_path / "chat")
    assert [r["completion"][0]["content"] for r in rows] == [
        f"\\boxed{{{p['item']['reference']}}}" for p in heldout()
    ]
    config = json.loads((tmp_path / "chat" / "results.json").read_text())["config"]
    assert config["engine"] == "openai" and config["server"]["api"] == "chat"


def test_make_engine_takes_a_served_models_name_as_an_option(served):
    """The crash of item 1 at its root: `model=` in the options collided with make_engine's own argument."""
    from rft.engines import Sampling, make_engine
    from rft.tiny import load_tiny

    server, path = served
    _, tok = load_tiny(path)
    engine = make_engine("openai", None, tok, base_url=server.url, model=str(path))
    assert engine.model == str(path)
    with pytest.raises(
        RequestFailed, match="HTTP 400: prompt must be a string"
    ):  # rft serve: text prompts only
        engine.generate([[1, 2, 3]], Sampling(max_new_tokens=2))


def test_completions_api_with_a_local_chat_template_agrees_with_chat(served, tmp_path):
    from rft.eval.evaluate import evaluate_suite

    server, path = served
    spec = EvalSpec(suite=SUITE, limit=LIMIT, max_new_tokens=12, grader_workers=0, engine="openai",
                    server=ServerSpec(base_url=server.url, api="completions"))  # fmt: skip
    scored = evaluate_suite(str(path), spec, tmp_path / "completions")
    got = {r["metric"]: r["value"] for r in scored["results"]}
    assert got["pass@1"] == 1.0 and got["eval/request_error_rate"] == 0.0
    # rft serve takes text prompts only: token ids are refused (HTTP 400), each one an error sample
    ids = EvalSpec(suite=SUITE, limit=2, max_new_tokens=4, grader_workers=0, engine="openai",
                   model_args={"token_ids": True},
                   server=ServerSpec(base_url=server.url, api="completions", attempts=1))  # fmt: skip
    scored = evaluate_suite(str(path), ids, tmp_path / "ids")
    got = {r["metric"]: r["value"] for r in scored["results"]}
    assert got["eval/request_error_rate"] == 1.0 and got["grader/error_rate"] == 0.0 and got["pass@1"] == 0.0
    row = samples(tmp_path / "ids")[0]
    assert row["status"] == "error" and row["grade"]["details"]["source"] == "request"
    assert (
        row["grade"]["details"]["http_status"] == 400
        and "prompt must be a string" in row["grade"]["details"]["error"]
    )


def test_local_engine_takes_model_args(served, tmp_path):
    import torch

    from rft.eval.engines import load_model
    from rft.eval.evaluate import evaluate_suite

    _, path = served
    model, _ = load_model(str(path), {"dtype": "bfloat16"})
    assert next(model.parameters()).dtype == torch.bfloat16
    model, _ = load_model(str(path), {"trust_remote_code": True, "revision": "main"})  # the direct path
    assert next(model.parameters()).dtype == torch.float32
    spec = EvalSpec(suite=SUITE, limit=LIMIT, max_new_tokens=12, grader_workers=0, model_args={"dtype": "float32"},
                    batch_prompts=2)  # fmt: skip
    scored = evaluate_suite(str(path), spec, tmp_path / "hf")
    assert {r["metric"]: r["value"] for r in scored["results"]}["pass@1"] == 1.0  # the same answers as served
    assert scored["config"]["model_args"] == {"dtype": "float32"}


# ------------------------------------------------------------------------- a server that fails on purpose


class FlakyAPI:
    """An OpenAI-compatible chat server that answers "What is a + b?" with \\boxed{a+b}, after the failures
    planned for that question: an HTTP status (429 comes with ``Retry-After``), ``"drop"`` (the connection
    closes with no answer), or ``"always:503"``. Records requests per question, Authorization headers and
    the most requests it had in flight at once."""

    def __init__(
        self,
        plans: dict[str, list],
        retry_after: str = "0.05",
        delay: float = 0.05,
        wrong_first: bool = False,
    ) -> None:
        self.plans, self.retry_after, self.delay, self.wrong_first = plans, retry_after, delay, wrong_first
        self.hits: dict[str, int] = {}
        self.auth: set[str | None] = set()
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with api.lock:
                    api.in_flight += 1
                    api.peak = max(api.peak, api.in_flight)
                    api.auth.add(self.headers.get("Authorization"))
                try:
                    time.sleep(api.delay)
                    api.answer(self, body)
                finally:
                    with api.lock:
                        api.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        question = next(m["content"] for m in body["messages"] if m["role"] == "user")
        first_turn = not any(m["role"] == "assistant" for m in body["messages"])
        with self.lock:
            k = self.hits[question] = self.hits.get(question, 0) + 1
        plan = self.plans.get(question, [])
        step = plan[0] if plan and plan[0] == "always:503" else (plan[k - 1] if k <= len(plan) else None)
        if step == "drop":
            h.close_connection = True
            return
        if step is not None:
            code = 503 if step == "always:503" else step
            self.send(h, code, {"error": {"message": f"planned {code}"}},
                      {"Retry-After": self.retry_after} if code == 429 else {})  # fmt: skip
            return
        a, b = map(int, re.findall(r"\d+", question))
        answer = 0 if self.wrong_first and first_turn else a + b
        choice = {"index": 0, "message": {"role": "assistant", "content": f"\\boxed{{{answer}}}"},
                  "finish_reason": "stop"}  # fmt: skip
        self.send(h, 200, {"object": "chat.completion", "choices": [choice]}, {})

    @staticmethod
    def send(h: BaseHTTPRequestHandler, code: int, doc: dict, headers: dict[str, str]) -> None:
        data = json.dumps(doc).encode()
        h.send_response(code)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def flaky():
    made: list[FlakyAPI] = []

    def make(plans: dict[str, list], **kw) -> FlakyAPI:
        made.append(FlakyAPI(plans, **kw))
        return made[-1]

    yield make
    for api in made:
        api.close()


def eval_cli(api: FlakyAPI, out: Path, *extra: str, env: dict[str, str] | None = None):
    args = ["eval", "--engine", "openai", "--base-url", api.url, "--model", "m", "--suite", SUITE,
            "--limit", str(LIMIT), "--workers", "0", "--out", str(out), *extra]  # fmt: skip
    return CliRunner().invoke(app, args, env=env)


def test_retries_backoff_and_a_request_that_never_succeeds_is_an_error_sample(flaky, tmp_path):
    q = [p["messages"][-1]["content"] for p in heldout()]
    api = flaky({q[0]: [429, 429], q[1]: [500], q[2]: ["always:503"], q[3]: ["drop"]})
    env = {"RFT_TEST_API_KEY": "sk-test-secret-123"}
    res = eval_cli(api, tmp_path / "e", "--attempts", "3", "--concurrency", "4", "--api-key-env",
                   "RFT_TEST_API_KEY", env=env)  # fmt: skip
    assert res.exit_code == 0, res.output  # 1 of 4 failed: reported, under the exit threshold
    assert api.hits == {q[0]: 3, q[1]: 2, q[2]: 3, q[3]: 2}  # bounded: 3 attempts at most
    got = results(tmp_path / "e")
    assert (
        got["pass@1"] == 0.75 and got["eval/request_error_rate"] == 0.25 and got["grader/error_rate"] == 0.0
    )
    rows = samples(tmp_path / "e")
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "ok"]
    failed = rows[2]
    assert failed["grade"]["details"]["source"] == "request" and failed["grade"]["details"]["attempts"] == 3
    assert "HTTP 503: planned 503" in failed["grade"]["details"]["error"] and failed["reward"] == 0.0
    assert "1 of 4 requests failed after retries" in res.stderr and "HTTP 503" in res.stderr
    assert "Request failures" in (tmp_path / "e" / "report.md").read_text()
    assert api.peak > 1  # requests were in flight together
    assert api.auth == {"Bearer sk-test-secret-123"}  # the key is sent, and written nowhere
    written = "".join(p.read_text() for p in (tmp_path / "e").glob("*.*") if p.suffix != ".png")
    assert "sk-test-secret" not in written + res.output


def test_mostly_failed_requests_exit_1_and_a_refused_key_stops_the_run(flaky, tmp_path):
    api = flaky({p["messages"][-1]["content"]: ["always:503"] for p in heldout()})
    res = eval_cli(api, tmp_path / "a", "--attempts", "2")
    assert res.exit_code == 1 and "4 of 4 requests failed" in res.stderr
    assert results(tmp_path / "a")["eval/request_error_rate"] == 1.0  # still written and scored
    refused = flaky({p["messages"][-1]["content"]: [401] for p in heldout()})
    res = eval_cli(refused, tmp_path / "b")
    assert res.exit_code == 2 and "HTTP 401" in res.stderr and "check the API key" in res.stderr
    assert "Traceback" not in res.output and sum(refused.hits.values()) <= 8  # stopped, not retried
    assert not (tmp_path / "b" / "results.json").exists()


def test_api_client_honours_retry_after_and_backs_off_exponentially(flaky):
    api = flaky({"What is 1 + 2?": [429, 429, 500, 502]}, retry_after="0.3", delay=0.0)
    waits: list[float] = []
    client = ApiClient(api.url, api_key="", retry=Retry(attempts=5, backoff_s=0.01, max_wait_s=0.25),
                       sleep=waits.append)  # fmt: skip
    body = {"model": "m", "messages": [{"role": "user", "content": "What is 1 + 2?"}]}
    reply = client.post("/chat/completions", body)
    assert reply["choices"][0]["message"]["content"] == "\\boxed{3}"
    assert waits[:2] == [0.25, 0.25]  # Retry-After 0.3, capped at max_wait_s
    assert 0.04 <= waits[2] <= 0.05 and 0.08 <= waits[3] <= 0.1  # 0.01 * 2**k, k = 2, 3, plus jitter
    assert api.auth == {None}  # no key: no Authorization header
    with pytest.raises(RequestFailed, match="gave up after 2 attempts") as e:
        ApiClient("http://127.0.0.1:9/v1", retry=Retry(attempts=2, backoff_s=0), sleep=waits.append).post(
            "/x", {}
        )
    assert e.value.status is None and not e.value.fatal
    assert "key" not in repr(client).replace("key=none", "")


def test_feedback_episodes_take_several_requests(flaky, tmp_path):
    """A multi-turn suite through a served model: the wrong first answer gets the suite's feedback, the second
    request carries the whole conversation and its right answer passes."""
    from rft.eval.evaluate import evaluate_suite

    suite = tmp_path / "add-feedback-v0.yaml"
    suite.write_text(
        "id: add-feedback-v0\n"
        'source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2, ops: "+"}, size: 40}\n'
        "fields: {id: id, reference: answer}\n"
        'prompt: {user: "{{ item.question }}"}\n'
        'grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}"}\n'
        "episode: {type: feedback, max_turns: 2}\nsplit: 0.5\n"
    )
    api = flaky({}, wrong_first=True, delay=0.0)
    spec = EvalSpec(suite=str(suite), limit=3, n=2, ks=(1, 2), grader_workers=0, engine="openai", seed=5,
                    server=ServerSpec(base_url=api.url, api_key_env="RFT_TEST_NO_SUCH_VARIABLE"))  # fmt: skip
    scored = evaluate_suite("m", spec, tmp_path / "fb")
    assert {r["metric"]: r["value"] for r in scored["results"]}["pass@1"] == 1.0
    rows = samples(tmp_path / "fb")
    assert [(r["index"], r["sample"]) for r in rows] == [(i, j) for i in range(3) for j in range(2)]
    for r in rows:
        roles = [m["role"] for m in r["completion"]]
        assert roles == ["assistant", "user", "assistant"] and r["completion"][0]["content"] == "\\boxed{0}"
        assert r["passed"] and r["reward"] == 1.0
    assert sorted(api.hits.values()) == [4, 4, 4]  # 2 samples x 2 turns per problem


# ----------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", {}),
        ("dtype=bfloat16", {"dtype": "bfloat16"}),
        ("max_model_len=4096, trust_remote_code=True,gpu_memory_utilization=0.5",
         {"max_model_len": 4096, "trust_remote_code": True, "gpu_memory_utilization": 0.5}),
        ("revision=v1.0,tokenizer=org/name", {"revision": "v1.0", "tokenizer": "org/name"}),
    ],
)  # fmt: skip
def test_parse_model_args(text, want):
    assert parse_model_args(text) == want


@pytest.mark.parametrize(
    ("text", "message"), [("dtype", "key=value pairs"), ("=3", "key=value pairs"), ("a=1,a=2", "'a' twice")]
)
def test_parse_model_args_errors(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_model_args(text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"engine": "openai"}, "needs the server's URL: --base-url"),
        ({"server": ServerSpec(base_url="http://h:1/v1")}, "--base-url is for the openai engine"),
        ({"model_args": {"max_model_len": 512}}, "do not apply to the hf engine; it takes dtype, revision"),
        ({"model_args": {"dtype": "fp8"}}, "dtype must be one of auto, float32, bfloat16, float16"),
        ({"engine": "vllm", "model_args": {"max_model_len": "x"}}, "max_model_len must be an integer"),
        ({"model_args": {"trust_remote_code": "yes"}}, "trust_remote_code is true or false"),
        ({"engine": "openai", "server": ServerSpec(base_url="http://h:1/v1"), "model_args": {"token_ids": True}},
         "token_ids applies to --api completions"),
    ],
)  # fmt: skip
def test_eval_spec_served_errors_say_what_to_fix(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        EvalSpec(suite=SUITE, **change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"api": "responses"}, "api must be chat or completions"),
        ({"base_url": "localhost:8000/v1"}, "must start with http:// or https://"),
        ({"concurrency": 0}, "concurrency and attempts must be >= 1"),
    ],
)
def test_server_spec_errors(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ServerSpec(**change)


def test_eval_help_documents_the_served_options():
    res = CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    for flag in ("--base-url", "--api", "--model-args", "--batch-size", "--concurrency", "--attempts",
                 "--api-key-env"):  # fmt: skip
        assert flag in res.output


def test_serve_takes_a_run_folder(served, tmp_path):
    """`serve()` (the Python API) accepts what the commands accept: a run folder stands for its model."""
    _, path = served
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "model").symlink_to(path, target_is_directory=True)
    from rft.app.serve import serve

    with serve(str(run)) as server:
        assert server.engine.name == str(run)
        with urllib.request.urlopen(f"{server.url}/models", timeout=30) as r:
            assert json.load(r)["data"][0]["id"] == str(run)
