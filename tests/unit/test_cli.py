"""The command line in-process (typer's CliRunner): usage errors, exit codes and one-line messages, no JVM."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from workbench.cli import app, main
from workbench.scenario import bundled_scenarios

runner = CliRunner()


def invoke(*args: str) -> Result:
    result = runner.invoke(app, list(args))
    print(f"$ workbench {' '.join(args)}\n--- exit {result.exit_code}\n--- stdout\n{result.stdout}\n"
          f"--- stderr\n{result.stderr}")
    return result


def assert_one_line_error(result: Result, exit_code: int, *parts: str) -> None:
    assert result.exit_code == exit_code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("workbench: ")
    for part in parts:
        assert part in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_bad_hold_names_hold() -> None:
    assert_one_line_error(invoke("run", "arrow-intvector", "--hold", "a while"), 2,
                          "--hold: expected a duration such as 500ms or 1s, got 'a while'")


def test_exec_interval_errors_name_interval_not_hold() -> None:
    assert_one_line_error(invoke("exec", "--interval", "abc", "--", "java", "-version"), 2,
                          "--interval: expected a duration", "'abc'")
    assert_one_line_error(invoke("exec", "--interval", "0", "--", "java", "-version"), 2,
                          "--interval: expected a duration greater than 0", "'0'")


def test_attach_interval_and_duration_errors_name_their_option() -> None:
    assert_one_line_error(invoke("attach", "1", "--interval", "soon"), 2, "--interval:")
    assert_one_line_error(invoke("attach", "1", "--duration", "forever"), 2, "--duration:")


@pytest.mark.parametrize("label", ["../escape", "a/b", ".hidden", "", "x" * 129])
def test_snapshot_refuses_a_label_that_could_leave_the_run_directory(label: str) -> None:
    assert_one_line_error(invoke("snapshot", "1", "--label", label), 2, "--label: expected a label")


def test_snapshot_of_a_process_no_exec_runs_says_so() -> None:
    assert_one_line_error(invoke("snapshot", "999999999", "--label", "ok"), 2,
                          "snapshot: no `workbench exec` is running process 999999999")


def test_exec_refuses_a_program_that_is_not_java() -> None:
    assert_one_line_error(invoke("exec", "--", "true"), 2, "exec: true: expected a java launcher")
    assert_one_line_error(invoke("exec", "--", "no-such-program-here"), 2, "no-such-program-here: command not found")


def test_attach_to_a_missing_process_exits_2() -> None:
    assert_one_line_error(invoke("attach", "999999999"), 2, "attach: no process 999999999")


def test_unknown_scenario_and_allocator_exit_2_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert_one_line_error(invoke("run", "no-such-scenario", "--out", str(out)), 2,
                          "no-such-scenario: no bundled scenario", "arrow-intvector")
    assert_one_line_error(invoke("run", "arrow-intvector", "--allocator", "hoard", "--out", str(out)), 2,
                          "--allocator hoard: unknown allocator")
    assert not out.exists()


def test_json_into_a_missing_directory_exits_2(tmp_path: Path) -> None:
    assert_one_line_error(invoke("run", "arrow-intvector", "--json", str(tmp_path / "missing" / "r.json")), 2,
                          "--json", "does not exist")


def test_report_of_a_directory_without_a_report_exits_2(tmp_path: Path) -> None:
    assert_one_line_error(invoke("report", str(tmp_path)), 2, f"{tmp_path}: no report.json there")


def test_validate_passes_every_bundled_scenario_and_names_the_line_of_a_bad_one(tmp_path: Path) -> None:
    files = [str(path) for path in bundled_scenarios().values()]
    result = invoke("validate", *files)
    assert result.exit_code == 0
    assert result.stdout.count(": ok (") == len(files)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: d\nsteps:\n  - root_allocator: {}\n  - allocate: {vector: v, count: -5}\n")
    result = invoke("validate", str(bad))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{bad}:5: steps[1].allocate.count: input should be greater than or equal to 0, got -5"


def test_every_command_has_help_from_its_docstring() -> None:
    for command, words in [("run", "Run a scenario in a JVM"), ("exec", "unmodified JVM program"),
                           ("attach", "already running"), ("compare", "once per allocator"),
                           ("diff", "snapshot by snapshot"), ("doctor", "doctor"), ("build", "jemalloc")]:
        result = invoke(command, "--help")
        assert result.exit_code == 0, command
        assert words.lower() in " ".join(result.stdout.lower().split()), command


def test_main_returns_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    assert "arrow-intvector" in capsys.readouterr().out
    assert main(["run", "arrow-intvector", "--hold", "soon"]) == 2
    assert capsys.readouterr().err.strip() == "workbench: --hold: expected a duration such as 500ms or 1s, got 'soon'"
    assert main(["no-such-command"]) == 2


def _saved(directory: Path, scenario_name: str = "fabricated") -> Path:
    import dataclasses

    from tests.unit.reports import jemalloc_report
    from workbench.report.model import ScenarioSection, report_to_json

    report = dataclasses.replace(jemalloc_report(), scenario=ScenarioSection(scenario_name, "d", "s.yaml"))
    directory.mkdir()
    (directory / "report.json").write_text(report_to_json(report))
    return directory


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5"])
def test_diff_fail_over_must_be_a_finite_positive_percentage(tmp_path: Path, value: str) -> None:
    a = _saved(tmp_path / "a")
    assert_one_line_error(invoke("diff", str(a), str(a), "--fail-over", value), 2,
                          "--fail-over", "expected a finite percentage of at least 0")


def test_diff_refuses_runs_of_different_scenarios_unless_asked(tmp_path: Path) -> None:
    a, b = _saved(tmp_path / "a", "arrow-intvector"), _saved(tmp_path / "b", "netty-vs-unsafe")
    assert_one_line_error(invoke("diff", str(a), str(b)), 2, "'arrow-intvector'", "'netty-vs-unsafe'",
                          "--allow-different")
    result = invoke("diff", str(a), str(b), "--allow-different", "--fail-over", "10")
    assert result.exit_code == 0 and "B - A" in result.stdout


def test_json_refuses_a_device_the_scenario_itself_and_the_package(tmp_path: Path) -> None:
    from workbench.cli.options import PACKAGE_DIR

    assert_one_line_error(invoke("run", "arrow-intvector", "--json", "/dev/null"), 2,
                          "--json /dev/null: exists and is not a regular file")
    scenario = tmp_path / "my.yaml"
    scenario.write_text("name: mine\ndescription: d\nsteps: [gc]\n")
    assert_one_line_error(invoke("run", str(scenario), "--json", str(scenario)), 2, "is the scenario file itself")
    assert scenario.read_text() == "name: mine\ndescription: d\nsteps: [gc]\n"
    link = tmp_path / "link.json"
    link.symlink_to(scenario)
    assert_one_line_error(invoke("run", str(scenario), "--json", str(link)), 2, "exists and is not a regular file")
    inside = PACKAGE_DIR / "report.json"
    assert_one_line_error(invoke("run", "arrow-intvector", "--json", str(inside)), 2, "inside the workbench's own")
    assert not inside.exists() and Path("/dev/null").is_char_device()


@pytest.mark.parametrize(("key", "value", "why"), [
    ("jvm", "{options: ['-XX:OnError=touch /tmp/pwned']}", "runs a program"),
    ("jvm", "{options: ['-Xlog:gc:file=/tmp/elsewhere.log']}", "writes a file"),
    ("jvm", "{options: ['-agentpath:/tmp/libevil.so']}", "loads native code"),
    ("jvm", "{options: ['@/tmp/argfile']}", "reads a file of options"),
    ("allocator", "/tmp/libz.so.1", "loads native code (a library path)"),
    ("malloc_conf", "'narenas:2,prof_prefix:/tmp/elsewhere'", "writes profile dumps to a path"),
])
def test_a_scenario_file_cannot_run_programs_load_code_or_write_elsewhere(tmp_path: Path, key: str, value: str,
                                                                          why: str) -> None:
    scenario = tmp_path / "shared.yaml"
    scenario.write_text(f"name: shared\ndescription: d\n{key}: {value}\nsteps: [gc]\n")
    out = tmp_path / "run"
    for command in (["run", str(scenario), "--out", str(out)], ["validate", str(scenario)]):
        result = invoke(*command)
        assert result.exit_code == 2
        line = result.stderr.strip()
        assert line.count("\n") == 0 and why in line and "--trust" in line and f"{scenario}: " in line, line
    assert not out.exists()
    trusted = invoke("validate", "--trust", str(scenario))
    if key == "allocator":  # trusted, it is checked as a run checks it: there is no such file
        assert trusted.exit_code == 2 and "/tmp/libz.so.1: no such file" in trusted.stderr
    else:
        assert trusted.exit_code == 0


def test_the_same_values_are_fine_from_the_command_line(tmp_path: Path) -> None:
    from workbench.scenario import load_scenario
    from workbench.scenario.trust import untrusted_values

    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\ndescription: d\nallocator: /tmp/libmine.so\nmalloc_conf: prof_prefix:/tmp/p\n"
                        "jvm: {options: ['-Xmx1g', '-XX:MaxDirectMemorySize=512m', '-Dio.netty.x=1']}\nsteps: [gc]\n")
    loaded = load_scenario(scenario)
    assert [u.field for u in untrusted_values(loaded)] == ["allocator", "malloc_conf"]
    assert untrusted_values(loaded, allocator_from_cli=True, malloc_conf_from_cli=True) == []


def test_a_bad_java_home_from_the_environment_names_java_home(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "arrow-intvector", "--out", str(tmp_path / "run")],
                           env={"JAVA_HOME": str(tmp_path)})
    assert_one_line_error(result, 2, f"JAVA_HOME {tmp_path}: no lib/server/libjvm.so there")
    assert "--java-home" not in result.stderr


@pytest.mark.parametrize(("timeout", "expected"), [
    ("0.0001", "expected a duration of at least 1ms (or 0), got 0.0001"),
    ("0", "input should be greater than 0"),
    ("1.0e+300", "expected a duration of at most 30 days"),
    ("1000000h", "expected a duration of at most 30 days"),
    (".inf", "expected a finite duration of at least 0, got inf"),
])
def test_durations_a_run_cannot_handle_are_refused_by_validate(tmp_path: Path, timeout: str, expected: str) -> None:
    scenario = tmp_path / "t.yaml"
    scenario.write_text(f"name: t\ndescription: d\ntimeout: {timeout}\nsteps: [gc]\n")
    result = invoke("validate", str(scenario))
    assert result.exit_code == 2 and result.stderr.strip().startswith(f"{scenario}:3: timeout: ")
    assert expected in result.stderr


def test_repeat_out_of_range_is_one_line_naming_the_option() -> None:
    for command, value in (("run", "0"), ("compare", "101")):
        extra = ["-a", "glibc"] if command == "compare" else []
        assert_one_line_error(invoke(command, "arrow-intvector", *extra, "--repeat", value), 2,
                              f"--repeat: expected a number of runs from 1 to 100, got {value}")
    # exec refuses it before anything is built or started.
    assert_one_line_error(invoke("exec", "--repeat", "0", "--", "java", "-version"), 2,
                          "--repeat: expected a number of runs from 1 to 100, got 0")
