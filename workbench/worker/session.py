"""One scenario in one JVM: start it, run the steps in order, take snapshots of all four layers."""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, TypeVar

import jpype

from workbench.probes import allocator as allocator_probe
from workbench.probes.allocator import SizeClass
from workbench.protocol.events import (
    AllocatorDetected,
    ChurnDone,
    Event,
    FillDone,
    JvmCounters,
    JvmStarted,
    LeakFound,
    SamplerStopped,
    SnapshotTaken,
    StepFailed,
    StepStarted,
    VectorChecked,
    encode,
)
from workbench._files import WriteFailed, write_unnamed
from workbench.probes.arrow import read_arrow
from workbench.protocol import layout
from workbench.probes.native_probe import RawWriteFailed, SnapshotLibrary
from workbench.probes.nmt import NmtSummary, parse_summary
from workbench.probes import regions as regions_probe
from workbench.probes.interpreter import pymalloc_pools_bytes
from workbench.probes.process import Mapping, read_mappings, summarize
from workbench.scenario.model import (
    TYPE_WIDTH,
    AllocateSpec,
    ChildAllocatorSpec,
    ChurnSpec,
    DirectBufferSpec,
    FillSpec,
    RepeatSpec,
    RootAllocatorSpec,
    Scenario,
    SetSafeSpec,
    SetValueCountSpec,
    SliceSpec,
    Step,
    ThreadsSpec,
    TransferSpec,
)
from workbench.worker.profiler import recorder_for
from workbench.worker.sampler import Sampler
from workbench.protocol.spec import WorkerSpec

Emit = Callable[[Event], None]
# Calls of the diagnostic-command path in the warm-up: past HotSpot's C2 thresholds (Tier4InvocationThreshold 5000).
_JIT_WARM_UP_CALLS = 6000
# From Python as well, past C2's threshold: the calls a snapshot makes enter NativeMemory.command through JNI, and
# Java's own loop inlines it (its count then stays the loop's): at 400 it was C2-compiled after some snapshots, with
# ManagementFactory.getPlatformMBeanServer after it (NMT Compiler +1.6-5.3 MB and Arena Chunk swings for 4-8 steps).
# 6,000 calls take 0.08-0.12 s.
_JPYPE_WARM_UP_CALLS = 6000
# Snapshots taken (kept nowhere) right before the run's first snapshot: see _step_snapshot.
_LATE_WARM_UP_SNAPSHOTS = 5
# Reads of Arrow's figures then (the snapshot's and the sampler's Java calls, getAllocatedMemory and
# getPeakMemoryAllocation of each root): past C2's threshold too. Fewer left AtomicLong.get to be compiled during the
# steps (NMT Arena Chunk +65,488 B and allocated +66 KiB under glibc: its compiler arena returned to HotSpot's pool).
_ARROW_WARM_UP_READS = 6000
T = TypeVar("T")
Vectors = dict[str, tuple[Any, int]]  # name -> (java vector, requested bytes)


@dataclasses.dataclass(frozen=True)
class _Asked:
    """What the JVM said about a region source, kept while what it depends on is unchanged."""

    depends_on: object
    note: bytes  # the first line of the raw file of a later snapshot that did not ask again
    text: bytes
    regions: list[regions_probe.Region]


class StepError(Exception):
    """A step failed inside the JVM (or in pyarrow); carries the event the report needs."""

    def __init__(self, event: StepFailed) -> None:
        super().__init__(event.message)
        self.event = event


def requested_bytes(vector_type: str, count: int, bytes_per_value: int = 8) -> int:
    """What a vector needs for count values: the values (variable width: 4-byte offsets and the data) plus one
    validity bit each."""
    validity = (count + 7) // 8
    if vector_type in TYPE_WIDTH:
        return count * TYPE_WIDTH[vector_type] + validity
    return (count + 1) * 4 + count * bytes_per_value + validity


