"""Episodes: how many turns a task takes and what the environment says between them.

A suite's ``episode:`` section picks one of three shapes (single-turn is the special case):

- ``single`` (the default): one answer, graded; the episode ends.
- ``feedback``: every answer is graded; a failing one, while turns remain, gets a ``user`` reply that
  says what failed (the failing tests for code, "not correct" otherwise; never the reference) and the
  model answers again. Reward: the last answer's score minus ``turn_penalty`` per extra turn.
- ``tool``: an answer holding ``<python>code</python>`` (the ``tool_tag``) is a tool call: the code runs
  in a sandbox and its output comes back as a ``tool`` message. An answer without a call is graded.
  After ``max_turns - 1`` calls the next answer is graded whatever it holds.
- ``tools``: function calling through the chat template. ``tools:`` lists providers (``python_exec``,
  ``function: module:callable``, and any registered with `rft.envs.tools.register_tool_provider`); their
  schemas are rendered into the prompt by the tokenizer's chat template, the model's calls are parsed in
  its family's syntax (``tool_format``: auto, hermes, llama3, mistral; `rft.envs.tools.parse`), run
  (several per turn, concurrently in a pool) and answered with ``tool`` messages. A turn without a call
  is graded, as in ``tool`` episodes.

``max_turns`` counts the model's turns. The environment turns itself into jobs (`GradeJob`,
`ToolJob`) so that a batch of environments can grade and run tools concurrently (`rft.envs.EnvPool`).
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rft.graders import Grade, Grader, GradingPool
from rft.graders.sandbox import Limits, sandbox_names

from .tools.base import ToolProvider
from .tools.builtin import run_python
from .tools.calls import ToolCallsJob, gather_calls
from .tools.parse import TOOL_FORMATS
from .tools.registry import ToolSettings, make_tool_provider

__all__ = ["Episode", "GradeJob", "ToolJob", "ToolResult", "start_job", "feedback_text", "find_tool_call"]

EPISODE_TYPES = ("single", "feedback", "tool", "tools")
DEFAULT_FEEDBACK = "Your answer is not correct yet.\n{{ feedback }}\nFix it and answer again."
_MAX_FEEDBACK_ITEMS = 3


@dataclass(frozen=True)
class Episode:
    """The shape of one episode; validated so that a bad suite fails when it loads."""

    type: str = "single"
    max_turns: int = 1
    feedback: str = DEFAULT_FEEDBACK  # a `user` message; ``{{ feedback }}`` is what failed
    turn_penalty: float = 0.0  # subtracted from the final score per turn after the first
    tool_tag: str = "python"  # tool calls are <tag>code</tag>
    tool_timeout: float = 5.0  # wall seconds per tool run
    tool_memory_mb: int = 512
    tool_output_chars: int = 2000  # the tool message is cut to this many characters
    sandbox: str = (
        "auto"  # the backend that runs tool code (see rft.graders.sandbox; auto: the strongest here)
    )
    sandbox_options: dict[str, Any] = field(default_factory=dict)
    # `tools` episodes: the provider entries ({python_exec: {}}, {function: "module:callable"}, ...)
    tools: list[Any] = field(default_factory=list)
    tool_format: str = "auto"  # how calls are written: auto (from the chat template), hermes, llama3, mistral
    providers: list[ToolProvider] = field(init=False, repr=False, compare=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.type not in EPISODE_TYPES:
            raise ValueError(f"episode.type must be one of {EPISODE_TYPES}, got {self.type!r}")
        if not isinstance(self.max_turns, int) or self.max_turns < 1:
            raise ValueError(f"episode.max_turns must be an integer >= 1, got {self.max_turns!r}")
        if self.type == "single" and self.max_turns != 1:
            raise ValueError("a single-turn episode has max_turns 1; set episode.type to feedback or tool")
        if self.type != "single" and self.max_turns < 2:
            raise ValueError(f"a {self.type} episode needs max_turns >= 2 (the model's turns)")
        if "{{ feedback }}" not in self.feedback:
            raise ValueError("episode.feedback must contain '{{ feedback }}' (where the failures go)")
        if not 0.0 <= self.turn_penalty <= 1.0:
            raise ValueError(f"episode.turn_penalty must be in [0, 1], got {self.turn_penalty}")
        if not re.fullmatch(r"[A-Za-z_][\w\-]*", self.tool_tag):
            raise ValueError(f"episode.tool_tag must be a tag name such as 'python', got {self.tool_tag!r}")
        if self.tool_timeout <= 0 or self.tool_memory_mb < 64 or self.tool_output_chars < 1:
            raise ValueError("episode.tool_timeout must be > 0, tool_memory_mb >= 64, tool_output_chars >= 1")
        if self.sandbox not in sandbox_names():
            raise ValueError(f"episode.sandbox {self.sandbox!r} unknown; use one of {sandbox_names()}")
        if self.sandbox == "none":
            raise ValueError(
                "episode.sandbox 'none' would run model code unisolated; use auto, local, userns, bwrap or docker"
            )
        if self.tool_format not in TOOL_FORMATS:
            raise ValueError(f"episode.tool_format must be one of {TOOL_FORMATS}, got {self.tool_format!r}")
        if self.type == "tools":
            if not isinstance(self.tools, list) or not self.tools:
                raise ValueError("a tools episode needs episode.tools: a list such as [{python_exec: {}}]")
            providers = [make_tool_provider(entry, self.tool_settings()) for entry in self.tools]
            object.__setattr__(self, "providers", providers)
        elif self.tools:
            raise ValueError(f"episode.tools is for type: tools episodes; this one is {self.type!r}")

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> Episode:
        if spec is None:
            return cls()
        if not isinstance(spec, dict):
            raise ValueError(f"episode must be a mapping, got {type(spec).__name__}")
        allowed = {name for name, f in cls.__dataclass_fields__.items() if f.init}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"episode: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        spec = dict(spec)
        if spec.get("type", "single") != "single":
            spec.setdefault("max_turns", 3)
        return cls(**spec)

    def tool_call_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"<{self.tool_tag}>(.*?)</{self.tool_tag}>", re.S)

    def limits(self) -> Limits:
        return Limits(timeout=self.tool_timeout, memory_mb=self.tool_memory_mb)

    def tool_settings(self) -> ToolSettings:
        """The sandbox and limits the episode's tools run under."""
        return ToolSettings(
            self.sandbox,
            dict(self.sandbox_options),
            self.tool_timeout,
            self.tool_memory_mb,
            self.tool_output_chars,
        )


