"""What the run hands the worker: everything already resolved, so the worker decides nothing.

Written to ``worker-spec.json`` in the run directory (the worker reads it from there), with its schema name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workbench._files import write_atomically

SCHEMA = "workbench.worker-spec/1"


@dataclass(frozen=True)
class WorkerSpec:
    scenario: dict[str, Any]  # the validated scenario, dumped
    java_home: str
    jvm_library: str
    jvm_options: list[str]
    classpath: list[str]
    run_dir: str  # where the worker writes samples.jsonl and the raw statistics of each snapshot
    parent_pid: int  # the workbench process: the worker stops with it
    # libworkbench-probe.so, loaded by the worker as its snapshot reader; None: read in Python (slower, allocates)
    probe_library: str | None = None
    # --profile: async-profiler's library (its agent is in jvm_options) and its nativemem interval in bytes.
    profile_library: str | None = None
    profile_interval: int | None = None
    profile_buffers: bool = False  # Arrow's debug allocator is on: the open buffers are listed at each snapshot

    def write(self, path: Path) -> None:
        write_atomically(path, json.dumps({"schema": SCHEMA, **asdict(self)}))

    @classmethod
    def read(cls, path: Path) -> WorkerSpec:
        data = json.loads(path.read_text(encoding="utf-8"))
        schema = data.pop("schema", None)
        if schema != SCHEMA:
            raise ValueError(f"{path}: expected a worker spec of schema {SCHEMA!r}, got {schema!r}")
        return cls(**data)
