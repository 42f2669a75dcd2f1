"""The `code` grader: run model-written Python in a sandbox against tests, with verdicts the program
cannot forge.

Three test formats:

- HumanEval: ``"tests": "{{item.test}}"`` (a module defining ``check(candidate)``) with
  ``"entry_point"``; the program is ``prefix`` + the extracted code.
- MBPP: ``"tests": "{{item.test_list}}"`` (assert statements calling the function by name), optional
  ``"setup"`` (run before the asserts).
- stdin/stdout: ``"cases": "{{item.cases}}"``, a list of ``{"input", "output"}``: one run per case, the
  output compared here (``compare``: exact, lines (default: trailing whitespace and blank lines at
  the end ignored), tokens (any whitespace), numeric_lines (LiveCodeBench's check: lines stripped, and
  a line that differs still passes when both are the same numbers, compared as decimals: 3.0 and 3)). ``"language": "cpp"`` grades C++ programs on cases:
  compiled once by g++ in the sandbox (``compiler``: flags and limits), then run per case; see
  `code_cpp` (a program that does not compile scores 0 with the compiler's message in details).

Output: stdin/stdout cases are judged on stdout, so a run that writes more than the output limit
(`Limits.output_bytes`, 1 MiB) is killed and fails its case. Function tests do not read stdout: there
stdout past the limit is counted (``details["stdout_dropped"]``) and thrown away, never a failure.

`score` is the fraction of tests (cases) passed, `passed` whether all did. Which function tests are
judged outside the sandbox, and how, is in `code_harness`. A program that runs past its time limit,
crashes or exits early fails the tests it did not finish (status ``ok``); a timeout on a busy machine
(little CPU, much waiting for one) is retried once, then is status ``timeout``. When the sandbox
cannot run here the grade is status ``error`` with the reason: code never runs unisolated unless the
spec sets ``unsafe_local_exec`` (or the environment ``RFT_UNSAFE_LOCAL_EXEC=1``).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import Field, field_validator

from .base import Grader, register
from .code_cpp import RUN_BINARY, CompilerOptions, binary_stdin, case_limits, compile_cached
from .code_harness import SafeEval, TestPlan, decode_value, harness_program, plan_tests, read_events
from .grade import Grade
from .sandbox import ExecResult, Limits, Sandbox, SandboxError, SandboxUnavailable, shared_sandbox

__all__ = ["CodeGrader", "extract_code"]

_FENCE = re.compile(r"```[ \t]*([^\n`]*)\n(.*?)(?:```|\Z)", re.S)
_TAGS = {
    "python": {"", "python", "py", "python3", "py3", "python 3"},
    "cpp": {"", "cpp", "c++", "cc", "cxx", "c++17", "c++20"},
}
_LANGUAGE_NAMES = {"python": "Python", "cpp": "C++"}
_TAIL = 1000  # characters of stdout/stderr kept in details
_UNAVAILABLE_RETRY_S = 30.0  # after a backend failed to start, how long grades fail fast before retrying


def extract_code(
    text: str, block: Literal["first", "last"] = "last", language: Literal["python", "cpp"] = "python"
) -> tuple[str | None, bool]:
    """The code in a model's answer, and whether it came from a fenced block.

    Reasoning before the last ``</think>`` is dropped. With fenced blocks, the last (or first) one tagged
    with the language (python, py...; cpp, c++...) or untagged is taken; an unterminated fence runs to
    the end of the text. Without fences the whole text is the code (a completion-style answer). None
    when there is no code in that language."""
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    blocks = _FENCE.findall(text)
    if blocks:
        tags = _TAGS[language]
        found = [body for tag, body in blocks if tag.strip().lower() in tags]
        if not found:
            return None, True
        code = found[-1] if block == "last" else found[0]
        return (code if code.strip() else None), True
    return (text if text.strip() else None), False


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except InvalidOperation:
        return None


def _compare(got: str, expected: str, how: str) -> bool:
    got, expected = got.replace("\r\n", "\n"), expected.replace("\r\n", "\n")
    if how == "numeric_lines":
        lines_got = [line.strip() for line in got.strip().split("\n")]
        lines_exp = [line.strip() for line in expected.strip().split("\n")]
        if len(lines_got) != len(lines_exp):
            return False
        for a, b in zip(lines_got, lines_exp, strict=True):
            if a != b and (_decimals(a) is None or _decimals(a) != _decimals(b)):
                return False
        return True
    if how == "exact":
        return got == expected
    if how == "tokens":
        return got.split() == expected.split()
    lines_got = [line.rstrip() for line in got.rstrip().split("\n")]
    lines_exp = [line.rstrip() for line in expected.rstrip().split("\n")]
    return lines_got == lines_exp


_DOWN: dict[tuple[str, str], tuple[float, str]] = {}  # backend key -> (when it failed, why)
_DOWN_LOCK = threading.Lock()


@register("code")
class CodeGrader(Grader):
    """Run the extracted program against `tests` (HumanEval, MBPP) or stdin/stdout `cases` in a sandbox.

    `sandbox` names the backend (auto, the default: the strongest that runs here; local, userns, bwrap,
    docker, remote, sandbox_fusion, none); `sandbox_options` go to it; the backend that ran is
    ``details["sandbox"]``. `run_timeout`
    is the wall-clock limit of one sandbox run (default 10 s, or 90% of `timeout` when that is smaller);
    `timeout` stays the executor's deadline for the whole sample. `language` is ``python`` (default) or
    ``cpp`` (with `cases` only; `compiler` sets g++'s flags and the compile's limits).
    """

    type: Literal["code"] = "code"
    input: str = "{{ sample.output_text }}"
    prefix: str = ""
    tests: str | list[str] | None = None
    entry_point: str | None = None
    setup: str | None = None
    cases: str | list[dict[str, Any]] | None = None
    compare: Literal["exact", "lines", "tokens", "numeric_lines"] = "lines"
    language: Literal["python", "cpp"] = "python"
    compiler: CompilerOptions = Field(default_factory=CompilerOptions)
    code_block: Literal["first", "last"] = "last"
    sandbox: str = "auto"
    sandbox_options: dict[str, Any] = Field(default_factory=dict)
    unsafe_local_exec: bool = False
    run_timeout: float | None = Field(default=None, gt=0)
    memory_mb: int = Field(default=1024, ge=64)

    template_fields = ("input", "prefix", "tests", "entry_point", "setup", "cases")

    @field_validator("sandbox")
    @classmethod
    def _known_sandbox(cls, v: str) -> str:
        from .sandbox import sandbox_names

        if v not in sandbox_names():
            raise ValueError(f"unknown sandbox {v!r}; use one of: {', '.join(sandbox_names())}")
        return v

    def model_post_init(self, _context: Any) -> None:
        super().model_post_init(_context)
        if (self.tests is None) == (self.cases is None):
            raise ValueError('set exactly one of "tests" (HumanEval/MBPP asserts) and "cases" (stdin/stdout)')
        if self.language != "python" and self.cases is None:
            raise ValueError(
                f'language {self.language!r} is graded on stdin/stdout "cases"; function "tests" are Python only'
            )
        if self.sandbox == "none" and not self._unsafe_ok():
            raise ValueError('sandbox "none" runs code unisolated; it needs "unsafe_local_exec": true')

    def _unsafe_ok(self) -> bool:
        return self.unsafe_local_exec or os.environ.get("RFT_UNSAFE_LOCAL_EXEC") == "1"

    def limits(self) -> Limits:
        wall = self.run_timeout
        if wall is None:
            wall = 10.0 if self.timeout is None else min(10.0, 0.9 * self.timeout)
        return Limits(timeout=wall, memory_mb=self.memory_mb)

    # -- the sandbox

    def _box(self) -> tuple[Sandbox, str]:
        key = (self.sandbox, json.dumps(self.sandbox_options, sort_keys=True, default=str))
        with _DOWN_LOCK:
            down = _DOWN.get(key)
        if down is not None and time.monotonic() - down[0] < _UNAVAILABLE_RETRY_S:
            raise SandboxUnavailable(down[1])
        options = dict(self.sandbox_options)
        if self.sandbox == "none":
            options["unsafe"] = True
        box = shared_sandbox(self.sandbox, **options)
        return box, box.name

    def _execute(self, program: str, stdin: str | bytes, limits: Limits) -> tuple[ExecResult, dict[str, Any]]:
        """Run once, again after a timeout that looks like contention; SandboxError when it cannot run."""
        notes: dict[str, Any] = {}
        try:
            box, name = self._box()
            res = box.run(program, stdin, limits)
        except SandboxUnavailable as e:
            key = (self.sandbox, json.dumps(self.sandbox_options, sort_keys=True, default=str))
            with _DOWN_LOCK:
                _DOWN.setdefault(key, (time.monotonic(), str(e)))
            if not self._unsafe_ok():
                raise
            notes["sandbox_fallback"] = (
                f"{self.sandbox} unavailable ({e}); ran unisolated (unsafe_local_exec)"
            )
            box, name = shared_sandbox("none", unsafe=True), "none"
            res = box.run(program, stdin, limits)
        if res.contention(limits.timeout):
            notes["retried"] = 1
            res = box.run(program, stdin, limits)
        notes["sandbox"] = name
        return res, notes

    # -- grading

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        text = self.render("input", ctx)
        if not isinstance(text, str):
            return Grade.no_answer(f"input is {type(text).__name__}, not text")
        code, fenced = extract_code(text, self.code_block, self.language)
        if code is None:
            lang = _LANGUAGE_NAMES[self.language]
            return Grade.no_answer(
                f"no {lang} code in the answer" + (f" (no {lang} code block)" if fenced else "")
            )
        prefix = self.render("prefix", ctx) or ""
        program = (prefix + "\n" + code) if (prefix and fenced) else prefix + code
        try:
            if self.language == "cpp":
                return self._grade_cpp(program, code, self._cases(ctx))
            if self.cases is not None:
                return self._grade_cases(program, code, self._cases(ctx))
            return self._grade_tests(program, code, ctx)
        except SandboxUnavailable as e:
            return Grade.error(f"code grader {self.name!r}: sandbox {self.sandbox!r} is unavailable: {e}")
        except SandboxError as e:
            return Grade.error(f"code grader {self.name!r}: {e}")

    def _cases(self, ctx: dict[str, Any]) -> list[tuple[str, str]]:
        cases = self.render("cases", ctx)
        if isinstance(cases, str):
            cases = json.loads(cases)
        if not isinstance(cases, list) or not cases:
            raise ValueError("cases must be a non-empty list of {input, output}")
        out = []
        for i, c in enumerate(cases):
            if (
                not isinstance(c, dict)
                or not isinstance(c.get("input"), str)
                or not isinstance(c.get("output"), str)
            ):
                raise ValueError(f"case {i} must be {{'input': str, 'output': str}}, got {str(c)[:100]}")
            out.append((c["input"], c["output"]))
        return out

    def _grade_tests(self, program: str, code: str, ctx: dict[str, Any]) -> Grade:
        tests = self.render("tests", ctx)
        if isinstance(tests, str) and tests.lstrip().startswith("["):
            tests = json.loads(tests)
        entry = self.render("entry_point", ctx) if self.entry_point else None
        setup = self.render("setup", ctx) if self.setup else ""
        try:
            plan = plan_tests(tests, entry, setup or "")
        except (SyntaxError, ValueError) as e:
            return Grade.error(f"code grader {self.name!r}: the row's tests cannot be run: {e}")
        limits = replace(self.limits(), stdout_overflow="discard")  # function tests do not read stdout
        source, nonce = harness_program(plan, program)
        res, notes = self._execute(source, "", limits)
        if res.outcome == "timeout" and notes.get("retried") and res.contention(limits.timeout):
            return Grade.timeout("the program timed out twice on a busy machine", **_run_details(res, notes))
        return _judge(plan, res, nonce, code, notes, limits)

    def _grade_cpp(self, source: str, code: str, cases: list[tuple[str, str]]) -> Grade:
        budget_end = None if self.timeout is None else time.monotonic() + 0.9 * self.timeout
        options = self.compiler
        if self.timeout is not None and options.timeout > 0.5 * self.timeout:  # leave time for the cases
            options = options.model_copy(update={"timeout": 0.5 * self.timeout})
        box_key = f"{self.sandbox}:{json.dumps(self.sandbox_options, sort_keys=True, default=str)}"
        compiled = compile_cached(self._execute, source, options, box_key)
        notes = {"compile": compiled.details}
        if compiled.outcome == "busy":
            return Grade.timeout(compiled.message, **notes)
        if compiled.outcome == "error":
            details = {
                "compile_error": compiled.message,
                "passed_cases": 0,
                "total_cases": len(cases),
                **notes,
            }
            return Grade(0.0, "ok", False, code, details)
        binary = compiled.binary
        limits = case_limits(self.limits(), binary)
        inputs = [binary_stdin(binary, stdin) for stdin, _ in cases]
        return self._grade_cases(RUN_BINARY, code, cases, inputs, limits, budget_end, notes)

    def _grade_cases(
        self,
        program: str,
        code: str,
        cases: list[tuple[str, str]],
        inputs: list[bytes] | None = None,
        limits: Limits | None = None,
        budget_end: float | None = None,
        notes: dict[str, Any] | None = None,
    ) -> Grade:
        """Run `program` once per case, its stdin the case's input (or `inputs[i]`), and compare outputs."""
        limits = limits or self.limits()
        notes = notes or {}
        if budget_end is None and self.timeout is not None:
            budget_end = time.monotonic() + 0.9 * self.timeout
        results: list[dict[str, Any]] = []
        last: tuple[ExecResult, dict[str, Any]] | None = None
        for i, (stdin, expected) in enumerate(cases):
            if budget_end is not None and time.monotonic() + limits.timeout > budget_end:
                results.append({"passed": False, "error": "not run: the sample's timeout ran out"})
                continue
            res, run_notes = self._execute(program, stdin if inputs is None else inputs[i], limits)
            if res.outcome == "timeout" and run_notes.get("retried") and res.contention(limits.timeout):
                return Grade.timeout(
                    "the program timed out twice on a busy machine", **_run_details(res, run_notes), **notes
                )
            last = (res, run_notes)
            why = _failure(res, limits)
            got = res.stdout.decode("utf-8", "replace")
            if why is None and not _compare(got, expected, self.compare):
                why = f"wrong answer: got {got[:80]!r}, expected {expected[:80]!r}"
            results.append({"passed": why is None, **({"error": why} if why else {})})
        passed = sum(r["passed"] for r in results)
        details: dict[str, Any] = {
            "cases": results,
            "passed_cases": passed,
            "total_cases": len(results),
            **notes,
        }
        if last is not None:
            details |= _run_details(*last)
        return Grade(passed / len(results), "ok", passed == len(results), code, details)


