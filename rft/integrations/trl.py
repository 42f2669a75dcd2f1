"""rft graders and task suites for TRL's `GRPOTrainer` (TRL 1.16).

- `reward_func(spec)`: a grader spec (or `Grader`) as a TRL reward function. TRL calls it with
  ``prompts=``, ``completions=``, ``completion_ids=`` and every dataset column as keyword lists (plus
  ``trainer_state``, ``log_metric``, ...); the item of row i is rebuilt from those columns, the completion's
  text is graded against it, and the reward is the grade's score, or ``None`` when the grader failed
  (timeout/error): TRL turns None into NaN and leaves the sample out of its group's statistics (advantage
  0). With ``asynchronous=True`` it is a coroutine function, which TRL awaits on its event loop beside
  the other async reward functions. With a `GradingPool` (`GraderPool`, `RayGraderPool`) the grades run
  in worker processes under hard per-sample deadlines; without one they run in the trainer's thread (no
  deadline).
- `suite_dataset(suite)`: the suite's problems as a `datasets.Dataset` with a conversational ``prompt``
  column, the items' fields as columns, and the exact item as JSON (``rft_item``).
- `suite_reward_func(suite)`: the suite's grader, rewarded as `rft.envs.SuiteEnv` rewards a single-turn
  episode (``max(0, score)``).
- `SuiteRollout(suite)`: TRL's ``rollout_func`` for multi-turn suites (feedback and tool episodes): it plays
  each prompt's episode in a `SuiteEnv` with the trainer's model (`rft.rollout.run_episodes`), returns the
  tokens with ``env_mask`` (0 on the environment's tokens: they stay out of the loss) and the episode's
  reward as the ``env_reward`` column, which the `env_reward` reward function hands to TRL.

TRL's ``environment_factory`` is not used: its environments act only through tool calls that the chat
template parses (their methods become the model's tools) and never see the model's plain answers, so they
cannot grade an answer and reply with feedback as rft's episodes do; ``rollout_func`` with ``env_mask``
expresses them exactly.

Metrics go through TRL's ``log_metric``: ``grader/<name>/error_rate``, ``grader/<name>/timeout_rate``
(and ``rollout/turns`` for episodes); TRL logs the reward itself as ``rewards/<name>/mean``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rft.envs import Suite, SuiteEnv, get_suite
from rft.graders import Grade, Grader, load_grader
from rft.graders.executor import GradingPool, grade_batch

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "ITEM_COLUMN",
    "GraderReward",
    "AsyncGraderReward",
    "reward_func",
    "suite_reward_func",
    "suite_dataset",
    "completion_text",
    "SuiteRollout",
    "env_reward",
]

ITEM_COLUMN = "rft_item"  # the item as JSON: exact, whatever its fields are named or hold
# Keyword arguments TRL passes to reward functions that are not dataset columns.
TRL_KWARGS = frozenset(
    {"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}
)
# Names `suite_dataset` leaves to ``rft_item``: TRL's own columns (``image`` turns on its multimodal path).
_NOT_COLUMNS = TRL_KWARGS | {"prompt", "completion", "image", "images", "environment", ITEM_COLUMN}


def completion_text(completion: str | list[dict[str, Any]]) -> str:
    """The answer to grade: a plain completion as is; a conversational one's last assistant message (after
    any tool turns); content blocks (``[{"type": "text", "text": ...}]``) joined."""
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, list):
        raise TypeError(f"a completion is a str or a list of messages, got {type(completion).__name__}")
    for message in reversed(completion):
        if message.get("role") == "assistant":
            content = message.get("content") or ""
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content)
    return ""


def _items(columns: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Row i's item: the ``rft_item`` JSON when the dataset has it (`suite_dataset`), else the row's
    columns (every keyword list of length n that TRL does not add itself)."""
    if ITEM_COLUMN in columns:
        return [json.loads(s) for s in columns[ITEM_COLUMN]]
    cols = {k: v for k, v in columns.items() if k not in TRL_KWARGS and isinstance(v, list) and len(v) == n}
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


