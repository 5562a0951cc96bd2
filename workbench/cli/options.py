"""Option types and value parsers shared by the commands: one wording per option, errors that name the option."""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Callable
from typing import Annotated, Optional

import typer

from workbench._errors import BadInput
from workbench._files import creatable_problem, os_reason
from workbench.units import parse_duration_ms, parse_size
from workbench.nmt_level import NMT_LEVELS

PACKAGE_DIR = Path(__file__).resolve().parents[1]

ALLOCATOR_HELP = ("jemalloc (built from source by the workbench on first use), system:jemalloc (Debian's "
                  "libjemalloc2), tcmalloc (gperftools' tcmalloc_minimal, built from source on first use), "
                  "system:tcmalloc (Debian's libtcmalloc-minimal4), mimalloc (built from source with statistics on "
                  "first use), "
                  "system:mimalloc (Debian's libmimalloc2.0), glibc (nothing preloaded), or a path to a .so; settings "
                  "as NAME@key:value,..., e.g. glibc@arena_max:2 or jemalloc@background_thread:true,dirty_decay_ms:1000 "
                  "(docs/allocators.md lists each allocator's keys).")

Allocator = Annotated[Optional[str], typer.Option(help=ALLOCATOR_HELP + " Default: the scenario's, else jemalloc.")]
MallocConf = Annotated[Optional[str], typer.Option(help="MALLOC_CONF for the measured process, e.g. 'narenas:2' "
                                                        "(jemalloc only; the same as jemalloc@narenas:2).")]
JavaHome = Annotated[Optional[Path], typer.Option(help="The JDK to start (default: JAVA_HOME, else JPype's).")]
Hold = Annotated[Optional[str], typer.Option(help="Duration of every hold step, e.g. 500ms or 2s.")]
JsonPath = Annotated[Optional[Path], typer.Option("--json", help="Also write the report as JSON here.")]
Out = Annotated[Optional[Path], typer.Option(help="The run directory (new or empty); default "
                                                  "runs/<time>-<what>-<allocator>.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress line (there is none when stderr is not a "
                                                           "terminal).")]
Trust = Annotated[bool, typer.Option("--trust", help="Let the scenario file run programs, load native code or write "
                                                     "files (JVM options such as -XX:OnError, an allocator path, "
                                                     "MALLOC_CONF prof_prefix): only for files you wrote or checked.")]
Nmt = Annotated[Optional[str], typer.Option(
    "--nmt", help="Native Memory Tracking: off, summary or detail (default: the scenario's jvm.nmt, else summary). "
                  "NMT's per-malloc header moves allocations into larger size classes; off measures the allocator "
                  "undisturbed, without the NMT layer.", metavar="LEVEL")]
JpypeGcLink = Annotated[bool, typer.Option(
    "--jpype-gc-link", help="Keep JPype's GC link (System.gc() driven by mallinfo(), which makes the Java heap "
                            "depend on the allocator); it is cut at start-up by default.")]
Repeat = Annotated[int, typer.Option(
    "--repeat", help="Run it N times, each in a fresh worker: the report shows the median run and "
                                     "every figure's median and min-max; `diff` then tells noise from change.")]
Profile = Annotated[bool, typer.Option(
    "--profile", help="Record native call sites with async-profiler (every sampled malloc and free, with Java "
                      "frames): live bytes by stack at each snapshot, with owners (pool, open Arrow buffers, JVM, "
                      "...) and leaks; a flame graph in report.html.")]
ProfileBuffers = Annotated[bool, typer.Option(
    "--profile-buffers", help="With --profile (implied), also turn on Arrow's debug allocator "
                              "(-Darrow.memory.debug.allocator=true): each snapshot names the Arrow buffers still open, "
                              "with the stack Arrow recorded and the native call site holding them. It keeps a log per "
                              "buffer on the Java heap, so it changes what is measured (the report says it is on).")]
ProfileInterval = Annotated[Optional[str], typer.Option(
    "--profile-interval", help="async-profiler's sampling interval: one malloc recorded per SIZE bytes allocated, "
                               "and every malloc of at least SIZE (0: every malloc). Default 256KiB. Implies "
                               "--profile.", metavar="SIZE")]
Html = Annotated[bool, typer.Option(help="Write report.html into the run directory (`workbench report RUN --format "
                                         "html` draws it later).")]


def _parsed(option: str, value: str | None, parse: Callable[[str], int]) -> int | None:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise BadInput(f"{option}: {exc}") from None


def size_bytes(option: str, value: str | None) -> int | None:
    """Bytes of a size option (``256KiB``, ``0``); BadInput naming ``option`` otherwise."""
    return _parsed(option, value, parse_size)


def duration_ms(option: str, value: str | None) -> int | None:
    """Milliseconds of a duration option (``500ms``, ``2s``); BadInput naming ``option`` otherwise."""
    return _parsed(option, value, parse_duration_ms)


def positive_duration_ms(option: str, value: str) -> int:
    """A duration that must be more than 0 ms (a sampling interval)."""
    millis = duration_ms(option, value)
    if not millis:
        raise BadInput(f"{option}: expected a duration greater than 0 such as 100ms, got {value!r}")
    return millis


def nmt_level(option: str, value: str | None) -> str | None:
    """An NMT level as the scenario's ``jvm.nmt`` takes it."""
    if value is None or value in NMT_LEVELS:
        return value
    raise BadInput(f"{option}: expected one of {', '.join(NMT_LEVELS)}, got {value!r}")


MAX_REPEAT = 100


def repeat_count(option: str, value: int) -> int:
    """How many runs ``--repeat`` asks for: 1 to MAX_REPEAT."""
    if not 1 <= value <= MAX_REPEAT:
        raise BadInput(f"{option}: expected a number of runs from 1 to {MAX_REPEAT}, got {value}")
    return value


def label(option: str, value: str) -> str:
    """A snapshot label, validated as the scenario language validates it."""
    from workbench.values import parse_label  # pydantic: not before `exec` has started its program

    try:
        return parse_label(value)
    except ValueError as exc:
        raise BadInput(f"{option}: {exc}") from None


def json_target(path: Path, inputs: tuple[Path, ...] = ()) -> Path:
    """A path ``--json`` may write: a new file or an existing regular file that is none of ``inputs`` (the scenario
    file) and not inside the installed package, in a writable directory that exists."""
    try:
        return _json_target(path, inputs)
    except OSError as error:  # a name too long for the file system, a loop of symlinks
        raise BadInput(f"--json {path}: {os_reason(error)}") from None


def _json_target(path: Path, inputs: tuple[Path, ...]) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise BadInput(f"--json {path}: is a directory (expected a file path)")
    if path.exists() or path.is_symlink():
        if path.is_symlink() or not path.is_file():
            raise BadInput(f"--json {path}: exists and is not a regular file (expected a new file or a report to "
                           "replace)")
        if any(other.exists() and path.samefile(other) for other in inputs):
            raise BadInput(f"--json {path}: is the scenario file itself (expected another path)")
    if path.resolve().is_relative_to(PACKAGE_DIR):
        raise BadInput(f"--json {path}: is inside the workbench's own package {PACKAGE_DIR}")
    if not parent.is_dir():
        raise BadInput(f"--json {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"--json {path}: directory {parent} is not writable")
    if (problem := creatable_problem(path)) is not None:  # a read-only mount, a name too long, /proc
        raise BadInput(f"--json {path}: cannot be written: {problem}")
    return path
