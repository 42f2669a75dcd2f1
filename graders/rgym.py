"""The ``reasoning_gym`` grader type: score an answer with a reasoning-gym dataset's own ``score_answer``.

    {"type": "reasoning_gym", "input": "{{ sample.output_text }}"}

Items come from a ``source: {type: reasoning_gym, ...}`` suite (`rft.envs`): each is a dataset entry
(``question``, ``answer``, ``metadata``) with a ``reasoning_gym`` field naming the dataset, its config,
seed and size. The grader rebuilds that dataset in the grading process (once per process: cached), takes
the final answer from the model's text the way the ``math`` grader does (``<answer>...</answer>``,
``\\boxed{}``, "the answer is ...": `rft.graders.math.extract_answer`, without the last-number fallback)
and passes it to ``dataset.score_answer(answer, entry)``. Its score (reasoning-gym gives partial credit
for some datasets) is the grade's score; ``passed`` means a full score. An exception in reasoning-gym is
an ``error`` grade, never a 0; a text without an answer is ``no_answer``.

reasoning-gym is an optional dependency: ``pip install 'rft[reasoning-gym]'``.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any, Literal

from .base import Grader, register
from .grade import Grade
from .math.extract import extract_answer
from .template import as_text

__all__ = ["ReasoningGymGrader", "INSTALL_HINT", "import_reasoning_gym", "make_dataset", "ITEM_KEY"]

INSTALL_HINT = "install it with `pip install 'rft[reasoning-gym]'` (or `pip install reasoning-gym`)"
ITEM_KEY = "reasoning_gym"  # the item field naming the dataset: {dataset, config, seed, size, index}


def import_reasoning_gym() -> Any:
    """The `reasoning_gym` package, or an ImportError that says how to install it."""
    try:
        import reasoning_gym
    except ImportError as e:
        raise ImportError(f"reasoning-gym is not installed ({e}); {INSTALL_HINT}") from None
    return reasoning_gym


def make_dataset(name: str, config: dict[str, Any] | None, seed: int, size: int) -> Any:
    """The reasoning-gym dataset `name` built with `config`, `seed` and `size` (cached per process).
    Raises what reasoning-gym raises for a bad name or config (ValueError, TypeError, AssertionError)."""
    return _cached_dataset(name, json.dumps(config or {}, sort_keys=True), seed, size)


@lru_cache(maxsize=128)
def _cached_dataset(name: str, config_json: str, seed: int, size: int) -> Any:
    rg = import_reasoning_gym()
    config = json.loads(config_json)
    if name == "composite" and isinstance(config.get("datasets"), list):  # its specs are dataclasses
        from reasoning_gym.composite import DatasetSpec

        config["datasets"] = [DatasetSpec(**d) if isinstance(d, dict) else d for d in config["datasets"]]
    return rg.create_dataset(name, seed=seed, size=size, **config)


@register("reasoning_gym")
class ReasoningGymGrader(Grader):
    """A reasoning-gym dataset's own ``score_answer`` on the answer in `input` (see the module doc).

    Details: ``dataset``, ``extraction`` (which rule found the answer)."""

    type: Literal["reasoning_gym"] = "reasoning_gym"
    input: str = "{{ sample.output_text }}"

    template_fields = ("input",)

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        item = ctx["item"]
        key = item.get(ITEM_KEY)
        if not isinstance(key, dict) or not isinstance(key.get("dataset"), str):
            return Grade.error(
                f"the item has no {ITEM_KEY!r} field naming its dataset ({{dataset, config, seed, size}}): "
                "grade items of a suite whose source is {type: reasoning_gym, dataset: NAME}"
            )
        text = as_text(self.render("input", ctx))
        found = extract_answer(text, last_number=False)
        if found is None or not found.text.strip():
            return Grade.no_answer(
                "no final answer found (no <answer>...</answer>, \\boxed{} or 'the answer is')"
            )
        dataset = make_dataset(key["dataset"], key.get("config"), int(key["seed"]), int(key["size"]))
        entry = {k: copy.deepcopy(item[k]) for k in ("question", "answer", "metadata") if k in item}
        score = dataset.score_answer(found.text, entry)
        details = {"dataset": key["dataset"], "extraction": found.rule}
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
            return Grade.error(
                f"{key['dataset']}.score_answer returned {score!r}, not a number in [0, 1]", **details
            )
        score = float(score)  # NaN fails the range check above
        return Grade(score, "ok", score == 1.0, found.text, details)
