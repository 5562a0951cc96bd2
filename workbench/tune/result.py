"""What a tune found: every trial, the Pareto front (memory vs speed), and the one setting it recommends with its
gains over the defaults; as ``tune.json`` (schema ``workbench.tune/1``), in the terminal, and as a page."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from workbench.toolchain.settings import parse_spec
from workbench.tune.measure import Spread, TrialResult

SCHEMA = "workbench.tune/1"
MEMORY_NAMES = {"peak": "peak anonymous RSS", "idle": "idle anonymous RSS"}
SPEED_NAMES = {"throughput": "churn allocations/s", "wall": "wall time (ms)"}


@dataclass(frozen=True)
class Trial:
    number: int
    spec: str
    allocator: str
    settings: dict[str, str]
    state: str  # Optuna's: COMPLETE, FAIL
    worker: str | None
    memory: float | None  # the memory objective (median)
    speed: float | None  # the speed objective (median)
    result: TrialResult


@dataclass(frozen=True)
class Gain:
    """The recommendation against one reference trial: percentages, positive when better (less memory, faster)."""

    against: str  # the reference's spec (``glibc``, ``jemalloc``: an allocator's default)
    trial: int
    memory_pct: float | None
    speed_pct: float | None
    memory: Spread  # the reference's memory objective over its runs
    speed: Spread | None
    memory_beyond_noise: bool  # the two trials' min-max ranges do not overlap
    speed_beyond_noise: bool


@dataclass(frozen=True)
class Mattered:
    """The one change that moved the memory objective most, measured as one change between two trials."""

    change: str  # ``background_thread:true``, or ``allocator jemalloc`` (instead of glibc)
    against: str  # the trial without that change
    memory_bytes: float  # the memory objective of ``against`` minus the recommendation's (positive: it saved)
    speed_pct: float | None


@dataclass(frozen=True)
class Recommendation:
    trial: int
    spec: str
    environment: dict[str, str]  # LD_PRELOAD and the settings' variables, as the runs had them
    memory: Spread
    speed: Spread | None
    gains: list[Gain]  # against the default glibc first, then each other allocator's default
    mattered_most: Mattered | None
    rule: str = ("the front's trial with the largest memory gain plus speed gain over default glibc (percent each); "
                 "with no default glibc measured, the front's least memory")


@dataclass(frozen=True)
class TuneResult:
    target: dict[str, Any]
    study: dict[str, Any]  # name, storage, mode, sampler, directions, objectives
    space: dict[str, dict[str, list[str]]]
    repeat: int
    memory: str
    speed_kind: str
    trials: list[Trial]
    front: list[int]  # trial numbers on the Pareto front
    recommendation: Recommendation | None
    interrupted_by: str | None = None
    tune_dir: str | None = None
    schema: str = SCHEMA
    notes: list[str] = field(default_factory=list)

    def trial(self, number: int) -> Trial:
        return next(t for t in self.trials if t.number == number)


def _pct(ours: float | None, theirs: float | None, higher_is_better: bool) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    change = (ours - theirs) / theirs * 100
    return round(change if higher_is_better else -change, 2)


def _apart(a: Spread | None, b: Spread | None) -> bool:
    """Whether two trials' runs do not overlap: the difference is more than their noise (which one run cannot
    tell: at least two runs a side)."""
    if a is None or b is None or None in (a.min, a.max, b.min, b.max):
        return False
    if min(sum(v is not None for v in a.values), sum(v is not None for v in b.values)) < 2:
        return False
    return bool(a.max < b.min or b.max < a.min)  # type: ignore[operator]


def _memory_spread(trial: Trial, memory: str) -> Spread:
    result = trial.result
    if memory in ("peak", "idle"):
        return result.memory[f"{memory}_anon_rss_bytes"]
    return result.snapshots[memory]["process.anon_rss_bytes"]


def gain(ours: Trial, theirs: Trial, memory: str, speed_kind: str) -> Gain:
    higher = speed_kind == "throughput"
    mine, other = _memory_spread(ours, memory), _memory_spread(theirs, memory)
    return Gain(
        against=theirs.spec, trial=theirs.number,
        memory_pct=_pct(ours.memory, theirs.memory, higher_is_better=False),
        speed_pct=_pct(ours.speed, theirs.speed, higher_is_better=higher),
        memory=other, speed=theirs.result.speed,
        memory_beyond_noise=_apart(mine, other), speed_beyond_noise=_apart(ours.result.speed, theirs.result.speed),
    )


def _complete(trials: list[Trial]) -> dict[str, Trial]:
    """The complete trials by spec (the first of each, should a spec have run twice)."""
    found: dict[str, Trial] = {}
    for trial in trials:
        if trial.state == "COMPLETE" and trial.memory is not None:
            found.setdefault(trial.spec, trial)
    return found


def _mattered_most(chosen: Trial, by_spec: dict[str, Trial], speed_kind: str) -> Mattered | None:
    spec = parse_spec(chosen.spec)
    candidates: list[tuple[str, Trial]] = []
    if spec.name != "glibc" and "glibc" in by_spec:
        base = by_spec.get(spec.name)
        if base is not None:  # the allocator alone: its default against glibc's
            candidates.append((f"allocator {spec.name} (defaults) instead of glibc", by_spec["glibc"]))
    for key, value in spec.settings:
        without = dataclasses.replace(spec, settings=tuple(p for p in spec.settings if p[0] != key)).text()
        if without in by_spec:
            candidates.append((f"{key}:{value}", by_spec[without]))
    if not candidates:
        return None
    effects = []
    for change, against in candidates:
        reference = by_spec.get(spec.name) if change.startswith("allocator ") else chosen
        assert reference is not None and reference.memory is not None and against.memory is not None
        effects.append(Mattered(change, against.spec, against.memory - reference.memory,
                                _pct(reference.speed, against.speed, speed_kind == "throughput")))
    return max(effects, key=lambda m: abs(m.memory_bytes))


def recommend(trials: list[Trial], front: list[int], memory: str, speed_kind: str) -> Recommendation | None:
    """The front's best trial by the rule in Recommendation.rule, with its gains and what mattered most."""
    by_spec = _complete(trials)
    on_front = [t for t in trials if t.number in front and t.memory is not None and t.speed is not None]
    if not on_front:
        return None
    reference = by_spec.get("glibc")
    higher = speed_kind == "throughput"
    if reference is not None:
        def score(trial: Trial) -> float:
            return (_pct(trial.memory, reference.memory, False) or 0.0) + (
                _pct(trial.speed, reference.speed, higher) or 0.0)
        chosen = max(on_front, key=lambda t: (score(t), -(t.memory or 0)))
    else:
        chosen = min(on_front, key=lambda t: t.memory or 0)
    defaults = [by_spec[name] for name in dict.fromkeys(["glibc", *(t.allocator for t in trials)])
                if name in by_spec and name != chosen.spec]
    return Recommendation(
        trial=chosen.number, spec=chosen.spec, environment=dict(chosen.result.environment),
        memory=_memory_spread(chosen, memory), speed=chosen.result.speed,
        gains=[gain(chosen, other, memory, speed_kind) for other in defaults],
        mattered_most=_mattered_most(chosen, by_spec, speed_kind),
    )


