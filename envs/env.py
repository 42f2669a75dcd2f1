"""`SuiteEnv`: one single-turn Gymnasium environment per task suite.

The observation is the chat prompt as a JSON string (``json.loads(obs)`` gives ``[{"role", "content"}]``):
Gymnasium spaces need a type, and an ASCII JSON string fits ``Text(charset=string.printable)``. The action
is the model's completion (any `str`; the action space is nominal). One step ends the episode.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from .suite import SPLITS, Suite, SuiteError, load_suite

__all__ = ["SuiteEnv", "get_suite", "MAX_OBS_CHARS", "MAX_ACTION_CHARS"]

MAX_OBS_CHARS = 1 << 16
MAX_ACTION_CHARS = 1 << 12

_SUITES: dict[str, Suite] = {}


def get_suite(suite: str | Path | Suite) -> Suite:
    """A suite from a path (loaded once per process, so its rows are read once) or as given."""
    if isinstance(suite, Suite):
        return suite
    key = str(Path(suite).resolve())
    if key not in _SUITES:
        _SUITES[key] = load_suite(key)
    return _SUITES[key]


class SuiteEnv(gym.Env[str, str]):
    """Pose one problem of a suite per episode and grade the answer with the suite's grader.

    ``reset(seed=s, options={"split": "train" | "heldout", "index": i})``: the problem is `index` when
    given, else drawn from the env's seeded generator (same seed, same problem).
    ``step(completion)`` returns reward = the grade's score, ``terminated=True``, and ``info["grade"]``,
    ``info["reference"]``, ``info["grade_failed"]`` (timeout/error: reward 0 that trainers must mask).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, suite: str | Path | Suite, split: str = "train") -> None:
        self.suite = get_suite(suite)
        if split not in SPLITS:
            raise SuiteError(f"split must be one of {SPLITS}, got {split!r}")
        self.default_split = split
        self.grader = self.suite.load_grader()
        self.observation_space = spaces.Text(MAX_OBS_CHARS, min_length=0, charset=string.printable)
        self.action_space = spaces.Text(MAX_ACTION_CHARS, min_length=0, charset=string.printable)
        self._item: dict[str, Any] | None = None
        self._obs = ""
        self._split = split

    def items(self, split: str) -> list[dict[str, Any]]:
        return self.suite.items(split)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"split", "index"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: split, index")
        split = options.get("split", self.default_split)
        items = self.suite.items(split)
        if not items:
            raise SuiteError(f"suite {self.suite.id} has no {split!r} items; change its `split` fraction")
        if options.get("index") is not None:
            index = int(options["index"])
            if not 0 <= index < len(items):
                raise IndexError(f"index {index} out of range: split {split!r} has {len(items)} items")
        else:
            index = int(self.np_random.integers(len(items)))
        self._item, self._split = items[index], split
        self._obs = json.dumps(self.suite.messages(self._item))
        if len(self._obs) > MAX_OBS_CHARS:
            raise SuiteError(f"{self.suite.id} item {self._item['id']}: prompt over {MAX_OBS_CHARS} chars")
        return self._obs, self._info(index)

    def _info(self, index: int) -> dict[str, Any]:
        assert self._item is not None
        return {
            "suite": self.suite.id,
            "id": self._item["id"],
            "split": self._split,
            "index": index,
            "reference": self._item["reference"],
        }

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self._item is None:
            raise RuntimeError("call reset() before step()")
        if not isinstance(action, str):
            raise TypeError(f"the action is the completion text (str), got {type(action).__name__}")
        grade = self.grader.grade({"output_text": action}, self._item)
        info = {
            "suite": self.suite.id,
            "id": self._item["id"],
            "split": self._split,
            "reference": self._item["reference"],
            "grade": grade.to_dict(),
            "grade_failed": grade.failed,
        }
        reward = 0.0 if grade.failed else float(grade.score)
        return self._obs, reward, True, False, info
