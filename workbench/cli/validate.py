"""``workbench validate FILE...``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench._errors import BadInput
from workbench.cli import options
from workbench.run.environment import check_scenario_allocator
from workbench.scenario import load_scenario
from workbench.scenario.loader import is_bundled
from workbench.scenario.trust import untrusted_values


def validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario files to check.")],
    trust: options.Trust = False,
) -> None:
    """Check scenario files without running them: one line per problem (file:line: field: what was expected).

    Exit codes: 0 all valid, 2 at least one is not.
    """
    problems = []
    for path in files:
        try:
            scenario = load_scenario(path)
            untrusted = [] if trust or is_bundled(path) else untrusted_values(scenario)
            if untrusted:
                raise BadInput(untrusted[0].message(str(path)))
            check_scenario_allocator(scenario.allocator, scenario.malloc_conf, str(path))
        except BadInput as error:
            problems.append(error.message)
            print(error.message, file=sys.stderr)
            continue
        print(f"{path}: ok ({scenario.name}, {len(scenario.steps)} steps, {len(scenario.expect)} expectations)")
    if problems:
        raise typer.Exit(2)
