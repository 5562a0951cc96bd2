"""The worker's first steps: its probes loaded and its JVM started before the rest of the worker is imported.

JPype releases the GIL while the JVM starts (``JNI_CreateJavaVM``, about 0.3 s), so the worker's models, probes and
pyarrow (about 0.25 s of imports) are imported beside it, in another thread, instead of before it.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
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


def start_early(spec: WorkerSpec, beside: Callable[[], None]) -> EarlyStart:
    """The probes loaded (before the JVM starts its threads: the reader reads its environment once, at load), then
    the JVM started with ``beside`` run in another thread meanwhile; returns when both are done."""
    reader = SnapshotLibrary(Path(spec.probe_library)) if spec.probe_library is not None else None
    early = EarlyStart(reader, allocator_probe.detect())
    if reader is not None and isinstance(early.allocator, allocator_probe.JemallocBackend):
        early.allocator.read_figures_with(reader.jemalloc_figures)
    without_numpy()
    import jpype

    failures: list[BaseException] = []

    def run_beside() -> None:
        try:
            beside()
        except BaseException as exc:  # re-raised in the worker's main thread once the JVM is up
            failures.append(exc)

    imports = threading.Thread(target=run_beside, name="workbench-imports")
    jvm = spec.scenario["jvm"]  # validated by the run, dumped whole (every field is there)
    level, keep_link = jvm["nmt"], bool(jvm["jpype_gc_link"])
    # JDKs that only read the NMT level from the launcher's environment variable (JDK-8256844, before 18).
    if level != "off":
        os.environ[f"NMT_LEVEL_{os.getpid()}"] = level
    # JPype registers its GC link (native/common/jp_gc.cpp: System.gc() when a mallinfo() prediction passes a limit)
    # as a Python gc callback during startJVM, twice. mallinfo() answers 0 under allocators that do not export it, so
    # the link makes the Java heap depend on the allocator; with Python's collector off during start-up it cannot fire
    # before it is removed (tcmalloc's real mallinfo fires it during start-up). The imports beside run without it too.
    if not keep_link:
        gc.disable()
    if spec.profile_library is None:
        imports.start()
    else:
        # --profile: async-profiler's agent records every malloc from the JVM's start on; the imports come first, as
        # they did before this overlap, or the recording would hold the workbench's own imports (measured: the call
        # sites live at the end 14.9 -> 24.2 MiB, the workbench's own 5.4 -> 11.4 MiB).
        run_beside()
    try:
        jpype.startJVM(spec.jvm_library, *spec.jvm_options, classpath=spec.classpath, convertStrings=False)
    except BaseException as exc:
        early.jvm_failure = exc
    finally:
        if imports.is_alive() or imports.ident is not None:
            imports.join()
        if not keep_link:
            import _jpype

            gc.callbacks[:] = [c for c in gc.callbacks if c is not _jpype._collect]
            gc.enable()
    if failures:
        raise failures[0]
    return early
