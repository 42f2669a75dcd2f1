"""Table-driven tests for string_check, regex, format, json_schema and text_similarity, plus templating."""

from __future__ import annotations

import time

import pytest

from rft.graders import Grade, GraderSpecError, TemplateError, load_grader, render

# ---------------------------------------------------------------- templating

CTX = {
    "item": {"answer": "42", "tags": ["a", "b"], "meta": {"n": 3}, "rows": [{"x": 1}], "with space": "ok"},
    "sample": {"output_text": '{"name": "Ada", "n": [1, 2]}'},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{item.answer}}", "42"),
        ("{{ item.answer }}", "42"),
        ("{{ item.tags }}", ["a", "b"]),  # exactly one placeholder: the raw value
        ("tags: {{ item.tags }}", 'tags: ["a", "b"]'),
        ("{{item.meta.n}}", 3),
        ("n={{item.meta.n}}!", "n=3!"),
        ("{{ item.rows[0].x }}", 1),
        ('{{ item["with space"] }}', "ok"),
        ("{{ sample.output_json.name }}", "Ada"),  # parsed from output_text when it is JSON
        ("{{ sample.output_json.n[1] }}", 2),
        ("no placeholders", "no placeholders"),
        (["{{item.answer}}", {"k": "{{item.meta.n}}"}], ["42", {"k": 3}]),
    ],
)
def test_render(template, expected):
    assert render(template, CTX) == expected


@pytest.mark.parametrize(
    ("template", "namespace"),
    [
        ("{{ item.missing }}", "item"),
        ("{{ item.tags[5] }}", "item"),
        ("{{ item.answer.x }}", "item"),
        ("{{ sample.output_json.missing }}", "sample"),
        ("{{ sample.output_tools }}", "sample"),
    ],
)
def test_render_missing_says_whose_data(template, namespace):
    with pytest.raises(TemplateError) as e:
        render(template, CTX)
    assert e.value.namespace == namespace


def test_output_json_from_non_json_text_is_the_models_fault():
    g = load_grader(
        {"type": "string_check", "input": "{{sample.output_json.x}}", "reference": "1", "operation": "eq"}
    )
    grade = g.grade("not json", {})
    assert grade.status == "no_answer" and grade.score == 0.0
    assert g.grade({"output_json": {"x": "1"}}, {}).passed


# ---------------------------------------------------------------- string_check

EQ = {"type": "string_check", "name": "eq", "input": "{{sample.output_text}}", "reference": "{{item.ref}}"}


@pytest.mark.parametrize(
    ("op", "output", "ref", "passed"),
    [
        # true positives
        ("eq", "Paris", "Paris", True),
        ("eq", "", "", True),
        ("ne", "Paris", "London", True),
        ("like", "The capital is Paris.", "Paris", True),
        ("ilike", "THE CAPITAL IS PARIS", "paris", True),
        ("ilike", "straße", "STRASSE", True),  # casefold
        # near misses
        ("eq", "Paris ", "Paris", False),
        ("eq", "paris", "Paris", False),
        ("ne", "Paris", "Paris", False),
        ("like", "The capital is paris.", "Paris", False),
        ("ilike", "Pari s", "paris", False),
        ("eq", "42.0", "42", False),
    ],
)
def test_string_check(op, output, ref, passed):
    g = load_grader({**EQ, "operation": op})
    grade = g.grade(output, {"ref": ref})
    assert (grade.status, grade.passed, grade.score) == ("ok", passed, float(passed))


def test_string_check_row_without_the_field_is_an_error_not_a_zero():
    grade = load_grader({**EQ, "operation": "eq"}).grade("Paris", {"other": 1})
    assert grade.status == "error" and "item.ref" in grade.details["error"]


@pytest.mark.parametrize(
    "spec",
    [
        {**EQ, "operation": "equals"},
        {**EQ, "operation": "eq", "unknown_field": 1},
        {"type": "string_check", "input": "x", "operation": "eq"},
        {**EQ, "operation": "eq", "input": "{{ output_text }}"},
        {"type": "no_such_type"},
        {"name": "missing type"},
    ],
)
def test_bad_specs_fail_at_load(spec):
    with pytest.raises(GraderSpecError):
        load_grader(spec)


