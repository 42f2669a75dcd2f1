"""Several suites in one evaluation (`rft eval --suites a,b,c`): a model-card table.

Each suite is evaluated into its own evaluation folder ``OUT/<suite id>/`` (see `rft.eval.evaluate`), the
model loaded once for all of them; ``OUT/results.json`` gathers every suite's results and the settings it
was sampled with, and ``OUT/report.md`` shows one table (a row per suite, a column per metric, each value
with its 95% interval).

Sampling settings, per suite, by precedence: a flag given on the command line (the `given` fields), else
the suite's ``eval:`` section (a benchmark's fixed ``n``, ``k``, ``temperature``, ``top_p``,
``max_new_tokens``), else `rft eval`'s default. A suite folder that is already complete with the same
settings is kept, not sampled again (a killed run resumes where it stopped).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from rft.envs import Suite, get_suite
from rft.eval.evaluate import compare_runs, eval_config, evaluate_suite, fmt_ci, load_eval
from rft.eval.spec import EvalSpec

__all__ = [
    "KIND", "SUITE_SETTINGS", "suite_spec", "evaluate_suites", "card_table", "is_combined", "load_combined",
    "suite_folders", "compare_evals",
]  # fmt: skip

KIND = "rft-eval-suites"  # results.json's "kind" in a folder of several suites
# EvalSpec field <- the key of a suite's `eval:` section
SUITE_SETTINGS = {"n": "n", "ks": "k", "temperature": "temperature", "top_p": "top_p",
                  "max_new_tokens": "max_new_tokens"}  # fmt: skip
FROM_FLAG, FROM_SUITE, FROM_DEFAULT = "command line", "suite", "default"
_WHERE = {FROM_FLAG: "the command line", FROM_SUITE: "the suite's eval:", FROM_DEFAULT: "rft eval's default"}

Tick = Callable[[int, int], None]


def suite_spec(
    fields: Mapping[str, Any], given: Collection[str], suite: Suite
) -> tuple[EvalSpec, dict[str, str]]:
    """The `EvalSpec` for `suite`: `fields` (EvalSpec's keywords: the command's values, given or default),
    where a setting the suite's ``eval:`` fixes replaces a default one but not one named in `given` (given
    on the command line). Returns the spec and where each sampling setting came from."""
    fixed = suite.eval.fixed()
    merged, origin = dict(fields), {}
    for name, key in SUITE_SETTINGS.items():
        if name in given:
            origin[name] = FROM_FLAG
        elif key in fixed:
            merged[name], origin[name] = fixed[key], FROM_SUITE
        else:
            origin[name] = FROM_DEFAULT
    try:
        spec = EvalSpec(**merged)
    except ValueError as e:
        said = ", ".join(
            f"{SUITE_SETTINGS[n]} {_show(merged.get(n))} from {_WHERE[origin[n]]}"
            for n in ("n", "ks", "temperature")
        )
        raise ValueError(
            f"suite {suite.id}: {e} ({said}); a flag given on the command line overrides the suite's eval: "
            "setting, so give the others it needs too (e.g. --n with --k)"
        ) from None
    return spec, origin


def _show(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple | list) else str(value)


def _settings(spec: EvalSpec) -> dict[str, Any]:
    return {"n": spec.n, "ks": list(spec.ks), "temperature": spec.sampling_temperature, "top_p": spec.top_p,
            "max_new_tokens": spec.max_new_tokens}  # fmt: skip


def _complete(folder: Path, config: dict[str, Any]) -> bool:
    """The folder holds a finished evaluation (its report written last) made with exactly `config`."""
    if not (folder / "report.md").is_file() or not (folder / "problems.jsonl").is_file():
        return False
    try:
        done = json.loads((folder / "results.json").read_text()).get("config")
    except (OSError, json.JSONDecodeError):
        return False
    return bool(done == json.loads(json.dumps(config)))


def evaluate_suites(
    model: str,
    fields: Mapping[str, Any],
    suites: Sequence[str],
    out: str | Path,
    *,
    given: Collection[str] = (),
    solution: Callable[[Any, dict[str, Any]], str | None] | None = None,
    bars: Callable[[str], AbstractContextManager[Tick]] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate `model` on each suite into ``out/<suite id>/`` and write the combined ``out/results.json``
    and ``out/report.md``. `fields` are EvalSpec's keywords (without ``suite``) and `given` the names of
    those given on the command line (see `suite_spec`). Every suite's settings and data are checked before
    the model loads; a local model loads once. `bars(suite id)` opens a progress bar; `log` says which suites were
    kept from an earlier run. Returns the combined document (results.json)."""
    if not suites:
        raise ValueError("--suites names no suite; give comma-separated ids like aime24-v0,amc23-v0")
    plan: list[tuple[Suite, EvalSpec, dict[str, str]]] = []
    for name in suites:
        src = get_suite(name)
        if any(s.id == src.id for s, _, _ in plan):
            raise ValueError(f"suite {src.id} is named twice in --suites")
        spec, origin = suite_spec({**fields, "suite": name}, given, src)
        if not src.items(spec.split):  # reads the data now: a suite whose data is missing stops the run here
            raise ValueError(f"suite {src.id} has no {spec.split!r} problems; evaluate another split (--split)")
        plan.append((src, spec, origin))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded: Any = None
    entries: dict[str, dict[str, Any]] = {}
    try:
        for src, spec, origin in plan:
            folder = out / src.id
            resumed = _complete(folder, eval_config(model, spec, src.id))
            if resumed:
                scored = load_eval(folder)
                if log is not None:
                    log(f"{src.id}: kept the complete evaluation in {folder} (same settings)")
            else:
                if loaded is None and spec.engine != "openai":
                    loaded = _open(model, spec)
                with bars(src.id) if bars is not None else nullcontext(None) as tick:
                    scored = evaluate_suite(
                        model, spec, folder, solution=solution, progress=tick, loaded=loaded
                    )
            entries[src.id] = {
                "dir": src.id, "settings": _settings(spec), "from": origin, "resumed": resumed,
                "config": scored.get("config", {}), "results": scored["results"],
                **({"request_failures": scored["request_failures"]} if scored.get("request_failures") else {}),
            }  # fmt: skip
    finally:
        if loaded is not None:
            loaded[0].close()
    spec0 = plan[0][1]
    doc = {
        "kind": KIND,
        "model": model,
        "settings": {
            "engine": spec0.engine,
            "split": spec0.split,
            "limit": spec0.limit,
            "seed": spec0.seed,
            "fewshot": spec0.fewshot,
            "model_args": spec0.model_args,
            "given": {name: _jsonable(fields.get(name)) for name in sorted(given)},
        },
        "suites": entries,
        "results": [r for e in entries.values() for r in e["results"]],
    }
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "report.md").write_text(_report(doc))
    return doc


