"""Function tests for the `code` grader: plan them from the (trusted) test code, run them in the sandbox,
and judge them where the program cannot reach.

The test code is parsed with `ast`, never run here. Each test statement becomes one of:

- an *outside* test: ``assert <expr>`` where every call to the function under test can be cut out
  (``candidate(...)``, optionally wrapped in list/tuple/sorted/set/len/... ) and the rest of the
  expression only uses literals and a few pure builtins. The sandbox evaluates just those calls and
  sends their values back, encoded as plain data (a builtin subclass is sent as its builtin value, so
  an ``__eq__`` that is always True is lost on the way; anything else that is not plain data fails the
  test). This process evaluates the rest with `SafeEval` (no `eval`). The expected values never enter
  the sandbox, so a program cannot forge these verdicts without computing the right answers.
- an *inside* test: any other assert, or a loop or block holding asserts: run in the sandbox; it
  passes when it raises nothing. A program that deliberately introspects the harness could forge
  these; `details["tests"][i]["judged"]` says which kind each test was.
- setup: other statements, run in order inside the sandbox.

The harness reports over fd 3 (moved to another descriptor before the program loads), one JSON line per
event, each carrying a per-run nonce; a run without the final ``done`` event (``os._exit(0)`` before
the tests, a crash, a timeout) leaves every unreported test failed.
"""

from __future__ import annotations

import ast
import json
import math
import secrets
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "TestPlan",
    "plan_tests",
    "harness_program",
    "decode_value",
    "SafeEval",
    "Verdicts",
    "read_events",
    "evalplus_close",
]

# Pure functions that may wrap a call to the function under test inside the sandbox.
_WRAPPERS = {"list", "tuple", "sorted", "set", "frozenset", "dict", "len", "str", "int", "float", "bool",
             "sum", "min", "max", "abs", "reversed"}  # fmt: skip
_MAX_TEXT = 300  # characters of a test's source or a value's repr kept in details


@dataclass(frozen=True)
class Test:
    source: str  # the original statement, for details
    judged: str  # "outside" or "inside"
    expr: ast.Expression | None = None  # outside: the assert's test with probe k replaced by the name __v{k}
    n_probes: int = 0


@dataclass(frozen=True)
class TestPlan:
    tests: tuple[Test, ...]
    preamble: str  # module-level test code run after the program (helpers, METADATA, setup)
    check: str  # source of ``def __rft_check(candidate, __rft): ...`` run in the sandbox
    entry_point: str | None  # the function passed as `candidate`


