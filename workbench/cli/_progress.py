"""The phase being run and the time since it started, on a terminal only; silent with --quiet or when piped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from workbench.protocol.events import Event
    from workbench.scenario.model import Scenario


@contextmanager
def run_progress(scenario: Scenario, quiet: bool, label: str = "") -> Iterator[Callable[[Event], None] | None]:
    if quiet:  # rich and the events' models are imported by the run once its worker is starting
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from workbench.protocol.events import StepStarted

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    total = len(scenario.steps)
    # The description holds the scenario's name and labels: printed literally (markup=False); an ASCII terminal
    # gets an ASCII spinner.
    spinner = SpinnerColumn() if console.encoding.lower().startswith("utf") else SpinnerColumn("line")
    with Progress(spinner, TextColumn("{task.description}", markup=False), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task(f"{scenario.name}{label}: starting the JVM", total=total)

        def on_event(event: Event) -> None:
            if isinstance(event, StepStarted):
                what = event.step + (f" {event.argument}" if event.argument else "")
                progress.update(task, completed=event.index,
                                description=f"{scenario.name}{label}: step {event.index + 1}/{total}: {what}")

        yield on_event


@contextmanager
def runs_progress(scenario: Scenario, quiet: bool, count: int,
                  label: str = "") -> Iterator[Callable[[int], Callable[[Event], None] | None]]:
    """``count`` runs in a row (``--repeat``): a factory that gives run K its own progress line, "(run K/N)"."""
    with ExitStack() as stack:
        def on_run(index: int) -> Callable[[Event], None] | None:
            stack.close()  # the previous run's line
            return stack.enter_context(run_progress(scenario, quiet, f"{label} (run {index + 1}/{count})"))

        yield on_run