class GraderReward:
    """A TRL reward function backed by an rft grader (see `reward_func`). `__name__` names it in TRL's logs
    (``rewards/<name>/mean``); `floor`, when set, is the least reward (`SuiteEnv` uses 0)."""

    def __init__(
        self,
        grader: Grader | dict[str, Any] | str | Path,
        *,
        pool: GradingPool | None = None,
        name: str | None = None,
        floor: float | None = None,
    ) -> None:
        self.grader = grader if isinstance(grader, Grader) else load_grader(grader)
        self.pool = pool
        self.__name__ = name or self.grader.name or self.grader.type
        self.floor = floor

    def __call__(
        self,
        prompts: list[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: list[list[int]] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        samples, items = self._inputs(completions, columns)
        if self.pool is not None:
            grades = self.pool.grade(self.grader, samples, items)
        else:
            grades = grade_batch(self.grader, samples, items, workers=0)
        return self._rewards(grades, columns)

    def _inputs(
        self, completions: Sequence[Any], columns: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        samples = [{"output_text": completion_text(c)} for c in completions]
        return samples, _items(columns, len(samples))

    def _rewards(self, grades: list[Grade], columns: dict[str, Any]) -> list[float | None]:
        log = columns.get("log_metric")
        if callable(log) and grades:
            for status in ("error", "timeout"):
                log(
                    f"grader/{self.__name__}/{status}_rate",
                    sum(g.status == status for g in grades) / len(grades),
                )
        out: list[float | None] = []
        for g in grades:
            if g.failed:
                out.append(None)  # TRL: NaN, left out of the group's mean and std, advantage 0
            else:
                out.append(float(g.score) if self.floor is None else max(self.floor, float(g.score)))
        return out


class AsyncGraderReward(GraderReward):
    """`GraderReward` as a coroutine function: TRL 1.16 awaits it on its event loop, concurrently with its
    other async reward functions. With a pool it awaits `GradingPool.agrade`; without one it grades in a
    thread."""

    async def __call__(  # type: ignore[override]
        self,
        prompts: list[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: list[list[int]] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        samples, items = self._inputs(completions, columns)
        if self.pool is not None:
            grades = await self.pool.agrade(self.grader, samples, items)
        else:
            grades = await asyncio.to_thread(grade_batch, self.grader, samples, items, workers=0)
        return self._rewards(grades, columns)


def reward_func(
    spec: Grader | dict[str, Any] | str | Path,
    *,
    pool: GradingPool | None = None,
    name: str | None = None,
    asynchronous: bool = False,
) -> GraderReward:
    """A grader spec (dict, JSON/YAML file) or `Grader` as a TRL reward function. The reward is the grade's
    score (``no_answer``: 0); a failed grade (timeout/error) is ``None``, which TRL skips."""
    cls = AsyncGraderReward if asynchronous else GraderReward
    return cls(spec, pool=pool, name=name)


def suite_reward_func(
    suite: Suite | str | Path, *, pool: GradingPool | None = None, asynchronous: bool = False
) -> GraderReward:
    """The suite's grader as a TRL reward function named after the suite, rewarding as a single-turn
    `SuiteEnv` episode does: ``max(0, score)``, None for a failed grade. Multi-turn suites (feedback, tool)
    are refused: train them with `SuiteRollout`."""
    s = get_suite(suite)
    if s.episode.type != "single":
        raise ValueError(
            f"suite {s.id} has {s.episode.type} episodes ({s.episode.max_turns} turns): pass "
            f"rollout_func=SuiteRollout({s.id!r}) and reward_funcs=env_reward to GRPOTrainer, or grade "
            "single answers with reward_func(suite.grader)"
        )
    cls = AsyncGraderReward if asynchronous else GraderReward
    return cls(s.grader, pool=pool, name=s.id, floor=0.0)


def suite_dataset(suite: Suite | str | Path, split: str = "train", *, limit: int | None = None) -> Dataset:
    """The suite's problems of `split` (the first `limit`) for TRL: ``prompt`` (the conversation), each item
    field as a column (fields named like TRL's own, e.g. HumanEval's ``prompt``, and fields whose values
    differ in type are left to ``rft_item``), and ``rft_item``, the item as JSON, which the reward
    functions here read."""
    from datasets import Dataset

    s = get_suite(suite)
    items = s.items(split)[:limit]
    if not items:
        raise ValueError(f"suite {s.id} has no {split!r} items")
    types: dict[str, set[type]] = {}
    for it in items:
        for k, v in it.items():
            types.setdefault(k, set()).add(type(v))
    plain = [k for k, ts in types.items() if k not in _NOT_COLUMNS and len(ts - {type(None)}) == 1]
    rows = [
        {
            "prompt": s.messages(it),
            **{k: it.get(k) for k in plain},
            ITEM_COLUMN: json.dumps(it, ensure_ascii=False),
        }
        for it in items
    ]
    return Dataset.from_list(rows)


def env_reward(
    prompts: list[Any] | None = None,
    completions: Sequence[Any] = (),
    env_reward: Sequence[float | None] = (),
    env_status: Sequence[str] = (),
    env_turns: Sequence[int] = (),
    log_metric: Callable[[str, float], None] | None = None,
    **_: Any,
) -> list[float | None]:
    """The reward of each episode `SuiteRollout` played (None where the grader failed), for TRL's
    ``reward_funcs``; logs ``rollout/turns`` and the grader's error and timeout rates."""
    if not env_reward:
        raise ValueError("env_reward needs the env_reward column: pass rollout_func=SuiteRollout(suite)")
    if log_metric is not None:
        n = len(env_status)
        log_metric("rollout/turns", sum(env_turns) / max(1, len(env_turns)))
        log_metric("grader/error_rate", sum(s == "error" for s in env_status) / max(1, n))
        log_metric("grader/timeout_rate", sum(s == "timeout" for s in env_status) / max(1, n))
    return list(env_reward)


def _key(messages: list[dict[str, Any]]) -> str:
    return json.dumps([[m["role"], m["content"]] for m in messages])


class SuiteRollout:
    """TRL's ``rollout_func`` for a suite: plays each prompt's `SuiteEnv` episode (single, feedback or tool)
    with the trainer's model and HF ``generate``. Use with ``train_dataset=suite_dataset(suite)`` (an
    ``eval_dataset`` of the held-out split works too) and ``reward_funcs=env_reward``.

    TRL calls it with the prompts of the batch (each repeated ``num_generations`` times) and the trainer,
    not the rows, so a prompt is matched to its item by the conversation (a prompt shared by items that
    differ is refused when drawn). Each model turn may take up to ``max_completion_length`` tokens; the
    environment's tokens (feedback, tool output, the chat template's markers) come back with ``env_mask``
    0, so only the model's tokens enter the loss. Grades and tool runs go to `pool` (worker processes with
    hard deadlines) when given, else run in this process.
    """

    def __init__(self, suite: Suite | str | Path, *, pool: GradingPool | None = None) -> None:
        self.suite, self.pool = get_suite(suite), pool
        self.__name__ = f"rollout_{self.suite.id}"
        self._index: dict[str, tuple[str, int]] = {}  # prompt -> (split, index)
        self._ambiguous: set[str] = set()
        for split in ("train", "heldout"):
            for i, it in enumerate(self.suite.items(split)):
                key = _key(self.suite.messages(it))
                if key not in self._index:
                    self._index[key] = (split, i)
                    continue
                first = self.suite.items(self._index[key][0])[self._index[key][1]]
                if {**first, "id": None} != {**it, "id": None}:
                    self._ambiguous.add(key)
        self._envs: list[SuiteEnv] = []

    def __call__(self, prompts: list[list[dict[str, Any]]], trainer: Any) -> dict[str, Any]:
        from rft.engines import HFEngine, Sampling
        from rft.rollout import run_episodes

        where: list[tuple[str, int]] = []
        for prompt in prompts:
            key = _key(prompt)
            if key not in self._index or key in self._ambiguous:
                why = "is not one of" if key not in self._index else "belongs to several different items of"
                raise ValueError(
                    f"a prompt {why} suite {self.suite.id}'s problems (build the dataset with "
                    f"suite_dataset(suite); dedupe rows that share a prompt): {key[:200]}"
                )
            where.append(self._index[key])
        self._check(trainer)
        while len(self._envs) < len(prompts):
            self._envs.append(SuiteEnv(self.suite))
        envs = self._envs[: len(prompts)]
        for env, (split, index) in zip(envs, where, strict=True):
            env.reset(options={"split": split, "index": index})
        # consecutive equal prompts are one group (TRL repeats each prompt num_generations times)
        groups = [0]
        for k in range(1, len(where)):
            groups.append(groups[-1] + (where[k] != where[k - 1]))
        model = trainer.accelerator.unwrap_model(trainer.model)
        tok = trainer.processing_class
        sampling = Sampling(
            temperature=trainer.temperature,
            top_p=trainer.top_p,
            top_k=trainer.top_k or 0,
            max_new_tokens=trainer.max_completion_length,
        )
        trajs = run_episodes(
            HFEngine(model, tok),
            tok,
            envs,
            groups,
            sampling,
            executor=self.pool,
            chunk=64,  # rows per generate call (rft's rollout_chunk); a chunk's grades run behind the next
            max_len=getattr(model.config, "max_position_embeddings", None),
            chat_template_kwargs=trainer.args.chat_template_kwargs,  # TRL's, overridden by the suite's
        )
        return {
            "prompt_ids": [t.ids[: t.prompt_len] for t in trajs],
            "completion_ids": [t.ids[t.prompt_len :] for t in trajs],
            "logprobs": None,  # TRL computes its own (HF generate samples from the training weights)
            "env_mask": [t.mask[t.prompt_len :] for t in trajs],
            "env_reward": [None if t.failed else t.reward for t in trajs],
            "env_status": [t.status for t in trajs],
            "env_turns": [t.turns for t in trajs],
        }

    @staticmethod
    def _check(trainer: Any) -> None:
        """What this rollout cannot honour is refused rather than silently ignored."""
        if trainer.use_vllm:
            raise ValueError("SuiteRollout samples with HF generate; set use_vllm=False")
        if (trainer.min_p or 0.0) > 0.0 or trainer.repetition_penalty != 1.0:
            raise ValueError(
                "SuiteRollout samples with temperature, top_p and top_k only; unset min_p and "
                "repetition_penalty"
            )
