"""Several suites in one evaluation (`rft eval --suites`: one table, one results.json, `rft compare` suite by
suite), a suite's `eval:` sampling settings and the flags that override them, and `rft eval --criteria`
(OpenAI Evals testing_criteria) pass rates checked by hand."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rft.envs import SuiteError, data_dir, load_suite

RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
DATA = data_dir()
AIME = DATA / "bench" / "aime24.jsonl" if DATA is not None else None
needs_bench = pytest.mark.skipif(
    AIME is None or not AIME.is_file() or not (DATA / "gsm8k_train.jsonl").is_file(),  # type: ignore[operator]
    reason="needs ../shared/data (gsm8k_train.jsonl, bench/aime24.jsonl)",
)

BASE = {
    "id": "toy-v0",
    "source": {"type": "generator", "name": "arithmetic", "params": {"digits": 1}, "size": 10, "seed": 0},
    "fields": {"id": "id", "reference": "answer"},
    "prompt": {"user": "{{ item.question }}"},
    "grader": {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}"},
    "split": 1,
}
# a benchmark that fixes its sampling, as the example; the data is the shared AIME 2024 copy
AIME_YAML = """\
id: aime24-test-v0
description: "AIME 2024 (a test's copy of the benchmark suite); integer answers in \\\\boxed{}."
source: {type: jsonl, path: "${RFT_DATA}/bench/aime24.jsonl"}
fields: {id: id, reference: answer}
prompt:
  system: "Put the final answer in \\\\boxed{}."
  user: "{{ item.problem }}"
grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}"}
split: 1
eval: {n: 2, k: [1, 2], temperature: 0.6, top_p: 0.95, max_new_tokens: 6}
"""


# --------------------------------------------------------------------------------------- the eval: section


def test_suite_eval_section_is_read():
    s = load_suite({**BASE, "eval": {"n": 16, "k": [1, 16], "temperature": 0.6, "top_p": 0.95,
                                     "max_new_tokens": 4096}})  # fmt: skip
    assert s.eval.fixed() == {
        "n": 16,
        "k": (1, 16),
        "temperature": 0.6,
        "top_p": 0.95,
        "max_new_tokens": 4096,
    }
    assert load_suite({**BASE, "eval": {"k": 4}}).eval.k == (4,)
    assert load_suite(BASE).eval.fixed() == {}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ([1, 2], "eval must be a mapping like {n: 16"),
        ({"samples": 4}, "eval: unknown keys ['samples']; allowed: n, k, temperature"),
        ({"n": 0}, "eval.n must be an integer >= 1, got 0"),
        ({"n": 2.5}, "eval.n must be an integer >= 1"),
        ({"n": True}, "eval.n must be an integer >= 1"),
        ({"k": "1,16"}, "eval.k must be a list of integers like [1, 16]"),
        ({"k": [0, 2]}, "eval.k must be a list of integers >= 1"),
        ({"k": []}, "eval.k must be a list of integers >= 1"),
        ({"n": 4, "k": [1, 16]}, "eval.k [1, 16] needs n >= 16 samples per problem, but eval.n is 4"),
        ({"temperature": -0.1}, "eval.temperature must be a number >= 0"),
        ({"temperature": "hot"}, "eval.temperature must be a number >= 0"),
        ({"n": 4, "temperature": 0}, "eval.temperature 0 (greedy) gives 4 identical samples"),
        ({"top_p": 0}, "eval.top_p must be in (0, 1]"),
        ({"top_p": 1.5}, "eval.top_p must be in (0, 1]"),
        ({"max_new_tokens": 0}, "eval.max_new_tokens must be an integer >= 1"),
    ],
)
def test_suite_eval_section_errors_say_what_to_fix(section, message):
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_suite({**BASE, "eval": section})


def test_flags_given_override_the_suite_and_the_suite_overrides_defaults():
    from rft.eval.suites import suite_spec

    suite = load_suite({**BASE, "eval": {"n": 16, "k": [1, 16], "temperature": 0.6, "max_new_tokens": 64}})
    fields = {"suite": "toy", "limit": 3, "max_new_tokens": 256}  # rft eval's default max_new_tokens
    spec, origin = suite_spec(fields, set(), suite)
    assert (spec.n, spec.ks, spec.sampling_temperature, spec.top_p, spec.max_new_tokens) == (16, (1, 16), 0.6,
                                                                                             1.0, 64)  # fmt: skip
    assert origin == {"n": "suite", "ks": "suite", "temperature": "suite", "top_p": "default",
                      "max_new_tokens": "suite"}  # fmt: skip
    given = {"n": 4, "ks": (1, 4), "temperature": 1.0, "max_new_tokens": 8}
    spec, origin = suite_spec({**fields, **given}, set(given), suite)
    assert (spec.n, spec.ks, spec.sampling_temperature, spec.max_new_tokens) == (4, (1, 4), 1.0, 8)
    assert origin["n"] == origin["ks"] == origin["temperature"] == "command line"
    # --n alone below the suite's k: the error names where each setting came from and how to fix it
    with pytest.raises(
        ValueError, match=r"n 4 from the command line, k \[1, 16\] from the suite's eval:.*--k"
    ):
        suite_spec({**fields, "n": 4}, {"n"}, suite)
    spec, _ = suite_spec(fields, set(), load_suite(BASE))  # a suite that fixes nothing: the defaults
    assert (spec.n, spec.ks, spec.sampling_temperature, spec.max_new_tokens) == (1, (1,), 0.0, 256)


# ------------------------------------------------------------------------------------ end to end, tiny


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@needs_bench
def test_rft_eval_suites_one_table_one_results_json_and_compare(tmp_path, tiny_model, monkeypatch):
    import rft.eval.engines
    from rft.eval.suites import evaluate_suites

    aime = tmp_path / "aime24-test.yaml"
    aime.write_text(AIME_YAML)
    suites = f"arithmetic-v0,gsm8k-v0,{aime}"
    cmd = [RFT, "eval", "--model", str(tiny_model), "--suites", suites, "--limit", "3", "--max-new-tokens", "8",
           "--workers", "0", "--out", str(tmp_path / "a")]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    # one table: a row per suite, a column per metric (the union over suites)
    header = next(x for x in res.stdout.splitlines() if "suite" in x and "pass@1" in x)
    assert [h for h in ("problems", "pass@1", "pass@2", "maj@2", "mean@n") if h in header] == [
        "problems", "pass@1", "pass@2", "maj@2", "mean@n"]  # fmt: skip
    assert all(s in res.stdout for s in ("arithmetic-v0", "gsm8k-v0", "aime24-test-v0"))
    doc = json.loads((tmp_path / "a" / "results.json").read_text())
    assert doc["kind"] == "rft-eval-suites" and doc["model"] == str(tiny_model)
    assert doc["settings"]["limit"] == 3 and doc["settings"]["given"] == {"max_new_tokens": 8}
    assert list(doc["suites"]) == ["arithmetic-v0", "gsm8k-v0", "aime24-test-v0"]
    # the benchmark's eval: applied (n, k, temperature, top_p), the flag given overrode its max_new_tokens
    st = doc["suites"]["aime24-test-v0"]
    assert st["settings"] == {"n": 2, "ks": [1, 2], "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 8}
    assert st["from"]["n"] == "suite" and st["from"]["max_new_tokens"] == "command line"
    assert doc["suites"]["gsm8k-v0"]["settings"] == {"n": 1, "ks": [1], "temperature": 0.0, "top_p": 1.0,
                                                     "max_new_tokens": 8}  # fmt: skip
    for sid, e in doc["suites"].items():  # each suite's usual folder, its config the same settings
        folder = tmp_path / "a" / e["dir"]
        own = json.loads((folder / "results.json").read_text())
        assert own["results"] == e["results"] and own["config"] == e["config"]
        assert own["config"]["n"] == e["settings"]["n"] and own["config"]["top_p"] == e["settings"]["top_p"]
        assert len(_lines(folder / "samples.jsonl")) == 3 * e["settings"]["n"]
        assert {r["suite"] for r in e["results"]} == {sid} and all(r["n_problems"] == 3 for r in e["results"])
    assert len(doc["results"]) == sum(len(e["results"]) for e in doc["suites"].values())
    report = (tmp_path / "a" / "report.md").read_text()
    assert "| suite | problems | n | pass@1 | pass@2 | maj@2 | mean@n |" in report
    assert re.search(r"\| aime24-test-v0 \| 3 \| 2 \| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", report)
    assert (
        "| aime24-test-v0 | 2 | 1,2 | 0.6 | 0.95 | 8 | n, ks, temperature, top_p | max_new_tokens |" in report
    )

    # the same command again: every suite folder is complete with the same settings, so none is sampled
    before = (tmp_path / "a" / "gsm8k-v0" / "samples.jsonl").stat().st_mtime_ns
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("kept the complete evaluation") == 3
    assert (tmp_path / "a" / "gsm8k-v0" / "samples.jsonl").stat().st_mtime_ns == before

    # run B in process: two of the suites, another seed and temperature; the model loads once for both
    loads = []
    real = rft.eval.engines.load_model
    monkeypatch.setattr(rft.eval.engines, "load_model", lambda *a: loads.append(a) or real(*a))
    fields = {"limit": 3, "max_new_tokens": 8, "temperature": 1.0, "seed": 1, "grader_workers": 0}
    given = {"max_new_tokens", "temperature"}
    doc_b = evaluate_suites(
        str(tiny_model), fields, ["arithmetic-v0", str(aime)], tmp_path / "b", given=given
    )
    assert len(loads) == 1
    assert doc_b["suites"]["aime24-test-v0"]["settings"]["temperature"] == 1.0  # the flag given wins

    res = subprocess.run([RFT, "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    verdicts = [x for x in res.stdout.splitlines() if " on " in x and "pass@1" in x]
    assert len(verdicts) == 2 and any("arithmetic-v0 heldout" in v for v in verdicts)
    assert "gsm8k-v0 not compared: only in A" in res.stderr
    cmp = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert [c["suite"] for c in cmp["comparisons"]] == ["arithmetic-v0", "aime24-test-v0"]
    assert cmp["not_compared"] == {"gsm8k-v0": "only in A"}
    for c in cmp["comparisons"]:
        assert c["n_problems"] == 3 and c["ci95"][0] <= c["diff"] <= c["ci95"][1]
        assert (tmp_path / "c" / c["suite"] / "compare.md").is_file()
    md = (tmp_path / "c" / "compare.md").read_text()
    assert "| suite | split | problems | A pass@1 | B pass@1 | B - A (95% CI) | McNemar p | verdict |" in md
    # a one-suite folder against a folder of several: compared on the suite they share
    res = subprocess.run([RFT, "compare", str(tmp_path / "a" / "gsm8k-v0"), str(tmp_path / "a"), "--out",
                          str(tmp_path / "d")], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "no significant difference on gsm8k-v0 heldout: +0.000" in res.stdout  # the same samples
    res = subprocess.run([RFT, "compare", str(tmp_path / "a" / "gsm8k-v0"), str(tmp_path / "b")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "the runs share no suite" in res.stderr


def test_rft_eval_suites_checks_every_suite_before_loading(tmp_path):
    from typer.testing import CliRunner

    from rft.app.cli import app

    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({**BASE, "id": "bad-v0", "eval": {"n": 2, "k": [1, 2]}}))
    crit = tmp_path / "criteria.json"
    crit.write_text(json.dumps(CRITERIA[:1]))
    toy = tmp_path / "toy.yaml"
    toy.write_text(json.dumps(BASE))
    gone = tmp_path / "gone.yaml"  # its data is missing: found before the first suite is sampled
    gone.write_text(
        json.dumps({**BASE, "id": "gone-v0", "source": {"type": "jsonl", "path": "nowhere.jsonl"}})
    )
    out = ["--out", str(tmp_path / "o")]
    runs = {  # the model does not exist: each error comes before anything loads
        "suite bad-v0: need every k in 1..n": ["--suites", f"arithmetic-v0,{bad}", "--n", "1"],
        "suite arithmetic-v0 is named twice in --suites": ["--suites", "arithmetic-v0,rft/arithmetic-v0"],
        "nowhere.jsonl does not exist": ["--suites", f"arithmetic-v0,{gone}"],
        "suite toy-v0 has no 'train' problems": ["--suites", f"arithmetic-v0,{toy}", "--split", "train"],
        "give one of --suite, --suites or --samples": [
            "--suites",
            "arithmetic-v0",
            "--suite",
            "arithmetic-v0",
        ],
        "--criteria applies to one suite's samples": ["--suites", "arithmetic-v0", "--criteria", str(crit)],
        "no such criteria file": ["--suite", "arithmetic-v0", "--criteria", str(tmp_path / "missing.json")],
        "scores the criteria only: drop --k": ["--samples", str(bad), "--criteria", str(crit), "--k", "1"],
    }
    for message, args in runs.items():
        res = CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "no-model"), *args, *out],
                                 env={"COLUMNS": "400"})  # fmt: skip
        assert res.exit_code == 2 and message in res.output, (message, res.output)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------- criteria

ROWS = [  # rft grade / OpenAI eval JSONL rows: 3 problems, 2 samples each
    ({"id": "p1", "answer": "Paris"}, "Paris"),
    ({"id": "p1", "answer": "Paris"}, "paris, France"),
    ({"id": "p2", "answer": "42"}, "42"),
    ({"id": "p2", "answer": "42"}, "42"),
    ({"id": "p3", "answer": "blue whale"}, "qqqq"),
    ({"id": "p3", "answer": "blue whale"}, "blue whale"),
]
CRITERIA = [
    {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}",
     "operation": "eq"},
    {"type": "text_similarity", "name": "fuzzy", "input": "{{ sample.output_text }}",
     "reference": "{{ item.answer }}", "evaluation_metric": "fuzzy_match", "pass_threshold": 0.8},
    {"type": "python", "name": "short", "pass_threshold": 0.5,
     "source": "def grade(sample, item):\n    return 1.0 if len(sample['output_text']) <= 5 else 0.25\n"},
    {"type": "label_model", "name": "judge", "model": "nobody", "base_url": "http://127.0.0.1:9/v1",
     "max_retries": 0, "request_timeout": 2, "input": [{"role": "user", "content": "{{ sample.output_text }}"}],
     "labels": ["good", "bad"], "passing_labels": ["good"]},
]  # fmt: skip


def test_rft_eval_criteria_pass_rates_by_hand(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"item": i, "sample": {"output_text": s}}) + "\n" for i, s in ROWS))
    crit = tmp_path / "criteria.json"
    crit.write_text(json.dumps({"name": "an exported eval", "testing_criteria": CRITERIA}))
    res = subprocess.run([RFT, "eval", "--samples", str(rows), "--criteria", str(crit), "--workers", "0",
                          "--out", str(tmp_path / "ev")], capture_output=True, text=True, timeout=180)  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "ev" / "results.json").read_text())
    got = {c["name"]: c for c in doc["criteria"]}
    # exact: p1 1 of 2, p2 2 of 2, p3 1 of 2 -> mean over problems (0.5 + 1 + 0.5) / 3
    assert got["exact"]["pass_rate"] == pytest.approx(2 / 3)
    assert (got["exact"]["passed"], got["exact"]["failed"], got["exact"]["errored"]) == (4, 2, 0)
    # fuzzy >= 0.8: identical texts pass, "paris, France" contains "Paris" (WRatio's partial match 0.9), "qqqq" no
    assert got["fuzzy"]["pass_rate"] == pytest.approx(5 / 6) and got["fuzzy"]["passed"] == 5
    # short: <= 5 characters scores 1.0 >= 0.5, longer 0.25 < 0.5: p1 1/2, p2 2/2, p3 1/2 ("qqqq" has 4)
    assert got["short"]["pass_rate"] == pytest.approx((0.5 + 1 + 0.5) / 3) and got["short"]["passed"] == 4
    # an unreachable judge: every sample errored, none passed, and it is said
    assert (got["judge"]["pass_rate"], got["judge"]["errored"], got["judge"]["failed"]) == (0.0, 6, 0)
    assert "criterion judge: its grader failed on 6 of 6 samples" in res.stderr
    for c in got.values():
        assert c["ci95"][0] <= c["pass_rate"] <= c["ci95"][1] and c["problems"] == 3 and c["samples"] == 6
    assert got["exact"]["ci95"] == [0.5, 1.0]  # per-problem rates {0.5, 1, 0.5}: resampled means span 0.5..1
    metrics = {r["metric"]: r for r in doc["results"]}
    assert set(metrics) == {"criteria/exact", "criteria/fuzzy", "criteria/short", "criteria/judge"}
    assert (
        metrics["criteria/exact"]["value"] == pytest.approx(2 / 3)
        and metrics["criteria/exact"]["n_problems"] == 3
    )
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "| exact | string_check | eq holds | 0.667 | [0.500, 1.000] | 4 | 2 | 0 | 3 |" in report
    assert "| fuzzy | text_similarity | score >= 0.8 | 0.833 |" in report
    assert "| judge | label_model | label in ['good'] | 0.000 | [0.000, 0.000] | 0 | 0 | 6 | 3 |" in report


def test_criteria_read_rft_sample_rows_with_their_suite_items():
    from rft.envs import get_suite
    from rft.eval.criteria import load_criteria, run_criteria

    suite = get_suite("rft/arithmetic-v0")
    items = suite.items("heldout")[:2]
    rows = [{"id": it["id"], "sample": k, "completion": [{"role": "assistant", "content": text}]}
            for it in items for k, text in enumerate([f"\\boxed{{{it['reference']}}}", "no idea"])]  # fmt: skip
    # the python criterion reads item["question"], which only the suite's item holds (rows carry ids)
    crit = load_criteria([{"type": "python", "name": "asks", "source":
                           "def grade(sample, item):\n    return float('What is' in item['question'])\n"},
                          {"type": "string_check", "name": "boxed_ref", "input": "{{ sample.output_text }}",
                           "reference": "{{ item.reference }}", "operation": "like"}])  # fmt: skip
    found = run_criteria(crit, rows, suite=suite, workers=0, label=suite.id)
    got = {c["name"]: c for c in found["criteria"]}
    assert got["asks"]["pass_rate"] == 1.0 and got["asks"]["errored"] == 0
    assert got["boxed_ref"]["pass_rate"] == 0.5 and got["boxed_ref"]["passed"] == 2
    with pytest.raises(ValueError, match="is not in suite arithmetic-v0"):
        run_criteria(crit, [{**rows[0], "id": "nope"}], suite=suite, workers=0)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ([], "expected a non-empty list of grader specs"),
        ({"name": "x"}, 'or an object with "testing_criteria"'),
        (["string_check"], "criterion 1 must be a grader spec (an object)"),
        ([{"type": "string_check", "name": "eq", "input": "{{ sample.output_text }}", "reference": "a",
           "operation": "equals"}], "criterion 1 (eq):"),
        ([CRITERIA[0], CRITERIA[0]], "two criteria are named 'exact'"),
        ([{"type": "nope"}], "criterion 1 (nope_1):"),
    ],
)  # fmt: skip
def test_criteria_file_errors_say_what_to_fix(source, message):
    from rft.eval.criteria import load_criteria

    with pytest.raises(ValueError, match=re.escape(message)):
        load_criteria(source)


def test_rft_eval_criteria_on_a_model_and_suite(tmp_path, tiny_model):
    crit = tmp_path / "criteria.json"
    crit.write_text(json.dumps([CRITERIA[2]]))
    res = subprocess.run([RFT, "eval", "--model", str(tiny_model), "--suite", "arithmetic-v0", "--limit", "3",
                          "--n", "2", "--k", "1,2", "--max-new-tokens", "6", "--workers", "0", "--criteria", str(crit),
                          "--out", str(tmp_path / "ev")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "ev" / "results.json").read_text())
    metrics = {r["metric"] for r in doc["results"]}
    assert {"pass@1", "pass@2", "maj@2", "criteria/short"} <= metrics
    samples = _lines(tmp_path / "ev" / "samples.jsonl")
    short = [len(s["completion"][-1]["content"]) <= 5 for s in samples]
    (c,) = doc["criteria"]
    assert (c["samples"], c["problems"], c["passed"]) == (6, 3, sum(short))
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "| pass@1 |" in report and "## Testing criteria" in report and "| short | python |" in report
