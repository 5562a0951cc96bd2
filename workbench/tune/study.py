"""The search, through Optuna: the study lives in a database (SQLite in the tune directory by default, or any
storage URL Optuna's RDB storage takes, e.g. PostgreSQL, so that several machines work on one study: trials measure
memory and time and must not share a machine).

A space no larger than the budget is a grid: every configuration is queued as a trial up front, and workers take
them from the queue (a trial moves from WAITING to RUNNING in one transaction, so no two workers take the same one)
until it is empty. A larger space is searched by Optuna's multi-objective TPE sampler, after each allocator's
defaults (queued first, so every gain has its reference).
"""

from __future__ import annotations

import json
import os
import warnings
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from workbench._errors import BadInput
from workbench.toolchain.settings import AllocatorSpec
from workbench.tune.measure import Target, TrialResult
from workbench.tune.space import PARAMETER, Space

Mode = Literal["grid", "sampler"]
CONFIG_ATTR = "workbench.tune"  # the study's user attribute holding its configuration
RESULT_ATTR = "result"  # a trial's user attribute holding its TrialResult
SEED = 20261127


@dataclass(frozen=True)
class StudyConfig:
    """What every worker of a study runs: stored with the study, so ``--join`` needs only its URL."""

    target: dict[str, Any]  # {"scenario": ..., "hold_ms": ..., "nmt": ...} or {"command": [...], "nmt": ...}
    space: dict[str, dict[str, list[str]]]
    repeat: int
    memory: str  # "peak", "idle" (anonymous RSS), or a snapshot label (its anonymous RSS)
    speed: Literal["throughput", "wall"]
    mode: Mode
    budget_trials: int | None  # None: until the grid is done or the time is up

    def directions(self) -> list[Literal["minimize", "maximize"]]:
        return ["minimize", "maximize" if self.speed == "throughput" else "minimize"]

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "space": self.space, "repeat": self.repeat, "memory": self.memory,
                "speed": self.speed, "mode": self.mode, "budget_trials": self.budget_trials}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyConfig:
        return cls(target=data["target"], space=data["space"], repeat=int(data["repeat"]), memory=data["memory"],
                   speed=data["speed"], mode=data["mode"], budget_trials=data.get("budget_trials"))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def _storage(url: str) -> optuna.storages.BaseStorage:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.storages.RDBStorage(url)
    except (ImportError, ModuleNotFoundError) as error:
        raise BadInput(f"--storage {url}: the database driver is not installed ({error}); for PostgreSQL: pip "
                       "install psycopg2-binary") from None
    except Exception as error:  # SQLAlchemy's OperationalError and kin: the database is not there
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BadInput(f"--storage {url}: cannot open the study's database ({first})") from None


def _sampler(config: StudyConfig) -> optuna.samplers.BaseSampler:
    # The grid is queued whole; the sampler only runs for trials beyond the queue (never, in grid mode). `group`
    # (settings exist only under their allocator) is marked experimental by Optuna: its warning says nothing to a user.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna.samplers.TPESampler(seed=SEED, multivariate=True, group=True, constant_liar=True,
                                      n_startup_trials=min(10, max(2, (config.budget_trials or 20) // 3)))


def create_study(url: str, name: str, config: StudyConfig, space: Space) -> optuna.Study:
    """A new study with its configuration stored, and its queue: the grid, or each allocator's defaults."""
    storage = _storage(url)
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=config.directions(),
                                    sampler=_sampler(config))
    except optuna.exceptions.DuplicatedStudyError:
        raise BadInput(f"--study {name}: a study of that name is already in {url} (join it with --join, or give "
                       "another --study)") from None
    study.set_user_attr(CONFIG_ATTR, config.to_json())
    queued = list(space.configurations()) if config.mode == "grid" else \
        [AllocatorSpec(name) for name in space.allocators]
    for spec in queued:
        study.enqueue_trial(space.params(spec), user_attrs={"spec": spec.text()})
    return study


def load_study(url: str, name: str | None) -> tuple[optuna.Study, StudyConfig]:
    """An existing study (the only one in the storage when ``name`` is None) and its configuration."""
    storage = _storage(url)
    names = [s.study_name for s in storage.get_all_studies()]
    if name is None:
        if len(names) != 1:
            raise BadInput(f"--join {url}: " + ("no study in it yet" if not names else
                                                f"{len(names)} studies in it ({', '.join(names)}); name one with "
                                                "--study"))
        name = names[0]
    elif name not in names:
        raise BadInput(f"--study {name}: no such study in {url} (studies: {', '.join(names) or 'none'})")
    study = optuna.load_study(study_name=name, storage=storage)
    raw = study.user_attrs.get(CONFIG_ATTR)
    if not isinstance(raw, dict):
        raise BadInput(f"--study {name}: not a study of `workbench tune` (no {CONFIG_ATTR} attribute)")
    config = StudyConfig.from_json(raw)
    return optuna.load_study(study_name=name, storage=storage, sampler=_sampler(config)), config


def _pop_queued(study: optuna.Study) -> optuna.Trial | None:
    """The next queued trial, now RUNNING and this worker's; None when the queue is empty. The state change is one
    transaction in the storage: two workers never get the same trial. (What Study.ask does first, without its
    fallback of sampling a new trial when the queue is empty, which a grid's worker must not do.)"""
    storage = study._storage
    study_id = storage.get_study_id_from_name(study.study_name)
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, trial_id)
        except UpdateFinishedTrialError:
            continue
    return None


