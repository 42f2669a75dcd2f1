"""Suite names: ``rft/<id>`` env ids registered for `gymnasium.make`, and the one resolver every caller uses.

`get_suite` takes an env id (``rft/arithmetic-v0``), a suite id (``arithmetic-v0``), a suite YAML path or a
`Suite`. Importing this module registers the built-in suites (`rft.tasks`) and every suite file in the
folders listed in ``$RFT_TASKS`` (separated by ``os.pathsep``). A user suite file that does not load is
kept aside as a `BrokenSuite` (`broken_suites`): asking for it raises its `SuiteError`, the others work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import yaml

from rft.tasks import builtin_suites

from .suite import Suite, SuiteError, load_suite

__all__ = ["NAMESPACE", "get_suite", "suite_path", "register_suite", "registered_ids", "builtin_suites",
           "BrokenSuite", "broken_suites", "register_folder"]  # fmt: skip

NAMESPACE = "rft"
_REGISTERED: dict[str, str] = {}  # env id -> resolved suite file
_SUITES: dict[str, Suite] = {}  # resolved suite file -> suite (rows read once per process)
_BROKEN: dict[str, BrokenSuite] = {}  # resolved suite file -> why it did not register


@dataclass(frozen=True)
class BrokenSuite:
    """A suite file in ``$RFT_TASKS`` that did not register: the env id it claims (its ``id``, else the
    file's name), the file, and the error that says what to fix."""

    env_id: str
    path: Path
    error: str


def suite_path(name: str | Path) -> Path:
    """The suite file behind an env id (``rft/<id>``), a suite id (``<id>``) or a YAML path (as given)."""
    if isinstance(name, Path) or name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise SuiteError(f"suite file {path.resolve()} does not exist")
        return path
    full = name if "/" in name else f"{NAMESPACE}/{name}"
    if full not in _REGISTERED:
        for b in _BROKEN.values():
            if b.env_id == full:
                raise SuiteError(f"task {name!r} is broken: {b.error}")
        broken = f"; {len(_BROKEN)} suite file(s) in $RFT_TASKS are broken (rft task list)" if _BROKEN else ""
        raise SuiteError(
            f"unknown task {name!r}; registered: {', '.join(registered_ids())} (or give a suite YAML path)"
            + broken
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


def broken_suites() -> list[BrokenSuite]:
    """The suite files of `register_folder` (``$RFT_TASKS``) that did not register, by file name."""
    return sorted(_BROKEN.values(), key=lambda b: str(b.path))


def register_folder(folder: str | Path) -> list[str]:
    """Register every ``*.yaml``/``*.yml`` suite in `folder`; returns the new env ids. A file that fails
    (bad YAML, a bad key, an id taken by another file) is set aside as a `BrokenSuite`, not raised: one
    bad file must not break the others or every command that imports `rft.envs`."""
    ids = []
    for path in sorted([*Path(folder).glob("*.yaml"), *Path(folder).glob("*.yml")]):
        key = str(path.resolve())
        try:
            ids.append(register_suite(path))
        except SuiteError as e:
            message = str(e) if key in str(e) else f"{key}: {e}"
            _BROKEN[key] = BrokenSuite(_claimed_id(path), Path(key), message)
        else:
            _BROKEN.pop(key, None)
    return ids


def _claimed_id(path: Path) -> str:
    """The env id a suite file asks for: its ``id`` when the YAML has one, else the file's name."""
    try:
        spec = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        spec = None
    claimed = spec.get("id") if isinstance(spec, dict) else None
    return f"{NAMESPACE}/{claimed if isinstance(claimed, str) and claimed else path.stem}"


for _p in builtin_suites():
    register_suite(_p)
for _d in filter(None, os.environ.get("RFT_TASKS", "").split(os.pathsep)):
    register_folder(_d)
