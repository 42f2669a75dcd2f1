"""Several suites in one run: ``suite: {mix: [{suite: arithmetic-v0, weight: 2}, {suite: gsm8k-v0, weight: 1}]}``.

- `MixSpec` (a recipe's ``suite:`` when it is a mix) and `read_mix`, which reads every way of naming suites
  the same way: a suite (a mix of one), a comma list with weights (``arithmetic-v0:2,gsm8k-v0``), a YAML file
  holding ``mix: [...]``, or a `MixSpec`. `load_mix` checks the suites exist and can be trained on.
- `Interleave`: which problem of which suite each prompt of a step is. Step s's prompts follow from
  (seed, s) alone, so a resumed run draws exactly the same prompts: the number from each suite by
  systematic sampling over the weights (each suite gets floor or ceil of its share of the step), their
  order shuffled, and each suite's problems taken in per-epoch permutations from that suite's own running
  count. A mix of one suite gives exactly `prompt_indices`.
- `mix_counts`: how many rows each suite gives to a finite data set (SFT rows, DPO pairs, sampled problems):
  in proportion to the weights, as many as the scarcest suite allows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .registry import get_suite
from .suite import Suite, SuiteError

__all__ = ["MixPart", "MixSpec", "read_mix", "load_mix", "suite_label", "Interleave", "prompt_indices",
           "mix_counts"]  # fmt: skip


@dataclass(frozen=True)
class MixPart:
    """One suite of a mix and its weight (its share of the prompts is weight / the sum of the weights)."""

    suite: str  # env id (rft/arithmetic-v0), suite id, or suite YAML path
    weight: float = 1.0  # > 0

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(
                f"suite mix: {self.suite} has weight {self.weight}; weights must be > 0 (leave a suite out "
                "of the mix instead of giving it weight 0)"
            )


@dataclass(frozen=True)
class MixSpec:
    """``suite: {mix: [{suite: a, weight: 2}, {suite: b, weight: 1}]}`` in a recipe."""

    mix: tuple[MixPart, ...]

    def __post_init__(self) -> None:
        if not self.mix:
            raise ValueError("suite mix is empty: list at least one {suite: ..., weight: ...}")
        seen: dict[str, str] = {}
        for p in self.mix:
            key = _key(p.suite)
            if key in seen:
                raise ValueError(
                    f"suite mix names {p.suite} twice (as {seen[key]!r} and {p.suite!r}); list each suite "
                    "once and give it the sum of the weights"
                )
            seen[key] = p.suite

    @property
    def suites(self) -> list[str]:
        return [p.suite for p in self.mix]

    @property
    def weights(self) -> list[float]:
        return [p.weight for p in self.mix]


def _key(suite: str) -> str:
    """A name's suite id as far as can be told without loading it: rft/x-v0, x-v0 and tasks/x-v0.yaml agree."""
    name = suite.rsplit("/", 1)[-1]
    return name.removesuffix(".yaml").removesuffix(".yml")


def read_mix(suite: str | MixSpec | Mapping[str, Any]) -> MixSpec:
    """The mix a ``suite`` setting names: a `MixSpec` or its mapping (``{"mix": [...]}``), a YAML file
    holding ``mix: [...]``, a comma list ``a:2,b:1`` (weight 1 when left out), or one suite (a mix of one)."""
    if isinstance(suite, MixSpec):
        return suite
    if isinstance(suite, Mapping):
        return _from_mapping(suite, "suite")
    text = suite.strip()
    path = Path(text)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and "mix" in data:
            return _from_mapping(data, str(path))
        return MixSpec((MixPart(text),))
    parts = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            raise ValueError(
                f"suite list {suite!r} has an empty entry; write it like arithmetic-v0:2,gsm8k-v0:1"
            )
        name, _, weight = piece.rpartition(":") if _has_weight(piece) else (piece, "", "1")
        try:
            w = float(weight)
        except ValueError:
            raise ValueError(
                f"suite list {suite!r}: the weight of {name} ({weight!r}) is not a number"
            ) from None
        parts.append(MixPart(name, w))
    return MixSpec(tuple(parts))


def _has_weight(piece: str) -> bool:
    head, sep, tail = piece.rpartition(":")
    return bool(sep and head) and "/" not in tail and not tail.endswith((".yaml", ".yml"))


def _from_mapping(data: Mapping[str, Any], where: str) -> MixSpec:
    extra = sorted(set(data) - {"mix"})
    entries = data.get("mix")
    if extra or not isinstance(entries, list):
        raise ValueError(
            f"{where}: a suite mix is {{mix: [{{suite: a, weight: 2}}, {{suite: b, weight: 1}}]}}"
            + (f"; unknown keys {', '.join(extra)}" if extra else "; `mix` must be a list")
        )
    parts = []
    for i, e in enumerate(entries):
        if isinstance(e, str):
            e = {"suite": e}
        if not isinstance(e, Mapping) or set(e) - {"suite", "weight"} or not isinstance(e.get("suite"), str):
            raise ValueError(f"{where}: mix[{i}] must be {{suite: NAME, weight: NUMBER}}, got {e!r}")
        weight = e.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"{where}: mix[{i}].weight must be a number, got {weight!r}")
        parts.append(MixPart(e["suite"], float(weight)))
    return MixSpec(tuple(parts))


