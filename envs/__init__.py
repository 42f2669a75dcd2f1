"""rft.envs: Gymnasium-style environments that pose tasks and grade answers (imports only rft.graders).

``import rft.envs`` registers ``rft/<suite id>`` for the built-in suites (``envs/suites/*.yaml``) and for
every suite file in the folders listed in ``$RFT_TASKS`` (separated by ``os.pathsep``).
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium

from .env import SuiteEnv, get_suite
from .pool import EnvPool
from .suite import Suite, SuiteError, data_dir, decontamination, find_overlaps, load_suite, split_of

__all__ = [
    "SuiteEnv",
    "EnvPool",
    "Suite",
    "SuiteError",
    "load_suite",
    "register_suite",
    "registered_ids",
    "suite_path",
    "get_suite",
    "builtin_suites",
    "find_overlaps",
    "decontamination",
    "split_of",
    "data_dir",
]

SUITES_DIR = Path(__file__).resolve().parent / "suites"
NAMESPACE = "rft"
_REGISTERED: dict[str, str] = {}


def register_suite(path: str | Path) -> str:
    """Register a suite YAML file as ``rft/<id>`` for `gymnasium.make`; returns the env id."""
    suite = get_suite(path)
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


def builtin_suites() -> list[Path]:
    return sorted(SUITES_DIR.glob("*.yaml"))


def suite_path(env_id: str) -> Path:
    """The suite file behind ``rft/<id>`` (or ``<id>``)."""
    full = env_id if "/" in env_id else f"{NAMESPACE}/{env_id}"
    if full not in _REGISTERED:
        raise SuiteError(f"unknown task {env_id!r}; registered: {', '.join(registered_ids())}")
    return Path(_REGISTERED[full])


for _p in builtin_suites():
    register_suite(_p)
for _d in filter(None, os.environ.get("RFT_TASKS", "").split(os.pathsep)):
    for _p in sorted([*Path(_d).glob("*.yaml"), *Path(_d).glob("*.yml")]):
        register_suite(_p)
