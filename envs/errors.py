"""The errors of task suites, in a module of their own so that every suite module can raise them."""

from __future__ import annotations

__all__ = ["SuiteError", "SourceUnavailable"]


class SuiteError(ValueError):
    """A task suite is invalid or its data cannot be read; the message says what to fix."""


class SourceUnavailable(SuiteError):
    """A source's data is absent here (a missing file, an unreachable hub): the next alternative is tried."""

    def __init__(self, reason: str, fix: str, message: str | None = None) -> None:
        super().__init__(message or f"{reason}; {fix}")
        self.reason = reason
        self.fix = fix
