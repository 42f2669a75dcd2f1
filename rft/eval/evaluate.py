"""Evaluation runs: sample `n` completions per problem of a suite split, grade them, and report unbiased
pass@k, maj@k and mean@n with 95% bootstrap intervals over problems; compare two runs problem by problem.

An evaluation folder holds::

    samples.jsonl   one graded sample per line (the rows of `rft sample`, plus "suite")
    problems.jsonl  one line per problem: its samples' pass/fail, pass@k, maj@k, mean@n, grader failures
    results.json    {"results": [{"model", "suite", "split", "metric", "value", "ci95", "n_problems"}, ...]}
    report.md       the table with intervals and grader timeout/error rates, and the plots (matplotlib)

A grader timeout or error counts as a failed sample in pass@k (it cannot be shown to pass) and is reported
as `grader/timeout_rate` and `grader/error_rate` beside the metrics, never hidden; so is a sample whose
request to a served model failed for good (`eval/request_error_rate`, see `rft.eval.served`).

Local engines (hf, vllm) sample token ids (`rft.rollout`); a served model (engine openai) text, through its
chat or completions API (`rft.eval.served`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from rft.envs import SuiteEnv
from rft.eval.metrics import bootstrap_ci, maj_at_k, mcnemar, mean_at_n, paired_bootstrap_ci, pass_at_k
from rft.eval.spec import EvalSpec

if TYPE_CHECKING:
    from rft.engines import Engine, Sampling
    from rft.graders.executor import GradingPool

__all__ = [
    "evaluate_suite", "eval_config", "score_samples", "write_eval", "load_eval", "compare_runs", "fewshot_messages",
]  # fmt: skip

Message = dict[str, str]
FAILED = ("timeout", "error")


# ---------------------------------------------------------------------------------------------- generation


def fewshot_messages(
    suite: Any, k: int, seed: int, solution: Callable[[Any, dict[str, Any]], str | None] | None = None
) -> list[Message]:
    """`k` solved train problems (seeded choice) as user/assistant turns: the prompt's user messages and
    the suite's worked solution (`solution(suite, item)`, default `Suite.solution_text`)."""
    if k <= 0:
        return []
    train = suite.items("train")
    if len(train) < k:
        raise ValueError(f"--fewshot {k}: suite {suite.id} has only {len(train)} train problems")
    pick = np.random.default_rng([seed, 8]).choice(len(train), size=k, replace=False)
    solve = solution or (lambda s, it: s.solution_text(it))
    shots: list[Message] = []
    for i in sorted(int(j) for j in pick):
        item = train[i]
        text = solve(suite, item)
        if text is None:
            raise ValueError(
                f"--fewshot needs worked solutions: suite {suite.id} has no `solution` template "
                "(add one to the suite YAML, e.g. solution: '{{ item.solution }}')"
            )
        shots += [m for m in suite.messages(item) if m["role"] != "system"]
        shots.append({"role": "assistant", "content": text})
    return shots


class _FewShotEnv(SuiteEnv):
    """A `SuiteEnv` whose prompts carry the few-shot turns after the system message."""

    _messages: list[dict[str, str]]  # the conversation so far (SuiteEnv's)

    def __init__(self, suite: Any, split: str, shots: list[Message]) -> None:
        super().__init__(suite, split=split)
        self.shots = shots

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        obs, info = super().reset(seed=seed, options=options)
        if self.shots:
            system = [m for m in self._messages if m["role"] == "system"]
            rest = [m for m in self._messages if m["role"] != "system"]
            self._messages = [*system, *[dict(m) for m in self.shots], *rest]
            obs = self._obs()
        return obs, info


