"""Port other public math answer checkers' test cases to `peer_checker_cases.jsonl`, as data.

Math-Verify's own suite is ported by `port_math_verify_tests.py`; this script takes the (gold, prediction,
expected) cases of other checkers' tests, each at a pinned commit, and leaves out any pair Math-Verify's tests
already hold. The test files are read with `ast` from git, never imported or run. Sources (all MIT or Apache
2.0; see tests/data/README.md):

- hendrycks/math `modeling/math_equivalence_test.py`: `is_equiv(test_in, test_out)` unit tests;
- huggingface/lighteval `tests/unit/metrics/test_extractive_match.py`: `compare_strings(gold, pred)` tables;
- huggingface/open-r1 and huggingface/trl `tests/test_rewards.py`: `accuracy_reward(completion, solution)`;
- NVIDIA/NeMo-Skills `tests/test_math_equal.py`: `math_equal(a, b)` pairs, asserted in both directions;
- THUDM/slime `tests/test_rm_math.py`: `grade_answer_*` verdicts and `_strip_string` normal forms;
- zai-org/GLM-V `glmv_reward/tests/stem/test_math_verifier.py`: `MathVerifier.judge(answer, ground_truth)`;
- inclusionAI/AReaL `tests/test_math_verify_reward.py`: `gsm8k_reward_fn(completions, answer)`;
- NovaSky-AI/SkyRL `skyrl-gym/tests/test_aime.py`, `test_gsm8k.py`: `(output, ground_truth, expected)` tables;
- thinking-machines-lab/tinker-cookbook `math_env_test.py`: `grade_answer(given, ground_truth)` verdicts;
- allenai/open-instruct `open_instruct/test_math_utils.py`: `strip_string(input) == output` normalisations,
  ported as "the input and its normal form are the same answer".

Each row: `id`, `source` (owner/name), `file`, `commit`, `licence`, `line`, `test`, `gold`, `prediction`, `expected` (the
upstream verdict), `config` (how upstream ran it), `policy` (`same` or `differs`), `why`, `rft_expected` (the
verdict rft's documented policy wants), `kind` (the gold's answer structure), and the grader inputs `item.answer`
(the gold without a `$...$` wrapper) and `sample.output_text` (the prediction).

Run: python tests/data/port_peer_checker_tests.py --src DIR, where DIR/<owner>+<name> is a clone (or bare git
directory, or holds one at `repo`) of each source and of huggingface/Math-Verify (for the de-duplication).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
OUT = HERE / "peer_checker_cases.jsonl"
MATH_VERIFY = ("huggingface/Math-Verify", "5d148cfaaf99214c2e4ffb4bc497ab042c592a7a")


class Src(NamedTuple):
    """One ported test file: the repository, the commit read (fetched 2026-12-06), the file, its licence."""

    repo: str
    commit: str
    file: str
    licence: str


# fmt: off
SOURCES = [
    Src("hendrycks/math", "985bdc1696e88e8643f081a0ff4719da39f2ae2a", "modeling/math_equivalence_test.py", "MIT"),
    Src("huggingface/lighteval", "3fd15266bc8448b797e61462d293aa3fd40b3580", "tests/unit/metrics/test_extractive_match.py", "MIT"),
    Src("huggingface/open-r1", "1416fa0cf21595d2083b399a2a0bbddd7f6e9563", "tests/test_rewards.py", "Apache-2.0"),
    Src("huggingface/trl", "f2cd57710ae345ea6428ae95363267fcf38a3dc8", "tests/test_rewards.py", "Apache-2.0"),
    Src("NVIDIA/NeMo-Skills", "0b012df8a09cd4730d31b16e90a0d8f13d145fb8", "tests/test_math_equal.py", "Apache-2.0"),
    Src("THUDM/slime", "624b824a898ab0ec1fcb4d373004c7f3852bf515", "tests/test_rm_math.py", "Apache-2.0"),
    Src("zai-org/GLM-V", "8fc9756fd2313c6b7717bb681bed58f0694abc22", "glmv_reward/tests/stem/test_math_verifier.py", "Apache-2.0"),
    Src("inclusionAI/AReaL", "4aef98d8d818af55b43621aaadba047ae10f4e77", "tests/test_math_verify_reward.py", "Apache-2.0"),
    Src("NovaSky-AI/SkyRL", "a9564572eb8e91076be43c1bd5e4615e3de17265", "skyrl-gym/tests/test_aime.py", "Apache-2.0"),
    Src("NovaSky-AI/SkyRL", "a9564572eb8e91076be43c1bd5e4615e3de17265", "skyrl-gym/tests/test_gsm8k.py", "Apache-2.0"),
    Src("thinking-machines-lab/tinker-cookbook", "9dfcc3a2cf44432d621a01005073dc6d76a1e87a", "tinker_cookbook/recipes/math_rl/math_env_test.py", "Apache-2.0"),
    Src("allenai/open-instruct", "e6c3044aa6201c8bfa4573c1b03142af599e730d", "open_instruct/test_math_utils.py", "Apache-2.0"),
]
# fmt: on

# rft's policy where it differs from the upstream verdict (README "Math answers", ../shared/data/README.md
# label policy). case id -> (why, the verdict rft's policy wants).
UNORDERED = (
    "a bare comma list is unordered in rft (ordered_lists=false; README 'lists'); hendrycks' is_equiv compares "
    "normalised strings, so any reordering is unequal there"
)
ROUNDED = "a rounded decimal against an exact value: rft's policy is exact equality (0.333 is not 1/3)"
DECIMAL_COMMA = (
    "a decimal comma: rft reads a comma between digits as a thousands separator (3-digit groups) or a list "
    "separator, as competition golds use it; lighteval reads it as a decimal point"
)
WHOLE_TEXT_GOLD = (
    "the gold is a text with the choice inside a sentence (lighteval extracts the gold's letter as it extracts "
    "the prediction's); rft's reference is a final answer (item.answer), so rft is not judged on the case"
)
VALUE_NOT_FORM = (
    "value, not form: rft's default form=any equates \\frac{2}{4} and \\frac{1}{2} (form: reduced requires "
    "lowest terms); this checker refuses unreduced fractions on purpose"
)
VALUE_NOT_STRING = (
    "value, not form: rft equates `0.5` and `\\frac{1}{2}`; SkyRL's AIME scorer compares normalised strings"
)
ANSWER_NOT_FORMAT = (
    "rft grades the final answer, not the output's format: a broken end-of-turn marker after `\\boxed{42}` "
    "does not change the answer (the task's own format check, if any, is a separate grader); SkyRL's AIME "
    "scorer fails the output"
)
ANSWER_SENTENCE = "rft reads `The answer is 42` as the answer 42 (README: extraction); SkyRL's GSM8K scorer requires `#### 42`"
UNITS_IGNORED = (
    "units are ignored, never checked or converted (README: units): `5.8米` = `5.8`, and `0.4米` is not "
    "`40厘米`; GLM-V's judge checks and converts units"
)
ELLIPSIS = (
    "`0.333...` is read as a truncated decimal (an ellipsis also marks truncation, as in `3.14159...`): "
    "rft's policy is exact equality, and its exact repeating form is `0.\\overline{3}`"
)
REFERENCE_BOXES = (
    "rft reads every box of a reference as part of its answer (as in port_math_verify_tests.py): this gold "
    "is `1, 2, 3`; lighteval's gold extraction keeps only the last boxes joined by `and`"
)
BARE_LETTER = (
    "a choice letter inside prose with no answer phrase, box or option phrase (`therefore I think it's B`) "
    "is not extracted: rft's extraction does not depend on the gold's type, and a letter in a sentence is "
    "as likely a label as an answer (as in port_math_verify_tests.py)"
)
# case id -> (why, the verdict rft's policy wants: True, False, or None where rft is not judged on the case)
POLICY: dict[str, tuple[str, bool | None]] = {
    "hendrycks/math:math_equivalence_test.py::test_order": (UNORDERED, True),
    "hendrycks/math:math_equivalence_test.py::test_decimals": (UNORDERED, True),
    "THUDM/slime:test_rm_math.py::test_grade_answer_sympy_fraction_must_match_exactly:0": (
        VALUE_NOT_FORM,
        True,
    ),
    "thinking-machines-lab/tinker-cookbook:math_env_test.py::test_sympy_equivalence:0": (
        VALUE_NOT_FORM,
        True,
    ),
    "NovaSky-AI/SkyRL:test_aime.py::test_compute_score[4]": (VALUE_NOT_STRING, True),
    "NovaSky-AI/SkyRL:test_aime.py::test_compute_score[7]": (ANSWER_NOT_FORMAT, True),
    "NovaSky-AI/SkyRL:test_aime.py::test_compute_score[9]": (ANSWER_NOT_FORMAT, True),
    "NovaSky-AI/SkyRL:test_gsm8k.py::test_compute_score[2]": (ANSWER_SENTENCE, True),
    "zai-org/GLM-V:test_math_verifier.py::test_unit:2": (UNITS_IGNORED, True),
    "zai-org/GLM-V:test_math_verifier.py::test_unit:5": (UNITS_IGNORED, False),
    "zai-org/GLM-V:test_math_verifier.py::test_math_verifier_judge_equivalence:1": (ELLIPSIS, False),
    "huggingface/lighteval:test_extractive_match.py::test_math_numina_cases[35]": (REFERENCE_BOXES, False),
    "huggingface/lighteval:test_extractive_match.py::test_math_numina_cases[36]": (REFERENCE_BOXES, True),
    "huggingface/lighteval:test_extractive_match.py::test_extraction_abc[1]": (BARE_LETTER, False),
    "huggingface/lighteval:test_extractive_match.py::test_extraction_abc[8]": (WHOLE_TEXT_GOLD, None),
    "huggingface/lighteval:test_extractive_match.py::test_extraction_abc[9]": (WHOLE_TEXT_GOLD, None),
}


def git(git_dir: Path, *cmd: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *cmd], check=True, capture_output=True, text=True
    ).stdout


def git_dir(src: Path, repo: str) -> Path:
    base = src / repo.replace("/", "+")
    for cand in (base / "repo", base / ".git", base):
        if (cand / "HEAD").is_file():
            return cand
    raise FileNotFoundError(f"no clone of {repo} under {base}: git clone https://github.com/{repo} {base}")


def literal(node: ast.expr) -> Any:
    """A literal, or the attribute name of `Language.CHINESE`-style constants."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.JoinedStr):  # f"{math.sqrt(17):.15f}": evaluated with `math` and nothing else
        return eval(compile(ast.Expression(node), "<f-string>", "eval"), {"__builtins__": {}, "math": math})  # noqa: S307
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):  # a config object: its name
        return node.func.id
    if isinstance(node, ast.Tuple):
        return tuple(literal(e) for e in node.elts)
    if isinstance(node, ast.BinOp):  # `5 / 2`: arithmetic on number literals, evaluated with nothing else
        assert all(isinstance(n, ast.Constant | ast.BinOp | ast.operator) for n in ast.walk(node)), ast.dump(
            node
        )
        return eval(compile(ast.Expression(node), "<arith>", "eval"), {"__builtins__": {}})  # noqa: S307
    return ast.literal_eval(node)