def find_tool_call(text: str, pattern: re.Pattern[str]) -> str | None:
    """The code of the first tool call in an answer (after any ``</think>``), or None."""
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    m = pattern.search(text)
    return None if m is None else m.group(1).strip("\n")


def feedback_text(grade: Grade) -> str:
    """What failed, in a few lines, from a grade's details: failing tests or cases for code, the load
    error when the program did not load, else a one-line verdict. Never contains the reference answer
    (test sources are shown: they are the task's public tests)."""
    if grade.status == "no_answer":
        return f"No answer was found ({grade.details.get('reason', 'nothing to grade')})."
    d = grade.details
    lines: list[str] = []
    if d.get("load_error"):
        lines.append(f"The code did not load: {str(d['load_error'])[:300]}")
    failing = [t for t in d.get("tests", []) if not t.get("passed")]
    for t in failing[:_MAX_FEEDBACK_ITEMS]:
        got = f" (got {t['got']})" if "got" in t else ""
        lines.append(f"Failed: {t.get('test', '?')}\n  {t.get('error', 'failed')}{got}")
    cases = [c for c in d.get("cases", []) if not c.get("passed")]
    for c in cases[:_MAX_FEEDBACK_ITEMS]:
        lines.append(f"Failed on input {str(c.get('input', ''))[:200]!r}: {c.get('error', 'wrong output')}")
    more = len(failing) + len(cases) - _MAX_FEEDBACK_ITEMS
    if more > 0:
        lines.append(f"... and {more} more failing")
    if d.get("form"):
        lines.append(f"The answer is not in the required form ({d['form']}).")
    if not lines:
        lines.append("The answer is not correct.")
    return "\n".join(lines)


@dataclass(frozen=True)
class GradeJob:
    """The environment wants `sample` graded against `item` (run it, or submit it to a `GraderPool`)."""

    grader: Grader
    sample: dict[str, Any]
    item: dict[str, Any]

    def run(self) -> Grade:
        return self.grader.grade(self.sample, self.item)


@dataclass(frozen=True)
class ToolResult:
    """The tool message's text and what happened; `error` is set when the sandbox itself failed."""

    output: str
    details: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class ToolJob:
    """Run the model's tool code in a sandbox (one sandbox per thread, made on first use)."""

    code: str
    episode: Episode

    def run(self) -> ToolResult:
        out = run_python(self.code, self.episode.tool_settings())
        if out.failure is not None:
            return ToolResult("", {}, out.failure)
        return ToolResult(out.content, out.details)


def start_job(
    job: GradeJob | ToolJob | ToolCallsJob, executor: GradingPool | None, tools: ThreadPoolExecutor
) -> Future[Any]:
    """Start a step's job: tool runs in `tools` (a turn's calls concurrently), a grade in `executor` (None:
    graded now, in this thread). The one dispatch rule of the batch steppers (`EnvPool`, `run_episodes`)."""
    if isinstance(job, ToolCallsJob):
        return gather_calls(job, tools)
    if isinstance(job, ToolJob):
        return tools.submit(job.run)
    if executor is not None:
        return executor.submit(job.grader, job.sample, job.item)
    done: Future[Grade] = Future()
    done.set_result(job.run())  # a grader reports its own failures as a Grade; it does not raise
    return done
