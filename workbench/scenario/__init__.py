"""Scenario files: the format (model) and loading them with per-field errors (loader).

The loader (YAML, the bundled files) is imported on first use: the worker needs only the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.scenario.model import Scenario

if TYPE_CHECKING:
    from workbench.scenario.loader import bundled_scenarios, load_scenario, resolve_scenario

__all__ = ["Scenario", "bundled_scenarios", "load_scenario", "resolve_scenario"]


def __getattr__(name: str) -> Any:
    if name in ("bundled_scenarios", "load_scenario", "resolve_scenario"):
        from workbench.scenario import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
