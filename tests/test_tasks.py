"""Task suites: YAML validation, splits, decontamination, generators, user suites."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from rft.envs import SuiteError, decontamination, find_overlaps, load_suite, split_of
from rft.envs.generators import arithmetic, linear_equations

SUITES = Path(__file__).resolve().parents[1] / "tasks"

GOOD = {
    "id": "toy-v0",
    "source": {"type": "generator", "name": "arithmetic", "size": 200, "seed": 1},
    "fields": {"id": "id", "reference": "answer"},
    "prompt": {"system": "Box it.", "user": "{{ item.question }}"},
    "grader": {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}"},
    "split": 0.25,
}


def spec(**changes):
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    d.update(changes)
    return d


@pytest.mark.parametrize(
    "bad, message",
    [
        (spec(id="Toy"), "versioned"),
        (spec(id="toy"), "versioned"),
        (spec(split=1.5), "held-out fraction"),
        (spec(source={"type": "csv", "path": "x"}), "source.type"),
        (spec(source={"type": "jsonl"}), "needs `path`"),
        (spec(source={"type": "generator", "name": "nope"}), "unknown generator"),
        (spec(source={"type": "generator", "name": "arithmetic", "sizes": 3}), "source: unknown key 'sizes'"),
        (spec(prompt={"user": ""}), "prompt.user"),
        (spec(grader={"type": "nope"}), "grader: unknown grader type"),
        (spec(grader={"type": "math", "input": "{{ model.x }}"}), "grader"),
        (spec(fields={"reference": "answer", "reference_pattern": "####"}), "needs a group"),
        (spec(extra=1), "unknown keys ['extra']"),
        ({"id": "toy-v0"}, "missing keys"),
        (spec(check={"bogus": "x"}), "check: unknown keys"),
    ],
)
def test_validation_errors_say_what_to_fix(bad, message):
    with pytest.raises(SuiteError, match=message.replace("[", r"\[").replace("(", r"\(")):
        suite = load_suite(bad)
        suite.items()  # some errors (generator import) surface when rows are read


def test_row_errors_name_the_field(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"q": "1+1", "ans": "2"}\n')
    s = load_suite(spec(source={"type": "jsonl", "path": "rows.jsonl"}, fields={"reference": "answer"}) | {})
    with pytest.raises(SuiteError, match="does not exist"):
        s.items()
    f = tmp_path / "s.yaml"
    f.write_text(
        "id: rows-v0\nsource: {type: jsonl, path: rows.jsonl}\nfields: {reference: answer}\n"
        "prompt: {user: '{{ item.q }}'}\ngrader: {type: math, input: '{{ sample.output_text }}', "
        "reference: '{{ item.reference }}'}\n"
    )
    with pytest.raises(SuiteError, match=r"no field 'answer'.*fields.reference"):
        load_suite(f).items()  # relative path resolved against the suite's folder: found, but wrong field
    f.write_text(f.read_text().replace("reference: answer}", "reference: ans}"))
    assert load_suite(f).items()[0]["reference"] == "2"


def test_rft_data_expansion(tmp_path, monkeypatch):
    (tmp_path / "d.jsonl").write_text('{"question": "q", "answer": "x\\n#### 1,000"}\n')
    monkeypatch.setenv("RFT_DATA", str(tmp_path))
    s = load_suite(
        spec(
            source={"type": "jsonl", "path": "${RFT_DATA}/d.jsonl"},
            fields={"reference": "answer", "reference_pattern": r"####\s*(.+)$"},
        )
    )
    (item,) = s.items()
    assert item["reference"] == "1,000" and len(item["id"]) == 16


def test_split_is_deterministic_and_disjoint():
    a, b = load_suite(spec()), load_suite(spec())
    train, held = a.items("train"), a.items("heldout")
    assert [i["id"] for i in train] == [i["id"] for i in b.items("train")]
    assert not {i["id"] for i in train} & {i["id"] for i in held}
    assert 190 < len(train) + len(held) <= 200  # a problem drawn twice is one item
    assert 0.15 < len(held) / 200 < 0.35
    assert split_of("abc", 0.0) == "train" and split_of("abc", 0.999999) == "heldout"
    # the split of an id does not depend on the other rows
    assert {split_of(i["id"], 0.25) for i in held} == {"heldout"}


def test_a_benchmark_suite_is_heldout_only_and_refuses_training():
    from rft.envs import SuiteEnv
    from rft.rl.harness import train_items

    bench = load_suite(spec(split=1))
    assert bench.heldout_only and bench.items("train") == [] and len(bench.items("heldout")) > 190
    assert SuiteEnv(bench).reset(seed=0)[1]["split"] == "heldout"  # the env's default split
    with pytest.raises(ValueError, match="held-out benchmark .*rft eval --suite toy-v0"):
        train_items(bench, 0)
    assert not load_suite(spec()).heldout_only


def test_decontamination_finds_planted_duplicates():
    train = ["What is 2 + 2?", "A farmer has 17 sheep and all but nine run away; how many are left now then?"]
    held = [
        "what is 2+2",  # exact after normalising
        "Tell me: a farmer has 17 sheep and all but nine run away; how many are left now then, please",
        "Something else entirely.",
    ]
    found = find_overlaps(train, held, n=8)
    assert {(o.train_index, o.heldout_index, o.kind) for o in found} == {(0, 0, "exact"), (1, 1, "ngram")}


def test_decontamination_of_a_suite_finds_a_planted_duplicate(tmp_path):
    ids = [f"q{k}" for k in range(40)]
    a = next(i for i in ids if split_of(i, 0.3) == "train")
    b = next(i for i in ids if split_of(i, 0.3) == "heldout")
    rows = [{"id": i, "question": f"Question number {i}: what is {k} plus {k}?", "answer": str(2 * k)}
            for k, i in enumerate(ids)]  # fmt: skip
    planted = "A train has 3 cars and each car has 4 wheels; how many wheels are there in all?"
    for row in rows:
        if row["id"] in (a, b):
            row["question"] = planted if row["id"] == a else planted.upper() + "!!"
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = load_suite(spec(source={"type": "jsonl", "path": str(tmp_path / "rows.jsonl")}, split=0.3))
    found = decontamination(suite)
    assert [o.kind for o in found] == ["exact"]
    (o,) = found
    assert (
        suite.items("train")[o.train_index]["id"] == a and suite.items("heldout")[o.heldout_index]["id"] == b
    )


@pytest.mark.parametrize("path", sorted(SUITES.glob("*.yaml")), ids=lambda p: p.stem)
def test_builtin_suites_are_clean(path):
    s = load_suite(path)
    assert s.id == path.stem
    if s.source.type == "generator":
        prompts = lambda split: [s.messages(i)[-1]["content"] for i in s.items(split)]  # noqa: E731
        assert not [o for o in find_overlaps(prompts("train"), prompts("heldout")) if o.kind == "exact"]


def test_generators_are_seeded_and_correct():
    a = list(arithmetic(size=50, seed=3, digits=3, operands=4))
    assert a == list(arithmetic(size=50, seed=3, digits=3, operands=4))
    assert a != list(arithmetic(size=50, seed=4, digits=3, operands=4))
    for row in a:
        nums = [t for t in row["expression"].split() if t.isdigit()]
        assert len(nums) == 4 and all(len(n) == 3 for n in nums)
        assert int(row["answer"]) == eval(row["expression"])  # trusted test input, not model output
    from fractions import Fraction

    for row in linear_equations(size=50, seed=0):
        lhs, c = row["equation"].split(" = ")
        x = Fraction(row["answer"])
        expr = lhs.replace("x", f"*({x})").replace("-*", "-1*")
        expr = "1" + expr if expr.startswith("*") else expr
        assert eval(expr.replace("(", "Fraction('").replace(")", "')")) == int(c)
    with pytest.raises(ValueError, match="operands >= 2"):
        list(arithmetic(size=1, seed=0, operands=1))


def test_user_generator_module_function(tmp_path, monkeypatch):
    (tmp_path / "mygen.py").write_text(
        textwrap.dedent(
            """
            def squares(*, size, seed, start=1):
                for i in range(start, start + size):
                    yield {"id": f"sq{i}", "q": f"What is {i} squared?", "a": str(i * i)}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    s = load_suite(
        spec(
            source={"type": "generator", "name": "mygen:squares", "size": 10, "params": {"start": 3}},
            fields={"id": "id", "reference": "a"},
            prompt={"user": "{{ item.q }}"},
        )
    )
    assert s.items()[0]["reference"] == "9" and s.messages(s.items()[0]) == [
        {"role": "user", "content": "What is 3 squared?"}
    ]
    with pytest.raises(SuiteError, match="cannot be imported"):
        load_suite(spec(source={"type": "generator", "name": "mygen:nope"})).items()
