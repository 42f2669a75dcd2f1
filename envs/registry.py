"""Suite names: ``rft/<id>`` env ids registered for `gymnasium.make`, and the one resolver every caller uses.

`get_suite` takes an env id (``rft/arithmetic-v0``), a suite id (``arithmetic-v0``), a suite YAML path or a
`Suite`. Importing this module registers the built-in suites (`rft.tasks`) and every suite file in the
folders listed in ``$RFT_TASKS`` (separated by ``os.pathsep``).
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium

from rft.tasks import builtin_suites

from .suite import Suite, SuiteError, load_suite

__all__ = ["NAMESPACE", "get_suite", "suite_path", "register_suite", "registered_ids", "builtin_suites"]

NAMESPACE = "rft"
_REGISTERED: dict[str, str] = {}  # env id -> resolved suite file
_SUITES: dict[str, Suite] = {}  # resolved suite file -> suite (rows read once per process)


def suite_path(name: str | Path) -> Path:
    """The suite file behind an env id (``rft/<id>``), a suite id (``<id>``) or a YAML path (as given)."""
    if isinstance(name, Path) or name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise SuiteError(f"suite file {path.resolve()} does not exist")
        return path
    full = name if "/" in name else f"{NAMESPACE}/{name}"
    if full not in _REGISTERED:
        raise SuiteError(
            f"unknown task {name!r}; registered: {', '.join(registered_ids())} (or give a suite YAML path)"
        )
    return Path(_REGISTERED[full])


def get_suite(suite: str | Path | Suite) -> Suite:
    """A suite by env id, suite id or YAML path (loaded once per process), or the `Suite` as given."""
    if isinstance(suite, Suite):
        return suite
    key = str(suite_path(suite).resolve())
    if key not in _SUITES:
        _SUITES[key] = load_suite(key)
    return _SUITES[key]


def register_suite(path: str | Path) -> str:
    """Register a suite YAML file as ``rft/<id>`` for `gymnasium.make`; returns the env id."""
    suite = get_suite(Path(path))
    env_id = f"{NAMESPACE}/{suite.id}"
    key = str(Path(path).resolve())
    if _REGISTERED.get(env_id) == key:
        return env_id
    if env_id in _REGISTERED:
        raise SuiteError(
            f"{env_id} is already registered from {_REGISTERED[env_id]}; bump the version in {key}"
        )
    gymnasium.register(id=env_id, entry_point="rft.envs.env:SuiteEnv", kwargs={"suite": key})
    _REGISTERED[env_id] = key
    return env_id


def registered_ids() -> list[str]:
    """The env ids this package registered (built-in and user suites)."""
    return sorted(_REGISTERED)


for _p in builtin_suites():
    register_suite(_p)
for _d in filter(None, os.environ.get("RFT_TASKS", "").split(os.pathsep)):
    for _p in sorted([*Path(_d).glob("*.yaml"), *Path(_d).glob("*.yml")]):
        register_suite(_p)
