"""What every `rft` command module shares: the consoles, one-line user errors, and the checks commands
make on their inputs before doing anything."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from rft.app.console import Bar
from rft.app.errors import one_line
from rft.eval.spec import EvalSpec

__all__ = ["out", "err", "EVAL", "fail", "user_errors", "each", "checked_model", "input_file", "load_spec"]

out = Console()
err = Console(stderr=True)
EVAL = EvalSpec()  # `rft eval`'s defaults


def fail(message: str) -> NoReturn:
    """A user error: one red line on stderr (no traceback), exit status 2."""
    err.print(f"[red]{escape(one_line(message))}[/red]", soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def user_errors(*kinds: type[Exception], prefix: str = "") -> Iterator[None]:
    """The expected errors (`kinds`) as `fail(prefix + message)`."""
    try:
        yield
    except kinds as e:
        fail(f"{prefix}{e}")


def each(tick: Bar) -> Callable[..., None]:
    """A callback that moves the bar on by one per call (a grade's `on_result`)."""
    done = itertools.count(1)
    return lambda *_: tick(next(done))


def checked_model(model: str) -> str:
    """`model` checked before anything is made (a run folder stands for its model); the path to load."""
    from rft.models import ModelError, resolve_model_path

    with user_errors(ModelError):
        return str(resolve_model_path(model))


def input_file(path: Path) -> Path:
    if not path.is_file():
        fail(f"no such input file: {path}")
    return path


def load_spec(spec: str) -> Any:
    from rft.graders import GraderSpecError, load_grader

    with user_errors(GraderSpecError, prefix="invalid grader spec: "):
        return load_grader(spec)
