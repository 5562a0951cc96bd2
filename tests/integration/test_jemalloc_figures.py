"""jemalloc's figures of a snapshot read in one call of the probe library (workbench_jemalloc_figures): the same
values fourteen mallctl calls through ctypes read, for every key, under the workbench's jemalloc and Debian's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from workbench.toolchain.allocators import resolve_allocator
from workbench.toolchain.probe import ensure_probe

_SUBJECT = textwrap.dedent("""
    import ctypes, json, sys
    from pathlib import Path
    from workbench.probes import allocator
    from workbench.probes.native_probe import SnapshotLibrary
    library = SnapshotLibrary(Path(sys.argv[1]))
    backend = allocator.detect()
    figures = library.jemalloc_figures()
    # Read again through ctypes without an epoch: jemalloc's statistics stay those of the last epoch (the call's).
    again = {}
    if isinstance(backend, allocator.JemallocBackend):
        for key, kind in backend.FIGURES:
            value = kind()
            if backend._read(key, value):
                again[key] = int(value.value)
    plain = backend.snapshot()
    if isinstance(backend, allocator.JemallocBackend):
        backend.read_figures_with(library.jemalloc_figures)
    through = backend.snapshot()
    print(json.dumps({"backend": library.backend, "figures": figures, "again": again,
                      "plain": sorted(k for k, v in vars(plain).items() if v is not None),
                      "plain_raw": sorted(plain.raw), "through": sorted(k for k, v in vars(through).items()
                                                                        if v is not None),
                      "through_raw": sorted(through.raw), "decay": through.raw.get("dirty_decay_ms")}))
""")


def _read(preload: list[Path], tmp_path: Path, malloc_conf: str | None = None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
    env.update(LD_PRELOAD=":".join(map(str, preload)), WORKBENCH_PROBE_DIR=str(tmp_path))
    if malloc_conf is not None:
        env["MALLOC_CONF"] = malloc_conf
    os.chmod(tmp_path, 0o700)
    result = subprocess.run([sys.executable, "-c", _SUBJECT, str(ensure_probe(quiet=True))], env=env,
                            capture_output=True, text=True, timeout=120)
    print(result.stdout, result.stderr)
    assert result.returncode == 0
    answer: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return answer


@pytest.mark.parametrize("name", ["jemalloc", "system:jemalloc"])
def test_one_call_reads_what_fourteen_mallctl_calls_read(name: str, tmp_path: Path) -> None:
    jemalloc = resolve_allocator(name).library
    assert jemalloc is not None
    answer = _read([ensure_probe(quiet=True), jemalloc], tmp_path, malloc_conf="dirty_decay_ms:1234")
    assert answer["backend"] == "jemalloc"
    figures = answer["figures"]
    # Every key answered, each exactly the value ctypes reads after the same epoch.
    assert len(figures) == 13
    assert figures == answer["again"]
    assert figures["opt.dirty_decay_ms"] == 1234  # MALLOC_CONF's, read back
    assert figures["arenas.narenas"] >= 1
    assert 0 < figures["stats.allocated"] <= figures["stats.active"] <= figures["stats.resident"] \
        <= figures["stats.mapped"] + figures["stats.metadata"]
    # The snapshot built from them has the fields the ctypes path fills, no more, no fewer.
    assert answer["through"] == answer["plain"]
    assert answer["through_raw"] == answer["plain_raw"]
    assert answer["decay"] == 1234


def test_another_allocator_has_none(tmp_path: Path) -> None:
    answer = _read([ensure_probe(quiet=True)], tmp_path)
    assert answer["backend"] == "glibc"
    assert answer["figures"] is None
