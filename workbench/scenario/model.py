"""The scenario file format, validated by pydantic: every field typed, unknown keys refused."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

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
)

from workbench.units import parse_duration_ms, parse_size

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]
Label = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]
# In the JSON Schema (for editors) sizes and durations are what a file may hold: a number or a string with a unit.
_SIZE_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 0},
                          {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgG]i?[bB]?|[bB])?\s*$"}],
                "examples": ["64MiB", "512KiB", 4096]}
_DURATION_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|min)?\s*$"}],
                    "examples": ["500ms", "1s", "2.5s"]}
Bytes = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE_SCHEMA)]
# Dumped with its unit, so that validating a dumped scenario again gives the same duration.
Millis = Annotated[
    int, BeforeValidator(parse_duration_ms), PlainSerializer(lambda ms: f"{ms}ms", return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]
ValueCount = Annotated[int, Field(ge=0, le=2**31 - 1)]

# Arrow's name for each allocation manager, as read from -Darrow.allocation.manager.type.
ALLOCATION_MANAGER_PROPERTY = {"netty": "Netty", "unsafe": "Unsafe"}
# Bytes per value of each vector type the kernels know.
TYPE_WIDTH = {"IntVector": 4}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SnapshotStep(_Strict):
    """Take a snapshot of every layer, labelled."""

    snapshot: Label


class RootAllocatorSpec(_Strict):
    name: Name = "root"
    limit: Bytes | None = None


class RootAllocatorStep(_Strict):
    """Create Arrow's RootAllocator (optionally with a limit)."""

    root_allocator: RootAllocatorSpec = RootAllocatorSpec()


class AllocateSpec(_Strict):
    vector: Name
    type: Literal["IntVector"] = "IntVector"
    count: ValueCount
    allocator: Name = "root"


class AllocateStep(_Strict):
    """Create a vector in an allocator and ``allocateNew(count)`` it."""

    allocate: AllocateSpec


class FillSpec(_Strict):
    vector: Name
    k: int = 1
    count: ValueCount | None = None


class FillStep(_Strict):
    """Set element i to ``i * k`` for the first ``count`` elements (default: the allocated count), in Java."""

    fill: FillSpec


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


class GcStep(_Strict):
    """``System.gc()``."""

    gc: None = None


class CloseStep(_Strict):
    """Close a vector or an allocator by name."""

    close: Name


STEP_TYPES: dict[str, type[_Strict]] = {
    "snapshot": SnapshotStep,
    "root_allocator": RootAllocatorStep,
    "allocate": AllocateStep,
    "fill": FillStep,
    "set_value_count": SetValueCountStep,
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


Step = Annotated[
    Union[tuple(Annotated[cls, Tag(kind)] for kind, cls in STEP_TYPES.items())],  # type: ignore[valid-type]
    Discriminator(
        _step_kind,
        custom_error_type="unknown_step",
        custom_error_message="expected a mapping with exactly one of: " + ", ".join(STEP_TYPES),
    ),
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


class JvmSpec(_Strict):
    options: list[str] = []


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
    nmt_every: Annotated[int, Field(ge=1)] = 10
    steps: Annotated[list[Step], Field(min_length=1)]
    expect: list[Expectation] = []

    @field_validator("steps", mode="before")
    @classmethod
    def _bare_step_names(cls, value: Any) -> Any:
        # `- gc` is a step without arguments; give it the mapping shape of every other step.
        if isinstance(value, list):
            return [{item: None} if isinstance(item, str) and item in STEP_TYPES else item for item in value]
        return value
