"""`workbench tune` without running anything: the space, the front and the recommendation on fabricated trials,
tune.json read back, the page, and the usage errors."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from workbench._errors import BadInput
from workbench.cli import app
from workbench.tune.measure import Spread, TrialResult, churn_seconds
from workbench.tune.render import render_html
from workbench.tune.result import Trial, TuneResult, from_json, recommend, to_json
from workbench.tune.space import build_space, default_space
from workbench.tune.study import StudyConfig, create_study, finished, run_trials, Progress
from workbench.scenario import load_scenario, resolve_scenario

MIB = 1 << 20


def test_a_space_is_every_combination_per_allocator_with_glibc_always_in_it() -> None:
    space = build_space({"jemalloc": {"background_thread": ["default", True], "dirty_decay_ms": ["default", 0, 1000]}},
                        "space.yaml")
    assert [spec.text() for spec in space.configurations()] == [
        "glibc", "jemalloc", "jemalloc@dirty_decay_ms:0", "jemalloc@dirty_decay_ms:1000",
        "jemalloc@background_thread:true", "jemalloc@background_thread:true,dirty_decay_ms:0",
        "jemalloc@background_thread:true,dirty_decay_ms:1000"]
    assert space.size() == 7
    spec = next(s for s in space.configurations() if s.text() == "jemalloc@dirty_decay_ms:1000")
    assert space.params(spec) == {"allocator": "jemalloc", "jemalloc.background_thread": "default",
                                  "jemalloc.dirty_decay_ms": "1000"}
    assert space.spec(space.params(spec)) == spec


@pytest.mark.parametrize(("raw", "message"), [
    ({"glibc": {"arenas": [2]}}, "space.yaml: glibc: glibc has no setting 'arenas' (allowed: arena_max, "),
    ({"glibc": {"arena_max": [0]}}, "space.yaml: glibc: arena_max:0: expected an integer of at least 1"),
    ({"glibc": {"arena_max": []}}, "space.yaml: glibc.arena_max: expected at least one value"),
    ({"glibc": {"arena_max": [2, 2]}}, "space.yaml: glibc.arena_max: 2 is listed twice"),
    ({"ptmalloc": {}}, "space.yaml: 'ptmalloc': expected an allocator name (jemalloc, system:jemalloc, "),
    ([1, 2], "space.yaml: expected a mapping of allocator names"),
])
def test_a_space_a_run_would_refuse_is_refused_before_any_trial(raw: object, message: str) -> None:
    with pytest.raises(BadInput) as refused:
        build_space(raw, "space.yaml")  # type: ignore[arg-type]
    assert refused.value.message.startswith(message)


def test_the_default_space_has_the_settings_that_matter_for_a_jvm() -> None:
    space = default_space(["glibc", "jemalloc"])
    assert space.allocators["glibc"]["arena_max"] == ["default", "1", "2", "4"]
    assert space.allocators["jemalloc"]["background_thread"] == ["default", "true"]
    assert space.size() == 8 + 12


def test_churn_throughput_counts_every_churn_step_of_a_scenario() -> None:
    assert churn_seconds(load_scenario(resolve_scenario("churn-arenas")).steps) == 3.0
    assert churn_seconds(load_scenario(resolve_scenario("arrow-intvector")).steps) == 0.0


def _result(spec: str, memory: list[float], speed: list[float]) -> TrialResult:
    return TrialResult(spec=spec, status="ok", error=None, run_dir=f"/runs/{spec}", runs=[],
                       memory={"idle_anon_rss_bytes": Spread.of(memory), "peak_anon_rss_bytes": Spread.of(memory)},
                       speed=Spread.of(speed), snapshots={}, environment={"MALLOC_CONF": spec} if "@" in spec else {})


def _trial(number: int, spec: str, memory: list[float], speed: list[float]) -> Trial:
    result = _result(spec, memory, speed)
    return Trial(number, spec, spec.partition("@")[0], {}, "COMPLETE", "host:1", result.memory[
        "idle_anon_rss_bytes"].median, result.speed.median if result.speed else None, result)


TRIALS = [
    _trial(0, "glibc", [120 * MIB, 125 * MIB], [3000, 3100]),
    _trial(1, "glibc@arena_max:2", [90 * MIB, 92 * MIB], [2900, 3050]),
    _trial(2, "jemalloc", [130 * MIB, 131 * MIB], [6000, 6400]),
    _trial(3, "jemalloc@background_thread:true", [100 * MIB, 101 * MIB], [5900, 6300]),
]


def test_the_recommendation_gains_most_over_default_glibc_and_names_what_mattered() -> None:
    front = [1, 2, 3]  # Optuna's best_trials for these values
    rec = recommend(TRIALS, front, "idle", "throughput")
    assert rec is not None and rec.spec == "jemalloc@background_thread:true"
    vs_glibc, vs_jemalloc = rec.gains
    assert (vs_glibc.against, vs_glibc.memory_pct, vs_glibc.speed_pct) == ("glibc", 16.67, 96.67)
    assert vs_glibc.memory_beyond_noise and vs_glibc.speed_beyond_noise
    assert (vs_jemalloc.against, vs_jemalloc.memory_pct) == ("jemalloc", 23.08)
    assert not vs_jemalloc.speed_beyond_noise  # 5900..6300 against 6000..6400
    assert rec.mattered_most is not None
    assert (rec.mattered_most.change, rec.mattered_most.against) == ("background_thread:true", "jemalloc")
    assert rec.mattered_most.memory_bytes == 30 * MIB


def test_the_front_is_optunas_pareto_front_of_the_trials(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    for trial in TRIALS:
        study.add_trial(optuna.trial.create_trial(values=[trial.memory, trial.speed]))
    assert sorted(t.number for t in study.best_trials) == [1, 2, 3]  # jemalloc: the fastest


def _tune_result() -> TuneResult:
    front = [1, 2, 3]
    return TuneResult(target={"scenario": "churn-arenas"}, study={"name": "s", "storage": "sqlite:///x",
                                                                   "mode": "grid", "sampler": "queue"},
                      space={"glibc": {"arena_max": ["default", "2"]}}, repeat=2, memory="idle",
                      speed_kind="throughput", trials=TRIALS, front=front,
                      recommendation=recommend(TRIALS, front, "idle", "throughput"))


def test_tune_json_reads_back_as_written() -> None:
    result = _tune_result()
    again = from_json(to_json(result))
    assert again == result
    assert to_json(result).startswith('{\n  "schema": "workbench.tune/1"')


def test_the_page_has_the_front_chart_the_recommendation_and_a_table_per_allocator() -> None:
    page = render_html(_tune_result())
    assert page.count('<table class="allocator"') == 2
    assert '<figure id="front-chart"><svg' in page
    assert "<strong>jemalloc@background_thread:true</strong> (trial 3)" in page
    assert "MALLOC_CONF=jemalloc@background_thread:true" in page


class _FakeTarget:
    name = "fake"
    speed = "throughput"

    def __init__(self) -> None:
        self.ran: list[str] = []

    def check(self, spec: str) -> None:
        pass

    def run(self, spec: str, run_dir: Path, repeat: int, on_run: object) -> TrialResult:
        self.ran.append(spec)
        memory = {"glibc": 120, "glibc@arena_max:2": 90, "jemalloc": 130}[spec] * MIB
        return _result(spec, [memory] * repeat, [1000.0 if "arena" in spec else 2000.0] * repeat)


def test_a_grid_runs_every_configuration_once_from_the_queue(tmp_path: Path) -> None:
    space = build_space({"glibc": {"arena_max": ["default", 2]}, "jemalloc": {}}, "space")
    config = StudyConfig(target={"scenario": "fake"}, space=space.to_json(), repeat=2, memory="idle",
                         speed="throughput", mode="grid", budget_trials=None)
    study = create_study(f"sqlite:///{tmp_path / 'study.db'}", "s", config, space)
    target = _FakeTarget()
    done, interrupted = run_trials(study, config, target, tmp_path, None, Progress())
    assert (done, interrupted) == (3, None)
    assert sorted(target.ran) == ["glibc", "glibc@arena_max:2", "jemalloc"]
    assert sorted(r.spec for _, r in finished(study)) == sorted(target.ran)
    assert [t.values for t in study.get_trials()] == [[120 * MIB, 2000.0], [90 * MIB, 1000.0], [130 * MIB, 2000.0]]
    # A second worker finds the queue empty and runs nothing.
    assert run_trials(study, config, _FakeTarget(), tmp_path / "second", None, Progress()) == (0, None)


runner = CliRunner()


@pytest.mark.parametrize(("args", "message"), [
    (["tune"], "workbench: tune: expected a scenario (workbench tune intvector-churn-threads) or a program after --"),
    (["tune", "churn-arenas", "--join", "sqlite:///x.db"], "workbench: --join: the study names what to run; give "
                                                          "no scenario or program with it"),
    (["tune", "churn-arenas", "--budget", "soon"], "workbench: --budget soon: expected a number of trials (20) or a "
                                                   "duration (30m, 2h)"),
    (["tune", "churn-arenas", "--memory", "a/b"], "workbench: --memory: "),
    (["tune", "churn-arenas", "--allocators", "glibc,ptmalloc"], "workbench: --allocators: 'ptmalloc': expected "
                                                                  "allocator names"),
])
def test_usage_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output


class _AnyTarget(_FakeTarget):
    def run(self, spec: str, run_dir: Path, repeat: int, on_run: object) -> TrialResult:
        self.ran.append(spec)
        memory = (100 + len(spec)) * MIB  # any configuration: a figure of its own
        return _result(spec, [memory] * repeat, [1000.0 + 10 * spec.count(":")] * repeat)


def test_a_space_larger_than_the_budget_is_sampled_after_each_allocators_defaults(tmp_path: Path) -> None:
    from workbench.tune.session import _mode

    space = build_space({"glibc": {"arena_max": ["default", 1, 2, 4]},
                         "jemalloc": {"background_thread": ["default", True], "dirty_decay_ms": ["default", 0, 1000]}},
                        "space")
    assert space.size() == 10 and _mode(space, 5) == ("sampler", 5) and _mode(space, 10) == ("grid", None)
    config = StudyConfig(target={"scenario": "fake"}, space=space.to_json(), repeat=1, memory="idle",
                         speed="throughput", mode="sampler", budget_trials=5)
    study = create_study(f"sqlite:///{tmp_path / 'study.db'}", "s", config, space)
    target = _AnyTarget()
    assert run_trials(study, config, target, tmp_path, None, Progress()) == (5, None)
    assert target.ran[:2] == ["glibc", "jemalloc"]  # the references, queued first
    assert set(target.ran) <= {spec.text() for spec in space.configurations()}
    assert len(study.get_trials()) == 5 and all(t.state.name == "COMPLETE" for t in study.get_trials())