def kind_of(answer: str) -> str:
    """The gold's answer structure, coarse: for grouping failures."""
    a = re.sub(r"\\(left|right|displaystyle|!|,|;|%|\$)", "", answer).strip().strip("$").strip()
    wrapper = r"\\(text|mathrm|textbf)\{([^{}]*)\}"
    a = re.fullmatch(wrapper, a)[2] if re.fullmatch(wrapper, a) else re.sub(wrapper, "", a)  # type: ignore[index]
    a = a.strip().rstrip("%")
    if re.fullmatch(r"\(?[A-E]\)?(\s.*)?", a, re.DOTALL) and len(a) < 40:
        return "choice"
    if "pmatrix" in a or "bmatrix" in a:
        return "matrix"
    if (
        re.search(r"(?<![\\a-z])(in|cup)\b|\\cup|\\in\b|\\infty", a)
        or re.fullmatch(r"[\[(].*,.*[\])]", a)
        and (a[0] != a[-1].translate(str.maketrans(")]", "([")))
    ):
        return "interval"
    if re.search(r"[<>]|\\[lg]eq?\b|\\[lg]t\b|\\neq", a):
        return "relation"
    if "=" in a:
        return "equation"
    if a.startswith(("\\{", "{")):
        return "set"
    if re.fullmatch(r"\(.*,.*\)", a):
        return "tuple"
    if "," in a or " and " in a:
        return "list"
    if re.fullmatch(r"-?\d+", a):
        return "integer"
    if re.fullmatch(r"-?\d*\.\d+", a):
        return "decimal"
    if re.fullmatch(r"-?(\\[dt]?frac\{?\d+\}?\{?\d+\}?|\d+/\d+)", a):
        return "fraction"
    if re.search(r"[\u4e00-\u9fff]", a) or re.fullmatch(r"[A-Za-z ,.']{2,}", a):
        return "text"
    return "expression"


