"""Sandboxes for untrusted code: one interface (`run(program, stdin, limits) -> ExecResult`), several
backends by name (`get_sandbox("local" | "bwrap" | "docker" | "none", **options)`)."""

from __future__ import annotations

from .base import (
    ExecResult,
    Limits,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    get_sandbox,
    register_sandbox,
    sandbox_names,
    shared_sandbox,
)

__all__ = [
    "ExecResult",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "get_sandbox",
    "register_sandbox",
    "sandbox_names",
    "shared_sandbox",
]
