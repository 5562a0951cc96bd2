"""Call sites joined with the other layers: each live stack gets an owner from its frames and the Arrow layer, the
last snapshot's unowned bytes are leaks, and findings name the top owners with bytes and frames.

Owners (docs/report.md#native-call-sites):

- ``pool-retained``: allocated by the allocation manager's pool (Netty's PoolArena) while Arrow accounts less than
  the pool holds: the rest is the pool's, kept after the buffers are closed;
- ``arrow-open``: allocated by Arrow and still accounted by it: buffers that are open;
- ``direct-buffer``: ``ByteBuffer.allocateDirect`` outside Arrow and Netty, freed when its buffer is collected;
- ``jvm``: the JVM's own (compiler arenas, class loading and zip, GC, symbols, threads);
- ``workbench``: the worker's own Python interpreter (PYTHONMALLOC=malloc sends its objects through malloc), JPype
  and the snapshot reader: no Java frame but JPype's, and no library but those (and the C library or the allocator);
- ``other``: everything else (the application's Unsafe or JNI mallocs, pyarrow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workbench.probes.callsites import OWNERS, ArrowBuffer, CallSite, Owner, SnapshotCallSites
from workbench.protocol.callsites import RecordedSite, RecordedStack, Recording
from workbench.report.model import Report, Snapshot
from workbench.units import format_bytes

TOP_SITES = 20  # per snapshot, by live bytes, in the report
TOP_GROWTH = 10  # per snapshot, by growth since the previous one
OWNER_NAMES: dict[str, str] = {
    "pool-retained": "pool-retained", "arrow-open": "open Arrow buffers", "direct-buffer": "direct ByteBuffers",
    "jvm": "JVM internal", "workbench": "the workbench's own", "other": "application/other",
}
# Frames that only pass an allocation on: a call site is named after the first frame above them.
_WRAPPERS = frozenset({
    "os::malloc", "os::realloc", "AllocateHeap", "ReallocateHeap", "malloc", "calloc", "realloc", "free",
    "operator new", "operator new[]", "posix_memalign", "aligned_alloc", "Unsafe_AllocateMemory0",
    "Unsafe_ReallocateMemory0", "ChunkPool::allocate", "Arena::grow", "Chunk::operator new", "CHeapObj::operator new",
    "je_malloc", "je_calloc", "je_realloc", "PyMem_RawMalloc", "PyMem_Malloc", "PyObject_Malloc", "_PyObject_Malloc",
})
_JDK_PACKAGES = ("java.", "javax.", "jdk.", "sun.", "com.sun.")
# Libraries a malloc passes through on its way in, whoever asked for it.
_MALLOC_LIBRARIES = ("libc.", "libstdc++", "libjemalloc", "libtcmalloc", "libmimalloc", "libgcc_s", "ld-linux")
# The worker's own: its interpreter (``python3.11`` is the executable, ``libpython3.11.so`` its library), JPype's
# extension (``_jpype.cpython-311-x86_64-linux-gnu.so``) and the snapshot reader (``libworkbench-probe.so``).
_WORKBENCH_LIBRARIES = ("libpython", "python3", "_jpype", "libworkbench")
# Java frames through which memory is handed out as such (not a class loaded or a method compiled on the way).
_ALLOCATING = ("jdk.internal.misc.Unsafe.allocateMemory", "jdk.internal.misc.Unsafe.reallocateMemory",
               "sun.misc.Unsafe.allocateMemory", "sun.misc.Unsafe.reallocateMemory", "java.nio.DirectByteBuffer.<init>",
               "io.netty.util.internal.PlatformDependent.allocateMemory")
_CHUNKS = ("newChunk", "newUnpooledChunk")
# The JVM's own memory, by what its native frames say (first match from the top of this list).
_JVM_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("compiler", ("CompileBroker", "Compile::", "C2Compiler", "Compilation::", "ciEnv", "PhaseIdealLoop",
                  "LinearScan", "JVMCI", "CodeBuffer")),
    ("GC", ("G1", "GCTask", "CollectedHeap", "ParallelScavenge", "PSScavenge", "Shenandoah", "ZHeap", "ZPage",
            "SerialHeap", "CardTable", "GCId", "WorkerThread", "ConcurrentGCThread")),
    ("class loading/zip", ("ClassFileParser", "ClassLoader", "SystemDictionary", "ClassLoaderData", "Metaspace",
                           "ZIP_", "inflate", "Inflater", "java.util.zip.", "JarFile", "ZipFile", "Java_java_util_zip")),
    ("symbols", ("SymbolTable", "Symbol::", "StringTable")),
    ("JVMTI", ("Jvmti", "JvmtiEnv")),
    ("NMT", ("MallocSiteTable", "MemTracker", "NativeCallStack")),
    ("threads", ("Thread::", "JavaThread", "thread_native_entry", "os::create_thread")),
)


def is_java(stack: RecordedStack, index: int) -> bool:
    """Whether frame ``index`` of the stack is a Java frame."""
    return index < len(stack.kinds) and stack.kinds[index] == "J"


def short_frame(frame: str, java: bool = True) -> str:
    """``io.netty.buffer.PoolArena$DirectArena.newChunk`` as ``PoolArena$DirectArena.newChunk``."""
    if not java or "." not in frame:
        return frame
    owner, method = frame.rsplit(".", 1)
    return f"{owner.rsplit('.', 1)[-1]}.{method}"


def _is_workbench_library(library: str) -> bool:
    """The interpreter, its extension modules (``_json.cpython-311-x86_64-linux-gnu.so``; pyarrow's come with
    libarrow, which is not one of these, so a stack through it stays the application's), JPype, the probe."""
    return library.startswith(_WORKBENCH_LIBRARIES) or ".cpython-" in library


def _is_app(frame: str) -> bool:
    return not frame.startswith(_JDK_PACKAGES)


@dataclass(frozen=True)
class _Kind:
    group: str  # "pool", "arrow", "direct-buffer", "jvm", "other"
    detail: str
    by: str  # the frame that allocated, short
    under: str  # the frame it was allocated for (the vector's or the application's), short; "" when none


def _kind(stack: RecordedStack) -> _Kind:
    frames = stack.frames
    java = [i for i in range(len(frames)) if is_java(stack, i)]
    # Native frames that name something: not a malloc wrapper, not a library without symbols ("libz.so.1.2.13").
    native_top = [frames[i] for i in range(len(frames))
                  if not is_java(stack, i) and frames[i] not in _WRAPPERS and ".so" not in frames[i]]
    app = [i for i in java if _is_app(frames[i])]
    vector = [i for i in java if frames[i].startswith("org.apache.arrow.vector.")]
    arrow = [i for i in java if frames[i].startswith("org.apache.arrow.")]
    pool = [i for i in java if frames[i].startswith("io.netty.buffer.PoolArena")]
    chunk = [i for i in pool if frames[i].rsplit(".", 1)[-1] in _CHUNKS]
    allocating = any(frames[i].startswith(_ALLOCATING) for i in java)
    # A buffer's memory is allocated by constructing its allocation manager; Arrow's own static data (a <clinit>'s
    # 8 bytes, on the way to a manager factory) is not a buffer.
    manager = [i for i in arrow if frames[i].endswith("AllocationManager.<init>")]
    outer = vector or arrow or app
    under = short_frame(frames[outer[0]]) if outer else ""

    def innermost(indices: Sequence[int]) -> str:
        return short_frame(frames[indices[-1]]) if indices else ""

    if allocating and pool and manager:
        return _Kind("pool", "Netty PoolArena", innermost(chunk or pool), under)
    if allocating and manager:
        return _Kind("arrow", short_frame(frames[manager[-1]]).split(".")[0],
                     innermost([i for i in arrow if i > (vector or [-1])[-1]] or arrow), under)
    if allocating and pool:
        return _Kind("other", "Netty pool (not Arrow's)", innermost(chunk or pool), under)
    if allocating and any(frames[i] in ("java.nio.ByteBuffer.allocateDirect", "java.nio.DirectByteBuffer.<init>") for i in java):
        return _Kind("direct-buffer", "", innermost(app) or "ByteBuffer.allocateDirect", short_frame(frames[app[0]]) if app else "")
    # JPype's own Java code calling back into the interpreter (its class wrappers) is the workbench's too.
    bridge = all(frames[i].startswith("org.jpype.") for i in java)
    if bridge and stack.libraries and all(lib.startswith(_MALLOC_LIBRARIES) or _is_workbench_library(lib)
                                          for lib in stack.libraries) \
            and any(_is_workbench_library(lib) for lib in stack.libraries):
        part = "JPype" if java or any(lib.startswith("_jpype") for lib in stack.libraries) else \
            "snapshot reader" if any(lib.startswith("libworkbench") for lib in stack.libraries) else "Python"
        return _Kind("workbench", part, native_top[-1] if native_top else "?", "")
    text = " ".join(frames)
    through_jvm = "libjvm.so" in stack.libraries and not any(
        f in ("Unsafe_AllocateMemory0", "Unsafe_ReallocateMemory0") for f in frames)
    if through_jvm or any(frames[i].startswith(("java.util.zip.", "java.util.jar.")) for i in java):
        for part, needles in _JVM_PARTS:
            if any(needle in text for needle in needles):
                return _Kind("jvm", part, (native_top or [innermost(java)])[-1], under if app else "")
        if through_jvm:
            return _Kind("jvm", "other JVM", (native_top or [innermost(java)])[-1], under if app else "")
    library = next((lib for lib in stack.libraries if not lib.startswith(_MALLOC_LIBRARIES)), "")
    by = innermost(app) or (native_top[-1] if native_top else innermost(java))
    # The application's own Unsafe malloc (not the JDK's, e.g. sun.nio.fs.NativeBuffer's cache) is freed by nothing
    # but its freeMemory: a leak when left at the end.
    unsafe = bool(app) and any("Unsafe.allocateMemory" in frames[i] for i in java)
    return _Kind("other", "Unsafe.allocateMemory" if unsafe else library, by, under if under != by else "")


def stack_name(stack: RecordedStack) -> str:
    """What allocated a recorded stack, as its call site is named."""
    return _name(_kind(stack), stack.frames)


def _name(kind: _Kind, frames: list[str]) -> str:
    """What allocated a call site, in a few words: ``PoolArena$DirectArena.newChunk under
    BaseFixedWidthVector.allocateNew``, ``IndexSet::initialize (compiler)``."""
    if kind.group in ("jvm", "workbench"):
        return f"{kind.by or '?'} ({kind.detail})"
    if kind.under and kind.under != kind.by:
        return f"{kind.by} under {kind.under}"
    return kind.by or (frames[-1] if frames else "?")


def _main_step(site: RecordedSite) -> int | None:
    if not site.steps:
        return None
    step = min(site.steps.items(), key=lambda item: (-item[1], int(item[0])))[0]
    return None if int(step) < 0 else int(step)


def _steps(site: RecordedSite) -> list[int]:
    return sorted(int(step) for step in site.steps)


def classify(recording: Recording, snapshots: Sequence[Snapshot], step_kinds: dict[int, str], arrow_leaked: bool,
             collapsed: dict[str, str]) -> tuple[dict[str, SnapshotCallSites], list[CallSite]]:
    """Each snapshot's call sites with owners (by label), and the last snapshot's leaks. ``arrow_leaked``: the run
    found an Arrow allocator holding memory when it was closed or at the end."""
    kinds = [_kind(stack) for stack in recording.stacks]
    arrow_by_label = {s.label: (s.arrow.allocated_bytes if s.arrow else None) for s in snapshots}
    result: dict[str, SnapshotCallSites] = {}
    previous: dict[int, RecordedSite] = {}
    leaks: list[CallSite] = []
    for number, recorded in enumerate(recording.snapshots):
        last = number == len(recording.snapshots) - 1
        accounted = _arrow_shares(recorded.sites, kinds, arrow_by_label.get(recorded.label))
        sites: list[CallSite] = []
        owners = dict.fromkeys(OWNERS, 0)
        current = {site.stack: site for site in recorded.sites}
        for site in recorded.sites:
            kind = kinds[site.stack]
            owner, share = _owner(kind, site, accounted)
            before = previous.get(site.stack)
            step = _main_step(site)
            stack = recording.stacks[site.stack]
            call_site = CallSite(
                frames=stack.frames, name=_name(kind, stack.frames), kinds=stack.kinds, bytes=site.bytes, count=site.count,
                delta_bytes=site.bytes - (before.bytes if before else 0),
                delta_count=site.count - (before.count if before else 0),
                owner=owner, detail=kind.detail, step=step, step_kind=step_kinds.get(step) if step is not None else None,
                steps=_steps(site), arrow_accounted_bytes=share,
            )
            if last and _is_leak(call_site, kind, arrow_leaked):
                call_site = CallSite(**{**call_site.__dict__, "leak": True})
                leaks.append(call_site)
            owners[owner] += site.bytes
            sites.append(call_site)
        freed = [_freed(recording.stacks[stack], kinds[stack], site, step_kinds)
                 for stack, site in previous.items() if stack not in current]
        growth = sorted((s for s in [*sites, *freed] if s.delta_bytes), key=lambda s: -abs(s.delta_bytes))
        result[recorded.label] = SnapshotCallSites(
            live_bytes=recorded.live_bytes, live_count=recorded.live_count,
            owners={owner: value for owner, value in owners.items() if value},
            sites=sites[:TOP_SITES], growth=growth[:TOP_GROWTH] if number else [], stacks=len(recorded.sites),
            collapsed=collapsed.get(recorded.label, ""),
        )
        previous = current
    return result, leaks


def _freed(stack: RecordedStack, kind: _Kind, before: RecordedSite, step_kinds: dict[int, str]) -> CallSite:
    """A stack live at the previous snapshot and gone at this one: its growth is minus what it had."""
    step = _main_step(before)
    return CallSite(frames=stack.frames, name=_name(kind, stack.frames), kinds=stack.kinds, bytes=0, count=0,
                    delta_bytes=-before.bytes, delta_count=-before.count, owner=_owner(kind, before, {})[0],
                    detail=kind.detail, step=step, step_kind=step_kinds.get(step) if step is not None else None,
                    steps=_steps(before))


def _arrow_shares(sites: list[RecordedSite], kinds: list[_Kind], arrow_bytes: int | None) -> dict[int, int]:
    """What of each Arrow-allocated stack's live bytes Arrow accounts: direct allocations first (each is a buffer),
    the pool's chunks in proportion to their bytes for what is left."""
    if arrow_bytes is None:
        return {}
    shares: dict[int, int] = {}
    remaining = arrow_bytes
    for group in ("arrow", "pool"):
        members = [s for s in sites if kinds[s.stack].group == group]
        total = sum(s.bytes for s in members)
        covered = min(remaining, total)
        for site in members:
            shares[site.stack] = site.bytes if covered >= total else site.bytes * covered // max(total, 1)
        remaining -= covered
    return shares


def _owner(kind: _Kind, site: RecordedSite, shares: dict[int, int]) -> tuple[Owner, int | None]:
    share = shares.get(site.stack)
    if kind.group == "pool":
        return ("arrow-open" if share is None or share >= site.bytes else "pool-retained"), share
    if kind.group == "arrow":
        return ("arrow-open" if share is None or share > 0 else "other"), share
    groups = ("direct-buffer", "jvm", "workbench")
    owner: Owner = kind.group if kind.group in groups else "other"  # type: ignore[assignment]
    return owner, None


def _is_leak(site: CallSite, kind: _Kind, arrow_leaked: bool) -> bool:
    """Live at the end and owned by nothing that will free it: Arrow buffers of an allocator that was closed (or
    left) holding them, Arrow's direct allocations it no longer accounts, the application's own Unsafe mallocs."""
    if site.step is None:
        return False  # from before the steps (start-up)
    if kind.group == "arrow":
        return arrow_leaked or (site.arrow_accounted_bytes is not None and site.arrow_accounted_bytes < site.bytes)
    if kind.group == "pool":
        return arrow_leaked and site.owner == "arrow-open"
    return kind.group == "other" and kind.detail == "Unsafe.allocateMemory"


def step_name(site: CallSite) -> str:
    """``step 2 (allocate)``, ``steps 2-21 (20 steps; most in 2, allocate)``, ``before the first step``."""
    if site.step is None:
        return "before the first step"
    kind = f", {site.step_kind}" if site.step_kind else ""
    steps = [s for s in site.steps if s >= 0]
    if len(steps) > 1:
        return f"steps {steps[0]}-{steps[-1]} ({len(steps)} steps; most in {site.step}{kind})"
    return f"step {site.step}" + (f" ({site.step_kind})" if site.step_kind else "")


def step_short(site: CallSite) -> str:
    """The step column of a call-site table: ``2 allocate``, ``2-21 allocate``, ``start-up``."""
    if site.step is None:
        return "start-up"
    steps = [s for s in site.steps if s >= 0]
    shown = f"{steps[0]}-{steps[-1]}" if len(steps) > 1 else str(site.step)
    return f"{shown} {site.step_kind or ''}".strip()


def leak_reason(site: CallSite) -> str:
    """Why nothing will free a leaked call site."""
    if site.owner == "arrow-open":
        return "their vectors are open and their Arrow allocator was found holding them when it was closed or at the end"
    if site.arrow_accounted_bytes is not None:
        return "Arrow allocated them and no longer accounts them"
    return "memory from Unsafe.allocateMemory is freed only by an explicit freeMemory"


@dataclass(frozen=True)
class LastProfiled:
    """The last snapshot with call sites, its call sites, how they were recorded (in words), whether Arrow's debug
    allocator was on, and every profiled snapshot."""

    snapshot: Snapshot
    sites: SnapshotCallSites
    tool: str
    interval: str
    arrow_debug: bool
    profiled: tuple[Snapshot, ...]


def last_profiled(report: Report) -> LastProfiled | None:
    """What the text and Markdown reports show of the call sites: the last profiled snapshot; None when the run was
    not profiled."""
    profiled = [s for s in report.snapshots if s.call_sites is not None]
    if not profiled or report.profile is None:
        return None
    last = profiled[-1]
    assert last.call_sites is not None
    profile = report.profile
    interval = (f"one malloc recorded per {format_bytes(profile.interval_bytes)} allocated and every larger one"
                if profile.interval_bytes else "every malloc")
    return LastProfiled(last, last.call_sites, profile.tool, interval, profile.arrow_debug, tuple(profiled))


def findings(report: Report) -> list[str]:
    """Sentences on the call sites: the last snapshot's top owners with bytes and frames, the Arrow stacks and what
    Arrow accounts of them, the leaks."""
    profiled = [s for s in report.snapshots if s.call_sites is not None]
    if not profiled:
        if report.profile is not None and report.profile.error:
            return [f"No native call sites: {report.profile.error}"]
        return []
    lines: list[str] = []
    last = profiled[-1]
    assert last.call_sites is not None
    owners = sorted(last.call_sites.owners.items(), key=lambda item: -item[1])
    parts = []
    for owner, value in owners[:3]:
        top = next((s for s in last.call_sites.sites if s.owner == owner), None)
        parts.append(f"{OWNER_NAMES[owner]} {value:,} B" + (f" (top: {top.name}, {top.bytes:,} B)" if top else ""))
    lines.append(f"At '{last.label}' {last.call_sites.live_bytes:,} B of native memory allocated since the recording "
                 f"started are live in {last.call_sites.stacks:,} stacks: " + "; ".join(parts) + ".")
    # The largest Arrow-made stack: what Arrow accounts of it where it first appears, and at the end if that changed.
    arrow = [(snapshot, site) for snapshot in profiled for site in snapshot.call_sites.sites  # type: ignore[union-attr]
             if site.arrow_accounted_bytes is not None and site.step is not None]
    if arrow:
        frames = max(arrow, key=lambda pair: pair[1].bytes)[1].frames
        mentions = [(snapshot, site) for snapshot, site in arrow if site.frames == frames]
        said: tuple[str, int | None, int] | None = None
        for snapshot, site in (mentions[0], mentions[-1]):
            if (site.owner, site.arrow_accounted_bytes, site.bytes) != said:
                said = (site.owner, site.arrow_accounted_bytes, site.bytes)
                lines.append(_arrow_sentence(snapshot.label, site))
        if mentions[-1][0] is not last:
            lines.append(f"Nothing allocated by {mentions[-1][1].name} is still live at '{last.label}'.")
    lines += buffer_findings(report)
    for site in report.profile.leaks if report.profile else []:
        lines.append(f"Leak: {site.bytes:,} B in {site.count:,} allocation(s) from {step_name(site)} by "
                     f"{site.name} are still live at '{last.label}' and owned by nothing that will free them "
                     f"({leak_reason(site)}).")
    return lines


def buffer_findings(report: Report) -> list[str]:
    """``--profile-buffers``: the open Arrow buffers of the last snapshot that listed them, by the call site that
    holds them and the steps that allocated them."""
    if report.profile is None or not report.profile.arrow_debug:
        return []
    listed = [s for s in report.snapshots if s.call_sites is not None and s.call_sites.arrow_buffers is not None]
    if not listed:
        return ["Arrow's debug allocator was on (--profile-buffers), but no snapshot listed its buffers."]
    last = listed[-1]
    assert last.call_sites is not None and last.call_sites.arrow_buffers is not None
    buffers = last.call_sites.arrow_buffers
    said = (f"Arrow's debug allocator (--profile-buffers; its logs take Java heap, measured too) lists "
            f"{len(buffers):,} open buffer(s) at '{last.label}', {sum(b.bytes for b in buffers):,} B")
    if not buffers:
        return [said + "."]
    groups: dict[tuple[str | None, str | None, str], list[ArrowBuffer]] = {}
    for buffer in buffers:
        groups.setdefault((buffer.call_site, buffer.join, buffer.allocated_at), []).append(buffer)
    parts = []
    for (call_site, join, at), members in sorted(groups.items(), key=lambda item: -sum(b.bytes for b in item[1])):
        steps = sorted({b.step for b in members if b.step is not None})
        kinds = sorted({b.step_kind for b in members if b.step_kind})
        shown = (f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}" if steps
                 else "before the first step") + (f" ({', '.join(kinds)})" if kinds else "")
        held = (f"held by the call site {call_site} (joined by {join})" if call_site
                else "in no recorded call site")
        parts.append(f"{len(members):,} of {sum(b.bytes for b in members):,} B allocated at {at} in {shown}, {held}")
    return [said + ": " + "; ".join(parts) + "."]


def _arrow_sentence(label: str, site: CallSite) -> str:
    sentence = (f"At '{label}' {site.bytes:,} B were allocated by {site.name} in {step_name(site)}; Arrow accounts "
                f"{site.arrow_accounted_bytes:,} B of them")
    if site.owner == "pool-retained":
        return sentence + (", so the pool keeps them (pool-retained)." if site.arrow_accounted_bytes == 0
                           else ", the pool holds the rest.")
    return sentence + (": open Arrow buffers." if site.owner == "arrow-open" else ".")
