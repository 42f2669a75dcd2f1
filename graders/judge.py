"""LLM-judge graders: OpenAI's `score_model` and `label_model`, plus `embed` for embedding metrics.

The judge is any OpenAI-compatible chat endpoint (OpenAI, vLLM, `rft serve`). Its reply must be the
JSON object ``{"result": ...}``; a reply that is not (or holds a number outside `range`, or an unknown
label) is an `error` grade: the judge failed, the policy is not scored 0.

rft extensions to OpenAI's spec: `base_url`, `api_key`, `request_timeout`, `max_retries`,
`structured_output`, and `sampling_params` on `label_model` too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .base import Grader, as_sample, register
from .grade import Grade
from .template import as_text, placeholders, reads_sample, render

__all__ = [
    "ScoreModel",
    "LabelModel",
    "JudgeMessage",
    "SamplingParams",
    "EndpointError",
    "EndpointTimeout",
    "judge_messages",
    "extract_result",
    "embed",
]

OPENAI_BASE_URL = "https://api.openai.com/v1"
DUMMY_API_KEY = "EMPTY"  # local servers ignore the key, but the client insists on one
_EMBED_RETRIES = 2


class EndpointError(RuntimeError):
    """The model endpoint could not be used (unreachable, HTTP error, malformed response)."""


class EndpointTimeout(EndpointError, TimeoutError):
    """The model endpoint did not answer in time."""


class JudgeMessage(BaseModel):
    """One input message; `content` is a template (``{{ sample.output_text }}``, ``{{ item.x }}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str
    type: Literal["message"] | None = None  # OpenAI's EasyInputMessage marker; ignored


class SamplingParams(BaseModel):
    """OpenAI's grader sampling params (note OpenAI's spelling `max_completions_tokens`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    max_completions_tokens: int | None = Field(default=None, ge=1)
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None

    def request_kwargs(self) -> dict[str, Any]:
        out = self.model_dump(exclude_none=True)
        if "max_completions_tokens" in out:
            out["max_completion_tokens"] = out.pop("max_completions_tokens")
        return out


class _Judge(Grader):
    """Shared by both judge types: render the input, call the endpoint, parse ``{"result": ...}``."""

    input: list[JudgeMessage] = Field(min_length=1)
    model: str = Field(min_length=1)
    sampling_params: SamplingParams | None = None
    base_url: str | None = Field(
        default=None, description="default: $RFT_JUDGE_BASE_URL, then $OPENAI_BASE_URL, then OpenAI"
    )
    api_key: str | None = Field(default=None, repr=False, description="default: $OPENAI_API_KEY")
    request_timeout: float = Field(default=60.0, gt=0, description="seconds per request")
    max_retries: int = Field(default=2, ge=0, description="client retries on connection errors, 429 and 5xx")
    structured_output: bool = Field(
        default=True, description="request response_format json_schema (turn off for servers that reject it)"
    )

    def model_post_init(self, _context: Any) -> None:
        super().model_post_init(_context)
        for i, m in enumerate(self.input):
            try:
                placeholders(m.content)
            except ValueError as e:
                raise ValueError(f"input[{i}].content: {e}") from None
        if not any(reads_sample(m.content) for m in self.input):
            raise ValueError(
                "no input message reads the model's output, so the judge would see the same prompt for every "
                "sample: put {{ sample.output_text }} in one of them"
            )

    # What a result is: the instruction and JSON schema shown to the judge, and how to read its reply.
    def _instruction(self) -> str:
        raise NotImplementedError

    def _result_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def _verdict(self, reply: str) -> tuple[Any, float, bool]:
        """(result, score, passed) from the reply; ValueError says why the reply is unusable."""
        raise NotImplementedError

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        messages = _messages(self, ctx)
        kwargs = self.sampling_params.request_kwargs() if self.sampling_params else {}
        if self.structured_output:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "judgement",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"result": self._result_schema()},
                        "required": ["result"],
                        "additionalProperties": False,
                    },
                },
            }
        base_url = _base_url(self.base_url)
        where = {"model": self.model, "base_url": base_url}
        try:
            with _endpoint_errors(
                f"judge {self.model!r} at {base_url}", self.request_timeout, self.max_retries
            ):
                client = _client(base_url, self.api_key, self.request_timeout, self.max_retries)
                response = client.chat.completions.create(model=self.model, messages=messages, **kwargs)
        except EndpointTimeout as e:
            return Grade.timeout(str(e), **where)
        except EndpointError as e:
            return Grade.error(str(e), **where)
        usage = response.usage.model_dump() if response.usage is not None else None
        details: dict[str, Any] = {"model": response.model or self.model, "usage": usage}
        if not response.choices:
            return Grade.error("judge returned no choices", **details)
        choice = response.choices[0]
        reply = choice.message.content
        details |= {"reply": reply, "finish_reason": choice.finish_reason}
        if not reply:
            refusal = getattr(choice.message, "refusal", None)
            return Grade.error(
                f"judge returned no text{f' (refusal: {refusal})' if refusal else ''}", **details
            )
        try:
            result, score, passed = self._verdict(reply)
        except ValueError as e:
            cut = " (it hit the token limit)" if choice.finish_reason == "length" else ""
            return Grade.error(f"unusable judge reply{cut}: {e}", **details)
        return Grade(score, "ok", passed, result, details)


@register("score_model")
class ScoreModel(_Judge):
    """OpenAI `score_model`: the judge answers a number in `range`; score = that number,
    passed = score >= `pass_threshold` (without a threshold: score == the top of the range)."""

    type: Literal["score_model"] = "score_model"
    range: tuple[float, float] = (0.0, 1.0)
    pass_threshold: float | None = None

    @model_validator(mode="after")
    def _check_range(self) -> ScoreModel:
        lo, hi = self.range
        if not lo < hi:
            raise ValueError(f"range [{lo}, {hi}] must be [low, high] with low < high")
        return self

    def _instruction(self) -> str:
        lo, hi = (_num_text(x) for x in self.range)
        return (
            f'Reply with only a JSON object {{"result": <score>}}, where <score> is a number '
            f"from {lo} to {hi}."
        )

    def _result_schema(self) -> dict[str, Any]:
        return {"type": "number"}

    def _verdict(self, reply: str) -> tuple[float, float, bool]:
        result = extract_result(reply)
        if isinstance(result, str):
            try:
                result = float(result.strip())
            except ValueError:
                raise ValueError(f"result {result!r} is not a number") from None
        if isinstance(result, bool) or not isinstance(result, int | float) or not math.isfinite(result):
            raise ValueError(f"result {result!r} is not a finite number")
        lo, hi = self.range
        if not lo <= result <= hi:
            raise ValueError(
                f"result {_num_text(result)} is outside the range [{_num_text(lo)}, {_num_text(hi)}]"
            )
        threshold = self.pass_threshold if self.pass_threshold is not None else hi
        return float(result), float(result), result >= threshold


@register("label_model")
class LabelModel(_Judge):
    """OpenAI `label_model`: the judge answers one of `labels`; score 1 when it is a passing label."""

    type: Literal["label_model"] = "label_model"
    labels: list[str] = Field(min_length=1)
    passing_labels: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_labels(self) -> LabelModel:
        if len({x.casefold() for x in self.labels}) != len(self.labels):
            raise ValueError(f"labels {self.labels} must be distinct (ignoring case)")
        unknown = [x for x in self.passing_labels if x not in self.labels]
        if unknown:
            raise ValueError(f"passing_labels {unknown} are not in labels {self.labels}")
        return self

    def _instruction(self) -> str:
        options = ", ".join(json.dumps(x) for x in self.labels)
        return f'Reply with only a JSON object {{"result": "<label>"}}, where <label> is exactly one of: {options}.'

    def _result_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.labels)}

    def _verdict(self, reply: str) -> tuple[str, float, bool]:
        result = extract_result(reply, labels=self.labels)
        if isinstance(result, str):
            for label in self.labels:
                if result.strip().casefold() == label.casefold():
                    ok = label in self.passing_labels
                    return label, float(ok), ok
        raise ValueError(f"result {result!r} is not one of the labels {self.labels}")


def _num_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _messages(grader: _Judge, ctx: dict[str, Any]) -> list[dict[str, str]]:
    messages = [{"role": m.role, "content": as_text(render(m.content, ctx))} for m in grader.input]
    instruction = grader._instruction()
    if messages[-1]["role"] == "user":  # one user turn: some chat templates refuse two in a row
        messages[-1]["content"] += "\n\n" + instruction
    else:
        messages.append({"role": "user", "content": instruction})
    return messages


def judge_messages(
    grader: ScoreModel | LabelModel, sample: dict[str, Any] | str, item: dict[str, Any] | None = None
) -> list[dict[str, str]]:
    """The chat messages the judge receives: the rendered `input`, with the reply-format instruction
    appended to the last user message (or added as a user message when the input ends otherwise)."""
    return _messages(grader, {"item": item if item is not None else {}, "sample": as_sample(sample)})


# -- parsing the reply ----------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_decoder = json.JSONDecoder()


def _objects(text: str) -> list[Any]:
    """Every JSON object that starts at a ``{`` in `text`, in order (nested ones skipped)."""
    found, pos = [], 0
    while (start := text.find("{", pos)) >= 0:
        try:
            obj, end = _decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        found.append(obj)
        pos = end
    return found


def extract_result(reply: str, *, labels: list[str] | None = None) -> Any:
    """The ``result`` of a judge reply: a JSON object, alone, in a ```json fence, or inside other text
    (the last such object wins). With `labels`, a bare label (any case, stripped) counts too.
    Raises ValueError when there is no result."""
    text = reply.strip()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        results = [o["result"] for o in _objects(chunk) if isinstance(o, dict) and "result" in o]
        if results:
            return results[-1]
    if labels:
        bare = text.strip("\"'`.").strip()
        for label in labels:
            if bare.casefold() == label.casefold():
                return label
    shown = reply if len(reply) <= 200 else reply[:200] + "..."
    raise ValueError(f'no {{"result": ...}} JSON object in the reply {shown!r}')


# -- talking to the endpoint ----------------------------------------------------------------------


def _base_url(base_url: str | None) -> str:
    return (
        base_url
        or os.environ.get("RFT_JUDGE_BASE_URL")
        or os.environ.get("OPENAI_BASE_URL")
        or OPENAI_BASE_URL
    )


@functools.lru_cache(maxsize=32)
def _cached_client(pid: int, base_url: str, api_key: str, timeout: float, max_retries: int) -> Any:
    import openai

    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)


def _client(base_url: str, api_key: str | None, timeout: float, max_retries: int) -> Any:
    """One client per process and settings (a forked worker builds its own connection pool)."""
    key = api_key or os.environ.get("OPENAI_API_KEY") or DUMMY_API_KEY
    return _cached_client(os.getpid(), base_url, key, timeout, max_retries)


@contextlib.contextmanager
def _endpoint_errors(what: str, timeout: float, retries: int) -> Iterator[None]:
    """Turn the openai client's exceptions into EndpointError / EndpointTimeout that say what failed."""
    import openai

    try:
        yield
    except openai.APITimeoutError as e:
        tries = f" ({retries + 1} tries)" if retries else ""
        raise EndpointTimeout(f"{what} did not answer within {timeout:g}s{tries}") from e
    except openai.APIConnectionError as e:
        cause = e.__cause__ or e
        raise EndpointError(f"cannot reach {what}: {type(cause).__name__}: {cause}") from e
    except openai.APIStatusError as e:
        raise EndpointError(f"{what} answered HTTP {e.status_code}: {e.message}") from e
    except openai.OpenAIError as e:
        raise EndpointError(f"{what} failed: {type(e).__name__}: {e}") from e


def embed(
    texts: list[str],
    *,
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
) -> list[list[float]]:
    """Embed `texts` through an OpenAI-compatible ``/embeddings`` endpoint (same base URL and key
    defaults as the judges). Raises `EndpointTimeout` (a TimeoutError) or `EndpointError`."""
    if not texts:
        return []
    url = _base_url(base_url)
    with _endpoint_errors(f"embedding model {model!r} at {url}", timeout, _EMBED_RETRIES):
        client = _client(url, api_key, timeout, _EMBED_RETRIES)
        response = client.embeddings.create(model=model, input=list(texts), encoding_format="float")
    data = sorted(response.data, key=lambda d: d.index)
    if len(data) != len(texts):
        raise EndpointError(f"embedding endpoint returned {len(data)} vectors for {len(texts)} texts")
    return [list(d.embedding) for d in data]
