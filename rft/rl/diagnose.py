"""What went wrong in an RL run, read from its folder: `diagnose(run)` -> `Diagnosis` (plain findings with
their numbers, and what to try for each).

The checks, each on the run's own `metrics.jsonl`, `rollouts.jsonl` and `config.yaml` (and its weights):
- grader failures: grades that errored or timed out (masked out of the loss, so the run learns from fewer);
- format never found: most samples give no answer the grader can read;
- no signal: most groups have equal rewards (all right or all wrong), so advantages are 0;
- frozen policy: the weights did not move (a learning rate too small to matter);
- entropy collapse: the sampling entropy fell to a fraction of its start while the reward is not solved;
- clip fraction or KL out of range: updates too large for the trust region;
- sampler mismatch: the sampler's token probabilities are far from the trainer's (`mismatch/kl`);
- reward hacking: the training reward rose while held-out accuracy did not; the rollouts that scored 1 are
  graded again with the held-out grader and those it fails are shown;
- stalled: held-out accuracy flat (within its noise) and the reward nearly so, although groups had varied
  rewards.
A change counts only when it is larger than its noise (two standard errors of the difference, and a floor).
"""

from __future__ import annotations

import json
import math
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Finding", "Diagnosis", "diagnose", "is_rl_run", "rl_runs"]

ERROR_RATE = 0.05  # grader errors + timeouts above this share of samples
NO_ANSWER = 0.5  # samples without a readable answer, over the last quarter of the run
NO_SIGNAL = 0.8  # groups with equal rewards, over the run
FROZEN = 1e-6  # relative weight change ||theta_end - theta_start|| / ||theta_start|| below this
COLLAPSE = 0.25  # entropy at the end below this fraction of its start
CLIP_FRAC = 0.3  # tokens clipped, mean over the run
APPROX_KL = 0.1  # per-token KL(old || new) of an update, mean over the run
HACK_RISE = 0.15  # the training reward rose this much while held-out accuracy did not
MISMATCH_KL = 0.01  # KL(sampler || trainer) per token, mean over the run (float32 on one engine: ~1e-13)
HACK_SHARE = 0.25  # this share of rewarded samples fails the held-out grader (when it is another grader)


@dataclass
class Finding:
    """One problem: `kind` (a short name), `message` (what was seen, with numbers), `advice` (what to try),
    and for reward hacking up to three `examples` (rewarded completions the held-out grader fails)."""

    kind: str
    message: str
    advice: str
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Diagnosis:
    run: Path
    steps: int
    summary: str  # reward and held-out accuracy, first -> last
    findings: list[Finding]

    @property
    def verdict(self) -> str:
        """One line: no problems, or the problems' names and where to read more."""
        if not self.findings:
            return f"diagnose: no problems found ({self.summary})"
        names = ", ".join(f.kind for f in self.findings)
        return f"diagnose: {names} ({self.summary}); details: rft diagnose {self.run}"

    def lines(self) -> list[str]:
        out = [f"{self.run}: {self.steps} steps; {self.summary}"]
        if not self.findings:
            out.append("no problems found")
        for f in self.findings:
            out.append(f"- {f.kind}: {f.message}")
            out.append(f"  try: {f.advice}")
            for ex in f.examples:
                out.append(
                    f"  e.g. step {ex['step']} {ex['id']!r}: {ex['completion']!r} (reference {ex['reference']!r})"
                )
        return out


def is_rl_run(folder: Path) -> bool:
    """A GRPO/PPO run folder: a config and metrics with rewards."""
    return (
        (folder / "config.yaml").is_file() and (folder / "rollouts.jsonl").is_file() and _has_reward(folder)
    )


def rl_runs(folder: Path) -> list[Path]:
    """`folder` if it is an RL run, else its subfolders that are (a pipeline's grpo/ppo stages)."""
    if is_rl_run(folder):
        return [folder]
    return [d for d in sorted(folder.iterdir()) if d.is_dir() and is_rl_run(d)] if folder.is_dir() else []


