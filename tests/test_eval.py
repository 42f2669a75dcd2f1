"""Evaluation: pass@k/maj@k against hand-computed cases, bootstrap coverage in simulation, McNemar known
values, `rft eval --samples` on hand-made graded rows, and `rft eval`/`rft compare` end to end on a tiny
model."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rft.eval.evaluate import compare_runs, fewshot_messages, load_eval, score_samples, write_eval
from rft.eval.metrics import (
    bootstrap_ci,
    ci_coverage,
    maj_at_k,
    mcnemar,
    mean_at_n,
    paired_bootstrap_ci,
    pass_at_k,
)

RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))


# ------------------------------------------------------------------------------------------------ metrics


@pytest.mark.parametrize(
    ("n", "c", "k", "want"),
    [
        (10, 3, 1, 0.3),
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (10, 3, 8, 1.0),  # n - c < k: every 8-subset holds a pass
        (10, 0, 5, 0.0),
        (10, 10, 1, 1.0),
        (10, 10, 10, 1.0),
        (4, 1, 4, 1.0),  # verl's biased best@4 says 1 - (3/4)^4 = 0.684
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 2, 1 - 3 / 10),
        (200, 17, 10, 1 - math.comb(183, 10) / math.comb(200, 10)),
    ],
)
def test_pass_at_k_hand_cases(n, c, k, want):
    assert pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12)


def test_pass_at_k_large_n_is_stable_and_errors_are_clear():
    assert 0 < pass_at_k(10_000, 1, 1) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 0)


def test_maj_at_k():
    answers, passed = ["7", "5", "5", "7", "7"], [True, False, False, True, True]
    assert maj_at_k(answers, passed, 1) == 1.0  # "7"
    assert maj_at_k(answers, passed, 3) == 0.0  # "5" twice
    assert maj_at_k(answers, passed, 4) == 1.0  # tie 2-2: "7" appeared first
    assert maj_at_k(answers, passed, 5) == 1.0
    assert maj_at_k(["5", "7"], [False, True], 2) == 0.0  # tie: first seen wins
    assert maj_at_k([None, None, "3"], [False, False, True], 3) == 1.0  # no answer: no vote
    assert maj_at_k([None, None], [False, False], 2) == 0.0
    with pytest.raises(ValueError):
        maj_at_k(["1"], [True], 2)


def test_mean_and_bootstrap_basics():
    assert mean_at_n([1.0, 0.0, 0.5, 0.5]) == 0.5
    assert bootstrap_ci([0.4] * 10) == (0.4, 0.4)
    lo, hi = bootstrap_ci([0.0, 1.0] * 50, seed=1)
    assert lo < 0.5 < hi and hi - lo < 0.3
    assert bootstrap_ci([0.0, 1.0] * 50, seed=1) == (lo, hi)  # seeded
    med = bootstrap_ci([0.0, 1.0, 2.0, 3.0, 4.0], stat=np.median, n_boot=200)
    assert 0.0 <= med[0] <= 2.0 <= med[1] <= 4.0
    dlo, dhi = paired_bootstrap_ci([0.0] * 40, [1.0] * 30 + [0.0] * 10)
    assert 0.5 < dlo <= 0.75 <= dhi < 0.95


@pytest.mark.parametrize(("p", "problems"), [(0.3, 50), (0.7, 100)])
def test_bootstrap_ci_covers_in_simulation(p, problems):
    cov = ci_coverage(lambda rng: rng.binomial(1, p, size=problems).astype(float), p, sims=200, n_boot=1000)
    assert 0.88 <= cov <= 0.995  # nominal 0.95; sd of the estimate ~0.015, percentile CIs run a bit low


def test_pass_at_k_ci_covers_in_simulation():
    """Problems with difficulty q ~ Beta(1, 2), n=8 samples each: the CI of mean pass@4 covers the truth."""
    a, b, n, k = 1.0, 2.0, 8, 4
    qs = np.random.default_rng(9).beta(a, b, size=200_000)
    truth = float(np.mean(1 - (1 - qs) ** k))  # E[pass@k] of a problem = 1 - (1 - q)^k

    def draw(rng):
        c = rng.binomial(n, rng.beta(a, b, size=60))
        return np.array([pass_at_k(n, int(x), k) for x in c])

    assert 0.88 <= ci_coverage(draw, truth, sims=150, n_boot=800, seed=3) <= 0.995


def test_mcnemar_known_values():
    # exact: 10 vs 2 discordant -> 2 * (C(12,0)+C(12,1)+C(12,2)) / 2^12 = 2 * 79 / 4096
    r = mcnemar([1] * 10 + [0] * 2 + [1] * 5, [0] * 10 + [1] * 2 + [1] * 5)
    assert (r.a_only, r.b_only, r.method) == (10, 2, "exact")
    assert r.p_value == pytest.approx(2 * 79 / 4096)
    # chi-square: 25 vs 10 -> (15 - 1)^2 / 35 = 5.6, p = 0.01796 (chi2, 1 dof)
    r = mcnemar([1] * 25 + [0] * 10, [0] * 25 + [1] * 10)
    assert r.method == "chi2" and r.statistic == pytest.approx(5.6)
    assert r.p_value == pytest.approx(0.017961, abs=1e-5)
    assert mcnemar([1, 0, 1], [1, 0, 1]).p_value == 1.0
    assert mcnemar([1], [0]).p_value == 1.0  # one discordant pair: 2 * 1/2


# ---------------------------------------------------------------------------------------- scoring rows


def _grade_rows(correct: dict[str, list[bool]]) -> list[dict]:
    """`rft grade` output rows: item with an id, the sample, the grade; answers '42' pass, '7' fails."""
    rows = []
    for pid, passes in correct.items():
        for ok in passes:
            ans = "42" if ok else "7"
            rows.append({"item": {"id": pid, "answer": "42"}, "sample": {"output_text": ans},
                         "grade": {"score": float(ok), "status": "ok", "passed": ok, "extracted": ans,
                                   "details": {}}})  # fmt: skip
    return rows


def test_rft_eval_samples_scores_grade_rows(tmp_path):
    correct = {
        "p1": [True, False, False, False],  # c=1
        "p2": [True, True, False, True],  # c=3
        "p3": [False] * 4,  # c=0
    }
    rows = _grade_rows(correct)
    rows[8]["grade"] = {"score": 0.0, "status": "timeout", "passed": False, "extracted": None, "details": {}}
    src = tmp_path / "graded.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = subprocess.run([RFT, "eval", "--samples", str(src), "--k", "1,2,4", "--suite", "mine",
                          "--out", str(tmp_path / "ev")], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "ev" / "results.json").read_text())
    got = {r["metric"]: r for r in doc["results"]}
    want2 = (pass_at_k(4, 1, 2) + pass_at_k(4, 3, 2) + 0) / 3
    assert got["pass@1"]["value"] == pytest.approx((0.25 + 0.75 + 0) / 3)
    assert got["pass@2"]["value"] == pytest.approx(want2)
    assert got["pass@4"]["value"] == pytest.approx(2 / 3)
    assert got["maj@4"]["value"] == pytest.approx(1 / 3)  # p1: "7" wins, p2: "42" wins, p3: "7"
    assert got["grader/timeout_rate"]["value"] == pytest.approx(1 / 12)
    for r in doc["results"]:
        assert r["suite"] == "mine" and r["n_problems"] == 3
        assert r["ci95"][0] <= r["value"] <= r["ci95"][1]
    assert "timeout rate 0.083" in (tmp_path / "ev" / "report.md").read_text()
    assert len((tmp_path / "ev" / "problems.jsonl").read_text().splitlines()) == 3


def test_score_samples_orders_sample_rows_and_checks_k():
    rows = [{"id": "a", "split": "heldout", "sample": i, "passed": i == 1, "reward": float(i == 1),
             "status": "ok", "grade": {"score": float(i == 1), "status": "ok", "passed": i == 1,
                                       "extracted": str(i)}} for i in (1, 0)]  # fmt: skip
    scored = score_samples(rows, [1, 2], suite="s")
    (p,) = scored["problems"]
    assert p["passes"] == [False, True] and p["first_pass"] is False  # sorted by sample index
    with pytest.raises(ValueError, match="lower --k"):
        score_samples(rows, [3])
    with pytest.raises(ValueError, match="no 'id'"):
        score_samples([{"item": {}, "sample": {}, "grade": {}}])


# --------------------------------------------------------------------------------------------- compare


def _synthetic_run(folder: Path, passes: dict[str, list[bool]], model: str) -> Path:
    rows = _grade_rows(passes)
    write_eval(folder, None, score_samples(rows, [1], model=model, suite="toy-v0", split="heldout"))
    return folder


def test_compare_detects_a_clear_improvement_and_refuses_mismatches(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"p{i}" for i in range(60)]
    a = _synthetic_run(tmp_path / "a", {i: list(rng.random(4) < 0.3) for i in ids}, "base")
    b = _synthetic_run(tmp_path / "b", {i: list(rng.random(4) < 0.8) for i in ids}, "tuned")
    (c,) = compare_runs(a, b, tmp_path / "cmp")["comparisons"]
    assert c["verdict"].startswith("B is better than A on toy-v0 heldout: +0.")
    assert c["ci95"][0] > 0 and c["mcnemar"]["p_value"] < 0.01
    assert (tmp_path / "cmp" / "compare.md").is_file()
    (c,) = compare_runs(b, a)["comparisons"]
    assert c["verdict"].startswith("B is worse than A")
    other = _synthetic_run(tmp_path / "o", {i: [True] for i in ids[:30]}, "x")
    with pytest.raises(ValueError, match="different problems"):
        compare_runs(a, other)
    with pytest.raises(ValueError, match="not an evaluation folder"):
        compare_runs(a, tmp_path)


# ------------------------------------------------------------------------------------- end to end, tiny


def test_fewshot_prompts_come_from_train():
    from rft.envs import get_suite, suite_path

    suite = get_suite(suite_path("rft/arithmetic-v0"))
    shots = fewshot_messages(suite, 2, seed=0)
    assert [m["role"] for m in shots] == ["user", "assistant"] * 2
    train_q = {it["question"] for it in suite.items("train")}
    assert all(m["content"] in train_q for m in shots[::2]) and "\\boxed{" in shots[1]["content"]
    assert fewshot_messages(suite, 2, seed=0) == shots


def test_rft_eval_and_compare_end_to_end(tmp_path, tiny_model):
    from rft.eval.evaluate import evaluate_suite

    args = ["--model", str(tiny_model), "--suite", "rft/arithmetic-v0", "--limit", "8", "--n", "4",
            "--k", "1,2", "--max-new-tokens", "8", "--workers", "0"]  # fmt: skip
    res = subprocess.run([RFT, "eval", *args, "--out", str(tmp_path / "a")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "a" / "results.json").read_text())
    metrics = {r["metric"] for r in doc["results"]}
    assert {"pass@1", "pass@2", "maj@2", "mean@n", "grader/timeout_rate", "grader/error_rate"} <= metrics
    for r in doc["results"]:
        assert set(r) == {"model", "suite", "split", "metric", "value", "ci95", "n_problems"}
        assert (r["model"], r["suite"], r["split"], r["n_problems"]) == (
            str(tiny_model),
            "arithmetic-v0",
            "heldout",
            8,
        )
        assert isinstance(r["value"], float) and len(r["ci95"]) == 2
    assert len((tmp_path / "a" / "samples.jsonl").read_text().splitlines()) == 32
    assert "| pass@1 |" in (tmp_path / "a" / "report.md").read_text()
    if importlib.util.find_spec("matplotlib") is not None:
        assert list((tmp_path / "a").glob("*.png"))
    # the same model again, another seed and two few-shot examples in the prompt: no significant difference
    evaluate_suite(str(tiny_model), "rft/arithmetic-v0", tmp_path / "b", n=4, ks=(1, 2), limit=8, fewshot=2,
                   seed=1, max_new_tokens=8, grader_workers=0)  # fmt: skip
    assert load_eval(tmp_path / "b")["problems"][0]["n"] == 4
    first = json.loads((tmp_path / "b" / "samples.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in first["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    res = subprocess.run([RFT, "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "no significant difference on arithmetic-v0 heldout" in res.stdout
    assert json.loads((tmp_path / "c" / "compare.json").read_text())["comparisons"][0]["n_problems"] == 8


def test_without_matplotlib_plots_are_skipped_with_a_note(tmp_path, monkeypatch):
    import rft.eval.evaluate

    monkeypatch.setattr(rft.eval.evaluate, "pyplot", lambda: None)
    _synthetic_run(tmp_path / "a", {"p1": [True, False]}, "m")
    assert "Plots skipped: matplotlib is not installed" in (tmp_path / "a" / "report.md").read_text()
    assert not list((tmp_path / "a").glob("*.png"))


# ------------------------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": "test"}, "split must be train or heldout"),
        ({"n": 0}, "n (samples per problem) must be >= 1"),
        ({"n": 2, "ks": (1, 4)}, "every k in 1..n"),
        ({"ks": ()}, "every k in 1..n"),
        ({"limit": 0}, "limit must be >= 1"),
        ({"n": 4, "ks": (1, 4), "temperature": 0.0}, "temperature 0 (greedy) gives 4 identical samples"),
        ({"temperature": -1.0}, "temperature must be >= 0"),
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"fewshot": 2, "split": "train"}, "evaluate split heldout"),
        ({"fewshot": -1}, "fewshot must be >= 0"),
        ({"engine": "tgi"}, "unknown engine 'tgi'; use hf, vllm or openai"),
        ({"batch_prompts": 0}, "batch_prompts must be >= 1"),
        ({"grader_workers": -1}, "grader_workers must be >= 0"),
    ],
)
def test_eval_spec_errors_say_what_to_fix(change, message):
    from rft.eval.spec import EvalSpec

    with pytest.raises(ValueError, match=re.escape(message)):
        EvalSpec(suite="rft/arithmetic-v0", **change)


def test_eval_spec_temperature_and_suite():
    from rft.eval.evaluate import evaluate_suite
    from rft.eval.spec import EvalSpec

    assert EvalSpec().sampling_temperature == 0.0
    assert EvalSpec(n=4, ks=[1, 4]).sampling_temperature == 1.0 and EvalSpec(n=4, ks=[1, 4]).ks == (1, 4)
    assert EvalSpec(temperature=0.7).sampling_temperature == 0.7
    with pytest.raises(ValueError, match="has no suite"):
        evaluate_suite("no-model", EvalSpec(), "unused")
