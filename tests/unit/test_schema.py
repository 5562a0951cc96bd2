import json
from pathlib import Path

import jsonschema
import yaml

from workbench.scenario import bundled_scenarios
from workbench.scenario.schema import scenario_schema

SHIPPED = Path(__file__).resolve().parents[2] / "workbench" / "scenario" / "scenario.schema.json"


def test_shipped_schema_is_the_models_schema() -> None:
    assert json.loads(SHIPPED.read_text()) == scenario_schema(), (
        "regenerate: python -m workbench.scenario.schema > workbench/scenario/scenario.schema.json"
    )


def test_every_bundled_scenario_validates_against_the_schema() -> None:
    schema = json.loads(SHIPPED.read_text())
    for path in bundled_scenarios().values():
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_schema_refuses_an_unknown_top_level_key_and_accepts_units() -> None:
    schema = json.loads(SHIPPED.read_text())
    good = {"name": "n", "description": "d", "steps": [{"root_allocator": {"limit": "64MiB"}}, {"hold": "500ms"}]}
    jsonschema.validate(good, schema)
    bad = {**good, "allocatr": "x"}
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError as error:
        assert "allocatr" in error.message
    else:
        raise AssertionError("an unknown key passed the schema")
