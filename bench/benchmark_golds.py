"""Gold and decoy answers of the math benchmark suites through each suite's own grader.

For every held-out item of each suite: the gold answer as a model would write it (a short solution ending
in ``\\boxed{gold}``) must score 1, and a decoy must score 0. The decoy is the gold with its last number
changed by one (``\\frac{1}{2n+2}`` -> ``\\frac{1}{2n+3}``, ``4.5e33`` -> ``4.5e34``; a gold without a
digit gets ``-31415926``), so it tests the rules that accept the golds (units, tolerance, lists, ...), not
just the extraction. Prints per suite: rows, golds accepted, decoys rejected, grader errors/timeouts, and
the seconds per graded answer; then the golds that failed (``--misses``: all of them, else 10 per suite).
Anchor: the same pairs graded by the plain ``math`` grader spec (defaults, no per-item options), so the
ratio shows what the suite's grader options cost.

Suites whose data is absent here are listed as skipped. Run:
  python bench/benchmark_golds.py [--suites aime24-v0,...] [--misses] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SUITES = ["aime24-v0", "amc23-v0", "minerva-math-v0", "olympiadbench-v0", "math500-v0"]
GOLD = (
    "We work through the problem step by step and check the result.\n\nThe final answer is $\\boxed{{{}}}$."
)
_LAST_INT = re.compile(r"\d+(?!.*\d)", re.S)


def decoy(gold: str, tolerance: str = "") -> str:
    """The gold with its last run of digits increased by one (a near miss), or a number far off; where
    the item has a tolerance, the gold plus twice the tolerance."""
    if tolerance and _PLAIN_NUMBER.match(gold):
        return f"{float(gold) + 2 * float(tolerance):g}"
    m = _LAST_INT.search(gold)
    if m is None:
        return "-31415926"
    return f"{gold[: m.start()]}{int(m.group()) + 1:0{len(m.group())}d}{gold[m.end() :]}"


_SCI = re.compile(r"^(-?\d+(?:\.\d+)?)e([+-]?\d+)$")
_TIMES_TEN = re.compile(r"^(-?\d+(?:\.\d+)?)\s*\\times\s*10\^\{?([+-]?\d+)\}?$")
_LABEL = re.compile(r"^(?:[A-Za-z](?:_\{?[\w ]+\}?)?(?:\([a-z]\))?)\s*=\s*([^=]+)$")
_PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")  # a word, not a command: 'where b is an integer'
_PLAIN_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


def top_level_parts(text: str) -> list[str]:
    """`text` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for j, ch in enumerate(text):
        depth += ch in "([{" and text[j - 1 : j] != "\\"
        depth -= ch in ")]}" and text[j - 1 : j] != "\\"
        if ch == "," and depth == 0:
            parts.append(text[start:j].strip())
            start = j + 1
    return [*parts, text[start:].strip()]


def forms(gold: str, item: dict[str, Any]) -> dict[str, str]:
    """Other ways a model writes the same answer, each named: the verbatim gold is checked apart."""
    out: dict[str, str] = {}
    if item.get("tolerance") and _PLAIN_NUMBER.match(gold):  # inside the row's tolerance
        out["within tolerance"] = f"{float(gold) + float(item['tolerance']) / 2:g}"
    if (m := _SCI.match(gold)) is not None:  # 4.5e33 -> 4.5 \times 10^{33}
        out["x10^n"] = f"{m.group(1)} \\times 10^{{{int(m.group(2))}}}"
    if (m := _TIMES_TEN.match(gold)) is not None:
        out["e-notation"] = f"{m.group(1)}e{m.group(2)}"
    if _PLAIN_NUMBER.match(gold):
        unit = item.get("unit")
        if unit == "^{\\circ}":
            out["unit"] = f"{gold}^{{\\circ}}"
        elif unit == "%":
            out["unit"] = f"{gold}\\%"
        elif unit:
            out["unit"] = f"{gold} \\text{{ {unit.strip('$')} }}"
        else:
            out["unit"] = f"{gold} \\mathrm{{~m}} / \\mathrm{{s}}"
        if "." not in gold:
            out["decimal"] = f"{gold}.0"
        if gold.lstrip("-").startswith("0") and gold.lstrip("-") != "0" and "." not in gold:
            out["no leading zero"] = str(int(gold))
    if _PLAIN_NUMBER.match(gold):
        out["labelled"] = f"x = {gold}"
    if "\\frac" in gold:
        out["dfrac"] = gold.replace("\\frac", "\\dfrac")
    if any(b in gold for b in "()[]"):  # tuples, intervals
        out["left/right"] = re.sub(
            r"(?<!\\)([(\[])", r"\\left\1", re.sub(r"(?<!\\)([)\]])", r"\\right\1", gold)
        )
    parts = top_level_parts(gold)
    if len(parts) > 1 and not _PROSE.search(gold):
        out["reordered"] = ", ".join(reversed(parts))
        out["set braces"] = "\\{" + ", ".join(parts) + "\\}"
        out["boxes joined by and"] = "} and \\boxed{".join(parts)  # GOLD wraps the whole in \boxed{...}
    elif (m := _LABEL.match(gold)) is not None:  # f(x)=2x -> 2x, k=1 -> 1
        out["unlabelled"] = m.group(1).strip()
    return out