def load_mix(spec: MixSpec, *, train: bool = True) -> list[Suite]:
    """The mix's suites, loaded; `train`: each must have train problems (a benchmark, split: 1, has none).
    Two names of one suite are refused."""
    suites = [get_suite(p.suite) for p in spec.mix]
    ids = [s.id for s in suites]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise SuiteError(f"suite mix names {', '.join(twice)} more than once; list each suite once")
    bench = [s.id for s in suites if s.heldout_only]
    if train and bench and len(suites) > 1:  # one suite: the caller says so where it takes its train items
        raise SuiteError(
            f"suite mix: {', '.join(bench)} is a held-out benchmark (split: 1) with no train problems; take it "
            f"out of the mix and evaluate on it instead (eval.suite, or rft eval --suites {','.join(bench)})"
        )
    return suites


def suite_label(suite: str | MixSpec) -> str:
    """How a run names its suite in messages: the suite, or ``mix(a:2,b:1)``."""
    if isinstance(suite, str):
        return suite
    return "mix(" + ",".join(f"{p.suite}:{p.weight:g}" for p in suite.mix) + ")"


def prompt_indices(n_items: int, per_step: int, step: int, seed: int, draw: int = 0) -> list[int]:
    """The train problems of a step of a one-suite run: consecutive slices of per-epoch permutations
    (seeded by epoch), so each problem comes once per epoch and any step's prompts follow from (seed, step)
    alone. Draws > 0 (dynamic-sampling refills) are random problems seeded by (seed, step, draw)."""
    if draw > 0:
        rng = np.random.default_rng([seed, step, draw])
        return [int(i) for i in rng.choice(n_items, size=per_step, replace=per_step > n_items)]
    return _epoch_positions(n_items, range(step * per_step, (step + 1) * per_step), [seed])


def _epoch_positions(n_items: int, positions: range, key: list[int]) -> list[int]:
    """Problem at each running position k: position k % n of the permutation of epoch k // n."""
    out = []
    perms: dict[int, np.ndarray] = {}
    for k in positions:
        epoch, pos = divmod(k, n_items)
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([*key, epoch]).permutation(n_items)
        out.append(int(perms[epoch][pos]))
    return out


class Interleave:
    """The prompts of each step of a mix: (suite position in the mix, problem index in its train problems).

    `sizes`: each suite's number of train problems; `weights`: the mix's weights (> 0); `seed`: the run's."""

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], seed: int) -> None:
        if len(sizes) != len(weights) or not sizes or min(sizes) < 1 or min(weights) <= 0:
            raise ValueError(
                f"Interleave needs one size >= 1 and weight > 0 per suite, got {sizes}, {weights}"
            )
        self.sizes, self.seed = list(sizes), seed
        total = float(sum(weights))
        self.shares = np.array([w / total for w in weights])
        self._before: list[np.ndarray] = [np.zeros(len(sizes), dtype=np.int64)]  # counts before step s
        self._per_step: int | None = None

    def counts(self, step: int, per_step: int) -> np.ndarray:
        """How many of step `step`'s `per_step` prompts each suite gives: systematic sampling over the
        shares (floor or ceil of share x per_step each), the offset drawn from (seed, step)."""
        u = np.random.default_rng([self.seed, step, 0x5017]).random()  # in [0, 1)
        edges = np.floor(np.cumsum(self.shares) * per_step + u)
        edges[-1] = per_step  # floor(per_step + u), exact whatever the float rounding of the sum
        return np.diff(np.concatenate([[0.0], edges])).astype(np.int64)

    def step(self, step: int, per_step: int, draw: int = 0) -> list[tuple[int, int]]:
        """Step `step`'s prompts in order, a function of (seed, step, draw) alone."""
        if len(self.sizes) == 1:
            return [(0, i) for i in prompt_indices(self.sizes[0], per_step, step, self.seed, draw)]
        if draw > 0:  # dynamic-sampling refills: suites by weight, random problems of each
            rng = np.random.default_rng([self.seed, step, draw])
            which = rng.choice(len(self.sizes), size=per_step, p=self.shares)
            return [(int(s), int(rng.integers(self.sizes[s]))) for s in which]
        before = self._counts_before(step, per_step)
        now = self.counts(step, per_step)
        out = []
        for s, (start, n) in enumerate(zip(before, now, strict=True)):
            problems = _epoch_positions(self.sizes[s], range(int(start), int(start + n)), [self.seed, s])
            out += [(s, i) for i in problems]
        order = np.random.default_rng([self.seed, step, 0x5018]).permutation(len(out))
        return [out[i] for i in order]

    def _counts_before(self, step: int, per_step: int) -> np.ndarray:
        """Each suite's prompts in steps 0..step-1 (kept, so a run computes each step's counts once)."""
        if self._per_step != per_step:
            self._before, self._per_step = [self._before[0]], per_step
        while len(self._before) <= step:
            s = len(self._before) - 1
            self._before.append(self._before[-1] + self.counts(s, per_step))
        return self._before[step]


def mix_counts(available: Sequence[int], weights: Sequence[float], total: int | None = None) -> list[int]:
    """Rows each suite gives to a finite data set: in proportion to `weights`, as many as the scarcest
    suite (relative to its weight) allows, at most `total` in all (largest remainders round)."""
    if len(available) != len(weights) or min(weights) <= 0:
        raise ValueError(
            f"mix_counts needs one count and one weight > 0 per suite, got {available}, {weights}"
        )
    scale = min(a / w for a, w in zip(available, weights, strict=True))
    if total is not None:
        scale = min(scale, total / sum(weights))
    exact = [w * scale for w in weights]
    counts = [int(np.floor(x + 1e-9)) for x in exact]
    room = 0 if total is None else total - sum(counts)  # a total asked for: fill it up if rows allow
    by_remainder = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder:
        if room > 0 and counts[i] < available[i] and exact[i] - counts[i] > 1e-9:
            counts[i] += 1
            room -= 1
    return counts
