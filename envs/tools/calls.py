"""One turn's tool calls as a job: each call checked against its tool's schema, run, and turned into a
``tool`` message; the calls of a turn may run concurrently (`gather_calls`).

A call never raises into the environment. What the model did wrong (a call that did not parse, an unknown
tool, arguments that fail the schema, an error inside the tool) comes back as a `ToolOutput` with
``is_error`` and is shown to the model; a tool that itself broke (``failure``, or an exception out of
`Tool.call`, which the contract forbids) ends the step as an environment failure, masked, never a 0.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from .base import Tool, ToolOutput
from .parse import ParsedReply
from .schema import check_arguments

__all__ = ["PlannedCall", "ToolCallsJob", "plan_calls", "gather_calls", "call_id"]


def call_id(n: int) -> str:
    """The id of an episode's n-th call: 9 alphanumeric characters (Mistral's templates require that)."""
    return f"call{n:05d}"[-9:]


@dataclass(frozen=True)
class PlannedCall:
    """A call about to run (`tool` set) or already answered by an error (`error` set: `kind` says which)."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    tool: Tool | None = None
    error: str | None = None
    kind: str = "call"  # call | parse (did not parse) | unknown (no such tool) | arguments (schema) | refused

    def run(self) -> ToolOutput:
        if self.tool is None or self.error is not None:
            return ToolOutput(
                self.error or f"no tool {self.name!r}", is_error=True, details={"kind": self.kind}
            )
        try:
            return self.tool.call(self.arguments)
        except Exception as e:  # the Tool contract says a call never raises: this is the tool's own fault
            return ToolOutput("", failure=f"tool {self.name!r} raised {type(e).__name__}: {e}")


@dataclass(frozen=True)
class ToolCallsJob:
    """The calls of one model turn, in the order the model wrote them (parse failures last)."""

    calls: tuple[PlannedCall, ...]

    def run(self) -> list[ToolOutput]:
        """Run the calls one after another in this thread (`gather_calls` runs them concurrently)."""
        return [c.run() for c in self.calls]


def plan_calls(
    parsed: ParsedReply, tools: dict[str, Tool], first_id: int, max_calls: int | None = None
) -> ToolCallsJob:
    """The job for a parsed reply: known tools with arguments that pass their schema run; the rest are
    answered with what was wrong. Ids count on from `first_id` (the episode's earlier calls). Calls past
    `max_calls` (Llama 3.1's template renders one per turn) are refused."""
    planned: list[PlannedCall] = []
    n = first_id
    for k, call in enumerate(parsed.calls):
        tool = tools.get(call.name)
        if max_calls is not None and k >= max_calls:
            msg = f"not run: this model's chat template takes {max_calls} tool call(s) per turn; call again"
            planned.append(PlannedCall(call_id(n), call.name, call.arguments, None, msg, "refused"))
        elif tool is None:
            msg = f"unknown tool {call.name!r}; the tools are {sorted(tools)}"
            planned.append(PlannedCall(call_id(n), call.name, call.arguments, None, msg, "unknown"))
        else:
            errors = check_arguments(tool.spec.parameters, call.arguments)
            if errors:
                msg = f"{call.name}: " + "; ".join(errors)
                planned.append(PlannedCall(call_id(n), call.name, call.arguments, None, msg, "arguments"))
            else:
                planned.append(PlannedCall(call_id(n), call.name, call.arguments, tool))
        n += 1
    for err in parsed.errors:
        planned.append(
            PlannedCall(call_id(n), "", {}, None, f"The tool call could not be read: {err}", "parse")
        )
        n += 1
    return ToolCallsJob(tuple(planned))


def gather_calls(job: ToolCallsJob, executor: Executor) -> Future[list[ToolOutput]]:
    """Run `job`'s calls in `executor`: calls to different tools concurrently, calls to the same tool one
    after another in the model's order (a stateful tool sees them as written). One future for all their
    outputs, in order."""
    out: Future[list[ToolOutput]] = Future()
    calls = job.calls
    groups: dict[int, list[int]] = {}  # a tool's calls (a call without a tool is its own group)
    for i, c in enumerate(calls):
        groups.setdefault(id(c.tool) if c.tool is not None else -1 - i, []).append(i)
    results: list[ToolOutput | None] = [None] * len(calls)
    left = [len(groups)]
    lock = threading.Lock()
    if not groups:
        out.set_result([])
        return out

    def run(indices: list[int]) -> None:
        for i in indices:
            results[i] = calls[i].run()

    def finish(f: Future[None]) -> None:
        exc = f.exception() if not f.cancelled() else RuntimeError("the tool run was cancelled")
        with lock:
            if out.done():
                return
            if exc is not None:
                out.set_exception(exc)
                return
            left[0] -= 1
            if left[0] == 0:
                out.set_result([r for r in results if r is not None])

    for indices in groups.values():
        executor.submit(run, indices).add_done_callback(finish)
    return out