class _Probes(ast.NodeTransformer):
    """Cuts the calls to the function under test out of an assert's test expression."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.calls: list[ast.expr] = []

    def is_call(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in self.names

    def probe(self, node: ast.expr) -> ast.expr:
        self.calls.append(node)
        return ast.Name(id=f"__v{len(self.calls) - 1}", ctx=ast.Load())

    def visit_Call(self, node: ast.Call) -> ast.expr:
        if self.is_call(node):
            return self.probe(node)
        wraps = isinstance(node.func, ast.Name) and node.func.id in _WRAPPERS
        if wraps and len(node.args) == 1 and not node.keywords and _contains_call(node.args[0], self):
            inner = node.args[0]
            while isinstance(inner, ast.Call) and not self.is_call(inner):
                if not (isinstance(inner.func, ast.Name) and inner.func.id in _WRAPPERS):
                    break
                if len(inner.args) != 1 or inner.keywords:
                    break
                inner = inner.args[0]
            if self.is_call(inner):
                return self.probe(node)
        visited = self.generic_visit(node)
        assert isinstance(visited, ast.expr)
        return visited


def _contains_call(node: ast.AST, probes: _Probes) -> bool:
    return any(probes.is_call(n) for n in ast.walk(node))


def _outside(test: ast.expr, text: str, names: set[str]) -> tuple[ast.Expression, list[str]] | None:
    """(the test with probes cut out, the probes' source) when `test` can be judged outside, else None."""
    probes = _Probes(names)
    for node in ast.walk(test):  # probes evaluated eagerly must not sit where evaluation is conditional
        if isinstance(node, ast.BoolOp | ast.IfExp | ast.comprehension | ast.Lambda) and _contains_call(
            node, probes
        ):
            return None
    segment = _segment(text, test)
    copy = ast.parse(f"(\n{segment}\n)", mode="eval").body  # a copy to cut, with offsets into `segment`
    cut = probes.visit(copy)
    if not probes.calls:
        return None
    expr = ast.Expression(cut)
    if not SafeEval.allowed(expr, len(probes.calls)):
        return None
    return expr, [_segment(f"(\n{segment}\n)", call) for call in probes.calls]


def _segment(text: str, node: ast.AST) -> str:
    """The source of `node` in `text` (its own text: no re-formatting, no cost of `ast.unparse`)."""
    lineno, end = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
    if lineno is None or end is None:
        return ast.unparse(node)
    lines = _lines(text)[lineno - 1 : end]  # offsets count UTF-8 bytes
    if len(lines) == 1:
        return lines[0][node.col_offset : node.end_col_offset].decode()  # type: ignore[attr-defined]
    first, last = lines[0][node.col_offset :], lines[-1][: node.end_col_offset]  # type: ignore[attr-defined]
    return b"".join([first, *lines[1:-1], last]).decode()


@lru_cache(maxsize=64)
def _lines(text: str) -> list[bytes]:
    return text.encode().splitlines(keepends=True)


def _trivial(test: ast.expr) -> bool:
    """``assert True`` and the like: constant, not a test."""
    return all(isinstance(n, ast.Constant | ast.Load | ast.UnaryOp | ast.Not) for n in ast.walk(test))


def _wrap(index: int, stmt: ast.stmt, kind: str) -> str:
    """``try: <stmt> except BaseException as e: __rft.fail(i, e) else: __rft.<kind>(i)``, indented by 4."""
    inner = textwrap.indent(ast.unparse(stmt), " " * 8)
    orelse = f"\n    else:\n        __rft.{kind}({index})" if kind else ""
    return f"    try:\n{inner}\n    except BaseException as __rft_e:\n        __rft.fail({index}, __rft_e){orelse}"


def _build(statements: list[tuple[ast.stmt, str]], names: set[str]) -> tuple[list[Test], list[str]]:
    """The tests, and the body of the check function (source lines, indented by 4)."""
    tests: list[Test] = []
    body: list[str] = []
    for stmt, text in statements:
        source = _segment(text, stmt)[:_MAX_TEXT]
        if isinstance(stmt, ast.Assert):
            if _trivial(stmt.test):
                continue
            found = _outside(stmt.test, text, names)
            i = len(tests)
            if found is not None:
                expr, calls = found
                tests.append(Test(source, "outside", expr, len(calls)))
                body.append(f"    __rft.values({i}, lambda: ({', '.join(calls)},))")
            else:
                tests.append(Test(source, "inside"))
                body.append(_wrap(i, stmt, "ok"))
        elif any(isinstance(n, ast.Assert) for n in ast.walk(stmt)):  # a loop or block of asserts: one test
            tests.append(Test(source, "inside"))
            body.append(_wrap(len(tests) - 1, stmt, "ok"))
        else:
            body.append(_wrap(-1, stmt, ""))
    return tests, body


def _called_names(statements: list[ast.stmt]) -> set[str]:
    import builtins

    defined = {
        n.name for s in statements for n in ast.walk(s) if isinstance(n, ast.FunctionDef | ast.ClassDef)
    }
    called = {
        n.func.id
        for s in statements
        if isinstance(s, ast.Assert)
        for n in ast.walk(s)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    return {c for c in called if not hasattr(builtins, c) and c not in defined}


@lru_cache(maxsize=4096)
def _plan(tests: str | tuple[str, ...], entry_point: str | None, setup: str) -> TestPlan:
    texts = [tests] if isinstance(tests, str) else list(tests)
    statements = [(s, t) for t in texts for s in ast.parse(t, "<tests>").body]
    checks = [s for s, _ in statements if isinstance(s, ast.FunctionDef) and s.name == "check"]
    if checks and entry_point:  # HumanEval: def check(candidate), called with the entry point
        check = checks[-1]
        if not check.args.args:
            raise ValueError("the tests' check() takes no argument; it must take the function under test")
        param = check.args.args[0].arg
        text = next(t for s, t in statements if s is check)
        preamble = [(s, t) for s, t in statements if s is not check and not _calls_check(s)]
        tests_, body = _build([(s, text) for s in check.body], {param})
    else:  # MBPP: top-level asserts calling the function by name
        names = {entry_point} if entry_point else _called_names([s for s, _ in statements])
        preamble = [(s, t) for s, t in statements if not _is_test(s)]
        tests_, body = _build([(s, t) for s, t in statements if _is_test(s)], names)
        param = "candidate"
    if not tests_:
        raise ValueError("the tests hold no assert statements (nothing to grade)")
    check_src = "\n".join([f"def __rft_check({param}, __rft):", *(body or ["    pass"])]) + "\n"
    compile(check_src, "<tests>", "exec", dont_inherit=True)  # what we built must compile (else a bug here)
    pre = "\n".join([setup, *(textwrap.dedent(_segment(t, s)) for s, t in preamble)])
    return TestPlan(tuple(tests_), pre, check_src, entry_point or None)


def _is_test(stmt: ast.stmt) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(stmt)) and not isinstance(stmt, ast.FunctionDef)


def _calls_check(stmt: ast.stmt) -> bool:
    """A stray ``check(entry_point)`` line in the test code: the harness calls check itself."""
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and (isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "check")
    )


