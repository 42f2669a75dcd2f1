"""`rft --help` and its conventions: flags shown as flags, `--version`, valid `--set` examples per train kind,
`rft config show` generated from the config dataclasses, `task show --limit`, where `compare` writes, the
`stop_at` line, the one-k evaluation plot."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import typing
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from rft.app.cli import app
from rft.app.config_show import KINDS, field_comments
from rft.app.console import progress_bar
from rft.app.pipeline_config import stage_class
from rft.config import load_config
from rft.eval.evaluate import score_samples, write_eval

runner = CliRunner()


def invoke(*args: str):
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def leaf_commands(command=None, path=()):
    command = command or typer.main.get_command(app)
    subs = getattr(command, "commands", None)
    if not subs:
        return [(path, command)]
    return [leaf for name, sub in subs.items() for leaf in leaf_commands(sub, (*path, name))]


@pytest.mark.parametrize("path", [p for p, _ in leaf_commands()], ids=" ".join)
def test_help_shows_flags_as_flags(path):
    text = invoke(*path, "--help")
    assert "<bool>" not in text and "<list[" not in text  # a flag takes no value; --set takes KEY=VALUE
    command = dict(leaf_commands())[path]
    for param in command.params:
        if getattr(param, "is_flag", False):
            shown = [line for line in text.splitlines() if line.strip().startswith(param.opts[0])]
            assert shown and not re.search(rf"{re.escape(param.opts[0])}\s+<", shown[0]), shown


def test_version():
    res = subprocess.run([sys.executable, "-m", "rft", "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == f"rft {version('rft')}"
    assert "--version" in invoke("--help") and "--debug" in invoke("--help")


@pytest.mark.parametrize("kind", KINDS)
def test_each_train_help_example_is_a_valid_override_of_that_kind(kind):
    text = " ".join(invoke("train", kind, "--help").split())
    examples = re.findall(r"--set ([a-z_.]+=\S+)", text)
    assert len(examples) >= 2, text
    cfg = load_config(stage_class(kind), None, ["model=m", "suite=s", "samples=x.jsonl"][: 3 if kind == "dpo" else 2]
                      + examples)  # fmt: skip
    for ex in examples:
        key, value = ex.split("=", 1)
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert str(node) == value or float(node) == float(value)
    assert f"rft config show {kind}" in text


def _dotted_fields(cls: type, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _dotted_fields(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


@pytest.mark.parametrize("kind", KINDS)
def test_config_show_lists_every_field_with_its_default_and_comment(kind):
    text = invoke("config", "show", kind)
    shown = {line.split(":", 1)[0] for line in text.splitlines() if not line.startswith("#")}
    cls = stage_class(kind)
    assert set(_dotted_fields(cls)) <= shown
    lines = {line.split(":", 1)[0]: line for line in text.splitlines()}
    assert lines["model"].startswith("model: (required)")
    assert lines["out"].split("#")[0].split(":", 1)[1].strip() == cls.__dataclass_fields__["out"].default
    for name, comment in field_comments(cls).items():
        if name in lines:
            assert comment in lines[name]


def test_field_comments_read_the_source():
    from rft.rl.grpo import GRPOConfig, LossConfig
    from rft.sft_dpo.stage import StageConfig

    assert field_comments(LossConfig)["eps_high"].startswith("None: clip 0.28 (clip-higher, DAPO)")
    assert field_comments(GRPOConfig)["max_grad_norm"] == "0 = no clipping"  # from the base class
    assert field_comments(StageConfig)["stop_at"].endswith("the steps are then a budget")  # carried on a line
    assert "lr" not in field_comments(LossConfig)


def test_task_show_limit_and_the_old_n():
    text = invoke("task", "show", "addition-v0", "--limit", "2")
    assert text.count("reference:") == 2
    assert invoke("task", "show", "addition-v0", "--n", "1").count("reference:") == 1
    help_text = invoke("task", "show", "--help")
    assert "--limit" in help_text and "--n " not in help_text


def _eval_folder(folder: Path, ks: list[int], n: int) -> Path:
    rows = [{"item": {"id": f"p{i}", "answer": "42"}, "sample": {"output_text": "42"},
             "grade": {"score": float(ok), "status": "ok", "passed": ok, "extracted": "42", "details": {}}}
            for i in range(6) for ok in [(i + j) % 2 == 0 for j in range(n)]]  # fmt: skip
    write_eval(folder, None, score_samples(rows, ks, model="m", suite="toy-v0", split="heldout"))
    return folder


def test_compare_says_where_it_wrote(tmp_path):
    a, b = _eval_folder(tmp_path / "a", [1], 1), _eval_folder(tmp_path / "b", [1], 1)
    text = " ".join(invoke("compare", str(a), str(b)).split())
    assert f"wrote {b / 'compare' / 'compare.md'}" in text
    assert (b / "compare" / "compare.md").is_file()
    assert "B/compare" in " ".join(invoke("compare", "--help").split())


def test_one_k_plots_bars_not_a_one_point_curve(tmp_path):
    one = _eval_folder(tmp_path / "one", [1], 1)
    assert [p.name for p in one.glob("*.png")] == ["scores_toy-v0_heldout.png"]
    assert "scores_toy-v0_heldout.png" in (one / "report.md").read_text()
    many = _eval_folder(tmp_path / "many", [1, 2, 4], 4)
    assert [p.name for p in many.glob("*.png")] == ["pass_at_k_toy-v0_heldout.png"]


def test_the_bar_says_when_stop_at_ended_training():
    console = Console(record=True, width=200)
    with progress_bar(console, "sft", 600) as tick:
        tick(100, 600, {"eval/accuracy": 0.1})
        tick(250, 600, {"eval/accuracy": 0.31, "stopped_at_step": 250})
    text = console.export_text()
    assert "sft: held-out accuracy 0.310 reached stop_at at step 250; training ends there" in text