def _open(model: str, spec: EvalSpec) -> Any:
    import torch

    from rft.eval.engines import open_local

    torch.set_num_threads(spec.torch_threads)
    return open_local(spec, model)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def is_combined(folder: str | Path) -> bool:
    """Whether `folder` holds an evaluation of several suites (`evaluate_suites`)."""
    path = Path(folder) / "results.json"
    try:
        return path.is_file() and json.loads(path.read_text()).get("kind") == KIND
    except json.JSONDecodeError:
        return False


def load_combined(folder: str | Path) -> dict[str, Any]:
    """The results.json of a folder of several suites; raises ValueError when it is not one."""
    if not is_combined(folder):
        raise ValueError(f"{folder} is not a folder of several suites (rft eval --suites ... --out FOLDER)")
    doc: dict[str, Any] = json.loads((Path(folder) / "results.json").read_text())
    return doc


# --------------------------------------------------------------------------------------------- the table


def _metric_order(metric: str) -> tuple[int, int, str]:
    kind, _, k = metric.partition("@")
    rank = {"pass": 0, "maj": 1, "mean": 2}.get(kind, 3)
    return rank, int(k) if k.isdigit() else 0, metric


FAILURES = ("grader/timeout_rate", "grader/error_rate", "eval/request_error_rate")


