"""No false success, the parts that need no JVM: validate refuses what a run refuses, with the same line; a sampler
that dies says why."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from tests.unit.test_cli import invoke
from workbench._files import WriteFailed
from workbench.probes.allocator import detect
from workbench.toolchain.elf import NotAnAllocator, check_allocator_library, defined_functions
from workbench.worker.sampler import Sampler

LIBZ = Path("/lib/x86_64-linux-gnu/libz.so.1")
LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")


def scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndescription: d\n" + text)
    return path


@pytest.mark.parametrize(("text", "line"), [
    ("allocator: hoard\nsteps: [gc]\n", "s.yaml:3: allocator: unknown allocator 'hoard' (expected one of: jemalloc, "
                                        "system:jemalloc, tcmalloc, system:tcmalloc, mimalloc, system:mimalloc, glibc, or a "
                                        "path to a .so)"),
    ("steps:\n  - direct_buffer: {name: b, size: 2GiB}\n",
     "s.yaml:4: steps[0].direct_buffer.size: input should be less than or equal to 2147483647, got '2GiB'"),
    ("steps:\n  - root_allocator: {limit: 9223372036854775808}\n",
     "s.yaml:4: steps[0].root_allocator.limit: input should be less than or equal to 9223372036854775807, got "
     "9223372036854775808"),
    ("steps:\n  - root_allocator: {}\n  - allocate: {vector: v, count: 2147483648}\n",
     "s.yaml:5: steps[1].allocate.count: input should be less than or equal to 2147483647, got 2147483648"),
    ("steps:\n  - root_allocator: {}\n  - allocate: {vector: v, type: VarCharVector, count: 300000000, "
     "bytes_per_value: 8}\n",
     "s.yaml:5: steps[1].allocate: expected count x bytes_per_value of at most 2147483647 for a VarCharVector (its "
     "offsets are 32-bit), got 300000000 x 8"),
    ("steps:\n  - root_allocator: {}\n  - allocate: {vector: v, count: 10}\n  - fill: {vector: v, k: 99999999999999999999}\n",
     "s.yaml:6: steps[2].fill.k: input should be less than or equal to 9223372036854775807, got 99999999999999999999"),
    ("steps:\n  - root_allocator: {}\n  - threads:\n      count: 64\n      steps:\n        - churn: {threads: 8, "
     "duration: 1s}\n",
     "s.yaml:5: steps[1].threads: expected at most 256 threads at once, got 512 (64 threads, each running steps that "
     "start 8)"),
    ("malloc_conf: 'nonsense:1'\nallocator: glibc\nsteps: [gc]\n",
     "s.yaml: malloc_conf nonsense:1: only jemalloc reads MALLOC_CONF, and the allocator is glibc, which would ignore "
     "it"),
])
def test_validate_refuses_what_a_run_refuses_with_the_same_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               text: str, line: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = scenario(tmp_path, text)
    validated = invoke("validate", path.name)
    assert validated.exit_code == 2 and validated.stderr.strip() == line
    ran = invoke("run", path.name, "--out", str(tmp_path / "run"))
    assert ran.exit_code == 2 and ran.stderr.strip() == f"workbench: {line}"
    assert not (tmp_path / "run").exists()


def test_validate_checks_a_trusted_allocator_file_as_a_run_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = scenario(tmp_path, f"allocator: {LIBZ}\nsteps: [gc]\n")
    line = (f"s.yaml: allocator {LIBZ}: a shared library that does not define malloc or free (expected an allocator: "
            "a shared library that defines malloc and free)")
    validated = invoke("validate", "--trust", path.name)
    assert validated.exit_code == 2 and validated.stderr.strip() == line
    ran = invoke("run", "--trust", path.name, "--out", str(tmp_path / "run"))
    assert ran.exit_code == 2 and ran.stderr.strip() == f"workbench: {line}"


def test_validate_passes_the_largest_values_a_run_takes(tmp_path: Path) -> None:
    path = scenario(tmp_path, "allocator: glibc\nsteps:\n  - root_allocator: {limit: 9223372036854775807}\n"
                              "  - direct_buffer: {name: b, size: 2147483647}\n"
                              "  - threads: {count: 32, steps: [{churn: {threads: 8, duration: 1ms}}]}\n")
    assert invoke("validate", str(path)).exit_code == 0


def test_the_elf_reader_finds_malloc_where_it_is_defined(tmp_path: Path) -> None:
    assert defined_functions(LIBC) == {"malloc", "free"}
    assert defined_functions(LIBZ) == set()  # libz calls malloc, it does not define it
    check_allocator_library(LIBC)
    cut = tmp_path / "cut.so"
    cut.write_bytes(LIBC.read_bytes()[:65536])
    with pytest.raises(NotAnAllocator, match="truncated"):
        check_allocator_library(cut)


def test_a_sampler_that_cannot_write_says_why(tmp_path: Path) -> None:
    # /dev/full: every write fails with ENOSPC, as on a full disk.
    sampler = Sampler(Path("/dev/full"), 5, 1, time.perf_counter(), detect(), arrow_allocated=lambda: None,
                      nmt_text=None, current_step=lambda: 0)
    sampler.start()
    time.sleep(0.1)
    sampler.stop()
    assert isinstance(sampler.failure, WriteFailed) and os.strerror(errno.ENOSPC) in str(sampler.failure)
    assert sampler.failure_line() == ("the sampler thread died: WriteFailed: cannot write /dev/full: "
                                      "No space left on device")
    healthy = Sampler(tmp_path / "samples.jsonl", 5, 1, time.perf_counter(), detect(), arrow_allocated=lambda: None,
                      nmt_text=None, current_step=lambda: 0)
    healthy.start()
    time.sleep(0.05)
    healthy.stop()
    assert healthy.failure is None and healthy.failure_line() is None and healthy.samples >= 1