def test_spec_file_roundtrip(tmp_path):
    (tmp_path / "g.yaml").write_text(
        "type: string_check\nname: y\ninput: '{{sample.output_text}}'\nreference: a\noperation: eq\n"
    )
    g = load_grader(tmp_path / "g.yaml")
    assert g.grade("a").passed
    assert load_grader(g.spec()) == g
    with pytest.raises(GraderSpecError, match="does not exist"):
        load_grader(tmp_path / "nope.json")


# ---------------------------------------------------------------- regex

ANSWER = {
    "type": "regex",
    "pattern": r"answer is\s*(-?\d+)",
    "group": 1,
    "reference": "{{item.ref}}",
    "flags": "i",
}


@pytest.mark.parametrize(
    ("output", "status", "passed"),
    [
        ("The answer is 42", "ok", True),
        ("the ANSWER IS 42.", "ok", True),
        ("So the answer is   42", "ok", True),
        ("answer is 42\nanswer is 7", "ok", True),  # search: first match
        ("x\nThe answer is 42", "ok", True),
        ("The answer is 421", "ok", False),
        ("The answer is -42", "ok", False),
        ("The answer is 4 2", "ok", False),
        ("42", "no_answer", False),
        ("The answer: 42", "no_answer", False),
    ],
)
def test_regex_reference(output, status, passed):
    grade = load_grader(ANSWER).grade(output, {"ref": "42"})
    assert (grade.status, grade.passed) == (status, passed)


def test_regex_last_and_fullmatch():
    last = load_grader({**ANSWER, "mode": "last"})
    assert last.grade("answer is 7 ... answer is 42", {"ref": "42"}).passed
    assert not last.grade("answer is 42 ... answer is 7", {"ref": "42"}).passed
    full = load_grader({"type": "regex", "pattern": r"\d+", "mode": "fullmatch"})
    assert full.grade("123").passed and full.grade("123 ").status == "no_answer"


def test_regex_catastrophic_backtracking_times_out():
    g = load_grader({"type": "regex", "pattern": r"(a|aa)+$", "match_timeout": 0.3})
    t0 = time.perf_counter()
    grade = g.grade("a" * 40 + "b")
    assert grade.status == "timeout" and time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize(
    "spec", [{"type": "regex", "pattern": "(a"}, {"type": "regex", "pattern": "a", "flags": "q"}]
)
def test_regex_bad_specs(spec):
    with pytest.raises(GraderSpecError):
        load_grader(spec)


# ---------------------------------------------------------------- format

FMT = {"type": "format", "tags": ["think", "answer"]}


@pytest.mark.parametrize(
    ("output", "passed", "answer"),
    [
        ("<think>2+2</think><answer>4</answer>", True, "4"),
        ("<think>2+2</think>\n<answer> 4 </answer>\n", True, "4"),
        ("  <think>a\nb</think>  <answer>x y</answer>", True, "x y"),
        ("<think>t</think><answer><b>4</b></answer>", True, "<b>4</b>"),
        ("<think>[]</think><answer>{}</answer>", True, "{}"),
        ("<answer>4</answer><think>2+2</think>", False, None),
        ("<think>2+2</think>", False, None),
        ("<think>2+2</think><answer></answer>", False, None),
        ("<think>a</think><answer>4</answer> trailing", False, None),
        ("<think>a</think><answer>4</answer><answer>5</answer>", False, None),
        ("<think>a<answer>4</answer></think>", False, None),
    ],
)
def test_format(output, passed, answer):
    grade = load_grader(FMT).grade(output)
    assert (grade.passed, grade.extracted) == (passed, answer)
    assert grade.status == "ok"


def test_format_lenient_allows_text_outside():
    assert load_grader({**FMT, "strict": False}).grade("Sure! <think>a</think><answer>4</answer> Bye").passed


# ---------------------------------------------------------------- json_schema

SCHEMA = {
    "type": "json_schema",
    "schema": {
        "type": "object",
        "required": ["name", "age"],
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "additionalProperties": False,
    },
}


