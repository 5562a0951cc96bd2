"""The scenario format as JSON Schema, for editors' YAML language servers (shipped as scenario.schema.json).

Regenerate the shipped file with ``python -m workbench.scenario.schema > workbench/scenario/scenario.schema.json``;
a unit test fails when it is out of date.
"""

from __future__ import annotations

import json
from typing import Any

from workbench.scenario.model import Scenario

SCHEMA_ID = "https://jvm-offheap-workbench.invalid/scenario.schema.json"


def scenario_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "workbench scenario", **schema}


if __name__ == "__main__":
    print(json.dumps(scenario_schema(), indent=2))
