"""``--profile``: what crosses process boundaries for native call sites.

The run puts async-profiler's agent into the JVM's options (:func:`agent_option`); the worker writes its marks
(``profile/marks.tsv``) and stops the recording (``profile/native.jfr``); the Java reader
(``jvm/.../profile/NativeCallSites.java``) writes ``profile/callsites.json``, read here into :class:`Recording`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

PROFILE_DIR = "profile"  # in the run directory
RECORDING_FILE = "native.jfr"
AGENT_LOG = "async-profiler.log"  # what async-profiler says ("Profiling started"), not the program's stdout
MARKS_FILE = "marks.tsv"
# --profile-buffers: "label<TAB>allocator<TAB>ledger<TAB>size<TAB>address<TAB>buffers<TAB>created epoch ns<TAB>frames"
ARROW_BUFFERS_FILE = "arrow-buffers.tsv"
CALLSITES_FILE = "callsites.json"
COLLAPSED_DIR = "collapsed"  # profile/collapsed/<label>.txt: every live stack of that snapshot, collapsed
READER_CLASS = "workbench.profile.NativeCallSites"
READER_SCHEMA = "workbench.native-callsites/1"
# A mark's malloc is at least this large (and at least the interval): such a size is always recorded.
MARK_BASE_BYTES = 1 << 16
# async-profiler's nativemem interval: one malloc recorded per this many bytes allocated, and every malloc at least
# this large (docs/performance.md#native-call-sites measures the overhead and the accuracy of the default).
DEFAULT_INTERVAL_BYTES = 256 * 1024
# What Native Memory Tracking (summary or detail) adds to each malloc through libjvm's os::malloc: a 16-byte header
# and a 2-byte footer canary, on JDK 17 and 25 (measured: a 1 MiB direct buffer is a 1,048,594-byte malloc).
NMT_MALLOC_OVERHEAD_BYTES = 18


def agent_option(library: Path, interval: int, recording: str) -> str:
    """``-agentpath:`` that starts async-profiler's native-memory recording when the JVM starts; ``recording`` is
    where the JFR goes, relative to the JVM's working directory (no commas: agent options are comma-separated);
    async-profiler's messages go to ``async-profiler.log`` beside it."""
    if "," in recording or "," in str(library) or "=" in str(library):
        raise ValueError(f"a path with ',' or '=' cannot be passed to async-profiler's agent: {library}, {recording}")
    return f"-agentpath:{library}={agent_arguments('start', interval, recording)}"


def agent_arguments(action: str, interval: int, recording: str) -> str:
    """async-profiler's options for ``action`` (``start`` or ``stop``) of a native-memory recording."""
    log = f"{recording.rpartition('/')[0] or '.'}/{AGENT_LOG}"
    if action == "stop":
        return f"stop,file={recording},log={log}"
    return f"{action},event=nativemem,nativemem={interval},file={recording},log={log}"


@dataclass(frozen=True)
class RecordedSite:
    stack: int  # index into Recording.stacks
    bytes: int
    count: int
    steps: dict[str, int] = field(default_factory=dict)  # step index ("-1": before the first step) -> live bytes


@dataclass(frozen=True)
class RecordedStack:
    frames: list[str]  # root first: Java frames as Class.method, native ones as their symbol
    kinds: str = ""  # one letter per frame, root first: J Java, N native, C C++, K kernel
    libraries: list[str] = field(default_factory=list)  # of the native frames, leaf first
    java_frames: int = 0


@dataclass(frozen=True)
class RecordedBuffer:
    """An open Arrow ledger (``--profile-buffers``) and the live malloc whose range holds its address, if any."""

    ledger: int
    stack: int | None = None  # index into Recording.stacks
    step: int | None = None  # the step that malloc'd the chunk (-1: before the first step)
    chunk_address: int | None = None
    chunk_bytes: int | None = None  # as malloc was asked for it


@dataclass(frozen=True)
class RecordedSnapshot:
    label: str
    t_ns: int
    live_bytes: int
    live_count: int
    sites: list[RecordedSite]  # most bytes first
    buffers: list[RecordedBuffer] | None = None  # --profile-buffers: every open ledger at this snapshot


@dataclass(frozen=True)
class RecordingInfo:
    first_ns: int
    last_ns: int
    mallocs: int
    frees: int
    unmatched_frees: int
    stacks: int
    nmt_header_bytes: int
    interval_bytes: int
    marks: int = 0
    marks_on_recording_clock: int = 0


@dataclass(frozen=True)
class Recording:
    """What the Java reader wrote: live bytes by stack at each snapshot mark."""

    schema: str
    recording: RecordingInfo
    stacks: list[RecordedStack]
    snapshots: list[RecordedSnapshot]


_RECORDING = TypeAdapter(Recording)


class BadRecording(ValueError):
    """The reader's output is not what this side expects."""


def read_recording(path: Path) -> Recording:
    """The reader's ``callsites.json``; BadRecording when it is not one."""
    try:
        data = _RECORDING.validate_json(path.read_bytes())
    except (OSError, ValidationError) as error:
        raise BadRecording(f"{path}: {error}") from None
    if data.schema != READER_SCHEMA:
        raise BadRecording(f"{path}: schema {data.schema!r}, expected {READER_SCHEMA!r}")
    return data