def _failure(res: ExecResult, limits: Limits) -> str | None:
    """Why a stdin/stdout run failed before its output is compared, or None."""
    if res.outcome == "timeout":
        return f"time limit exceeded ({limits.timeout:g} s)"
    if res.outcome == "cpu_limit":
        return "CPU time limit exceeded"
    if res.outcome == "output_limit":
        return f"output limit exceeded ({limits.output_bytes} bytes)"
    if res.outcome == "signaled":
        return f"killed by signal {res.signal} (a crash, or the memory limit)"
    if res.exit_code != 0:
        last = res.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return f"runtime error (exit code {res.exit_code}): {last[0][:200]}"
    return None


def _run_details(res: ExecResult, notes: dict[str, Any]) -> dict[str, Any]:
    d: dict[str, Any] = {
        **notes,
        "outcome": res.outcome,
        "wall_s": round(res.wall_s, 4),
        "cpu_s": round(res.cpu_s, 4),
    }
    if res.exit_code is not None:
        d["exit_code"] = res.exit_code
    if res.signal is not None:
        d["signal"] = res.signal
    for name in ("stdout", "stderr"):
        data: bytes = getattr(res, name)
        if data:
            d[name] = data[-_TAIL:].decode("utf-8", "replace")
    return d


def _unreported(res: ExecResult, load_error: str | None, limits: Limits, done: bool) -> str:
    if load_error:
        return f"the program failed to load: {load_error}"
    why = _failure(res, limits)
    if why is not None and not why.startswith("runtime error"):
        return why
    if res.outcome == "exited" and not done:
        return f"the program ended (exit code {res.exit_code}) before this test ran"
    return "no result reported for this test"