def _suggest(trial: optuna.Trial, space: Space) -> AllocatorSpec:
    name = trial.suggest_categorical(PARAMETER, list(space.allocators))
    params: dict[str, Any] = {PARAMETER: name}
    for key, values in space.allocators[str(name)].items():
        params[f"{name}.{key}"] = trial.suggest_categorical(f"{name}.{key}", list(values))
    return space.spec(params)


def memory_value(result: TrialResult, memory: str) -> float | None:
    """The trial's memory objective: the median peak or idle anonymous RSS, or at a snapshot label."""
    if memory in ("peak", "idle"):
        return result.memory[f"{memory}_anon_rss_bytes"].median
    figures = result.snapshots.get(memory)
    return figures["process.anon_rss_bytes"].median if figures else None


@dataclass
class Progress:
    """What the loop tells whoever shows it: a trial starting, a trial done."""

    on_start: Callable[[int, str], None] | None = None
    on_run: Callable[[int], None] | None = None
    on_done: Callable[[int, TrialResult], None] | None = None


def run_trials(study: optuna.Study, config: StudyConfig, target: Target, out: Path,
               deadline: float | None, progress: Progress) -> tuple[int, str | None]:
    """Take trials (queued first, then sampled while the budget lasts) until none is left, the budget is spent or
    the time is up; each runs ``config.repeat`` times into ``out/trials/``. Returns (trials run here, the signal
    that interrupted them, if one did). A trial interrupted is marked FAIL; every finished one stays."""
    space = Space(config.space)
    done_here = 0
    host = socket.gethostname()
    while deadline is None or time.monotonic() < deadline:
        trial = _pop_queued(study)
        if trial is None:
            if config.mode == "grid":
                break
            started = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE,
                                                                   TrialState.FAIL)))
            if config.budget_trials is not None and started >= config.budget_trials:
                break
            trial = study.ask()
        try:
            spec = _suggest(trial, space)
            trial.set_user_attr("spec", spec.text())
            trial.set_user_attr("worker", f"{host}:{os.getpid()}")
            if progress.on_start is not None:
                progress.on_start(trial.number, spec.text())
            run_dir = out / "trials" / f"{trial.number:03d}-{_safe(spec.text())}"
            run_dir.mkdir(parents=True)
            result = target.run(spec.text(), run_dir, config.repeat, progress.on_run)
        except KeyboardInterrupt:
            _give_back(study, trial, config)
            return done_here, "SIGINT"
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        trial.set_user_attr(RESULT_ATTR, json.loads(json.dumps(result.to_json())))
        done_here += 1
        memory = memory_value(result, config.memory)
        speed = result.speed.median if result.speed is not None else None
        if result.status == "ok" and memory is not None and speed is not None:
            study.tell(trial, [memory, speed])
        else:
            study.tell(trial, state=TrialState.FAIL)
        if progress.on_done is not None:
            progress.on_done(trial.number, result)
        if result.status == "interrupted":
            if config.mode == "grid":
                study.enqueue_trial(dict(trial.params), user_attrs={"spec": result.spec})
            return done_here, "SIGINT"
    return done_here, None


def _give_back(study: optuna.Study, trial: optuna.Trial, config: StudyConfig) -> None:
    """An interrupted trial is FAIL; a grid's configuration goes back into the queue, for the next worker."""
    study.tell(trial, state=TrialState.FAIL)
    if config.mode == "grid" and trial.params:
        study.enqueue_trial(dict(trial.params), user_attrs={"spec": trial.user_attrs.get("spec", "")})


def _safe(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:120]


def finished(study: optuna.Study) -> list[tuple[FrozenTrial, TrialResult]]:
    """Every trial that ran to its end (complete or failed), with its result, in trial order."""
    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        raw = trial.user_attrs.get(RESULT_ATTR)
        if isinstance(raw, dict):
            found.append((trial, TrialResult.from_json(raw)))
    return found

