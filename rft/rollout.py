"""Rollouts: run episodes of `rft.envs` environments with an engine and return token-level trajectories.

A trajectory is one token sequence: the prompt, then for each turn the model's tokens (``mask`` 1) and the
environment's reply (``mask`` 0: tool output, feedback, and the chat template's own tokens), so only the
model's own tokens enter the loss. The model's tokens are kept exactly as sampled, never re-tokenized.

Grading is pipelined behind generation: completions are generated in chunks and each chunk's grades are
submitted to the grader executor (a `GradingPool`: `GraderPool` worker processes, or a `RayGraderPool`)
before the next chunk is generated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from transformers import PreTrainedTokenizerBase

from rft.chat import recognise, render_chat
from rft.engines import Completion, Engine, Sampling
from rft.envs import SuiteEnv
from rft.envs.episode import start_job
from rft.graders.executor import GradingPool

__all__ = [
    "Trajectory",
    "chat_prompt_ids",
    "turn_suffix_ids",
    "run_episodes",
    "sample_problems",
    "TemplateMismatch",
]


class TemplateMismatch(ValueError):
    """The chat template does not render a conversation's prefix as a prefix of the whole: multi-turn
    token sequences cannot be built from it (use a template that preserves prefixes: `rft.chat`)."""


def _mismatch(tokenizer: PreTrainedTokenizerBase) -> TemplateMismatch:
    known = recognise(tokenizer.chat_template)
    fix = (
        f"this is a template rft knows: set `chat: {{template: {known}}}` in the recipe (rft eval/sample: --chat "
        f"'{{template: {known}}}') for its prefix-preserving copy (earlier turns keep their reasoning)"
        if known
        else "set `chat: {template: path/to/template.jinja}` in the recipe (rft eval/sample: --chat) to a "
        "prefix-preserving template (one that renders every turn the same whatever follows it; rft ships "
        "qwen3-preserving)"
    )
    return TemplateMismatch(
        "the chat template does not keep earlier turns unchanged when a turn is added, so a multi-turn "
        f"episode's tokens cannot be built incrementally (sampling and training would see different text); {fix}"
    )


@dataclass
class Trajectory:
    """One episode as tokens. `ids` and `mask` have the same length; `mask[t]` is 1 for model tokens."""

    group: int  # the prompt's index in the batch (samples of one prompt share it)
    ids: list[int]
    mask: list[int]
    prompt_len: int
    reward: float = 0.0
    status: str = "ok"  # the final grade's status
    failed: bool = False  # the grader failed (timeout/error): masked out of the loss, not rewarded 0
    overlong: bool = False  # some turn stopped at max_new_tokens
    turns: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    prompt_messages: int = 0  # how many of `messages` were the prompt (few-shot turns included)
    info: dict[str, Any] = field(default_factory=dict)  # the last step's info (grade, reference, ...)
    logprobs: list[float] = field(default_factory=list)  # the sampler's, per token (0 off the model's);
    # filled when `Sampling.logprobs` is set (off-policy updates need the behaviour policy's)

    @property
    def completion_tokens(self) -> int:
        return sum(self.mask)

    def record(self) -> dict[str, Any]:
        """The episode as a JSON-able row: prompt and completion messages apart, the grade, the reference."""
        return {
            "id": self.info.get("id"),
            "suite": self.info.get("suite"),
            "messages": self.messages[: self.prompt_messages],
            "completion": self.messages[self.prompt_messages :],
            "reward": self.reward,
            "status": self.status,
            "grade": self.info.get("grade"),
            "reference": self.info.get("reference"),
            "overlong": self.overlong,
            **({"tool_stats": self.info["tool_stats"]} if "tool_stats" in self.info else {}),
        }


def chat_prompt_ids(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    **template_kwargs: Any,
) -> list[int]:
    """The token ids of a conversation rendered with the generation prompt (and the `tools`' schemas, for
    templates that render them: ``SuiteEnv.tool_schemas``; `template_kwargs` go to the chat template, e.g.
    ``enable_thinking=False``)."""
    text = _render(tokenizer, messages, tools, True, template_kwargs)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _render(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    generation: bool,
    template_kwargs: dict[str, Any],
) -> str:
    extra = {"tools": tools} if tools else {}
    return render_chat(tokenizer, messages, add_generation_prompt=generation, **extra, **template_kwargs)


def turn_suffix_ids(
    tokenizer: PreTrainedTokenizerBase,
    before: list[dict[str, Any]],
    completion: Completion,
    after: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    **template_kwargs: Any,
) -> list[int]:
    """The environment's tokens after a model turn: what the template puts after the assistant's text
    (its end-of-turn marker, less the eos the model already sampled), then the new messages and the next
    generation prompt. `before` ends with the user/tool message the model answered; `after` is `before` +
    the assistant message + the environment's replies. `tools` and `template_kwargs` as for `chat_prompt_ids`.

    The model's tokens are kept as sampled, so the end of its turn is found by rendering the assistant
    message with its raw text (``completion.text``, no ``tool_calls``): the rule for tool calls, whose
    message the template renders from structured ``tool_calls`` in its own way. The template may put
    whitespace before the text and trim the text's own leading or trailing whitespace (Llama, Mistral).
    What follows the turn (tool messages, the next generation prompt) is the difference between the
    conversation with and without them, rendered with the structured message. A template that rewrites
    earlier turns raises `TemplateMismatch`."""
    n = len(before)
    raw = completion.text
    prompt = _render(tokenizer, before, tools, True, template_kwargs)
    with_raw = _render(
        tokenizer, [*before, {"role": "assistant", "content": raw}], tools, False, template_kwargs
    )
    closing = _closing(prompt, with_raw, raw)
    if closing is None:
        raise _mismatch(tokenizer)
    assistant = after[n]
    plain = "tool_calls" not in assistant and assistant.get("content") == raw
    with_reply = with_raw if plain else _render(tokenizer, after[: n + 1], tools, False, template_kwargs)
    full = _render(tokenizer, after, tools, True, template_kwargs)
    if not full.startswith(with_reply):
        raise _mismatch(tokenizer)
    sampled_eos = completion.finish_reason == "stop" and completion.token_ids[-1:] == [tokenizer.eos_token_id]
    eos_text = str(tokenizer.eos_token)
    if sampled_eos and closing.startswith(eos_text):
        closing = closing[len(eos_text) :]
    return tokenizer(closing + full[len(with_reply) :], add_special_tokens=False)["input_ids"]


def _closing(prompt: str, with_reply: str, raw: str) -> str | None:
    """What the template renders after the assistant's text `raw` (e.g. "<|im_end|>\n"); None when
    `with_reply` does not extend `prompt` with `raw` (the template is not prefix-preserving)."""
    body = with_reply[len(prompt) :] if with_reply.startswith(prompt) else None
    core = raw.strip()
    rest = None if body is None else body[len(body) - len(body.lstrip()) :]
    if rest is None or not rest.startswith(core):
        return None  # the template does not render the prompt as a prefix of the reply, or changes the reply
    rest = rest[len(core) :]
    tail = raw[len(raw.rstrip()) :]
    return rest[len(tail) :] if tail and rest.startswith(tail) else rest


GradeExecutor: TypeAlias = GradingPool | None  # None: grade in this thread


def run_episodes(
    engine: Engine,
    tokenizer: PreTrainedTokenizerBase,
    envs: Sequence[SuiteEnv],
    groups: Sequence[int],
    sampling: Sampling,
    *,
    executor: GradeExecutor = None,
    chunk: int = 32,
    max_len: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> list[Trajectory]:
    """Play one episode in each env (already `reset`) to its end and return the trajectories.

    `groups[i]` is env i's prompt index; envs of one group that share a first prompt are sampled with
    ``n`` > 1 on the first turn. Each turn generates the still-running episodes in chunks of `chunk`
    rows, submitting every chunk's grades (or tool runs) before generating the next. An episode whose
    tokens would pass `max_len` is ended as `overlong` with reward 0 (its last grade is kept).
    Every render passes `chat_template_kwargs` (a recipe's) overridden by the env's suite's own
    (``prompt.chat_template_kwargs``)."""
    if len(groups) != len(envs):
        raise ValueError(f"groups ({len(groups)}) and envs ({len(envs)}) must have the same length")
    kwargs = [{**(chat_template_kwargs or {}), **env.suite.prompt.chat_template_kwargs} for env in envs]
    trajs: list[Trajectory] = []
    for env, g, kw in zip(envs, groups, kwargs, strict=True):
        env.use_chat_template(tokenizer.chat_template)
        msgs = env.messages
        ids = chat_prompt_ids(tokenizer, msgs, env.tool_schemas, **kw)
        trajs.append(
            Trajectory(
                g,
                ids,
                [0] * len(ids),
                len(ids),
                messages=msgs,
                prompt_messages=len(msgs),
                logprobs=[0.0] * len(ids),
            )
        )
    active = list(range(len(envs)))
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="rft-tool") as tools:
        first, calls = True, 0
        while active:
            pending: list[tuple[int, Completion, list[dict[str, Any]], Future[Any]]] = []
            for runs in _chunks([(i, trajs[i].ids) for i in active], first, chunk):
                seed = None if sampling.seed is None else sampling.seed + 7919 * calls  # a new draw per call
                calls += 1
                for idxs, comps in zip(
                    runs.values(), _generate(engine, runs, replace(sampling, seed=seed)), strict=True
                ):
                    for i, comp in zip(idxs, comps, strict=True):
                        t, env = trajs[i], envs[i]
                        before = env.messages
                        t.ids += comp.token_ids
                        t.mask += [1] * len(comp.token_ids)
                        t.logprobs += comp.logprobs or [0.0] * len(comp.token_ids)
                        t.overlong |= comp.finish_reason == "length"
                        t.turns += 1
                        pending.append(
                            (i, comp, before, start_job(env.begin_step(comp.text), executor, tools))
                        )
                if on_chunk is not None:
                    on_chunk(sum(len(v) for v in runs.values()))
            first, active = False, []
            for i, comp, before, fut in pending:
                t, env = trajs[i], envs[i]
                _, reward, term, trunc, info = env.finish_step(fut.result())
                t.info, t.messages = info, env.messages
                if "grade" in info:
                    t.status, t.failed = info["grade"]["status"], info["grade_failed"]
                if term or trunc:
                    t.reward = float(reward)
                    continue
                suffix = turn_suffix_ids(tokenizer, before, comp, env.messages, env.tool_schemas, **kwargs[i])
                if max_len is not None and len(t.ids) + len(suffix) + 1 > max_len:
                    t.overlong, t.reward = True, 0.0
                    continue
                t.ids += suffix
                t.mask += [0] * len(suffix)
                t.logprobs += [0.0] * len(suffix)
                active.append(i)
    return trajs


def _chunks(
    prompts: list[tuple[int, list[int]]], first: bool, chunk: int
) -> Iterator[dict[tuple[int, ...], list[int]]]:
    """Chunks of about `chunk` rows, each a mapping prompt -> the episodes that continue it. On the first
    turn consecutive episodes with the same prompt (a group) share one entry, sampled with ``n``."""
    runs: list[tuple[tuple[int, ...], list[int]]] = []
    for i, ids in prompts:
        key = tuple(ids)
        if first and runs and runs[-1][0] == key:
            runs[-1][1].append(i)
        else:
            runs.append((key, [i]))
    batch: dict[tuple[int, ...], list[int]] = {}
    rows = 0
    for key, idxs in runs:
        if batch and rows + len(idxs) > chunk:
            yield batch
            batch, rows = {}, 0
        if key in batch:  # the same prompt again, not adjacent: keep it separate
            yield batch
            batch, rows = {}, 0
        batch[key] = idxs
        rows += len(idxs)
    if batch:
        yield batch


def _generate(
    engine: Engine, runs: dict[tuple[int, ...], list[int]], sampling: Sampling
) -> list[list[Completion]]:
    """Completions for each prompt of a chunk, as many as it has episodes: one call per distinct count."""
    keys = list(runs)
    results: dict[tuple[int, ...], list[Completion]] = {}
    for n in sorted({len(v) for v in runs.values()}):
        these = [k for k in keys if len(runs[k]) == n]
        s = replace(sampling, n=n)
        for k, comps in zip(these, engine.generate([list(k) for k in these], s), strict=True):
            results[k] = comps
    return [results[k] for k in keys]


def sample_problems(
    engine: Engine,
    tokenizer: PreTrainedTokenizerBase,
    envs: Sequence[SuiteEnv],
    split: str,
    n_problems: int,
    n: int,
    sampling: Sampling,
    *,
    executor: GradeExecutor = None,
    progress: Callable[[int, int], None] | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> Iterator[tuple[int, list[Trajectory]]]:
    """`n` graded episodes of each of the first `n_problems` problems of `split`, as many problems at a time
    as `envs` holds groups of `n`. Yields (index of the batch's first problem, its trajectories, problem by
    problem). Batch b is sampled with seed ``sampling.seed * 1_000_003 + b's first index``: reproducible."""
    per_batch = len(envs) // n
    if per_batch < 1:
        raise ValueError(f"need at least n={n} envs, got {len(envs)}")
    for start in range(0, n_problems, per_batch):
        used = envs[: min(per_batch, n_problems - start) * n]
        for k, env in enumerate(used):
            env.reset(options={"split": split, "index": start + k // n})
        seed = None if sampling.seed is None else sampling.seed * 1_000_003 + start
        groups = [k // n for k in range(len(used))]
        yield (
            start,
            run_episodes(
                engine,
                tokenizer,
                used,
                groups,
                replace(sampling, seed=seed),
                executor=executor,
                chat_template_kwargs=chat_template_kwargs,
            ),
        )
        if progress is not None:
            progress(start + len(used) // n, n_problems)
