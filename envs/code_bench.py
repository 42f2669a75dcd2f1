"""Row maps of the code benchmarks: EvalPlus's HumanEval+ and MBPP+, and LiveCodeBench (code_generation_lite).

EvalPlus (``source.map: humaneval_plus`` / ``mbpp_plus``) rows come in two layouts:

- the Hugging Face copies (``evalplus/humanevalplus``, ``evalplus/mbppplus``): ``test`` is a program whose
  ``inputs = [...]`` and ``results = [...]`` literals hold every base and plus input with the canonical
  solution's output, checked by ``assertion(fn(*inp), exp, atol)``;
- EvalPlus's release files (``HumanEvalPlus.jsonl``): ``base_input`` and ``plus_input`` (JSON) and ``atol``,
  no outputs: EvalPlus computes them by running ``canonical_solution``.

Both become one assert per input (`plus_tests`), graded by the `code` grader: with the outputs known,
``assert f(*inp) == exp`` (or ``evalplus_close(f(*inp), exp, atol)`` for floats and a set ``atol``,
EvalPlus's tolerance), judged outside the sandbox on the values sent back; for release rows the expected
value is the canonical solution's, run beside the program in the sandbox (judged there). EvalPlus's
special oracles (``evalplus/eval/_special_oracle.py``) are kept: HumanEval/32 (``find_zero``: any root,
``|poly(xs, x)| <= atol``; the hub's own check of it splats the returned float and cannot pass, so only its
inputs and bound are used), Mbpp/164 (any output), Mbpp/295 (the output or 0), set equality for eight MBPP+
tasks, and the Mbpp/581, Mbpp/558 and not-None oracles (judged in the sandbox). A HumanEval+ hub row whose
``test`` has another shape (no ``inputs``/``assertion``) is run as it is: its ``check(candidate)``, one test.

LiveCodeBench (``source.map: livecodebench``): public and private test cases (the private ones decoded
without unpickling anything, see `decode_private_cases`) become stdin/stdout `cases`. A functional
(LeetCode) problem's cases keep their input (one JSON value per line, the arguments) and a driver is put
before the model's code (`driver`) that, once the program has run, calls ``Solution().<func_name>(*args)``
and prints the result as JSON; expected outputs are written the same way, so the comparison happens here.
"""

from __future__ import annotations

import ast
import base64
import inspect
import json
import math
import pickletools
import textwrap
import zlib
from datetime import date, datetime
from typing import Any

from rft.graders.code_harness import evalplus_close

from .errors import SuiteError

__all__ = [
    "humaneval_plus_row",
    "mbpp_plus_row",
    "livecodebench_row",
    "decode_private_cases",
    "in_date_window",
    "parse_date",
    "MAX_DECODED_BYTES",
]

MAX_DECODED_BYTES = 1 << 30  # a private test blob larger than this once decompressed is refused

# ---- EvalPlus ---------------------------------------------------------------------------------------


def _plain_source(fn: Any) -> str:
    """A function's source without annotations (names such as ``Any`` are not defined in the sandbox)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.returns = None
            for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                a.annotation = None
    return ast.unparse(tree)


_CLOSE_SOURCE = _plain_source(evalplus_close)
_ORACLES_SOURCE = '''def _rft_poly(xs, x):
    import math
    return sum(c * math.pow(x, i) for i, c in enumerate(xs))


def _rft_oracle(name, out, exp, inp, atol):
    """EvalPlus's special oracles of Mbpp/581, Mbpp/558 and the not-None tasks, then its tolerance."""
    import math
    exact = out == exp
    if name == "surface_Area":
        edge, height = inp
        slant = math.sqrt((edge / 2) ** 2 + height ** 2)
        exact = exact or abs(out - round(edge ** 2 + 4 * (edge * slant) / 2)) <= atol
    elif name == "digit_distance_nums":
        a, b = str(inp[0]), str(inp[1])
        a, b = a.zfill(max(len(a), len(b))), b.zfill(max(len(a), len(b)))
        exact = exact or out == sum(abs(int(x) - int(y)) for x, y in zip(a, b))
    else:
        return out == exp if isinstance(out, bool) else exp == (out is not None)
    return exact or evalplus_close(out, exp, atol)