def _judge(
    plan: TestPlan, res: ExecResult, nonce: str, code: str, notes: dict[str, Any], limits: Limits
) -> Grade:
    v = read_events(res.result, nonce, res.result_truncated)
    assert v.events is not None
    tests: list[dict[str, Any]] = []
    for i, test in enumerate(plan.tests):
        ev = v.events.get(i)
        entry: dict[str, Any] = {"test": test.source[:200], "judged": test.judged}
        if ev is None:
            entry["error"] = _unreported(res, v.load_error, limits, v.done)
        elif ev.get("e") == "fail":
            entry["error"] = f"{ev.get('t')}: {ev.get('m')}"
        elif ev.get("e") == "ok" and test.judged == "inside":
            entry["passed"] = True
        elif ev.get("e") == "values" and test.judged == "outside" and test.expr is not None:
            entry.update(_outside_verdict(test, ev.get("v")))
        else:
            entry["error"] = f"unexpected report {ev.get('e')!r} for this test"
        entry.setdefault("passed", False)
        tests.append(entry)
    passed = sum(t["passed"] for t in tests)
    details: dict[str, Any] = {
        "tests": tests,
        "passed_tests": passed,
        "total_tests": len(tests),
        "harness_complete": v.done,
        **_run_details(res, notes),
    }
    if res.stdout_dropped:
        details["stdout_dropped"] = res.stdout_dropped
    if v.load_error:
        details["load_error"] = v.load_error
    if v.setup_errors:
        details["setup_errors"] = v.setup_errors[:5]
    return Grade(passed / len(tests), "ok", passed == len(tests), code, details)


def _outside_verdict(test: Any, encoded: Any) -> dict[str, Any]:
    """Evaluate the assert here, on the values the sandbox sent back."""
    try:
        if not isinstance(encoded, list) or len(encoded) != test.n_probes:
            raise ValueError("wrong number of values")
        values = [decode_value(x) for x in encoded]
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        return {"passed": False, "error": f"the values sent back are malformed: {e}"}
    try:
        ok = bool(SafeEval(values).run(test.expr))
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError, RecursionError) as e:
        # the assert would have raised in the program too: a failed test
        return {"passed": False, "error": f"{type(e).__name__}: {str(e)[:200]}", "got": _short(values)}
    return {"passed": True} if ok else {"passed": False, "error": "AssertionError", "got": _short(values)}


def _short(values: list[Any]) -> str:
    text = ", ".join(repr(v) for v in values)
    return text if len(text) <= 200 else text[:200] + "..."
