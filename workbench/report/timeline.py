"""samples.jsonl (appended by the worker as it samples) -> timeline.parquet, one row per sample, bytes as int64."""

from __future__ import annotations

import json
from pathlib import Path

from typing import Any

from workbench._files import write_with
from workbench.figures import SAMPLED


def schema() -> Any:
    """The Parquet schema: the sample's time and step, every sampled figure as int64, and the sample's cost.

    The columns are ``workbench.figures.SAMPLE_COLUMNS`` (pyarrow is imported only when writing).
    """
    import pyarrow as pa

    return pa.schema(
        [pa.field("t_ms", pa.float64()), pa.field("step", pa.int32())]
        + [pa.field(figure.column, pa.int64()) for figure in SAMPLED if figure.column is not None]
        + [pa.field("cost_us", pa.float64())]
    )


def read_samples(path: Path) -> list[dict[str, object]]:
    """The samples, skipping a last line cut short by a worker that died mid-write."""
    if not path.exists():
        return []
    samples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            samples.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return samples


def write_timeline(samples_path: Path, parquet_path: Path) -> int:
    """Write the timeline as Parquet; returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    samples = read_samples(samples_path)
    columns = schema()
    table = pa.Table.from_pylist([{k: s.get(k) for k in columns.names} for s in samples], schema=columns)
    write_with(parquet_path, lambda partial: pq.write_table(table, partial))
    return int(table.num_rows)
