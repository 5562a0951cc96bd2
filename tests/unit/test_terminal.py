"""The CLI on an ASCII-only terminal and a pipe, with non-ASCII and undecodable file names, with labels and
descriptions that look like rich markup, and under an early Ctrl-C: real processes of the CLI, no JVM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from tests.unit import reports
from workbench.report.compare import ComparedRun, render_compare
from workbench.report.model import report_to_dict

ROOT = Path(__file__).resolve().parents[2]
ASCII = {"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": "ascii"}
MARKUP = "[/oops] [bold red]x"
# What the text of a hostile run directory shows: non-ASCII, rich markup and an emoji code.
DESCRIPTION = f"\u00b5s \u2013 {MARKUP} \u0442\u0435\u0441\u0442 :thumbs_up:"
LABEL = "[/oops]"


def workbench(*args: str | bytes | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, **(env or {}),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, env=environment,
                          timeout=120, stdin=subprocess.DEVNULL)


def ascii_ok(result: subprocess.CompletedProcess[bytes], code: int = 0) -> tuple[str, str]:
    """stdout and stderr of a command on an ASCII terminal: the exit code, no traceback, nothing but ASCII."""
    stdout, stderr = result.stdout.decode("ascii"), result.stderr.decode("ascii")  # raises on any other byte
    assert "Traceback" not in stderr and "UnicodeEncodeError" not in stderr, stderr
    assert result.returncode == code, stderr
    return stdout, stderr


@pytest.fixture
def hostile_run(tmp_path: Path) -> Path:
    """A run directory whose description and first label are non-ASCII or rich markup."""
    data = report_to_dict(reports.jemalloc_report())
    data["scenario"]["description"] = DESCRIPTION
    data["snapshots"][1]["label"] = LABEL
    data["baseline"] = data["snapshots"][0]["label"]
    path = tmp_path / "run"
    path.mkdir()
    (path / "report.json").write_text(json.dumps(data))
    return path


def test_report_on_an_ascii_pipe_degrades_and_prints_markup_literally(hostile_run: Path) -> None:
    stdout, stderr = ascii_ok(workbench("report", hostile_run, env=ASCII))
    assert stderr == ""
    assert f"us - {MARKUP} \\u0442\\u0435\\u0441\\u0442 :thumbs_up:" in stdout  # µ, – and Cyrillic degraded
    assert LABEL in stdout and "\n* Arrow accounts 524,288 B at '[/oops]' for 412,500 B" in stdout
    assert "+-" in stdout  # the table's box in ASCII


def test_diff_on_an_ascii_pipe_prints_labels_and_names_literally(hostile_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "[bold]\u0434\u0440\u0443\u0433\u043e\u0439"
    other.mkdir()
    (other / "report.json").write_bytes((hostile_run / "report.json").read_bytes())
    stdout, _ = ascii_ok(workbench("diff", hostile_run, other, env=ASCII))
    assert f"A: {hostile_run}\nB: {tmp_path}/[bold]\\u0434\\u0440\\u0443\\u0433\\u043e\\u0439\n" in stdout
    assert f"|{LABEL}" in stdout.replace(" ", "")


def test_markdown_and_html_stay_utf8_documents_on_an_ascii_terminal(hostile_run: Path) -> None:
    for fmt in ("md", "html"):
        result = workbench("report", hostile_run, "--format", fmt, env=ASCII)
        assert (result.returncode, result.stderr) == (0, b"")
        assert "\u0442\u0435\u0441\u0442" in result.stdout.decode("utf-8")


def test_validate_scenarios_and_help_on_an_ascii_terminal(tmp_path: Path) -> None:
    scenario = tmp_path / "\u0442\u0435\u0441\u0442.yaml"
    scenario.write_text(f'name: t\ndescription: "{DESCRIPTION}"\nsteps: [gc, {{snapshot: end}}]\n')
    stdout, _ = ascii_ok(workbench("validate", scenario, env=ASCII))
    assert stdout == f"{tmp_path}/\\u0442\\u0435\\u0441\\u0442.yaml: ok (t, 2 steps, 0 expectations)\n"
    scenario.write_text('name: t\ndescription: d\nsteps: [{snapshot: "[/oops]"}]\n')
    _, stderr = ascii_ok(workbench("validate", scenario, env=ASCII), code=2)
    assert stderr.startswith(f"{tmp_path}/\\u0442\\u0435\\u0441\\u0442.yaml:3: steps[0].snapshot: string should "
                             "match pattern") and stderr.endswith(", got '[/oops]'\n")
    assert stderr.count("\n") == 1
    stdout, _ = ascii_ok(workbench("scenarios", env=ASCII))
    assert stdout.split()[:2] == ["name", "description"] and "\n arrow-intvector " in stdout
    stdout, _ = ascii_ok(workbench("--help", env=ASCII))
    assert "Usage: workbench [OPTIONS] COMMAND" in stdout and "+- Commands -" in stdout


def test_file_names_with_undecodable_bytes_are_one_line(tmp_path: Path) -> None:
    name = os.fsencode(tmp_path) + b"/\xff\xfe.yaml"
    for env in ({"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}, ASCII):
        _, stderr = ascii_ok(workbench("validate", name, env=env), code=2)
        assert stderr == f"{tmp_path}/\\udcff\\udcfe.yaml: cannot read a YAML scenario file: No such file or directory\n"
        _, stderr = ascii_ok(workbench("report", name, env=env), code=2)
        assert stderr == (f"workbench: {tmp_path}/\\udcff\\udcfe.yaml: no such run directory (expected a run "
                          "directory written by `workbench run`, or its report.json)\n")
    with open(name, "w") as file:
        file.write("name: t\ndescription: d\nsteps: [gc]\n")
    stdout, _ = ascii_ok(workbench("validate", name, env=ASCII))
    assert stdout == f"{tmp_path}/\\udcff\\udcfe.yaml: ok (t, 1 steps, 0 expectations)\n"
    # A UTF-8 stdout gives the name's own bytes back.
    result = workbench("validate", name, env={"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
    assert (result.returncode, result.stdout) == (0, name + b": ok (t, 1 steps, 0 expectations)\n")


def test_compare_prints_a_run_label_that_looks_like_markup_literally() -> None:
    console = Console(file=StringIO(), width=200)
    render_compare([ComparedRun(LABEL, reports.jemalloc_report()),
                    ComparedRun("[bold]glibc", reports.glibc_report())], console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert f"{LABEL} " in text and "[bold]glibc" in text


# The child writes one byte when the interpreter has started and imported workbench.cli, then is the console script
# (`from workbench.cli import main; sys.exit(main())`): before that, Ctrl-C is Python's own and no workbench code
# has run.
_CHILD = ("import os, sys\nfrom workbench.cli import main\nos.write(int(sys.argv[1]), b'!')\n"
          "sys.exit(main(sys.argv[2:]))\n")


@pytest.mark.parametrize("delay", [0, 0.05, 0.1, 0.2])
@pytest.mark.parametrize("command", ["scenarios", "validate", "report", "diff", "help", "run"])
def test_an_early_ctrl_c_exits_130_quietly(tmp_path: Path, hostile_run: Path, command: str, delay: float) -> None:
    args = {"scenarios": ["scenarios"], "validate": ["validate", str(ROOT / "scenarios" / "arrow-intvector.yaml")],
            "report": ["report", str(hostile_run)], "diff": ["diff", str(hostile_run), str(hostile_run)],
            "help": ["--help"], "run": ["run", "arrow-intvector", "--out", str(tmp_path / "out")]}[command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    wait = delay
    for _ in range(5):
        ready, ready_w = os.pipe()
        process = subprocess.Popen([sys.executable, "-c", _CHILD, str(ready_w), *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL, pass_fds=(ready_w,))
        os.close(ready_w)
        try:
            assert os.read(ready, 1) == b"!"
            time.sleep(wait)
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=120)
        finally:
            os.close(ready)
            if process.poll() is None:
                process.kill()
                process.wait()
        # With no delay the signal can land before main()'s handler is in place: in this test's own child, between
        # its write and the call of main(), or in the call that installs the handler (the traceback then ends there).
        # Nothing of the workbench has run yet; that is Python's own Ctrl-C, try again.
        # A short command can also be done by the time the signal lands: main() has returned, Python is tearing
        # down and its default Ctrl-C ends the process (-SIGINT, nothing written; measured: validate at 0.2 s under
        # load), or the process has exited already (0, nothing written: `--help` with no delay, in a full CI run).
        # Nothing of the workbench runs then either; try again.
        # The same window, wherever the interpreter noticed the signal in it: the innermost frame of Python's own
        # KeyboardInterrupt is this test's child (its write or its call of main()) or main() itself before its
        # handler is in place or after it has put the previous one back; a KeyboardInterrupt from inside a command
        # has frames below main() and fails the test.
        text = stderr.decode()
        frames = re.findall(r'^  File "([^"]+)", line \d+, in (\S+)$', text, re.MULTILINE)
        python_own = text.endswith("KeyboardInterrupt\n") and bool(frames) and (
            frames[-1] == ("<string>", "<module>")
            or frames[-1][1] == "main" and frames[-1][0].endswith(os.path.join("workbench", "cli", "__init__.py")))
        done_before = process.returncode in (0, -signal.SIGINT) and not text
        if not (python_own or done_before):
            break
        if done_before:
            # The command was quicker than the delay (validate at 0.2 s, five times in a row, once pydantic's plugin
            # search was off): the signal is sent sooner next time, so that it lands while the command runs.
            wait /= 2
    assert "Traceback" not in stderr.decode(), stderr.decode()
    assert process.returncode == 130, stderr.decode()
    assert stderr.decode() in ("", "workbench: interrupted\n") or (
        command == "run" and stderr.decode().startswith("workbench: interrupted by SIGINT") and stderr.count(b"\n") == 1)
