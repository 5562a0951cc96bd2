"""The scenario file format, validated by pydantic: every field typed, unknown keys refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from workbench._errors import BadInput
from workbench.toolchain.allocators import NAMES, SYSTEM_ALLOCATORS, is_library_path
from workbench.toolchain.settings import check_settings, family_of_backend, parse_spec
from workbench.units import parse_duration_ms
from workbench.values import _DURATION_SCHEMA, Bytes, Label, Millis, Name, NmtLevel

# What the Java kernels take (jvm/): counts and sizes of Java's int, limits and seeds of its long.
JAVA_INT_MAX = 2**31 - 1
JAVA_LONG_MIN, JAVA_LONG_MAX = -(2**63), 2**63 - 1
ValueCount = Annotated[int, Field(ge=0, le=JAVA_INT_MAX)]
JavaLong = Annotated[int, Field(ge=JAVA_LONG_MIN, le=JAVA_LONG_MAX)]
Limit = Annotated[Bytes, Field(ge=0, le=JAVA_LONG_MAX)]
# Threads a scenario may run at once (a threads step times the threads of what it runs, churn's included).
MAX_THREADS = 256

# Arrow's name for each allocation manager, as read from -Darrow.allocation.manager.type.
ALLOCATION_MANAGER_PROPERTY = {"netty": "Netty", "unsafe": "Unsafe"}
# Bytes per value of each fixed-width vector type the kernels know; VarCharVector has 4-byte offsets plus its data.
TYPE_WIDTH = {"IntVector": 4, "BigIntVector": 8, "Float8Vector": 8}
VectorType = Literal["IntVector", "BigIntVector", "Float8Vector", "VarCharVector"]
Manager = Literal["netty", "unsafe"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SnapshotStep(_Strict):
    """Take a snapshot of every layer, labelled."""

    snapshot: Label


class RootAllocatorSpec(_Strict):
    name: Name = "root"
    limit: Limit | None = None
    manager: Manager | None = None  # this allocator's allocation manager; default: the scenario's


class RootAllocatorStep(_Strict):
    """Create Arrow's RootAllocator (optionally with a limit)."""

    root_allocator: RootAllocatorSpec = RootAllocatorSpec()


class ChildAllocatorSpec(_Strict):
    name: Name
    parent: Name = "root"
    limit: Limit | None = None


class ChildAllocatorStep(_Strict):
    """``parent.newChildAllocator(name, 0, limit)``."""

    child_allocator: ChildAllocatorSpec


class AllocateSpec(_Strict):
    vector: Name
    type: VectorType = "IntVector"
    count: ValueCount
    allocator: Name = "root"
    bytes_per_value: Annotated[int, Field(ge=1, le=1 << 20)] = 8  # VarCharVector's data estimate

    @model_validator(mode="after")
    def _data_fits_int_offsets(self) -> AllocateSpec:
        # A VarCharVector's offsets are Java ints: its data buffer cannot pass 2 GiB.
        if self.type == "VarCharVector" and self.count * self.bytes_per_value > JAVA_INT_MAX:
            raise PydanticCustomError(
                "too_large", "expected count x bytes_per_value of at most {limit} for a VarCharVector (its offsets "
                             "are 32-bit), got {count} x {width}",
                {"limit": JAVA_INT_MAX, "count": self.count, "width": self.bytes_per_value})
        return self


class AllocateStep(_Strict):
    """Create a vector in an allocator and ``allocateNew(count)`` it."""

    allocate: AllocateSpec


class FillSpec(_Strict):
    vector: Name
    pattern: Literal["sequence", "constant", "random"] = "sequence"
    k: JavaLong = 1  # sequence: i * k; constant: k; random: uniform in [0, k)
    seed: JavaLong = 0
    count: ValueCount | None = None
    # unchecked: straight into the buffer's memory (at memory speed; count must fit the capacity); set: Arrow's
    # bounds-checked set(i, x) per element, as a hand-written loop does; set_safe: setSafe, which grows the vector.
    write: Literal["unchecked", "set", "set_safe"] = "unchecked"


class FillStep(_Strict):
    """Set element i to ``i * k`` for the first ``count`` elements (default: the allocated count), in Java."""

    fill: FillSpec


class SetSafeSpec(_Strict):
    vector: Name
    count: ValueCount
    pattern: Literal["sequence", "constant", "random"] = "sequence"
    k: JavaLong = 1
    seed: JavaLong = 0


class SetSafeStep(_Strict):
    """Write ``count`` values with ``setSafe``, which reallocates (doubling) past the vector's capacity."""

    set_safe: SetSafeSpec


class TransferSpec(_Strict):
    vector: Name
    to: Name
    as_: Name | None = Field(None, alias="as")


class TransferStep(_Strict):
    """Move a vector's buffers to another allocator (Arrow's TransferPair); ``as`` renames it."""

    transfer: TransferSpec