def row(
    src: Src, test: str, line: int, gold: str, pred: str, expected: bool, **config: Any
) -> dict[str, Any]:
    case_id = f"{src.repo}:{Path(src.file).name}::{test}"
    reference = gold
    if m := re.fullmatch(r"\$([^$]*)\$", gold.strip(" ")):  # LaTeX span golds: rft's reference is the answer
        reference = m.group(1)
    why, rft_expected = POLICY.get(case_id, (None, expected))
    return {
        "id": case_id,
        "source": src.repo,
        "file": src.file,
        "commit": src.commit,
        "licence": src.licence,
        "line": line,
        "test": test,
        "gold": gold,
        "prediction": pred,
        "expected": expected,
        "config": config,
        "policy": "differs" if why else "same",  # the README policy on this case, vs the upstream verdict
        "why": why,
        "rft_expected": rft_expected,
        "kind": kind_of(reference),
        "item": {"answer": reference},
        "sample": {"output_text": pred},
    }


def port_hendrycks(src: Src, source: str) -> Iterator[dict[str, Any]]:
    """`test_in = ...; test_out = ...; self.assertTrue/False(is_equiv(test_in, test_out))`."""
    for fn in ast.walk(ast.parse(source)):
        if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_")):
            continue
        names = {
            t.id: ast.literal_eval(n.value)
            for n in fn.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
            if isinstance(call.func, ast.Attribute) and call.func.attr in ("assertTrue", "assertFalse"):
                inner = call.args[0]
                assert isinstance(inner, ast.Call) and getattr(inner.func, "id", "") == "is_equiv", fn.name
                gold, pred = (names[a.id] if isinstance(a, ast.Name) else literal(a) for a in inner.args)
                yield row(src, fn.name, call.lineno, gold, pred, call.func.attr == "assertTrue",
                    call="is_equiv"
                )  # fmt: skip


def parametrized(source: str) -> Iterator[tuple[ast.FunctionDef, int, int, dict[str, Any]]]:
    """(test function, case index, line, {argname: value}) for every pytest/parameterized table."""
    for fn in ast.parse(source).body:
        for node in ast.walk(fn):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if not isinstance(deco, ast.Call):
                    continue
                attr = getattr(deco.func, "attr", "")
                if attr == "parametrize":
                    argnames = [n.strip() for n in ast.literal_eval(deco.args[0]).split(",")]
                    table = deco.args[1]
                elif attr == "expand":  # parameterized.expand: the test's own parameters, after self
                    argnames = [a.arg for a in node.args.args[1:]]
                    table = deco.args[0]
                else:
                    continue
                assert isinstance(table, ast.List), f"{node.name}: the table is not a list literal"
                for i, case in enumerate(table.elts):
                    if len(argnames) == 1:  # one parameter: the table holds its values
                        yield node, i, case.lineno, {argnames[0]: literal(case)}
                        continue
                    assert isinstance(case, ast.Tuple), f"{node.name}[{i}] is not a tuple"
                    values = [literal(e) for e in case.elts]
                    yield node, i, case.lineno, dict(zip(argnames, values, strict=True))


def callee(call: ast.Call) -> str:
    """`f(...)` -> "f", `obj.f(...)` -> "f"."""
    return getattr(call.func, "id", "") or getattr(call.func, "attr", "")


def local_strings(fn: ast.FunctionDef) -> dict[str, Any]:
    """Names a test function assigns literals to (`question = "..."`)."""
    out = {}
    for n in ast.walk(fn):
        if isinstance(n, ast.Assign):
            for t in n.targets:
                if isinstance(t, ast.Name):
                    with contextlib.suppress(ValueError):  # not a literal: not a case's input
                        out[t.id] = ast.literal_eval(n.value)
    return out


def body_calls(source: str, name: str) -> Iterator[tuple[ast.FunctionDef, int, ast.Call, Any]]:
    """`assert name(...) == expected` written out in a test body: (function, index, call, expected)."""
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef) or any(
            isinstance(d, ast.Call) and getattr(d.func, "attr", "") in ("parametrize", "expand")
            for d in fn.decorator_list
        ):
            continue
        calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call) and callee(c) == name]
        for i, call in enumerate(calls):
            parent = next(p for p in ast.walk(fn) if isinstance(p, ast.Compare) and call in ast.walk(p))
            yield fn, i, call, ast.literal_eval(parent.comparators[0])


