"""``workbench tune SCENARIO`` and ``workbench tune -- java ...``: the allocator and settings that fit a workload."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench._errors import BadInput
from workbench._files import write_atomically
from workbench.cli import options
from workbench.report.text import report_console
from workbench.run.signals import Interrupted
from workbench.units import parse_duration_ms


def _budget(text: str | None) -> tuple[int | None, int | None]:
    """``--budget``: a number of trials (``20``) or a duration (``30m``)."""
    if text is None:
        return None, None
    if text.strip().isdigit():
        if int(text) < 1:
            raise BadInput(f"--budget {text}: expected at least 1 trial")
        return int(text), None
    try:
        millis = parse_duration_ms(text)
    except ValueError:
        raise BadInput(f"--budget {text}: expected a number of trials (20) or a duration (30m, 2h)") from None
    if millis <= 0:
        raise BadInput(f"--budget {text}: expected a duration greater than 0")
    return None, millis


def _memory(text: str) -> str:
    if text in ("peak", "idle"):
        return text
    return options.label("--memory", text)


def tune(
    target: Annotated[Optional[list[str]], typer.Argument(
        help="A bundled scenario's name or a YAML file; or, after --, a program: -- java ARGS...")] = None,
    allocators: Annotated[Optional[str], typer.Option(
        help="Search these allocators with the default space, comma-separated (default: every one installed).")]
    = None,
    space: Annotated[Optional[Path], typer.Option(
        help="A YAML file: allocator -> setting -> values to try (`default` leaves it unset); see docs/tune.md.")]
    = None,
    budget: Annotated[Optional[str], typer.Option(
        help="Trials (20) or time (30m). A space no larger than the trials is run whole (a grid); a larger one is "
             "searched by Optuna's multi-objective sampler. Default: the whole space up to 64 configurations, "
             "else 40 trials.")] = None,
    repeat: Annotated[int, typer.Option(help="Runs per trial, each in a fresh worker: the median and min-max of "
                                             "every figure tell signal from noise.")] = 3,
    memory: Annotated[str, typer.Option(
        help="The memory objective: idle (anonymous RSS at the last snapshot), peak (the highest sampled), or a "
             "snapshot label.")] = "idle",
    storage: Annotated[Optional[str], typer.Option(
        help="The study's database (an Optuna RDB URL, e.g. postgresql://user@host/db) instead of study.db in the "
             "tune directory; other machines then join with --join.")] = None,
    join: Annotated[Optional[str], typer.Option(
        help="Work on a study another `workbench tune --storage URL` created: its target, space and repeats.")]
    = None,
    study: Annotated[Optional[str], typer.Option(help="The study's name (default: the tune directory's; with --join: "
                                                      "the only study in the database).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="The tune directory (new or empty); default "
                                                     "runs/<time>-tune-<what>.")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write tune.json here.")] = None,
    hold: options.Hold = None,
    nmt: options.Nmt = None,
    trust: options.Trust = False,
    java_home: options.JavaHome = None,
    quiet: options.Quiet = False,
    html: Annotated[bool, typer.Option(help="Write tune.html (the front chart, a table per allocator).")] = True,
) -> None:
    """Search allocators x settings for a scenario or a program: each trial in fresh workers, repeated; print the
    Pareto front of memory against speed and recommend one setting with the exact environment to use.

    Trials run through Optuna: a small space as a grid, a larger one with its multi-objective TPE sampler; the study
    is kept in study.db in the tune directory, or in --storage (PostgreSQL) for several machines, each running
    `workbench tune --join URL`. Ctrl-C keeps the finished trials and still prints the front.

    Exit codes: 0 ok, 2 bad input (nothing run), 3 no trial completed, 130 interrupted (after the front).
    """
    from workbench.tune.render import render_text
    from workbench.tune.result import to_json
    from workbench.tune.session import TuneRequest, join as join_study, tune as run_tune
    from workbench.tune.space import default_space, load_space
    from workbench.tune.measure import ProgramTarget, ScenarioTarget, Target

    repeat = options.repeat_count("--repeat", repeat)
    memory = _memory(memory)
    budget_trials, budget_ms = _budget(budget)
    level = options.nmt_level("--nmt", nmt)
    if json_path is not None:
        options.json_target(json_path)
    if join is not None:
        if target:
            raise BadInput("--join: the study names what to run; give no scenario or program with it")
        result = join_study(join, study, out, budget_ms, quiet=quiet, html=html)
    else:
        if not target:
            raise BadInput("tune: expected a scenario (workbench tune intvector-churn-threads) or a program after "
                           "-- (workbench tune -- java -jar app.jar)")
        if space is not None and allocators is not None:
            raise BadInput("--allocators: give it or --space, not both (a space file names its allocators)")
        chosen = load_space(space) if space is not None else default_space(
            [a.strip() for a in allocators.split(",") if a.strip()] if allocators else None)
        hold_ms = options.duration_ms("--hold", hold)
        what: Target
        if len(target) > 1 or target[0] == "java" or Path(target[0]).name == "java":
            what = ProgramTarget(tuple(target), nmt=level or "summary")
            target_json: dict[str, object] = {"command": list(target), "nmt": level or "summary"}
        else:
            what = ScenarioTarget(target[0], hold_ms=hold_ms, nmt=level, trust=trust,
                                  java_home=str(java_home) if java_home else None)
            target_json = {"scenario": target[0], "hold_ms": hold_ms, "nmt": level, "trust": trust,
                           "java_home": str(java_home) if java_home else None}
        result = run_tune(TuneRequest(what, target_json, chosen, repeat, memory, budget_trials, budget_ms, out,
                                      storage, study, html), quiet=quiet)
    if json_path is not None:
        write_atomically(json_path, to_json(result))
    render_text(result, report_console())
    if result.interrupted_by is not None:
        raise Interrupted(result.interrupted_by, result.tune_dir or "runs/", "every finished trial")
    if not any(t.state == "COMPLETE" for t in result.trials):
        from workbench._errors import RunFailed

        failed = next((t.result.error for t in result.trials if t.result.error), None)
        raise RunFailed(f"no trial completed{f' (first failure: {failed})' if failed else ''}; every run is in "
                        f"{result.tune_dir}")
