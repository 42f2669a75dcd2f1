"""verl integration: rft graders as verl's custom reward function, rft suites as verl's RL parquet files.

In a verl run (``main_ppo``)::

    data.train_files=out/train.parquet data.val_files=out/test.parquet          # from suite_to_parquet
    custom_reward_function.path=$(python -c "import rft.integrations.verl as m; print(m.__file__)")
    custom_reward_function.name=compute_score         # or compute_score_batch with reward_manager=batch

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` per response. The
`data_source` names the rft suite (``rft/gsm8k-v0``; verl's own ``openai/gsm8k`` and ``lighteval/MATH``
are aliases of rft's GSM8K and MATH suites), whose grader grades ``{"output_text": solution_str}``
against the item: `ground_truth` is ``item.reference`` and ``extra_info["item"]`` (JSON, written by
`suite_to_parquet`) holds the rest of the row. verl loads this file by path under another module name,
so it uses absolute imports only.

verl has no "skip this sample": a grade whose status is ``timeout`` or ``error`` scores `failed_score`
(0.0, as rft's environments give) and says so in the returned dict (``grader_status``, ``grader_failed``
= 1.0, ``grader_error``), which verl logs beside the score; the mean of ``grader_failed`` is the
failure rate. Every call returns the same keys, as verl's metrics need.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rft.graders import Grade, Grader, GradingPool, load_grader

__all__ = [
    "compute_score",
    "compute_score_batch",
    "make_compute_score",
    "VerlScorer",
    "suite_rows",
    "suite_to_parquet",
    "DATA_SOURCE_ALIASES",
    "PARQUET_FILES",
]

# verl's data_source names for data sets that an rft suite grades the same way (same ground truth: the
# number after "####" for GSM8K, the last \boxed{} of the solution for MATH).
DATA_SOURCE_ALIASES: dict[str, str] = {
    "openai/gsm8k": "rft/gsm8k-v0",
    "lighteval/MATH": "rft/math-v0",
    "DigitalLearningGmbH/MATH-lighteval": "rft/math-v0",
}
PARQUET_FILES: dict[str, str] = {"train": "train.parquet", "heldout": "test.parquet"}  # rft split -> file
ERROR_CHARS = 300  # of a failed grade's message, in ``grader_error``


class VerlScorer:
    """verl's reward function over rft graders. Thread-safe (verl's reward loop calls it from threads).

    `spec`: a grader spec for every data source, with `ground_truth` as ``item[reference_field]``; None
    picks the grader of the suite that `data_source` names. `executor`: None grades in the calling
    thread (no hard deadline: a grader that hangs hangs verl); a `GraderPool`/`RayGraderPool`, or a
    callable that makes one on first use (in the process that scores), enforces per-sample deadlines.
    """

    def __init__(
        self,
        spec: dict[str, Any] | str | Path | None = None,
        *,
        reference_field: str = "reference",
        executor: GradingPool | Callable[[], GradingPool] | None = None,
        failed_score: float = 0.0,
    ) -> None:
        self._grader = load_grader(spec) if spec is not None else None
        self.reference_field = reference_field
        self.failed_score = float(failed_score)
        self._executor = executor
        self._lock = threading.Lock()
        self._suites: dict[str, tuple[Grader, str | None]] = {}  # data_source -> (grader, raw ref field)

    def __call__(
        self,
        data_source: str,
        solution_str: str,
        ground_truth: Any,
        extra_info: dict[str, Any] | None = None,
        **_verl: Any,  # reward_router_address, reward_model_tokenizer, ...: not used
    ) -> dict[str, Any]:
        """Grade one response; returns ``{"score", "acc", "pred", "grader_status", "grader_failed",
        "grader_error"}``."""
        grader, item = self._prepare(data_source, ground_truth, extra_info)
        sample = {"output_text": solution_str}
        executor = self._pool()
        grade = (
            grader.grade(sample, item) if executor is None else executor.submit(grader, sample, item).result()
        )
        return self.result(grade)

    def batch(
        self,
        data_sources: Sequence[str],
        solution_strs: Sequence[str],
        ground_truths: Sequence[Any],
        extra_infos: Sequence[dict[str, Any] | None] | None = None,
        **_verl: Any,
    ) -> list[dict[str, Any]]:
        """verl's batch reward function (``reward_manager=batch``): one result per response, in order; with
        an executor the whole batch is graded concurrently."""
        n = len(solution_strs)
        extras = [None] * n if extra_infos is None else list(extra_infos)
        if not len(data_sources) == len(ground_truths) == len(extras) == n:
            raise ValueError(
                f"data_sources ({len(data_sources)}), solution_strs ({n}), ground_truths "
                f"({len(ground_truths)}) and extra_infos ({len(extras)}) must have one entry per response"
            )
        groups: dict[int, tuple[Grader, list[int], list[dict[str, Any]]]] = {}
        for i, (source, truth, extra) in enumerate(zip(data_sources, ground_truths, extras, strict=True)):
            grader, item = self._prepare(source, truth, extra)
            groups.setdefault(id(grader), (grader, [], []))
            groups[id(grader)][1].append(i)
            groups[id(grader)][2].append(item)
        out: list[dict[str, Any]] = [{}] * n
        executor = self._pool()
        for grader, index, items in groups.values():
            samples = [{"output_text": solution_strs[i]} for i in index]
            if executor is None:
                grades = [grader.grade(s, it) for s, it in zip(samples, items, strict=True)]
            else:
                grades = executor.grade(grader, samples, items)
            for i, grade in zip(index, grades, strict=True):
                out[i] = self.result(grade)
        return out

    def result(self, grade: Grade) -> dict[str, Any]:
        """A grade as verl's reward dict; a failed grade (timeout, error) scores `failed_score`."""
        extracted = grade.extracted
        return {
            "score": self.failed_score if grade.failed else float(grade.score),
            "acc": 1.0 if grade.passed and not grade.failed else 0.0,
            "pred": "" if extracted is None else str(extracted),  # verl's majority vote reads "pred"
            "grader_status": grade.status,
            "grader_failed": 1.0 if grade.failed else 0.0,
            "grader_error": str(grade.details.get("error", ""))[:ERROR_CHARS] if grade.failed else "",
        }

    def grader_for(self, data_source: str) -> Grader:
        """The grader used for `data_source` (loaded once per data source)."""
        return self._target(data_source)[0]

    def _prepare(self, data_source: str, ground_truth: Any, extra_info: Any) -> tuple[Grader, dict[str, Any]]:
        grader, raw_field = self._target(data_source)
        item = _item_from(extra_info)
        reference = ground_truth
        if isinstance(extra_info, dict) and extra_info.get("reference_is_json"):
            reference = json.loads(ground_truth)
        item[self.reference_field if self._grader is not None else "reference"] = reference
        if raw_field is not None:
            item.setdefault(raw_field, reference)  # the row's own field, when the reference is it verbatim
        return grader, item

    def _target(self, data_source: str) -> tuple[Grader, str | None]:
        if self._grader is not None:
            return self._grader, None
        hit = self._suites.get(data_source)
        if hit is not None:
            return hit
        with self._lock:
            if data_source not in self._suites:
                suite = _suite_for(data_source)
                raw = None if suite.fields.reference_pattern else suite.fields.reference
                self._suites[data_source] = (load_grader(suite.grader), raw)
            return self._suites[data_source]

    def _pool(self) -> GradingPool | None:
        executor = self._executor
        if executor is None or hasattr(executor, "submit"):
            return executor  # type: ignore[return-value]
        with self._lock:  # a factory: make the pool once, in this process
            if not hasattr(self._executor, "submit"):
                self._executor = self._executor()  # type: ignore[operator, misc]
            return self._executor  # type: ignore[return-value]


