"""Port Math-Verify's own test cases (its `tests/` folder) to `math_verify_cases.jsonl`, as data.

Reads the test files of one commit of https://github.com/huggingface/Math-Verify (a git directory, bare or not)
and writes one row per (gold, prediction, expected) case: every `pytest.mark.parametrize` list whose test
compares a gold with a prediction, and the `compare_strings(...)` calls written out in a test body. The Python
source is read with `ast`, never imported or run (values are literals; the one f-string is evaluated with `math`
only). Each row keeps the configuration its test used (extraction targets, precision, strict,
allow_set_relation_comp) and rft's policy on it: ``same`` where rft's documented policy agrees with the upstream
expectation, ``differs`` (with ``why``) where it does not. Rows are also audit rows (``item.answer``,
``sample.output_text``, ``expected``, ``kind``): ``rft grader audit -i tests/data/math_verify_cases.jsonl
--exclude-kinds policy_`` grades them. With math-verify installed, ``math_verify`` records whether Math-Verify
(the installed version, with the test's own configuration) passes its own case.

Run: python tests/data/port_math_verify_tests.py --git-dir PATH/TO/Math-Verify/.git [--commit 5d148cf...]
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import math
import re
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing
from rft.app.answer_kind import answer_kind  # noqa: E402

COMMIT = "5d148cfaaf99214c2e4ffb4bc497ab042c592a7a"  # main on 2025-07-02 (after v0.8.0)
OUT = HERE / "math_verify_cases.jsonl"
DEFAULTS = {
    "match_types": ["latex", "expr"],
    "precision": 6,
    "strict": True,
    "allow_set_relation_comp": False,
}
# Tests that are not (gold, prediction) pairs: what they check, and why they are not ported.
NOT_PORTED = {
    "test_all.py::test_precision": "calls sympy_expr_eq on sympy objects (float_rounding); its one string pair is ported",
    "test_configs.py": "parse() options (boxed_match_priority, NormalizationConfig): Math-Verify's API",
    "test_raise_on_error.py": "verify(raise_on_error=...) with a mocked comparison: Math-Verify's API",
    "test_timeout.py": "parse/verify timeouts with mocked slow functions: Math-Verify's API",
    "test_string_extraction.py::test_string_extraction[3]": "no gold: a text with no choice letter extracts nothing",
}

# rft's policy where it differs from the upstream expectation (see README "Math answers" and
# ../shared/data/README.md "Label policy"). Keyed by case id; every other case is "same".
ROUNDED = "rounded decimal against an exact value: rft's policy is exact equality (0.333 is not 1/3)"
DECIMAL_COMMA = (
    "a decimal comma: rft reads a comma between digits as a thousands separator (3-digit groups) or a "
    "list separator, as competition golds use it (`1, 22`); Math-Verify reads it as a decimal point"
)
WHOLE_OUTPUT_GOLD = (
    "the gold is a model's whole output with no final-answer marker rft recognises as the "
    "reference's answer; rft's reference is a final answer (item.answer)"
)
INLINE_NEWLINE = (
    "Math-Verify's extraction rule that an inline `$...$`/`\\(...\\)` span may not cross lines; rft "
    "extracts the answer 9 from the span: the value is right and not hedged"
)
NOT_STRICT = (
    "non-default strict=False: Math-Verify then ignores variable names; rft compares expressions in "
    "their variables (f(x) is not f(y)), as Math-Verify's default strict=True does"
)
SET_RELATION = (
    "rft's policy: `x \\in [-2,7]` equals `-2 \\le x \\le 7` in either direction (README: equations, "
    "inequalities); Math-Verify needs allow_set_relation_comp=True when the set is the gold"
)
NOT_EQUAL = (
    "1 - 1/e and 1 + 1/e are different values; the case records a Math-Verify quirk (`\\mathrm{e}` "
    "read as a unit and dropped), not an equality"
)
BRACES_LIST = (
    "`{1,3}` is a bare list of two values (TeX braces only group), not the pair (1,3): rft keeps tuples and "
    "intervals apart from lists of values (README: lists), so `3, 4` is not `(3, 4)`"
)
BOXES_WITH_PROSE = (
    "several boxes in a model's answer: rft takes the last box and the boxes joined to it by `,`/`and`/`or` "
    "(a label such as `y_2 =` may follow the connective); boxes separated by other prose are not joined, "
    "since intermediate results are often boxed"
)
REFERENCE_BOXES = (
    "rft reads every box of a reference as part of its answer (`\\boxed{1} papers and \\boxed{2} bins` "
    "is `1, 2`, as Math-Verify also says); Math-Verify's plain-box pattern does not join boxes with longer "
    "prose between them, an artefact of its regex rather than a policy"
)
BARE_LETTER = (
    "a choice letter inside prose with no answer phrase, box or option phrase (`Because B is valid`) is "
    "not extracted: rft's extraction does not depend on the gold's type, and a letter in a sentence is "
    "as likely a label as an answer"
)
# case id -> (why, the verdict rft's policy wants: True, False, or None where rft is not judged on the case)
POLICY: dict[str, tuple[str, bool | None]] = {
    **dict.fromkeys(
        [f"test_all.py::test_number_extraction[{i}]" for i in (5, 6, 7, 17)], (DECIMAL_COMMA, False)
    ),
    "test_all.py::test_latex_notation_math[2]": (WHOLE_OUTPUT_GOLD, None),
    **dict.fromkeys(
        [
            "test_all.py::test_precision[0]",
            "test_all.py::test_complex_math_expressions[0]",
            "test_all.py::test_complex_math_expressions[7]",
            "test_all.py::test_complex_math_expressions[13]",
        ],
        (ROUNDED, False),
    ),
    "test_all.py::test_latex_notation[5]": (INLINE_NEWLINE, True),
    "test_all.py::test_latex_notation[6]": (INLINE_NEWLINE, True),
    "test_strict.py::test_strict_variable_comparison[1]": (NOT_STRICT, False),
    "test_all.py::test_set_rel_assymetry[3]": (SET_RELATION, True),
    "test_yujianll.py::test_string_extraction[9]": (NOT_EQUAL, False),
    "test_all.py::test_math_extraction_additional_cases[7]": (BRACES_LIST, False),
    "test_open_thoughts.py::test_open_thoughts[14]": (BOXES_WITH_PROSE, False),
    "test_open_thoughts.py::test_open_thoughts[28]": (REFERENCE_BOXES, True),
    "test_string_extraction.py::test_string_extraction[4]": (BARE_LETTER, False),
    "test_string_extraction.py::test_string_extraction[6]": (BARE_LETTER, False),
    "test_numina_cases.py::test_numina_cases[24]": (
        "variable names matter in rft (W(x) is not W(n), as with Math-Verify's strict=True); the gold's "
        "`\\boxed{` is also never closed",
        False,
    ),
}


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment on that line."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        text = tok.string.lstrip("# ").strip()
        # not commented-out code such as `("$1$", "$2$", 0),` or `0,`
        code = (
            re.match(r"[()\[\]]|r?\"", text) or text.endswith((",", "(")) or not re.search("[a-zA-Z]", text)
        )
        if tok.type == tokenize.COMMENT and not code:
            out[tok.start[0]] = text
    return out


def _value(node: ast.expr) -> Any:
    if isinstance(node, ast.JoinedStr):  # f"{math.sqrt(17):.15f}": evaluated with `math` and nothing else
        return eval(compile(ast.Expression(node), "<f-string>", "eval"), {"__builtins__": {}, "math": math})  # noqa: S307
    # StringExtractionConfig(lowercase=True): its name and keywords
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return {"config": node.func.id, **{k.arg: ast.literal_eval(k.value) for k in node.keywords}}
    return ast.literal_eval(node)


def _call_config(call: ast.Call, params: set[str]) -> dict[str, Any]:
    """The keyword arguments of a `compare_strings(...)` call: literals, or a parameter's name."""
    config: dict[str, Any] = {}
    for kw in call.keywords:
        if isinstance(kw.value, ast.Name) and kw.value.id in params:
            config[kw.arg or ""] = {"param": kw.value.id}
        else:
            config[kw.arg or ""] = ast.literal_eval(kw.value)
    return config


