"""The ``workbench`` command: one typer app, one module per command."""

from __future__ import annotations

import sys

import typer

from workbench._errors import WorkbenchError

app = typer.Typer(
    name="workbench",
    help="Where a JVM's off-heap memory goes: Arrow, NMT, the allocator and the kernel, reconciled in one report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from workbench.cli import run as _run  # noqa: E402  (registers the commands on app)
from workbench.cli import scenarios as _scenarios  # noqa: E402,F401
from workbench.cli import build as _build  # noqa: E402,F401
from workbench.cli import compare as _compare  # noqa: E402,F401
from workbench.cli import report as _report  # noqa: E402,F401
from workbench.cli import validate as _validate  # noqa: E402,F401
from workbench.cli import exec as _exec  # noqa: E402,F401
from workbench.cli import doctor as _doctor  # noqa: E402,F401

_ = _run


def main() -> None:
    """Entry point: a WorkbenchError becomes one line on stderr and its exit code; anything else is a bug."""
    try:
        app()  # standalone: usage errors print click's message and exit 2
    except WorkbenchError as error:
        print(f"workbench: {error.message}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        sys.exit(130)
