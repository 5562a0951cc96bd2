"""Damaged run directories given to `workbench report` and `workbench diff`: each is exit 2 and one line naming the
file (and the line of samples.jsonl) and what is wrong, never a traceback; a last sample cut short by a killed run is
left out with a note.

The cases that could regress into a memory bomb (nesting 100,000 deep, a 10 GiB file) run the real CLI in a child
process under an address-space limit, so that a regression cannot take the machine down; the others call main().
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit import reports
from workbench.cli import main
from workbench.figures import SAMPLE_COLUMNS
from workbench.report.model import report_to_dict, report_to_json

ROOT = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 2 << 30
_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (%d, %d))
from workbench.cli import main
sys.exit(main(sys.argv[1:]))
""" % (LIMIT_BYTES, LIMIT_BYTES)
SAMPLE_ROWS = 3


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """The CLI on some arguments; in a child process under RLIMIT_AS when the input could be a memory bomb."""

    def run(*args: str | Path, bomb: bool = False) -> Result:
        if bomb:
            env = {**os.environ,
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            done = subprocess.run([sys.executable, "-c", _CHILD, *map(str, args)], capture_output=True, text=True,
                                  env=env, timeout=120, stdin=subprocess.DEVNULL)
            return Result(done.returncode, done.stdout, done.stderr)
        capsys.readouterr()
        code = main([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def one_line_error(result: Result) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def sample(t_ms: float) -> dict[str, Any]:
    return {column: t_ms if column in ("t_ms", "cost_us") else int(t_ms) * 1000 for column in SAMPLE_COLUMNS}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory as `workbench run` leaves it: report.json and three samples."""
    path = tmp_path / "run"
    path.mkdir()
    (path / "report.json").write_text(report_to_json(reports.jemalloc_report()))
    (path / "samples.jsonl").write_text("".join(json.dumps(sample(100.0 * n)) + "\n" for n in range(SAMPLE_ROWS)))
    return path


def with_report(run_dir: Path, change: Callable[[dict[str, Any]], object]) -> Path:
    data = report_to_dict(reports.jemalloc_report())
    change(data)
    (run_dir / "report.json").write_text(json.dumps(data))
    return run_dir / "report.json"


def test_an_undamaged_run_directory_renders(cli: Cli, run_dir: Path) -> None:
    result = cli("report", run_dir, "--format", "html")
    assert (result.returncode, result.stderr) == (0, "")
    assert f"{SAMPLE_ROWS} samples; dashed lines mark the snapshots." in result.stdout
    assert json.loads(cli("report", run_dir, "--format", "json").stdout) == report_to_dict(
        reports.jemalloc_report())


@pytest.mark.parametrize(("content", "expected"), [
    ("[1, 2]", "report.json: a JSON list (expected a workbench report: a JSON object with schema "
               "'workbench.report/1')"),
    ('"a report"', "report.json: a JSON string (expected a workbench report"),
    ("null", "report.json: a JSON null (expected a workbench report"),
    ('{"schema": "workbench.report/1", "snapshots": [{"lab', "report.json:1: not valid JSON: Unterminated string"),
    ('{"schema": "workbench.report/1", "x": ' + "9" * 5000 + "}",
     "report.json: not valid JSON: Exceeds the limit (4300 digits) for integer string conversion"),
    ("", "report.json:1: not valid JSON: Expecting value"),
])
def test_a_report_json_that_is_not_a_report_is_one_line(cli: Cli, run_dir: Path, content: str,
                                                        expected: str) -> None:
    (run_dir / "report.json").write_text(content)
    line = one_line_error(cli("report", run_dir))
    assert line.startswith(f"workbench: {run_dir / 'report.json'}")
    assert expected in line


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000,
                                     '{"schema": "workbench.report/1", "x": ' + "[" * 500 + "]" * 500 + "}"])
def test_a_report_json_nested_too_deep_is_one_line(cli: Cli, run_dir: Path, content: str) -> None:
    (run_dir / "report.json").write_text(content)
    assert one_line_error(cli("report", run_dir, bomb=True)) == (
        f"workbench: {run_dir / 'report.json'}: nested more than 64 levels deep (expected a workbench report.json)")


def test_a_report_json_that_is_not_utf8_is_one_line(cli: Cli, run_dir: Path) -> None:
    (run_dir / "report.json").write_bytes(b'{"schema": "workbench.report/1", "x": "\xff"}')
    assert one_line_error(cli("report", run_dir)) == (
        f"workbench: {run_dir / 'report.json'}: not UTF-8 text (invalid start byte at byte 39; expected a workbench "
        "report.json)")


def test_a_huge_report_json_is_refused_before_it_is_read(cli: Cli, run_dir: Path) -> None:
    with open(run_dir / "report.json", "wb") as file:
        file.truncate(10 << 30)  # sparse: 10 GiB that take no disk
    assert one_line_error(cli("report", run_dir, bomb=True)) == (
        f"workbench: {run_dir / 'report.json'}: 10,737,418,240 bytes (expected a workbench report.json of at most "
        "67,108,864 bytes)")


def test_a_report_json_of_millions_of_values_is_refused_before_it_is_parsed(cli: Cli, run_dir: Path) -> None:
    # 12 MB that json.loads would turn into 3 million dicts (about 200 MB).
    (run_dir / "report.json").write_text('{"schema": "workbench.report/1", "x": [' + "{}," * 3_000_000 + "{}]}")
    assert one_line_error(cli("report", run_dir, bomb=True)) == (
        f"workbench: {run_dir / 'report.json'}: more than 5,000,000 values (expected a workbench report.json; a "
        "run's has about 600 a snapshot)")


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.update(schema="workbench.report/2"),
     "schema 'workbench.report/2' (expected 'workbench.report/1'; written by another version of the workbench)"),
    (lambda d: d.pop("schema"), "no schema field (expected 'workbench.report/1'; not a workbench report)"),
    (lambda d: d.update(schema="memray/1"),
     "schema 'memray/1' (expected 'workbench.report/1'; not a workbench report)"),
    (lambda d: d["snapshots"][1].update(t_ms="soon"),
     "snapshots[1].t_ms: input should be a valid number, unable to parse string as a number, got 'soon' "
     "(expected a workbench report)"),
    (lambda d: d.update(snapshots="none"),
     "snapshots: input should be a valid list, got 'none' (expected a workbench report)"),
    (lambda d: d["snapshots"][0]["arrow"].update(allocated_bytes=1 << 64),
     "snapshots[0].arrow.allocated_bytes: an integer beyond 64 bits (expected a workbench report.json)"),
    (lambda d: d.pop("jvm"), "jvm: field required (expected a workbench report)"),
    (lambda d: d.update(repeats={"count": 2, "runs": ["a", "b"], "statuses": ["ok", "ok"], "shown": 0, "figures": [
        {"label": "baseline", "figure": "[/oops]", "values": [1, 2], "median": 1, "min": 1, "max": 2}]}),
     "repeats.figures[0].figure: expected a figure's key such as process.anon_rss_bytes, got '[/oops]'"),
])
def test_a_report_json_with_a_wrong_schema_or_field_is_one_line(
        cli: Cli, run_dir: Path, change: Callable[[dict[str, Any]], object], expected: str) -> None:
    report_path = with_report(run_dir, change)
    assert one_line_error(cli("report", run_dir)) == f"workbench: {report_path}: {expected}"


def test_diff_names_the_damaged_run(cli: Cli, run_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.json").write_text("[]")
    assert one_line_error(cli("diff", run_dir, other)) == (
        f"workbench: {other / 'report.json'}: a JSON list (expected a workbench report: a JSON object with schema "
        "'workbench.report/1')")


def test_run_directories_that_are_missing_loops_or_not_directories(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert one_line_error(cli("report", missing)) == (
        f"workbench: {missing}: no such run directory (expected a run directory written by `workbench run`, or "
        "its report.json)")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert one_line_error(cli("diff", loop, loop)) == (
        f"workbench: {loop}: cannot read the run directory: Too many levels of symbolic links")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert one_line_error(cli("report", empty)) == (
        f"workbench: {empty}: no report.json there (expected a run directory written by `workbench run`)")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a run\n")
    assert one_line_error(cli("report", notes)).startswith(f"workbench: {notes}:1: not valid JSON")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert one_line_error(cli("report", fifo)) == (
        f"workbench: {fifo}: not a regular file (expected a workbench report.json)")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "report.json").mkdir()
    assert one_line_error(cli("report", inner)) == (
        f"workbench: {inner / 'report.json'}: not a regular file (expected a workbench report.json)")


@pytest.mark.parametrize(("line", "expected"), [
    ("[1, 2]", "a JSON list (expected a sample: a JSON object with t_ms and the sampled figures)"),
    ('"sample"', "a JSON string (expected a sample: a JSON object with t_ms and the sampled figures)"),
    ("garbage here", "not valid JSON: Expecting value at column 1 (expected a sample: a JSON object)"),
    ('{"step": 1}', "t_ms: expected the sample's time in milliseconds, missing"),
    ('{"t_ms": "later"}', "t_ms: expected the sample's time in milliseconds, got 'later'"),
    ('{"t_ms": 1, "rss_bytes": "many"}', "rss_bytes: expected an integer or null, got 'many'"),
    ('{"t_ms": 1, "rss_bytes": 1.5}', "rss_bytes: expected an integer or null, got 1.5"),
    ("[" * 60_000, "nested more than 64 levels deep (expected a sample: a JSON object)"),
    ("[" * 100_000, "a line of 100,000 characters (expected a sample of at most 65,536)"),
])
def test_a_damaged_sample_line_is_named_by_its_line_number(cli: Cli, run_dir: Path, line: str,
                                                          expected: str) -> None:
    samples = run_dir / "samples.jsonl"
    rows = samples.read_text().splitlines()
    samples.write_text("\n".join([rows[0], line, *rows[1:]]) + "\n")
    result = cli("report", run_dir, "--format", "html", bomb=line.startswith("["))
    assert one_line_error(result) == f"workbench: {samples}:2: {expected}"


def test_a_last_sample_cut_short_by_a_killed_run_is_left_out_with_a_note(cli: Cli, run_dir: Path) -> None:
    samples = run_dir / "samples.jsonl"
    with samples.open("a") as file:
        file.write('{"t_ms": 300.0, "step": 2, "rss_b')
    result = cli("report", run_dir, "--format", "html")
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stderr) == (0, (
        f"workbench: note: {samples}:{SAMPLE_ROWS + 1}: the last line was cut short (the run was killed while "
        "writing it); the timeline leaves it out\n"))
    assert f"{SAMPLE_ROWS} samples; dashed lines mark the snapshots." in result.stdout
    # The same line anywhere but last, or ended by a newline, is damage.
    samples.write_text(samples.read_text() + "\n")
    assert one_line_error(cli("report", run_dir, "--format", "html")).startswith(
        f"workbench: {samples}:{SAMPLE_ROWS + 1}: not valid JSON: Unterminated string")


def test_samples_that_are_not_a_file_or_not_utf8(cli: Cli, run_dir: Path) -> None:
    samples = run_dir / "samples.jsonl"
    samples.write_bytes(b'{"t_ms": 1}\n\xff\n')
    assert one_line_error(cli("report", run_dir, "--format", "html")) == (
        f"workbench: {samples}: not UTF-8 text (invalid start byte at byte 12; expected a run's samples.jsonl)")
    samples.unlink()
    samples.symlink_to(samples)
    assert one_line_error(cli("report", run_dir, "--format", "html")) == (
        f"workbench: {samples}: cannot read a run's samples.jsonl: Too many levels of symbolic links")
    samples.unlink()
    with open(samples, "wb") as file:
        file.truncate(1 << 40)
    assert one_line_error(cli("report", run_dir, "--format", "html", bomb=True)) == (
        f"workbench: {samples}: 1,099,511,627,776 bytes (expected a run's samples.jsonl of at most 134,217,728 "
        "bytes)")
