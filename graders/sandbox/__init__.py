"""Sandboxes for untrusted code: one interface (`run(program, stdin, limits) -> ExecResult`), several
backends by name (`get_sandbox("auto" | "local" | "userns" | "bwrap" | "docker" | "remote" |
"sandbox_fusion" | "none", **options)`;
``auto``, the default, picks the strongest that runs here)."""

from __future__ import annotations

from .base import (
    ExecResult,
    Limits,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    get_sandbox,
    register_sandbox,
    sandbox_factory,
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
    "sandbox_factory",
    "sandbox_names",
    "shared_sandbox",
]
