"""How the `rft` command ends when something goes wrong, for every command and subcommand at once.

- A user error (a missing or unreadable file, malformed YAML or JSON, an invalid config, grader spec, suite or run
  folder, a server that does not answer): one red line on stderr, exit status 2.
- A usage error (unknown option, missing argument): one line naming the command and its `--help`, exit status 2.
- Ctrl-C: one line, exit status 130.
- Anything else is a bug in rft: one line, then how to see the traceback and where to report it; exit status 1.

`rft --debug ...` or ``RFT_DEBUG=1`` prints the traceback as well. Typer's pretty exceptions are off: they print
tables of local variables.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

__all__ = [
    "DEBUG_ENV",
    "EXIT_BUG",
    "EXIT_INTERRUPTED",
    "EXIT_USER",
    "App",
    "add_global_options",
    "is_user_error",
    "one_line",
    "run",
]

DEBUG_ENV = "RFT_DEBUG"
EXIT_USER = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130

# (module, class) of the exceptions that mean the input is wrong, not rft. Looked up in `sys.modules` when an
# exception arrives: an exception of a module that was never imported cannot have been raised, and the error path
# imports nothing (a broken import is often the error being reported).
_USER_ERRORS = (
    ("builtins", "OSError"),  # missing file, permission, is a directory, connection refused, DNS, disk full
    ("builtins", "UnicodeDecodeError"),  # a binary file given as text
    ("json", "JSONDecodeError"),
    ("yaml", "YAMLError"),
    ("pydantic", "ValidationError"),
    ("openai", "APIError"),  # an API server that refuses, times out or answers 4xx/5xx
    ("httpx", "TransportError"),
    ("httpx2", "TransportError"),
    ("rft.config", "ConfigError"),
    ("rft.graders.base", "GraderSpecError"),
    ("rft.graders.template", "TemplateError"),
    ("rft.graders.sandbox.base", "SandboxUnavailable"),
    ("rft.graders.judge", "EndpointError"),
    ("rft.envs.sources", "SuiteError"),
    ("rft.runs", "RunError"),
    ("rft.app.pipeline_config", "PipelineError"),
)


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def is_user_error(e: BaseException) -> bool:
    """Whether `e` says the user's input (files, config, data, network) is wrong rather than rft."""
    for module, name in _USER_ERRORS:
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type) and isinstance(e, kind):
            return True
    return False


def one_line(text: str) -> str:
    """`text` on one line: YAML's multi-line messages (with a source excerpt and a caret line) joined."""
    lines = [ln.strip().replace('in "<unicode string>", ', "at ") for ln in text.splitlines()]
    return " ".join(ln for ln in lines if ln and set(ln) != {"^"})


def _yaml_text(e: BaseException) -> str | None:
    """A PyYAML parse error as "not valid YAML: <problem> at line L, column C", without the source excerpt."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    yaml = sys.modules.get("yaml")
    if yaml is None or not isinstance(e, yaml.MarkedYAMLError) or mark is None or not problem:
        return None
    return f"not valid YAML: {problem} at line {mark.line + 1}, column {mark.column + 1}"


def describe(e: BaseException) -> str:
    """The one-line message of `e`: an OSError as "reason: file", others as their text (or their type)."""
    if isinstance(e, OSError) and e.strerror:
        names = [str(f) for f in (e.filename, e.filename2) if f is not None]
        return f"{e.strerror}: {' -> '.join(names)}" if names else e.strerror
    text = _yaml_text(e) or one_line(str(e))
    return text or type(e).__name__


def _say(console: Console, message: str, style: str = "red") -> None:
    console.print(f"[{style}]{escape(message)}[/{style}]", soft_wrap=True, highlight=False)


def report(e: BaseException, console: Console) -> int:
    """Print `e` the way the module docstring says and return the exit status."""
    if debug_enabled():
        traceback.print_exception(e, file=sys.stderr)
    if is_user_error(e):
        _say(console, describe(e))
        return EXIT_USER
    _say(console, f"internal error: {type(e).__name__}: {describe(e)}")
    if not debug_enabled():
        console.print(
            "This is a bug in rft: run the command again as `rft --debug ...` (or with RFT_DEBUG=1) for the "
            "traceback, and report it with that traceback.",
            soft_wrap=True,
            highlight=False,
        )
    return EXIT_BUG


def _usage_line(e: typer.TyperException) -> str:
    ctx = getattr(e, "ctx", None)
    where = ctx.command_path if ctx is not None else "rft"
    return f"{where}: {one_line(e.format_message())} (see {where} --help)"


def run(app: typer.Typer, args: Sequence[str] | None = None, prog_name: str | None = None) -> NoReturn:
    """Run the Typer `app` as a command line and exit with the status described in the module docstring."""
    console = Console(stderr=True)
    try:
        command = typer.main.get_command(app)
        rv = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except typer.TyperException as e:  # click's usage errors and bad parameters
        ctx = getattr(e, "ctx", None)
        if (
            ctx is not None and e.format_message() == ctx.get_help()
        ):  # a group run bare: its help, as click does
            print(e.format_message(), file=sys.stderr)
        else:
            _say(console, _usage_line(e))
        sys.exit(getattr(e, "exit_code", EXIT_USER))
    except typer.Abort:
        _say(console, "aborted")
        sys.exit(EXIT_BUG)
    except KeyboardInterrupt:
        rv = EXIT_INTERRUPTED
    except BrokenPipeError:  # `rft task list | head`: the reader left; nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes stdout again at exit
        sys.exit(EXIT_BUG)
    except Exception as e:
        sys.exit(report(e, console))
    code = rv if isinstance(rv, int) else 0
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into Exit(130)
        _say(console, "interrupted (Ctrl-C)", style="yellow")
    sys.exit(code)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"rft {version('rft')}")
        raise typer.Exit()


def _global_options(
    debug: Annotated[
        bool,
        typer.Option("--debug", help=f"on an error, print the Python traceback too (or set {DEBUG_ENV}=1)"),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print rft's version and exit"
        ),
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"  # read by `report`; grading workers started later inherit it


def add_global_options(app: typer.Typer) -> None:
    """`rft --debug ...` (tracebacks, as ``RFT_DEBUG=1``) and `rft --version`, before any command."""
    app.callback()(_global_options)


class App(typer.Typer):
    """A Typer app whose help shows flags as flags and whose call ends as `run` says.

    Typer's rich help prints a type such as ``<bool>`` after every flag, ``--help`` included (typer 0.29); the
    plain (click) help does not, so rich markup is off. Pretty exceptions are off (see the module docstring).
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("rich_markup_mode", None)
        kwargs.setdefault("pretty_exceptions_enable", False)
        super().__init__(**kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run(self, *args, **kwargs)