def to_json(result: TuneResult) -> str:
    data = dataclasses.asdict(result)
    return json.dumps({"schema": data.pop("schema"), **data}, indent=2) + "\n"


def from_json(text: str) -> TuneResult:
    """A tune.json read back (for `workbench tune --report` and the tests)."""
    data = json.loads(text)
    if data.get("schema") != SCHEMA:
        raise ValueError(f"expected schema {SCHEMA!r}, got {data.get('schema')!r}")

    def spread(raw: dict[str, Any] | None) -> Spread | None:
        return Spread(**raw) if raw is not None else None

    trials = [Trial(**{**t, "result": TrialResult.from_json(t["result"])}) for t in data["trials"]]
    raw = data.get("recommendation")
    recommendation = None
    if raw is not None:
        recommendation = Recommendation(
            trial=raw["trial"], spec=raw["spec"], environment=raw["environment"], memory=Spread(**raw["memory"]),
            speed=spread(raw["speed"]),
            gains=[Gain(**{**g, "memory": Spread(**g["memory"]), "speed": spread(g["speed"])}) for g in raw["gains"]],
            mattered_most=Mattered(**raw["mattered_most"]) if raw.get("mattered_most") else None,
            rule=raw["rule"],
        )
    return TuneResult(
        target=data["target"], study=data["study"], space=data["space"], repeat=data["repeat"],
        memory=data["memory"], speed_kind=data["speed_kind"], trials=trials, front=data["front"],
        recommendation=recommendation, interrupted_by=data.get("interrupted_by"), tune_dir=data.get("tune_dir"),
        notes=list(data.get("notes", [])),
    )