def diagnose(run: str | Path, *, weights: bool = True) -> Diagnosis:
    """Read the run folder `run` and name what went wrong. `weights`: also compare the final weights with
    the starting model's (skipped when the starting model is not a local folder)."""
    folder = Path(run)
    if not is_rl_run(folder):
        raise FileNotFoundError(
            f"{folder} is not an RL run folder (config.yaml, metrics.jsonl with rewards, rollouts.jsonl); "
            "pass the folder of a grpo or ppo run (a pipeline's stage folder, e.g. runs/demo/grpo)"
        )
    cfg = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    rows = _jsonl(folder / "metrics.jsonl")
    train = [r for r in rows if "reward/mean" in r]
    evals = [(r["step"], r["eval/accuracy"]) for r in rows if "eval/accuracy" in r]
    n_eval = int((cfg.get("eval") or {}).get("n") or 200)
    reward = [r["reward/mean"] for r in train]
    r_first, r_last, r_up = _change(reward)
    e_up = _eval_change(evals)
    summary = f"reward {r_first:.3f} -> {r_last:.3f}"
    if evals:
        summary += f", held-out {evals[0][1]:.3f} -> {evals[-1][1]:.3f}"
    found: list[Finding] = []

    failed = _mean(train, "grader/error_rate") + _mean(train, "grader/timeout_rate")
    if failed > ERROR_RATE:
        errors = _mean(train, "grader/error_rate")
        found.append(Finding(
            "grader failures",
            f"{failed:.0%} of grades failed (error {errors:.0%}, timeout {failed - errors:.0%}); they are "
            "left out of the loss, so the run learns from fewer samples",
            "read the failing rows (status error/timeout in rollouts.jsonl), `rft grader validate` the grader, "
            "raise its timeout, or add grader_workers",
        ))  # fmt: skip
    no_answer = _mean(_tail(train), "grader/no_answer_rate")
    if no_answer > NO_ANSWER:
        found.append(Finding(
            "format never found",
            f"{no_answer:.0%} of samples (last quarter of the run) give no answer the grader can read",
            "warm start on the answer format first (rft train sft), make the prompt ask for the format the "
            "grader extracts (rft task show), or raise gen.max_new_tokens if answers are cut off",
        ))  # fmt: skip
    zero_var = _mean(train, "rollout/zero_var_frac", default=math.nan)
    pass_rate = _mean(train, "reward/pass_rate", default=math.nan)
    signal = not zero_var > NO_SIGNAL  # PPO logs no groups: assume a signal
    if not signal:
        why = "too hard" if pass_rate < 0.5 else "too easy"
        found.append(Finding(
            "no signal",
            f"{zero_var:.0%} of groups had equal rewards (no gradient); pass rate {pass_rate:.2f}: the "
            f"problems are {why} for this model",
            "keep problems the model sometimes solves (rft task filter), dynamic_sampling: true, a larger "
            "group_size" + (", or a warm start (rft train sft)" if why == "too hard" else ""),
        ))  # fmt: skip
    moved = _weight_change(folder, cfg) if weights else None
    lr = float(cfg.get("lr") or 0.0)
    if signal and ((moved is not None and moved < FROZEN) or lr < 1e-8):
        seen = (
            f"the weights moved by {moved:.1e} of their norm"
            if moved is not None
            else "the weights barely move"
        )
        found.append(Finding(
            "frozen policy",
            f"{seen} over {len(train)} steps at lr {lr:g}, though {1 - zero_var:.0%} of groups had varied "
            "rewards",
            "raise lr (typical: 1e-6..1e-5 for full fine-tuning of real models, 1e-5..2e-4 with LoRA, 1e-4 "
            "for rft's tiny models)",
        ))  # fmt: skip
    ent = [r["loss/entropy"] for r in train if "loss/entropy" in r]
    if len(ent) >= 8 and _head(ent) > 0 and _tail_mean(ent) < COLLAPSE * _head(ent) and r_last < 0.9:
        lens = [r["rollout/completion_len"] for r in train if "rollout/completion_len" in r]
        length = f"; completion length {_head(lens):.1f} -> {_tail_mean(lens):.1f} tokens" if lens else ""
        found.append(Finding(
            "entropy collapse",
            f"sampling entropy fell {_head(ent):.3f} -> {_tail_mean(ent):.3f} nats per token{length} "
            f"while the reward is {r_last:.2f}",
            "loss.entropy_coef 0.001-0.01, a higher loss.eps_high (clip-higher), gen.temperature 1.0, or a "
            "lower lr",
        ))  # fmt: skip
    clip = _mean(train, "loss/clip_frac")
    kl = _mean(train, "loss/approx_kl")
    if clip > CLIP_FRAC or kl > APPROX_KL:
        found.append(Finding(
            "updates too large",
            f"clip fraction {clip:.2f} (mean), approx KL {kl:.3f} per token per update",
            "lower lr, fewer epochs or minibatches per batch, or a tighter max_grad_norm",
        ))  # fmt: skip
    mismatch = _mean(train, "mismatch/kl", default=0.0)
    if mismatch > MISMATCH_KL:
        lo, hi = _mean(train, "mismatch/is_ratio_min", 1.0), _mean(train, "mismatch/is_ratio_max", 1.0)
        corr = (cfg.get("loss") or {}).get("correction") or {}
        on = corr.get("tis", "none") != "none" or corr.get("mis", "none") != "none"
        found.append(Finding(
            "sampler mismatch",
            f"the sampler's probabilities differ from the trainer's: mismatch/kl {mismatch:.3g} per token "
            f"(mean), token ratios {lo:.2f}..{hi:.2f} (step means)" + ("; the correction is on" if on else ""),
            "check the engine's dtype and sampling settings against the trainer's (gen.temperature, top_p, "
            "top_k), lower max_staleness" + ("" if on else ", or correct it: loss.correction: {tis: token, "
                                                          "mis: geometric}"),
        ))  # fmt: skip
    rose_alone = bool(evals) and r_up >= HACK_RISE and (e_up or 0.0) < 0.5 * r_up
    rose_alone = rose_alone and not _significant_rise(evals, n_eval)
    examples: list[dict[str, Any]] = []
    checked = failing = 0
    if evals and (rose_alone or _other_grader(cfg)):
        examples, checked, failing = _hacked(folder, cfg)
    if rose_alone or (checked and failing >= HACK_SHARE * checked):
        said = [f"the training reward rose {r_up:+.2f} while held-out accuracy changed {e_up or 0.0:+.3f}"]
        if not rose_alone:
            said = [f"the training reward is {r_last:.2f} while held-out accuracy is {evals[-1][1]:.3f}"]
        if checked:
            said.append(f"{failing} of {checked} rewarded samples of the last steps fail the held-out grader")
        found.append(Finding(
            "reward hacking",
            "; ".join(said),
            "make the training grader check what the held-out one checks (the reference, not only the "
            "format), and read rewarded rollouts (rollouts.jsonl)",
            examples,
        ))  # fmt: skip
    if signal and not found and evals and abs(r_up) < HACK_RISE and not _significant_rise(evals, n_eval):
        found.append(Finding(
            "stalled",
            f"held-out accuracy {evals[0][1]:.3f} -> {evals[-1][1]:.3f} (within its noise) and reward "
            f"{r_up:+.2f} over {len(train)} steps, though {1 - zero_var:.0%} of groups had varied rewards",
            "more steps with lr_scheduler: linear, more samples per step (prompts_per_step, group_size), a "
            "higher lr, or a larger model (rft demo's tiny model stalled at some seeds with 2 layers, not 3)",
        ))  # fmt: skip
    return Diagnosis(folder, len(train), summary, found)


