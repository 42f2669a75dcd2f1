"""A suite's `eval:` section: the sampling settings a benchmark fixes for everyone who reports it.

```yaml
eval: {n: 16, k: [1, 16], temperature: 0.6, top_p: 0.95, max_new_tokens: 4096}
```

Every key is optional; one left out falls back to `rft eval`'s default. `rft eval` applies these to the
suite unless its own flag for the setting is given on the command line (a flag given wins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .sources import SuiteError

__all__ = ["EvalSettings", "eval_settings"]

EXAMPLE = "{n: 16, k: [1, 16], temperature: 0.6, top_p: 0.95, max_new_tokens: 4096}"


@dataclass(frozen=True)
class EvalSettings:
    """Sampling settings fixed by a benchmark; None: not fixed (rft eval's default applies)."""

    n: int | None = None  # samples per problem
    k: tuple[int, ...] | None = None  # the k of pass@k and maj@k, each in 1..n
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("n", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise SuiteError(f"eval.{name} must be an integer >= 1, got {value!r}")
        if self.k is not None:
            if not self.k or not all(_is_int(x) and x >= 1 for x in self.k):
                raise SuiteError(f"eval.k must be a list of integers >= 1 like [1, 16], got {list(self.k)!r}")
            if self.n is not None and max(self.k) > self.n:
                raise SuiteError(
                    f"eval.k {list(self.k)} needs n >= {max(self.k)} samples per problem, but eval.n is "
                    f"{self.n}: raise n or drop the larger k"
                )
        if self.temperature is not None:
            if not _is_number(self.temperature) or self.temperature < 0:
                raise SuiteError(f"eval.temperature must be a number >= 0, got {self.temperature!r}")
            if self.temperature == 0 and (self.n or 1) > 1:
                raise SuiteError(
                    f"eval.temperature 0 (greedy) gives {self.n} identical samples: set n: 1 or temperature > 0"
                )
        if self.top_p is not None and (not _is_number(self.top_p) or not 0 < self.top_p <= 1):
            raise SuiteError(f"eval.top_p must be in (0, 1], got {self.top_p!r}")

    def fixed(self) -> dict[str, Any]:
        """The settings this suite fixes (those not None), by name."""
        return {
            name: getattr(self, name)
            for name in ("n", "k", "temperature", "top_p", "max_new_tokens")
            if getattr(self, name) is not None
        }


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def eval_settings(spec: Any) -> EvalSettings:
    """A suite YAML's `eval:` mapping as `EvalSettings`; raises `SuiteError` saying what to fix."""
    if spec is None:
        return EvalSettings()
    if not isinstance(spec, dict):
        raise SuiteError(f"eval must be a mapping like {EXAMPLE}, got {type(spec).__name__}")
    unknown = sorted(set(spec) - {"n", "k", "temperature", "top_p", "max_new_tokens"})
    if unknown:
        raise SuiteError(
            f"eval: unknown keys {unknown}; allowed: n, k, temperature, top_p, max_new_tokens (e.g. {EXAMPLE})"
        )
    k = spec.get("k")
    if k is not None:
        if _is_int(k):
            k = [k]
        if not isinstance(k, list):
            raise SuiteError(f"eval.k must be a list of integers like [1, 16], got {k!r}")
        k = tuple(k)
    return EvalSettings(
        n=spec.get("n"),
        k=k,
        temperature=_float(spec.get("temperature")),
        top_p=_float(spec.get("top_p")),
        max_new_tokens=spec.get("max_new_tokens"),
    )


def _float(x: Any) -> Any:
    """A number as a float (0 as 0.0); anything else as given, for `EvalSettings` to refuse."""
    return float(x) if _is_number(x) else x
