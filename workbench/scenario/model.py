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
)

from workbench.units import parse_duration_ms
from workbench.values import _DURATION_SCHEMA, Bytes, Label, Millis, Name

ValueCount = Annotated[int, Field(ge=0, le=2**31 - 1)]

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
    limit: Bytes | None = None
    manager: Manager | None = None  # this allocator's allocation manager; default: the scenario's


class RootAllocatorStep(_Strict):
    """Create Arrow's RootAllocator (optionally with a limit)."""

    root_allocator: RootAllocatorSpec = RootAllocatorSpec()


class ChildAllocatorSpec(_Strict):
    name: Name
    parent: Name = "root"
    limit: Bytes | None = None


class ChildAllocatorStep(_Strict):
    """``parent.newChildAllocator(name, 0, limit)``."""

    child_allocator: ChildAllocatorSpec


class AllocateSpec(_Strict):
    vector: Name
    type: VectorType = "IntVector"
    count: ValueCount
    allocator: Name = "root"
    bytes_per_value: Annotated[int, Field(ge=1, le=1 << 20)] = 8  # VarCharVector's data estimate


class AllocateStep(_Strict):
    """Create a vector in an allocator and ``allocateNew(count)`` it."""

    allocate: AllocateSpec


class FillSpec(_Strict):
    vector: Name
    pattern: Literal["sequence", "constant", "random"] = "sequence"
    k: int = 1  # sequence: i * k; constant: k; random: uniform in [0, k)
    seed: int = 0
    count: ValueCount | None = None


class FillStep(_Strict):
    """Set element i to ``i * k`` for the first ``count`` elements (default: the allocated count), in Java."""

    fill: FillSpec


class SetSafeSpec(_Strict):
    vector: Name
    count: ValueCount
    pattern: Literal["sequence", "constant", "random"] = "sequence"
    k: int = 1
    seed: int = 0


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
    size: Bytes


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
    threads: Annotated[int, Field(ge=1, le=256)] = 4
    duration: Millis
    min_count: Annotated[int, Field(ge=1, le=2**28)] = 1024
    max_count: Annotated[int, Field(ge=1, le=2**28)] = 262144
    keep_every: Annotated[int, Field(ge=0)] = 64
    keep: Name | None = None
    seed: int = 0
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
    count: Annotated[int, Field(ge=1, le=256)]
    steps: Annotated[list[Step], Field(min_length=1)]


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


NmtLevel = Literal["off", "summary", "detail"]


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
    allocator: str = "jemalloc"
    malloc_conf: str | None = None
    allocation_manager: Literal["netty", "unsafe"] = "netty"
    jvm: JvmSpec = JvmSpec()
    # The timeline: cheap fields every sample_interval (0 turns sampling off), NMT every nmt_every samples.
    sample_interval: Millis = 100
    # After this the worker's process group is stopped (TERM, then KILL) and the run reported as timed out.
    timeout: Annotated[int, BeforeValidator(parse_duration_ms), PlainSerializer(lambda ms: f"{ms}ms", return_type=str),
                       WithJsonSchema(_DURATION_SCHEMA), Field(gt=0)] = 30 * 60 * 1000
    nmt_every: Annotated[int, Field(ge=1)] = 10
    steps: Annotated[list[Step], Field(min_length=1)]
    expect: list[Expectation] = []
