"""Held-out accuracy during training: greedy pass@1 on the first `n` problems of a suite's split, before
training, every `every` steps, and at the end. The RL loops and the SFT/DPO stages use it alike. A run on a
mix of suites evaluates the first `n` of each: `eval/<suite>/<metric>` per suite beside the overall
`eval/<metric>` (over all the problems evaluated)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rft.engines import Engine, Sampling
from rft.envs import SuiteEnv, get_suite
from rft.envs.mix import read_mix
from rft.graders.executor import GradingPool
from rft.rollout import Trajectory, run_episodes

__all__ = ["EvalConfig", "evaluate", "heldout_metrics", "HeldOut", "grade_breakdown"]

log = logging.getLogger("rft.eval.heldout")


@dataclass
class EvalConfig:
    """Held-out accuracy during training: greedy, one sample per problem."""

    every: int = 0  # steps; 0 = only before and after training
    suite: str | None = None  # default: the training suite's held-out split (a mix: each suite's); or a,b
    split: Literal["train", "heldout"] = "heldout"  # the split evaluated
    n: int = 64  # problems (the first n of the split)
    max_new_tokens: int | None = None  # default: gen.max_new_tokens

    def __post_init__(self) -> None:
        if self.every < 0 or self.n < 0:
            raise ValueError("eval.every and eval.n must be >= 0 (n = 0 turns evaluation off)")


def evaluate(
    engine: Engine,
    tokenizer: Any,
    envs: list[SuiteEnv],
    split: str,
    max_new_tokens: int,
    executor: GradingPool | None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Greedy pass@1 on the first len(envs) problems of `split` (`heldout_metrics`)."""
    return heldout_metrics(
        _greedy(
            engine,
            tokenizer,
            envs,
            split,
            list(range(len(envs))),
            max_new_tokens,
            executor,
            chat_template_kwargs,
        )
    )


def _greedy(
    engine: Engine,
    tokenizer: Any,
    envs: list[SuiteEnv],
    split: str,
    indices: list[int],
    max_new_tokens: int,
    executor: GradingPool | None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> list[Trajectory]:
    """One greedy episode per env, env k on problem `indices[k]` of `split` of its suite."""
    for env, i in zip(envs, indices, strict=True):
        env.reset(options={"split": split, "index": i})
    return run_episodes(
        engine,
        tokenizer,
        envs,
        list(range(len(envs))),
        Sampling(temperature=0.0, max_new_tokens=max_new_tokens),
        executor=executor,
        chat_template_kwargs=chat_template_kwargs,
    )


def heldout_metrics(trajs: list[Trajectory]) -> dict[str, float]:
    """As in `rft eval`, a failed grade (timeout, error) counts as not passed in `eval/accuracy` and is shown
    in `eval/failed_rate`; `eval/reward` is the mean over the graded samples."""
    ok = [t for t in trajs if not t.failed]
    return {
        "eval/accuracy": sum(t.reward >= 1.0 for t in ok) / max(1, len(trajs)),
        "eval/reward": sum(t.reward for t in ok) / max(1, len(ok)),
        "eval/failed_rate": 1 - len(ok) / max(1, len(trajs)),
        "eval/completion_len": sum(t.completion_tokens for t in trajs) / max(1, len(trajs)),
        **{f"eval/{k}": v for k, v in grade_breakdown(trajs).items()},
    }


def grade_breakdown(trajs: list[Trajectory]) -> dict[str, float]:
    """What OpenAI's RFT dashboard shows beside the reward: ``grader/<name>``, the mean score of each
    sub-grader of a `multi` grader (``details["graders"][name]``) over the samples where it did not fail
    (error, timeout); and ``parse_error_rate``, the share of samples whose grade or any sub-grade has status
    ``no_answer``: the answer lacked what the grader reads (``sample.output_json`` of text that is not
    JSON, no final answer found), OpenAI's ``sample_parse_error``. Grader failures are counted apart
    (``grader/error_rate``)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    unparsed = 0
    for t in trajs:
        grade = t.info.get("grade") or {}
        subs = (grade.get("details") or {}).get("graders") or {}
        statuses = [grade.get("status"), *(s.get("status") for s in subs.values())]
        unparsed += "no_answer" in statuses
        for name, sub in subs.items():
            if sub.get("status") in ("error", "timeout"):
                continue
            sums[name] = sums.get(name, 0.0) + float(sub.get("score", 0.0))
            counts[name] = counts.get(name, 0) + 1
    out = {f"grader/{name}": sums[name] / counts[name] for name in sorted(sums)}
    return out | {"parse_error_rate": unparsed / max(1, len(trajs))}


class HeldOut:
    """In-training evaluation: greedy pass@1 on the first `eval.n` problems of the evaluation suite's split
    (the training suite's held-out split by default), before training, every `eval.every` steps, at the end.
    Several suites (a mix, or `eval.suite: a,b`): the first `eval.n` of each, `eval/<suite>/*` of each too."""

    def __init__(
        self,
        cfg: EvalConfig,
        train_suite: str | Sequence[str],
        max_new_tokens: int,
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        own = read_mix(cfg.suite).suites if cfg.suite else None  # eval.suite may name several: a,b
        names = own or ([train_suite] if isinstance(train_suite, str) else list(train_suite))
        self.cfg, self.envs, self.indices, self.ids = cfg, [], [], []
        for name in names:
            suite = get_suite(name)
            n = min(cfg.n, len(suite.items(cfg.split)))
            if cfg.n and not n:
                log.warning(
                    "%s has no %s items: no evaluation of it (set eval.suite, e.g. to the unfiltered suite)",
                    suite.id,
                    cfg.split,
                )
            self.envs += [SuiteEnv(suite) for _ in range(n)]
            self.indices += list(range(n))
            self.ids.append(suite.id)
        self.max_new_tokens = cfg.max_new_tokens or max_new_tokens
        self.chat_template_kwargs = dict(chat_template_kwargs or {})

    def due(self, done: int, steps: int) -> bool:
        """Whether to evaluate after `done` steps of `steps` (step 0: before training)."""
        if not self.envs:
            return False
        return done == 0 or done == steps or bool(self.cfg.every and done % self.cfg.every == 0)

    def __call__(self, engine: Engine, tokenizer: Any, executor: GradingPool | None) -> dict[str, float]:
        """The metrics over every problem evaluated; of several suites, each one's too (`eval/<suite>/...`)."""
        trajs = _greedy(
            engine,
            tokenizer,
            self.envs,
            self.cfg.split,
            self.indices,
            self.max_new_tokens,
            executor,
            self.chat_template_kwargs,
        )
        out = heldout_metrics(trajs)
        if len(self.ids) > 1:
            for sid in self.ids:
                mine = [t for t in trajs if t.info.get("suite") == sid]
                if mine:
                    out |= {
                        f"eval/{sid}/{k.removeprefix('eval/')}": v for k, v in heldout_metrics(mine).items()
                    }
        return out
