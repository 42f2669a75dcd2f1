"""`rft grade` at scale and when grading fails: a summary per status with the first distinct errors, exit 3
past --max-error-rate, rows streamed in a bounded window in order, --resume of a killed run; and
`rft grader audit --compare math_verify` without math-verify (issue 20 items 2, 10, 14)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rft.app.graded_rows import Row, Tally, grade_stream, read_rows
from rft.graders import Grade, load_grader

RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
EXACT = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
         "reference": "{{ item.answer }}", "operation": "eq"}  # fmt: skip


def rft(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([RFT, *args], capture_output=True, text=True, timeout=timeout)


def rows_file(path: Path, n: int, *, bad_every: int = 0) -> Path:
    """`n` rows; every `bad_every`-th lacks the item field the grader needs (an error grade)."""
    with open(path, "w") as f:
        for i in range(n):
            item = {"id": i, "answer": str(i % 7)} if not bad_every or i % bad_every else {"id": i}
            f.write(json.dumps({"item": item, "sample": {"output_text": str(i % 5)}}) + "\n")
    return path


# ---------------------------------------------------------------- item 10: a run where grading fails


def test_all_errors_exit_3_with_a_summary_and_distinct_errors(tmp_path):
    lines = ["{not json", json.dumps({"item": {}}), json.dumps({"item": {}, "sample": "x"}), "[1]", "{bad"]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines * 3) + "\n")
    res = rft("grade", "-g", json.dumps(EXACT), "-i", str(path), "--workers", "0")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "status error" in res.stdout and "15" in res.stdout  # the per-status table
    assert "invalid JSON" in res.stderr and "x6 (first at line 1)" in res.stderr  # 2 bad-JSON lines x 3
    assert "row has no 'sample'" in res.stderr and "x3" in res.stderr
    assert "more failures with other messages" in res.stderr  # the rest, counted, not listed
    assert "more than --max-error-rate 0.5: exit 3" in res.stderr
    assert "Traceback" not in res.stderr


def test_max_error_rate_sets_the_threshold(tmp_path):
    path = rows_file(tmp_path / "rows.jsonl", 20, bad_every=4)  # 5 of 20 rows fail: 25%
    spec = json.dumps(EXACT)
    assert rft("grade", "-g", spec, "-i", str(path), "--workers", "0").returncode == 0
    res = rft("grade", "-g", spec, "-i", str(path), "--workers", "0", "--max-error-rate", "0.2", "--json")
    assert res.returncode == 3
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["status"]["error"] == 5 and summary["rows"] == 20
    assert summary["first_errors"][0]["count"] == 5 and "item.answer" in summary["first_errors"][0]["message"]
    assert rft("grade", "-g", spec, "-i", str(path), "--max-error-rate", "2").returncode == 2


def test_exit_code_is_documented():
    res = rft("grade", "--help")
    assert "--max-error-rate" in res.stdout and "3 more than --max-error-rate" in " ".join(res.stdout.split())


def test_tally_keeps_counts_not_grades():
    tally = Tally(keep_errors=2)
    for line in range(1, 101):
        tally.add(Grade.error(f"line {line}: boom {line % 4}"), line)
    tally.add(Grade(1.0, "ok", True), 101)
    s = tally.summary()
    assert s["status"]["error"] == 100 and s["pass_rate"] == 1.0 and s["grader/error_rate"] == 100 / 101
    assert [(e["message"], e["count"], e["first_line"]) for e in s["first_errors"]] == [
        ("boom 1", 25, 1),
        ("boom 2", 25, 2),
    ]
    assert s["other_errors"] == 50


# ---------------------------------------------------------------- item 14: streaming and --resume


def _counting(rows):
    """Rows, counting how many were read (to see how far ahead of the grades the reader runs)."""
    state = {"read": 0}

    def gen():
        for r in rows:
            state["read"] += 1
            yield r

    return gen(), state


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_keeps_order_and_a_bounded_window(tmp_path, workers):
    path = rows_file(tmp_path / "rows.jsonl", 120)
    grader = load_grader(EXACT)
    rows, state = _counting(read_rows(path))
    ahead = []
    seen = []
    for row, grade in grade_stream(grader, rows, workers=workers, window=8):
        ahead.append(state["read"] - len(seen))
        seen.append(row.line)
        assert grade.details["line"] == row.line
        assert grade.passed == (row.data["item"]["answer"] == row.data["sample"]["output_text"])  # type: ignore[index]
    assert seen == list(range(1, 121))
    assert max(ahead) <= 8  # never more than the window read ahead of what was yielded


def _grades(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_continues_a_killed_run(tmp_path):
    path = rows_file(tmp_path / "rows.jsonl", 300, bad_every=50)
    spec = json.dumps(EXACT)
    full = tmp_path / "full.jsonl"
    assert rft("grade", "-g", spec, "-i", str(path), "-o", str(full), "--workers", "2").returncode == 0
    # A killed run: its first 120 rows, then half a line.
    out = tmp_path / "out.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:120]) + lines[120][:30])
    res = rft("grade", "-g", spec, "-i", str(path), "-o", str(out), "--workers", "2", "--resume", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 300 and summary["resumed"] == 120
    assert summary["status"]["error"] == 6  # counted over the whole file, resumed rows included
    assert _grades(out) == _grades(full)


def test_resume_refuses_an_output_of_another_input(tmp_path):
    spec = json.dumps(EXACT)
    a = rows_file(tmp_path / "a.jsonl", 10)
    b = tmp_path / "b.jsonl"
    b.write_text(a.read_text().replace('"output_text": "3"', '"output_text": "33"'))
    out = tmp_path / "out.jsonl"
    assert rft("grade", "-g", spec, "-i", str(a), "-o", str(out), "--workers", "0").returncode == 0
    before = out.read_text()
    res = rft("grade", "-g", spec, "-i", str(b), "-o", str(out), "--workers", "0", "--resume")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cannot --resume: {out} line 4 is not input line 4"), (
        lines
    )
    assert out.read_text() == before  # untouched
    res = rft("grade", "-g", spec, "-i", str(a), "--resume")
    assert res.returncode == 2 and "give the same --output" in res.stderr


def test_resume_of_a_finished_run_grades_nothing_more(tmp_path):
    path = rows_file(tmp_path / "rows.jsonl", 30)
    out = tmp_path / "out.jsonl"
    spec = json.dumps(EXACT)
    assert rft("grade", "-g", spec, "-i", str(path), "-o", str(out), "--workers", "0").returncode == 0
    before = out.read_text()
    res = rft("grade", "-g", spec, "-i", str(path), "-o", str(out), "--workers", "0", "--resume", "--json")
    assert res.returncode == 0
    assert json.loads(res.stdout.strip().splitlines()[-1])["resumed"] == 30
    assert out.read_text() == before


def test_read_rows_reports_byte_offsets(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"sample": "a"}\n\n{"sample": "bb"}\n')
    rows = list(read_rows(path))
    assert [(r.line, r.end) for r in rows] == [(1, 16), (3, 34)]
    assert isinstance(rows[0], Row) and rows[-1].end == path.stat().st_size


# ---------------------------------------------------------------- item 2: --compare without math-verify


def test_audit_compare_math_verify_not_installed_says_how_to_install(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"item": {"answer": "4"}, "sample": "\\boxed{4}", "expected": True}) + "\n")
    hide = "import sys; sys.modules['math_verify'] = None; from rft.app.cli import main; sys.argv[0] = 'rft'; main()"
    res = subprocess.run(
        [sys.executable, "-c", hide, "grader", "audit", "-g", '{"type": "math"}', "-i", str(rows),
         "--compare", "math_verify", "--workers", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "math-verify is not installed" in lines[0] and "pip install math-verify" in lines[0]
    assert "false negatives" not in res.stdout


# ---------------------------------------------------------------- item 14: rft eval --samples streams too


def test_eval_samples_rows_are_read_lazily(tmp_path):
    from rft.app.graded_rows import data_rows

    path = tmp_path / "graded.jsonl"
    good = [json.dumps({"item": {"id": str(i)}, "sample": "x", "grade": {"passed": True}}) for i in range(3)]
    path.write_text("\n".join([*good, "{broken"]) + "\n")
    rows = data_rows(path)
    assert [next(rows)["item"]["id"] for _ in range(3)] == ["0", "1", "2"]  # read before the bad line
    with pytest.raises(ValueError, match="line 4: invalid JSON"):
        next(rows)


def test_score_samples_from_a_one_pass_iterator(tmp_path):
    from rft.eval.evaluate import score_samples

    rows = [{"item": {"id": str(i % 50)}, "sample": "x", "grade": {"passed": i % 3 == 0, "score": float(i % 3 == 0),
             "status": "ok", "extracted": str(i % 4)}} for i in range(200)]  # fmt: skip
    once = score_samples(iter(rows), (1, 4))
    assert once == score_samples(rows, (1, 4))
    assert once["results"][0]["n_problems"] == 50


def test_bootstrap_in_blocks_draws_what_one_array_draws():
    """The resampling is done in blocks (bounded memory for many problems): same numbers as one array."""
    import numpy as np

    from rft.eval.metrics import bootstrap_ci

    v = np.random.default_rng(1).random(5000)  # 5000 problems x 2000 resamples: 3 blocks
    rng = np.random.default_rng(0)
    means = v[rng.integers(0, len(v), size=(2000, len(v)))].mean(axis=1)
    assert bootstrap_ci(v, n_boot=2000, seed=0) == tuple(np.quantile(means, [0.025, 0.975]))


def test_a_line_that_is_not_utf8_is_an_error_row_not_a_crash(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"sample": "a"}\n{"sample": "\xff"}\n{"sample": "b"}\n')
    rows = list(read_rows(path))
    assert [r.problem is None for r in rows] == [True, False, True]
    assert rows[1].problem is not None and rows[1].problem.startswith("not UTF-8 text")
