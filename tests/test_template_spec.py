"""Templates that can never resolve are load-time `GraderSpecError`s, for every grader type that takes one
(a silent 0 on every row is the failure rft exists to prevent); the shipped specs still load."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rft.envs.suite import load_suite
from rft.graders import GraderSpecError, load_grader, render
from rft.graders.template import placeholders

ROOT = Path(__file__).resolve().parents[1]
RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))

# (template, words the error must contain)
BAD = [
    ("{{ sample.output_text }", "not closed"),
    ("{{ item.answer", "not closed"),
    ("answer: {{ item.answer } please", "not closed"),
    ("{ sample.output_text }}", "no opening"),
    ("sample.output_text }}", "no opening"),
    ("{{ sample.output_txt }}", "'output_text'"),
    ("{{ sample.text }}", "no field 'text'"),
    ("{{ itm.answer }}", "'item.answer'"),
    ("{{ output_text }}", "must start with"),
    ("{{ sample.output_text.answer }}", "never resolve"),
    ("{{ }}", "empty placeholder"),
    ("{{ item.a..b }}", "bad template path"),
]

GOOD = [
    ("{{ sample.output_text }}", ["sample.output_text"]),
    ("{{sample.output_json.x[0]}}", ["sample.output_json.x[0]"]),
    ("\\boxed{{{ item.reference }}}", ["item.reference"]),  # braces of LaTeX around a placeholder
    ("{{ item['a b'] }} and {{ item.free_form_field[2] }}", ["item['a b']", "item.free_form_field[2]"]),
    ("{{ item }} {{ sample }} {{ sample.choices[0] }} {{ sample.output_tools }}", None),
    ("int main() { if (x) { y(); }}", []),  # code with closing braces, no placeholder
    ("std::vector<std::vector<int>> v{{1, 2}, {3}};", []),
    ("f'{item.x}' is a Python f-string, not a placeholder", []),
]


@pytest.mark.parametrize(("template", "words"), BAD)
def test_malformed_or_unresolvable_template_is_refused(template, words):
    with pytest.raises(ValueError, match=None) as e:
        placeholders(template)
    assert words in str(e.value)


@pytest.mark.parametrize(("template", "paths"), GOOD)
def test_valid_templates_pass(template, paths):
    got = placeholders(template)
    if paths is not None:
        assert got == paths


def _specs(template: str) -> dict[str, dict]:
    """One spec per grader type that takes templates, with `template` where the model's output goes."""
    judge_input = [{"role": "user", "content": f"Grade this: {template}"}]
    return {
        "string_check": {"type": "string_check", "input": template, "reference": "{{ item.answer }}",
                         "operation": "eq"},
        "regex": {"type": "regex", "input": template, "pattern": r"\d+", "reference": "4"},
        "format": {"type": "format", "input": template},
        "text_similarity": {"type": "text_similarity", "input": template, "reference": "{{ item.answer }}",
                            "evaluation_metric": "bleu"},
        "json_schema": {"type": "json_schema", "input": template, "schema": {"type": "object"}},
        "math": {"type": "math", "input": template, "reference": "{{ item.answer }}"},
        "code": {"type": "code", "input": template, "tests": "assert f() == 1", "sandbox": "none",
                 "unsafe_local_exec": True},
        "score_model": {"type": "score_model", "model": "m", "input": judge_input},
        "label_model": {"type": "label_model", "model": "m", "input": judge_input, "labels": ["a", "b"],
                        "passing_labels": ["a"]},
        "multi": {"type": "multi", "calculate_output": "s",
                  "graders": {"s": {"type": "string_check", "input": template, "reference": "x",
                                    "operation": "eq"}}},
        "math_fallback": {"type": "math", "reference": "{{ item.answer }}",
                          "fallback": {"type": "score_model", "model": "m", "input": judge_input}},
    }  # fmt: skip


@pytest.mark.parametrize("kind", list(_specs("{{ sample.output_text }}")))
def test_every_grader_type_loads_a_good_template(kind):
    load_grader(_specs("{{ sample.output_text }}")[kind])


@pytest.mark.parametrize("kind", list(_specs("x")))
@pytest.mark.parametrize(
    "template", ["{{ sample.output_text }", "{{ sample.output_txt }}", "{{ itm.answer }}"]
)
def test_every_grader_type_refuses_a_bad_template_at_load(kind, template):
    with pytest.raises(GraderSpecError):
        load_grader(_specs(template)[kind])


def test_bad_reference_template_is_refused_too():
    spec = {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }"}
    with pytest.raises(GraderSpecError, match="reference"):
        load_grader(spec)


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "string_check", "input": "{{ item.answer }}", "reference": "4", "operation": "eq"},
        {"type": "math", "input": "sample.output_text", "reference": "{{ item.answer }}"},
        {
            "type": "score_model",
            "model": "m",
            "input": [{"role": "user", "content": "Is {{ item.q }} easy?"}],
        },
    ],
)
def test_a_grader_that_never_reads_the_sample_is_refused(spec):
    """It would give every row the same grade."""
    with pytest.raises(GraderSpecError, match="model's output"):
        load_grader(spec)


def test_the_missing_brace_was_a_silent_zero_and_is_now_a_load_error():
    """The symptom of issue 20 item 3: the literal text was compared, every row scored 0."""
    template = "{{ sample.output_text }"
    assert render(template, {"item": {}, "sample": {"output_text": "4"}}) == template
    with pytest.raises(GraderSpecError, match="not closed"):
        load_grader({"type": "math", "input": template, "reference": "{{ item.answer }}"})


def test_shipped_specs_and_suites_still_load():
    for path in sorted((ROOT / "examples" / "graders").iterdir()):
        load_grader(path)
    for path in sorted((ROOT / "tasks").glob("*.yaml")):
        load_suite(path)


@pytest.mark.parametrize(
    "template", ["{{ sample.output_text }", "{{ sample.output_txt }}", "{{ itm.answer }}"]
)
def test_validate_prints_one_line_and_exits_2(tmp_path, template):
    spec = tmp_path / "g.json"
    spec.write_text(json.dumps({"type": "math", "input": template, "reference": "{{ item.answer }}"}))
    res = subprocess.run([RFT, "grader", "validate", str(spec)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invalid grader spec: math grader"), res.stderr
    assert "Traceback" not in res.stderr
