"""The files of a run directory, as the worker, `exec`'s sampler and the run that finishes it all name them."""

from __future__ import annotations

from pathlib import Path

from workbench._files import WriteFailed, write_atomically

CLAIM = ".workbench-run"  # empty; created exclusively (O_EXCL) when a run claims the directory
SPEC = "worker-spec.json"
WORKER_LOG = "worker.log"
SAMPLES = "samples.jsonl"
TIMELINE = "timeline.parquet"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
HS_ERR_GLOB = "hs_err_pid*.log"
# The file the JVM logs its heap and class space ranges into (the worker's working directory is the run directory);
# pagesize=info: where the GC's own tables (card table, block offset table, mark bitmaps) are reserved.
REGIONS_LOG = "jvm-regions.log"
REGIONS_LOG_OPTION = f"-Xlog:gc+heap+coops=debug,gc+metaspace=info,pagesize=info:file={REGIONS_LOG}"
# Raw text each snapshot's figures came from: <kind>/<label>.<suffix>
RAW_KINDS = ("smaps", "nmt", "allocator", "regions")


def raw_path(root: Path, kind: str, label: str, suffix: str) -> Path:
    """Where the raw ``kind`` text of snapshot ``label`` goes (labels are validated: no separators)."""
    if kind not in RAW_KINDS:
        raise ValueError(f"unknown raw file kind {kind!r}")
    return root / kind / f"{label}.{suffix}"


def write_raw(root: Path, kind: str, label: str, suffix: str, text: str) -> Path:
    """Write one raw file whole (atomically), creating its folder; WriteFailed when the disk refuses."""
    path = raw_path(root, kind, label, suffix)
    try:
        path.parent.mkdir(exist_ok=True)
    except OSError as error:
        raise WriteFailed(path.parent, error) from None
    write_atomically(path, text)
    return path