def make_compute_score(
    spec: dict[str, Any] | str | Path | None = None,
    *,
    reference_field: str = "reference",
    executor: GradingPool | Callable[[], GradingPool] | None = None,
    failed_score: float = 0.0,
) -> VerlScorer:
    """A verl reward function: ``make_compute_score({"type": "math", ...})`` grades every data source
    with that spec (`ground_truth` is ``item[reference_field]``); ``make_compute_score()`` picks the grader
    of the rft suite named by each `data_source`. Its ``.batch`` is verl's batch reward function. Put
    ``compute_score = make_compute_score(...)`` in a file and point ``custom_reward_function.path`` at it."""
    return VerlScorer(spec, reference_field=reference_field, executor=executor, failed_score=failed_score)


compute_score = make_compute_score()  # per data_source, graded in the calling thread
compute_score_batch = compute_score.batch


def _item_from(extra_info: Any) -> dict[str, Any]:
    """The item that `suite_to_parquet` stored (``extra_info["item"]``, JSON), else the extra_info's own
    keys but verl's bookkeeping ones."""
    if not isinstance(extra_info, dict):
        return {}
    stored = extra_info.get("item")
    if isinstance(stored, str):
        return dict(json.loads(stored))
    if isinstance(stored, dict):
        return dict(stored)
    return {k: v for k, v in extra_info.items() if k not in ("split", "index", "reference_is_json")}