def math_verify_pairs(mv_dir: Path) -> set[tuple[str, str]]:
    """Every (gold, prediction) pair in Math-Verify's tests, to leave out what port_math_verify_tests.py has."""
    pairs = set()
    for path in git(mv_dir, "ls-tree", "-r", "--name-only", MATH_VERIFY[1], "tests/").split():
        if not path.endswith(".py"):
            continue
        source = git(mv_dir, "show", f"{MATH_VERIFY[1]}:{path}")
        for _fn, _i, _line, args in parametrized(source):
            vals = list(args.values())
            if len(vals) >= 2 and isinstance(vals[0], str) and isinstance(vals[1], str):
                pairs.add((vals[0], vals[1]))
        for _fn, _i, call, _exp in body_calls(source, "compare_strings"):
            pairs.add((ast.literal_eval(call.args[0]), ast.literal_eval(call.args[1])))
    return pairs


def port_lighteval(src: Src, source: str, seen: set[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    for fn, i, line, args in parametrized(source):
        if (args["gold"], args["pred"]) in seen:
            continue
        # match types as the test function passes them (a parameter, else the literal in its body)
        call = next(
            c
            for c in ast.walk(fn)
            if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "compare_strings"
        )
        kw = {k.arg: k.value for k in call.keywords}
        match = args.get("match_type") or (
            ast.literal_eval(kw["match_types"]) if "match_types" in kw else None
        )
        config = {"call": "compare_strings", "match_types": match or ["latex", "expr"]}
        config["precision"] = args.get("precision", 6)
        if "language" in args:
            config["language"] = args["language"]
        yield row(src, f"{fn.name}[{i}]", line, args["gold"], args["pred"], bool(args["expected"]), **config)
    for fn, i, call, expected in body_calls(source, "compare_strings"):
        gold, pred = (ast.literal_eval(a) for a in call.args[:2])
        if (gold, pred) in seen:
            continue
        kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        yield row(
            src, f"{fn.name}:{i}", call.lineno, gold, pred, bool(expected), call="compare_strings", **kw
        )


def port_accuracy_reward(src: Src, source: str) -> Iterator[dict[str, Any]]:
    """`completion = [[{"content": ...}], ...]; solution = [...]; rewards = accuracy_reward(completion,
    solution)`, then `rewards[i] == v` asserted; cases whose expected reward is None (no gold) are left out."""
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef):
            continue
        calls = [
            c
            for c in ast.walk(fn)
            if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "accuracy_reward"
        ]
        if len(calls) != 1 or not all(isinstance(a, ast.Name) for a in calls[0].args[:2]):
            continue
        values = {
            t.id: n.value
            for n in ast.walk(fn)
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        comp_name, sol_name = (a.id for a in calls[0].args[:2])  # type: ignore[attr-defined]
        try:
            completions = ast.literal_eval(values[comp_name])
            solutions = ast.literal_eval(values[sol_name])
        except (KeyError, ValueError):
            continue
        for node in ast.walk(fn):  # rewards[i] == v   or   self.assertEqual(rewards[i], v)
            if isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.Eq):
                lhs, rhs = node.left, node.comparators[0]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "assertEqual":
                lhs, rhs = node.args[0], node.args[1]
            else:
                continue
            if not (isinstance(lhs, ast.Subscript) and isinstance(lhs.slice, ast.Constant)):
                continue
            i, expected = lhs.slice.value, ast.literal_eval(rhs)
            if expected is None:
                continue
            pred = completions[i][0]["content"]
            yield row(src, f"{fn.name}[{i}]", node.lineno, solutions[i], pred, expected == 1.0,
                call="accuracy_reward"
            )  # fmt: skip


def port_math_equal_pairs(src: Src, source: str) -> Iterator[dict[str, Any]]:
    """NeMo-Skills: `math_equal(a, b)` and `math_equal(b, a)` both asserted True (test_correct_examples) or
    False (test_incorrect_examples): one case per direction, the first argument as gold. Numbers (`5`, `5 / 2`)
    become their Python `str`; a pair with `None` (no answer) is left out."""
    for fn, i, line, args in parametrized(source):
        a, b = args["output_pair"]
        if a is None or b is None:
            continue
        expected = {"test_correct_examples": True, "test_incorrect_examples": False}[fn.name]
        for suffix, (gold, pred) in (("", (a, b)), (":reversed", (b, a))):
            yield row(src, f"{fn.name}[{i}]{suffix}", line, str(gold), str(pred), expected, call="math_equal"
            )  # fmt: skip


def port_slime(src: Src, source: str) -> Iterator[dict[str, Any]]:
    """slime's math_utils tests: `_strip_string(raw) == normal` tables (the pair is equal),
    `grade_answer_mathd/sympy(given, ground_truth)` and `grade_answer_verl(solution, ground_truth)` asserted
    True or False, and `mathd_normalize_answer(raw) == normal`. An empty ground truth is left out."""
    for fn, i, line, args in parametrized(source):
        if fn.name == "test_strip_string_canonical_substitutions":
            gold, pred, call = args["expected"], args["raw"], "_strip_string"
        elif fn.name == "test_grade_answer_mathd_canonical_equivalences":
            gold, pred, call = args["gt"], args["given"], "grade_answer_mathd"
        else:
            continue
        yield row(src, f"{fn.name}[{i}]", line, gold, pred, True, call=call)
    for name in ("grade_answer_mathd", "grade_answer_sympy", "grade_answer_verl", "mathd_normalize_answer"):
        for fn, i, call, expected in body_calls(source, name):
            args = [ast.literal_eval(a) for a in call.args]
            if not all(isinstance(a, str) and a for a in args):
                continue  # None or an empty ground truth: no pair
            if name == "mathd_normalize_answer":
                pred, gold, expected = args[0], expected, True
            else:
                pred, gold = args
            yield row(src, f"{fn.name}:{i}", call.lineno, gold, pred, bool(expected), call=name)


def port_glmv(src: Src, source: str) -> Iterator[dict[str, Any]]:
    """GLM-V's MathVerifier tests: `math_verifier.judge(extracted_answer, ground_truth, question=...) == v`.
    Calls with a None side are left out; the question (GLM-V's judge may read it) is kept in `config`."""
    for fn, i, call, expected in body_calls(source, "judge"):
        values = local_strings(fn)
        args = [ast.literal_eval(a) for a in call.args]
        if any(a is None for a in args):
            continue
        config: dict[str, Any] = {"call": "MathVerifier.judge"}
        for kw in call.keywords:
            config[kw.arg or ""] = (
                values[kw.value.id] if isinstance(kw.value, ast.Name) else literal(kw.value)
            )
        pred, gold = args
        yield row(src, f"{fn.name}:{i}", call.lineno, gold, pred, expected == 1.0, **config)


def port_areal(src: Src, source: str) -> Iterator[dict[str, Any]]:
    """AReaL: `reward = gsm8k_reward_fn(completions=..., answer=...)`, then `assert reward == v`. The
    geometry3k cases (its `[answer]` bracket format) and calls with a None answer are left out."""
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef):
            continue
        calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call) and callee(c) == "gsm8k_reward_fn"]
        checks = [
            n for n in ast.walk(fn)
            if isinstance(n, ast.Compare) and getattr(n.left, "id", "") == "reward" and isinstance(n.ops[0], ast.Eq)
        ]  # fmt: skip
        if len(calls) != 1 or len(checks) != 1:
            continue
        kw = {
            k.arg: ast.literal_eval(k.value) for k in calls[0].keywords if k.arg in ("completions", "answer")
        }
        if kw.get("answer") is None:
            continue
        expected = ast.literal_eval(checks[0].comparators[0]) == 1.0
        yield row(src, fn.name, calls[0].lineno, kw["answer"], kw["completions"], expected,
            call="gsm8k_reward_fn"
        )  # fmt: skip


