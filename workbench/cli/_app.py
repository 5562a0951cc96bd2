"""The ``workbench`` typer app; each command a few lines in its own module, registered here."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import typer

from workbench._errors import WorkbenchError
from workbench._own_environment import set_own_variables
from workbench.cli import commands_take_interrupts, imports_done

_HELP = "Where a JVM's off-heap memory goes: Arrow, NMT, the allocator and the kernel, reconciled in one report."


def _one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """A WorkbenchError becomes one line on stderr and its exit code; Ctrl-C exits 130; anything else is a bug and
    keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            commands_take_interrupts()
            return command(*args, **kwargs)
        except WorkbenchError as error:
            print(f"workbench: {error.message}", file=sys.stderr)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            print("workbench: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


# name, the module in workbench.cli that has it, the function, typer's settings. A module is imported only when its
# command is registered: `workbench exec ...` does not load what `run` or `compare` need (pydantic models, the
# progress display), so the program starts sooner.
_COMMANDS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("run", "run", "run", {}),
    ("compare", "compare", "compare", {}),
    ("tune", "tune", "tune", {"context_settings": {"ignore_unknown_options": True}}),
    ("exec", "exec", "exec_", {"context_settings": {"ignore_unknown_options": True}}),
    ("attach", "exec", "attach", {}),
    ("snapshot", "exec", "snapshot", {}),
    ("report", "report", "report", {}),
    ("diff", "report", "diff", {}),
    ("validate", "validate", "validate", {}),
    ("scenarios", "scenarios", "scenarios", {}),
    ("build", "build", "build", {}),
    ("doctor", "doctor", "doctor", {}),
]
_NAMES = {name for name, *_ in _COMMANDS}


def _only_one() -> None:
    """With one command registered typer would make it the root; a callback keeps it a subcommand."""


def build_app(only: str | None = None) -> typer.Typer:
    """The app with every command, or with ``only`` that one (the others' modules not imported)."""
    app = typer.Typer(name="workbench", help=_HELP, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False)
    if only is not None:
        app.callback()(_only_one)
    for name, module, function, settings in _COMMANDS:
        if only is None or name == only:
            command = getattr(importlib.import_module(f"workbench.cli.{module}"), function)
            app.command(name, **settings)(_one_line_errors(command))
    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # every command, e.g. for typer.testing.CliRunner
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_app(argv: list[str] | None) -> int:
    """The app on ``argv``; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    set_own_variables()
    # Only the command asked for (`--help` and usage errors of the root see them all).
    app = build_app(args[0] if args and args[0] in _NAMES else None)
    imports_done()
    try:
        app(args=args, prog_name="workbench")  # standalone: usage errors print click's message and exit 2
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return 130
    return 0
