"""``auto``: the strongest sandbox backend this process can run, picked once per sandbox object.

In order: ``local`` as root (a fork server, each program as a per-slot uid in its own namespaces);
``userns`` as any other user (the same fork server inside a user namespace it makes itself, where the
kernel allows unprivileged user namespaces); then ``bwrap``; then ``docker``. Each candidate is
started (and so proves its isolation with a test program) before it is taken; the first that starts
is returned, so `Sandbox.name` and every `ExecResult.backend` say which one runs the programs. When
none can, `SandboxUnavailable` lists why each failed and what to install or enable. ``auto`` never
falls back to less isolation (``none``): that takes an explicit ``unsafe_local_exec``.

`check_sandbox` runs one trivial program through a backend (``auto`` by default) and reports what it
found, for ``rft grader validate`` and ``rft task check``.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from typing import Any

from .base import (
    Limits,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    get_sandbox,
    register_sandbox,
    sandbox_factory,
)
from .state import state_dir

__all__ = [
    "auto_candidates",
    "choose_sandbox",
    "check_sandbox",
    "code_sandboxes",
    "SandboxReport",
    "NOTHING_WORKS_HINT",
]

NOTHING_WORKS_HINT = (
    "to grade code here, enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
    "user.max_user_namespaces > 0; Ubuntu >= 23.10: kernel.apparmor_restrict_unprivileged_userns=0), or "
    "install bubblewrap (apt-get install bubblewrap), or run docker (apt-get install docker.io, a running "
    "dockerd your user may use), or run as root; unsafe_local_exec: true runs code unisolated (never for "
    "untrusted code)"
)


def auto_candidates() -> tuple[str, ...]:
    """The backends ``auto`` tries, strongest first, for this process's user."""
    return ("local", "bwrap", "docker") if os.geteuid() == 0 else ("userns", "bwrap", "docker")


def _accepted(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options backend `name`'s factory takes (all of them if it takes ``**options``)."""
    params = inspect.signature(sandbox_factory(name)).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(options)
    names = {p.name for p in params}
    return {k: v for k, v in options.items() if k in names}


@register_sandbox("auto")
def choose_sandbox(**options: Any) -> Sandbox:
    """The first of `auto_candidates()` that starts here, with the `options` it takes; raises
    `SandboxUnavailable` (every candidate's reason and what to do) when none does."""
    order = auto_candidates()
    accepted = {name: _accepted(name, options) for name in order}
    unknown = set(options) - {k for opts in accepted.values() for k in opts}
    if unknown:
        raise ValueError(f"sandbox 'auto': no candidate backend ({', '.join(order)}) takes {sorted(unknown)}")
    # A bad state folder is an alarm (someone else's, a symlink), not a backend that cannot run: it
    # fails here rather than sending programs on to a candidate that does not use the folder.
    state_dir(options.get("lock_dir"))
    tried: list[str] = []
    for name in order:
        opts = accepted[name]
        try:
            box = get_sandbox(name, **opts)
        except SandboxUnavailable as e:
            tried.append(f"{name}: {e}")
            continue
        try:
            start = getattr(box, "start", None)
            if start is not None:
                start()
            else:
                box.run("pass", b"", Limits(timeout=30))
        except SandboxUnavailable as e:
            box.close()
            tried.append(f"{name}: {e}")
            continue
        return box
    raise SandboxUnavailable(
        "no sandbox backend can run code here (tried " + "; ".join(tried) + "). " + NOTHING_WORKS_HINT
    )


@dataclass(frozen=True)
class SandboxReport:
    """What `check_sandbox` found: the backend asked for, the one that ran (``""`` when none), whether
    a trivial program ran and printed what it should, and the message to show."""

    requested: str
    backend: str
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def check_sandbox(name: str = "auto", **options: Any) -> SandboxReport:
    """Start backend `name` (with `options`), run ``print(6 * 7)`` in it, close it, and say how it went."""
    try:
        box = get_sandbox(name, **options)
    except (SandboxError, ValueError) as e:
        return SandboxReport(name, "", False, f"sandbox {name!r} cannot run here: {e}")
    try:
        res = box.run("print(6 * 7)", b"", Limits(timeout=30))
    except SandboxError as e:
        return SandboxReport(name, box.name, False, f"sandbox {name!r} ({box.name}) cannot run here: {e}")
    finally:
        box.close()
    if not (res.ok and res.stdout == b"42\n"):
        why = res.stderr.decode(errors="replace")[-300:] or f"outcome {res.outcome}"
        return SandboxReport(name, box.name, False, f"sandbox {box.name!r} ran a test program wrongly: {why}")
    chosen = f" (auto chose {box.name!r})" if name == "auto" else ""
    msg = f"sandbox {name!r}{chosen} ran a test program in {res.wall_s * 1000:.0f} ms"
    return SandboxReport(name, box.name, True, msg, {"wall_s": res.wall_s})


def code_sandboxes(spec: Any) -> list[tuple[str, dict[str, Any]]]:
    """Each distinct (sandbox, sandbox_options) of the ``code`` graders anywhere in a grader spec
    (nested ones included), in order; the default sandbox is ``auto``."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if x.get("type") == "code":
                pair = (str(x.get("sandbox", "auto")), dict(x.get("sandbox_options") or {}))
                if pair not in found:
                    found.append(pair)
            for v in x.values():
                walk(v)
        elif isinstance(x, list | tuple):
            for v in x:
                walk(v)

    walk(spec)
    return found
