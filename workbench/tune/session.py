"""A tune from start to end: check the whole space (bad input fails before any trial), claim the tune directory,
create or join the study, run trials, and write what was found (tune.json, tune.html) also when interrupted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from workbench._errors import BadInput
from workbench._files import write_atomically
from workbench.run.run_dir import RunDir, run_dir_name
from workbench.tune.measure import ProgramTarget, ScenarioTarget, Target, TrialResult
from workbench.tune.result import Trial, TuneResult, recommend, to_json
from workbench.tune.space import PARAMETER, Space
from workbench.tune.study import (
    Progress, StudyConfig, create_study, finished, load_study, memory_value, run_trials, sqlite_url,
)

MAX_GRID = 64  # a space up to this size is searched whole when no budget of trials is given
DEFAULT_SAMPLED_TRIALS = 40
TUNE_JSON = "tune.json"
TUNE_HTML = "tune.html"
STUDY_DB = "study.db"


@dataclass(frozen=True)
class TuneRequest:
    target: Target
    target_json: dict[str, Any]  # what a joining worker needs to build the same target
    space: Space
    repeat: int
    memory: str
    budget_trials: int | None
    budget_ms: int | None
    out: Path | None
    storage: str | None
    study: str | None
    html: bool = True


def target_from_json(data: dict[str, Any]) -> Target:
    """The target a study's configuration names (for ``--join``)."""
    if "command" in data:
        return ProgramTarget(tuple(data["command"]), nmt=data.get("nmt", "summary"),
                             interval_ms=int(data.get("interval_ms", 100)))
    return ScenarioTarget(data["scenario"], hold_ms=data.get("hold_ms"), nmt=data.get("nmt"),
                          trust=bool(data.get("trust", False)), java_home=data.get("java_home"))


def check_space(target: Target, space: Space) -> None:
    """Every configuration prepared as its run will be (settings tried in a tiny process): exit 2 before any
    trial when one would be refused."""
    for spec in space.configurations():
        target.check(spec.text())


def _mode(space: Space, budget_trials: int | None) -> tuple[str, int | None]:
    if budget_trials is None:
        return ("grid", None) if space.size() <= MAX_GRID else ("sampler", DEFAULT_SAMPLED_TRIALS)
    return ("grid", None) if space.size() <= budget_trials else ("sampler", budget_trials)


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: shown as given, there is nothing to hide in it
        return url


def collect(study: optuna.Study, config: StudyConfig, storage: str, tune_dir: Path | None,
            interrupted_by: str | None) -> TuneResult:
    """The study's trials (every worker's), its front (Optuna's best_trials) and the recommendation."""
    trials = []
    for frozen, result in finished(study):
        spec_params = {k: v for k, v in frozen.params.items()}
        name = str(spec_params.get(PARAMETER, result.spec.partition("@")[0]))
        complete = frozen.state == TrialState.COMPLETE and frozen.values is not None
        trials.append(Trial(
            number=frozen.number, spec=result.spec, allocator=name,
            settings={k.partition(".")[2]: str(v) for k, v in spec_params.items() if k.startswith(f"{name}.")},
            state=frozen.state.name, worker=frozen.user_attrs.get("worker"),
            memory=frozen.values[0] if complete else None, speed=frozen.values[1] if complete else None,
            result=result,
        ))
    try:
        front = sorted(t.number for t in study.best_trials)
    except ValueError:
        front = []
    notes = []
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    if running:
        notes.append(f"{running} trial(s) still running on other workers when this one finished: the last worker to "
                     "finish writes every trial")
    if config.mode == "grid":
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        if waiting:
            notes.append(f"{waiting} configuration(s) of the grid not run yet: `workbench tune --join "
                         f"{_shown_url(storage)}` runs them")
    return TuneResult(
        target=config.target, space=config.space, repeat=config.repeat, memory=config.memory,
        speed_kind=config.speed,
        study={"name": study.study_name, "storage": _shown_url(storage), "mode": config.mode,
               "sampler": "the queue (every configuration once)" if config.mode == "grid" else
               "optuna TPESampler (multi-objective, multivariate)",
               "directions": config.directions(),
               "objectives": {"memory": config.memory, "speed": config.speed}},
        trials=trials, front=front, recommendation=recommend(trials, front, config.memory, config.speed),
        interrupted_by=interrupted_by, tune_dir=str(tune_dir) if tune_dir else None, notes=notes,
    )


