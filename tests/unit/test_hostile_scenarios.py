"""Scenario files made to hang or eat the machine, or to leak another file: each is refused with one bounded error.

Each case is parsed in a child process under an address-space limit and a timeout, so that a regression cannot take
the machine down (a 544-byte alias bomb once grew to 24 GB before the kernel's OOM killer acted).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 2 << 30
_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (%d, %d))
from pathlib import Path
from workbench._errors import BadInput
from workbench.scenario import load_scenario
try:
    load_scenario(Path(sys.argv[1]))
except BadInput as error:
    print(error.message)
    sys.exit(2)
print("accepted")
""" % (LIMIT_BYTES, LIMIT_BYTES)


def load_in_child(path: Path, timeout: float = 30) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, env=env,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout.strip()


def test_an_alias_bomb_is_refused_without_expanding_it(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    bomb.write_text("name: bomb\ndescription: d\n" + "\n".join(levels) + "\nsteps: [*a8]\n")
    assert bomb.stat().st_size < 1000
    code, out = load_in_child(bomb)
    assert code == 2
    assert out.startswith(f"{bomb}:") and "expands to more than 100,000 values through its aliases" in out


def test_a_thousand_nested_brackets_are_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: deep\ndescription: d\nsteps: " + "[" * 1000 + "]" * 1000 + "\n")
    code, out = load_in_child(deep)
    assert (code, out) == (2, f"{deep}:3: nested more than 64 levels deep (expected a scenario file)")


def test_a_fifo_and_a_device_are_refused_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert load_in_child(fifo, timeout=20) == (2, f"{fifo}: not a regular file (expected a YAML scenario file)")
    assert load_in_child(Path("/dev/zero"), timeout=20) == (
        2, "/dev/zero: not a regular file (expected a YAML scenario file)")


def test_a_huge_file_is_refused_by_its_size(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (2 << 20) + "\n")
    code, out = load_in_child(huge)
    assert code == 2 and out == (f"{huge}: {huge.stat().st_size:,} bytes (expected a YAML scenario file of at most "
                                 "1,048,576 bytes)")


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: a\ndescription: d\nname: b\nsteps: [gc]\n")
    assert load_in_child(twice) == (2, f"{twice}:3: not valid YAML: duplicate key 'name' (first given on line 1)")


def test_a_file_that_is_not_a_scenario_is_not_echoed_whole(tmp_path: Path) -> None:
    secret = tmp_path / "secrets"
    secret.write_text("".join(f"key{n}: s3cr3t-value-{n}-{'z' * 200}\n" for n in range(200)))
    link = tmp_path / "innocent.yaml"
    link.symlink_to(secret)
    code, out = load_in_child(link)
    lines = out.splitlines()
    assert code == 2 and len(lines) <= 11
    assert "s3cr3t" not in out
    assert lines[-1].endswith("more problems") and all(len(line) < 300 for line in lines)


def test_a_good_file_with_an_anchor_still_loads(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: good\ndescription: d\nsteps:\n  - root_allocator: &root {name: r}\n  - gc\n")
    assert load_in_child(good) == (0, "accepted")