def grade_suite(suite_id: str) -> dict[str, Any] | None:
    from sympy.core.cache import clear_cache as clear_sympy_cache

    from rft.envs import get_suite
    from rft.envs.sources import SourceUnavailable
    from rft.graders import load_grader
    from rft.graders.math import clear_caches

    suite = get_suite(suite_id)
    try:
        items = suite.items("heldout")
    except SourceUnavailable as e:
        print(f"{suite_id}: skipped ({e.reason})")
        return None
    grader = suite.load_grader()
    plain = load_grader(
        {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}"}
    )
    for g in (grader, plain):  # imports and first-use costs outside the timings
        g.grade({"output_text": GOLD.format(items[0]["reference"])}, items[0])
    rows: dict[str, Any] = {"suite": suite_id, "rows": len(items), "gold_ok": 0, "decoy_rejected": 0,
                            "errors": 0, "misses": [], "decoys_accepted": [], "forms": {}, "form_misses": []}  # fmt: skip
    spent = [0.0, 0.0]  # seconds: the suite's grader, the plain one
    for n, item in enumerate(items):
        gold = str(item["reference"])
        wrong = decoy(gold, str(item.get("tolerance") or ""))
        order = ((grader, 0), (plain, 1)) if n % 2 == 0 else ((plain, 1), (grader, 0))  # no order effect
        for text, want in ((GOLD.format(gold), 1.0), (GOLD.format(wrong), 0.0)):
            for which, k in order:
                clear_caches()  # both timed cold: each answer parsed from scratch, sympy's cache empty too
                clear_sympy_cache()
                t0 = time.perf_counter()
                result = which.grade({"output_text": text}, item)
                spent[k] += time.perf_counter() - t0
                if k == 0:
                    g = result
            if g.status in ("error", "timeout"):
                rows["errors"] += 1
            if want == 1.0 and g.score == 1.0:
                rows["gold_ok"] += 1
            elif want == 1.0:
                rows["misses"].append({"id": item["id"], "gold": gold, "status": g.status,
                                       "rule": g.details.get("rule"), "extracted": g.extracted})  # fmt: skip
            elif g.score == 0.0:
                rows["decoy_rejected"] += 1
            else:
                rows["decoys_accepted"].append({"id": item["id"], "gold": gold, "decoy": wrong})
    for item in items:
        for name, text in forms(str(item["reference"]), item).items():
            g = grader.grade({"output_text": GOLD.format(text)}, item)
            seen = rows["forms"].setdefault(name, [0, 0])
            seen[0] += 1
            seen[1] += g.score == 1.0
            if g.score != 1.0:
                rows["form_misses"].append({"id": item["id"], "gold": str(item["reference"]), "form": name,
                                            "text": text, "rule": g.details.get("rule")})  # fmt: skip
    rows["ms_per_answer"] = 1000 * spent[0] / (2 * len(items))
    rows["plain_ms_per_answer"] = 1000 * spent[1] / (2 * len(items))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suites", default=",".join(SUITES), help="comma-separated suite ids")
    ap.add_argument("--misses", action="store_true", help="list every gold that failed")
    ap.add_argument("--json", type=Path, help="also write the results (misses included) to this file")
    args = ap.parse_args()
    os.environ.setdefault("RFT_DATA", str(DATA))
    results = [r for s in args.suites.split(",") if (r := grade_suite(s.strip())) is not None]
    head = f"{'suite':<18}{'rows':>6}{'golds ok':>14}{'decoys rejected':>18}{'errors':>8}{'ms/answer':>11}{'ratio':>7}"
    print(head)
    print("-" * len(head))
    for r in results:
        ok = f"{r['gold_ok']} ({100 * r['gold_ok'] / r['rows']:.1f}%)"
        ratio = r["ms_per_answer"] / r["plain_ms_per_answer"]
        print(f"{r['suite']:<18}{r['rows']:>6}{ok:>14}{r['decoy_rejected']:>18}{r['errors']:>8}"
              f"{r['ms_per_answer']:>11.2f}{ratio:>7.2f}")  # fmt: skip
    print("\nother forms of the golds (accepted / graded):")
    for r in results:
        print(f"  {r['suite']:<18}" + ", ".join(f"{k} {a}/{n}" for k, (n, a) in sorted(r["forms"].items())))
    print("ratio: the suite's grader time / the plain math grader's on the same answers (same run, noisy)")
    for r in results:
        shown = r["misses"] if args.misses else r["misses"][:10]
        for m in shown:
            print(
                f"  {r['suite']} miss {m['id']}: gold {m['gold']!r} -> {m['status']} {m['rule']} {m['extracted']!r}"
            )
        for m in r["form_misses"] if args.misses else r["form_misses"][:10]:
            print(
                f"  {r['suite']} form miss {m['id']} ({m['form']}): gold {m['gold']!r} as {m['text']!r} -> {m['rule']}"
            )
        for d in r["decoys_accepted"]:
            print(f"  {r['suite']} DECOY ACCEPTED {d['id']}: gold {d['gold']!r} decoy {d['decoy']!r}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
