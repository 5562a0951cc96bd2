"""Load a scenario file into a Scenario, or fail with one line per problem: file, line, field path, expectation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from workbench._errors import BadInput
from workbench._resources import scenarios_dir
from workbench.scenario.model import COMPARISONS, STEP_TYPES, Comparison, Scenario
from workbench.units import parse_size

Path_ = tuple[str | int, ...]


def bundled_scenarios() -> dict[str, Path]:
    """Bundled scenario names and their files."""
    return {p.stem: p for p in sorted(scenarios_dir().glob("*.yaml"))}


def resolve_scenario(name_or_path: str) -> Path:
    """A bundled scenario's name, or a path to a YAML file."""
    bundled = bundled_scenarios()
    if name_or_path in bundled:
        return bundled[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        raise BadInput(f"{name_or_path}: no such scenario file")
    raise BadInput(
        f"{name_or_path}: no bundled scenario of that name (bundled: {', '.join(bundled)}); "
        "or give the path to a YAML file"
    )


def load_scenario(path: Path) -> Scenario:
    """Parse and validate a scenario file (safe YAML loader; nothing in it is ever executed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read scenario file: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        position = getattr(exc, "position", None)  # the reader's errors (bad characters) have an offset instead
        line = mark.line + 1 if mark is not None else text[:position].count("\n") + 1 if position is not None else None
        where = f":{line}" if line is not None else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise BadInput(f"{path}{where}: not valid YAML: {problem}") from None
    lines = _line_numbers(node) if node is not None else {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}:1: expected a mapping with name, description and steps at the top level")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise BadInput("\n".join(_describe(path, lines, data, err) for err in exc.errors())) from None
    _check_references(path, lines, scenario)
    return scenario


def _line_numbers(node: yaml.Node, path: Path_ = ()) -> dict[Path_, int]:
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(_line_numbers(value, (*path, key.value)))
            lines[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_numbers(item, (*path, index)))
    return lines


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _where(path: Path, lines: dict[Path_, int], loc: Path_) -> str:
    line = _line_of(lines, loc)
    return f"{path}:{line}: {_dotted(loc)}" if line else f"{path}: {_dotted(loc)}"


def _describe(path: Path, lines: dict[Path_, int], data: Any, err: Any) -> str:
    loc: Path_ = tuple(err["loc"])
    # A step's location repeats its tag (steps, 3, fill, fill, k): the union's branch, then the field.
    if len(loc) >= 4 and loc[0] == "steps" and loc[2] == loc[3]:
        loc = loc[:2] + loc[3:]
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _fields_at(loc[:-1])
        expected = f" (expected one of: {', '.join(parent)})" if parent else ""
        return f"{_where(path, lines, loc)}: unknown key{expected}"
    if kind == "missing":
        return f"{_where(path, lines, loc)}: missing required field"
    if kind == "unknown_step":
        got = err.get("input")
        shown = ", ".join(map(str, got)) if isinstance(got, dict) else repr(got)
        return f"{_where(path, lines, loc)}: unknown step {shown!s}; {err['msg']}"
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None or repr(got) in message else f", got {got!r}"
    return f"{_where(path, lines, loc)}: {message[0].lower()}{message[1:]}{shown}"


def _fields_at(loc: Path_) -> list[str]:
    """Field names allowed at a location, for 'expected one of' in unknown-key errors."""
    from pydantic import BaseModel

    model: type[BaseModel] | None = Scenario
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        if part in STEP_TYPES and model is Scenario:
            model = STEP_TYPES[part]
            continue
        field = model.model_fields.get(part)
        if field is None:
            # The tag of a step inside `steps` names the step model.
            if part in STEP_TYPES:
                model = STEP_TYPES[part]
                continue
            return []
        annotation = field.annotation
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        model = next((a for a in candidates if issubclass(a, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


_JSON_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_ -]*(\.[A-Za-z0-9_][A-Za-z0-9_ -]*)*$")


def _check_expectations(path: Path, lines: dict[Path_, int], scenario: Scenario, labels: set[str]) -> None:
    for index, expectation in enumerate(scenario.expect):
        where: Path_ = ("expect", index)
        for key in ("at", "delta"):
            label = getattr(expectation, key)
            if label is not None and label not in labels:
                raise BadInput(f"{_where(path, lines, (*where, key))}: expected a snapshot label of this scenario "
                               f"({', '.join(sorted(labels)) or 'none'}), got {label!r}")
        if expectation.delta is not None and expectation.at is None:
            raise BadInput(f"{_where(path, lines, (*where, 'delta'))}: 'delta' needs 'at' (the snapshot to compare)")
        extra = expectation.model_extra or {}
        if not extra and expectation.leaks is None:
            raise BadInput(f"{_where(path, lines, where)}: expected at least one JSON path with comparisons "
                           "(e.g. arrow.allocated_bytes: {eq: 0}) or leaks: none")
        for json_path, spec in extra.items():
            loc: Path_ = (*where, json_path)
            if not _JSON_PATH.match(json_path):
                raise BadInput(f"{_where(path, lines, loc)}: expected a dotted JSON path such as "
                               "process.anon_rss_bytes")
            try:
                comparison = Comparison.model_validate(spec)
            except ValidationError as exc:
                raise BadInput(_describe_comparison(path, lines, loc, exc)) from None
            if not comparison.checks():
                raise BadInput(f"{_where(path, lines, loc)}: expected at least one of {', '.join(COMPARISONS)}")
            for op, value in comparison.checks():
                if op in ("lt", "le", "gt", "ge") and not _is_number_or_size(value):
                    raise BadInput(f"{_where(path, lines, (*loc, op))}: expected a number or a size such as 64MiB, "
                                   f"got {value!r}")


def _describe_comparison(path: Path, lines: dict[Path_, int], loc: Path_, exc: ValidationError) -> str:
    err = exc.errors()[0]
    if err["type"] == "extra_forbidden":
        return f"{_where(path, lines, (*loc, *err['loc']))}: unknown comparison (expected one of: {', '.join(COMPARISONS)})"
    if err["type"] == "model_type":
        return f"{_where(path, lines, loc)}: expected a mapping of comparisons such as {{lt: 64MiB}}"
    return f"{_where(path, lines, (*loc, *err['loc']))}: {err['msg']}"


def _is_number_or_size(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        parse_size(str(value))
        return True
    except ValueError:
        return False


def _check_references(path: Path, lines: dict[Path_, int], scenario: Scenario) -> None:
    """Steps name vectors and allocators; each must exist, in that order, before it is used."""
    allocators: set[str] = set()
    vectors: dict[str, int] = {}
    labels: set[str] = set()
    groups: set[str] = set()  # vectors kept by a churn step

    def fail(index: int, kind: str, field: str | None, message: str) -> None:
        loc: Path_ = ("steps", index, kind) + ((field,) if field else ())
        raise BadInput(f"{_where(path, lines, loc)}: {message}")

    for index, step in enumerate(scenario.steps):
        kind, spec = next(iter(step.model_dump().items()))
        if kind == "snapshot":
            if spec in labels:
                fail(index, kind, None, f"expected a label not used before, got {spec!r} again")
            labels.add(spec)
        elif kind == "root_allocator":
            if spec["name"] in allocators | vectors.keys():
                fail(index, kind, "name", f"expected a new name, {spec['name']!r} is already open")
            allocators.add(spec["name"])
        elif kind == "allocate":
            if spec["allocator"] not in allocators:
                fail(index, kind, "allocator", f"expected an open allocator, got {spec['allocator']!r}")
            if spec["vector"] in allocators | vectors.keys():
                fail(index, kind, "vector", f"expected a new name, {spec['vector']!r} is already open")
            vectors[spec["vector"]] = spec["count"]
        elif kind in ("fill", "set_value_count"):
            if spec["vector"] not in vectors:
                fail(index, kind, "vector", f"expected an open vector, got {spec['vector']!r}")
            count = spec["count"]
            if count is not None and count > vectors[spec["vector"]]:
                fail(index, kind, "count", f"expected at most the allocated {vectors[spec['vector']]}, got {count}")
        elif kind == "churn":
            if spec["allocator"] not in allocators:
                fail(index, kind, "allocator", f"expected an open allocator, got {spec['allocator']!r}")
            if spec["min_count"] > spec["max_count"]:
                fail(index, kind, "min_count", f"expected at most max_count ({spec['max_count']}), got {spec['min_count']}")
            if spec["keep"] is not None:
                if spec["keep"] in allocators | vectors.keys() | groups:
                    fail(index, kind, "keep", f"expected a new name, {spec['keep']!r} is already open")
                groups.add(spec["keep"])
        elif kind == "verify":
            if spec not in vectors:
                fail(index, kind, None, f"expected an open vector, got {spec!r}")
        elif kind == "close":
            if spec in vectors:
                del vectors[spec]
            elif spec in allocators:
                allocators.discard(spec)
            elif spec in groups:
                groups.discard(spec)
            else:
                fail(index, kind, None, f"expected an open vector, allocator or kept group, got {spec!r}")
    _check_expectations(path, lines, scenario, labels)
