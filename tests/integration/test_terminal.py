"""A real run, and doctor, on an ASCII-only terminal with stdout a pipe; a run into a non-ASCII --out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.conftest import run_workbench

ROOT = Path(__file__).resolve().parents[2]
ASCII = {"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": "ascii"}
DESCRIPTION = "\u00b5s \u2013 [/oops] [bold red]x \u0442\u0435\u0441\u0442"


def hostile_scenario(tmp_path: Path) -> Path:
    """The reference scenario, in a file with a Cyrillic name, described with non-ASCII text and rich markup."""
    text = (ROOT / "scenarios" / "arrow-intvector.yaml").read_text()
    text = re.sub(r"^description:.*?(?=^\w)", f'description: "{DESCRIPTION}"\n', text, flags=re.S | re.M)
    path = tmp_path / "\u0442\u0435\u0441\u0442.yaml"
    path.write_text(text)
    return path


@pytest.mark.jvm
def test_a_run_on_an_ascii_terminal_prints_ascii_and_the_markup_literally(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_workbench("run", str(hostile_scenario(tmp_path)), "--out", str(out), env=ASCII)
    assert result.returncode == 0, result.stderr
    assert result.stdout.isascii() and result.stderr.isascii()
    assert "us - [/oops] [bold red]x \\u0442\\u0435\\u0441\\u0442" in result.stdout
    assert "\n* Arrow accounts 524,288 B at 'allocated' for 412,500 B" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["scenario"]["description"] == DESCRIPTION
    assert report["snapshots"][1]["arrow"]["allocated_bytes"] == 524_288


@pytest.mark.jvm
def test_a_run_into_a_non_ascii_out_under_a_utf8_locale(tmp_path: Path) -> None:
    out = tmp_path / "\u0432\u044b\u0445\u043e\u0434"
    result = run_workbench("run", "arrow-intvector", "--out", str(out), "--quiet",
                           env={"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "report.json").read_text())["snapshots"][1]["arrow"]["allocated_bytes"] == 524_288


@pytest.mark.jvm
def test_a_run_into_a_non_ascii_out_under_the_c_locale(tmp_path: Path) -> None:
    # The JVM takes file names in the locale's encoding: the worker gets C.UTF-8 for such a run directory.
    out = tmp_path / "\u0432\u044b\u0445\u043e\u0434"
    result = run_workbench("run", "arrow-intvector", "--out", str(out), "--quiet", "--hold", "0", "--no-html",
                           env={"LANG": "C", "LC_ALL": "C"})
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "report.json").read_text())["snapshots"][1]["arrow"]["allocated_bytes"] == 524_288


@pytest.mark.jvm
def test_doctor_on_an_ascii_terminal(tmp_path: Path) -> None:
    result = run_workbench("doctor", env=ASCII)
    assert "Traceback" not in result.stderr and result.stdout.isascii()
    assert re.search(r"\n\d+ FAIL, \d+ WARN: a default run \(workbench run arrow-intvector\) can", result.stdout)
