"""Values a user gives in a scenario file, on the command line or over a control socket: one validated type each.

The scenario model (YAML), the CLI options and `workbench snapshot`'s socket all take labels, durations and sizes
through these types, so that a value one of them accepts is accepted by the others and means the same.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, PlainSerializer, TypeAdapter, ValidationError, WithJsonSchema

from workbench.nmt_level import NmtLevel as NmtLevel  # re-exported: Native Memory Tracking's levels
from workbench.units import parse_duration_ms, parse_size

# A label names files in the run directory (smaps/<label>.txt): no separator, no leading dot.
LABEL_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
LABEL_MAX = 128
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"

Label = Annotated[str, Field(min_length=1, max_length=LABEL_MAX, pattern=LABEL_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)]

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

_LABEL = TypeAdapter(Label)


def parse_label(value: str) -> str:
    """A snapshot label as the scenario language allows it; ValueError saying what is expected otherwise."""
    try:
        return _LABEL.validate_python(value)
    except ValidationError:
        raise ValueError(f"expected a label of 1-{LABEL_MAX} letters, digits, '_', '.' or '-' that does not start "
                         f"with '.' or '-', got {value!r}") from None

