"""The ``reasoning_gym`` grader type: score an answer with a reasoning-gym dataset's own ``score_answer``.

    {"type": "reasoning_gym", "input": "{{ sample.output_text }}"}

Items come from a ``source: {type: reasoning_gym, ...}`` suite (`rft.envs`): each is a dataset entry
(``question``, ``answer``, ``metadata``) with a ``reasoning_gym`` field naming the dataset, its config,
seed and size. The grader rebuilds that dataset in the grading process (once per process: cached), takes
the final answer from the model's text the way the ``math`` grader does (``<answer>...</answer>``,
``\\boxed{}``, "the answer is ...": `rft.graders.math.extract_answer`, without the last-number fallback)
and passes it to ``dataset.score_answer(answer, entry)``, the entry rebuilt there too (cached), so that an
item read back from JSON (tuples turned into lists) scores as the dataset's own entry does. Its score
(reasoning-gym gives partial credit for some datasets) is the grade's score; ``passed`` means a full
score. An exception in reasoning-gym is an ``error`` grade, never a 0; a text without an answer is
``no_answer``.

Model text is never run as Python here. Some datasets' ``score_answer`` evaluate the answer (reasoning-gym
0.1.25: ``eval`` in spiral_matrix, string_insertion, binary_matrix, n_queens; sympy's ``parse_expr``, which
calls ``eval``, in countdown, puzzle24, polynomial_multiplication, simple_integration,
intermediate_integration), so an answer like ``open(chr(112), chr(119))`` would run in the grading process.
The grader replaces those modules' ``eval`` with `ast.literal_eval` (list answers still parse), and passes
to the sympy ones only answers written with digits, operators, brackets, single-letter variables and
common function names (others score 0 with ``details["refused"]``). A test runs injection answers
through every dataset, so a newer reasoning-gym that evaluates answers elsewhere fails it.

reasoning-gym is an optional dependency: ``pip install 'rft[reasoning-gym]'``.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import sys
from functools import lru_cache
from typing import Any, Literal

from .base import Grader, register
from .grade import Grade
from .math.extract import extract_answer
from .template import as_text

__all__ = [
    "ReasoningGymGrader", "INSTALL_HINT", "ITEM_KEY", "SYMPY_PARSED", "import_reasoning_gym", "make_dataset",
    "unsafe_for_sympy", "dataset_entry",
]  # fmt: skip

INSTALL_HINT = "install it with `pip install 'rft[reasoning-gym]'` (or `pip install reasoning-gym`)"
ITEM_KEY = "reasoning_gym"  # the item field naming the dataset: {dataset, config, seed, size, index}


# modules whose score_answer calls eval() on the model's answer: their `eval` becomes ast.literal_eval
_EVAL_MODULES = (
    "reasoning_gym.algorithmic.spiral_matrix",
    "reasoning_gym.algorithmic.string_insertion",
    "reasoning_gym.algorithmic.binary_matrix",
    "reasoning_gym.games.n_queens",
)
# datasets whose score_answer gives the answer to sympy's parse_expr (eval underneath): answers screened
SYMPY_PARSED = frozenset(
    {"countdown", "puzzle24", "polynomial_multiplication", "simple_integration", "intermediate_integration"}
)
_MATH_CHARS = re.compile(r"[0-9A-Za-z\s+\-*/^().,=]*")
_NAMES = re.compile(r"[A-Za-z]+")
_ATTRIBUTE = re.compile(r"\.\s*[A-Za-z]")
_FUNCTIONS = frozenset({
    "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp", "log", "ln",
    "sqrt", "pi", "oo", "Abs",
})  # fmt: skip


def _literal_eval(text: Any, *_: Any) -> Any:
    """`eval` for answer-parsing code: Python literals only (lists, strings, numbers), nothing runs."""
    return ast.literal_eval(text)


def import_reasoning_gym() -> Any:
    """The `reasoning_gym` package (its answer-evaluating modules made safe: see the module doc), or an
    ImportError that says how to install it."""
    try:
        import reasoning_gym
    except ImportError as e:
        raise ImportError(f"reasoning-gym is not installed ({e}); {INSTALL_HINT}") from None
    for name in _EVAL_MODULES:
        module = sys.modules.get(name)
        if module is not None:  # absent from another version: the injection test says whether that is safe
            module.eval = _literal_eval  # type: ignore[attr-defined]
    return reasoning_gym


def unsafe_for_sympy(answer: str) -> str | None:
    """Why `answer` must not reach sympy's parse_expr, or None when it is plain arithmetic/algebra."""
    if _MATH_CHARS.fullmatch(answer) is None:
        return "it has characters other than digits, letters, spaces and + - * / ^ ( ) . , ="
    if _ATTRIBUTE.search(answer):
        return "it has an attribute access (a dot before a letter)"
    names = sorted({n for n in _NAMES.findall(answer) if len(n) > 1 and n not in _FUNCTIONS})
    if names:
        return f"it names {names}: only one-letter variables and {' '.join(sorted(_FUNCTIONS))}"
    return None


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


@lru_cache(maxsize=4096)
def _cached_entry(
    name: str, config_json: str, seed: int, size: int, index: int
) -> tuple[dict[str, Any], Any]:
    entry = _cached_dataset(name, config_json, seed, size)[index]
    return entry, _as_json(entry)


def _as_json(entry: dict[str, Any]) -> Any:
    """What is left of an entry's answer and metadata after a JSON round trip (tuples become lists)."""
    return json.loads(json.dumps([entry.get("answer"), entry.get("metadata")], default=str))


def dataset_entry(key: dict[str, Any], item: dict[str, Any]) -> dict[str, Any] | None:
    """The entry to score `item` against: entry ``key["index"]`` of the dataset rebuilt here, with the
    types reasoning-gym gave it (an item read back from JSON has lists where arc_agi's metadata had tuples,
    and its score_answer then fails the right answer), or None when the item is not that entry (its answer
    or metadata differ: made by another reasoning-gym version?). Without an index: the item's own fields."""
    index = key.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        return {k: copy.deepcopy(item[k]) for k in ("question", "answer", "metadata") if k in item}
    config_json = json.dumps(key.get("config") or {}, sort_keys=True)
    entry, as_json = _cached_entry(key["dataset"], config_json, int(key["seed"]), int(key["size"]), index)
    return copy.deepcopy(entry) if _as_json(item) == as_json else None


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
        details = {"dataset": key["dataset"], "extraction": found.rule}
        entry = dataset_entry(key, item)
        if entry is None:
            return Grade.error(
                f"the item's answer or metadata differ from entry {key.get('index')} of {key['dataset']} as "
                f"reasoning-gym {getattr(import_reasoning_gym(), '__version__', '?')} builds it here (seed "
                f"{key['seed']}, config {key.get('config')}): grade with the version that made the items",
                **details,
            )
        metadata = item.get("metadata")
        source = metadata.get("source_dataset") if isinstance(metadata, dict) else None  # composite's part
        if key["dataset"] in SYMPY_PARSED or source in SYMPY_PARSED:
            why = unsafe_for_sympy(found.text)
            if why is not None:
                refused = f"not passed to {source or key['dataset']}.score_answer (sympy evaluates it): {why}"
                return Grade(0.0, "ok", False, found.text, {**details, "refused": refused})
        score = dataset.score_answer(found.text, entry)
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
            return Grade.error(
                f"{key['dataset']}.score_answer returned {score!r}, not a number in [0, 1]", **details
            )
        score = float(score)  # NaN fails the range check above
        return Grade(score, "ok", score == 1.0, found.text, details)
