"""A saved run read back for `report` and `diff`: report.json and samples.jsonl, bounded and checked, each problem
one line naming the file (and the line) and what was expected. A run directory is data that people copy and share."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from workbench._errors import BadInput
from workbench._files import read_text
from workbench.figures import BY_KEY, SAMPLED
from workbench.protocol.layout import SAMPLES
from workbench.report.model import SCHEMA, Report, report_from_dict

MAX_REPORT_BYTES = 64 << 20  # a run's report.json is about 20 KB a snapshot; a scenario has at most 1,000
# Values, counted before parsing as commas and brackets (an upper bound): a run's report has about 600 a snapshot,
# and --repeat 100 adds about 1,200 a snapshot; 5 million small values are about 300 MB once parsed.
MAX_VALUES = 5_000_000
MAX_SAMPLES_BYTES = 128 << 20
MAX_SAMPLES = 500_000  # 14 hours at the default 100 ms
MAX_SAMPLE_LINE = 64 << 10  # a sample is about 400 bytes
MAX_DEPTH = 64  # a report is nested about 6 levels deep
MAX_SHOWN = 60  # characters of a value echoed in an error
MAX_INT = 1 << 63  # figures are int64 (the timeline's Parquet columns)
_SAMPLE_INTS = ("step", *(figure.column for figure in SAMPLED if figure.column is not None))
_JSON_KINDS = {dict: "object", list: "list", str: "string", int: "number", float: "number", bool: "boolean"}


def report_file(path: Path) -> Path:
    """The report.json of a run directory, or ``path`` itself when it is not a directory."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise BadInput(f"{path}: no such run directory (expected a run directory written by `workbench run`, "
                           "or its report.json)") from None
        raise BadInput(f"{path}: cannot read the run directory: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        return path
    report_path = path / "report.json"
    if not os.path.lexists(report_path):
        raise BadInput(f"{path}: no report.json there (expected a run directory written by `workbench run`)")
    return report_path


def load_report(path: Path) -> Report:
    """The report of a run directory (or of a report.json given directly); BadInput for anything else."""
    report_path = report_file(path)
    text = read_text(report_path, "a workbench report.json", MAX_REPORT_BYTES)
    if text.count(",") + text.count("[") + text.count("{") > MAX_VALUES:
        raise BadInput(f"{report_path}: more than {MAX_VALUES:,} values (expected a workbench report.json; a run's "
                       "has about 600 a snapshot)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{report_path}:{exc.lineno}: not valid JSON: {exc.msg} (expected a workbench "
                       "report.json)") from None
    except RecursionError:
        raise BadInput(f"{report_path}: nested more than {MAX_DEPTH} levels deep (expected a workbench "
                       "report.json)") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise BadInput(f"{report_path}: not valid JSON: {_first_line(exc).split(':')[0]} (expected a workbench "
                       "report.json)") from None
    if not isinstance(data, dict):
        raise BadInput(f"{report_path}: a JSON {_kind(data)} (expected a workbench report: a JSON object with "
                       f"schema {SCHEMA!r})")
    try:
        deepest = _depth(data)
    except _TooLarge as exc:
        raise BadInput(f"{report_path}: {_dotted(exc.loc)}: an integer beyond 64 bits (expected a workbench "
                       "report.json)") from None
    if deepest > MAX_DEPTH:
        raise BadInput(f"{report_path}: nested more than {MAX_DEPTH} levels deep (expected a workbench "
                       "report.json)")
    schema = data.get("schema")
    if schema != SCHEMA:
        written = ("written by another version of the workbench"
                   if isinstance(schema, str) and schema.startswith("workbench.report/") else "not a workbench report")
        got = "no schema field" if "schema" not in data else f"schema {_shown(schema)}"
        raise BadInput(f"{report_path}: {got} (expected {SCHEMA!r}; {written})")
    try:
        report = report_from_dict(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        location = _dotted(tuple(first["loc"]))
        got = first.get("input")
        shown = "" if isinstance(got, (dict, list)) else f", got {_shown(got)}"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        message = str(first["msg"])
        raise BadInput(f"{report_path}: {location}: {message[0].lower()}{message[1:]}{shown}{more} "
                       "(expected a workbench report)") from None
    for index, spread in enumerate(report.repeats.figures if report.repeats else []):
        if spread.figure not in BY_KEY:  # the renderers look each one up
            raise BadInput(f"{report_path}: repeats.figures[{index}].figure: expected a figure's key such as "
                           f"process.anon_rss_bytes, got {_shown(spread.figure)}")
    return report


def check_samples(run_dir: Path) -> str | None:
    """Check a run directory's samples.jsonl line by line without keeping them; BadInput for a damaged one. Returns
    a note when its last line was cut short (a run killed while writing it), which is left out, else None."""
    path = run_dir / SAMPLES
    if not os.path.lexists(path):
        return None
    text = read_text(path, "a run's samples.jsonl", MAX_SAMPLES_BYTES)
    lines = text.split("\n")
    complete = text.endswith("\n")
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        count += 1
        if count > MAX_SAMPLES:
            raise BadInput(f"{path}:{number}: more than {MAX_SAMPLES:,} samples (expected at most {MAX_SAMPLES:,} "
                           "for the HTML timeline; the other formats do not read samples.jsonl)")
        last = number == len(lines)
        if len(line) > MAX_SAMPLE_LINE:
            raise BadInput(f"{path}:{number}: a line of {len(line):,} characters (expected a sample of at most "
                           f"{MAX_SAMPLE_LINE:,})")
        try:
            sample = json.loads(line)
        except RecursionError:
            raise BadInput(f"{path}:{number}: nested more than {MAX_DEPTH} levels deep (expected a sample: a JSON "
                           "object)") from None
        except ValueError as exc:
            problem = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else \
                _first_line(exc).split(":")[0]
            if last and not complete:
                return f"{path}:{number}: the last line was cut short (the run was killed while writing it); " \
                       "the timeline leaves it out"
            raise BadInput(f"{path}:{number}: not valid JSON: {problem} (expected a sample: a JSON object)") from None
        _check_sample(path, number, sample)
    return None


def _check_sample(path: Path, number: int, sample: Any) -> None:
    if not isinstance(sample, dict):
        raise BadInput(f"{path}:{number}: a JSON {_kind(sample)} (expected a sample: a JSON object with t_ms and "
                       "the sampled figures)")
    t_ms = sample.get("t_ms")
    if isinstance(t_ms, bool) or not isinstance(t_ms, (int, float)) or not math.isfinite(t_ms):
        got = "missing" if "t_ms" not in sample else f"got {_shown(t_ms)}"
        raise BadInput(f"{path}:{number}: t_ms: expected the sample's time in milliseconds, {got}")
    for column in _SAMPLE_INTS:
        value = sample.get(column)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadInput(f"{path}:{number}: {column}: expected an integer or null, got {_shown(value)}")


def _depth(value: Any) -> int:
    """How deep a parsed JSON value is nested, without recursion; BadInput for an integer beyond 64 bits."""
    deepest = 0
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, loc = stack.pop()
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, list):
            children = enumerate(item)
        else:
            if isinstance(item, int) and not isinstance(item, bool) and not -MAX_INT <= item < MAX_INT:
                raise _TooLarge(loc)
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            stack.extend((child, depth + 1, (*loc, key)) for key, child in children)
    return deepest


class _TooLarge(Exception):
    def __init__(self, loc: tuple[Any, ...]) -> None:
        super().__init__(loc)
        self.loc = loc


def _kind(value: Any) -> str:
    return "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 5] + "...'"


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        name = str(part) if len(str(part)) <= MAX_SHOWN else str(part)[: MAX_SHOWN - 3] + "..."
        text += f"[{part}]" if isinstance(part, int) else (f".{name}" if text else name)
    return text or "(top level)"