def write_result(result: TuneResult, tune_dir: Path, html: bool) -> None:
    write_atomically(tune_dir / TUNE_JSON, to_json(result))
    if html:
        from workbench.tune.render import render_html

        write_atomically(tune_dir / TUNE_HTML, render_html(result))


def claim_tune_dir(what: str, out: Path | None) -> Path:
    return RunDir.claim(run_dir_name(f"tune-{what}", None, None).replace("-detected", ""), out).path


@contextmanager
def _progress_bar(total: int | None, quiet: bool, memory: str) -> Iterator[Progress]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield Progress()
        return
    best: list[tuple[float, str]] = []
    with Bar(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
             TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("tune: starting", total=total)

        def describe(current: str) -> str:
            from workbench.units import format_bytes

            shown = f"; best so far {best[0][1]} {format_bytes(int(best[0][0]))}" if best else ""
            return f"tune: {current}{shown}"

        def on_start(number: int, spec: str) -> None:
            bar.update(task, description=describe(f"trial {number} {spec}"))

        def on_done(number: int, result: TrialResult) -> None:
            value = memory_value(result, memory)
            if result.status == "ok" and value is not None:
                best.append((value, result.spec))
                best.sort()
            bar.update(task, advance=1, description=describe(f"trial {number} done"))

        yield Progress(on_start=on_start, on_done=on_done)


def tune(request: TuneRequest, quiet: bool = False) -> TuneResult:
    """A new study: the space checked, the tune directory claimed, the trials run; the result written there."""
    check_space(request.target, request.space)
    mode, budget_trials = _mode(request.space, request.budget_trials)
    tune_dir = claim_tune_dir(request.target.name, request.out)
    storage = request.storage or sqlite_url(tune_dir / STUDY_DB)
    name = request.study or tune_dir.name
    config = StudyConfig(target=request.target_json, space=request.space.to_json(), repeat=request.repeat,
                         memory=request.memory, speed=request.target.speed, mode=mode,  # type: ignore[arg-type]
                         budget_trials=budget_trials)
    study = create_study(storage, name, config, request.space)
    return _work(study, config, request.target, tune_dir, storage, request.budget_ms, quiet, request.html)


def join(storage: str, study_name: str | None, out: Path | None, budget_ms: int | None, quiet: bool = False,
         html: bool = True) -> TuneResult:
    """Another worker on a study in a shared database: same target, space and repeats, its trials into its own
    tune directory."""
    study, config = load_study(storage, study_name)
    target = target_from_json(config.target)
    tune_dir = claim_tune_dir(f"join-{study.study_name}", out)
    return _work(study, config, target, tune_dir, storage, budget_ms, quiet, html)


def _work(study: optuna.Study, config: StudyConfig, target: Target, tune_dir: Path, storage: str,
          budget_ms: int | None, quiet: bool, html: bool) -> TuneResult:
    deadline = time.monotonic() + budget_ms / 1000 if budget_ms else None
    total = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) if config.mode == "grid" \
        else config.budget_trials
    interrupted_by = None
    try:
        with _progress_bar(total, quiet, config.memory) as progress:
            _, interrupted_by = run_trials(study, config, target, tune_dir, deadline, progress)
    except KeyboardInterrupt:
        interrupted_by = "SIGINT"
    result = collect(study, config, storage, tune_dir, interrupted_by)
    write_result(result, tune_dir, html)
    return result


def unknown_budget(text: str) -> BadInput:
    return BadInput(f"--budget {text}: expected a number of trials (20) or a duration (30m, 2h)")
