"""Evaluation statistics: unbiased pass@k, maj@k, mean@n, bootstrap confidence intervals over problems,
the paired bootstrap and McNemar's test for comparing two runs. Pure functions over numbers (numpy only).

pass@k is the unbiased estimator of Chen et al. (2021), "Evaluating Large Language Models Trained on Code":
with `n` samples of a problem of which `c` pass, ``1 - C(n-c, k) / C(n, k)``, the probability that a random
k-subset of the n samples holds a passing one. (Taking the best of k bootstrap draws instead is biased:
with one correct of four it gives 1 - (3/4)^4 = 0.684 for best@4, where the estimator says 1.0.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "pass_at_k",
    "maj_at_k",
    "mean_at_n",
    "bootstrap_ci",
    "paired_bootstrap_ci",
    "McNemar",
    "mcnemar",
    "ci_coverage",
]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `n` samples, `c` of them passing: ``1 - C(n-c, k) / C(n, k)``,
    computed as the numerically stable product ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``."""
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"need n >= 1 samples and 0 <= c <= n passing, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n samples per problem (n={n}); sample more or lower k")
    if n - c < k:  # every k-subset holds a passing sample
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def maj_at_k(answers: Sequence[Hashable | None], passed: Sequence[bool], k: int) -> float:
    """Majority vote over the first `k` samples (sample order, as generated): 1.0 when the most frequent
    extracted answer among them is a passing one, else 0.0. Samples with no extracted answer (None) do
    not vote; with no votes the result is 0.0. Ties go to the answer that appeared first, so the result is
    deterministic. The winning answer's correctness is that of its first sample."""
    if len(answers) != len(passed):
        raise ValueError(f"answers ({len(answers)}) and passed ({len(passed)}) must have the same length")
    if not 1 <= k <= len(answers):
        raise ValueError(f"maj@{k} needs 1 <= k <= n samples per problem (n={len(answers)})")
    counts: dict[Hashable, int] = {}
    first: dict[Hashable, int] = {}
    for i, a in enumerate(answers[:k]):
        if a is None:
            continue
        counts[a] = counts.get(a, 0) + 1
        first.setdefault(a, i)
    if not counts:
        return 0.0
    winner = min(counts, key=lambda a: (-counts[a], first[a]))
    return float(bool(passed[first[winner]]))


def mean_at_n(scores: Sequence[float]) -> float:
    """The mean score of a problem's `n` samples (expected reward of one sample)."""
    if not len(scores):
        raise ValueError("mean@n needs at least one sample")
    return float(np.mean(scores))


def _resample_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_boot` resamples, drawn in blocks of rows so memory stays near 4M indices whatever the
    number of problems (the same draws as one (B, P) array)."""
    rows = max(1, 4_000_000 // len(values))
    out = []
    for start in range(0, n_boot, rows):
        idx = rng.integers(0, len(values), size=(min(rows, n_boot - start), len(values)))  # (b, P)
        out.append(values[idx].mean(axis=1))  # (b,)
    return np.concatenate(out)  # (B,)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[[np.ndarray], float] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` (default: the mean) over per-problem values: problems are
    resampled with replacement, so the interval reflects which problems the benchmark happened to hold."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError("bootstrap_ci needs a non-empty 1-d sequence of per-problem values")
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got level={level}, n_boot={n_boot}")
    rng = np.random.default_rng(seed)
    if stat is None:
        stats = _resample_means(v, n_boot, rng)
    else:
        idx = rng.integers(0, len(v), size=(n_boot, len(v)))  # (B, P)
        stats = np.array([stat(v[row]) for row in idx])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(b - a) over problems, resampling problems (pairs) together:
    the per-problem differences keep what the two runs share (problem difficulty)."""
    av, bv = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if av.shape != bv.shape:
        raise ValueError(f"paired values must have the same shape, got {av.shape} and {bv.shape}")
    return bootstrap_ci(bv - av, n_boot=n_boot, seed=seed, level=level)


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired pass/fail outcomes. `a_only`: problems only A passes; `b_only`: only B."""

    a_only: int
    b_only: int
    statistic: float  # chi-square with continuity correction, or the smaller discordant count (exact)
    p_value: float
    method: str  # "exact" (binomial) or "chi2" (continuity-corrected)


def mcnemar(a_pass: Sequence[bool], b_pass: Sequence[bool], *, exact_below: int = 25) -> McNemar:
    """Two-sided McNemar test. With fewer than `exact_below` discordant pairs, the exact binomial test
    (discordant pairs ~ Binomial(a_only + b_only, 1/2)); otherwise chi-square (1 dof) with continuity
    correction ``(|b - c| - 1)^2 / (b + c)``."""
    if len(a_pass) != len(b_pass):
        raise ValueError(f"paired outcomes must have the same length, got {len(a_pass)} and {len(b_pass)}")
    a_only = sum(bool(x) and not bool(y) for x, y in zip(a_pass, b_pass, strict=True))
    b_only = sum(bool(y) and not bool(x) for x, y in zip(a_pass, b_pass, strict=True))
    m = a_only + b_only
    if m == 0:
        return McNemar(0, 0, 0.0, 1.0, "exact")
    if m < exact_below:
        low = min(a_only, b_only)
        tail = sum(math.comb(m, i) for i in range(low + 1)) / 2**m
        return McNemar(a_only, b_only, float(low), min(1.0, 2 * tail), "exact")
    chi2 = (abs(a_only - b_only) - 1) ** 2 / m
    return McNemar(a_only, b_only, chi2, math.erfc(math.sqrt(chi2 / 2)), "chi2")  # chi2(1) survival


def ci_coverage(
    draw: Callable[[np.random.Generator], np.ndarray],
    truth: float,
    *,
    sims: int = 200,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> float:
    """The fraction of `sims` simulated data sets (each ``draw(rng)``, per-problem values) whose bootstrap
    interval of the mean contains `truth`: should be close to `level`."""
    rng = np.random.default_rng(seed)
    hits = 0
    for s in range(sims):
        lo, hi = bootstrap_ci(draw(rng), n_boot=n_boot, seed=seed * 100_003 + s, level=level)
        hits += lo <= truth <= hi
    return hits / sims
