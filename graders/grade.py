"""The one result type every grader returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Status = Literal["ok", "no_answer", "timeout", "error"]
STATUSES: tuple[str, ...] = get_args(Status)


@dataclass(frozen=True)
class Grade:
    """A structured grade.

    `status` says whether the score means anything:
    - ``ok``: the answer was graded; `score` is its reward.
    - ``no_answer``: the model gave nothing gradeable (no final answer, not JSON, ...): a real 0.
    - ``timeout`` / ``error``: the *grader* failed; `score` is 0 but must not be used as a reward
      (trainers mask such samples out and count them).
    """

    score: float
    status: Status = "ok"
    passed: bool = False
    extracted: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if not isinstance(self.score, int | float) or isinstance(self.score, bool) or math.isnan(self.score):
            raise ValueError(f"score must be a real number, got {self.score!r}")

    @property
    def failed(self) -> bool:
        """True when the grader itself failed (timeout or error): the score is not a reward."""
        return self.status in ("timeout", "error")

    @classmethod
    def error(cls, message: str, **details: Any) -> Grade:
        return cls(0.0, "error", False, None, {"error": message, **details})

    @classmethod
    def timeout(cls, message: str, **details: Any) -> Grade:
        return cls(0.0, "timeout", False, None, {"error": message, **details})

    @classmethod
    def no_answer(cls, reason: str, **details: Any) -> Grade:
        return cls(0.0, "no_answer", False, None, {"reason": reason, **details})

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "status": self.status,
            "passed": self.passed,
            "extracted": self.extracted,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grade:
        return cls(
            score=float(d["score"]),
            status=d.get("status", "ok"),
            passed=bool(d.get("passed", False)),
            extracted=d.get("extracted"),
            details=dict(d.get("details") or {}),
        )