# ---- reading a run ---------------------------------------------------------------------------------------


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _has_reward(folder: Path) -> bool:
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return False
    with path.open() as f:
        return any('"reward/mean"' in line for line in f)


def _mean(rows: list[dict[str, Any]], key: str, default: float = 0.0) -> float:
    xs = [float(r[key]) for r in rows if key in r]
    return sum(xs) / len(xs) if xs else default


def _window(n: int) -> int:
    return max(1, n // 4)


def _tail(rows: list[Any]) -> list[Any]:
    return rows[-_window(len(rows)) :]


def _head(xs: list[float]) -> float:
    part = xs[: _window(len(xs))]
    return sum(part) / len(part) if part else 0.0


def _tail_mean(xs: list[float]) -> float:
    part = _tail(xs)
    return sum(part) / len(part) if part else 0.0


def _change(xs: list[float]) -> tuple[float, float, float]:
    """(first-quarter mean, last-quarter mean, their difference when larger than its noise, else 0)."""
    if not xs:
        return 0.0, 0.0, 0.0
    k = _window(len(xs))
    a, b = xs[:k], xs[-k:]
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    var = sum((x - ma) ** 2 for x in a) / max(1, len(a) - 1) + sum((x - mb) ** 2 for x in b) / max(
        1, len(b) - 1
    )
    se = math.sqrt(var / k)
    return ma, mb, (mb - ma) if abs(mb - ma) > 2 * se else 0.0


def _eval_change(evals: list[tuple[int, float]]) -> float | None:
    return evals[-1][1] - evals[0][1] if len(evals) >= 2 else None


def _significant_rise(evals: list[tuple[int, float]], n: int) -> bool:
    """Held-out accuracy at the end above its start by more than two standard errors (and 0.02)."""
    if len(evals) < 2:
        return False
    p0, p1 = evals[0][1], evals[-1][1]
    se = math.sqrt((p0 * (1 - p0) + p1 * (1 - p1)) / max(1, n))
    return p1 - p0 > max(0.02, 2 * se)


def _weight_change(folder: Path, cfg: dict[str, Any]) -> float | None:
    """||theta_end - theta_start|| / ||theta_start|| over the tensors both hold, or None when either model
    is not a local folder of safetensors (a hub id, a LoRA run)."""
    from safetensors import safe_open

    from rft.models import ModelError, model_folder

    try:
        start = model_folder(Path(str(cfg.get("model", ""))))
        end = model_folder(folder)
    except ModelError:
        return None
    if (cfg.get("lora") or {}).get("r", 0) or start.resolve() == end.resolve():
        return None
    a_files, b_files = sorted(start.glob("*.safetensors")), sorted(end.glob("*.safetensors"))
    if not a_files or not b_files:
        return None
    diff = norm = 0.0
    with ExitStack() as stack:
        ends = {}  # tensor name -> the open end file holding it (each file opened once)
        for p in b_files:
            g = stack.enter_context(safe_open(str(p), "pt"))
            ends.update(dict.fromkeys(g.keys(), g))
        for p in a_files:
            f = stack.enter_context(safe_open(str(p), "pt"))
            for k in f.keys():  # noqa: SIM118  # safe_open has no __iter__
                if k in ends:
                    a, b = f.get_tensor(k).float(), ends[k].get_tensor(k).float()
                    diff += float((b - a).pow(2).sum())
                    norm += float(a.pow(2).sum())
    return math.sqrt(diff / norm) if norm > 0 else None


def _eval_suites(cfg: dict[str, Any]) -> list[str]:
    """The held-out suites: `eval.suite`, else the run's suite (of a mix: each of its suites)."""
    from rft.envs.mix import read_mix

    own = (cfg.get("eval") or {}).get("suite")
    return read_mix(str(own) if own else cfg["suite"]).suites


def _other_grader(cfg: dict[str, Any]) -> bool:
    """Held-out accuracy is graded by another grader than the training reward (the eval suite's)."""
    from rft.envs import get_suite
    from rft.envs.mix import read_mix

    train = {str(get_suite(s).grader) for s in read_mix(cfg["suite"]).suites}
    return any(str(get_suite(s).grader) not in train for s in _eval_suites(cfg))


def _hacked(folder: Path, cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int]:
    """Rollouts of the last logged steps that scored 1 in training, graded again with the held-out suite's
    grader (a mix with no `eval.suite`: each rollout's own suite's): (up to three that fail it, how many
    were checked, how many fail)."""
    from rft.envs import get_suite

    suites = {s.id: s for s in (get_suite(name) for name in _eval_suites(cfg))}
    first = next(iter(suites.values()))
    by_id = {(sid, str(it["id"])): it for sid, s in suites.items() for it in s.items()}
    graders = {sid: s.load_grader() for sid, s in suites.items()}
    rows = [r for r in _jsonl(folder / "rollouts.jsonl") if r.get("reward", 0) >= 1]
    rows = rows[-32:]
    examples: list[dict[str, Any]] = []
    failing = 0
    for r in rows:
        text = "".join(m["content"] for m in r.get("completion", []) if m.get("role") == "assistant")
        sid = r.get("suite") if r.get("suite") in suites else first.id
        item = by_id.get((sid, str(r.get("id"))), {"id": r.get("id"), "reference": r.get("reference")})
        grade = graders[sid].grade({"output_text": text}, item)
        if grade.status == "ok" and not grade.passed:
            failing += 1
            if len(examples) < 3:
                examples.append({"step": r.get("step"), "id": r.get("id"), "completion": text,
                                 "reference": r.get("reference")})  # fmt: skip
    return examples, len(rows), failing
