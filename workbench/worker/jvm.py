"""The worker's first steps: its probes loaded, its modules imported without numpy, its JVM started."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.probes import allocator as allocator_probe
from workbench.probes.native_probe import SnapshotLibrary
from workbench.protocol.spec import WorkerSpec


def without_numpy() -> None:
    """numpy is never imported in this process: JPype and pyarrow import it when it is installed (0.1 s, and
    OpenBLAS's two threads of its own, their stacks and buffers, in the measured process), and nothing the worker
    runs uses it (pyarrow's compute and its JVM bridge work without it)."""
    sys.modules.setdefault("numpy", None)  # type: ignore[arg-type]  # Python's own way to make an import fail


@dataclass
class EarlyStart:
    """What the worker set up before anything else: the probes, and the JVM (or why it did not start)."""

    reader: SnapshotLibrary | None  # the probe's snapshot reader; None: read in Python
    allocator: allocator_probe.Backend
    jvm_failure: BaseException | None = None  # what startJVM raised: the session reports it as it reports a bug

    def jvm_started(self) -> None:
        """Raises what stopped the JVM from starting (with its traceback), if anything did."""
        if self.jvm_failure is not None:
            raise self.jvm_failure


def start_early(spec: WorkerSpec, imports: Callable[[], None]) -> EarlyStart:
    """``imports`` made (what the worker imports, without numpy), the probes loaded (before the JVM starts its
    threads: the reader reads its environment once, at load), then the JVM started; its failure is kept, not raised.

    The imports are not made beside the JVM's start, although JPype releases the GIL in ``JNI_CreateJavaVM`` (a Python
    thread ran at full speed during ``startJVM``, and the run was 0.1-0.15 s shorter): in a full CI run the glibc
    chunk search then found 5 of 7, 9 of 11 and 5 of 7 mmapped chunks in direct-bytebuffer on JDK 25, in both of the
    test's runs (it had passed in the CI run before and in four runs alone): the two threads' mappings interleave as
    they happen to, and the search looks only at the edges of the mappings System.map names. With ``--profile`` the
    recording, which starts with the JVM, also held the workbench's imports (live call sites 14.9 -> 24.2 MiB)."""
    without_numpy()
    import jpype

    imports()
    reader = SnapshotLibrary(Path(spec.probe_library)) if spec.probe_library is not None else None
    early = EarlyStart(reader, allocator_probe.detect())
    if reader is not None and isinstance(early.allocator, allocator_probe.JemallocBackend):
        early.allocator.read_figures_with(reader.jemalloc_figures)
    jvm = spec.scenario["jvm"]  # validated by the run, dumped whole (every field is there)
    level, keep_link = jvm["nmt"], bool(jvm["jpype_gc_link"])
    # JDKs that only read the NMT level from the launcher's environment variable (JDK-8256844, before 18).
    if level != "off":
        os.environ[f"NMT_LEVEL_{os.getpid()}"] = level
    # JPype registers its GC link (native/common/jp_gc.cpp: System.gc() when a mallinfo() prediction passes a limit)
    # as a Python gc callback during startJVM, twice. mallinfo() answers 0 under allocators that do not export it, so
    # the link makes the Java heap depend on the allocator; with Python's collector off during start-up it cannot fire
    # before it is removed (tcmalloc's real mallinfo fires it during start-up).
    if not keep_link:
        gc.disable()
    try:
        jpype.startJVM(spec.jvm_library, *spec.jvm_options, classpath=spec.classpath, convertStrings=False)
    except BaseException as exc:
        early.jvm_failure = exc
    finally:
        if not keep_link:
            import _jpype

            gc.callbacks[:] = [c for c in gc.callbacks if c is not _jpype._collect]
            gc.enable()
    return early
