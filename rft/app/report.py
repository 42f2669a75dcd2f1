"""A pipeline's report: `results.json` (every stage's evaluation), paired comparisons of the final model
with the input model and each earlier stage, `report.md`, and plots of reward and held-out accuracy over
the pipeline's steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rft.eval.evaluate import compare_runs, fmt_ci, load_eval, pyplot

if TYPE_CHECKING:
    from rft.app.pipeline_config import Pipeline

__all__ = ["write_report", "training_curves"]


# What OpenAI's RFT dashboard charts, by rft metric: (train, validation) names, a label
DASHBOARD = (
    ("reward/mean", "eval/reward", "reward"),
    ("grader/parse_error_rate", "eval/parse_error_rate", "unparseable"),
    ("rollout/completion_len", "eval/completion_len", "answer tokens"),
)


def _dashboard_keys(row: dict[str, Any]) -> bool:
    return any(k.startswith(("reward/grader/", "eval/grader/")) for k in row) or any(
        k in row for pair in DASHBOARD for k in pair[:2]
    )


def training_curves(p: Pipeline, stages: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per training stage, from its metrics.jsonl: held-out accuracy (`eval/accuracy`) and reward
    (`reward/mean`) by step, the steps counted from the pipeline's start; and `dashboard`, the rows of
    what OpenAI's RFT dashboard shows (train and validation reward, each `multi` sub-grader's score,
    unparseable answers, answer tokens: `DASHBOARD`) by the stage's own step."""
    curves, offset = [], 0
    for s in p.stages:
        rec = stages.get(s.name, {})
        path = Path(p.out) / s.name / "metrics.jsonl"
        if s.type == "eval" or rec.get("status") != "done" or not path.is_file():
            continue
        acc: dict[int, float] = {}
        reward: dict[int, float] = {}
        dashboard: dict[int, dict[str, float]] = {}
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if _dashboard_keys(row):
                keep = {
                    k: v for k, v in row.items() if k.startswith(("reward/", "eval/", "grader/", "rollout/"))
                }
                dashboard.setdefault(row["step"], {}).update(keep)
            if "eval/accuracy" in row:
                acc[row["step"]] = row["eval/accuracy"]
            if "reward/mean" in row:
                reward[row["step"]] = row["reward/mean"]
        last = max([*acc, *reward, 0])
        curves.append({
            "stage": s.name, "type": s.type, "start": offset,
            "accuracy": sorted((offset + k, v) for k, v in acc.items()),
            "reward": sorted((offset + k, v) for k, v in reward.items()),
            "dashboard": [{"step": k, **v} for k, v in sorted(dashboard.items())],
        })  # fmt: skip
        offset += last
    return curves


def _plot_curves(out: Path, curves: list[dict[str, Any]], n_eval: str) -> str | None:
    plt = pyplot()
    if plt is None or not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    label: str | None = "train reward (mean of samples)"
    for c in curves:
        ax.axvline(c["start"], color="grey", lw=0.8, ls="--")
        ax.text(c["start"], 1.01, f" {c['stage']}", transform=ax.get_xaxis_transform(), fontsize=9)
        if c["reward"]:
            x, y = np.array(c["reward"]).T
            w = max(1, len(y) // 25)  # a moving average over ~4% of the stage
            smooth = np.convolve(y, np.ones(w) / w, mode="valid")
            ax.plot(x[w - 1 :], smooth, color="tab:orange", lw=1.2, label=label)
            label = None  # one legend entry for all stages
    valid = [
        (r["step"] + c["start"], r["eval/reward"])
        for c in curves
        for r in c["dashboard"]
        if "eval/reward" in r
    ]
    if valid:
        x, y = np.array(valid).T
        ax.plot(x, y, "s--", color="tab:green", ms=3, label="validation reward (greedy, mean grade)")
    acc = [pt for c in curves for pt in c["accuracy"]]
    if acc:
        x, y = np.array(acc).T
        ax.plot(x, y, "o-", color="tab:blue", ms=3, label=f"held-out accuracy ({n_eval}, greedy)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set(xlabel="step (pipeline)", ylabel="accuracy / reward", ylim=(min(0.0, ax.get_ylim()[0]), 1.0))
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=100)
    plt.close(fig)
    return "training.png"


def _plot_graders(out: Path, curves: list[dict[str, Any]]) -> str | None:
    """`graders.png`: each `multi` sub-grader's train (line) and validation (squares) score over the pipeline's
    steps, as OpenAI's dashboard charts them; None without sub-graders."""
    plt = pyplot()
    points: dict[str, list[tuple[int, float]]] = {}
    for c in curves:
        for r in c["dashboard"]:
            for k, v in r.items():
                if k.startswith(("reward/grader/", "eval/grader/")):
                    points.setdefault(k, []).append((c["start"] + r["step"], v))
    if plt is None or not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    names = sorted({k.split("/", 2)[2] for k in points})
    for i, name in enumerate(names):
        color = f"C{i % 10}"
        for key, style, what in (
            (f"reward/grader/{name}", "-", "train"),
            (f"eval/grader/{name}", "s--", "valid"),
        ):
            if key in points:
                x, y = np.array(sorted(points[key])).T
                ax.plot(x, y, style, color=color, ms=3, lw=1.2, label=f"{name} ({what})")
    ax.legend(loc="lower right", fontsize=8)
    ax.set(xlabel="step (pipeline)", ylabel="sub-grader score", ylim=(min(0.0, ax.get_ylim()[0]), 1.0))
    fig.tight_layout()
    fig.savefig(out / "graders.png", dpi=100)
    plt.close(fig)
    return "graders.png"


def _plot_stages(out: Path, rows: list[dict[str, Any]], metric: str) -> str | None:
    plt = pyplot()
    if plt is None or not rows:
        return None
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(rows), 3.5))
    y = np.array([r["value"] for r in rows])
    lo, hi = np.array([r["ci95"][0] for r in rows]), np.array([r["ci95"][1] for r in rows])
    ax.bar([r["stage"] for r in rows], y, yerr=[y - lo, hi - y], capsize=4, color="tab:blue")
    for i, (v, top) in enumerate(zip(y, hi, strict=True)):
        ax.text(i, top + 0.02, f"{v:.2f}", ha="center", fontsize=9)
    ax.set(ylabel=f"{metric} (95% CI)", ylim=(0, 1.1))
    fig.tight_layout()
    fig.savefig(out / "stages.png", dpi=100)
    plt.close(fig)
    return "stages.png"


