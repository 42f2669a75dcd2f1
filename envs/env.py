"""`SuiteEnv`: one Gymnasium environment per task suite: single-turn, feedback or tool episodes.

The observation is the conversation so far as a JSON string (``json.loads(obs)`` gives
``[{"role", "content"}]``): Gymnasium spaces need a type, and an ASCII JSON string fits
``Text(charset=string.printable)``. The action is the model's next message (any `str`; the action space is
nominal). A single-turn episode ends after one step; feedback and tool episodes (`rft.envs.episode`)
append the model's message and the environment's reply and go on until graded.
"""

from __future__ import annotations

import copy
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
from .tools.base import Tool, ToolOutput
from .tools.calls import ToolCallsJob, plan_calls
from .tools.parse import detect_tool_format, parse_tool_calls

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

    ``tools`` episodes: `tool_schemas` (also in the reset info as ``tools``) are what the chat template
    renders with the prompt (``apply_chat_template(messages, tools=env.tool_schemas)``); an assistant message
    with calls keeps them structured (``tool_calls``, OpenAI's shape with dict arguments) beside its text,
    each result is a ``tool`` message with ``tool_call_id`` and ``name``, and every step's info carries
    ``tool_calls`` (that turn's) and ``tool_stats`` (the episode's counts: calls, errors, parse_failures).
    Tools are opened at `reset` and closed when the episode ends, at the next `reset`, and at `close`.

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
        self._messages: list[dict[str, Any]] = []
        self._split = split
        self._turn = 0
        self._done = False
        self._pending: GradeJob | ToolJob | ToolCallsJob | None = None
        self.tool_format = self.episode.tool_format
        self.tool_schemas: list[dict[str, Any]] = []
        self._tools: dict[str, Tool] = {}
        self._stats = {"calls": 0, "errors": 0, "parse_failures": 0}
        if self.episode.type == "tools":
            specs = [spec for p in self.episode.providers for spec in p.specs()]
            names = [spec.name for spec in specs]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise SuiteError(f"{self.suite.id}: two tools are named {dupes}; rename one (name: ...)")
            self.tool_schemas = [spec.schema() for spec in specs]

    def items(self, split: str) -> list[dict[str, Any]]:
        return self.suite.items(split)

    @property
    def done(self) -> bool:
        """True before the first reset and after the episode ended: `step` needs a `reset` first."""
        return self._item is None or self._done

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation so far (a copy)."""
        return copy.deepcopy(self._messages)

    def use_chat_template(self, chat_template: str | None) -> None:
        """Read tool calls in the syntax `chat_template` renders (``tool_format: auto`` only). A template
        without a known tool format leaves ``auto``: each reply is then read by the markers it holds."""
        if self.episode.tool_format == "auto" and chat_template:
            try:
                self.tool_format = detect_tool_format(chat_template)
            except ValueError:
                self.tool_format = "auto"

    def close(self) -> None:
        self._close_tools()
        super().close()

    def _close_tools(self) -> None:
        tools, self._tools = list(self._tools.values()), {}
        errors = []
        for tool in tools:
            try:
                tool.close()
            except Exception as e:  # close them all, then say which failed
                errors.append(f"{tool.spec.name}: {e!r}")
        if errors:
            raise RuntimeError(f"{self.suite.id}: tools failed to close: {'; '.join(errors)}")

    def _open_tools(self) -> None:
        opened: list[Tool] = []
        try:
            for provider in self.episode.providers:
                opened += provider.open()
        except BaseException:
            for tool in opened:
                tool.close()
            raise
        self._tools = {t.spec.name: t for t in opened}

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
        self._close_tools()
        self._item, self._split = items[index], split
        self._messages = self.suite.messages(self._item)
        self._turn, self._done, self._pending = 0, False, None
        self._stats = {"calls": 0, "errors": 0, "parse_failures": 0}
        obs = self._obs()
        if len(obs) > MAX_OBS_CHARS:
            raise SuiteError(f"{self.suite.id} item {self._item['id']}: prompt over {MAX_OBS_CHARS} chars")
        info = {**self._info(), "index": index}
        if self.episode.type == "tools":
            self._open_tools()
            info["tools"] = copy.deepcopy(self.tool_schemas)
        return obs, info

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
            **({"tool_stats": dict(self._stats)} if self.episode.type == "tools" else {}),
        }

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        return self.finish_step(self.begin_step(action).run())

    def begin_step(self, action: str) -> GradeJob | ToolJob | ToolCallsJob:
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
        if self.episode.type == "tools" and self._turn < self.episode.max_turns:
            parsed = parse_tool_calls(action, self.tool_format)
            if parsed.attempted:
                first = self._stats["calls"] + self._stats["parse_failures"]
                most = 1 if self.tool_format == "llama3" else None  # Llama 3.1's template renders one
                job = plan_calls(parsed, self._tools, first, most)
                # every tool message answers a call of the assistant message (a call that did not parse
                # too, with an empty name), as OpenAI's format and Mistral's template require
                calls = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in job.calls
                    if c.kind != "refused"
                ][:most]
                message: dict[str, Any] = {"role": "assistant", "content": parsed.content}
                if calls:
                    message["tool_calls"] = calls
                self._messages.append(message)
                self._pending = job
                return job
        self._messages.append({"role": "assistant", "content": action})
        code = None
        if self.episode.type == "tool" and self._turn < self.episode.max_turns:
            code = find_tool_call(action, self._tool_rx)
        if code is not None:
            self._pending = ToolJob(code, self.episode)
        else:
            self._pending = GradeJob(self.grader, {"output_text": action}, self._item)
        return self._pending

    def finish_step(
        self, result: Grade | ToolResult | list[ToolOutput]
    ) -> tuple[str, float, bool, bool, dict]:
        """Apply the pending job's result: a `Grade` for a `GradeJob`, a `ToolResult` for a `ToolJob`, the
        calls' `ToolOutput`s for a `ToolCallsJob`."""
        job, self._pending = self._pending, None
        if job is None:
            raise RuntimeError("no step is pending: call begin_step() first")
        info = self._info()
        if isinstance(job, ToolCallsJob):
            result = self._tool_messages(job, result, info)
            if not isinstance(result, Grade):
                return self._obs(), 0.0, False, False, info
        elif isinstance(job, ToolJob):
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
        self._close_tools()
        if result.failed:
            return self._obs(), 0.0, True, False, info
        reward = max(0.0, float(result.score) - ep.turn_penalty * (self._turn - 1))
        truncated = ep.type == "feedback" and not result.passed
        return self._obs(), reward, not truncated, truncated, info

    def _tool_messages(self, job: ToolCallsJob, outputs: Any, info: dict[str, Any]) -> Grade | None:
        """Append one ``tool`` message per call and count them; a tool failure becomes an error Grade."""
        if not isinstance(outputs, list) or len(outputs) != len(job.calls):
            raise TypeError(
                f"a ToolCallsJob's result is a list of {len(job.calls)} ToolOutput, got {outputs!r:.80}"
            )
        turn = []
        for call, out in zip(job.calls, outputs, strict=True):
            if call.kind == "parse":
                self._stats["parse_failures"] += 1
            else:
                self._stats["calls"] += 1
                self._stats["errors"] += bool(out.is_error or out.failure)
            turn.append({"id": call.id, "name": call.name, "arguments": call.arguments, "kind": call.kind,
                         "output": out.content, "is_error": out.is_error, "failure": out.failure, **out.details})  # fmt: skip
            self._messages.append(
                {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": out.content}
            )
        info["tool_calls"], info["tool_stats"] = turn, dict(self._stats)
        failures = [f"{c.name}: {o.failure}" for c, o in zip(job.calls, outputs, strict=True) if o.failure]
        return Grade.error("; ".join(failures)) if failures else None
