"""The ``remote`` backend against a real `rft sandbox serve` on loopback, and the ``sandbox_fusion`` client
against a minimal SandboxFusion ``run_code`` server written here over the local sandbox (SandboxFusion
itself is not installed; this server speaks its protocol: request fields, run_result, statuses)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _sandboxes import backend_or_skip, start_server, stop_server

from rft.graders import load_grader
from rft.graders.sandbox import Limits, SandboxError, get_sandbox
from rft.graders.sandbox.fusion import wrapper_program
from rft.graders.sandbox.service import SandboxPool

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneval.jsonl"
SPEC = {
    "type": "code",
    "prefix": "{{ item.prompt }}",
    "tests": "{{ item.test }}",
    "entry_point": "{{ item.entry_point }}",
}
ADD = {
    "prompt": "def add(a, b):\n",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}
MAX_BODY = 200_000


@pytest.fixture(scope="module")
def local_ok():
    backend_or_skip("local")


@pytest.fixture(scope="module")
def server(local_ok):
    token = secrets.token_hex(16)
    proc, url = start_server("--workers", "2", "--per-client", "2", "--max-body", str(MAX_BODY), token=token)
    yield proc, url, token
    assert stop_server(proc) == 0  # SIGTERM: a clean stop
    assert proc.returncode == 0


def remote_grader(url: str, token: str, **spec):
    return load_grader({**SPEC, "sandbox": "remote", "sandbox_options": {"url": url, "token": token}, **spec})


def raw(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def run_body(program: str, timeout: float = 5.0) -> bytes:
    return json.dumps({"program": program, "stdin": "", "limits": {"timeout": timeout}}).encode()


def humaneval(n: int) -> list[dict]:
    if not DATA.exists():
        pytest.skip(f"{DATA} not found (shared/data beside the checkout)")
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return rows[:: max(1, len(rows) // n)][:n]


# ---- rft sandbox serve + remote ----------------------------------------------------------------------


def test_humaneval_subset_passes_and_return_none_fails(server):
    _, url, token = server
    g = remote_grader(url, token)
    for row in humaneval(16):
        good = g.grade({"output_text": row["canonical_solution"]}, row)
        assert good.passed and good.status == "ok" and good.details["sandbox"] == "remote", (
            row["task_id"],
            good,
        )
        bad = g.grade({"output_text": "    return None\n"}, row)
        assert not bad.passed and bad.status == "ok", (row["task_id"], bad)


def test_outputs_come_back_byte_for_byte(server):
    _, url, token = server
    box = get_sandbox("remote", url=url, token=token)
    program = "import os, sys\nsys.stdout.write(sys.stdin.read()[::-1])\nsys.stderr.write('e\\xff')\nos.write(3, bytes(range(256)))\nsys.exit(3)"
    res = box.run(program, b"abc\x00", Limits(timeout=5))
    assert (res.outcome, res.exit_code) == ("exited", 3)
    assert res.stdout == b"\x00cba" and res.result == bytes(range(256)) and res.stderr.startswith(b"e")
    assert res.backend == "remote" and res.info["server_backend"] == "local"
    assert box.run("while True: pass", b"", Limits(timeout=0.5)).outcome in ("timeout", "cpu_limit")
    box.close()


def test_wrong_or_missing_token_is_an_error_grade(server):
    _, url, _ = server
    grade = remote_grader(url, "not-the-token").grade({"output_text": "    return a + b\n"}, ADD)
    assert grade.status == "error" and not grade.passed, grade
    assert "token" in grade.details["error"] and "RFT_SANDBOX_TOKEN" in grade.details["error"]
    status, headers, _ = raw(url, "POST", "/v1/run", run_body("print(1)"))
    assert status == 401 and headers.get("WWW-Authenticate") == "Bearer"
    status, _, _ = raw(url, "GET", "/v1/info", headers={"Authorization": "Bearer wrong"})
    assert status == 401


def test_oversize_request_is_an_error_grade(server):
    _, url, token = server
    big = "    x = '" + "a" * (MAX_BODY + 1000) + "'\n    return a + b\n"
    grade = remote_grader(url, token).grade({"output_text": big}, ADD)
    assert grade.status == "error" and "too large" in grade.details["error"], grade
    status, _, data = raw(url, "POST", "/v1/run", b"x" * (MAX_BODY + 1), {"Authorization": f"Bearer {token}"})
    assert status == 413 and b"--max-body" in data
    assert remote_grader(url, token).grade({"output_text": "    return a + b\n"}, ADD).passed  # still serving


def test_bad_limits_are_refused(server):
    _, url, token = server
    auth = {"Authorization": f"Bearer {token}"}
    status, _, data = raw(url, "POST", "/v1/run", run_body("print(1)", timeout=3600), auth)
    assert status == 400 and b"cap" in data
    body = json.dumps({"program": "print(1)", "limits": {"memory_mb": "lots"}}).encode()
    assert raw(url, "POST", "/v1/run", body, auth)[0] == 400
    grade = remote_grader(url, token, run_timeout=3600).grade({"output_text": "    return a + b\n"}, ADD)
    assert grade.status == "error" and "cap" in grade.details["error"]


def test_per_client_limit_answers_429_and_the_client_waits(server):
    _, url, token = server
    auth = {"Authorization": f"Bearer {token}"}
    sleeper = run_body("import time\ntime.sleep(1.5)")
    with ThreadPoolExecutor(3) as ex:
        statuses = sorted(
            s for s, _, _ in ex.map(lambda _: raw(url, "POST", "/v1/run", sleeper, auth), range(3))
        )
    assert statuses == [200, 200, 429], statuses  # two run (--per-client 2), the third is refused at once
    box = get_sandbox("remote", url=url, token=token)  # the client backs off and retries on 429
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as ex:
        results = list(
            ex.map(lambda _: box.run("import time\ntime.sleep(0.5)", b"", Limits(timeout=5)), range(4))
        )
    assert all(r.ok for r in results) and time.monotonic() - t0 >= 0.9  # two at a time


def test_server_killed_mid_run_is_an_error_grade(local_ok):
    token = secrets.token_hex(8)
    proc, url = start_server("--workers", "1", token=token)
    g = remote_grader(url, token, run_timeout=20)
    slow = "    import time\n    time.sleep(10)\n    return a + b\n"
    with ThreadPoolExecutor(1) as ex:
        future = ex.submit(g.grade, {"output_text": slow}, ADD)
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)
        grade = future.result(60)
    stop_server(proc)
    assert grade.status == "error" and not grade.passed and grade.score == 0, grade
    assert "still running" in grade.details["error"], grade
    after = g.grade({"output_text": "    return a + b\n"}, ADD)  # nothing listens now
    assert after.status == "error" and "rft sandbox serve" in after.details["error"], after


def test_sigterm_lets_runs_in_flight_finish(local_ok):
    token = secrets.token_hex(8)
    proc, url = start_server("--workers", "1", token=token)
    box = get_sandbox("remote", url=url, token=token)
    with ThreadPoolExecutor(1) as ex:
        future = ex.submit(box.run, "import time\ntime.sleep(1.5)\nprint('done')", b"", Limits(timeout=10))
        time.sleep(0.7)
        proc.send_signal(signal.SIGTERM)
        res = future.result(60)
    assert res.ok and res.stdout == b"done\n", res
    assert proc.wait(30) == 0
    assert "stopped" in proc.stderr.read()
    stop_server(proc)


def test_pool_restarts_a_dead_fork_server_that_outlives_the_request_thread(local_ok):
    """A fork server dies with the thread that started it (PR_SET_PDEATHSIG): after a crash, the pool
    restarts it from the sandbox's own thread, not from the request's, which ends with its connection."""
    pool = SandboxPool("local", 1)
    box = pool.boxes[0]
    try:
        pid = box.hello["pid"]  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 10
        while (
            time.monotonic() < end
            and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        ):
            time.sleep(0.01)  # dead (a zombie until its sandbox reaps it)

        def once_in_a_new_thread():
            with ThreadPoolExecutor(1) as ex:  # its thread ends when the run is done
                return ex.submit(pool.run, "print(1)", b"", Limits(timeout=5), 30).result()

        assert once_in_a_new_thread().stdout == b"1\n"  # the sandbox noticed and restarted its server
        restarted = box.hello["pid"]  # type: ignore[attr-defined]
        assert restarted != pid
        for _ in range(3):
            assert once_in_a_new_thread().stdout == b"1\n"
            time.sleep(0.2)  # a server bound to the finished thread would be dead by now
        assert box.hello["pid"] == restarted  # type: ignore[attr-defined]
    finally:
        pool.close()


def test_serve_refuses_to_start_without_a_token(local_ok):
    with pytest.raises(RuntimeError, match="no token"):
        start_server(token=None)
    with pytest.raises(RuntimeError, match="loopback"):
        proc, _ = start_server("--insecure-no-token", "--host", "0.0.0.0", token=None)
    proc, url = start_server("--insecure-no-token", "--workers", "1", token=None)
    try:
        box = get_sandbox("remote", url=url)
        assert box.run("print(6 * 7)", b"", Limits(timeout=5)).stdout == b"42\n"
    finally:
        assert stop_server(proc) == 0


def test_token_file(local_ok, tmp_path):
    token = secrets.token_hex(8)
    path = tmp_path / "token"
    path.write_text(token + "\n")
    proc, url = start_server("--token-file", str(path), "--workers", "1", token=None)
    try:
        assert get_sandbox("remote", url=url, token_file=str(path)).run("print(1)").stdout == b"1\n"
        with pytest.raises(SandboxError, match="refused the token"):
            get_sandbox("remote", url=url, token="x").run("print(1)")
    finally:
        stop_server(proc)


# ---- sandbox_fusion against a run_code server over the local sandbox ----------------------------------


class _RunCode(BaseHTTPRequestHandler):
    """POST /run_code as SandboxFusion answers it: the code is run as a Python file's __main__ with
    `stdin`, under run_timeout and memory_limit_MB (on a pool of local sandboxes); run_result carries
    status, return_code, stdout, stderr and execution_time as text."""

    def log_message(self, *_):
        pass

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/run_code" and req["language"] == "python"
        limits = Limits(
            timeout=req["run_timeout"], memory_mb=max(256, req["memory_limit_MB"]), output_bytes=2**26
        )
        res = self.server.pool.run(req["code"], (req.get("stdin") or "").encode(), limits, 60)  # type: ignore[attr-defined]
        status = "TimeLimitExceeded" if res.outcome == "timeout" else "Finished"
        rc = res.exit_code if res.exit_code is not None else -(res.signal or 9)
        run = {
            "status": status,
            "execution_time": res.wall_s,
            "return_code": None if status != "Finished" else rc,
            "stdout": res.stdout.decode("utf-8", "replace"),
            "stderr": res.stderr.decode("utf-8", "replace"),
        }
        body = {
            "status": "Success" if status == "Finished" and rc == 0 else "Failed",
            "message": "",
            "compile_result": None,
            "run_result": run,
            "executor_pod_name": None,
            "files": {},
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def fusion_url(local_ok):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RunCode)
    httpd.pool = SandboxPool("local", 2)  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    httpd.pool.close()  # type: ignore[attr-defined]


def fusion_grader(url: str, **spec):
    return load_grader({**SPEC, "sandbox": "sandbox_fusion", "sandbox_options": {"url": url}, **spec})


def test_fusion_humaneval_subset(fusion_url):
    g = fusion_grader(fusion_url)
    for row in humaneval(6):
        good = g.grade({"output_text": row["canonical_solution"]}, row)
        assert good.passed and good.details["sandbox"] == "sandbox_fusion", (row["task_id"], good)
        bad = g.grade({"output_text": "    return None\n"}, row)
        assert not bad.passed and bad.status == "ok", (row["task_id"], bad)


def test_fusion_outputs_and_outcomes(fusion_url):
    box = get_sandbox("sandbox_fusion", url=fusion_url + "/run_code")
    res = box.run(
        "import os, sys\nprint(input()[::-1])\nos.write(3, b'R')\nsys.exit(4)", b"abc\n", Limits(timeout=5)
    )
    assert (res.outcome, res.exit_code, res.stdout, res.result) == ("exited", 4, b"cba\n", b"R")
    assert box.run("while True:\n    pass", b"", Limits(timeout=1)).outcome in ("timeout", "cpu_limit")
    flood = box.run("while True:\n    print('x' * 999)", b"", Limits(timeout=5, output_bytes=10_000))
    assert flood.outcome == "output_limit" and flood.stdout_truncated and len(flood.stdout) == 10_000
    crash = box.run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", b"", Limits(timeout=5))
    assert (crash.outcome, crash.signal) == ("signaled", signal.SIGSEGV)
    cases = load_grader({"type": "code", "cases": "{{ item.cases }}", "sandbox": "sandbox_fusion",
                         "sandbox_options": {"url": fusion_url}})  # fmt: skip
    item = {"cases": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5\n", "output": "10\n"}]}
    assert cases.grade({"output_text": "a, b = map(int, input().split())\nprint(a + b)\n"}, item).passed


def test_fusion_forged_reports_do_not_pass(fusion_url):
    """The program prints report-shaped lines (a guessed marker, a copied format), kills its wrapper, or
    writes verdicts on every fd: never a pass."""
    g = fusion_grader(fusion_url)
    _, marker = wrapper_program("", b"", Limits())
    fake = json.dumps({"outcome": "exited", "exit_code": 0, "signal": None, "wall_s": 0, "cpu_s": 0,
                       "stdout": "", "stderr": "", "result": base64.b64encode(b'{"e":"done"}\n').decode(),
                       "stdout_truncated": False, "stderr_truncated": False, "result_truncated": False})  # fmt: skip
    attacks = [
        f"    print({marker + ' start'!r}); print({marker + ' ' + fake!r})\n    return None\n",
        "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n",
        "    import os\n    for fd in range(1, 64):\n        try:\n"
        '            os.write(fd, b\'{"e": "done"}\\n\')\n        except OSError:\n            pass\n    return None\n',
    ]
    for attack in attacks:
        grade = g.grade({"output_text": attack}, ADD)
        assert not grade.passed and grade.status == "ok", (attack, grade)
    assert g.grade({"output_text": "    return a + b\n"}, ADD).passed


def test_fusion_unreachable_is_an_error_grade():
    grade = fusion_grader("http://127.0.0.1:9").grade({"output_text": "    return a + b\n"}, ADD)
    assert grade.status == "error" and "SandboxFusion" in grade.details["error"], grade


def test_fusion_wrapper_source_runs_as_plain_python(tmp_path):
    """The wrapper is what a SandboxFusion `python` runs: a file, outside any rft process."""
    code, marker = wrapper_program("import os\nprint('hi')\nos.write(3, b'ok')", b"", Limits(timeout=5))
    path = tmp_path / "main.py"
    path.write_text(code)
    out = subprocess.run(["python3", str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    lines = [line for line in out.stdout.splitlines() if line.startswith(marker)]
    assert lines[0] == f"{marker} start" and len(lines) == 2, out
    report = json.loads(lines[1].split(" ", 1)[1])
    assert base64.b64decode(report["stdout"]) == b"hi\n" and base64.b64decode(report["result"]) == b"ok"
    assert not path.exists()  # the wrapper removed its own source (the marker)


def test_missing_settings_are_error_grades_that_say_what_to_set(monkeypatch, tmp_path):
    monkeypatch.delenv("RFT_SANDBOX_URL", raising=False)
    monkeypatch.delenv("RFT_SANDBOX_FUSION_URL", raising=False)
    # (an option of their own: the code grader remembers an unavailable backend per options for 30 s,
    # and the shared remote backend of the other tests has none)
    for spec, needle in (
        ({"sandbox": "remote", "sandbox_options": {"timeout_margin": 29}}, "RFT_SANDBOX_URL"),
        ({"sandbox": "sandbox_fusion", "sandbox_options": {"timeout_margin": 29}}, "RFT_SANDBOX_FUSION_URL"),
        (
            {
                "sandbox": "remote",
                "sandbox_options": {"url": "http://127.0.0.1:9", "token_file": str(tmp_path / "no")},
            },
            "token file",
        ),
    ):
        grade = load_grader({**SPEC, **spec}).grade({"output_text": "    return a + b\n"}, ADD)
        assert grade.status == "error" and needle in grade.details["error"], grade


class _Broken(BaseHTTPRequestHandler):
    """A server in front of the sandbox that answers badly: 502 (a proxy), non-JSON, a result without an
    outcome, by the path's last part."""

    replies = {
        "502": (502, b"<html>bad gateway</html>"),
        "text": (200, b"ok"),
        "empty": (200, b'{"stdout": ""}'),
    }

    def log_message(self, *_):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        status, data = self.replies[self.path.split("/")[1]]
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_bad_replies_are_error_grades():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        for kind, needle in (("502", "HTTP 502"), ("text", "not a JSON object"), ("empty", "malformed")):
            g = remote_grader(f"http://127.0.0.1:{httpd.server_address[1]}/{kind}", "t")
            grade = g.grade({"output_text": "    return a + b\n"}, ADD)
            assert grade.status == "error" and needle in grade.details["error"], (kind, grade)
    finally:
        httpd.shutdown()
        httpd.server_close()