def plan_tests(tests: str | list[str], entry_point: str | None = None, setup: str = "") -> TestPlan:
    """Plan HumanEval-style tests (a module defining ``check(candidate)``, with `entry_point`) or
    MBPP-style ones (assert statements calling the function by name). Raises ValueError (or
    SyntaxError) for test code that cannot be planned: a bad row, not the model's fault."""
    key = tests if isinstance(tests, str) else tuple(tests)
    return _plan(key, entry_point or None, setup or "")


# ---- the harness that runs in the sandbox -----------------------------------------------------------

_RUNTIME_PATH = Path(__file__).resolve().parent / "sandbox" / "harness_runtime.py"
_RUNTIME = _RUNTIME_PATH.read_text()


def runtime_call(function: str, *args: Any) -> str:
    """A program that calls `function` of the sandbox runtime (graders/sandbox/harness_runtime.py) with
    `args` (literals). It uses the runtime the backend preloaded as module `rft_harness` (forkserver
    ``--preload-file``), else the runtime's source sent along."""
    call = ", ".join(repr(a) for a in args)
    return (
        f"try:\n    from rft_harness import {function} as _rft_f\n"
        f"except ImportError:\n    _ns = {{}}\n    exec({_RUNTIME!r}, _ns)\n    _rft_f = _ns[{function!r}]\n"
        f"_rft_f({call})\n"
    )


def harness_program(plan: TestPlan, program: str) -> tuple[str, str]:
    """The Python source to run in the sandbox for `plan` against `program`, and its nonce."""
    nonce = secrets.token_hex(8)
    return runtime_call("run", program, plan.preamble, plan.check, plan.entry_point, nonce), nonce


@dataclass
class Verdicts:
    started: bool = False
    done: bool = False
    load_error: str | None = None
    events: dict[int, dict[str, Any]] | None = None
    setup_errors: list[str] | None = None


def read_events(result: bytes, nonce: str, truncated: bool) -> Verdicts:
    """Parse the harness's report; lines without the nonce, or repeated, are ignored."""
    v = Verdicts(events={}, setup_errors=[])
    assert v.events is not None and v.setup_errors is not None
    lines = result.split(b"\n")
    if truncated or not result.endswith(b"\n"):
        lines = lines[:-1]  # a cut last line is not an event
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if not isinstance(ev, dict) or ev.get("n") != nonce or v.done:
            continue
        kind, i = ev.get("e"), ev.get("i")
        if kind == "start":
            v.started = True
        elif not v.started:
            continue
        elif kind == "done":
            v.done = True
        elif kind == "load_error":
            v.load_error = f"{ev.get('t')}: {ev.get('m')}"
        elif kind == "fail" and i == -1:
            v.setup_errors.append(f"{ev.get('t')}: {ev.get('m')}")
        elif isinstance(i, int) and i >= 0 and i not in v.events:
            v.events[i] = ev
    return v


