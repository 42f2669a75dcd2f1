"""rft.tasks: the built-in task suites, one declarative YAML file each (data source, prompt, grader spec,
train/held-out split). Package data: an editable and a regular install find them the same way."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["builtin_suites"]


def builtin_suites() -> list[Path]:
    """The built-in suite files, sorted by name."""
    return sorted(Path(str(p)) for p in files(__name__).iterdir() if p.name.endswith(".yaml"))
