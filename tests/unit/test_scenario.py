from pathlib import Path

import pytest

from workbench._errors import BadInput
from workbench.scenario import bundled_scenarios, load_scenario, resolve_scenario
from workbench.scenario.model import AllocateStep, FillStep, HoldStep, Scenario

HEADER = "name: t\ndescription: d\n"


def load_text(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_scenario(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(BadInput) as info:
        load_text(tmp_path, text)
    assert info.value.exit_code == 2
    return info.value.message.replace(str(tmp_path / "s.yaml"), "FILE")


def test_reference_scenario_is_bundled_and_valid() -> None:
    assert "arrow-intvector" in bundled_scenarios()
    scenario = load_scenario(resolve_scenario("arrow-intvector"))
    assert scenario.allocation_manager == "netty" and scenario.allocator == "jemalloc"
    labels = [s.snapshot for s in scenario.steps if hasattr(s, "snapshot")]
    assert labels == ["baseline", "allocated", "filled", "held", "vector-closed", "allocator-closed"]
    allocate = next(s for s in scenario.steps if isinstance(s, AllocateStep))
    assert (allocate.allocate.vector, allocate.allocate.count) == ("intVector", 100_000)
    assert next(s for s in scenario.steps if isinstance(s, HoldStep)).hold == 1000


def test_unknown_key_names_line_field_and_allowed_keys(tmp_path: Path) -> None:
    text = HEADER + "jvm:\n  options: []\n  heap: 1g\nsteps:\n  - snapshot: a\n"
    assert error_of(tmp_path, text) == "FILE:5: jvm.heap: unknown key (expected one of: options, nmt, jpype_gc_link)"


def test_wrong_type_in_a_step(tmp_path: Path) -> None:
    text = HEADER + "steps:\n  - root_allocator: {}\n  - allocate: {vector: v, count: many}\n"
    message = error_of(tmp_path, text)
    assert message.startswith("FILE:5: steps[1].allocate.count: input should be a valid integer")
    assert message.endswith("got 'many'")


def test_missing_field(tmp_path: Path) -> None:
    assert error_of(tmp_path, "name: t\nsteps:\n  - snapshot: a\n") == "FILE:1: description: missing required field"


def test_unknown_step(tmp_path: Path) -> None:
    message = error_of(tmp_path, HEADER + "steps:\n  - explode: now\n")
    assert message.startswith("FILE:4: steps[0]: unknown step explode; expected a mapping with exactly one of: snapshot")


def test_bad_duration_and_bad_enum(tmp_path: Path) -> None:
    assert error_of(tmp_path, HEADER + "steps:\n  - hold: forever\n") == (
        "FILE:4: steps[0].hold: expected a duration such as 500ms or 1s, got 'forever'"
    )
    message = error_of(tmp_path, HEADER + "allocation_manager: jemalloc\nsteps:\n  - snapshot: a\n")
    assert message.startswith("FILE:3: allocation_manager: input should be 'netty' or 'unsafe'")


def test_reference_to_a_vector_that_is_not_open(tmp_path: Path) -> None:
    text = HEADER + "steps:\n  - root_allocator: {}\n  - fill: {vector: nope, k: 2}\n"
    assert error_of(tmp_path, text) == "FILE:5: steps[1].fill.vector: expected an open vector, got 'nope'"


def test_fill_past_the_allocated_count(tmp_path: Path) -> None:
    text = HEADER + "steps:\n  - root_allocator: {}\n  - allocate: {vector: v, count: 10}\n  - fill: {vector: v, count: 11}\n"
    assert error_of(tmp_path, text) == "FILE:6: steps[2].fill.count: expected at most the allocated 10, got 11 (set_safe grows a vector)"


def test_a_fill_that_writes_with_set_safe_may_grow_the_vector(tmp_path: Path) -> None:
    fill = load_text(tmp_path, HEADER + "steps:\n  - root_allocator: {}\n  - allocate: {vector: v, count: 10}\n"
                     "  - fill: {vector: v, count: 11, write: set_safe}\n  - set_value_count: {vector: v, count: 11}\n"
                     ).steps[2]
    assert isinstance(fill, FillStep) and fill.fill.write == "set_safe"
    text = HEADER + "steps:\n  - root_allocator: {}\n  - allocate: {vector: v, count: 10}\n" \
                    "  - fill: {vector: v, count: 11, write: set}\n"
    assert error_of(tmp_path, text).endswith("steps[2].fill.count: expected at most the allocated 10, got 11 "
                                             "(set_safe grows a vector)")


def test_yaml_syntax_error_has_the_parser_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, HEADER + "steps:\n  - snapshot: [a\n")
    assert message.startswith("FILE:5: not valid YAML:")


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    message = error_of(tmp_path, HEADER + "steps: !!python/object/apply:os.system ['touch pwned']\n")
    assert "not valid YAML" in message
    assert not (tmp_path / "pwned").exists()


def test_unknown_scenario_name_lists_the_bundled_ones() -> None:
    with pytest.raises(BadInput, match=r"no-such: no bundled scenario of that name \(bundled: arrow-intvector"):
        resolve_scenario("no-such")


def test_durations_survive_a_dump_and_validate_round_trip() -> None:
    scenario = load_scenario(resolve_scenario("arrow-intvector"))
    again = Scenario.model_validate(scenario.model_dump(mode="json"))
    assert again == scenario