# ---- plain data back from the sandbox, and the outside evaluation -------------------------------------


def decode_value(data: Any, depth: int = 0) -> Any:
    """The value the harness encoded (see `enc` in the runtime). Raises ValueError on anything else."""
    if depth > 64:
        raise ValueError("nested too deeply")
    if data is None or isinstance(data, bool | str):
        return data
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ValueError("malformed value")
    tag = data[0]
    if tag == "i" and len(data) == 2:
        return int(data[1], 16)
    if tag == "f" and len(data) == 2:
        return float.fromhex(data[1])
    if tag == "c" and len(data) == 3:
        return complex(float.fromhex(data[1]), float.fromhex(data[2]))
    if tag == "b" and len(data) == 2:
        return bytes.fromhex(data[1])
    if tag == "d" and len(data) == 2:
        return {decode_value(k, depth + 1): decode_value(v, depth + 1) for k, v in data[1]}
    kinds = {"l": list, "t": tuple, "s": set, "F": frozenset}
    if tag in kinds and len(data) == 2 and isinstance(data[1], list):
        return kinds[tag](decode_value(x, depth + 1) for x in data[1])
    raise ValueError(f"malformed value (tag {tag!r})")


_MAX_SEQ = 10**6  # elements a computed sequence may have


def _num(x: Any) -> bool:
    return isinstance(x, int | float | complex)


def _isclose(a: float, b: float, *, rel_tol: float = 1e-9, abs_tol: float = 0.0) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def evalplus_close(out: Any, exp: Any, atol: float = 0.0) -> bool:
    """EvalPlus's output check (``evalplus/eval/__init__.py``): equal, or, when `exp` is a float (or a
    flat list/tuple of floats: atol 1e-6 unless set) or `atol` is set, the same type and length and every
    number within ``atol + 1e-7 * |exp|`` (numpy's ``allclose``; NaN is never close). Self-contained:
    the EvalPlus suites also define it in the sandbox for tests judged there."""
    import math

    def flat(x: Any) -> list[Any]:
        if isinstance(x, list | tuple):
            return [y for v in x for y in flat(v)]
        if isinstance(x, int | float | complex):
            return [x]
        raise TypeError(f"not a number: {type(x).__name__}")

    if out == exp:
        return True
    floats = isinstance(exp, float) or (
        isinstance(exp, list | tuple) and bool(exp) and all(isinstance(v, float) for v in exp)
    )
    if atol == 0 and floats:
        atol = 1e-6
    if atol == 0 or type(out) is not type(exp):
        return False
    if isinstance(exp, list | tuple) and len(out) != len(exp):
        return False
    try:
        a, b = flat(out), flat(exp)
    except TypeError:
        return False
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        if not (math.isfinite(abs(x)) and math.isfinite(abs(y)) and abs(x - y) <= atol + 1e-7 * abs(y)):
            return False
    return True


_TYPES = {t.__name__: t for t in (int, float, str, bool, list, tuple, dict, set, frozenset, complex, bytes)}
_FUNCS: dict[str, Any] = {
    "abs": abs, "len": len, "round": round, "sorted": sorted, "set": set, "frozenset": frozenset,
    "tuple": tuple, "list": list, "dict": dict, "sum": sum, "min": min, "max": max, "all": all, "any": any,
    "float": float, "int": int, "str": str, "bool": bool, "type": type, "isinstance": isinstance,
    "reversed": lambda x: list(reversed(x)), "math.isclose": _isclose, "math.fabs": math.fabs,
    "evalplus_close": evalplus_close,
}  # fmt: skip
_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b}  # fmt: skip
_CMPS = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
         ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
         ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b,
         ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}  # fmt: skip