def _suite_for(data_source: str) -> Any:
    import rft.envs  # registers the built-in suites and those in $RFT_TASKS

    name = DATA_SOURCE_ALIASES.get(data_source, data_source)
    try:
        return rft.envs.get_suite(name)
    except rft.envs.SuiteError as e:
        raise ValueError(
            f"verl data_source {data_source!r} names no rft suite ({e}). Write the parquet files with "
            "rft.integrations.verl.suite_to_parquet (data_source 'rft/<suite id>'); for a suite of your own, "
            "put its folder in $RFT_TASKS in the reward workers' environment (or call "
            "rft.envs.register_suite(path) in your reward file); for other data, use "
            "make_compute_score(grader_spec)"
        ) from None


# ---- parquet --------------------------------------------------------------------------------------


def suite_rows(suite: Any, split: str, *, limit: int | None = None) -> list[dict[str, Any]]:
    """verl's RL rows for one split of a suite (a `Suite`, an env id like ``rft/gsm8k-v0``, or a YAML
    path): ``data_source``, ``prompt`` (chat messages), ``ability`` (the grader type), ``reward_model``
    (``{"style": "rule", "ground_truth": reference}``) and ``extra_info`` (split, index, id, the item as
    JSON without its reference, and whether `ground_truth` is JSON because the reference is not a str)."""
    s = _envs().get_suite(suite)
    rows = []
    for index, item in enumerate(s.items(split)[:limit]):
        reference = item["reference"]
        as_json = not isinstance(reference, str)
        rest = {k: v for k, v in item.items() if k != "reference"}
        rows.append(
            {
                "data_source": f"rft/{s.id}",
                "prompt": s.messages(item),
                "ability": str(s.grader.get("type", "")),
                "reward_model": {
                    "style": "rule",
                    "ground_truth": json.dumps(reference) if as_json else reference,
                },
                "extra_info": {
                    "split": split,
                    "index": index,
                    "id": str(item["id"]),
                    "item": json.dumps(rest, ensure_ascii=False),
                    "reference_is_json": as_json,
                },
            }
        )
    return rows


def suite_to_parquet(
    suite: Any,
    out_dir: str | Path,
    splits: Sequence[str] = ("train", "heldout"),
    *,
    limit: int | None = None,
) -> dict[str, Path]:
    """Write a suite's splits as verl RL parquet files (``train.parquet``, and ``test.parquet`` for the
    held-out split) in `out_dir`; returns ``{split: path}``. `limit` caps the rows per split."""
    pa, pq = _pyarrow()
    unknown = [s for s in splits if s not in PARQUET_FILES]
    if unknown:
        raise ValueError(f"splits {unknown} unknown; choose from {sorted(PARQUET_FILES)}")
    s = _envs().get_suite(suite)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for split in splits:
        rows = suite_rows(s, split, limit=limit)
        if not rows:
            raise ValueError(
                f"suite {s.id} has no {split} rows (its split fraction is {s.split}); "
                f"leave {split!r} out of splits"
            )
        path = out / PARQUET_FILES[split]
        pq.write_table(pa.Table.from_pylist(rows, schema=_schema(pa)), path)
        paths[split] = path
    return paths


def _schema(pa: Any) -> Any:
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(message)),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            (
                "extra_info",
                pa.struct(
                    [
                        ("split", pa.string()),
                        ("index", pa.int64()),
                        ("id", pa.string()),
                        ("item", pa.string()),
                        ("reference_is_json", pa.bool_()),
                    ]
                ),
            ),
        ]
    )


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ModuleNotFoundError as e:
        raise ImportError(f"writing verl parquet files needs pyarrow: pip install pyarrow ({e})") from None
    return pa, pq


def _envs() -> Any:
    """`rft.envs`, imported when first needed (it registers the built-in suites and those in $RFT_TASKS)."""
    import rft.envs

    return rft.envs
