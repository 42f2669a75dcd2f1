"""rft.integrations.verl: verl's compute_score over rft graders, and rft suites as verl parquet files."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow writes verl's parquet files")

import rft.envs  # noqa: E402
from rft.integrations import verl  # noqa: E402
from rft.integrations.verl import (  # noqa: E402
    DATA_SOURCE_ALIASES,
    compute_score,
    compute_score_batch,
    make_compute_score,
    suite_rows,
    suite_to_parquet,
)

DATA = rft.envs.data_dir()
KEYS = {"score", "acc", "pred", "grader_status", "grader_failed", "grader_error"}


def needs(name: str) -> Path:
    if DATA is None:
        pytest.skip("the shared data sets are not found (set RFT_DATA to their folder)")
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is missing (set RFT_DATA to the folder of the shared data sets)")
    return path


@pytest.fixture(scope="module")
def parquet_dirs(tmp_path_factory):
    """{suite id: folder}: GSM8K and MATH written as verl parquet files."""
    needs("gsm8k_train.jsonl")
    needs("math_dev.jsonl")
    out = {}
    for env_id in ("rft/gsm8k-v0", "rft/math-v0"):
        folder = tmp_path_factory.mktemp(env_id.split("/")[1])
        paths = suite_to_parquet(env_id, folder)
        assert paths == {"train": folder / "train.parquet", "heldout": folder / "test.parquet"}
        out[env_id] = folder
    return out


def read_rows(folder: Path) -> list[dict]:
    return [
        row for name in ("train", "test") for row in pq.read_table(folder / f"{name}.parquet").to_pylist()
    ]


@pytest.mark.parametrize(("env_id", "gold_field"), [("rft/gsm8k-v0", "answer"), ("rft/math-v0", "solution")])
def test_every_gold_scores_one_and_every_decoy_zero_from_the_parquet_rows(parquet_dirs, env_id, gold_field):
    rows = read_rows(parquet_dirs[env_id])
    suite = rft.envs.get_suite(rft.envs.suite_path(env_id))
    assert len(rows) == len(suite.items())  # both splits: every GSM8K train row, every MATH dev row
    wrong, keyed_quirks = [], set()
    for row in rows:
        item = json.loads(row["extra_info"]["item"])
        gold = item[gold_field]  # GSM8K: the rationale ending "#### n"; MATH: the solution with \boxed{}
        truth = row["reward_model"]["ground_truth"]
        got = compute_score(row["data_source"], gold, truth, row["extra_info"])
        if got != {"score": 1.0, "acc": 1.0, "pred": got["pred"], **OK}:
            if item["id"] in MATH_KEY_QUIRKS and got["score"] == 0.0 and got["grader_status"] == "ok":
                keyed_quirks.add(item["id"])
            else:
                wrong.append((item["id"], got))
        decoy = decoy_of(gold, truth)
        bad = compute_score(row["data_source"], decoy, truth, row["extra_info"])
        if bad["score"] != 0.0 or bad["grader_status"] != "ok":
            wrong.append((item["id"], "decoy", decoy[-60:], bad))
    assert wrong == []
    assert keyed_quirks == (set(MATH_KEY_QUIRKS) if env_id == "rft/math-v0" else set())


# MATH solutions its answer key (the last \boxed{} of the solution) misreads, graded 0 by rft's policy: the
# solution boxes several answers joined by "and"/"or" (both roots; "either point is an acceptable answer") where
# the key keeps the last one, so a model writing the solution's answer gets the hedging rule's 0 (README:
# hedging); or the solution states its answer outside the box it warns about.
MATH_KEY_QUIRKS = {
    "test/algebra/1878.json": "$\\boxed{-2}$ and $\\boxed{1}$; the key: 1",
    "test/intermediate_algebra/25.json": "two foci boxed, either acceptable; the key: (0,0)",
    "test/intermediate_algebra/225.json": "$\\boxed{3}$ or $\\boxed{\\frac{2}{5}}$; the key: 2/5",
    "test/intermediate_algebra/702.json": "two vertices boxed, either acceptable; the key: the second",
    "test/intermediate_algebra/1855.json": "two solutions boxed; the key: the second",
    "test/precalculus/679.json": "two solutions in [0, 2pi) boxed; the key: the second",
    "test/precalculus/1227.json": "$a = \\boxed{-1}$ and $a = \\boxed{2}$; the key: 2",
    "test/prealgebra/177.json": "boxes are an operator here; the solution says '$6$ is our answer', the key: 12",
}


OK = {"grader_status": "ok", "grader_failed": 0.0, "grader_error": ""}


def decoy_of(gold: str, truth: str) -> str:
    """The gold with its final answer changed: GSM8K's "#### n" becomes n + 1; MATH's answer gets "+ 1"
    inside its last \\boxed{} (a different value, or text that no longer matches)."""
    if "####" in gold:
        head, n = gold.rsplit("####", 1)
        return f"{head}#### {int(n.strip().replace(',', '')) + 1}"
    return (
        f"The answer is $\\boxed{{{truth} + 1}}$" if re.fullmatch(r"-?\d+", truth) else "\\boxed{\\pi^{99}}"
    )


def test_math_pairs_labelled_false_score_zero_under_verls_math_data_source():
    path = needs("math_pairs_dev.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    negatives = [r for r in rows if not r["expected"] and r["kind"].startswith(("perturb", "other_answer"))]
    assert len(negatives) > 500
    scores = [
        compute_score("lighteval/MATH", r["sample"]["output_text"], r["item"]["answer"])["score"]
        for r in negatives
    ]
    assert sum(scores) == 0.0


def test_verls_own_gsm8k_layout_grades_through_the_alias():
    # verl's examples/data_preprocess/gsm8k.py: ground truth is the number after "####", extra_info has
    # split, index, answer (the rationale) and question.
    extra = {"split": "train", "index": 0, "answer": "3 + 4 = 7\n#### 7", "question": "What is 3 + 4?"}
    assert DATA_SOURCE_ALIASES["openai/gsm8k"] == "rft/gsm8k-v0"
    assert compute_score("openai/gsm8k", "So it is \\boxed{7}.", "7", extra)["score"] == 1.0
    assert compute_score("openai/gsm8k", "So it is \\boxed{8}.", "7", extra)["score"] == 0.0
    assert compute_score("openai/gsm8k", "So it is \\boxed{7}.", "7")["score"] == 1.0  # no extra_info


def test_parquet_round_trip_equals_the_suites_prompts_and_references(parquet_dirs):
    folder = parquet_dirs["rft/gsm8k-v0"]
    suite = rft.envs.get_suite(rft.envs.suite_path("rft/gsm8k-v0"))
    for split, name in (("train", "train.parquet"), ("heldout", "test.parquet")):
        table = pq.read_table(folder / name)
        assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
        rows = table.to_pylist()
        items = suite.items(split)
        assert len(rows) == len(items) > 0
        for index, (row, item) in enumerate(zip(rows, items, strict=True)):
            assert row["data_source"] == "rft/gsm8k-v0" and row["ability"] == "math"
            assert row["prompt"] == suite.messages(item)
            assert row["reward_model"] == {"style": "rule", "ground_truth": item["reference"]}
            extra = row["extra_info"]
            assert (extra["split"], extra["index"], extra["id"]) == (split, index, item["id"])
            assert extra["reference_is_json"] is False
            assert {**json.loads(extra["item"]), "reference": item["reference"]} == item


def test_suite_rows_take_ids_paths_and_suites_and_limit():
    needs("math_dev.jsonl")
    suite = rft.envs.get_suite(rft.envs.suite_path("rft/math-v0"))
    by_id = suite_rows("rft/math-v0", "heldout", limit=3)
    assert len(by_id) == 3
    assert suite_rows("math-v0", "heldout", limit=3) == by_id
    assert suite_rows(rft.envs.suite_path("math-v0"), "heldout", limit=3) == by_id
    assert suite_rows(suite, "heldout", limit=3) == by_id


def test_a_suite_of_your_own_with_non_string_references(tmp_path):
    (tmp_path / "rows.jsonl").write_text(
        "".join(
            json.dumps({"id": f"r{i}", "q": f"{i} squared?", "a": [i * i, -i * i]}) + "\n" for i in range(40)
        )
    )
    grader = {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.reference[0] }}"}
    spec = {
        "id": "verl-squares-v0",
        "source": {"type": "jsonl", "path": "rows.jsonl"},
        "fields": {"id": "id", "reference": "a"},
        "prompt": {"user": "{{ item.q }}"},
        "grader": grader,
        "split": 0.2,
    }
    (tmp_path / "squares.yaml").write_text(json.dumps(spec))
    paths = suite_to_parquet(tmp_path / "squares.yaml", tmp_path / "out", splits=("train",))
    assert list(paths) == ["train"]
    rows = pq.read_table(paths["train"]).to_pylist()
    row = rows[0]
    assert row["extra_info"]["reference_is_json"] is True
    square = json.loads(row["reward_model"]["ground_truth"])[0]
    with pytest.raises(ValueError, match=r"RFT_TASKS.*make_compute_score"):
        compute_score(row["data_source"], f"\\boxed{{{square}}}", row["reward_model"]["ground_truth"])
    rft.envs.register_suite(tmp_path / "squares.yaml")
    scorer = make_compute_score()  # a fresh cache
    for row in rows:
        square = json.loads(row["reward_model"]["ground_truth"])[0]
        truth, extra = row["reward_model"]["ground_truth"], row["extra_info"]
        assert scorer(row["data_source"], f"\\boxed{{{square}}}", truth, extra)["score"] == 1.0
        assert scorer(row["data_source"], f"\\boxed{{{square + 1}}}", truth, extra)["score"] == 0.0


def test_unknown_data_source_says_what_to_fix():
    with pytest.raises(ValueError) as e:
        compute_score("my/dataset", "\\boxed{1}", "1")
    message = str(e.value)
    assert "'my/dataset'" in message and "suite_to_parquet" in message
    assert "RFT_TASKS" in message and "make_compute_score" in message
    with pytest.raises(ValueError, match=r"splits \['test'\] unknown; choose from \['heldout', 'train'\]"):
        suite_to_parquet("rft/math-v0", "/nonexistent", splits=("test",))


def test_a_bare_spec_grades_every_data_source_with_ground_truth_as_the_reference_field():
    score = make_compute_score(
        {
            "type": "string_check",
            "input": "{{ sample.output_text }}",
            "reference": "{{ item.answer }}",
            "operation": "eq",
        },
        reference_field="answer",
    )
    assert score("anything", "42", "42") == {"score": 1.0, "acc": 1.0, "pred": "42", **OK}
    assert score("anything", "41", "42")["score"] == 0.0


def test_failed_grades_are_visible_and_score_failed_score():
    # The row lacks the field the grader needs: an error grade, never a silent 0.
    score = make_compute_score(
        {
            "type": "string_check",
            "input": "{{ sample.output_text }}",
            "reference": "{{ item.other }}",
            "operation": "eq",
        },
        failed_score=-1.0,
    )
    got = score("x", "42", "42")
    assert got["score"] == -1.0 and got["acc"] == 0.0 and got["grader_failed"] == 1.0
    assert got["grader_status"] == "error" and "other" in got["grader_error"]
    # A grader that runs past its deadline (the python grader kills its own process): a timeout.
    loop = make_compute_score(
        {"type": "python", "source": "def grade(sample, item):\n    while True: pass\n", "timeout": 0.5}
    )
    got = loop("x", "42", "42")
    assert got["grader_status"] == "timeout" and got["score"] == 0.0 and got["grader_failed"] == 1.0
    assert set(got) == KEYS


def test_batch_equals_one_by_one_and_keys_are_the_same_for_every_result():
    sources = ["openai/gsm8k", "lighteval/MATH", "openai/gsm8k", "lighteval/MATH"]
    answers = ["\\boxed{7}", "\\boxed{\\frac12}", "no idea", "$x = 0.5$"]
    truths = ["7", "\\frac{1}{2}", "3", "\\frac{1}{2}"]
    one_by_one = [compute_score(s, a, t) for s, a, t in zip(sources, answers, truths, strict=True)]
    assert [r["score"] for r in one_by_one] == [1.0, 1.0, 0.0, 1.0]
    assert compute_score_batch(sources, answers, truths, [None] * 4) == one_by_one
    assert all(set(r) == KEYS for r in one_by_one)
    with pytest.raises(ValueError, match="one entry per response"):
        compute_score_batch(sources, answers, truths[:2])


def test_batch_through_a_grader_pool_enforces_deadlines():
    from rft.graders.executor import GraderPool

    with GraderPool(workers=1, timeout=5.0) as pool:
        score = make_compute_score(executor=pool)
        got = score.batch(["openai/gsm8k"] * 3, ["\\boxed{7}", "\\boxed{6}", "7"], ["7", "7", "7"])
        assert [r["score"] for r in got] == [1.0, 0.0, 1.0]
        assert score("openai/gsm8k", "\\boxed{7}", "7")["score"] == 1.0


def test_loads_the_way_verl_loads_a_custom_reward_file():
    # verl: importlib.util.spec_from_file_location("custom_module", path); getattr(module, name)
    spec = importlib.util.spec_from_file_location("custom_module", verl.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = module.compute_score
    got = fn(data_source="openai/gsm8k", solution_str="\\boxed{7}", ground_truth="7", extra_info=None)
    assert got["score"] == 1.0
    # newer verl passes its reward-model handles too
    got = fn("openai/gsm8k", "\\boxed{7}", "7", None, reward_router_address=None, reward_model_tokenizer=None)
    assert got["score"] == 1.0