class SliceSpec(_Strict):
    vector: Name
    start: ValueCount
    length: ValueCount
    as_: Name = Field(alias="as")


class SliceStep(_Strict):
    """A new vector with a range of another (``splitAndTransfer``), in the same allocator."""

    slice: SliceSpec


class DirectBufferSpec(_Strict):
    name: Name
    size: Annotated[Bytes, Field(ge=0, le=JAVA_INT_MAX)]  # ByteBuffer.allocateDirect(int)


class DirectBufferStep(_Strict):
    """``ByteBuffer.allocateDirect(size)`` with every page written; ``close: NAME`` frees it at once."""

    direct_buffer: DirectBufferSpec


class SetValueCountSpec(_Strict):
    vector: Name
    count: ValueCount


class SetValueCountStep(_Strict):
    """``setValueCount(count)``."""

    set_value_count: SetValueCountSpec


class VerifyStep(_Strict):
    """Read the vector from pyarrow zero-copy and compare its address and sum with the Java side."""

    verify: Name


class HoldStep(_Strict):
    """Keep everything as it is for a while (the sampler is what looks meanwhile)."""

    hold: Millis


class ChurnSpec(_Strict):
    threads: Annotated[int, Field(ge=1, le=MAX_THREADS)] = 4
    duration: Millis
    min_count: Annotated[int, Field(ge=1, le=2**28)] = 1024
    max_count: Annotated[int, Field(ge=1, le=2**28)] = 262144
    keep_every: Annotated[int, Field(ge=0, le=JAVA_INT_MAX)] = 64
    keep: Name | None = None
    seed: JavaLong = 0
    allocator: Name = "root"


class ChurnStep(_Strict):
    """Threads allocate, fill and close IntVectors of random sizes; every keep_every-th small one is kept as `keep`."""

    churn: ChurnSpec


class SleepStep(_Strict):
    """The same as ``hold``."""

    sleep: Millis


class RepeatSpec(_Strict):
    times: Annotated[int, Field(ge=1, le=1_000_000)]
    steps: Annotated[list[Step], Field(min_length=1)]


class RepeatStep(_Strict):
    """Run a list of steps N times; vectors allocated inside must be closed inside."""

    repeat: RepeatSpec


