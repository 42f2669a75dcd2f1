"""rft.envs: Gymnasium-style environments that pose tasks and grade answers (imports only rft.graders).

``import rft.envs`` registers ``rft/<suite id>`` for the built-in suites (``tasks/*.yaml``) and for
every suite file in the folders listed in ``$RFT_TASKS`` (separated by ``os.pathsep``); a file there that
does not load is listed by `broken_suites` and raises its `SuiteError` when used, the others stay usable.
"""

from __future__ import annotations

from .contamination import Match, OverlapReport, decontamination, find_overlaps, overlap
from .env import SuiteEnv
from .pool import EnvPool
from .registry import (
    BrokenSuite,
    broken_suites,
    builtin_suites,
    get_suite,
    register_folder,
    register_suite,
    registered_ids,
    suite_path,
)
from .suite import Suite, SuiteError, data_dir, load_suite, split_of

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
    "BrokenSuite",
    "broken_suites",
    "register_folder",
    "find_overlaps",
    "decontamination",
    "overlap",
    "OverlapReport",
    "Match",
    "split_of",
    "data_dir",
]
