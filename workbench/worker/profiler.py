"""The worker's side of ``--profile``: async-profiler records every sampled malloc and free from JVM start (its
agent is in the JVM's options); this marks where each step and snapshot begins and stops the recording at the end.

A mark is written to ``profile/marks.tsv`` (flushed at once) and, on the recording itself, as one malloc and free of
a size that names it (``workbench.profile.Marks``), so the reader cuts the timeline on the recording's own clock.
With Arrow's debug allocator on (``--profile-buffers``), each snapshot also writes the ledgers every root allocator
still holds into ``profile/arrow-buffers.tsv`` (``workbench.profile.ArrowBuffers``), one line each, label first.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Protocol

from workbench._files import appending
from workbench.protocol.callsites import ARROW_BUFFERS_FILE, MARK_BASE_BYTES, MARKS_FILE, PROFILE_DIR, RECORDING_FILE
from workbench.protocol.events import ProfileStopped
from workbench.protocol.spec import WorkerSpec


class Recorder(Protocol):
    def step(self, index: int) -> None: ...

    def snapshot(self, label: str) -> None: ...

    def stop(self) -> ProfileStopped | None: ...


class NoRecorder:
    """``--profile`` not asked for: nothing is marked."""

    def step(self, index: int) -> None:
        pass

    def snapshot(self, label: str) -> None:
        pass

    def stop(self) -> ProfileStopped | None:
        return None


class NativeRecorder:
    """Marks on async-profiler's recording, which the JVM's ``-agentpath`` started."""

    def __init__(self, run_dir: Path, library: str, interval: int, roots: list[Any] | None = None) -> None:
        self._library = library
        self._roots = roots  # the session's root allocators (the list grows as they are made); None: no buffers
        self._dir = run_dir / PROFILE_DIR
        self._dir.mkdir(exist_ok=True)
        self._marks = self._dir / MARKS_FILE
        self._base = -(-max(interval, MARK_BASE_BYTES) // 8) * 8  # Unsafe.allocateMemory rounds up to 8 bytes
        self._count = 0
        self._marker: Any = None
        self._lock = threading.Lock()  # a threads step may take snapshots from several threads

    def _mark(self, kind: str, name: str) -> None:
        import jpype

        with self._lock:
            size = self._base + 8 * self._count
            self._count += 1
            now = time.time_ns()
            if self._marker is None:
                self._marker = jpype.JClass("workbench.profile.Marks")
            self._marker.mark(size)
            with appending(self._marks) as log:
                log.write_line(f"{kind}\t{name}\t{now}\t{size}")

    def step(self, index: int) -> None:
        self._mark("step", str(index))

    def snapshot(self, label: str) -> None:
        self._mark("snapshot", label)
        if self._roots is not None:
            self._write_buffers(label)

    def _write_buffers(self, label: str) -> None:
        import jpype

        describe = jpype.JClass("workbench.profile.ArrowBuffers").describe
        lines = [f"{label}\t{line}" for root in list(self._roots or []) for line in str(describe(root)).splitlines()]
        with self._lock, appending(self._dir / ARROW_BUFFERS_FILE) as log:
            for line in lines:
                log.write_line(line)

    def stop(self) -> ProfileStopped:
        """Stop the recording, which writes it whole (the worker skips the JVM's own shutdown)."""
        import jpype

        try:
            profiler = jpype.JClass("one.profiler.AsyncProfiler").getInstance(self._library)
            message = str(profiler.execute("stop")).strip()
        except jpype.JException as exc:
            return ProfileStopped(recording=str(self._dir / RECORDING_FILE), marks=str(self._marks),
                                  error=f"{exc.getClass().getName()}: {exc.getMessage()}")
        return ProfileStopped(recording=str(self._dir / RECORDING_FILE), marks=str(self._marks), error=None,
                              message=message)


def recorder_for(spec: WorkerSpec, roots: list[Any]) -> Recorder:
    """The recorder a run asked for (``spec.profile_library`` set by ``--profile``), else one that does nothing;
    ``roots``: the session's root allocators, whose open buffers it lists with ``spec.profile_buffers``."""
    if spec.profile_library is None:
        return NoRecorder()
    return NativeRecorder(Path(spec.run_dir), spec.profile_library, spec.profile_interval or 0,
                          roots if spec.profile_buffers else None)