def _fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def write_report(p: Pipeline, stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Write results.json, report.md, compare/ folders and plots into the pipeline's folder; returns the
    summary: one row per evaluated model, the comparisons, the time the stages and evaluations took, paths."""
    out = Path(p.out)
    wall_s = sum(r.get("seconds", 0.0) + r.get("eval_seconds", 0.0) for r in stages.values())
    metric = f"pass@{p.eval.ks[0]}"
    trained = ["base", *(s.name for s in p.stages if s.type != "eval")]
    evaluated = [n for n in trained if stages.get(n, {}).get("eval")]
    evals = {n: load_eval(stages[n]["eval"]) for n in evaluated}
    results, rows = [], []
    for n in evaluated:
        for r in evals[n]["results"]:
            results.append({**r, "model": n})
            if r["metric"] == metric and r["suite"] == evals[evaluated[0]]["results"][0]["suite"]:
                rec = stages[n]
                rows.append({"stage": n, "type": rec.get("type", n), "value": r["value"], "ci95": r["ci95"],
                             "n_problems": r["n_problems"], "seconds": rec.get("seconds", 0.0), "model": rec["model"]})  # fmt: skip
    extra = [s for s in p.stages if s.type == "eval" and stages.get(s.name, {}).get("status") == "done"]
    for s in extra:
        for r in load_eval(stages[s.name]["eval"])["results"]:
            results.append({**r, "model": f"{s.name} ({stages[s.name]['model']})"})
    base = rows[0]["value"] if rows else 0.0
    for r in rows:
        r["vs_base"] = r["value"] - base
    # -- the final model against the input model and every earlier stage
    comparisons = []
    final = evaluated[-1] if evaluated else ""  # against every earlier evaluated stage
    for a in evaluated[:-1]:
        res = compare_runs(stages[a]["eval"], stages[final]["eval"], out / "compare" / f"{final}-vs-{a}")
        for c in res["comparisons"]:
            comparisons.append({"a": a, "b": final, "suite": c["suite"], "split": c["split"], "diff": c["diff"],
                                "ci95": c["ci95"], "mcnemar_p": c["mcnemar"]["p_value"],
                                "verdict": c["verdict"].replace("B is", f"{final} is").replace("than A", f"than {a}")})  # fmt: skip
    doc = {
        "results": results,
        "models": {n: stages[n]["model"] for n in evaluated},
        "comparisons": comparisons,
        "wall_s": wall_s,
    }
    curves = training_curves(p, stages)
    doc["training"] = [{k: c[k] for k in ("stage", "type", "dashboard")} for c in curves if c["dashboard"]]
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    n_eval = {s.name: s.config.get("eval", {}).get("n", 64) for s in p.stages}
    plots = [
        x
        for x in (
            _plot_curves(out, curves, ", ".join(f"{c['stage']}: first {n_eval[c['stage']]}" for c in curves)),
            _plot_stages(out, rows, metric),
            _plot_graders(out, curves),
        )
        if x
    ]
    text = _markdown(p, rows, comparisons, plots, stages, wall_s, metric) + _dashboard_md(curves)
    (out / "report.md").write_text(text)
    return {"rows": rows, "comparisons": comparisons, "wall_s": wall_s, "metric": metric,
            "report": str(out / "report.md"), "results": str(out / "results.json"), "plots": plots}  # fmt: skip


def _markdown(
    p: Pipeline,
    rows: list[dict[str, Any]],
    comparisons: list[dict[str, Any]],
    plots: list[str],
    stages: dict[str, dict[str, Any]],
    wall_s: float,
    metric: str,
) -> str:
    n = rows[0]["n_problems"] if rows else 0
    lines = [f"# Pipeline report: {p.out}", "",
             f"Every model evaluated on {n} {p.eval.split} problems of `{p.eval_suite}` "
             f"({'greedy' if p.eval.n == 1 else f'{p.eval.n} samples each'}); 95% intervals: bootstrap over "
             f"problems. Pipeline time {_fmt_s(wall_s)}.", "",
             f"| stage | {metric} | 95% CI | vs base | train time |", "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['stage']} | {r['value']:.3f} | {fmt_ci(r['ci95'])} | {100 * r['vs_base']:+.1f} pts | "
                     f"{_fmt_s(r['seconds'])} |")  # fmt: skip
    if comparisons:
        lines += ["", "## Paired comparisons", ""]
        lines += [f"- {c['verdict']} (`compare/{c['b']}-vs-{c['a']}`)" for c in comparisons]
    if plots:
        lines += ["", "## Curves", ""] + [f"![{x}]({x})" for x in plots]
        lines += ["", "`training.png`: train reward (RL stages) and greedy held-out accuracy during training, on "
                  "the first problems of each stage's evaluation suite (its grader, which may differ from the "
                  "training reward: a reward that climbs while held-out accuracy does not is reward hacking)."]  # fmt: skip
        if "graders.png" in plots:
            lines += ["", "`graders.png`: each sub-grader of the `multi` grader, train (the step's samples) and valid "
                      "(greedy answers to held-out problems), as OpenAI's RFT dashboard charts them."]  # fmt: skip
    lines += ["", "## Stages", ""]
    for s in p.stages:
        rec = stages.get(s.name, {})
        keys = ", ".join(f"{k}: {v}" for k, v in s.config.items() if k not in ("eval",))
        lines.append(
            f"- **{s.name}** ({s.type}, {rec.get('status', 'not run')}): {keys}; folder `{Path(p.out) / s.name}`"
        )
    lines.append("")
    return "\n".join(lines)


def _fmt(v: float | None, digits: int = 3) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _dashboard_md(curves: list[dict[str, Any]], max_rows: int = 25) -> str:
    """Per RL stage, a table of what OpenAI's RFT dashboard charts: train / validation reward, each `multi`
    sub-grader's score, the share of unparseable answers and mean answer tokens, at up to `max_rows` steps
    (every step with a validation, then evenly spaced others)."""
    lines: list[str] = []
    for c in curves:
        rows = c.get("dashboard") or []
        if not rows:
            continue
        graders = sorted(
            {k.split("/", 2)[2] for r in rows for k in r if k.startswith(("reward/grader/", "eval/grader/"))}
        )
        pairs = [(tr, va, label) for tr, va, label in DASHBOARD]
        pairs[1:1] = [(f"reward/grader/{g}", f"eval/grader/{g}", f"grader {g}") for g in graders]
        shown = [r for r in rows if "eval/reward" in r]
        others = [r for r in rows if "eval/reward" not in r]
        room = max(0, max_rows - len(shown))
        if others and room:
            stride = max(1, -(-len(others) // room))
            shown += others[::stride][:room]
        shown.sort(key=lambda r: r["step"])
        head = " | ".join(f"{label} (train / valid)" for _, _, label in pairs)
        lines += ["", f"## Training: {c['stage']} (as OpenAI's RFT dashboard)", "",
                  "Train: the step's samples (`reward/mean`, `reward/grader/<name>`, `grader/parse_error_rate`, "
                  "`rollout/completion_len`); valid: greedy answers to the held-out problems "
                  "(`eval/reward`, `eval/grader/<name>`, `eval/parse_error_rate`, `eval/completion_len`). "
                  "Unparseable: the share of answers whose grade or a sub-grade has status `no_answer` "
                  "(the grader could not read the answer: OpenAI's parse error); grader failures are "
                  "`grader/error_rate`.", "",
                  f"| step | {head} |", "|---" * (1 + len(pairs)) + "|"]  # fmt: skip
        for r in shown:
            digits = [1 if "completion_len" in tr else 3 for tr, _, _ in pairs]
            cells = [
                f"{_fmt(r.get(tr), d)} / {_fmt(r.get(va), d)}"
                for (tr, va, _), d in zip(pairs, digits, strict=True)
            ]
            lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + ("\n" if lines else "")
