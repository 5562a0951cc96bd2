"""Scenario files: the format (model) and loading them with per-field errors (loader)."""

from workbench.scenario.loader import bundled_scenarios, load_scenario, resolve_scenario
from workbench.scenario.model import Scenario

__all__ = ["Scenario", "bundled_scenarios", "load_scenario", "resolve_scenario"]
