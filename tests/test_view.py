"""`rft view`'s server without a browser: the line index (steps read from line prefixes, growth, truncation),
the filtered pages, and the safety rules (loopback by default, GET only, paths confined to the folder, Host
checked). The page itself is driven in a real browser in test_view_browser.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _view_folder import PER_STEP, STEPS, demo_like_folder

from rft.app.view import make_server, serve_in_thread
from rft.app.view_data import LineIndex, RowFilter, query
from rft.app.view_regrade import HeldoutRegrader


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_like_folder(tmp_path_factory.mktemp("view"))


@pytest.fixture(scope="module")
def server(demo: Path):
    srv = make_server(demo, port=0)
    serve_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


def get(srv, path: str, method: str = "GET", host: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(srv.url.rstrip("/") + path, method=method)
    if host is not None:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            is_json = r.headers["Content-Type"] == "application/json"
            return r.status, json.loads(r.read()) if is_json else {}
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body.startswith(b"{") else {}


def test_index_reads_steps_from_prefixes_and_parses_other_lines(tmp_path):
    rows = [{"step": 0}, {"step": 7, "x": 1}, {"step": 123456789012}, {"x": 1, "step": 5}, {"no": "step"},
            {"step": 3.5}, {"step": 42}]  # fmt: skip
    text = "".join(json.dumps(r) + "\n" for r in rows)
    text = text.replace('{"x": 1, "step": 5}\n', '{"x": 1, "step": 5}\n\n')  # a blank line is no row
    f = tmp_path / "rollouts.jsonl"
    f.write_text(text + '{"step": 9')  # the last line is still being written
    idx = LineIndex(f, steps=True)
    idx.refresh()
    assert idx.steps.tolist() == [0, 7, 123456789012, 5, -1, -1, 42]
    assert [json.loads(idx.line(i)) for i in range(len(idx))] == rows
    with f.open("a") as h:  # the writer finishes the line and adds one
        h.write(', "y": 2}\n{"step": 10}\n')
    idx.refresh()
    assert idx.steps.tolist()[-2:] == [9, 10] and json.loads(idx.line(7)) == {"step": 9, "y": 2}
    f.write_text('{"step": 1}\n')  # rewritten from scratch (shorter): indexed again
    idx.refresh()
    assert idx.steps.tolist() == [1]


def test_index_crosses_chunk_boundaries(tmp_path, monkeypatch):
    import rft.app.view_data as vd

    monkeypatch.setattr(vd, "CHUNK", 37)  # lines longer than a chunk, boundaries everywhere
    rows = [{"step": s // 3, "completion": "x" * (s * 7 % 50)} for s in range(60)]
    f = tmp_path / "rollouts.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    idx = LineIndex(f, steps=True)
    idx.refresh()
    assert idx.steps.tolist() == [r["step"] for r in rows]
    assert [json.loads(idx.line(i)) for i in range(60)] == rows


def test_query_filters_and_pages_without_gaps(demo):
    idx = LineIndex(demo / "grpo" / "rollouts.jsonl", steps=True)
    seen, cursor = [], 0
    while cursor is not None:
        page = query(idx, RowFilter(), cursor=cursor, limit=5)
        seen += [r["line"] for r in page["rows"]]
        cursor = page["next"]
    assert seen == list(range(STEPS * PER_STEP))
    step2 = query(idx, RowFilter(step=2), limit=100)["rows"]
    assert {r["step"] for r in step2} == {2} and len(step2) == PER_STEP
    assert {r["status"] for r in query(idx, RowFilter(status="timeout"), limit=100)["rows"]} == {"timeout"}
    assert len(query(idx, RowFilter(status="timeout"), limit=100)["rows"]) == STEPS
    hacked = query(idx, RowFilter(heldout_failed=True), limit=100)["rows"]
    assert [(r["step"], r["reward"]) for r in hacked] == [(3, 1.0)]
    found = query(idx, RowFilter(text="ONERROR"), limit=100)["rows"]
    assert [r["id"] for r in found] == ["hostile-2"]
    mid = query(idx, RowFilter(reward_min=0.2, reward_max=0.8), limit=100)["rows"]
    assert [r["reward"] for r in mid] == [0.5]
    budget = query(idx, RowFilter(text="no such text"), limit=10, budget=7)
    assert budget["rows"] == [] and budget["next"] == 7 and budget["scanned"] == 7


def test_api_serves_pages_and_picks_up_a_growing_file(demo, server, tmp_path):
    code, tree = get(server, "/api/tree")
    assert code == 200 and tree["kind"] == "pipeline" and tree["stages"] == ["sft", "grpo"]
    assert [r["path"] for r in tree["runs"]] == ["sft", "grpo"]
    assert [e["path"] for e in tree["evals"]] == ["eval/sft", "eval/grpo"]  # in stage order
    code, curves = get(server, "/api/curves")
    assert [(c["name"], c["offset"]) for c in curves] == [("sft", 0), ("grpo", 10)]
    assert curves[1]["series"]["reward/mean"][0] == [1, pytest.approx(0.4)]
    code, page = get(server, "/api/rows?file=grpo/rollouts.jsonl&steps=1&step=1&status=error")
    assert (
        code == 200
        and page["steps"] == list(range(1, STEPS + 1))
        and [r["status"] for r in page["rows"]] == ["error"]
    )
    f = demo / "grpo" / "rollouts.jsonl"
    before = f.read_bytes()
    try:
        with f.open("a") as h:
            h.write(json.dumps({"step": STEPS + 1, "id": "new", "reward": 1.0, "status": "ok"}) + "\n")
        code, page = get(server, "/api/rows?file=grpo/rollouts.jsonl&steps=1")
        assert page["steps"][-1] == STEPS + 1 and page["indexed"] == STEPS * PER_STEP + 1
    finally:
        f.write_bytes(before)
    code, cmp = get(server, "/api/compare?path=compare/grpo-vs-sft")
    assert (cmp["a_eval"], cmp["b_eval"]) == ("eval/sft", "eval/grpo")
    code, ev = get(server, "/api/eval?path=eval/grpo")
    assert len(ev["problems"]) == 10 and ev["results"]["results"][0]["value"] == pytest.approx(0.6)


@pytest.mark.parametrize("bad", ["../../../../etc/passwd", "grpo/../../outside.jsonl", "/etc/passwd",
                                 "..%2F..%2F..%2Fetc%2Fpasswd", "link/secret.jsonl", "grpo/config.yaml"])  # fmt: skip
def test_paths_stay_inside_the_folder(demo, server, bad):
    outside = demo.parent / "outside.jsonl"
    outside.write_text('{"secret": 1}\n')
    (demo.parent / "elsewhere").mkdir(exist_ok=True)
    (demo.parent / "elsewhere" / "secret.jsonl").write_text('{"secret": 2}\n')
    if not (demo / "link").exists():
        (demo / "link").symlink_to(demo.parent / "elsewhere")
    code, body = get(server, f"/api/rows?file={bad}")
    assert code == 404 and set(body) == {"error"}, body
    for api in ("eval?path=", "compare?path="):
        code, body = get(server, f"/api/{api}..%2F..%2F")
        assert code in (400, 404) and set(body) == {"error"}, body
    assert get(server, "/../../etc/passwd")[0] == 404


def test_only_reads_and_only_from_its_own_address(server):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert get(server, "/api/tree", method=method)[0] == 501
    assert get(server, "/api/tree", host="attacker.example:80")[0] == 421  # DNS rebinding
    with urllib.request.urlopen(server.url, timeout=10) as r:
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert b"/view.js" in r.read()


def test_cli_binds_loopback_by_default(demo):
    env = {**os.environ, "COLUMNS": "200"}
    p = subprocess.Popen([sys.executable, "-m", "rft", "view", str(demo), "--port", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.startswith("rft view: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url + "api/tree", timeout=10) as r:
            assert json.loads(r.read())["kind"] == "pipeline"
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_cli_says_what_to_give_for_a_missing_folder(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "rft", "view", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert res.returncode == 2 and "no such folder" in res.stderr


BOXED_ANY = """\
id: add-boxed-view-v0
source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2, ops: "+"}, size: 300, seed: 0}
fields: {id: id, reference: answer}
prompt: {user: "{{ item.question }}"}
grader: {type: regex, pattern: '\\\\boxed\\{[^}]*\\}', input: "{{ sample.output_text }}"}
split: 0.1
"""


def test_held_out_filter_grades_rewarded_rows_again(tmp_path):
    """A run trained on a grader that rewards any boxed answer, evaluated on addition-v0's: the filter finds
    the rewarded wrong sums (graded again by the server), not the right ones."""
    suite = tmp_path / "add-boxed-view-v0.yaml"
    suite.write_text(BOXED_ANY)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"suite: {suite}\neval: {{suite: rft/addition-v0}}\n")
    rows = [{"step": 1, "id": f"{a} + 1", "completion": [{"role": "assistant", "content": f"\\boxed{{{a + 1 + k}}}"}],
             "reward": 1.0, "status": "ok", "reference": str(a + 1)} for a in (10, 20) for k in (0, 1)]  # fmt: skip
    rows.append({**rows[1], "reward": 0.0})  # not rewarded: not the filter's business
    (run / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    srv = make_server(run, port=0)
    serve_in_thread(srv)
    try:
        code, page = get(srv, "/api/rows?file=rollouts.jsonl&heldout_failed=1")
        assert code == 200, page
        assert [r["completion"][0]["content"] for r in page["rows"]] == ["\\boxed{12}", "\\boxed{22}"]
        assert all(r["heldout_grade"]["regraded"] and not r["heldout_grade"]["passed"] for r in page["rows"])
        assert "addition-v0" in page["heldout_note"]
        (run / "config.yaml").write_text("suite: rft/addition-v0\n")  # one grader: nothing can differ
        same = HeldoutRegrader(run)
        assert same.grader is None and "is the training grader" in same.note
    finally:
        srv.shutdown()
        srv.server_close()