class Session:
    def __init__(self, spec: WorkerSpec, emit: Emit) -> None:
        self.spec = spec
        self.scenario = Scenario.model_validate(spec.scenario)
        self.emit = emit
        self.started = time.perf_counter()
        self.run_dir = Path(spec.run_dir)
        # The JVM's start-up log of its regions, in the run directory (the warm-up reads it there too: read first at
        # the baseline, the text and its regions kept from then on were the first step's allocated +7-10 KiB).
        self._regions_log = self.run_dir / regions_probe.REGIONS_LOG
        self.step_index = -1
        self.allocators: dict[str, Any] = {}
        self.vectors: dict[str, tuple[Any, int]] = {}  # name -> (java vector, requested bytes)
        self.groups: dict[str, list[Any]] = {}  # vectors kept by a churn step, closed together by name
        self.roots: list[Any] = []  # every root allocator, open or closed: Arrow's figures are their sum
        self.buffers: dict[str, Any] = {}  # direct ByteBuffers by name
        self.nmt_enabled = False
        self._has_system_map = True  # until the JVM says it has no System.map
        self._start_up_log = ""  # the JVM's start-up log of its regions, once it has been read whole
        # (step object, vector, write path) -> (times, values, bytes, nanoseconds) of the step being run
        self._fills: dict[tuple[int, str, str], tuple[int, int, int, int]] = {}
        self._fills_lock = threading.Lock()
        # Texts of the JVM's regions kept from an earlier snapshot while they cannot have changed, by source.
        self._kept_texts: dict[str, _Asked] = {}
        self._raw_dirs: set[str] = set()  # raw kinds whose folder exists
        # The region texts last written, by source: their parts (the very objects) and the file they went into.
        self._written_texts: dict[str, tuple[list[bytes], Path]] = {}
        self.reader: SnapshotLibrary | None = None
        self.recorder = recorder_for(spec, self.roots)  # --profile: marks on async-profiler's recording
        self._warming = False  # the warm-up's snapshots are marked nowhere
        self._warmed_before_first = False  # the late warm-up (see _step_snapshot) is done
        self._sampling = threading.Lock()  # a sample or a snapshot, never both at once (see Sampler)

    def run(self) -> None:
        # Loaded before the JVM starts its threads (the library reads its environment once, at load).
        if self.spec.probe_library is not None:
            self.reader = SnapshotLibrary(Path(self.spec.probe_library))
        probe = allocator_probe.detect()
        if self.reader is not None and isinstance(probe, allocator_probe.JemallocBackend):
            probe.read_figures_with(self.reader.jemalloc_figures)  # one call of the library instead of fourteen
        self.allocator_probe = probe
        settings = allocator_probe.conf_settings(probe, os.environ.get("MALLOC_CONF"))
        self.emit(AllocatorDetected(**{**asdict(probe.info), "settings": settings}))
        self._start_jvm()
        self._warm_up()
        sampler = self._start_sampler()
        steps_started = time.perf_counter()
        try:
            self._run_steps()
            self.report_open_allocators()
            self._count_collections()
        finally:
            stopped = self.recorder.stop()
            if stopped is not None:
                self.emit(stopped)
            if sampler is not None:
                sampler.stop()
                self.emit(SamplerStopped(samples=sampler.samples, cost_ms=round(sampler.cost_s * 1000, 3),
                                         interval_ms=self.scenario.sample_interval,
                                         steps_ms=round((time.perf_counter() - steps_started) * 1000, 3)))
        died = sampler.failure_line() if sampler is not None else None
        if died is not None:
            raise StepError(StepFailed(type="SamplerDied", message=died))

    def _start_sampler(self) -> Sampler | None:
        if self.scenario.sample_interval <= 0:
            return None
        sampler = Sampler(
            self.run_dir / "samples.jsonl", self.scenario.sample_interval, self.scenario.nmt_every, self.started,
            self.allocator_probe,
            arrow_allocated=lambda: sum(int(r.getAllocatedMemory()) for r in self.roots) if self.roots else None,
            nmt_text=(lambda: str(self.NativeMemory.query("summary", "scale=b"))) if self.nmt_enabled else None,
            current_step=lambda: self.step_index,
            exclusive=self._sampling,
        )
        sampler.start()
        return sampler

    def _run_steps(self) -> None:
        for index, step in enumerate(self.scenario.steps):
            kind, argument = _kind_and_argument(step)
            self.step_index = index
            self.recorder.step(index)
            shown = f"{argument} ms" if kind == "hold" else str(argument) if kind in ("snapshot", "close", "verify") \
                else None
            self.emit(StepStarted(index=index, step=kind, argument=shown))
            try:
                self._run_step(step, self.vectors)
                self._report_fills()
            except jpype.JException as exc:
                raise StepError(StepFailed(type=str(exc.getClass().getName()), message=str(exc.getMessage()),
                                           step=index, step_kind=kind)) from exc

    def _start_jvm(self) -> None:
        level = self.scenario.jvm.nmt
        # JDKs that only read the NMT level from the launcher's environment variable (JDK-8256844, before 18).
        if level != "off":
            os.environ[f"NMT_LEVEL_{os.getpid()}"] = level
        # JPype registers its GC link (native/common/jp_gc.cpp: System.gc() when a mallinfo() prediction passes a
        # limit) as a Python gc callback during startJVM, twice. mallinfo() answers 0 under allocators that do not
        # export it, so the link makes the Java heap depend on the allocator; with Python's collector off during
        # start-up it cannot fire before it is removed (tcmalloc's real mallinfo fires it during start-up).
        keep_link = self.scenario.jvm.jpype_gc_link
        if not keep_link:
            gc.disable()
        try:
            jpype.startJVM(
                self.spec.jvm_library, *self.spec.jvm_options, classpath=self.spec.classpath, convertStrings=False
            )
        finally:
            if not keep_link:
                import _jpype

                gc.callbacks[:] = [c for c in gc.callbacks if c is not _jpype._collect]
                gc.enable()
        system = jpype.JClass("java.lang.System")
        self.NativeMemory = jpype.JClass("workbench.jvm.NativeMemory")
        self.Kernels = jpype.JClass("workbench.jvm.IntVectorKernels")
        self.VectorKernels = jpype.JClass("workbench.jvm.VectorKernels")
        self.FillKernels = jpype.JClass("workbench.jvm.FillKernels")
        self.System = system
        if level == "off":
            nmt = "off: not asked for (nmt: off)"
        else:
            nmt_text = str(self.NativeMemory.query("summary"))
            self.nmt_enabled = parse_summary(nmt_text) is not None
            nmt = level if self.nmt_enabled else f"off: {nmt_text.strip()}"
        import pyarrow

        self.emit(JvmStarted(
            version=str(system.getProperty("java.runtime.version")),
            vm=str(system.getProperty("java.vm.name")),
            nmt=nmt,
            pyarrow_memory_pool=pyarrow.default_memory_pool().backend_name,
            jpype_gc_link=keep_link,
        ))

    def _count_collections(self) -> None:
        import _jpype

        beans = jpype.JClass("java.lang.management.ManagementFactory").getGarbageCollectorMXBeans()
        self.emit(JvmCounters(
            gc_collections=sum(max(int(bean.getCollectionCount()), 0) for bean in beans),
            gc_time_ms=sum(max(int(bean.getCollectionTime()), 0) for bean in beans),
            jpype_gc_triggered=int(_jpype.gcStats()["triggered"]),
        ))

    def _warm_up(self, times: int = 4, at_start: bool = True) -> None:
        """The snapshot path taken ``times`` before the steps (``at_start``; with its JIT compiles and a
        ``gc.freeze``) or right before the first snapshot, kept nowhere: what its first runs cost once (the JVM's
        class loading and JIT compiles of the NMT and diagnostic-command path, the reader's buffers, the allocator's
        caches and pages) falls before the baseline instead of into the first snapshot-to-snapshot step."""
        run_dir, emit = self.run_dir, self.emit
        # Its raw files go into a folder removed afterwards, its events are encoded and dropped: the paths of a
        # kept snapshot warm up too (file writing, the event's encoder), and nothing of the warm-up is reported.
        # (In the system's temporary directory: a run directory that fills up fails at the run's own first file.)
        self.run_dir, self.emit = Path(tempfile.mkdtemp(prefix="workbench-warm-up-")), \
            lambda event: None if encode(event) else None
        self._warming = True
        try:
            if at_start and _has_step(self.scenario.steps, "verify"):
                # What a verify step imports (pyarrow.compute and pyarrow.jvm: some MB of malloc'd modules), before
                # the baseline: at the first verify step it landed in that step's change, and every later snapshot's
                # collection looked at its objects (the collection 0.3 -> 1.2-2.3 ms a snapshot); so it is frozen too.
                import pyarrow.compute  # noqa: F401
                import pyarrow.jvm  # noqa: F401
            if self.nmt_enabled and at_start:
                # Whether this JDK has System.map, before the path is compiled: on JDK 17 the answer is the path's
                # first exception, and C2's code compiled without it was made not entrant at the first snapshot (an
                # uncommon trap, the exception's class unloaded at compile time), then compiled again during the
                # steps (measured: NMT Arena Chunk +477 KiB, allocated +477,008 B in one step of thirty).
                self._system_map()
                self.NativeMemory.warmUp(_JIT_WARM_UP_CALLS)
                # From Python too: JPype's per-call Java code (its TypeManager's lookups) compiled before the baseline.
                # (VM.system_properties, a text of a few KiB, was tried: glibc's first step then +78-110 KiB.)
                for n in range(_JPYPE_WARM_UP_CALLS):
                    # With an argument in every other call, as NativeMemory.warmUp does (its doc says why).
                    str(self.NativeMemory.command("vmUptime", "-date") if n % 2 else self.NativeMemory.command(
                        "vmVersion"))
            for n in range(times):
                self._snapshot("warm-up before the steps")
                if at_start and n == times // 2 - 1:
                    # What the worker holds by now (JPype's classes, the models, the JVM's kept texts) is left out
                    # of Python's collections from here on: the collection at each snapshot looks at what is new.
                    gc.collect()
                    gc.freeze()
        finally:
            self._warming = False
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir, self.emit = run_dir, emit
            # The JVM's texts asked here are kept (they say so): their bytes are allocated before the steps, too.
            self._raw_dirs.clear()
            self._written_texts.clear()

    def _snapshot(self, label: str, keep: bool = True) -> None:
        # The snapshot's own allocations (Python's too: PYTHONMALLOC=malloc) come from the workbench's own jemalloc
        # arena, so they neither reuse nor purge the program's dirty pages.
        with self._sampling:
            previous = allocator_probe.enter_own_arena(self.allocator_probe)
            try:
                self._take_snapshot(label, keep)
            finally:
                allocator_probe.leave_own_arena(self.allocator_probe, previous)

    def _take_snapshot(self, label: str, keep: bool) -> None:
        if not self._warming:
            self.recorder.snapshot(label)
        reader = self.reader
        began = time.perf_counter()
        # The worker's own Python garbage freed now, not at whichever later snapshot Python's collector runs in
        # (±20 KiB of allocated a step); cheap: what existed after the warm-up is frozen out of the collections.
        gc.collect()
        allocated_before = self._allocated_now()
        requested = sum(requested for _, requested in self.vectors.values())
        arrow = read_arrow(self.roots, requested)
        after_arrow = time.perf_counter()
        nmt_text = str(self.NativeMemory.query("summary", "scale=b")) if self.nmt_enabled else None
        nmt = parse_summary(nmt_text) if nmt_text is not None else None
        after_nmt = time.perf_counter()
        if reader is not None:
            # What this thread freed, and its allocator cache still holds, is not the program's: out of the figure.
            reader.flush_thread_cache()
        allocator = self.allocator_probe.snapshot()
        after_allocator = time.perf_counter()
        mappings, source, buffers_bytes = self._read_mappings(label, keep)
        allocator_ranges = self.allocator_probe.mapped_ranges()  # beside the mappings they are matched with
        process = summarize(mappings, source=source)
        after_process = time.perf_counter()
        regions, sources, region_texts, threads = self._jvm_regions(label, nmt)
        python_pools = reader.pymalloc_pools_bytes() if reader is not None else pymalloc_pools_bytes()
        attribution = dataclasses.replace(
            regions_probe.attribute(mappings, regions, self.allocator_probe.info.backend, sources, threads,
                                    allocator_ranges, find_chunks=allocator_probe.chunk_finder(self.allocator_probe)),
            python_pools_bytes=python_pools, workbench_buffers_bytes=buffers_bytes,
        )
        after_regions = time.perf_counter()
        if not keep:
            if reader is not None:
                reader.size_classes()
            return
        size_classes = self._keep_raw(label, nmt_text, region_texts)
        ended = time.perf_counter()
        allocated_after = self._allocated_now()
        self.emit(SnapshotTaken(
            label=label,
            t_ms=round((began - self.started) * 1000, 3),
            cost_ms=round((ended - began) * 1000, 3),
            probe_ms={
                "arrow": round((after_arrow - began) * 1000, 3),
                "nmt": round((after_nmt - after_arrow) * 1000, 3),
                "allocator": round((after_allocator - after_nmt) * 1000, 3),
                "process": round((after_process - after_allocator) * 1000, 3),
                "regions": round((after_regions - after_process) * 1000, 3),
                "raw": round((ended - after_regions) * 1000, 3),
            },
            arrow=arrow,
            nmt=nmt,
            allocator=allocator,
            process=process,
            size_classes=size_classes,
            attribution=attribution,
            own_allocated_bytes=allocated_after - allocated_before
            if allocated_after is not None and allocated_before is not None else None,
        ))

    def _allocated_now(self) -> int | None:
        """The allocator's allocated without what this thread has freed (None: not measured)."""
        if self.reader is None:
            return None
        self.reader.flush_thread_cache()
        return self.reader.allocated_bytes()

    def _read_mappings(self, label: str, keep: bool = True) -> tuple[list[Mapping], str, int | None]:
        """Every mapping with its Rss and Anonymous, their raw text kept (``keep``) as smaps/<label>.txt as it is
        read; how they were read; the reader's own buffers' Anonymous bytes (None: read in Python)."""
        reader = self.reader
        if reader is None:
            mappings, smaps = read_mappings()
            if keep:
                self._write_raw("smaps", label, "txt", smaps)
            return mappings, "smaps", None
        if not keep:
            found = reader.read_process()
            return found.mappings, found.source, found.buffers_anon_bytes

        def read(fd: int) -> tuple[list[Mapping], str, int | None]:
            try:
                found = reader.read_process(raw_fd=fd)
            except RawWriteFailed as error:
                raise OSError(error.errno, os.strerror(error.errno)) from None  # the disk's: WriteFailed
            except OSError as error:
                raise RuntimeError(f"reading this process's mappings failed: {error}") from error
            return found.mappings, found.source, found.buffers_anon_bytes

        return self._stream_raw("smaps", label, "txt", read)

    def _jvm_regions(self, label: str, nmt: NmtSummary | None) -> tuple[
            list[regions_probe.Region], list[str], dict[str, list[bytes]], int]:
        """The JVM's regions: System.map where the JDK has it and NMT names them, else the start-up log, the code
        heaps and the metaspace nodes; and the threads' stacks. The texts they came from, by name (in parts, to be
        written one after the other), and the number of threads."""
        texts: dict[str, list[bytes]] = {}
        found: list[regions_probe.Region] = []
        system_map = self._system_map()
        if system_map is not None:
            texts["system-map"] = [system_map.encode()]
            found = regions_probe.parse_system_map(system_map)
        sources = ["system-map"] if found else []
        if not found:
            if not self._start_up_log:
                # Written while the JVM started (the heap and class space do not move): read until it has it.
                log = self._regions_log
                self._start_up_log = log.read_text(errors="replace") if log.is_file() else ""
            # The start-up log is kept once read whole; the code heaps are reserved once, at start-up; the
            # metaspace's nodes change only with what NMT counts mapped (reserved) for classes (without NMT: asked
            # every time). Not NMT's reserved figure itself: that adds the malloc'd class data, which grows with every
            # class loaded, and the text (24 KB, 3-4 ms a call) was asked again at most snapshots of arrow-intvector.
            metaspace_reserved = None if nmt is None else tuple(
                nmt.categories[name].reserved_bytes - (nmt.categories[name].malloc_bytes or 0)
                for name in ("Class", "Metaspace") if name in nmt.categories)
            for source, depends_on, ask, parse in (
                    ("start-up-log", self._start_up_log or None, lambda: self._start_up_log,
                     regions_probe.parse_start_up_log),
                    ("codecache", True, lambda: self.NativeMemory.command("compilerCodecache"),
                     regions_probe.parse_codecache),
                    ("metaspace", metaspace_reserved, lambda: self.NativeMemory.command("vmMetaspace", "vslist"),
                     regions_probe.parse_metaspace_nodes)):
                texts[source], parsed = self._asked_unless_unchanged(source, label, depends_on, ask, parse,
                                                                     noted=source != "start-up-log")
                found += parsed
                if parsed:
                    sources.append(source)
        if self.reader is not None:
            pointers, threads = self.reader.stack_pointers()
        else:
            pointers, threads = regions_probe.stack_pointers(), len(os.listdir("/proc/self/task"))
        texts["stack-pointers"] = ["".join(f"{sp:#x}\n" for sp in pointers).encode()]
        return found + regions_probe.stack_regions(pointers), [*sources, "stack-pointer"], texts, threads

    def _system_map(self) -> str | None:
        """System.map's text; None where this JDK has none (JDK 17: asked once, never again)."""
        if not self._has_system_map:
            return None
        try:
            return str(self.NativeMemory.command("systemMap"))
        except jpype.JException:
            self._has_system_map = False
            return None

    def _asked_unless_unchanged(self, source: str, label: str, depends_on: object, ask: Callable[[], Any],
                                parse: Callable[[str], list[regions_probe.Region]], noted: bool = True) -> tuple[
            list[bytes], list[regions_probe.Region]]:
        """The JVM's text for ``source`` and its regions, asked and parsed again only when ``depends_on`` changed
        (None: every time). A text kept from an earlier snapshot is written (``noted``) with a first line saying so
        (the parsers skip it), from the bytes kept: no copy of it per snapshot."""
        kept = self._kept_texts.get(source)
        if depends_on is not None and kept is not None and kept.depends_on == depends_on:
            return [kept.note, kept.text], kept.regions
        text = str(ask())
        regions = parse(text)
        # A text asked in the warm-up is from before the first snapshot: its label is in no report, so say so.
        when = ", the workbench's own snapshot before the first one" if self._warming else ""
        note = f"# workbench: not asked again; what the JVM said at '{label}'{when} (unchanged since)\n".encode() \
            if noted else b""
        self._kept_texts[source] = _Asked(depends_on, note, text.encode(), regions)
        return [text.encode()] if depends_on is None else [self._kept_texts[source].text], regions

    def _keep_raw(self, label: str, nmt_text: str | None, region_texts: dict[str, list[bytes]]) -> list[
            SizeClass] | None:
        """The raw text each figure came from, per snapshot, for whoever doubts a number; the allocator's statistics
        go from the allocator into their file without a copy in Python. The allocator's live size classes."""
        # Whole or not at all; a full or read-only disk is WriteFailed, which fails the run naming the file.
        if nmt_text is not None:
            self._write_raw("nmt", label, "txt", nmt_text)
        for source, parts in region_texts.items():
            path = self._raw_path("regions", f"{label}.{source}", "txt")
            kept = [part for part in parts if part]  # the very objects, so the same ones are the same bytes
            written = self._written_texts.get(source)
            if written is not None and len(written[0]) == len(kept) \
                    and all(a is b for a, b in zip(written[0], kept)) and _linked(written[1], path):
                # The same bytes as the last snapshot's file (a text not asked again): that file's hard link, one
                # call instead of a temporary written and renamed (about 0.3-0.6 ms a file under load).
                self._written_texts[source] = (kept, path)
                continue
            self._stream_raw("regions", f"{label}.{source}", "txt", lambda fd: _write_parts(fd, parts))
            self._written_texts[source] = (kept, path)
        reader = self.reader
        if reader is None:
            raw = self.allocator_probe.raw_statistics()
            if raw is not None:
                self._write_raw("allocator", label, raw[0], raw[1])
            return self.allocator_probe.size_classes(raw)
        if reader.dump_extension is not None:
            # Without jemalloc's per-arena statistics: no figure is read from them, and they were three quarters
            # of the dump's text and of its cost (8-17 ms a snapshot under load). docs/run-directories.md.
            self._stream_raw("allocator", label, reader.dump_extension,
                             lambda fd: reader.allocator_dump(fd, arenas=False))
        # jemalloc's read by MIB in the library; another allocator's (mimalloc's bins) from its backend.
        classes = reader.size_classes()
        return classes if classes is not None else self.allocator_probe.size_classes(None)

    def _raw_path(self, kind: str, label: str, suffix: str) -> Path:
        path = layout.raw_path(self.run_dir, kind, label, suffix)
        if kind not in self._raw_dirs:
            try:
                path.parent.mkdir(exist_ok=True)
            except OSError as error:
                raise WriteFailed(path.parent, error) from None
            self._raw_dirs.add(kind)
        return path

    def _write_raw(self, kind: str, label: str, suffix: str, text: str) -> None:
        self._stream_raw(kind, label, suffix, lambda fd: _write_parts(fd, [text.encode()]))

    def _stream_raw(self, kind: str, label: str, suffix: str, write: Callable[[int], T]) -> T:
        """``write(fd)`` writes the raw file, whole or not at all; what it returns."""
        result: list[T] = []
        write_unnamed(self._raw_path(kind, label, suffix), lambda fd: result.append(write(fd)))
        return result[0]

    def _run_step(self, step: Step, vectors: Vectors) -> None:
        kind, argument = _kind_and_argument(step)
        getattr(self, f"_step_{kind}")(argument, vectors)

    # Steps: one method each, named after the scenario key; `vectors` is the scope (a thread has its own).
    def _step_snapshot(self, label: str, vectors: Vectors) -> None:
        # (Not from a `threads` step's thread: the warm-up swaps the run directory and the event stream the other
        # threads use; a first snapshot there is taken without it.)
        if not self._warmed_before_first and threading.current_thread() is threading.main_thread():
            # The steps before the first snapshot (a root allocator, the JVM's settling) grow what a snapshot
            # handles (mappings, threads, texts), so its temporaries outgrow the pages the start-up warm-up left in
            # the allocator: the baseline then touched new pages after its own kernel read (jemalloc: the first step
            # +172-356 KiB anonymous RSS, the next +53-110 KiB; glibc +127-184 KiB and allocated +18-22 KiB).
            # Warmed once more here, at this size, the pages are there before the baseline's read.
            self._warmed_before_first = True
            if self.roots:
                for _ in range(_ARROW_WARM_UP_READS):
                    read_arrow(self.roots, 0)
            self._warm_up(_LATE_WARM_UP_SNAPSHOTS, at_start=False)
        self._snapshot(label)

    def _step_root_allocator(self, spec: RootAllocatorSpec, vectors: Vectors) -> None:
        limit = jpype.JLong(spec.limit if spec.limit is not None else 2**63 - 1)
        root = self.VectorKernels.rootAllocator(spec.manager, limit)
        self.roots.append(root)
        self.allocators[spec.name] = root

    def _step_child_allocator(self, spec: ChildAllocatorSpec, vectors: Vectors) -> None:
        limit = jpype.JLong(spec.limit if spec.limit is not None else 2**63 - 1)
        self.allocators[spec.name] = self.allocators[spec.parent].newChildAllocator(spec.name, jpype.JLong(0), limit)

    def _step_allocate(self, spec: AllocateSpec, vectors: Vectors) -> None:
        vector = self.VectorKernels.create(spec.type, spec.vector, self.allocators[spec.allocator])
        vectors[spec.vector] = (vector, requested_bytes(spec.type, spec.count, spec.bytes_per_value))
        self.VectorKernels.allocate(vector, spec.count, spec.bytes_per_value)

    def _step_fill(self, spec: FillSpec, vectors: Vectors) -> None:
        vector, _ = vectors[spec.vector]
        count = spec.count if spec.count is not None else int(vector.getValueCapacity())
        self._fill(spec, vector, count, spec.write)

    def _step_set_safe(self, spec: SetSafeSpec, vectors: Vectors) -> None:
        vector, requested = vectors[spec.vector]
        self._fill(spec, vector, spec.count, "set_safe")
        type_name = str(vector.getClass().getSimpleName())
        vectors[spec.vector] = (vector, max(requested, requested_bytes(type_name, spec.count)))

    def _fill(self, spec: FillSpec | SetSafeSpec, vector: Any, count: int, write: str) -> None:
        """One Java call writes the values (FillKernels); its time is added up per step, see _report_fills."""
        nanos = int(self.FillKernels.fill(vector, count, spec.pattern, jpype.JLong(spec.k), jpype.JLong(spec.seed),
                                          write))
        type_name = str(vector.getClass().getSimpleName())
        # Variable width: the offsets and the data the values took.
        written = count * TYPE_WIDTH[type_name] if type_name in TYPE_WIDTH else \
            4 * count + (int(vector.getStartOffset(count)) if count else 0)
        # The step's model object is the same at every repeat and in every thread.
        key = (id(spec), spec.vector, str(self.FillKernels.effectiveWrite(vector, write)))
        with self._fills_lock:
            times, values, total_bytes, total_nanos = self._fills.get(key, (0, 0, 0, 0))
            self._fills[key] = (times + 1, values + count, total_bytes + written, total_nanos + nanos)

    def _report_fills(self) -> None:
        """One result per fill of the step just run, a repeat's or the threads' runs of it added up (bytes over the
        writes' own time: a writer's throughput)."""
        for (_, name, write), (times, values, total_bytes, nanos) in self._fills.items():
            rate = float(f"{total_bytes / nanos:.4g}") if nanos > 0 else None
            self.emit(FillDone(vector=name, write=write, times=times, count=values, bytes=total_bytes,
                               seconds=nanos / 1e9, gb_per_s=rate))
        self._fills.clear()

    def _step_set_value_count(self, spec: SetValueCountSpec, vectors: Vectors) -> None:
        vectors[spec.vector][0].setValueCount(spec.count)

    def _step_transfer(self, spec: TransferSpec, vectors: Vectors) -> None:
        vector, requested = vectors.pop(spec.vector)
        vectors[spec.as_ or spec.vector] = (self.VectorKernels.transfer(vector, self.allocators[spec.to]), requested)

    def _step_slice(self, spec: SliceSpec, vectors: Vectors) -> None:
        vector, _ = vectors[spec.vector]
        part = self.VectorKernels.slice(vector, spec.start, spec.length)
        vectors[spec.as_] = (part, requested_bytes(str(vector.getClass().getSimpleName()), spec.length))

    def _step_direct_buffer(self, spec: DirectBufferSpec, vectors: Vectors) -> None:
        self.buffers[spec.name] = self.VectorKernels.allocateDirect(spec.size)

    def _step_repeat(self, spec: RepeatSpec, vectors: Vectors) -> None:
        for _ in range(spec.times):
            for step in spec.steps:
                self._run_step(step, vectors)

    def _step_threads(self, spec: ThreadsSpec, vectors: Vectors) -> None:
        failures: list[BaseException] = []

        def work() -> None:
            own: Vectors = dict(vectors)  # one vector set per thread; the outer ones stay visible
            try:
                for step in spec.steps:
                    self._run_step(step, own)
            except BaseException as exc:  # re-raised in the scenario's thread below
                failures.append(exc)

        workers = [threading.Thread(target=work, name=f"scenario-{n}") for n in range(spec.count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise failures[0]

    def _step_verify(self, name: str, vectors: Vectors) -> None:
        import pyarrow.compute
        import pyarrow.jvm

        vector, _ = vectors[name]
        array = pyarrow.jvm.array(vector)
        pyarrow_address = array.buffers()[1].address
        pyarrow_sum = pyarrow.compute.sum(array).as_py() or 0
        # The pyarrow view retains the Java buffer; let it go before anything is closed.
        del array
        gc.collect()
        java_address = int(vector.getDataBuffer().memoryAddress())
        is_int = str(vector.getClass().getSimpleName()) == "IntVector"
        java_sum = int(self.Kernels.sum(vector)) if is_int else None
        self.emit(VectorChecked(
            vector=name,
            zero_copy=pyarrow_address == java_address,
            sum=pyarrow_sum,
            java_sum=java_sum,
            pyarrow_address=pyarrow_address,
            java_address=java_address,
        ))

    def _step_hold(self, millis: int, vectors: Vectors) -> None:
        time.sleep(millis / 1000)

    def _step_sleep(self, millis: int, vectors: Vectors) -> None:
        time.sleep(millis / 1000)

    def _step_churn(self, spec: ChurnSpec, vectors: Vectors) -> None:
        churn = jpype.JClass("workbench.jvm.ChurnKernel")
        result = churn.run(self.allocators[spec.allocator], spec.threads, jpype.JLong(spec.duration), spec.min_count,
                           spec.max_count, spec.keep_every, jpype.JLong(spec.seed))
        survivors = list(result.survivors)
        self.emit(ChurnDone(allocations=int(result.allocations), survivors=len(survivors), keep=spec.keep))
        if spec.keep is None:
            for vector in survivors:
                vector.close()
        else:
            self.groups[spec.keep] = survivors

    def _step_fault(self, kind: str, vectors: Vectors) -> None:
        sys.stdout.flush()
        jpype.JClass("workbench.jvm.FaultKernels").segfault()

    def _step_gc(self, _: None, vectors: Vectors) -> None:
        self.System.gc()

    def _step_close(self, name: str, vectors: Vectors) -> None:
        if name in vectors:
            vectors.pop(name)[0].close()
        elif name in self.buffers:
            self.VectorKernels.releaseDirect(self.buffers.pop(name))
        elif name in self.groups:
            for vector in self.groups.pop(name):
                vector.close()
        else:
            allocator = self.allocators.pop(name)
            # A leak is reported, not crashed on: Arrow's close() would throw "Memory was leaked".
            if not self._report_leak(name, allocator):
                allocator.close()

    def _report_leak(self, name: str, allocator: Any) -> bool:
        held = int(allocator.getAllocatedMemory())
        if held > 0:
            self.emit(LeakFound(allocator=name, bytes=held, detail=str(allocator.toVerboseString())))
        return held > 0

    def report_open_allocators(self) -> None:
        """At the end of the steps: allocators the scenario never closed that still hold memory are leaks too."""
        for name, allocator in self.allocators.items():
            self._report_leak(name, allocator)


def _linked(existing: Path, path: Path) -> bool:
    """``path`` made a hard link of ``existing`` (the same file, whole from the start); False when it cannot be (no
    hard links on this file system, a name already there, ...): the caller writes it instead."""
    try:
        os.link(existing, path)
    except OSError:
        return False
    return True


def _write_parts(fd: int, parts: list[bytes]) -> None:
    for part in parts:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view):]


def _kind_and_argument(step: Step) -> tuple[str, Any]:
    """A step model has exactly one field, named after its kind (``allocate: {...}``)."""
    kind, argument = next(iter(step))
    return str(kind), argument


def _has_step(steps: list[Step], kind: str) -> bool:
    """Whether ``steps`` hold a step of ``kind``, inside ``repeat`` and ``threads`` steps too."""
    for step in steps:
        name, argument = _kind_and_argument(step)
        if name == kind or name in ("repeat", "threads") and _has_step(argument.steps, kind):
            return True
    return False
