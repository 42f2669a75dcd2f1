"""`SuiteEnv`: one Gymnasium environment per task suite: single-turn, feedback or tool episodes.

The observation is the conversation so far as a JSON string (``json.loads(obs)`` gives
``[{"role", "content"}]``): Gymnasium spaces need a type, and an ASCII JSON string fits
``Text(charset=string.printable)``. The action is the model's next message (any `str`; the action space is
nominal). A single-turn episode ends after one step; feedback and tool episodes (`rft.envs.episode`)
append the model's message and the environment's reply and go on until graded.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from rft.graders import Grade

from .episode import GradeJob, ToolJob, ToolResult, feedback_text, find_tool_call
from .registry import get_suite
from .suite import SPLITS, Suite, SuiteError

__all__ = ["SuiteEnv", "MAX_OBS_CHARS", "MAX_ACTION_CHARS"]

MAX_OBS_CHARS = 1 << 16
MAX_ACTION_CHARS = 1 << 12


class SuiteEnv(gym.Env[str, str]):
    """Pose one problem of a suite per episode and grade the answers with the suite's grader.

    ``reset(seed=s, options={"split": "train" | "heldout", "index": i})``: the problem is `index` when
    given, else drawn from the env's seeded generator (same seed, same problem).
    ``step(message)`` returns the conversation, the reward (the grade's score when the episode ends, else
    0), `terminated` (graded and done), `truncated` (a feedback episode out of turns), and an info with
    ``turn``, ``reference``, and when graded ``grade`` and ``grade_failed`` (timeout/error: reward 0 that
    trainers must mask), or ``tool`` after a tool call.

    `step` is ``finish_step(begin_step(message).run())``: `begin_step` returns the job (a `GradeJob` or a
    `ToolJob`), which a batch runner (`rft.envs.EnvPool`) may run elsewhere, concurrently.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, suite: str | Path | Suite, split: str | None = None) -> None:
        self.suite = get_suite(suite)
        if split is None:  # a benchmark (split: 1) has only held-out items
            split = "heldout" if self.suite.heldout_only else "train"
        if split not in SPLITS:
            raise SuiteError(f"split must be one of {SPLITS}, got {split!r}")
        self.default_split = split
        self.episode = self.suite.episode
        self.grader = self.suite.load_grader()
        self.observation_space = spaces.Text(MAX_OBS_CHARS, min_length=0, charset=string.printable)
        self.action_space = spaces.Text(MAX_ACTION_CHARS, min_length=0, charset=string.printable)
        self._tool_rx = self.episode.tool_call_pattern()
        self._item: dict[str, Any] | None = None
        self._messages: list[dict[str, str]] = []
        self._split = split
        self._turn = 0
        self._done = False
        self._pending: GradeJob | ToolJob | None = None

    def items(self, split: str) -> list[dict[str, Any]]:
        return self.suite.items(split)

    @property
    def done(self) -> bool:
        """True before the first reset and after the episode ended: `step` needs a `reset` first."""
        return self._item is None or self._done

    @property
    def messages(self) -> list[dict[str, str]]:
        """The conversation so far (a copy)."""
        return [dict(m) for m in self._messages]

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
        self._messages = self.suite.messages(self._item)
        self._turn, self._done, self._pending = 0, False, None
        obs = self._obs()
        if len(obs) > MAX_OBS_CHARS:
            raise SuiteError(f"{self.suite.id} item {self._item['id']}: prompt over {MAX_OBS_CHARS} chars")
        return obs, {**self._info(), "index": index}

    def _obs(self) -> str:
        return json.dumps(self._messages)

    def _info(self) -> dict[str, Any]:
        assert self._item is not None
        return {
            "suite": self.suite.id,
            "id": self._item["id"],
            "split": self._split,
            "turn": self._turn,
            "reference": self._item["reference"],
        }

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        return self.finish_step(self.begin_step(action).run())

    def begin_step(self, action: str) -> GradeJob | ToolJob:
        """Take the model's message; return the job whose result `finish_step` needs."""
        if self._item is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended; call reset()")
        if self._pending is not None:
            raise RuntimeError("a step is pending: call finish_step() with its job's result first")
        if not isinstance(action, str):
            raise TypeError(f"the action is the completion text (str), got {type(action).__name__}")
        self._turn += 1
        self._messages.append({"role": "assistant", "content": action})
        code = None
        if self.episode.type == "tool" and self._turn < self.episode.max_turns:
            code = find_tool_call(action, self._tool_rx)
        if code is not None:
            self._pending = ToolJob(code, self.episode)
        else:
            self._pending = GradeJob(self.grader, {"output_text": action}, self._item)
        return self._pending

    def finish_step(self, result: Grade | ToolResult) -> tuple[str, float, bool, bool, dict]:
        """Apply the pending job's result: a `Grade` for a `GradeJob`, a `ToolResult` for a `ToolJob`."""
        job, self._pending = self._pending, None
        if job is None:
            raise RuntimeError("no step is pending: call begin_step() first")
        info = self._info()
        if isinstance(job, ToolJob):
            if not isinstance(result, ToolResult):
                raise TypeError(f"a ToolJob's result is a ToolResult, got {type(result).__name__}")
            info["tool"] = {"code": job.code, "output": result.output, **result.details}
            if result.error is None:
                self._messages.append({"role": "tool", "content": result.output})
                return self._obs(), 0.0, False, False, info
            result = Grade.error(result.error)  # the environment failed, not the model: masked, not 0
        if not isinstance(result, Grade):
            raise TypeError(f"a GradeJob's result is a Grade, got {type(result).__name__}")
        info["grade"], info["grade_failed"] = result.to_dict(), result.failed
        ep = self.episode
        if ep.type == "feedback" and not result.failed and not result.passed and self._turn < ep.max_turns:
            reply = ep.feedback.replace("{{ feedback }}", feedback_text(result))
            self._messages.append({"role": "user", "content": reply})
            return self._obs(), 0.0, False, False, info
        self._done = True
        if result.failed:
            return self._obs(), 0.0, True, False, info
        reward = max(0.0, float(result.score) - ep.turn_penalty * (self._turn - 1))
        truncated = ep.type == "feedback" and not result.passed
        return self._obs(), reward, not truncated, truncated, info