@pytest.mark.parametrize(
    ("output", "status", "passed"),
    [
        ('{"name": "Ada", "age": 36}', "ok", True),
        ('  {"age": 0, "name": ""}  ', "ok", True),
        ('Here it is:\n```json\n{"name": "Ada", "age": 36}\n```', "ok", True),
        ('Result: {"name": "Ada", "age": 36} done', "ok", True),
        ('{"name": "Ada", "age": 36}\n', "ok", True),
        ('{"name": "Ada", "age": -1}', "ok", False),
        ('{"name": "Ada", "age": 36.5}', "ok", False),
        ('{"name": "Ada"}', "ok", False),
        ('{"name": "Ada", "age": 36, "x": 1}', "ok", False),
        ('["Ada", 36]', "ok", False),
        ("name: Ada, age: 36", "no_answer", False),
        ('{"name": "Ada", "age": 36', "no_answer", False),
    ],
)
def test_json_schema(output, status, passed):
    grade = load_grader(SCHEMA).grade(output)
    assert (grade.status, grade.passed) == (status, passed)


def test_json_schema_strict_extraction_and_raw_values():
    strict = load_grader({**SCHEMA, "extract": "strict"})
    assert strict.grade('{"name": "A", "age": 1}').passed
    assert strict.grade('x {"name": "A", "age": 1}').status == "no_answer"
    raw = load_grader({**SCHEMA, "input": "{{ sample.output_json }}"})
    assert raw.grade({"output_json": {"name": "A", "age": 2}}).passed
    with pytest.raises(GraderSpecError, match="not a valid JSON Schema"):
        load_grader({"type": "json_schema", "schema": {"type": 5}})


# ---------------------------------------------------------------- text_similarity

REF = "The quick brown fox jumps over the lazy dog"


@pytest.mark.parametrize(
    ("metric", "threshold"),
    [("fuzzy_match", 0.8), ("bleu", 0.3), ("gleu", 0.3), ("meteor", 0.5)]
    + [(f"rouge_{n}", 0.3) for n in (1, 2, 3, 4, 5)]
    + [("rouge_l", 0.5)],
)
def test_text_similarity_metrics(metric, threshold):
    g = load_grader(
        {
            "type": "text_similarity",
            "input": "{{sample.output_text}}",
            "reference": "{{item.ref}}",
            "evaluation_metric": metric,
            "pass_threshold": threshold,
        }  # fmt: skip
    )
    item = {"ref": REF}
    exact = g.grade(REF, item)
    close = g.grade("The quick brown fox jumps over the lazy cat", item)
    far = g.grade("Completely unrelated words about databases", item)
    assert exact.status == close.status == far.status == "ok"
    assert exact.score == pytest.approx(1.0, abs=0.01) and exact.passed
    assert far.score < close.score < exact.score + 1e-9
    assert 0.0 <= far.score <= 1.0 and not far.passed
    if metric in ("fuzzy_match", "rouge_1", "rouge_l", "meteor"):
        assert close.passed


def test_text_similarity_empty_output_is_no_answer():
    g = load_grader({"type": "text_similarity", "input": "{{sample.output_text}}", "reference": "x",
                     "evaluation_metric": "bleu"})  # fmt: skip
    assert g.grade("   ").status == "no_answer"


def test_cosine_needs_an_embedding_model(monkeypatch):
    monkeypatch.delenv("RFT_EMBEDDING_MODEL", raising=False)
    with pytest.raises(GraderSpecError, match="embedding model"):
        load_grader(
            {
                "type": "text_similarity",
                "input": "{{ sample.output_text }}",
                "reference": "b",
                "evaluation_metric": "cosine",
            }
        )


def test_grade_roundtrip_and_validation():
    g = Grade(0.5, "ok", False, "x", {"a": 1})
    assert Grade.from_dict(g.to_dict()) == g
    with pytest.raises(ValueError):
        Grade(0.0, "wrong")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Grade(float("nan"))
    assert Grade.timeout("t").failed and Grade.error("e").failed and not Grade.no_answer("n").failed
