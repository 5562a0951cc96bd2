"""``workbench scenarios``."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from workbench.report.text import report_console
from workbench.scenario import bundled_scenarios, load_scenario


def scenarios() -> None:
    """List the bundled scenarios (run one with `workbench run NAME`)."""
    table = Table("name", "description", box=None, header_style="bold")
    for name, path in bundled_scenarios().items():
        table.add_row(Text(name), Text(load_scenario(path).description))
    console = report_console()
    console.print(table)
    console.print(Text(f"files: {next(iter(bundled_scenarios().values())).parent}", style="dim"))