def _body_call(fn: ast.FunctionDef) -> tuple[str, ast.Call | None]:
    """What the test calls to judge a case: compare_strings, verify(parse(gold), parse(pred)) or parse(pred)."""
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "compare_strings"
        ):
            return "compare_strings", node
    names = {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    if "verify" in names:
        return "verify_defaults", None
    return ("parse_only", None) if "parse" in names else ("other", None)


def _row(
    file: str,
    test: str,
    index: int,
    line: int,
    comment: str | None,
    gold: str,
    pred: str,
    expected: Any,
    config: dict[str, Any],
) -> dict[str, Any]:
    case_id = f"{file}::{test}[{index}]"
    reference = gold
    # Math-Verify's golds are LaTeX spans; rft's references are answers
    if m := re.fullmatch(r"\$([^$]*)\$", gold.strip(" ")):
        reference = m.group(1)
    why, rft_expected = POLICY.get(case_id, (None, bool(expected)))
    kind = answer_kind(reference)
    return {
        "id": case_id,
        "source": f"tests/{file}",
        "line": line,
        "test": test,
        "comment": comment,
        "gold": gold,
        "prediction": pred,
        "expected": bool(expected),
        "config": config,
        "policy": "differs" if why else "same",
        "why": why,
        "rft_expected": rft_expected,
        "kind": f"policy_{kind}" if why else kind,
        "item": {"answer": reference},
        "sample": {"output_text": pred},
    }


def port_file(file: str, source: str) -> list[dict[str, Any]]:
    tree, comments, rows = ast.parse(source), _comments(source), []
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")):
        how, call = _body_call(fn)
        for deco in fn.decorator_list:
            if not (isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "parametrize"):
                continue
            names = [n.strip() for n in ast.literal_eval(deco.args[0]).split(",")]
            cases = deco.args[1]
            assert isinstance(cases, ast.List), (
                f"{file}::{fn.name}: parametrize values are not a list literal"
            )
            base = _call_config(call, set(names)) if call is not None else {}
            heading: str | None = None  # the last comment line between cases: it heads the cases below it
            prev_end = cases.lineno
            for i, case in enumerate(cases.elts):
                end = case.end_lineno or case.lineno
                near = [comments[ln] for ln in range(prev_end + 1, case.lineno) if ln in comments]
                heading = near[-1] if near else heading
                inline = [comments[ln] for ln in range(case.lineno, end + 1) if ln in comments]
                comment = "; ".join([c for c in (heading, *inline) if c]) or None
                prev_end = end
                assert isinstance(case, ast.Tuple), f"{file}::{fn.name}[{i}] is not a tuple"
                args = dict(zip(names, [_value(e) for e in case.elts], strict=True))
                config = {"call": how, **DEFAULTS}
                for key, value in base.items():
                    config[key] = (
                        args[value["param"]] if isinstance(value, dict) and "param" in value else value
                    )
                for key in ("precision", "strict", "allow_set_relation_comp"):
                    if key in args:
                        config[key] = args[key]
                if how == "verify_defaults":
                    config = {"call": how}  # verify(parse(gold), parse(pred)): Math-Verify's defaults
                    gold, pred, expected = args["gold"], args["pred"], args["result"]
                elif how == "parse_only":  # parse(pred, [config]) == [lowercased, original]
                    if not args["expected"]:
                        continue  # listed in NOT_PORTED
                    config = {"call": how, "extraction": args["config"]}
                    gold, pred, expected = args["expected"][1], args["pred"], True
                else:
                    gold, pred, expected = args["gold"], args["pred"], args["expected"]
                rows.append(_row(file, fn.name, i, case.lineno, comment, gold, pred, expected, config))
        if how == "compare_strings" and not fn.decorator_list:  # pairs written out in the body
            for n, node in enumerate(
                c
                for c in ast.walk(fn)
                if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "compare_strings"
            ):
                parent = next(p for p in ast.walk(fn) if isinstance(p, ast.Compare) and node in ast.walk(p))
                expected = ast.literal_eval(parent.comparators[0])
                gold, pred = (ast.literal_eval(a) for a in node.args[:2])
                config = {"call": how, **DEFAULTS, **_call_config(node, set())}
                rows.append(_row(file, fn.name, n, node.lineno, None, gold, pred, expected, config))
    return rows


def math_verify_verdict(row: dict[str, Any]) -> bool | None:
    """Whether the installed Math-Verify, run as the upstream test runs it, gives the expected result."""
    try:
        from math_verify import (
            ExprExtractionConfig,
            LatexExtractionConfig,
            StringExtractionConfig,
            parse,
            verify,
        )
    except ImportError:
        return None
    c = row["config"]
    if c["call"] == "verify_defaults":
        got = verify(parse(row["gold"]), parse(row["prediction"]))
    elif c["call"] == "parse_only":
        extraction = {k: v for k, v in c["extraction"].items() if k != "config"}
        config = StringExtractionConfig(**extraction)
        return parse(row["prediction"], [config]) == [
            row["gold"].lower() if config.lowercase else row["gold"],
            row["gold"],
        ]
    else:
        targets = [
            LatexExtractionConfig(boxed_match_priority=0) if t == "latex" else ExprExtractionConfig()
            for t in c["match_types"]
        ]
        got = verify(
            parse(row["gold"], targets),
            parse(row["prediction"], targets),
            float_rounding=c["precision"],
            strict=c["strict"],
            allow_set_relation_comp=c["allow_set_relation_comp"],
        )
    return bool(got) == row["expected"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--git-dir", required=True, help="a clone of huggingface/Math-Verify (its .git, or a bare repo)"
    )
    ap.add_argument("--commit", default=COMMIT)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    def git(*cmd: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", args.git_dir, *cmd], check=True, capture_output=True, text=True
        ).stdout

    files = [
        p for p in git("ls-tree", "-r", "--name-only", args.commit, "tests/").split() if p.endswith(".py")
    ]
    rows = []
    for path in sorted(files):
        rows += port_file(Path(path).name, git("show", f"{args.commit}:{path}"))
    for row in rows:
        row["math_verify"] = math_verify_verdict(row)
    unknown = set(POLICY) - {r["id"] for r in rows}
    assert not unknown, f"POLICY names cases that do not exist: {sorted(unknown)}"
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    same = sum(r["policy"] == "same" for r in rows)
    mv = sum(bool(r["math_verify"]) for r in rows)
    print(f"{len(rows)} cases from {len(files)} files ({same} same, {len(rows) - same} differ) -> {args.out}")
    print(f"Math-Verify (installed) passes {mv} of its {len(rows)} ported cases")


if __name__ == "__main__":
    main()
