"""Load a scenario file into a Scenario, or fail with one line per problem: file, line, field path, expectation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from workbench._errors import BadInput
from workbench._files import read_text
from workbench._resources import scenarios_dir
from workbench.scenario.model import COMPARISONS, STEP_TYPES, Comparison, Scenario
from workbench.units import parse_size

Path_ = tuple[str | int, ...]


def bundled_scenarios() -> dict[str, Path]:
    """Bundled scenario names and their files."""
    return {p.stem: p for p in sorted(scenarios_dir().glob("*.yaml"))}


def is_bundled(path: Path) -> bool:
    """One of the scenario files that ship with the workbench (trusted like its code)."""
    return path.resolve().parent == scenarios_dir().resolve() and path.resolve() in {
        p.resolve() for p in bundled_scenarios().values()}


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


# Bounds on what a scenario file may make the parser do (a file is data that people download and share).
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 100_000  # after expanding aliases
MAX_PROBLEMS = 10  # lines of errors shown for one file
MAX_SHOWN = 60  # characters of a key or value echoed in an error
# Bounds on what a scenario may make the worker do; no real scenario comes near them.
MAX_STEPS = 10_000  # steps written in the file, counting those inside repeat and threads
MAX_SNAPSHOTS = 1_000  # each is a column of the report (about 20 KB of report.json)
MAX_STEP_RUNS = 1_000_000_000  # steps run: each step once per repeat.times and threads.count around it


class _TooDeep(Exception):
    def __init__(self, line: int | None) -> None:
        super().__init__(line)
        self.line = line


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (PyYAML would keep the last one silently) and
    nesting deeper than MAX_DEPTH (PyYAML's composer recurses once per level: 1000 `[` is a RecursionError)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooDeep(mark.line + 1 if mark is not None else None)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:
                continue  # an unhashable key: construct_mapping says so below
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_shown(key)} (first given on line {first})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 5] + "...'"


def _expanded_size(path: Path, root: yaml.Node) -> None:
    """Refuse a document whose aliases expand to more than MAX_NODES nodes, counted without expanding them."""
    sizes: dict[int, int] = {}
    # Children before parents, iteratively: an alias is the same node object, counted once per use but sized once.
    order: list[yaml.Node] = []
    stack: list[yaml.Node] = [root]
    visited: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        size = 1 + sum(sizes.get(id(child), 1) for child in _children(node))
        sizes[id(node)] = size
        if size > MAX_NODES:
            raise BadInput(f"{path}:{node.start_mark.line + 1}: expands to more than {MAX_NODES:,} values through "
                           "its aliases (expected a scenario file)")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_scenario(path: Path) -> Scenario:
    """Parse and validate a scenario file (safe YAML loader; nothing in it is ever executed; size, depth and alias
    expansion bounded; duplicate keys refused)."""
    text = read_text(path, "a YAML scenario file", MAX_FILE_BYTES)
    try:
        loader = _UniqueKeyLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _expanded_size(path, node)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except _TooDeep as exc:
        where = f":{exc.line}" if exc.line is not None else ""
        raise BadInput(f"{path}{where}: nested more than {MAX_DEPTH} levels deep (expected a scenario file)") from None
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
        problems = [_describe(path, lines, data, err) for err in exc.errors()]
        if len(problems) > MAX_PROBLEMS:
            problems = problems[:MAX_PROBLEMS] + [f"{path}: ... and {len(problems) - MAX_PROBLEMS} more problems"]
        raise BadInput("\n".join(problems)) from None
    _check_counts(path, lines, scenario)
    _check_references(path, lines, scenario)
    return scenario


def _line_numbers(root: yaml.Node) -> dict[Path_, int]:
    """The line of every path in the document; a node reached again through an alias is not walked again."""
    lines: dict[Path_, int] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, Path_]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*path, key.value)] = key.start_mark.line + 1
                stack.append((value, (*path, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, index)) for index, item in enumerate(node.value))
    return lines


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        name = str(part) if len(str(part)) <= MAX_SHOWN else str(part)[: MAX_SHOWN - 3] + "..."
        text += f"[{part}]" if isinstance(part, int) else (f".{name}" if text else name)
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
    shown = "" if isinstance(got, (dict, list)) or got is None or repr(got) in message else f", got {_shown(got)}"
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


def _check_counts(path: Path, lines: dict[Path_, int], scenario: Scenario) -> None:
    """Refuse a scenario that multiplies work past the bounds: steps written, snapshots, steps run (threads at once
    are bounded by the model, scenario.model)."""
    written = snapshots = runs = 0

    def walk(steps: list[Any], prefix: Path_, times: int, threads: int) -> None:
        nonlocal written, snapshots, runs
        for index, step in enumerate(steps):
            kind, spec = next(iter(step))
            loc: Path_ = (*prefix, index, kind)
            written += 1
            runs += times
            if written > MAX_STEPS:
                raise BadInput(f"{_where(path, lines, loc)}: more than {MAX_STEPS:,} steps, counting those inside "
                               f"repeat and threads (expected at most {MAX_STEPS:,} steps in a scenario)")
            if runs > MAX_STEP_RUNS:
                raise BadInput(f"{_where(path, lines, loc)}: the scenario would run more than {MAX_STEP_RUNS:,} "
                               "steps (repeat.times and threads.count multiply the steps inside them; expected at "
                               f"most {MAX_STEP_RUNS:,})")
            if kind == "snapshot":
                snapshots += 1
                if snapshots > MAX_SNAPSHOTS:
                    raise BadInput(f"{_where(path, lines, loc)}: more than {MAX_SNAPSHOTS:,} snapshots (expected at "
                                   f"most {MAX_SNAPSHOTS:,} in a scenario)")
            if kind == "repeat":
                walk(list(spec.steps), (*loc, "steps"), times * spec.times, threads)
            elif kind == "threads":
                walk(list(spec.steps), (*loc, "steps"), times * spec.count, threads * spec.count)

    walk(list(scenario.steps), ("steps",), 1, 1)


class _Names:
    """What is open at a point of the scenario, to check that every step names something that exists."""

    def __init__(self) -> None:
        self.allocators: set[str] = set()
        self.vectors: dict[str, int | None] = {}  # name -> allocated count (None: unknown, e.g. transferred)
        self.groups: set[str] = set()  # vectors kept by a churn step
        self.buffers: set[str] = set()  # direct ByteBuffers
        self.labels: set[str] = set()

    def taken(self) -> set[str]:
        return self.allocators | self.vectors.keys() | self.groups | self.buffers


def _check_references(path: Path, lines: dict[Path_, int], scenario: Scenario) -> None:
    """Steps name vectors and allocators; each must exist, in that order, before it is used."""
    names = _Names()
    _check_steps(path, lines, list(scenario.steps), ("steps",), names, nested=None)
    labels = names.labels
    _check_expectations(path, lines, scenario, labels)


def _check_steps(path: Path, lines: dict[Path_, int], steps: list[Any], prefix: Path_, names: _Names,
                 nested: str | None) -> None:
    for index, step in enumerate(steps):
        kind, spec = next(iter(step.model_dump(by_alias=True).items()))

        def fail(field: str | None, message: str) -> None:
            loc: Path_ = (*prefix, index, kind) + ((field,) if field else ())
            raise BadInput(f"{_where(path, lines, loc)}: {message}")

        def need_vector(name: str, field: str | None = "vector") -> None:
            if name not in names.vectors:
                fail(field, f"expected an open vector, got {name!r}")

        def need_allocator(name: str, field: str) -> None:
            if name not in names.allocators:
                fail(field, f"expected an open allocator, got {name!r}")

        def new_name(name: str, field: str | None) -> None:
            if name in names.taken():
                fail(field, f"expected a new name, {name!r} is already open")

        if kind == "snapshot":
            if nested:
                fail(None, f"snapshots cannot be taken inside {nested} (labels must be unique); take one after it")
            if spec in names.labels:
                fail(None, f"expected a label not used before, got {spec!r} again")
            names.labels.add(spec)
        elif kind == "root_allocator":
            new_name(spec["name"], "name")
            names.allocators.add(spec["name"])
        elif kind == "child_allocator":
            need_allocator(spec["parent"], "parent")
            new_name(spec["name"], "name")
            names.allocators.add(spec["name"])
        elif kind == "allocate":
            need_allocator(spec["allocator"], "allocator")
            new_name(spec["vector"], "vector")
            names.vectors[spec["vector"]] = spec["count"]
        elif kind in ("fill", "set_value_count"):
            need_vector(spec["vector"])
            count, allocated = spec["count"], names.vectors[spec["vector"]]
            grows = kind == "fill" and spec.get("write") == "set_safe"
            if count is not None and allocated is not None and count > allocated and not grows:
                fail("count", f"expected at most the allocated {allocated}, got {count} (set_safe grows a vector)")
            if grows and count is not None:
                names.vectors[spec["vector"]] = max(count, allocated or 0)
        elif kind == "set_safe":
            need_vector(spec["vector"])
            names.vectors[spec["vector"]] = max(spec["count"], names.vectors[spec["vector"]] or 0)
        elif kind == "transfer":
            need_vector(spec["vector"])
            need_allocator(spec["to"], "to")
            target = spec["as"] or spec["vector"]
            count = names.vectors.pop(spec["vector"])
            new_name(target, "as")
            names.vectors[target] = count
        elif kind == "slice":
            need_vector(spec["vector"])
            new_name(spec["as"], "as")
            names.vectors[spec["as"]] = spec["length"]
        elif kind == "direct_buffer":
            new_name(spec["name"], "name")
            names.buffers.add(spec["name"])
        elif kind == "churn":
            need_allocator(spec["allocator"], "allocator")
            if spec["min_count"] > spec["max_count"]:
                fail("min_count", f"expected at most max_count ({spec['max_count']}), got {spec['min_count']}")
            if spec["keep"] is not None:
                new_name(spec["keep"], "keep")
                names.groups.add(spec["keep"])
        elif kind == "verify":
            need_vector(spec, None)
        elif kind in ("repeat", "threads"):
            inner = _Names()
            inner.allocators, inner.labels = set(names.allocators), names.labels
            inner.vectors, inner.groups, inner.buffers = dict(names.vectors), set(names.groups), set(names.buffers)
            before = inner.taken()
            step_model = getattr(step, kind)
            _check_steps(path, lines, list(step_model.steps), (*prefix, index, kind, "steps"), inner, kind)
            left = sorted(inner.taken() - before - inner.allocators)
            if left:
                fail("steps", f"expected everything allocated inside {kind} to be closed inside it; still open: "
                              f"{', '.join(left)}")
            if kind == "repeat":
                closed = before - inner.taken()
                names.vectors = {k: v for k, v in names.vectors.items() if k not in closed}
                names.groups -= closed
                names.buffers -= closed
                names.allocators = inner.allocators
        elif kind == "close":
            if spec in names.vectors:
                del names.vectors[spec]
            elif spec in names.allocators:
                names.allocators.discard(spec)
            elif spec in names.groups:
                names.groups.discard(spec)
            elif spec in names.buffers:
                names.buffers.discard(spec)
            else:
                fail(None, f"expected an open vector, allocator, direct buffer or kept group, got {spec!r}")
