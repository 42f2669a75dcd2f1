"""reasoning-gym as a source of suites: the `reasoning_gym` source and grader, over every dataset it ships."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from rft.envs.check import check_task
from rft.envs.rgym import reasoning_gym_datasets, reasoning_gym_rows
from rft.envs.sources import SourceUnavailable, SuiteError
from rft.envs.suite import Suite, load_suite
from rft.graders import Grade, load_grader
from rft.graders.executor import GraderPool

reasoning_gym = pytest.importorskip("reasoning_gym", reason="pip install 'rft[reasoning-gym]'")
from reasoning_gym.factory import DATASETS  # noqa: E402

RFT = str(Path(sys.executable).with_name("rft"))
GRADER = {"type": "reasoning_gym", "input": "{{ sample.output_text }}"}
COMPOSITE = {"datasets": [{"name": "chain_sum", "weight": 1, "config": {}}, {"name": "spell_backward", "weight": 1, "config": {}}]}  # fmt: skip
# entries without a single reference answer (`answer` is None: score_answer checks a solution's validity);
# where the metadata holds one valid solution, it is the reference
EXAMPLE_ANSWER = {"graph_color": "possible_answer", "propositional_logic": "example_answer",
                  "rubiks_cube": "example_correct_answer"}  # fmt: skip
NO_REFERENCE = {
    "boxnet": "answer is None and no example solution in the metadata (score_answer simulates the moves)",
    "rush_hour": "answer is None and no example solution in the metadata (score_answer simulates the moves)",
}
# upstream score_answer behaviour (reasoning-gym 0.1.25) that a decoy test would otherwise report as ours
DECOY_SCORES_1 = {
    "game_of_life_halting": "score_answer compares bool(answer) with bool(entry['answer']): any text scores 1",
    "puzzle24": "score_answer accepts any expression of four numbers equal to 24, not only the puzzle's numbers",
}
JUNK = "Let me think. <answer>-31415926</answer>"


@cache
def rg_suite(dataset: str, size: int = 3, seed: int = 0) -> Suite:
    config = COMPOSITE if dataset == "composite" else {}
    source = {"type": "reasoning_gym", "dataset": dataset, "config": config, "size": size, "seed": seed}
    return load_suite({"id": "rg-test-v0", "source": source, "fields": {"id": "id", "reference": "answer"},
                       "prompt": {"user": "{{ item.question }}"}, "grader": GRADER})  # fmt: skip


def reference(dataset: str, item: dict) -> str:
    ref = item["answer"]
    if ref is None and dataset in EXAMPLE_ANSWER:
        ref = item["metadata"][EXAMPLE_ANSWER[dataset]]
        ref = ref if isinstance(ref, str) else json.dumps(ref)
    return ref


# ---- the source -------------------------------------------------------------------------------------


def test_rows_are_the_dataset_entries_with_stable_ids_and_split():
    config = {"min_terms": 2, "max_terms": 3, "min_digits": 3}
    rows = reasoning_gym_rows("chain_sum", config, 30, 7)
    ds = reasoning_gym.create_dataset("chain_sum", size=30, seed=7, **config)
    assert len(rows) == 30  # three-digit terms: no repeats in 30
    for i, row in enumerate(rows):
        assert {k: row[k] for k in ("question", "answer", "metadata")} == ds[i]
        assert row["id"] == f"chain_sum/7/{i}"
        assert row["reasoning_gym"] == {
            "dataset": "chain_sum",
            "config": config,
            "seed": 7,
            "size": 30,
            "index": i,
        }
    assert reasoning_gym_rows("chain_sum", config, 30, 7) == rows
    assert [r["question"] for r in reasoning_gym_rows("chain_sum", config, 30, 8)] != [
        r["question"] for r in rows
    ]
    small, large = rg_suite("chain_sum", 40, 1), rg_suite("chain_sum", 80, 1)
    for split in ("train", "heldout"):  # a larger size keeps every earlier item in its split
        ids = {it["id"] for it in small.items(split)}
        assert ids and ids <= {it["id"] for it in large.items(split)}
    assert small.items("train") == rg_suite("chain_sum", 40, 1).items("train")


def test_repeated_problems_are_dropped_so_no_split_holds_another_splits_problem():
    config = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}  # at most 200 problems
    rows = reasoning_gym_rows("chain_sum", config, 400, 0)
    questions = [r["question"] for r in rows]
    assert 100 < len(rows) < 400 and len(set(questions)) == len(rows)
    ds = reasoning_gym.create_dataset("chain_sum", size=400, seed=0, **config)
    assert {ds[i]["question"] for i in range(400)} == set(questions)  # only repeats went
    suite = load_suite({"id": "rg-tiny-v0", "source": {"type": "reasoning_gym", "dataset": "chain_sum",
                        "config": config, "size": 400}, "prompt": {"user": "{{ item.question }}"}, "grader": GRADER})  # fmt: skip
    train = {it["question"] for it in suite.items("train")}
    assert train and not train & {it["question"] for it in suite.items("heldout")}


@pytest.mark.parametrize(
    "source, message",
    [
        ({"dataset": "chain_sun"}, "no dataset 'chain_sun': did you mean chain_sum"),
        ({"dataset": "knights_knave"}, "did you mean knights_knaves"),
        ({"dataset": "chain_sum", "config": {"min_term": 2}}, r"unknown keys \['min_term'\]; chain_sum accepts min_terms"),
        ({"dataset": "chain_sum", "config": {"min_terms": 0}}, "rejected source.config .*min_terms must be positive"),
        ({"dataset": "chain_sum", "config": {"seed": 3}}, r"give \['seed'\] as source.seed"),
    ],
)  # fmt: skip
def test_bad_dataset_or_config_says_what_is_accepted(source, message):
    suite = load_suite({"id": "rg-bad-v0", "source": {"type": "reasoning_gym", **source},
                        "prompt": {"user": "{{ item.question }}"}, "grader": GRADER})  # fmt: skip
    with pytest.raises(SuiteError, match=message):
        suite.items()


@pytest.mark.parametrize(
    "source, message",
    [
        ({}, "needs `dataset`"),
        ({"dataset": "chain_sum", "config": "easy"}, "config of a reasoning_gym source must be a mapping"),
        ({"dataset": "chain_sum", "size": 0}, "size must be an integer >= 1"),
        ({"dataset": "chain_sum", "name": "gsm8k"}, "names its dataset with `dataset`"),
    ],
)
def test_bad_source_spec_is_refused_at_load(source, message):
    with pytest.raises(SuiteError, match=message):
        load_suite({"id": "rg-bad-v0", "source": {"type": "reasoning_gym", **source},
                    "prompt": {"user": "{{ item.question }}"}, "grader": GRADER})  # fmt: skip


def test_missing_package_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # import reasoning_gym raises ImportError
    with pytest.raises(SourceUnavailable, match=r"reasoning-gym is not installed; .*rft\[reasoning-gym\]"):
        reasoning_gym_rows("chain_sum", None, 3, 0)


def test_dataset_listing():
    infos = {i.name: i for i in reasoning_gym_datasets()}
    assert set(infos) == set(DATASETS)
    assert infos["chain_sum"].category == "arithmetic"
    assert infos["chain_sum"].config["max_terms"] == 6 and "seed" not in infos["chain_sum"].config


# ---- the grader -------------------------------------------------------------------------------------


def test_grader_table():
    suite = rg_suite("chain_sum", 10, 3)
    grader = load_grader(GRADER)
    item = suite.items()[0]
    ans = item["answer"]
    other = next(it["answer"] for it in suite.items() if it["answer"] != ans)
    wrong = str(int(ans) + 1)
    positives = [f"<answer>{ans}</answer>", f"<answer>\n {ans} \n</answer>", f"so \\boxed{{{ans}}}.",
                 f"Working... The answer is {ans}.", f"First 3, then 5.\n<answer>{ans}</answer>"]  # fmt: skip
    negatives = [f"<answer>{wrong}</answer>", f"\\boxed{{{other}}}", f"<answer>{-int(ans) or 1}</answer>",
                 "<answer>twelve</answer>", f"\\boxed{{{ans}}} <answer>{wrong}</answer>"]  # fmt: skip
    for text in positives:
        g = grader.grade(text, item)
        assert (g.score, g.status, g.passed, g.extracted) == (1.0, "ok", True, ans), (text, g)
    for text in negatives:
        g = grader.grade(text, item)
        assert g.status == "ok" and not g.passed and g.score < 1.0, (text, g)
    for text in ("", "   "):
        assert grader.grade(text, item).status == "no_answer"
    partial = grader.grade(f"<answer>x{ans}</answer>", item)  # chain_sum's score: len(gold) / len(answer)
    assert (
        partial.status == "ok"
        and not partial.passed
        and partial.score == pytest.approx(len(ans) / (len(ans) + 1))
    )


def test_grader_errors_are_error_grades_never_zero():
    grader = load_grader(GRADER)
    item = rg_suite("prime_factorization").items()[0]
    g = grader.grade("<answer>two times three</answer>", item)  # score_answer raises ValueError on it
    assert g.status == "error" and g.failed and "ValueError" in g.details["error"]
    g = grader.grade("<answer>5</answer>", {"question": "q", "answer": "5"})
    assert g.status == "error" and "reasoning_gym" in g.details["error"]


@pytest.mark.parametrize("dataset", ["arc_agi", "rearc", "chain_sum"])
def test_items_read_back_from_json_grade_as_the_dataset_entries(dataset):
    """arc_agi's metadata holds tuples; after a JSON round trip (a saved sample regraded) its score_answer
    would give the right answer 0.05: the grader scores against the entry it rebuilds."""
    grader = load_grader(GRADER)
    for item in rg_suite(dataset).items():
        saved = json.loads(json.dumps(item))
        assert grader.grade(f"<answer>{item['answer']}</answer>", saved).score == 1.0


def test_item_that_is_not_the_rebuilt_entry_is_an_error():
    grader = load_grader(GRADER)
    item = dict(rg_suite("chain_sum").items()[0])
    item["answer"] = str(int(item["answer"]) + 1)  # as another reasoning-gym version might have made it
    g = grader.grade(f"<answer>{item['answer']}</answer>", item)
    assert g.status == "error" and "differ from entry 0 of chain_sum" in g.details["error"]


INJECTIONS = [
    "__import__('os').system('touch {marker}')",
    "[__import__('os').system('touch {marker}')]",
    "(lambda: open('{marker}', 'w'))()",
    "open(''.join(map(chr, {codes})), 'w')",
    "open(chr({c0}){rest}, chr(119))",  # no quotes, no underscores: sympy's parse_expr runs it
]


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_model_answers_never_run_as_python(dataset, tmp_path):
    grader = load_grader(GRADER)
    item = rg_suite(dataset).items()[0]
    for n, template in enumerate(INJECTIONS):
        marker = str(tmp_path / f"pwn{n}")
        codes = [ord(c) for c in marker]
        rest = "".join(f"+chr({c})" for c in codes[1:])
        answer = template.format(marker=marker, codes=codes, c0=codes[0], rest=rest)
        g = grader.grade(f"<answer>{answer}</answer>", item)
        assert g.status in ("ok", "error"), g
    assert not list(tmp_path.iterdir()), f"{dataset}.score_answer ran the model's answer as code"


def test_sympy_screen_keeps_math_and_refuses_code():
    grader = load_grader(GRADER)
    item = rg_suite("countdown").items()[0]
    g = grader.grade(f"<answer>{item['answer']}</answer>", item)
    assert g.score == 1.0
    g = grader.grade("<answer>exec(chr(49))</answer>", item)
    assert (g.score, g.status) == (0.0, "ok") and "exec" in g.details["refused"]


# ---- every dataset it ships ---------------------------------------------------------------------------


def _params() -> list:
    return [
        pytest.param(
            name, marks=[pytest.mark.skip(reason=NO_REFERENCE[name])] if name in NO_REFERENCE else []
        )
        for name in sorted(DATASETS)
    ]


@pytest.mark.parametrize("dataset", _params())
def test_every_dataset_reference_scores_1_and_decoys_do_not(dataset):
    """Size 3, seed 0: the reference as a model writes it (<answer> and \\boxed{}) scores 1; another item's
    answer does not pass, a junk number scores under 0.5 (reasoning-gym gives some answers partial credit:
    cells of a grid, a substring of the reference, 0.01 for a well-formed answer)."""
    suite = rg_suite(dataset)
    grader = suite.load_grader()
    items = suite.items()
    assert len(items) == 3
    for item in items:
        ref = reference(dataset, item)
        for text in (f"<answer>{ref}</answer>", f"Reasoning first.\nSo the answer is \\boxed{{{ref}}}"):
            g = grader.grade(text, item)
            assert (g.score, g.status, g.passed) == (1.0, "ok", True), (text, g)
        if dataset in DECOY_SCORES_1:
            continue
        g = grader.grade(JUNK, item)
        assert g.status == "ok" and not g.passed and g.score < 0.5, g
        for other in [o["answer"] for o in items if o["answer"] not in (None, item["answer"])][:1]:
            g = grader.grade(f"<answer>{other}</answer>", item)  # partial credit in some: a grid of cells
            assert g.status == "ok" and not g.passed and g.score < 1.0, (other, g)


def test_grading_pool_workers_rebuild_the_datasets():
    """The grader in rft's GradingPool: each worker rebuilds the items' datasets (configs included) and
    gives the grades the grading process gives."""
    grader = load_grader(GRADER)
    cases = []
    for suite in (rg_suite("chain_sum", 6, 2), rg_suite("composite"), rg_suite("knights_knaves"), rg_suite("prime_factorization")):  # fmt: skip
        for item in suite.items()[:3]:
            cases += [(f"<answer>{item['answer']}</answer>", item), ("\\boxed{zz}", item), ("", item)]
    samples, items = [c[0] for c in cases], [c[1] for c in cases]
    with GraderPool(workers=2, timeout=60) as pool:
        pooled = pool.grade(grader, samples, items)
    local = [grader.grade(s, i) for s, i in cases]
    assert [(g.score, g.status) for g in pooled] == [(g.score, g.status) for g in local]
    assert {g.status for g in pooled} == {"ok", "no_answer", "error"}  # prime_factorization raises on junk


def test_grading_runs_under_the_pool_deadline():
    """A worker's first grade imports reasoning-gym (about a second of CPU): past a 0.2 s deadline it is a
    timeout grade, not a hang and not a 0."""
    item = rg_suite("chain_sum").items()[0]
    with GraderPool(workers=1, timeout=0.2) as pool:
        [g] = pool.grade(load_grader(GRADER), [f"<answer>{item['answer']}</answer>"], [item])
    assert isinstance(g, Grade) and g.status == "timeout", g


# ---- the built-in suite, gymnasium and the command line -----------------------------------------------


def test_builtin_suite_checks_and_is_a_gymnasium_env():
    report = check_task("rft/rg-knights-knaves-v0", n=3)
    assert report.ok, [c for c in report.checks if not c.ok]
    env = gym.make("rft/rg-knights-knaves-v0")
    check_env(env.unwrapped, skip_render_check=True)
    _, info = env.reset(seed=5)
    _, reward, terminated, _, step = env.step(f"<answer>{info['reference']}</answer>")
    assert reward == 1.0 and terminated and step["grade"]["details"]["dataset"] == "knights_knaves"


def test_cli_lists_reasoning_gym_datasets():
    env = {"COLUMNS": "200", "PATH": str(Path(sys.executable).parent)}
    res = subprocess.run(
        [RFT, "task", "list", "--reasoning-gym"], capture_output=True, text=True, timeout=120, env=env
    )
    assert res.returncode == 0, res.stderr
    assert f"reasoning-gym: {len(DATASETS)} datasets" in res.stdout
    assert "knights_knaves" in res.stdout and "type: reasoning_gym" in res.stdout
    res = subprocess.run([RFT, "task", "list"], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and "rft task list --reasoning-gym" in res.stdout, res.stderr
