"""No false success: a run that did not measure what it claims fails, with the real files, allocators and JVM."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import run_workbench
from workbench.run.run_dir import RunDir
from workbench.run.scenario import RunRequest, execute, prepare
from workbench.toolchain.allocators import find_system_allocator
from workbench.toolchain.maven import kernels_entry
from workbench.toolchain.probe import sources_hash

LIBZ = Path("/lib/x86_64-linux-gnu/libz.so.1")
EXPECTED_ALLOCATOR = "(expected an allocator: a shared library that defines malloc and free)"
# malloc and free defined, but only under a hidden symbol version: the dynamic linker maps the library and binds
# the process's malloc to glibc's all the same.
HIDDEN_MALLOC_C = r"""
#include <stddef.h>
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
void *hidden_malloc(size_t n) { return __libc_malloc(n); }
void hidden_free(void *p) { __libc_free(p); }
__asm__(".symver hidden_malloc,malloc@WORKBENCH_HIDDEN");
__asm__(".symver hidden_free,free@WORKBENCH_HIDDEN");
"""


def hidden_malloc_library(tmp_path: Path) -> Path:
    source, script, library = tmp_path / "hidden.c", tmp_path / "hidden.map", tmp_path / "libhidden.so"
    source.write_text(HIDDEN_MALLOC_C)
    script.write_text("WORKBENCH_HIDDEN { global: malloc; free; local: *; };\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source), f"-Wl,--version-script={script}"],
                   check=True)
    return library


@pytest.mark.skipif(not LIBZ.is_file(), reason="libz.so.1 is not installed")
def test_files_that_are_no_allocator_are_refused_before_anything_starts(tmp_path: Path) -> None:
    text = tmp_path / "libtext.so"
    text.write_text("not a library\n")
    truncated = tmp_path / "libz-cut.so"
    truncated.write_bytes(LIBZ.read_bytes()[:4096])
    cases = {
        text: "not an ELF file",
        LIBZ: "a shared library that does not define malloc or free",
        truncated: "a truncated ELF file (its section headers are past its end)",
    }
    for library, what in cases.items():
        for command in (["run", "arrow-intvector", "--hold", "0"], ["exec"]):
            out = tmp_path / f"out-{library.name}-{command[0]}"
            argv = [*command, "--allocator", str(library), "--out", str(out)]
            result = run_workbench(*(argv + ["--", "java", "-version"] if command == ["exec"] else argv))
            assert result.returncode == 2
            assert result.stderr.strip() == f"workbench: --allocator {library}: {what} {EXPECTED_ALLOCATOR}"
            assert not out.exists()
    # What the dynamic linker does with such a file: one line, and the program runs on with glibc's malloc.
    ignored = subprocess.run(["/bin/true"], env={"LD_PRELOAD": str(text)}, capture_output=True, text=True)
    assert ignored.returncode == 0 and "cannot be preloaded" in ignored.stderr and "ignored" in ignored.stderr


@pytest.mark.jvm
def test_a_library_that_malloc_does_not_resolve_into_fails_the_run(tmp_path: Path) -> None:
    library = hidden_malloc_library(tmp_path)
    out = tmp_path / "run"
    result = run_workbench("run", "arrow-intvector", "--hold", "0", "--allocator", str(library), "--out", str(out))
    assert result.returncode == 3
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed" and report["error"]["type"] == "AllocatorMismatch"
    assert report["allocator"]["detected_library"] == "/lib/x86_64-linux-gnu/libc.so.6"
    assert f"resolves into /lib/x86_64-linux-gnu/libc.so.6 (glibc), not {library}" in report["error"]["message"]
    # exec: the probe's dladdr of malloc says the same.
    out = tmp_path / "exec"
    result = run_workbench("exec", "--allocator", str(library), "--out", str(out), "--", "java", "-version")
    assert result.returncode == 3
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed" and report["error"]["type"] == "AllocatorMismatch"


@pytest.mark.jvm
@pytest.mark.parametrize("name", ["system:jemalloc", "system:tcmalloc"])
def test_real_allocators_given_as_files_still_pass(tmp_path: Path, name: str) -> None:
    library = find_system_allocator(name)
    if library is None:
        pytest.skip(f"{name} is not installed")
    out = tmp_path / "run"
    result = run_workbench("run", "arrow-intvector", "--hold", "0", "--allocator", str(library), "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok" and report["allocator"]["detected_library"] == str(library.resolve())
    assert report["allocator"]["backend"] == name.removeprefix("system:")


@pytest.mark.parametrize(("conf", "complaint"), [
    ("nonsense:1", "Invalid conf pair: nonsense:1"),
    ("dirty_decay_ms:abc", "Invalid conf value: dirty_decay_ms:abc"),
    ("narenas:2,,", "Malformed conf string"),
])
def test_a_malloc_conf_jemalloc_refuses_is_refused_before_the_run(tmp_path: Path, conf: str, complaint: str) -> None:
    out = tmp_path / "run"
    result = run_workbench("run", "arrow-intvector", "--hold", "0", "--malloc-conf", conf, "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip() == f"workbench: --malloc-conf {conf}: jemalloc refuses it ({complaint})"
    assert not out.exists()


def test_a_malloc_conf_for_an_allocator_that_does_not_read_it_is_refused(tmp_path: Path) -> None:
    scenario = tmp_path / "conf.yaml"
    scenario.write_text("name: conf\ndescription: d\nallocator: glibc\nmalloc_conf: narenas:2\nsteps: [gc]\n")
    for args, named in ((["--malloc-conf", "narenas:2", "--allocator", "glibc"], "--malloc-conf"),
                        ([], f"{scenario}: malloc_conf")):
        result = run_workbench("run", str(scenario), *args, "--out", str(tmp_path / "run"))
        assert result.returncode == 2
        assert result.stderr.strip() == (f"workbench: {named} narenas:2: only jemalloc reads MALLOC_CONF, and the "
                                         "allocator is glibc, which would ignore it")


@pytest.mark.jvm
def test_the_report_keeps_what_jemalloc_says_it_uses(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_workbench("run", "arrow-intvector", "--hold", "0", "--malloc-conf",
                           "dirty_decay_ms:5000,narenas:2,lg_tcache_max:10", "--out", str(out))
    assert result.returncode == 0, result.stderr
    allocator = json.loads((out / "report.json").read_text())["allocator"]
    assert allocator["settings"] == [
        {"key": "dirty_decay_ms", "asked": "5000", "effective": 5000},
        {"key": "narenas", "asked": "2", "effective": 2},
        {"key": "lg_tcache_max", "asked": "10", "effective": None},  # an alias jemalloc reports as tcache_max
    ]


@pytest.mark.jvm
def test_a_conf_refused_inside_the_measured_process_fails_the_run(tmp_path: Path) -> None:
    # prepare() refuses this conf; handed to the worker anyway, jemalloc's own complaint in its log fails the run.
    prepared = dataclasses.replace(prepare(RunRequest("arrow-intvector", hold_ms=0)), malloc_conf="nonsense:1",
                                   malloc_conf_option="--malloc-conf")
    report = execute(prepared, RunDir.claim("unused", tmp_path / "run"), quiet=True, html=False)
    assert report.status == "failed" and report.error is not None
    assert (report.error.type, report.error.message) == (
        "MallocConfRejected", "--malloc-conf: jemalloc in the process refused it (Invalid conf pair: nonsense:1) and "
                              "ran without it")


def cache_with_copies(tmp_path: Path, copied: str) -> tuple[dict[str, str], Path]:
    """A cache (XDG_CACHE_HOME) whose ``copied`` area (probe/, jvm/) is a copy of the real one, the rest linked."""
    from workbench._resources import cache_dir

    real = cache_dir()
    cache = tmp_path / "cache" / "workbench"
    cache.mkdir(parents=True)
    for area in ("allocators", "jvm", "probe"):
        if area == copied:
            shutil.copytree(real / area, cache / area, symlinks=True,
                            ignore=shutil.ignore_patterns("*.lock", ".build-*", "failed-*"))
        else:
            (cache / area).symlink_to(real / area)
    return {"XDG_CACHE_HOME": str(cache.parent)}, cache / copied


@pytest.mark.jvm
def test_a_damaged_cached_probe_is_rebuilt_and_the_run_works(tmp_path: Path) -> None:
    env, area = cache_with_copies(tmp_path, "probe")
    library = area / sources_hash()[:16] / "libworkbench-probe.so"  # the entry of these sources (older ones may be cached)
    library.write_bytes(library.read_bytes()[:1000])
    out = tmp_path / "exec"
    result = run_workbench("exec", "--allocator", "glibc", "--out", str(out), "--", "java", "-version", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"workbench: the cached allocator probe is damaged ({library} ")
    assert f"; rebuilding it in {library.parent}\n" in result.stderr
    assert library.stat().st_size > 10_000
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok" and report["allocator"]["backend"] == "glibc"
    # The next use finds the rebuilt probe sound and says nothing about it.
    again = run_workbench("exec", "--allocator", "glibc", "--out", str(tmp_path / "again"), "--", "java", "-version",
                          env=env)
    assert again.returncode == 0 and "is damaged" not in again.stderr and "Building" not in again.stderr


@pytest.mark.jvm
@pytest.mark.slow
def test_a_damaged_kernels_jar_is_rebuilt_and_the_run_works(tmp_path: Path) -> None:
    env, area = cache_with_copies(tmp_path, "jvm")
    entry = area / kernels_entry().name  # the entry of these sources (the cache may hold older ones)
    jar = next((entry / "project" / "target").glob("*.jar"))
    classpath = (entry / "classpath.txt").read_text().split(":")
    (entry / "classpath.txt").write_text(":".join([str(jar), *classpath[1:]]))  # the copy's own jar
    jar.write_bytes(jar.read_bytes()[:2000])
    out = tmp_path / "run"
    result = run_workbench("run", "arrow-intvector", "--hold", "0", "--allocator", "glibc", "--out", str(out),
                           env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"workbench: the cached Java kernels are damaged ({jar} changed since it was "
                                    "built (sha256 ")
    assert f"; rebuilding them in {entry}\n" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok"
    assert next(s for s in report["snapshots"] if s["label"] == "allocated")["arrow"]["allocated_bytes"] == 524288


@pytest.mark.jvm
def test_a_watchdog_that_dies_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The one monkeypatch here: nothing a user gives can make the watchdog's stop raise, so it is made to.
    from workbench.run import scenario as scenario_run

    def broken_stop(self: object, reason: str) -> None:
        if reason == "timeout":
            raise RuntimeError("the watchdog broke")

    monkeypatch.setattr(scenario_run._WorkerStopper, "stop", broken_stop)
    path = tmp_path / "slow.yaml"
    path.write_text("name: slow\ndescription: d\nallocator: glibc\ntimeout: 500ms\nsteps:\n  - hold: 3s\n")
    prepared = prepare(RunRequest(str(path)))
    report = execute(prepared, RunDir.claim("unused", tmp_path / "run"), quiet=True, html=False)
    assert report.status == "failed" and report.error is not None
    assert (report.error.type, report.error.message) == (
        "WatchdogDied", "the watchdog thread died: RuntimeError: the watchdog broke (the run was not guarded by its "
                        "timeout)")
