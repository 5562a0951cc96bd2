"""Native Memory Tracking's levels, in a scenario (`jvm.nmt`) and on the command line (`--nmt`). A module of its own
without pydantic (``workbench.values`` re-exports it): `workbench exec` checks `--nmt` and starts its program before
it imports pydantic."""

from __future__ import annotations

from typing import Literal, get_args

NmtLevel = Literal["off", "summary", "detail"]
NMT_LEVELS: tuple[str, ...] = get_args(NmtLevel)