'''
# EvalPlus's special oracles (evalplus/eval/_special_oracle.py) by the MBPP+ function's name
_MBPP_SET_EQ = {"similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
                "intersection_array", "find_dissimilar", "Diff"}  # fmt: skip
_MBPP_ORACLE = {"surface_Area", "digit_distance_nums", "check_str", "text_match_three", "text_starta_endb"}
_NAMES = {"inf": math.inf, "nan": math.nan, "True": True, "False": False, "None": None}


def _literal(node: ast.expr) -> Any:
    """A Python literal as EvalPlus writes it (``inf``/``nan`` names and ``float('inf')`` allowed)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [_literal(e) for e in node.elts]
        return (
            items
            if isinstance(node, ast.List)
            else tuple(items)
            if isinstance(node, ast.Tuple)
            else set(items)
        )
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError("a ** entry in a dict literal")
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        x = _literal(node.operand)
        return -x if isinstance(node.op, ast.USub) else +x
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):  # complex: 1+2j
        a, b = _literal(node.left), _literal(node.right)
        if isinstance(a, int | float) and isinstance(b, complex):
            return a + b if isinstance(node.op, ast.Add) else a - b
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [_literal(a) for a in node.args]
        if node.func.id == "float" and len(args) == 1 and isinstance(args[0], str):
            return float(args[0])
        if node.func.id in ("set", "frozenset", "tuple", "list") and len(args) <= 1:
            return {"set": set, "frozenset": frozenset, "tuple": tuple, "list": list}[node.func.id](*args)
    raise ValueError(f"not a literal: {ast.unparse(node)[:80]}")


def _source(x: Any) -> str:
    """Python source that evaluates to `x`, also for ``inf``/``nan`` (which `repr` writes as names)."""
    if isinstance(x, float) and not math.isfinite(x):
        return f"float({str(x)!r})"
    if isinstance(x, list):
        return "[" + ", ".join(_source(v) for v in x) + "]"
    if isinstance(x, tuple):
        return "(" + ", ".join(_source(v) for v in x) + ("," if len(x) == 1 else "") + ")"
    if isinstance(x, set | frozenset):
        inner = "[" + ", ".join(_source(v) for v in x) + "]"
        return f"{type(x).__name__}({inner})"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{_source(k)}: {_source(v)}" for k, v in x.items()) + "}"
    return repr(x)


def _floats(x: Any) -> bool:
    return isinstance(x, float) or (
        isinstance(x, list | tuple) and bool(x) and all(isinstance(v, float) for v in x)
    )


def _assert(
    fn: str,
    inp: list[Any],
    exp: Any,
    atol: float,
    expected_src: str | None = None,
    *,
    mbpp: bool = False,
    inside: bool = False,
) -> str:
    """One EvalPlus test: `fn(*inp)` against `exp` (or against the source `expected_src`), with EvalPlus's
    special oracles for HumanEval/32 and (`mbpp`) the MBPP+ tasks that have one. `inside`: compared in the
    sandbox (``_rft_same`` is `evalplus_close` there), for outputs too large to send back."""
    args = _source(list(inp))
    call = f"{fn}(*{args})"
    if fn == "find_zero" and not mbpp:  # HumanEval/32: any root will do
        return f"assert abs(_rft_poly(*{args}, {call})) <= {_source(atol or 1e-6)}"
    want = _source(exp) if expected_src is None else expected_src
    if mbpp and fn == "are_equivalent":  # Mbpp/164: EvalPlus accepts any output
        return f"assert [{call}]"
    if mbpp and fn == "sum_div":  # Mbpp/295: the output, or 0
        return f"assert {call} in [{want}, 0]"
    if mbpp and fn in _MBPP_SET_EQ:
        return f"assert set({call}) == set({want})"
    if mbpp and fn in _MBPP_ORACLE:
        return f"assert _rft_oracle({fn!r}, {call}, {want}, {args}, {_source(float(atol))})"
    if inside:
        return f"assert _rft_same({call}, {want}, {_source(float(atol))})"
    if expected_src is None and atol == 0 and not _floats(exp):
        return f"assert {call} == {want}"
    return f"assert evalplus_close({call}, {want}, {_source(float(atol))})"


# The sandbox sends at most `Limits.result_bytes` (1 MiB) of reports back: outputs judged outside share this
# budget (with ~100 bytes a test for the report itself); larger expected outputs are compared inside.
_OUTSIDE_BUDGET = 640 * 1024


def _encoded_size(x: Any) -> int:
    """About how many bytes the harness's encoding of `x` takes (graders/sandbox/harness_runtime.py)."""
    if isinstance(x, str):
        return len(x) + 2 + x.count('"') + x.count("\\")
    if isinstance(x, bool) or x is None:
        return 5
    if isinstance(x, int):
        return 10 + len(format(x, "x"))
    if isinstance(x, float | complex):
        return 40
    if isinstance(x, dict):
        return 10 + sum(_encoded_size(k) + _encoded_size(v) + 4 for k, v in x.items())
    if isinstance(x, list | tuple | set | frozenset):
        return 10 + sum(_encoded_size(v) + 2 for v in x)
    return 64


def _judged_inside(results: list[Any]) -> list[bool]:
    """Which tests compare inside: those whose expected output does not fit the rest of the budget."""
    left = _OUTSIDE_BUDGET - 100 * len(results)
    inside = []
    for exp in results:
        size = _encoded_size(exp)
        inside.append(size > left)
        if size <= left:
            left -= size
    return inside


def _assignments(tree: ast.Module) -> tuple[dict[str, ast.expr], list[ast.Call]]:
    """`inputs`/`results` assignments anywhere in the test program, and its calls of ``assertion``."""
    found: dict[str, ast.expr] = {}
    calls: list[ast.Call] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("inputs", "results"):
                found[node.targets[0].id] = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "assertion":
            calls.append(node)
    return found, calls


def _hub_tests(task_id: str, test: str, entry: str | None) -> tuple[str, list[str]]:
    """(the function's name, one assert per input) from a hub row's ``test`` program; a HumanEval+
    program of another shape is run as it is (a ``check(candidate)``: one test, judged in the sandbox)."""
    try:
        tree = ast.parse(test)
    except SyntaxError as e:
        raise SuiteError(f"EvalPlus row {task_id}: its `test` program does not parse ({e.msg})") from None
    found, calls = _assignments(tree)
    mbpp = entry is None
    if entry == "find_zero" and "inputs" in found:  # the hub's own check splats the root: see module doc
        bounds = [
            n.comparators[0].value
            for n in ast.walk(tree)
            if isinstance(n, ast.Compare)
            and isinstance(n.ops[0], ast.LtE)
            and isinstance(n.comparators[0], ast.Constant)
        ]
        atol = float(bounds[-1]) if bounds and isinstance(bounds[-1], int | float) else 1e-6
        return entry, [_assert(entry, inp, None, atol) for inp in _literal_of(task_id, found["inputs"])]
    if "inputs" not in found or not calls:
        if entry is not None and "def check(" in test:
            return entry, [test]
        raise SuiteError(
            f"EvalPlus row {task_id}: `test` has no `inputs = [...]` and `assertion(f(*inp), exp, atol)`; "
            "is this an EvalPlus (humanevalplus/mbppplus) row?"
        )
    call = calls[-1]
    target = call.args[0] if call.args else None
    if entry is None:  # MBPP+: the function is named in the loop's call
        if not (isinstance(target, ast.Call) and isinstance(target.func, ast.Name)):
            raise SuiteError(f"EvalPlus row {task_id}: cannot tell the function under test from `test`")
        entry = target.func.id
    atol = float(_literal_of(task_id, call.args[2])) if len(call.args) > 2 else 0.0
    inputs = _literal_of(task_id, found["inputs"])
    if "results" not in found:  # a few MBPP+ rows compute the outputs with `ref_func` in the program
        if "def ref_func" not in test:
            raise SuiteError(f"EvalPlus row {task_id}: `test` has inputs but no `results` and no ref_func")
        return entry, [
            _assert(entry, inp, None, atol, f"ref_func(*{_source(list(inp))})", mbpp=mbpp) for inp in inputs
        ]
    results = _literal_of(task_id, found["results"])
    if len(inputs) != len(results):
        raise SuiteError(f"EvalPlus row {task_id}: {len(inputs)} inputs but {len(results)} results")
    inside = _judged_inside(results)
    return entry, [
        _assert(entry, inp, exp, atol, mbpp=mbpp, inside=big)
        for inp, exp, big in zip(inputs, results, inside, strict=True)
    ]


def _literal_of(task_id: str, node: ast.expr) -> Any:
    try:
        return _literal(node)
    except ValueError as e:
        raise SuiteError(f"EvalPlus row {task_id}: {e}") from None


def _ref_func(test: str) -> str:
    """The ``ref_func`` definition of a hub row's test program ('' when it has none)."""
    tree = ast.parse(test)
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "ref_func"]
    imports = [
        n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom) and "numpy" not in ast.unparse(n)
    ]
    return "\n".join(ast.unparse(n) for n in [*imports, *defs])


def _release_tests(task_id: str, row: dict[str, Any], entry: str) -> list[str]:
    """One assert per base and plus input of a release row, checked against the canonical solution."""
    inputs = list(row.get("base_input") or []) + list(row.get("plus_input") or [])
    if not inputs:
        raise SuiteError(f"EvalPlus row {task_id}: no base_input or plus_input")
    atol = float(row.get("atol") or 0.0)
    return [_assert(entry, inp, None, atol, f"_rft_reference(*{_source(list(inp))})") for inp in inputs]


def _setup(reference: str, entry: str, *, imports: list[str], with_reference: bool, test: str = "") -> str:
    """Code run before the tests in the sandbox: imports, EvalPlus's helpers, and for release rows the
    canonical solution as ``_rft_reference`` (in its own namespace, so the program's function stays)."""
    parts = [*imports, _CLOSE_SOURCE, "_rft_same = evalplus_close", _ORACLES_SOURCE]
    if "ref_func(" in test:
        parts.append(_ref_func(test))
    if with_reference:
        parts.append(
            f"_rft_ns = {{}}\nexec(compile({reference!r}, '<reference>', 'exec'), _rft_ns)\n"
            f"_rft_reference = _rft_ns[{entry!r}]"
        )
    return "\n".join(parts)


def humaneval_plus_row(row: dict[str, Any]) -> dict[str, Any]:
    """A HumanEval+ row (hub or release layout) with `plus_tests` (one assert per input), `plus_setup`
    and `solution` (prompt + canonical solution) set."""
    missing = {"task_id", "prompt", "entry_point", "canonical_solution"} - set(row)
    if missing:
        raise SuiteError(f"not a HumanEval+ row: it lacks {sorted(missing)}; fields {sorted(row)}")
    task_id, entry = str(row["task_id"]), str(row["entry_point"])
    solution = row["prompt"] + row["canonical_solution"]
    release = "base_input" in row or "plus_input" in row
    if release:
        tests = _release_tests(task_id, row, entry)
    else:
        entry, tests = _hub_tests(task_id, str(row.get("test") or ""), entry)
    setup = _setup(solution, entry, imports=["import math"], with_reference=release)
    return {**row, "task_id": task_id, "plus_tests": tests, "plus_setup": setup, "solution": solution}


def mbpp_plus_row(row: dict[str, Any]) -> dict[str, Any]:
    """An MBPP+ row of the hub layout (``evalplus/mbppplus``: `prompt`, `code`, `test_list`, `test`) with
    `task_id` as EvalPlus names it (``Mbpp/2``), `text` (the problem and its first base assert, as
    EvalPlus prompts it), `plus_tests`, `plus_setup` and `solution` set."""
    if "base_input" in row or "plus_input" in row:
        raise SuiteError(
            "MBPP+ release rows (base_input/plus_input) need EvalPlus's per-task input conversion (lists "
            "back to tuples, sets, complex numbers), which rft does not carry: use the Hugging Face layout, "
            "e.g. datasets.load_dataset('evalplus/mbppplus', split='test').to_json('MbppPlus.jsonl')"
        )
    missing = {"task_id", "prompt", "code", "test_list", "test"} - set(row)
    if missing:
        raise SuiteError(f"not an MBPP+ row: it lacks {sorted(missing)}; fields {sorted(row)}")
    raw_id = str(row["task_id"])
    task_id = raw_id if raw_id.startswith("Mbpp/") else f"Mbpp/{raw_id}"
    test = str(row["test"])
    entry, tests = _hub_tests(task_id, test, None)
    imports = [str(i) for i in row.get("test_imports") or []]
    setup = _setup(str(row["code"]), entry, imports=imports, with_reference=False, test=test)
    first = row["test_list"][0] if row["test_list"] else ""
    return {
        **row,
        "task_id": task_id,
        "entry_point": entry,
        "text": f"{row['prompt']}\n{first}".strip(),
        "plus_tests": tests,
        "plus_setup": setup,
        "solution": str(row["code"]),
    }


# ---- LiveCodeBench ----------------------------------------------------------------------------------

# Opcodes of a pickled str (or bytes): nothing that imports, calls or builds an object.
_SAFE_OPS = {
    "PROTO", "FRAME", "STOP", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT",
    "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    "SHORT_BINBYTES", "BINBYTES", "BINBYTES8",
}  # fmt: skip


def _unpickle_text(data: bytes) -> str:
    """The string a pickle holds, read from its opcodes without unpickling: anything but one string
    (a class, a call, a container) is refused."""
    values: list[Any] = []
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name not in _SAFE_OPS:
                raise SuiteError(
                    f"refusing a LiveCodeBench private test blob: its pickle uses {op.name}, not only a string"
                )
            if op.name not in ("PROTO", "FRAME", "STOP", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                values.append(arg)
    except ValueError as e:  # a truncated or malformed pickle
        raise SuiteError(f"refusing a LiveCodeBench private test blob: not a valid pickle ({e})") from None
    if len(values) != 1:
        raise SuiteError(
            f"refusing a LiveCodeBench private test blob: it holds {len(values)} values, not one"
        )
    value = values[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_private_cases(text: str) -> list[dict[str, Any]]:
    """LiveCodeBench's ``private_test_cases``: JSON, or base64 of zlib of a pickled JSON string (decoded
    here without `pickle.loads`; a blob that would unpickle to anything but a string is refused)."""
    if not text:
        return []
    try:
        cases = json.loads(text)
    except json.JSONDecodeError:
        inner = _unpickle_text(_inflate(text))
        try:
            cases = json.loads(inner)
        except json.JSONDecodeError as e:
            raise SuiteError(
                f"LiveCodeBench private_test_cases: the decoded text is not JSON ({e})"
            ) from None
    if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
        raise SuiteError("LiveCodeBench test cases must be a JSON list of {input, output, testtype}")
    return cases


def _inflate(text: str) -> bytes:
    """base64, then zlib (at most `MAX_DECODED_BYTES`)."""
    try:
        z = zlib.decompressobj()
        raw = z.decompress(base64.b64decode(text.encode()), MAX_DECODED_BYTES)
    except (ValueError, zlib.error) as e:
        raise SuiteError(f"LiveCodeBench private_test_cases: neither JSON nor base64+zlib ({e})") from None
    if z.unconsumed_tail:
        raise SuiteError(f"LiveCodeBench private_test_cases: larger than {MAX_DECODED_BYTES} bytes decoded")
    return raw


def _canonical(value: Any) -> Any:
    """A JSON value with integral floats as ints (LiveCodeBench compares ``prediction == expected``, where
    ``1 == 1.0``); tuples are lists already in JSON."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def _json_line(value: Any) -> str:
    return json.dumps(_canonical(value), sort_keys=True) + "\n"


_DRIVER = """import atexit as _rft_atexit
def _rft_drive():
    import json, sys
    def canon(v):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, (list, tuple)):
            return [canon(x) for x in v]
        if isinstance(v, dict):
            return {{k: canon(x) for k, x in v.items()}}
        return v
    args = [json.loads(line) for line in sys.stdin.read().split("\\n") if line.strip()]
    result = getattr(Solution(), {func!r})(*args)
    sys.stdout.write(json.dumps(canon(result), sort_keys=True) + "\\n")
    sys.stdout.flush()
_rft_atexit.register(_rft_drive)
"""


def parse_date(value: Any, what: str) -> datetime:
    """A date or datetime from YAML (a `date` object) or text (ISO 8601: 2024-08-01 or 2024-08-01T00:00:00)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        raise SuiteError(f"{what}: {value!r} is not a date like 2024-08-01") from None


def in_date_window(row: dict[str, Any], window: dict[str, Any]) -> bool:
    """Whether ``row[window['field']]`` is on or after `after` and before `before` (either may be absent)."""
    key = window.get("field", "contest_date")
    if key not in row:
        raise SuiteError(
            f"date_window: row has no field {key!r} (fields: {sorted(row)}); fix date_window.field"
        )
    when = parse_date(row[key], f"row field {key}")
    after, before = window.get("after"), window.get("before")
    if after is not None and when < parse_date(after, "date_window.after"):
        return False
    return not (before is not None and when >= parse_date(before, "date_window.before"))


def livecodebench_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ``livecodebench/code_generation_lite`` row with `cases` (public then private, as {input, output}),
    `driver` (the harness of a functional problem, '' for stdin ones), `func_name`, `format_note` (how to
    answer) and `contest_date` as ISO text set."""
    missing = {"question_id", "question_content", "public_test_cases", "contest_date"} - set(row)
    if missing:
        raise SuiteError(f"not a LiveCodeBench row: it lacks {sorted(missing)}; fields {sorted(row)}")
    qid = str(row["question_id"])
    public = row["public_test_cases"]
    public = json.loads(public) if isinstance(public, str) else list(public or [])
    private = decode_private_cases(str(row.get("private_test_cases") or ""))
    tests = [*public, *private]
    if not tests:
        raise SuiteError(f"LiveCodeBench row {qid}: no test cases")
    kinds = {str(t.get("testtype", "stdin")) for t in tests}
    if len(kinds) != 1 or not kinds <= {"stdin", "functional"}:
        raise SuiteError(f"LiveCodeBench row {qid}: test types {sorted(kinds)}; expected stdin or functional")
    metadata = row.get("metadata") or "{}"
    metadata = json.loads(metadata) if isinstance(metadata, str) else dict(metadata)
    starter = str(row.get("starter_code") or "")
    if kinds == {"functional"}:
        func = metadata.get("func_name")
        if not func:
            raise SuiteError(f"LiveCodeBench row {qid}: a functional problem without metadata.func_name")
        cases = [{"input": t["input"], "output": _json_line(json.loads(t["output"]))} for t in tests]
        driver = _DRIVER.format(func=str(func))
        note = (
            "You will use the following starter code to write the solution to the problem and enclose your "
            f"code within delimiters.\n```python\n{starter}\n```"
        )
    else:
        func, driver = None, ""
        cases = [{"input": str(t["input"]), "output": str(t["output"])} for t in tests]
        note = (
            "Read the inputs from stdin, solve the problem and write the answer to stdout (do not directly "
            "test on the sample inputs). Enclose your code within delimiters as follows.\n"
            "```python\n# YOUR CODE HERE\n```"
        )
    when = parse_date(row["contest_date"], f"LiveCodeBench row {qid}: contest_date")
    return {
        **row,
        "question_id": qid,
        "contest_date": when.isoformat(),
        "public_test_cases": public,
        "private_test_cases": "",  # decoded into `cases`; the blob is not kept twice
        "cases": cases,
        "driver": driver,
        "func_name": func,
        "format_note": note,
        "solution": str(row.get("solution") or ""),
    }
