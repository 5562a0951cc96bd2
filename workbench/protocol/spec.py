"""What the orchestrator hands the worker: everything already resolved, so the worker decides nothing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class WorkerSpec:
    scenario: dict[str, Any]  # the validated scenario, dumped
    java_home: str
    jvm_library: str
    jvm_options: list[str]
    classpath: list[str]
    run_dir: str  # where the worker writes samples.jsonl and the raw statistics of each snapshot

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> WorkerSpec:
        return cls(**json.loads(path.read_text(encoding="utf-8")))