def port_skyrl(src: Src, source: str) -> Iterator[dict[str, Any]]:
    """SkyRL's skyrl-gym envs: `(output, ground_truth, expected)` tables; reward 1.0 is right, 0.0 or -1.0
    wrong."""
    for fn, i, line, args in parametrized(source):
        yield row(src, f"{fn.name}[{i}]", line, args["ground_truth"], args["output"],
            args["expected"] == 1.0, call=f"skyrl_gym.make({Path(src.file).stem.removeprefix('test_')!r}).step"
        )  # fmt: skip


def port_tinker(src: Src, source: str) -> Iterator[dict[str, Any]]:
    """tinker-cookbook: `grade_answer(given_answer, ground_truth) is True/False`; a None side is left out."""
    for fn, i, call, expected in body_calls(source, "grade_answer"):
        args = [ast.literal_eval(a) for a in call.args]
        if not all(isinstance(a, str) for a in args):
            continue
        pred, gold = args
        yield row(src, f"{fn.name}:{i}", call.lineno, gold, pred, bool(expected), call="grade_answer")


def port_strip_string(src: Src, source: str) -> Iterator[dict[str, Any]]:
    """`strip_string(input) == output`: the normal form as gold, the input as prediction, equal."""
    for fn, i, line, args in parametrized(source):
        gold, pred = args["expected_output"], args["input_string"]
        yield row(src, f"{fn.name}[{i}]", line, gold, pred, True, call="strip_string")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--src", type=Path, required=True, help="DIR holding <owner>+<name> clones of each source"
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    seen = math_verify_pairs(git_dir(args.src, MATH_VERIFY[0]))
    rows: list[dict[str, Any]] = []
    port = {
        "hendrycks/math": port_hendrycks,
        "huggingface/lighteval": lambda src, text: port_lighteval(src, text, seen),
        "huggingface/open-r1": port_accuracy_reward,
        "huggingface/trl": port_accuracy_reward,
        "NVIDIA/NeMo-Skills": port_math_equal_pairs,
        "THUDM/slime": port_slime,
        "zai-org/GLM-V": port_glmv,
        "inclusionAI/AReaL": port_areal,
        "NovaSky-AI/SkyRL": port_skyrl,
        "thinking-machines-lab/tinker-cookbook": port_tinker,
        "allenai/open-instruct": port_strip_string,
    }
    for src in SOURCES:
        text = git(git_dir(args.src, src.repo), "show", f"{src.commit}:{src.file}")
        new = [r for r in port[src.repo](src, text) if (r["gold"], r["prediction"]) not in seen]
        print(
            f"{src.repo} {Path(src.file).name}: {len(new)} cases ({sum(r['policy'] == 'same' for r in new)} same)"
        )
        rows += new
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    unknown = set(POLICY) - set(ids)
    assert not unknown, f"POLICY names cases that do not exist: {sorted(unknown)}"
    with open(args.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} cases -> {args.out}")


if __name__ == "__main__":
    main()
