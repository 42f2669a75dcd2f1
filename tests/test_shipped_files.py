"""The shipped suite files and example recipes say what they do: no description cut by a YAML comment, and
every recipe trains on the suite its comment names (issue 20 items 4 and 5)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rft.config import load_config
from rft.envs import get_suite
from rft.envs.suite import load_suite
from rft.rl.grpo import GRPOConfig

ROOT = Path(__file__).resolve().parents[1]
SUITES = sorted((ROOT / "tasks").glob("*.yaml"))
RECIPES = sorted((ROOT / "examples" / "recipes").glob("*.yaml"))
PIPELINES = sorted((ROOT / "examples" / "pipelines").glob("*.yaml"))
PLAIN = re.compile(r"^([A-Za-z_]\w*):[ \t]+([^\s\"'{\[|>&*!#].*)$")  # a top-level key with a plain scalar


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_no_plain_scalar_is_cut_by_a_comment(path):
    """In a plain YAML scalar, ' #' starts a comment: `description: ... after ####.` loses its end."""
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        m = PLAIN.match(line)
        if m is not None and " #" in m.group(2):
            loaded = yaml.safe_load(line)[m.group(1)]
            assert "#" in str(loaded), (
                f"{path.name} line {n}: {m.group(1)} is cut at ' #' (quote it): {line!r}"
            )


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_description_survives_loading(path):
    raw = next(line for line in path.read_text().splitlines() if line.startswith("description:"))
    description = load_suite(path).description
    assert description.endswith("."), f"{path.name}: description ends mid-sentence: {description!r}"
    assert description in raw.replace('\\"', '"'), f"{path.name}: {description!r} is not all of {raw!r}"


def test_gsm8k_description_keeps_its_end():
    assert load_suite(ROOT / "tasks" / "gsm8k-v0.yaml").description.endswith("the number after ####.")


def _header(path: Path) -> str:
    """The comment lines at the top of a file."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# "))
    return " ".join(lines).lower()


def _task_words(suite_id: str) -> list[str]:
    """`rft/addition-v0` -> ["addition"]; `rft/word-arithmetic-v0` -> ["word", "arithmetic"]."""
    return re.sub(r"-v\d+$", "", suite_id.split("/")[-1]).split("-")


@pytest.mark.parametrize("path", RECIPES + PIPELINES, ids=lambda p: p.name)
def test_every_example_trains_on_the_suite_its_comment_names(path):
    suite = yaml.safe_load(path.read_text())["suite"]
    get_suite(suite)  # registered
    header = _header(path)
    assert header, f"{path.name} has no comment saying what it trains"
    missing = [w for w in _task_words(suite) if w not in header]
    assert not missing, f"{path.name} trains on {suite} but its comment does not name it: {header!r}"


def test_tiny_addition_recipe_trains_on_two_digit_addition():
    """Its comment says 2-digit addition and the demo's SFT model: the suite must be that one, so the
    demo's model gets reward on it (it was rft/arithmetic-v0: 3 operands, + - *, reward 0.00)."""
    recipe = ROOT / "examples" / "recipes" / "grpo-tiny-addition.yaml"
    assert "2-digit addition" in _header(recipe)
    cfg = load_config(GRPOConfig, recipe)
    demo = yaml.safe_load((ROOT / "rft" / "app" / "pipelines" / "demo.yaml").read_text())
    assert cfg.suite == demo["suite"] == "rft/addition-v0"
    suite = get_suite(cfg.suite)
    grader = suite.load_grader()
    items = suite.items("train")[:200]
    for item in items:
        assert re.fullmatch(r"What is \d{1,2} \+ \d{1,2}\?", suite.messages(item)[-1]["content"]), item
        assert grader.grade(suite.solution_text(item) or "", item).passed, (
            item
        )  # the SFT answer format earns reward
