"""The built-in tool providers: ``python_exec`` (a stateless sandboxed Python run per call) and
``function`` (a plain typed Python function of the suite's author, its schema from its signature).

    tools:
      - python_exec: {}                      # {"code": str}; runs under the episode's sandbox and limits
      - function: my_pkg.tools:convert       # schema from `convert`'s annotations and docstring
      - function: {path: my_pkg.tools:add, name: plus}
"""

from __future__ import annotations

import atexit
import importlib
import json
import threading
from collections.abc import Callable
from typing import Any

from rft.graders.sandbox import Limits, Sandbox, SandboxError, get_sandbox

from .base import Tool, ToolOutput, ToolSpec
from .registry import ToolSettings, register_tool_provider
from .schema import check_arguments, function_spec

__all__ = ["PythonExecProvider", "FunctionProvider", "run_python", "resolve_callable"]

_BOXES = threading.local()
_ALL_BOXES: list[Sandbox] = []
_ALL_LOCK = threading.Lock()


def run_python(code: str, settings: ToolSettings) -> ToolOutput:
    """Run `code` in a sandbox (one per thread and setting, made on first use) under the settings' limits.
    stdout (stderr too when the run failed) is the content; a crashed sandbox is a `failure`."""
    try:
        out = _sandbox(settings).run(
            code, b"", Limits(timeout=settings.timeout, memory_mb=settings.memory_mb)
        )
    except SandboxError as e:
        return ToolOutput("", failure=f"the tool sandbox failed: {e}")
    text = out.stdout.decode("utf-8", "replace")
    failed = out.outcome != "exited" or bool(out.exit_code)
    if failed:
        text += out.stderr.decode("utf-8", "replace")[-settings.output_chars :]
    if out.outcome == "timeout":
        text += f"\n[timed out after {settings.timeout:g} s]"
    elif out.outcome in ("cpu_limit", "output_limit", "signaled"):
        text += f"\n[stopped: {out.outcome}]"
    if len(text) > settings.output_chars:
        text = text[: settings.output_chars] + "\n[output cut]"
    details = {"outcome": out.outcome, "exit_code": out.exit_code, "wall_s": round(out.wall_s, 4)}
    return ToolOutput(text, is_error=failed, details=details)


def _sandbox(settings: ToolSettings) -> Sandbox:
    key = (settings.sandbox, repr(sorted(settings.sandbox_options.items())))
    boxes: dict[tuple[str, str], Sandbox] = _BOXES.__dict__.setdefault("boxes", {})
    if key not in boxes:
        boxes[key] = get_sandbox(settings.sandbox, **settings.sandbox_options)
        with _ALL_LOCK:
            _ALL_BOXES.append(boxes[key])
    return boxes[key]


@atexit.register
def _close_boxes() -> None:
    with _ALL_LOCK:
        for box in _ALL_BOXES:
            box.close()
        _ALL_BOXES.clear()


def _options(key: str, options: Any, allowed: set[str]) -> dict[str, Any]:
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise ValueError(f"{key}: options must be a mapping, got {options!r}")
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"{key}: unknown options {sorted(unknown)}; allowed: {sorted(allowed)}")
    return options


class _PythonExec:
    def __init__(self, spec: ToolSpec, settings: ToolSettings) -> None:
        self.spec, self._settings = spec, settings

    def call(self, arguments: dict[str, Any]) -> ToolOutput:
        code = arguments.get("code")
        if not isinstance(code, str):
            return ToolOutput('python_exec takes {"code": "..."} (a string)', is_error=True)
        return run_python(code, self._settings)

    def close(self) -> None:  # stateless: each call is a fresh program
        return None


class PythonExecProvider:
    """``python_exec``: each call runs ``code`` as a fresh Python program in the sandbox; stdout returns."""

    def __init__(self, options: Any, settings: ToolSettings) -> None:
        opts = _options("python_exec", options, {"name", "description"})
        self.settings = settings
        self._spec = ToolSpec(
            str(opts.get("name", "python_exec")),
            str(
                opts.get(
                    "description",
                    "Run a Python program and return what it prints (stdout). Nothing persists between calls; "
                    "print the values you need.",
                )
            ),
            {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "The Python program to run."}},
                "required": ["code"],
            },
        )

    def specs(self) -> list[ToolSpec]:
        return [self._spec]

    def open(self) -> list[Tool]:
        return [_PythonExec(self._spec, self.settings)]


def resolve_callable(path: str) -> Callable[..., Any]:
    """The object named by ``"module:attr"`` (``attr`` may be dotted); errors say what to fix."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError(f"function: give 'module:callable' (e.g. my_pkg.tools:convert), got {path!r}")
    module_name, attr = path.split(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"function {path!r}: cannot import {module_name!r} ({e}); is it on sys.path?") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"function {path!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"function {path!r} is not callable")
    return obj  # type: ignore[no-any-return]


class _Function:
    def __init__(self, spec: ToolSpec, fn: Callable[..., Any], output_chars: int) -> None:
        self.spec, self._fn, self._chars = spec, fn, output_chars

    def call(self, arguments: dict[str, Any]) -> ToolOutput:
        errors = check_arguments(self.spec.parameters, arguments)
        if errors:
            return ToolOutput(f"{self.spec.name}: " + "; ".join(errors), is_error=True)
        try:
            value = self._fn(**arguments)
        except Exception as e:  # the model's arguments made the function fail: shown to it, counted
            return ToolOutput(f"{self.spec.name} raised {type(e).__name__}: {e}", is_error=True)
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > self._chars:
            text = text[: self._chars] + "\n[output cut]"
        return ToolOutput(text)

    def close(self) -> None:
        return None


class FunctionProvider:
    """``function``: a typed Python function, called in this process with the model's checked arguments.
    It is the suite author's code (trusted); the model only chooses its arguments."""

    def __init__(self, options: Any, settings: ToolSettings) -> None:
        if isinstance(options, str):
            options = {"path": options}
        opts = _options("function", options, {"path", "name", "description"})
        if "path" not in opts:
            raise ValueError("function: give the callable as 'module:callable' or {path: 'module:callable'}")
        self.fn = resolve_callable(opts["path"])
        spec = function_spec(self.fn, opts.get("name"))
        if "description" in opts:
            spec = ToolSpec(spec.name, str(opts["description"]), spec.parameters)
        self._spec, self._chars = spec, settings.output_chars

    def specs(self) -> list[ToolSpec]:
        return [self._spec]

    def open(self) -> list[Tool]:
        return [_Function(self._spec, self.fn, self._chars)]


register_tool_provider("python_exec", PythonExecProvider, replace=True)
register_tool_provider("function", FunctionProvider, replace=True)