def evaluate_suite(
    model: str,
    spec: EvalSpec | str,
    out: str | Path,
    *,
    solution: Callable[[Any, dict[str, Any]], str | None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    loaded: tuple[Engine, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Generate `spec.n` graded samples of each of the first `spec.limit` problems of `spec.split`, score
    them (see `score_samples`) and write the evaluation folder `out`. `spec` is an `EvalSpec`, or a suite
    with the spec's fields as keywords (``evaluate_suite(model, "rft/gsm8k-v0", out, n=4, ks=(1, 4))``).
    Few-shot replies are `solution(suite, item)` (default `Suite.solution_text`). `loaded`: a local engine
    and its tokenizer already open on `model` (`rft.eval.engines.open_local`), used and left open."""
    import torch

    from rft.engines import Sampling
    from rft.envs import get_suite
    from rft.eval.samples import sample_row
    from rft.graders.executor import GraderPool

    spec = EvalSpec(suite=spec, **fields) if isinstance(spec, str) else replace(spec, **fields)
    if spec.suite is None:
        raise ValueError("the evaluation has no suite: set EvalSpec.suite (rft eval: --suite)")
    torch.set_num_threads(spec.torch_threads)
    src = get_suite(spec.suite)
    split, n = spec.split, spec.n
    items = src.items(split)[: spec.limit]
    if not items:
        raise ValueError(f"suite {src.id} has no {split} problems to evaluate (limit={spec.limit})")
    shots = fewshot_messages(src, spec.fewshot, spec.seed, solution)
    sampling = Sampling(temperature=spec.sampling_temperature, top_p=spec.top_p,
                        max_new_tokens=spec.max_new_tokens, seed=spec.seed)  # fmt: skip
    executor: GradingPool | None = (
        GraderPool(workers=spec.grader_workers) if spec.grader_workers > 0 else None
    )
    rows: list[dict[str, Any]] = []
    try:
        if spec.engine == "openai":
            from rft.eval.engines import open_served
            from rft.eval.served import sample_served

            trajs = sample_served(
                open_served(spec, model), lambda: _FewShotEnv(src, split, shots), split, len(items), n,
                sampling, concurrency=spec.server.concurrency, executor=executor, progress=progress,
            )  # fmt: skip
            rows = [{"suite": src.id, **sample_row(t, split, k // n, k % n)} for k, t in enumerate(trajs)]
        else:
            rows = _sample_local(model, spec, src, shots, sampling, executor, progress, loaded)
    finally:
        if executor is not None:
            executor.close()
    config = eval_config(model, spec, src.id)
    scored = score_samples(rows, spec.ks, model=model, suite=src.id, split=split, n_boot=spec.n_boot,
                           seed=spec.seed)  # fmt: skip
    scored["config"] = config
    if spec.engine == "openai":
        from rft.eval.served import request_failures

        scored["request_failures"] = request_failures(rows)
    write_eval(out, rows, scored)
    return scored


def eval_config(model: str, spec: EvalSpec, suite_id: str) -> dict[str, Any]:
    """The settings an evaluation folder records (results.json's "config"): what decides its samples."""
    config = {
        "model": model, "suite": suite_id, "split": spec.split, "n": spec.n, "ks": list(spec.ks),
        "engine": spec.engine, "fewshot": spec.fewshot, "seed": spec.seed,
        "temperature": spec.sampling_temperature, "top_p": spec.top_p, "max_new_tokens": spec.max_new_tokens,
        "limit": spec.limit, "model_args": spec.model_args,
    }  # fmt: skip
    if spec.chat.template is not None or spec.chat.kwargs:  # how prompts were rendered (rft.chat)
        config["chat"] = {"template": spec.chat.template, "kwargs": spec.chat.kwargs}
    if spec.engine == "openai":  # the URL and API as given (the key is never saved: only its variable's name)
        config["server"] = {"base_url": spec.server.base_url, "api": spec.server.api,
                            "concurrency": spec.server.concurrency, "attempts": spec.server.attempts}  # fmt: skip
    return config


def _sample_local(
    model: str,
    spec: EvalSpec,
    src: Any,
    shots: list[Message],
    sampling: Sampling,
    executor: GradingPool | None,
    progress: Callable[[int, int], None] | None,
    loaded: tuple[Engine, Any] | None = None,
) -> list[dict[str, Any]]:
    """The graded sample rows of a local engine (hf or vllm), `spec.batch_prompts` problems at a time, on
    `loaded` when given (left open), else on an engine opened here and closed at the end."""
    from rft.chat import use_chat_template
    from rft.eval.engines import open_local
    from rft.eval.samples import sample_row
    from rft.rollout import sample_problems

    split, n = spec.split, spec.n
    n_problems = len(src.items(split)[: spec.limit])
    eng, tokenizer = loaded or open_local(spec, model)
    use_chat_template(tokenizer, spec.chat)
    envs = [_FewShotEnv(src, split, shots) for _ in range(spec.batch_prompts * n)]
    rows = []
    try:
        batches = sample_problems(
            eng,
            tokenizer,
            envs,
            split,
            n_problems,
            n,
            sampling,
            executor=executor,
            progress=progress,
            chat_template_kwargs=spec.chat.kwargs,
        )
        for start, trajs in batches:
            for j, t in enumerate(trajs):  # sample_row splits at the prompt's end (few-shot turns included)
                rows.append({"suite": src.id, **sample_row(t, split, start + j // n, j % n)})
    finally:
        if loaded is None:
            eng.close()
    return rows


# ------------------------------------------------------------------------------------------------- scoring


def _answer_key(extracted: Any) -> Any:
    if extracted is None:
        return None
    if isinstance(extracted, str):
        return extracted.strip() or None
    return json.dumps(extracted, sort_keys=True, default=str)


class _Graded(NamedTuple):
    """What scoring keeps of one graded sample (not the row: its text is dropped as it is read)."""

    passed: bool
    score: float
    status: str
    answer: Any  # the extracted answer's key for majority votes
    request_failed: bool = False  # an error of the request to a served model, not of the grader


def _sample(row: dict[str, Any], line: int) -> tuple[str, str | None, str | None, int | None, _Graded]:
    """(problem id, suite, split, sample index, what scoring keeps) of an `rft grade` or `rft sample` row."""
    grade = row.get("grade")
    if isinstance(row.get("item"), dict):  # rft grade: {"item": {"id", ...}, "sample", "grade"}
        item = row["item"]
        if "id" not in item:
            raise ValueError(f"line {line}: the row's item has no 'id'; samples are grouped by item id")
        pid, suite, split, index = item["id"], row.get("suite") or item.get("suite"), row.get("split"), None
    elif "id" in row:  # rft sample / rft eval: {"id", "split", "sample": int, "passed", "grade", ...}
        pid, suite, split = row["id"], row.get("suite"), row.get("split")
        index = row["sample"] if isinstance(row.get("sample"), int) else None
    else:
        raise ValueError(f"line {line}: expected an `rft grade` row (item with an id) or an `rft sample` row")
    if not isinstance(grade, dict):
        if "passed" not in row:
            raise ValueError(
                f"line {line}: the row has no grade; grade it first (rft grade ... -o GRADED.jsonl)"
            )
        grade = {"score": row.get("reward", float(row["passed"])), "status": row.get("status", "ok"),
                 "passed": row["passed"], "extracted": None}  # fmt: skip
    status = grade.get("status", "ok")
    sample = _Graded(
        passed=bool(row.get("passed", grade.get("passed", False))) and status not in FAILED,
        score=float(grade.get("score", 0.0)) if status not in FAILED else 0.0,
        status=status,
        answer=_answer_key(grade.get("extracted")),
        request_failed=status == "error" and (grade.get("details") or {}).get("source") == "request",
    )
    return str(pid), suite, split, index, sample


def _group(rows: Iterable[dict[str, Any]], suite: str | None, split: str | None) -> dict[tuple, dict]:
    """Samples grouped by (suite, split) then problem id, in sample order (index, else file order). Rows
    are consumed one at a time: only each sample's `_Graded` is kept."""
    groups: dict[tuple, dict[str, list]] = {}
    for line, row in enumerate(rows, start=1):
        pid, s, sp, index, sample = _sample(row, line)
        key = (s or suite or "samples", sp or split or "unknown")
        groups.setdefault(key, {}).setdefault(pid, []).append(
            (line if index is None else index, line, sample)
        )
    return {
        key: {pid: [s for *_, s in sorted(v, key=lambda x: (x[0], x[1]))] for pid, v in probs.items()}
        for key, probs in groups.items()
    }


def _problem(pid: str, samples: list[_Graded], ks: Sequence[int]) -> dict[str, Any]:
    n, c = len(samples), sum(s.passed for s in samples)
    passes = [s.passed for s in samples]
    answers = [s.answer for s in samples]
    rec: dict[str, Any] = {"id": pid, "n": n, "correct": c, "passes": passes}
    for k in ks:
        rec[f"pass@{k}"] = pass_at_k(n, c, k)
    for k in ks:
        rec[f"maj@{k}"] = maj_at_k(answers, passes, k)
    rec["mean@n"] = mean_at_n([s.score for s in samples])
    rec["first_pass"] = passes[0]
    rec["timeouts"] = sum(s.status == "timeout" for s in samples)
    rec["errors"] = sum(s.status == "error" and not s.request_failed for s in samples)
    rec["request_errors"] = sum(s.request_failed for s in samples)
    return rec


def score_samples(
    rows: Iterable[dict[str, Any]],
    ks: Sequence[int] = (1,),
    *,
    model: str = "",
    suite: str | None = None,
    split: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Score graded samples: `rft grade` output rows (`item` with an `id`, `sample`, `grade`) or `rft sample`
    rows (`id`, `sample` index, `passed`, `grade`), several per problem id. Returns ``{"results": [...],
    "problems": [...]}``: per (suite, split), pass@k and maj@k for each k, mean@n and the grader
    timeout/error rates, each with a 95% percentile-bootstrap interval over problems. `suite` and `split`
    label rows that do not name theirs. `rows` may be an iterator read once (a file of any size): each row
    is reduced to its score, status and answer as it is read."""
    groups = _group(rows, suite, split)
    if not groups:
        raise ValueError("no samples to score")
    results, problems = [], []
    for (s, sp), probs in groups.items():
        n_min = min(len(v) for v in probs.values())
        short = min(probs, key=lambda p: len(probs[p]))
        if max(ks) > n_min:
            raise ValueError(
                f"pass@{max(ks)} needs {max(ks)} samples of every problem; problem {short!r} of {s} has "
                f"{n_min}: lower --k or sample more"
            )
        recs = [{"suite": s, "split": sp, **_problem(pid, v, ks)} for pid, v in probs.items()]
        problems += recs
        metrics = [*(f"pass@{k}" for k in ks), *(f"maj@{k}" for k in ks if k > 1), "mean@n"]
        per: dict[str, list[float]] = {m: [r[m] for r in recs] for m in metrics}
        per["grader/timeout_rate"] = [r["timeouts"] / r["n"] for r in recs]
        per["grader/error_rate"] = [r["errors"] / r["n"] for r in recs]
        per["eval/request_error_rate"] = [r["request_errors"] / r["n"] for r in recs]
        for m, values in per.items():
            lo, hi = bootstrap_ci(values, n_boot=n_boot, seed=seed)
            results.append({"model": model, "suite": s, "split": sp, "metric": m,
                            "value": float(np.mean(values)), "ci95": [lo, hi], "n_problems": len(recs)})  # fmt: skip
    return {"results": results, "problems": problems}


# ---------------------------------------------------------------------------------------------- the folder


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_eval(out: str | Path, samples: list[dict[str, Any]] | None, scored: dict[str, Any]) -> Path:
    """Write samples.jsonl (when given), problems.jsonl, results.json, report.md and plots to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if samples is not None:
        _write_jsonl(out / "samples.jsonl", samples)
    _write_jsonl(out / "problems.jsonl", scored["problems"])
    doc = {"results": scored["results"], **({"config": scored["config"]} if "config" in scored else {})}
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    plots = _plot_eval(out, scored)
    (out / "report.md").write_text(_report(scored, plots))
    return out


def load_eval(folder: str | Path) -> dict[str, Any]:
    """An evaluation folder's results.json and problems.jsonl."""
    folder = Path(folder)
    res, probs = folder / "results.json", folder / "problems.jsonl"
    if not res.is_file() or not probs.is_file():
        raise ValueError(
            f"{folder} is not an evaluation folder (no results.json/problems.jsonl); run rft eval"
        )
    try:
        return {**json.loads(res.read_text()), "problems": _read_jsonl(probs), "dir": str(folder)}
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{folder}: results.json or problems.jsonl is not valid JSON ({e}); run rft eval again"
        ) from None


def fmt_ci(ci: Sequence[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _report(scored: dict[str, Any], plots: list[str] | str) -> str:
    cfg = scored.get("config", {})
    lines = ["# Evaluation", ""]
    if cfg:
        lines += [", ".join(f"{k}: `{v}`" for k, v in cfg.items()), ""]
    keyed: dict[tuple, list[dict[str, Any]]] = {}
    for r in scored["results"]:
        keyed.setdefault((r["model"], r["suite"], r["split"]), []).append(r)
    for (model, suite, split), rs in keyed.items():
        lines += [
            f"## {suite} ({split}){f' — {model}' if model else ''}",
            "",
            f"{rs[0]['n_problems']} problems.",
            "",
        ]
        lines += ["| metric | value | 95% CI |", "|---|---|---|"]
        lines += [f"| {r['metric']} | {r['value']:.3f} | {fmt_ci(r['ci95'])} |" for r in rs]
        failed = {r["metric"]: r["value"] for r in rs if r["metric"].startswith("grader/")}
        unanswered = next((r["value"] for r in rs if r["metric"] == "eval/request_error_rate"), 0.0)
        if unanswered:
            lines += ["", f"**Request failures:** {unanswered:.3f} of the samples got no reply from the server "
                      "after retries (status `error`, details `source: request`); they count as not passed."]  # fmt: skip
        if any(failed.values()):
            lines += ["", f"**Grader failures:** timeout rate {failed['grader/timeout_rate']:.3f}, error rate "
                      f"{failed['grader/error_rate']:.3f}; failed samples count as not passed."]  # fmt: skip
        lines.append("")
    lines += ["Intervals: 95% percentile bootstrap over problems. pass@k: unbiased estimator (Chen et al. 2021). "
              "maj@k: majority vote over the first k samples' extracted answers.", ""]  # fmt: skip
    if isinstance(plots, str):
        lines += [f"_Plots skipped: {plots}_", ""]
    else:
        lines += [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _plot_eval(out: Path, scored: dict[str, Any]) -> list[str] | str:
    """pass@k curves (with intervals) and the histogram of per-problem pass rates, one PNG per suite; with a
    single k, bars of each score (``scores_*.png``) in place of a one-point curve."""
    plt = pyplot()
    if plt is None:
        return "matplotlib is not installed (pip install matplotlib)"
    names = []
    keys = sorted({(r["suite"], r["split"]) for r in scored["results"]})
    for suite, split in keys:
        rs = [r for r in scored["results"] if (r["suite"], r["split"]) == (suite, split)]
        curve = sorted((int(r["metric"][5:]), r) for r in rs if r["metric"].startswith("pass@"))
        rates = [
            p["correct"] / p["n"] for p in scored["problems"] if (p["suite"], p["split"]) == (suite, split)
        ]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
        if len(curve) > 1:
            x = [k for k, _ in curve]
            y, lo, hi = _with_ci([r for _, r in curve])
            ax1.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", capsize=3)
            ax1.set(xscale="log", xlabel="k", ylabel="pass@k", ylim=(0, 1), title=f"{suite} {split}")
            ax1.set_xticks(x, [str(k) for k in x])
            ax1.minorticks_off()
        else:  # one k: a curve would be one dot; bars of each score with its interval instead
            bars = [r for r in rs if not r["metric"].startswith("grader/")]
            y, lo, hi = _with_ci(bars)
            ax1.bar([r["metric"] for r in bars], y, yerr=[y - lo, hi - y], capsize=4)
            ax1.set(ylabel="score (95% CI)", ylim=(0, 1), title=f"{suite} {split} (one k: no pass@k curve)")
        ax2.hist(rates, bins=np.linspace(0, 1, 11))
        ax2.set(xlabel="per-problem pass rate", ylabel="problems")
        fig.tight_layout()
        name = f"{'pass_at_k' if len(curve) > 1 else 'scores'}_{_slug(suite)}_{split}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        names.append(name)
    return names


def _with_ci(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values of result rows and their 95% interval bounds."""
    y = np.array([r["value"] for r in rows])
    return y, np.array([r["ci95"][0] for r in rows]), np.array([r["ci95"][1] for r in rows])


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


# ------------------------------------------------------------------------------------------------- compare


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def compare_runs(
    a_dir: str | Path, b_dir: str | Path, out: str | Path | None = None, *, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Paired comparison of two evaluation folders on the same problems: per-problem differences of pass@1
    (the fraction of a problem's samples that pass), a paired bootstrap interval of the mean difference,
    McNemar's test on each problem's first sample, and a verdict per (suite, split): B is better (or worse)
    when the interval excludes 0. Writes compare.json, compare.md and a plot to `out` when given."""
    a, b = load_eval(a_dir), load_eval(b_dir)
    pa, pb = _by_problem(a), _by_problem(b)
    if set(pa) != set(pb):
        raise ValueError(
            f"the runs cover different suites/splits: A has {sorted(pa)}, B has {sorted(pb)}; compare "
            "evaluations of the same suite and split"
        )
    name_a, name_b = _model_name(a, "A"), _model_name(b, "B")
    comparisons = []
    for key in sorted(pa):
        ra, rb = pa[key], pb[key]
        if set(ra) != set(rb):
            only_a, only_b = len(set(ra) - set(rb)), len(set(rb) - set(ra))
            raise ValueError(
                f"{key[0]} {key[1]}: the runs evaluated different problems ({only_a} only in A, {only_b} only "
                "in B); rerun them with the same --limit and suite version"
            )
        ids = sorted(ra)
        va = np.array([ra[i]["correct"] / ra[i]["n"] for i in ids])
        vb = np.array([rb[i]["correct"] / rb[i]["n"] for i in ids])
        diff = float(np.mean(vb - va))
        lo, hi = paired_bootstrap_ci(va, vb, n_boot=n_boot, seed=seed)
        mc = mcnemar([ra[i]["first_pass"] for i in ids], [rb[i]["first_pass"] for i in ids])
        where = f"{key[0]} {key[1]}"
        stats = f"{_signed(diff)} pass@1 (95% CI {_signed(lo)}..{_signed(hi)}; McNemar p={mc.p_value:.3g})"
        if lo > 0:
            verdict = f"B is better than A on {where}: {stats}"
        elif hi < 0:
            verdict = f"B is worse than A on {where}: {stats}"
        else:
            verdict = f"no significant difference on {where}: {stats}"
        comparisons.append({
            "suite": key[0], "split": key[1], "n_problems": len(ids), "a": name_a, "b": name_b,
            "a_pass@1": float(va.mean()), "b_pass@1": float(vb.mean()), "diff": diff, "ci95": [lo, hi],
            "mcnemar": {"a_only": mc.a_only, "b_only": mc.b_only, "statistic": mc.statistic,
                        "p_value": mc.p_value, "method": mc.method},
            "verdict": verdict,
            "per_problem": [{"id": i, "a": float(x), "b": float(y), "diff": float(y - x)}
                            for i, x, y in zip(ids, va, vb, strict=True)],
        })  # fmt: skip
    result = {"a": str(a_dir), "b": str(b_dir), "comparisons": comparisons}
    if out is not None:
        _write_compare(Path(out), result)
    return result


def _by_problem(ev: dict[str, Any]) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    out: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for p in ev["problems"]:
        out.setdefault((p["suite"], p["split"]), {})[p["id"]] = p
    return out


def _model_name(ev: dict[str, Any], default: str) -> str:
    return next((r["model"] for r in ev["results"] if r.get("model")), "") or default


def _write_compare(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    plt = pyplot()
    lines = ["# Comparison", "", f"A: `{result['a']}`  ", f"B: `{result['b']}`", ""]
    for c in result["comparisons"]:
        mc = c["mcnemar"]
        lines += [f"## {c['suite']} ({c['split']})", "", f"**{c['verdict']}**", "",
                  "| | pass@1 |", "|---|---|", f"| A ({c['a']}) | {c['a_pass@1']:.3f} |",
                  f"| B ({c['b']}) | {c['b_pass@1']:.3f} |",
                  f"| B - A | {_signed(c['diff'])} (95% CI {fmt_ci(c['ci95'])}) |", "",
                  f"{c['n_problems']} problems; first sample: {mc['a_only']} only A passes, {mc['b_only']} only B "
                  f"passes (McNemar {mc['method']}, p={mc['p_value']:.3g}).", ""]  # fmt: skip
        if plt is None:
            lines += ["_Plot skipped: matplotlib is not installed (pip install matplotlib)._", ""]
            continue
        d = sorted(p["diff"] for p in c["per_problem"])
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(range(len(d)), d, width=1.0, color=["tab:green" if x > 0 else "tab:red" for x in d])
        ax.axhline(c["diff"], color="k", lw=1, label=f"mean {c['diff']:+.3f}")
        ax.axhspan(c["ci95"][0], c["ci95"][1], color="k", alpha=0.15, label="95% CI")
        ax.set(
            xlabel="problems (sorted)",
            ylabel="pass@1 B - A",
            ylim=(-1.05, 1.05),
            title=f"{c['suite']} {c['split']}",
        )
        ax.legend(loc="upper left")
        fig.tight_layout()
        name = f"compare_{_slug(c['suite'])}_{c['split']}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        lines += [f"![{name}]({name})", ""]
    (out / "compare.md").write_text("\n".join(lines))
