"""The ``workbench`` typer app; each command a few lines in its own module, registered here."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer

from workbench._errors import WorkbenchError
from workbench.cli import commands_take_interrupts
from workbench.cli import build, compare, doctor, exec, report, run, scenarios, tune, validate

app = typer.Typer(
    name="workbench",
    help="Where a JVM's off-heap memory goes: Arrow, NMT, the allocator and the kernel, reconciled in one report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


_COMMANDS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("run", run.run, {}),
    ("compare", compare.compare, {}),
    ("tune", tune.tune, {"context_settings": {"ignore_unknown_options": True}}),
    ("exec", exec.exec_, {"context_settings": {"ignore_unknown_options": True}}),
    ("attach", exec.attach, {}),
    ("snapshot", exec.snapshot, {}),
    ("report", report.report, {}),
    ("diff", report.diff, {}),
    ("validate", validate.validate, {}),
    ("scenarios", scenarios.scenarios, {}),
    ("build", build.build, {}),
    ("doctor", doctor.doctor, {}),
]
for _name, _command, _settings in _COMMANDS:
    app.command(_name, **_settings)(_one_line_errors(_command))


def run_app(argv: list[str] | None) -> int:
    """The app on ``argv``; returns the exit code."""
    try:
        app(args=argv, prog_name="workbench")  # standalone: usage errors print click's message and exit 2
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return 130
    return 0
