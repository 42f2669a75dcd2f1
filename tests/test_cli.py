"""`rft grade` and `rft grader validate` run as subprocesses, as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))

SPEC = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
        "reference": "{{ item.answer }}", "operation": "eq"}  # fmt: skip


def rft(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([RFT, *args], capture_output=True, text=True, timeout=timeout)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_grade_good_and_bad_rows(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    rows = write(
        tmp_path / "rows.jsonl",
        [
            json.dumps({"item": {"answer": "4"}, "sample": {"output_text": "4"}}),
            json.dumps({"item": {"answer": "4"}, "sample": {"output_text": "5"}}),
            "{not json",
            json.dumps({"item": {"answer": "4"}}),
            json.dumps({"item": {"other": "4"}, "sample": {"output_text": "4"}}),
            "",
            json.dumps({"item": {"answer": "7"}, "sample": "7"}),
        ],
    )
    out = tmp_path / "out.jsonl"
    res = rft(
        "grade", "--grader", str(spec), "--input", str(rows), "--output", str(out), "--workers", "1", "--json"
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 6
    assert summary["status"] == {"ok": 3, "no_answer": 0, "timeout": 0, "error": 3}
    assert summary["pass_rate"] == pytest.approx(2 / 3)
    graded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["grade"]["status"] for g in graded] == ["ok", "ok", "error", "error", "error", "ok"]
    assert [g["grade"]["passed"] for g in graded] == [True, False, False, False, False, True]
    assert graded[0]["item"] == {"answer": "4"}  # the input row is kept
    assert graded[2] == {"line": 3, "raw": "{not json", "grade": graded[2]["grade"]}
    assert graded[2]["grade"]["details"]["error"].startswith("line 3: invalid JSON")
    assert graded[3]["grade"]["details"]["error"].startswith("line 4: row has no 'sample'")
    assert (
        "line 5" in graded[4]["grade"]["details"]["error"]
        and "item.answer" in graded[4]["grade"]["details"]["error"]
    )


def test_grade_inline_spec_and_in_process(tmp_path):
    rows = write(
        tmp_path / "r.jsonl", [json.dumps({"item": {"answer": "a"}, "sample": {"output_text": "a"}})] * 5
    )
    res = rft("grade", "-g", json.dumps(SPEC), "-i", str(rows), "--workers", "0", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"]["ok"] == 5


def test_hanging_grader_times_out_and_the_rest_completes(tmp_path):
    source = "import time\ndef grade(sample, item):\n    if sample['output_text'] == 'hang':\n        time.sleep(3600)\n    return 1.0\n"
    spec = tmp_path / "py.json"
    spec.write_text(json.dumps({"type": "python", "name": "slow", "source": source, "timeout": 2}))
    lines = [
        json.dumps({"item": {}, "sample": {"output_text": t}}) for t in ["a", "hang", "b", "c", "hang", "d"]
    ]
    out = tmp_path / "out.jsonl"
    t0 = time.perf_counter()
    res = rft("grade", "-g", str(spec), "-i", str(write(tmp_path / "r.jsonl", lines)), "-o", str(out), "--workers", "2",
              "--timeout", "3", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert time.perf_counter() - t0 < 30
    statuses = [json.loads(line)["grade"]["status"] for line in out.read_text().splitlines()]
    assert statuses == ["ok", "timeout", "ok", "ok", "timeout", "ok"]


def test_validate(tmp_path):
    good = tmp_path / "g.json"
    good.write_text(json.dumps(SPEC))
    res = rft("grader", "validate", str(good))
    assert res.returncode == 0 and "ok" in res.stdout
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({**SPEC, "operation": "contains"}))
    res = rft("grader", "validate", str(bad))
    assert res.returncode == 2 and "operation" in res.stderr
    res = rft("grader", "validate", str(tmp_path / "missing.json"))
    assert res.returncode == 2 and "does not exist" in res.stderr


def test_grader_types_lists_every_registered_type():
    res = rft("grader", "types")
    types = set(res.stdout.split())
    assert {"string_check", "text_similarity", "python", "multi", "score_model", "label_model", "regex",
            "format", "json_schema"} <= types  # fmt: skip


def test_unsafe_local_exec_is_an_explicit_opt_in(tmp_path):
    """Where the configured sandbox cannot run, code grades are errors unless the user opts in."""
    spec = {"type": "code", "tests": "assert f(2) == 4", "entry_point": "f", "sandbox": "bwrap",
            "sandbox_options": {"bwrap": str(tmp_path / "no-bwrap-here")}}  # fmt: skip
    spec_path = tmp_path / "code.json"
    spec_path.write_text(json.dumps(spec))
    rows = write(tmp_path / "r.jsonl", [json.dumps({"item": {}, "sample": "def f(x):\n    return x * 2\n"})])
    out = tmp_path / "out.jsonl"
    args = ["grade", "-g", str(spec_path), "-i", str(rows), "-o", str(out), "--workers", "1", "--json"]
    res = rft(*args)
    assert res.returncode == 3, res.stderr  # every row failed to grade: past --max-error-rate
    grade = json.loads(out.read_text())["grade"]
    assert grade["status"] == "error" and "bwrap" in grade["details"]["error"]
    res = rft(*args, "--unsafe-local-exec")
    assert res.returncode == 0, res.stderr
    grade = json.loads(out.read_text())["grade"]
    assert grade["status"] == "ok" and grade["passed"]
    assert "ran unisolated" in grade["details"]["sandbox_fallback"]


CODE_SPEC = {"type": "code", "prefix": "{{ item.prompt }}", "tests": "{{ item.test }}", "entry_point": "f"}


def test_validate_runs_a_program_in_the_code_graders_sandbox(tmp_path):
    import os

    spec = tmp_path / "code.json"
    spec.write_text(json.dumps(CODE_SPEC))
    res = rft("grader", "validate", str(spec))
    chosen = "local" if os.geteuid() == 0 else "userns"
    assert res.returncode == 0 and f"auto chose '{chosen}'" in res.stdout, res.stdout + res.stderr
    # a backend that cannot run here: FAIL, with why and what to do
    wrong = "userns" if os.geteuid() == 0 else "local"
    spec.write_text(json.dumps({**CODE_SPEC, "sandbox": wrong}))
    res = rft("grader", "validate", str(spec))
    assert res.returncode == 1 and "FAIL" in res.stdout and "root" in res.stdout, res.stdout


def test_task_check_names_the_sandbox_and_says_why_it_fails(tmp_path):
    import os

    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"id": f"t{i}", "prompt": f"def f():\n    # {i}\n", "reference": "    return 1\n",
                        "test": "def check(c):\n    assert c() == 1\n"}) + "\n"
            for i in range(4)
        )
    )  # fmt: skip
    wrong = "userns" if os.geteuid() == 0 else "local"
    suite = tmp_path / "tiny-code-v0.yaml"
    suite.write_text(
        "id: tiny-code-v0\n"
        f"source: {{type: jsonl, path: {rows}}}\n"
        "fields: {reference: reference}\n"
        'prompt: {user: "{{ item.prompt }}"}\n'
        f"grader: {json.dumps({**CODE_SPEC, 'sandbox': wrong})}\n"
        "split: 0.5\n"
        "check: {completion: '{{ item.reference }}', decoy: '    return 0'}\n"
    )
    res = rft("task", "check", str(suite))
    out = " ".join(res.stdout.split())  # rich wraps long lines
    assert res.returncode == 1 and f"FAIL sandbox '{wrong}' runs a test program here" in out, out
    assert "root" in out and "status error" in out, out  # the reason, not only FAIL
