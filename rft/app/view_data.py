"""What `rft view` reads: the run, pipeline or evaluation folders under one root, and their JSONL files by
byte offsets.

A JSONL file is never loaded whole. `LineIndex` keeps the byte offset where each complete line starts (and,
for rollouts, the step each line belongs to, read from the line's `{"step": N` prefix without parsing it);
`refresh()` indexes only what was appended since the last call, so a file a run is writing is picked up on
the next request. `query` then reads and parses only the lines a page needs, scanning at most `budget` lines
per request and handing back a cursor to continue from."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["LineIndex", "RowFilter", "ViewRoot", "PathOutsideRoot", "query"]

CHUNK = 8 << 20  # bytes read at a time while indexing
STEP_PREFIX = b'{"step": '
SKIP_DIRS = {"model", "checkpoints", "__pycache__"}


class PathOutsideRoot(ValueError):
    """A requested path is not a file under the folder being viewed."""


class LineIndex:
    """Byte offsets of the complete lines of a JSONL file, extended as the file grows."""

    def __init__(self, path: Path, *, steps: bool = False) -> None:
        self.path = path
        self.with_steps = steps
        self.starts = np.zeros(0, np.int64)  # start offset of each complete line
        self.steps = np.zeros(0, np.int64)  # its step (-1: none), when with_steps
        self.end = 0  # bytes indexed: just after the last complete line's newline
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.starts)

    def refresh(self) -> None:
        """Index the complete lines appended since the last call (all of them after a truncation)."""
        with self.lock:
            size = self.path.stat().st_size
            if size < self.end:  # rewritten from scratch
                self.starts, self.steps, self.end = np.zeros(0, np.int64), np.zeros(0, np.int64), 0
            if size == self.end:
                return
            starts, steps = [self.starts], [self.steps]
            buf = bytearray(CHUNK)
            have, pos = 0, self.end  # bytes of an unfinished line at the front of buf; file offset of buf[0]
            with self.path.open("rb") as f:
                f.seek(pos)
                while n := f.readinto(memoryview(buf)[have:]):
                    filled = have + n
                    data = np.frombuffer(buf, np.uint8, count=filled)
                    newlines = np.flatnonzero(data == 10)
                    if not len(newlines):
                        if filled == len(buf):  # a line longer than the buffer
                            buf = bytearray(bytes(buf) + bytes(len(buf)))
                        have = filled
                        continue
                    line_starts, line_steps = self._index(data, newlines)
                    starts.append(line_starts + pos)
                    steps.append(line_steps)
                    done = int(newlines[-1]) + 1
                    del data
                    buf[: filled - done] = buf[done:filled]
                    have, pos = filled - done, pos + done
            self.starts, self.steps, self.end = np.concatenate(starts), np.concatenate(steps), pos

    def _index(self, data: np.ndarray, newlines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The start (in `data`) and step of each complete line of `data`, ending at `newlines`."""
        starts = np.empty(len(newlines), np.int64)
        starts[0] = 0
        starts[1:] = newlines[:-1] + 1
        keep = newlines > starts  # blank lines are not rows
        starts, ends = starts[keep], newlines[keep]
        return starts, _steps(data, starts, ends) if self.with_steps else np.zeros(0, np.int64)

    def line(self, i: int) -> bytes:
        with self.path.open("rb") as f:
            return self.lines(f, i, i + 1)[0]

    def lines(self, f: Any, lo: int, hi: int) -> list[bytes]:
        """Lines lo..hi-1 (contiguous), read with one seek."""
        bounds = self.starts[lo : hi + 1].tolist()
        if len(bounds) == hi - lo:
            bounds.append(self.end)
        f.seek(bounds[0])
        block = f.read(bounds[-1] - bounds[0])
        return [
            block[s - bounds[0] : e - bounds[0] - 1] for s, e in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    def step_array(self) -> np.ndarray:
        return self.steps


def _steps(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The step of each line read from its `{"step": N` prefix, vectorised; lines without it are parsed."""
    p = len(STEP_PREFIX)
    width = p + 12
    if len(data) < width:
        data = np.concatenate((data, np.zeros(width, np.uint8)))
    windows = np.lib.stride_tricks.sliding_window_view(data, width)  # no copy
    near_end = starts > len(data) - width
    head = windows[np.minimum(starts, len(data) - width)]  # (L, width): the first bytes of each line
    ok = (head[:, :p] == np.frombuffer(STEP_PREFIX, np.uint8)).all(axis=1) & ~near_end
    digits = (head[:, p:] - np.uint8(48)).astype(np.int64)  # non-digits wrap above 9
    ndig = np.argmin(digits <= 9, axis=1)  # the leading digits (0: none, or 12 digits and more)
    after = head[np.arange(len(head)), p + ndig]
    ok &= (ndig > 0) & ((after == ord(",")) | (after == ord("}")))  # an integer, not 3.5 or 1e3
    steps = np.zeros(len(head), np.int64)
    for j in range(int(ndig.max(initial=0))):
        steps = np.where(j < ndig, steps * 10 + digits[:, j], steps)
    steps[~ok] = -1
    for i in np.flatnonzero(~ok):  # another layout: parse the line
        try:
            row = json.loads(data[starts[i] : ends[i]].tobytes())
        except json.JSONDecodeError:
            continue  # a torn or foreign line: no step, shown as it is
        step = row.get("step") if isinstance(row, dict) else None
        steps[i] = step if isinstance(step, int) else -1
    return steps


@dataclass(frozen=True)
class RowFilter:
    """What a rollouts/samples table shows. Empty fields match everything."""

    step: int | None = None
    status: str = ""
    suite: str = ""
    id: str = ""
    text: str = ""  # case-insensitive, in prompt, completion, id, extracted answer and reference
    reward_min: float | None = None
    reward_max: float | None = None
    heldout_failed: bool = False  # rewarded, but the held-out grader (row["heldout_grade"]) fails it

    def match(self, row: dict[str, Any]) -> bool:
        grade = row.get("grade") or {}
        if self.status and (row.get("status") or grade.get("status")) != self.status:
            return False
        if self.suite and row.get("suite") != self.suite:
            return False
        if self.id and str(row.get("id")) != self.id:
            return False
        reward = row.get("reward", grade.get("score"))
        if self.reward_min is not None and not (
            isinstance(reward, int | float) and reward >= self.reward_min
        ):
            return False
        if self.reward_max is not None and not (
            isinstance(reward, int | float) and reward <= self.reward_max
        ):
            return False
        if self.heldout_failed and not heldout_failed(row):
            return False
        return not self.text or self.text.lower() in searchable(row)


def heldout_failed(row: dict[str, Any]) -> bool:
    """Scored full reward in training, but the held-out grader's grade (`heldout_grade`) says not passed."""
    held = row.get("heldout_grade")
    reward = row.get("reward", 0)
    return (
        isinstance(held, dict)
        and isinstance(reward, int | float)
        and reward >= 1
        and held.get("passed") is False
    )


def searchable(row: dict[str, Any]) -> str:
    grade = row.get("grade") or {}
    parts = [str(row.get("id", "")), str(row.get("reference", "")), str(grade.get("extracted", ""))]
    for key in ("prompt", "messages", "completion"):
        value = row.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts += [str(m.get("content", "")) for m in value if isinstance(m, dict)]
    return "\n".join(parts).lower()


def query(
    index: LineIndex,
    flt: RowFilter,
    cursor: int = 0,
    limit: int = 50,
    budget: int = 20000,
    enrich: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """A page of the rows matching `flt`: up to `limit` rows from candidate `cursor` on, after scanning at most
    `budget` lines; `enrich` sees each row before the filter (the held-out regrade). `next` is the cursor to
    continue from (None at the end of what is indexed)."""
    index.refresh()
    if flt.step is not None and index.with_steps:
        candidates = np.flatnonzero(index.step_array() == flt.step)
    else:
        candidates = np.arange(len(index))
    rows: list[dict[str, Any]] = []
    pos = cursor
    stop = min(len(candidates), cursor + budget)
    with index.path.open("rb") as f:
        while pos < stop and len(rows) < limit:
            lo = int(candidates[pos])
            hi = lo + 1  # widen to a contiguous run of candidates (one read)
            while pos + (hi - lo) < stop and hi - lo < 256 and int(candidates[pos + hi - lo]) == hi:
                hi += 1
            for k, raw in enumerate(index.lines(f, lo, hi)):
                pos += 1
                try:
                    row = json.loads(raw, parse_constant=_no_constant)
                except json.JSONDecodeError as e:
                    row = {"_error": f"line {lo + k + 1} is not JSON ({e.msg}): {raw[:200]!r}"}
                if not isinstance(row, dict):
                    row = {"_error": f"line {lo + k + 1} is not a JSON object"}
                elif enrich is not None:
                    enrich(row)
                if "_error" in row or flt.match(row):
                    rows.append({"line": lo + k, **row})
                    if len(rows) >= limit:
                        break
    return {"rows": rows, "next": pos if pos < len(candidates) else None, "scanned": pos - cursor,
            "candidates": int(len(candidates)), "indexed": len(index)}  # fmt: skip


@dataclass
class _Parsed:
    """A small JSONL file parsed whole (metrics), extended as it grows."""

    end: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


class ViewRoot:
    """The folder `rft view` serves: its runs (metrics.jsonl / rollouts.jsonl), evaluations (problems.jsonl)
    and comparisons (compare.json), found up to four levels down; every path it opens stays under it."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder: give a run, pipeline or evaluation folder")
        self.root = root.resolve()
        self.indexes: dict[Path, LineIndex] = {}
        self.parsed: dict[Path, _Parsed] = {}
        self.lock = threading.Lock()

    def path(self, rel: str, *, must_exist: bool = True) -> Path:
        """`rel` (relative to the root) as a path under the root; PathOutsideRoot otherwise."""
        p = (self.root / rel).resolve()
        if not p.is_relative_to(self.root) or (must_exist and not p.exists()):
            raise PathOutsideRoot(f"{rel!r} is not a file under {self.root}")
        return p

    def rel(self, p: Path) -> str:
        return p.relative_to(self.root).as_posix() or "."

    def stage_order(self) -> list[str]:
        pipeline = self.root / "pipeline.yaml"
        if not pipeline.is_file():
            return []
        spec = yaml.safe_load(pipeline.read_text()) or {}
        return [str(s.get("name")) for s in spec.get("stages") or [] if isinstance(s, dict)]

    def tree(self) -> dict[str, Any]:
        """The runs (in pipeline stage order), evaluations and comparisons under the root."""
        runs, evals, compares = [], [], []
        for here, dirs, files in os.walk(self.root):
            d = Path(here)
            depth = len(d.relative_to(self.root).parts)
            dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith(".") and depth < 4)
            if "metrics.jsonl" in files or "rollouts.jsonl" in files:
                runs.append({"path": self.rel(d), "name": d.name if d != self.root else self.root.name,
                             "rollouts": "rollouts.jsonl" in files and (d / "rollouts.jsonl").stat().st_size > 0,
                             "metrics": "metrics.jsonl" in files})  # fmt: skip
            if "problems.jsonl" in files or "samples.jsonl" in files:
                evals.append({"path": self.rel(d), "name": d.name, "samples": "samples.jsonl" in files})
            if "compare.json" in files:
                compares.append({"path": self.rel(d), "name": d.name})
        order = self.stage_order()
        runs.sort(key=lambda r: (order.index(r["name"]) if r["name"] in order else len(order), r["path"]))
        models = ["base", *order]  # a pipeline's evaluations: the input model's, then each stage's
        evals.sort(key=lambda e: (models.index(e["name"]) if e["name"] in models else len(models), e["path"]))
        kind = "pipeline" if order else "run" if runs else "evaluation" if evals else "comparison"
        return {"root": str(self.root), "name": self.root.name, "kind": kind, "stages": order,
                "runs": runs, "evals": evals, "compares": compares}  # fmt: skip

    def index(self, rel: str) -> LineIndex:
        p = self.path(rel)
        if p.suffix != ".jsonl" or not p.is_file():
            raise PathOutsideRoot(f"{rel!r} is not a JSONL file under {self.root}")
        with self.lock:
            if p not in self.indexes:
                self.indexes[p] = LineIndex(p, steps=p.name == "rollouts.jsonl")
            return self.indexes[p]

    def rows(self, rel: str) -> list[dict[str, Any]]:
        """Every row of a small JSONL file (metrics, per-problem results), re-read only where it grew."""
        p = self.path(rel)
        with self.lock:
            cached = self.parsed.setdefault(p, _Parsed())
            size = p.stat().st_size
            if size < cached.end:
                cached.end, cached.rows = 0, []
            with p.open("rb") as f:
                f.seek(cached.end)
                data = f.read(size - cached.end)
            done = data.rfind(b"\n") + 1
            for raw in data[:done].splitlines():
                if raw.strip():
                    cached.rows.append(json.loads(raw, parse_constant=_no_constant))
            cached.end += done
            return cached.rows

    def curves(self, max_points: int = 2000) -> list[dict[str, Any]]:
        """Each run's numeric metrics as series over steps (at most `max_points` each, evenly thinned), with
        the global step each run starts at: pipeline stages follow one another."""
        out, offset = [], 0
        for run in self.tree()["runs"]:
            if not run["metrics"]:
                continue
            rows = self.rows(f"{run['path']}/metrics.jsonl")
            keys = sorted({k for r in rows for k, v in r.items() if k != "step" and _number(v)})
            stride = max(1, -(-len(rows) // max_points))
            kept = rows[::stride] if stride > 1 else rows
            if stride > 1 and rows and kept[-1] is not rows[-1]:
                kept = [*kept, rows[-1]]
            series = {k: [[r["step"], r[k]] for r in kept if _number(r.get(k)) and "step" in r] for k in keys}
            last = max((r.get("step", 0) for r in rows), default=0)
            out.append(
                {"name": run["name"], "path": run["path"], "offset": offset, "steps": last, "series": series}
            )
            offset += last
        return out

    def compare(self, rel: str) -> dict[str, Any]:
        """compare.json, with its two evaluation folders as paths under the root where they are found."""
        data = json.loads((self.path(rel) / "compare.json").read_text())
        for side in ("a", "b"):
            data[f"{side}_eval"] = self.local_eval(str(data.get(side, "")))
        return data

    def local_eval(self, recorded: str) -> str | None:
        """An evaluation folder recorded by absolute path, under the root (or found by name if moved)."""
        p = Path(recorded)
        candidates = [p] if p.is_absolute() else [self.root / p]
        candidates.append(self.root / "eval" / p.name)
        for c in candidates:
            c = c.resolve()
            if c.is_relative_to(self.root) and (c / "samples.jsonl").is_file():
                return self.rel(c)
        return None

    def evaluation(self, rel: str) -> dict[str, Any]:
        folder = self.path(rel)
        results = folder / "results.json"
        problems = folder / "problems.jsonl"
        return {
            "results": json.loads(results.read_text()) if results.is_file() else None,
            "problems": self.rows(f"{rel}/problems.jsonl")[:50000] if problems.is_file() else [],
        }


def _no_constant(name: str) -> None:
    """NaN and Infinity (Python's json writes them) read as null: the page's JSON has no such values."""
    return None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