def card_table(doc: Mapping[str, Any], sep: str = " ") -> tuple[list[str], list[list[str]]]:
    """The model-card table of a combined results document: a header and one row of cells per suite
    (problems, samples per problem, each metric as ``value [lo, hi]``, `sep` between the two; a column of
    grader and request failure rates when any sample failed to grade)."""
    suites = doc["suites"]
    metrics = sorted(
        {r["metric"] for e in suites.values() for r in e["results"] if "/" not in r["metric"]},
        key=_metric_order,
    )
    failing = any(r["value"] for e in suites.values() for r in e["results"] if r["metric"] in FAILURES)
    header = ["suite", "problems", "n", *metrics, *(["failed to grade"] if failing else [])]
    rows = []
    for sid, e in suites.items():
        by = {r["metric"]: r for r in e["results"]}
        cells = [sid, str(next(iter(by.values()))["n_problems"]), str(e["settings"]["n"])]
        cells += [f"{by[m]['value']:.3f}{sep}{fmt_ci(by[m]['ci95'])}" if m in by else "-" for m in metrics]
        if failing:
            cells.append(f"{sum(by[m]['value'] for m in FAILURES if m in by):.3f}")
        rows.append(cells)
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def _report(doc: Mapping[str, Any]) -> str:
    s = doc["settings"]
    lines = [f"# Evaluation of {len(doc['suites'])} suites", "",
             f"model: `{doc['model']}`, engine `{s['engine']}`, split {s['split']}, limit {s['limit']}, "
             f"seed {s['seed']}, fewshot {s['fewshot']}", ""]  # fmt: skip
    lines += [*_md_table(*card_table(doc)), ""]
    lines += ["Values: the mean over problems with its 95% percentile-bootstrap interval over problems. pass@k: "
              "unbiased estimator (Chen et al. 2021); maj@k: majority vote over the first k samples' extracted "
              "answers; n: samples per problem. A sample whose grader timed out or failed counts as not passed "
              "(the `failed to grade` column, when shown, is its rate).", ""]  # fmt: skip
    lines += ["## Sampling settings", "",
              "A flag given on the command line, else the suite's `eval:` section, else rft eval's default.", ""]  # fmt: skip
    rows = []
    for sid, e in doc["suites"].items():
        st, origin = e["settings"], e["from"]
        fixed = [n for n, o in origin.items() if o == FROM_SUITE]
        flags = [n for n, o in origin.items() if o == FROM_FLAG]
        rows.append([sid, str(st["n"]), ",".join(map(str, st["ks"])), f"{st['temperature']:g}", f"{st['top_p']:g}",
                     str(st["max_new_tokens"]), ", ".join(fixed) or "-", ", ".join(flags) or "-"])  # fmt: skip
    header = ["suite", "n", "k", "temperature", "top_p", "max_new_tokens", "from the suite", "from flags"]
    lines += [*_md_table(header, rows), ""]
    lines += ["## Per suite", ""]
    for sid, e in doc["suites"].items():
        kept = " (kept from an earlier run with the same settings)" if e.get("resumed") else ""
        lines.append(f"- [{sid}]({e['dir']}/report.md): samples, per-problem scores and plots{kept}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ compare


def suite_folders(folder: str | Path) -> dict[str, Path]:
    """The evaluation folder of each suite in `folder`: those of a folder of several suites, or the folder
    itself for each suite an `rft eval --suite` folder holds."""
    folder = Path(folder)
    if is_combined(folder):
        return {sid: folder / e["dir"] for sid, e in load_combined(folder)["suites"].items()}
    return {sid: folder for sid in dict.fromkeys(r["suite"] for r in load_eval(folder)["results"])}


def compare_evals(
    a_dir: str | Path, b_dir: str | Path, out: str | Path | None = None, *, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """`compare_runs` suite by suite: two `rft eval` folders, either of several suites (`evaluate_suites`)
    or of one. Two one-suite folders compare as `compare_runs` does. Otherwise each suite both hold is
    compared into ``out/<suite id>/`` and one table of every suite's verdict and paired difference goes to
    ``out/compare.md`` and ``out/compare.json``; suites only one side holds, or whose problems differ, are
    listed as not compared."""
    if not is_combined(a_dir) and not is_combined(b_dir):
        return compare_runs(a_dir, b_dir, out, n_boot=n_boot, seed=seed)
    fa, fb = suite_folders(a_dir), suite_folders(b_dir)
    common = [s for s in fa if s in fb]
    if not common:
        raise ValueError(
            f"the runs share no suite: A has {', '.join(fa)}, B has {', '.join(fb)}; compare evaluations of "
            "the same suites"
        )
    comparisons, skipped = (
        [],
        {s: "only in A" for s in fa if s not in fb} | {s: "only in B" for s in fb if s not in fa},
    )
    for sid in common:
        try:
            res = compare_runs(
                fa[sid], fb[sid], None if out is None else Path(out) / sid, n_boot=n_boot, seed=seed
            )
        except ValueError as e:
            skipped[sid] = str(e)
            continue
        comparisons += [{**c, "dir": sid} for c in res["comparisons"] if c["suite"] == sid]
    if not comparisons:
        raise ValueError(
            "no suite could be compared: " + "; ".join(f"{s}: {why}" for s, why in skipped.items())
        )
    result = {"a": str(a_dir), "b": str(b_dir), "comparisons": comparisons, "not_compared": skipped}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "compare.md").write_text(_compare_report(result))
    return result


def _compare_report(result: Mapping[str, Any]) -> str:
    lines = ["# Comparison, suite by suite", "", f"A: `{result['a']}`  ", f"B: `{result['b']}`", ""]
    rows = []
    for c in result["comparisons"]:
        lo, hi = c["ci95"]
        verdict = "B better" if lo > 0 else "B worse" if hi < 0 else "no significant difference"
        rows.append([f"[{c['suite']}]({c['dir']}/compare.md)", c["split"], str(c["n_problems"]),
                     f"{c['a_pass@1']:.3f}", f"{c['b_pass@1']:.3f}", f"{c['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                     f"{c['mcnemar']['p_value']:.3g}", verdict])  # fmt: skip
    header = ["suite", "split", "problems", "A pass@1", "B pass@1", "B - A (95% CI)", "McNemar p", "verdict"]
    lines += [*_md_table(header, rows), ""]
    lines += ["pass@1 here is each problem's fraction of passing samples, averaged; the interval is a paired "
              "bootstrap over problems; McNemar's test is on each problem's first sample.", ""]  # fmt: skip
    if result["not_compared"]:
        lines += (
            ["## Not compared", ""] + [f"- {s}: {why}" for s, why in result["not_compared"].items()] + [""]
        )
    return "\n".join(lines)
