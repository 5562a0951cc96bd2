"""Where a preloaded library came from: recorded in the report of every run that uses it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provenance:
    kind: str  # "built" (by `workbench build`), "system" (a distribution package), "file" (a path given), "none"
    package: str | None = None  # the distribution package and its version, for system libraries
    library_sha256: str | None = None
    configure_args: list[str] | None = None
    source: str | None = None
    source_sha256: str | None = None
