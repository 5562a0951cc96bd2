"""Each statistics backend, in a process with that allocator really preloaded (both orders where it matters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.toolchain.allocators import resolve_allocator

ROOT = Path(__file__).resolve().parents[2]
# An unusual size, so the allocator's growth can be matched to this one allocation.
ODD_SIZE = 7 * 1024 * 1024 + 4093

PROGRAM = """
import ctypes, json
from dataclasses import asdict
from workbench.probes.allocator import detect
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
backend = detect()
before = backend.snapshot()
block = libc.malloc({size})
libc.memset(block, 1, {size})
after = backend.snapshot()
print(json.dumps({{"info": asdict(backend.info), "before": asdict(before), "after": asdict(after)}}))
"""


def probe_under(preload: list[Path], size: int = ODD_SIZE) -> dict:  # type: ignore[type-arg]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = ":".join(map(str, preload))
    out = subprocess.run([sys.executable, "-c", PROGRAM.format(size=size)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["system:jemalloc", "tcmalloc", "system:tcmalloc", "glibc"])
def test_backend_sees_one_odd_sized_allocation(name: str) -> None:
    choice = resolve_allocator(name)
    result = probe_under([choice.library] if choice.library else [])
    assert result["info"]["backend"] == choice.expected_backend
    grown = result["after"]["allocated_bytes"] - result["before"]["allocated_bytes"]
    # jemalloc and tcmalloc round a large request up to a size class (at most a quarter more).
    assert ODD_SIZE <= grown <= ODD_SIZE * 5 // 4
    if choice.library is not None:
        assert Path(result["info"]["library"]).resolve() == choice.library.resolve()


def test_debians_mimalloc_reports_commit_and_nulls_what_it_cannot_give() -> None:
    choice = resolve_allocator("system:mimalloc")  # built without statistics
    # mimalloc commits whole segments up front; a block larger than one shows in what it has committed.
    big = 48 * 1024 * 1024 + 4093
    result = probe_under([choice.library], size=big)  # type: ignore[list-item]
    assert result["info"]["backend"] == "mimalloc" and result["info"]["version"].startswith("2.")
    after = result["after"]
    assert after["allocated_bytes"] is None and after["resident_bytes"] is None and after["retained_bytes"] is None
    assert after["mapped_bytes"] - result["before"]["mapped_bytes"] >= big


def test_jemalloc_statistics_fields_and_order() -> None:
    result = probe_under([resolve_allocator("system:jemalloc").library])  # type: ignore[list-item]
    after = result["after"]
    assert after["allocated_bytes"] <= after["active_bytes"] <= after["resident_bytes"] <= after["mapped_bytes"]
    assert after["metadata_bytes"] > 0 and after["retained_bytes"] is not None
    assert result["info"]["config_stats"] is True


def test_glibc_reports_its_arenas_and_leaves_unknown_fields_null() -> None:
    result = probe_under([])
    after = result["after"]
    assert after["active_bytes"] is None and after["resident_bytes"] is None
    assert after["raw"]["arenas"] >= 1
    # glibc serves a 7 MiB block with mmap: it shows in the mmapped-chunk figure.
    assert after["raw"]["hblkhd"] - result["before"]["raw"]["hblkhd"] >= ODD_SIZE


def test_detection_follows_the_first_preloaded_allocator_in_either_order() -> None:
    jemalloc = resolve_allocator("system:jemalloc").library
    tcmalloc = resolve_allocator("system:tcmalloc").library
    assert probe_under([jemalloc, tcmalloc])["info"]["backend"] == "jemalloc"  # type: ignore[list-item]
    assert probe_under([tcmalloc, jemalloc])["info"]["backend"] == "tcmalloc"  # type: ignore[list-item]


def test_the_mimalloc_built_here_fills_the_malloc_layer_across_threads() -> None:
    choice = resolve_allocator("mimalloc")  # built with MI_STAT=2, every thread's statistics the process's at once
    assert choice.provenance.kind == "built"
    result = probe_under([choice.library], size=ODD_SIZE)  # type: ignore[list-item]
    assert result["info"]["backend"] == "mimalloc" and result["info"]["config_stats"] is True
    grown = result["after"]["allocated_bytes"] - result["before"]["allocated_bytes"]
    # A block of ODD_SIZE at its block size: mimalloc's bins are at most an eighth apart.
    assert ODD_SIZE <= grown <= ODD_SIZE * 9 // 8 + 4096
    assert result["after"]["resident_bytes"] is None and result["after"]["metadata_bytes"] is None
