"""`EvalSpec`: what an evaluation run samples and scores. `evaluate_suite` takes it, a pipeline's `eval:`
section is one (with the pipeline's defaults), and `rft eval` builds one from its options. A served model
(engine ``openai``) is reached as its `ServerSpec` says; `model_args` say how a model loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rft.chat import ChatConfig

__all__ = ["EvalSpec", "ServerSpec", "ENGINES", "MODEL_ARGS", "parse_model_args"]

ENGINES = ("hf", "vllm", "openai")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# the model arguments each engine takes (rft eval --model-args key=value,...)
MODEL_ARGS: dict[str, tuple[str, ...]] = {
    "hf": ("dtype", "revision", "trust_remote_code"),
    "vllm": ("dtype", "revision", "trust_remote_code", "max_model_len", "gpu_memory_utilization"),
    "openai": ("tokenizer", "token_ids"),  # --api completions: the chat template's tokenizer; send ids
}


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_model_args(text: str) -> dict[str, Any]:
    """``"dtype=bfloat16,max_model_len=4096,trust_remote_code=true"`` as a dict (true/false, integers and
    numbers converted), as lm-eval's ``--model_args`` reads."""
    out: dict[str, Any] = {}
    for part in (p for p in text.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"--model-args takes key=value pairs separated by commas, got {part.strip()!r}")
        if key in out:
            raise ValueError(f"--model-args names {key!r} twice")
        out[key] = _value(value)
    return out


@dataclass(frozen=True)
class ServerSpec:
    """An OpenAI-compatible server to sample from (engine ``openai``): where, through which API, how many
    requests at a time, how failed requests are retried. A request that still fails is an ``error`` sample."""

    base_url: str | None = None  # the server's /v1 URL, e.g. http://127.0.0.1:8000/v1
    api: Literal["chat", "completions"] = "chat"  # completions: rendered with a local chat template
    concurrency: int = 8  # requests in flight
    attempts: int = 5  # tries per request; 408, 429, 5xx and connection errors are retried
    backoff_s: float = 1.0  # wait before the second try, doubled each time (a Retry-After is honoured)
    max_wait_s: float = 60.0  # longest single wait
    timeout_s: float = 600.0  # per request
    api_key_env: str = "OPENAI_API_KEY"  # the variable that holds the API key (the key is never saved)

    def __post_init__(self) -> None:
        if self.api not in ("chat", "completions"):
            raise ValueError(f"api must be chat or completions, got {self.api!r}")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must start with http:// or https:// (and end in /v1), got {self.base_url!r}"
            )
        if self.concurrency < 1 or self.attempts < 1:
            raise ValueError(
                f"concurrency and attempts must be >= 1, got {self.concurrency}, {self.attempts}"
            )
        if min(self.backoff_s, self.max_wait_s) < 0 or self.timeout_s <= 0:
            raise ValueError("backoff_s and max_wait_s must be >= 0 and timeout_s > 0")


@dataclass
class EvalSpec:
    """An evaluation: `n` samples of each of the first `limit` problems of a suite's split, graded, scored
    as pass@k and maj@k for each k in `ks` and mean@n, with bootstrap intervals over problems."""

    suite: str | None = None  # env id, suite id or suite YAML (a pipeline's default: its suite)
    split: Literal["train", "heldout"] = "heldout"
    limit: int | None = None  # the first `limit` problems of the split (None: all)
    n: int = 1  # samples per problem
    ks: tuple[int, ...] = (1,)  # the k of pass@k and maj@k, each in 1..n
    temperature: float | None = None  # None: 0 (greedy) when n == 1, else 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256  # tokens per model turn
    fewshot: int = 0  # solved train problems in each prompt (their worked solutions as replies)
    engine: Literal["hf", "vllm", "openai"] = "hf"
    engine_options: dict[str, Any] = field(default_factory=dict)  # local engines', e.g. {batch_size: 8}
    model_args: dict[str, Any] = field(default_factory=dict)  # see MODEL_ARGS, e.g. {dtype: bfloat16}
    server: ServerSpec = field(default_factory=ServerSpec)  # engine openai: the server
    chat: ChatConfig = field(default_factory=ChatConfig)  # chat template and its kwargs (rft.chat)
    batch_prompts: int = 16  # problems sampled together (local engines)
    grader_workers: int = 1  # grading processes (0: in this process)
    torch_threads: int = 1  # 1 suits tiny models on CPU
    n_boot: int = 2000  # bootstrap resamples of each interval
    seed: int = 0

    def __post_init__(self) -> None:
        self.ks = tuple(self.ks)
        if self.split not in ("train", "heldout"):
            raise ValueError(f"split must be train or heldout, got {self.split!r}")
        if self.n < 1:
            raise ValueError(f"n (samples per problem) must be >= 1, got {self.n}")
        if not self.ks or not all(1 <= k <= self.n for k in self.ks):
            raise ValueError(
                f"need every k in 1..n (n={self.n} samples per problem), got k={list(self.ks)}: lower k or "
                "raise n"
            )
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or null: all problems), got {self.limit}")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0: greedy), got {self.temperature}")
        if self.temperature == 0 and self.n > 1:
            raise ValueError(
                f"temperature 0 (greedy) gives {self.n} identical samples; use temperature > 0 or n=1"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.fewshot < 0:
            raise ValueError(f"fewshot must be >= 0 (0: no examples in the prompt), got {self.fewshot}")
        if self.fewshot and self.split == "train":
            raise ValueError(
                "fewshot examples come from the train split: evaluate split heldout (or fewshot 0)"
            )
        if self.engine not in ENGINES:
            raise ValueError(
                f"unknown engine {self.engine!r}; use {', '.join(ENGINES[:-1])} or {ENGINES[-1]}"
            )
        self._check_engine()
        for name in ("max_new_tokens", "batch_prompts", "torch_threads", "n_boot"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.grader_workers < 0:
            raise ValueError(
                f"grader_workers must be >= 0 (0: grade in this process), got {self.grader_workers}"
            )

    def _check_engine(self) -> None:
        allowed = MODEL_ARGS[self.engine]
        bad = sorted(set(self.model_args) - set(allowed))
        if bad:
            raise ValueError(
                f"model args {bad} do not apply to the {self.engine} engine; it takes {', '.join(allowed)}"
            )
        args = self.model_args
        if "dtype" in args and args["dtype"] not in DTYPES:
            raise ValueError(f"model arg dtype must be one of {', '.join(DTYPES)}, got {args['dtype']!r}")
        for key in ("trust_remote_code", "token_ids"):
            if key in args and not isinstance(args[key], bool):
                raise ValueError(f"model arg {key} is true or false, got {args[key]!r}")
        length = args.get("max_model_len", 1)
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"model arg max_model_len must be an integer >= 1, got {length!r}")
        if self.engine == "openai":
            if self.server.base_url is None:
                raise ValueError("the openai engine needs the server's URL: --base-url http://HOST:PORT/v1")
            if args.get("token_ids") and self.server.api != "completions":
                raise ValueError("model arg token_ids applies to --api completions (chat sends messages)")
        elif self.server.base_url is not None:
            raise ValueError(f"--base-url is for the openai engine, not {self.engine}: add --engine openai")

    @property
    def sampling_temperature(self) -> float:
        """The temperature sampled at: as set, else 0 (greedy) for one sample per problem and 1.0 for more
        (greedy samples would all be the same)."""
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.n == 1 else 1.0