class SafeEval:
    """Evaluates the outside part of an assert: literals, the probe values ``__v<k>``, comparisons,
    arithmetic on numbers, and a few pure builtins. Never `eval`."""

    @staticmethod
    def _func_name(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return f"{node.value.id}.{node.attr}"
        return None

    @classmethod
    def allowed(cls, expr: ast.Expression, n_probes: int) -> bool:
        probes = {f"__v{k}" for k in range(n_probes)}
        for node in ast.walk(expr.body):
            if isinstance(node, ast.Name):
                if (
                    node.id not in probes
                    and node.id not in _TYPES
                    and node.id not in _FUNCS
                    and node.id != "math"
                ):
                    return False
            elif isinstance(node, ast.Call):
                if cls._func_name(node.func) not in _FUNCS or any(k.arg is None for k in node.keywords):
                    return False
                if any(isinstance(a, ast.Starred) for a in node.args):
                    return False
            elif isinstance(node, ast.Attribute):
                if cls._func_name(node) not in _FUNCS:
                    return False
            elif isinstance(node, ast.BinOp):
                if type(node.op) not in _BINOPS:
                    return False
            elif isinstance(node, ast.Compare | ast.Constant | ast.Tuple | ast.List | ast.Set | ast.Dict | ast.UnaryOp
                            | ast.Subscript | ast.Slice | ast.BoolOp | ast.IfExp):  # fmt: skip
                continue
            elif not isinstance(
                node, ast.expr_context | ast.operator | ast.cmpop | ast.unaryop | ast.boolop | ast.keyword
            ):
                return False
        return True

    def __init__(self, values: list[Any]) -> None:
        self.names = {f"__v{k}": v for k, v in enumerate(values)}

    def run(self, expr: ast.Expression) -> Any:
        return self.ev(expr.body)

    def ev(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            return _TYPES[node.id]
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = [self.ev(e) for e in node.elts]
            return (
                tuple(items)
                if isinstance(node, ast.Tuple)
                else set(items)
                if isinstance(node, ast.Set)
                else items
            )
        if isinstance(node, ast.Dict):
            return {
                self.ev(k): self.ev(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None
            }
        if isinstance(node, ast.UnaryOp):
            x = self.ev(node.operand)
            if isinstance(node.op, ast.Not):
                return not x
            if not _num(x):
                raise TypeError(f"bad operand type for unary operator: {type(x).__name__}")
            return -x if isinstance(node.op, ast.USub) else +x if isinstance(node.op, ast.UAdd) else ~x
        if isinstance(node, ast.BinOp):
            a, b = self.ev(node.left), self.ev(node.right)
            same_seq = type(a) is type(b) and isinstance(a, str | list | tuple | bytes)
            if not ((_num(a) and _num(b)) or (isinstance(node.op, ast.Add) and same_seq)):
                raise TypeError(f"unsupported operands {type(a).__name__} and {type(b).__name__}")
            return _BINOPS[type(node.op)](a, b)
        if isinstance(node, ast.BoolOp):
            val = None
            for v in node.values:
                val = self.ev(v)
                if bool(val) != isinstance(node.op, ast.And):
                    return val
            return val
        if isinstance(node, ast.IfExp):
            return self.ev(node.body) if self.ev(node.test) else self.ev(node.orelse)
        if isinstance(node, ast.Compare):
            left = self.ev(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = self.ev(comp)
                if not _CMPS[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Subscript):
            target = self.ev(node.value)
            s = node.slice
            if isinstance(s, ast.Slice):
                parts = [None if p is None else self.ev(p) for p in (s.lower, s.upper, s.step)]
                return target[slice(*parts)]
            return target[self.ev(s)]
        if isinstance(node, ast.Call):
            name = self._func_name(node.func)
            args = [self.ev(a) for a in node.args]
            kwargs = {k.arg: self.ev(k.value) for k in node.keywords if k.arg is not None}
            for a in args:
                if isinstance(a, list | tuple | set | str) and len(a) > _MAX_SEQ:
                    raise ValueError("sequence too long")
            return _FUNCS[name or ""](*args, **kwargs)
        raise TypeError(f"cannot evaluate {type(node).__name__} outside the sandbox")