class ThreadsSpec(_Strict):
    count: Annotated[int, Field(ge=1, le=MAX_THREADS)]
    steps: Annotated[list[Step], Field(min_length=1)]

    @model_validator(mode="after")
    def _bounded_threads(self) -> ThreadsSpec:
        at_once = threads_at_once(self)
        if at_once > MAX_THREADS:
            raise PydanticCustomError(
                "too_many_threads", "expected at most {limit} threads at once, got {at_once} ({count} threads, each "
                                    "running steps that start {inner})",
                {"limit": MAX_THREADS, "at_once": at_once, "count": self.count, "inner": at_once // self.count})
        return self


def threads_at_once(spec: ThreadsSpec) -> int:
    """How many threads a threads step runs at once: its count times the most that any of its steps starts."""
    return spec.count * max(_step_threads(step) for step in spec.steps)


def _step_threads(step: Any) -> int:
    if isinstance(step, ThreadsStep):
        return threads_at_once(step.threads)
    if isinstance(step, ChurnStep):
        return step.churn.threads
    if isinstance(step, RepeatStep):
        return max(_step_threads(inner) for inner in step.repeat.steps)
    return 1


class ThreadsStep(_Strict):
    """Run a list of steps in N threads at once, each with its own vectors (closed inside)."""

    threads: ThreadsSpec


class FaultStep(_Strict):
    """Fault injection, to test the workbench itself: ``segfault`` writes through Unsafe to address 0."""

    fault: Literal["segfault"]


class GcStep(_Strict):
    """``System.gc()``."""

    gc: None = None


class CloseStep(_Strict):
    """Close a vector or an allocator by name."""

    close: Name


STEP_TYPES: dict[str, type[_Strict]] = {
    "snapshot": SnapshotStep,
    "root_allocator": RootAllocatorStep,
    "child_allocator": ChildAllocatorStep,
    "allocate": AllocateStep,
    "fill": FillStep,
    "set_safe": SetSafeStep,
    "set_value_count": SetValueCountStep,
    "transfer": TransferStep,
    "slice": SliceStep,
    "direct_buffer": DirectBufferStep,
    "repeat": RepeatStep,
    "threads": ThreadsStep,
    "sleep": SleepStep,
    "fault": FaultStep,
    "verify": VerifyStep,
    "hold": HoldStep,
    "gc": GcStep,
    "churn": ChurnStep,
    "close": CloseStep,
}


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in STEP_TYPES else None
    if isinstance(value, BaseModel):
        return next(k for k, cls in STEP_TYPES.items() if isinstance(value, cls))
    return None


def _bare_step_name(value: Any) -> Any:
    # `- gc` is a step without arguments; give it the mapping shape of every other step.
    return {value: None} if isinstance(value, str) and value in STEP_TYPES else value


if TYPE_CHECKING:
    # For the type checker every step is one of the _Strict step models; pydantic gets the tagged union below.
    Step = _Strict
else:
    Step = Annotated[
        Annotated[
            Union[tuple(Annotated[cls, Tag(kind)] for kind, cls in STEP_TYPES.items())],
            Discriminator(
                _step_kind,
                custom_error_type="unknown_step",
                custom_error_message="expected a mapping with exactly one of: " + ", ".join(STEP_TYPES),
            ),
        ],
        BeforeValidator(_bare_step_name),
    ]


COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")
Scalar = Union[int, float, bool, str, None]


class Comparison(_Strict):
    """``{lt: 64MiB}``: one or more comparisons that must all hold; sizes accept units."""

    eq: Scalar = None
    ne: Scalar = None
    lt: Scalar = None
    le: Scalar = None
    gt: Scalar = None
    ge: Scalar = None

    def checks(self) -> list[tuple[str, Any]]:
        return [(op, getattr(self, op)) for op in COMPARISONS if op in self.model_fields_set]


class Expectation(BaseModel):
    """Checked after the run. ``at`` picks a snapshot (paths are then relative to it), ``delta`` compares with the
    change since another snapshot; every other key is a JSON path in the report with its comparisons.
    ``leaks: none`` expects every allocator to be empty when it is closed."""

    model_config = ConfigDict(extra="allow", frozen=True)

    at: Label | None = None
    delta: Label | None = None
    leaks: Literal["none", "allowed"] | None = None

    def paths(self) -> dict[str, Comparison]:
        """The JSON paths this expectation checks, validated into comparisons."""
        extra = self.model_extra or {}
        return {path: Comparison.model_validate(spec) for path, spec in extra.items()}


for _model in (RepeatSpec, ThreadsSpec, RepeatStep, ThreadsStep):
    _model.model_rebuild()




class JvmSpec(_Strict):
    options: list[str] = []
    # Native Memory Tracking: its per-malloc header moves allocations into larger size classes (docs/allocators.md);
    # "off" measures the allocator undisturbed, and the NMT layer is then null.
    nmt: NmtLevel = "summary"
    # JPype's GC link calls System.gc() from a mallinfo() prediction, so the Java heap depends on the allocator
    # (docs/report.md); it is cut at start-up unless this keeps it.
    jpype_gc_link: bool = False


class Scenario(_Strict):
    """One scenario file: what runs in the JVM, under which allocator, and where snapshots are taken."""

    name: Name
    description: str
    allocator: str = "jemalloc"  # NAME or NAME@key:value,... (its settings, see toolchain.settings)
    malloc_conf: str | None = None

    @field_validator("allocator")
    @classmethod
    def _known_allocator(cls, text: str) -> str:
        # The same names a run takes (a library path is checked as a file when the run, or validate, prepares it),
        # and the settings a named allocator has, in range; what the allocator itself takes is tried by the run.
        try:
            spec = parse_spec(text, "allocator")
        except BadInput as error:
            detail = error.message.removeprefix(f"allocator {text}: ")
            raise PydanticCustomError("bad_settings", "{text}: {detail}", {"text": repr(text), "detail": detail}) \
                from None
        name = spec.name
        if name not in NAMES and not is_library_path(name):
            raise PydanticCustomError("unknown_allocator", "unknown allocator '{name}' (expected one of: {names}, or "
                                                           "a path to a .so)", {"name": name, "names": ", ".join(NAMES)})
        if not is_library_path(name):
            backend = SYSTEM_ALLOCATORS[name].backend if name in SYSTEM_ALLOCATORS else name
            try:
                check_settings(family_of_backend(backend), spec.settings, repr(text), name)
            except BadInput as error:
                raise PydanticCustomError("bad_settings", "{message}", {"message": error.message}) from None
        return text
    allocation_manager: Literal["netty", "unsafe"] = "netty"
    jvm: JvmSpec = JvmSpec()
    # The timeline: cheap fields every sample_interval (0 turns sampling off), NMT every nmt_every samples.
    sample_interval: Millis = 100
    # After this the worker's process group is stopped (TERM, then KILL) and the run reported as timed out.
    timeout: Annotated[int, BeforeValidator(parse_duration_ms), PlainSerializer(lambda ms: f"{ms}ms", return_type=str),
                       WithJsonSchema(_DURATION_SCHEMA), Field(gt=0)] = 30 * 60 * 1000
    nmt_every: Annotated[int, Field(ge=1)] = 10
    # Native call sites: async-profiler records mallocs and frees with their stacks (as `--profile` does); "buffers"
    # also turns Arrow's debug allocator on (as `--profile-buffers` does) to name the open buffers.
    profile: Literal["off", "native", "buffers"] = "off"
    steps: Annotated[list[Step], Field(min_length=1)]
    expect: list[Expectation] = []
