"""Build the allocator probe (native/probe: libworkbench-probe.so, the native agent that starts the Java agent
libworkbench-jvmagent.so, and the probe's test program) into the per-user cache.

The cache, under ``cache_dir()/probe`` (see :mod:`workbench.toolchain.cache`)::

    <sha256 of native/probe's sources, 16 hex>/   libworkbench-probe.so, libworkbench-jvmagent.so, test_probe,
                                                  build.log (moved in complete), manifest.json (last: the sha256 of
                                                  each, checked at first use)
    .build-probe-*/                               a build in progress (or killed: removed under the lock)
    failed-<entry>.log                            the log of the last failed build
    probe.lock                                    held while building
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from workbench._errors import BadInput
from workbench._files import sha256_file, write_atomically
from workbench._resources import native_dir
from workbench.toolchain.cache import BuildArea, BuildFailed, json_text, probe_dir, read_json, require_tools
from workbench.toolchain.elf import NotAnAllocator, defined_functions

LIBRARY = "libworkbench-probe.so"
JVM_AGENT = "libworkbench-jvmagent.so"
TEST_PROGRAM = "test_probe"
BUILD_LOG = "build.log"
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "workbench.built-probe/1"
# The command -> the Debian package that provides it.
BUILD_TOOLS = {"gcc": "gcc", "make": "make"}


def _sources() -> Path:
    return native_dir() / "probe"


def _area() -> BuildArea:
    return BuildArea(probe_dir(), lock_name="probe.lock", staging_prefix=".build-probe-", log_name=BUILD_LOG)


def sources_hash(sources: Path | None = None) -> str:
    """sha256 over every source file of the probe (C, headers, Makefile) with its name: the cache key."""
    sources = sources or _sources()
    digest = hashlib.sha256()
    files = sorted(p for p in sources.iterdir() if p.is_file() and (p.suffix in (".c", ".h") or p.name == "Makefile"))
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _entry() -> Path:
    return probe_dir() / sources_hash()[:16]


_FILES = (LIBRARY, JVM_AGENT, TEST_PROGRAM)
_verified: set[Path] = set()  # entries checked against their manifest in this process (once is enough)


def _complete(entry: Path) -> bool:
    # An entry is moved in whole, so its files there mean a finished build.
    return all((entry / name).is_file() for name in _FILES)


def _manifest(entry: Path) -> str:
    return json_text({"schema": MANIFEST_SCHEMA, "sha256": {name: sha256_file(entry / name) for name in _FILES}})


def _damage(entry: Path) -> str | None:
    """Why a complete entry cannot be used (a file changed since it was built), or None when it is sound."""
    manifest = read_json(entry / MANIFEST)
    recorded = manifest.get("sha256") if manifest and manifest.get("schema") == MANIFEST_SCHEMA else None
    if not isinstance(recorded, dict):
        return "it has no manifest" if manifest is None else "its manifest is not one this workbench writes"
    for name in _FILES:
        actual = sha256_file(entry / name)
        if actual != recorded.get(name):
            return (f"{entry / name} changed since it was built (sha256 {actual[:16]}..., built "
                    f"{str(recorded.get(name))[:16]}...)")
    return None


def _sound_without_manifest(entry: Path) -> bool:
    """An entry built before probes had manifests: kept (and given one) when its library is a whole ELF file."""
    try:
        defined_functions(entry / LIBRARY, ())
    except (NotAnAllocator, OSError):
        return False
    return True


def probe_cached() -> bool:
    """Whether the probe of these sources is built (complete in the cache; its manifest is checked at first use)."""
    return _complete(_entry())


def java_include_problem(home: Path) -> str | None:
    """Why the JDK at ``home`` cannot build the native agent (its C headers are missing), or None."""
    include = home / "include"
    if (include / "jni.h").is_file() and (include / "linux" / "jni_md.h").is_file():
        return None
    return (f"building the allocator probe needs a JDK's C headers: {include}/jni.h is missing (install the full "
            "JDK, e.g. Debian's openjdk-17-jdk-headless, or set JAVA_HOME to one)")


def _java_include() -> Path:
    """The include directory (jni.h, jvmti.h) of the workbench's JDK, for the native agent: the JNI and JVMTI
    interfaces only grow, so one JDK's headers build an agent for every JDK from 9 on."""
    from workbench.run.jdk import resolve_jdk

    home = resolve_jdk(None).home
    problem = java_include_problem(home)
    if problem is not None:
        raise BadInput(problem)
    return home / "include"


def _make(staging: Path, log: Path, include: Path) -> None:
    with log.open("wb") as out:
        result = subprocess.run(["make", "-C", str(_sources()), f"OUT={staging}", f"JAVA_INCLUDE={include}"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=300, check=False)
    if result.returncode != 0 or not _complete(staging):
        raise BuildFailed(f"building the allocator probe into {probe_dir()} failed (exit {result.returncode})")


def _ensure_entry(quiet: bool) -> Path:
    entry = _entry()
    if entry in _verified:
        return entry
    if _complete(entry) and _damage(entry) is None:
        _verified.add(entry)
        return entry
    with _area().locked() as area:
        damage = _damage(entry) if _complete(entry) else None
        if _complete(entry) and damage == "it has no manifest":
            if _sound_without_manifest(entry):
                write_atomically(entry / MANIFEST, _manifest(entry))
                damage = None
            else:
                damage = f"{entry / LIBRARY} is not a whole ELF file"
        if _complete(entry) and damage is None:
            _verified.add(entry)
            return entry
        require_tools(BUILD_TOOLS, "to build the allocator probe")
        include = _java_include()
        if damage is not None:
            print(f"workbench: the cached allocator probe is damaged ({damage}); rebuilding it in {entry}",
                  file=sys.stderr)
        elif not quiet:
            print(f"Building the allocator probe with gcc (first use; cached in {entry}) ...", file=sys.stderr)
        area.build(entry, lambda staging, log: _make(staging, log, include), manifest=lambda _: _manifest(entry))
    _verified.add(entry)
    return entry


def ensure_probe(quiet: bool = False) -> Path:
    """libworkbench-probe.so for these sources: from the cache, or built now with gcc (and cached with its test
    program). A second call runs no compiler. Raises BadInput (exit 2) when gcc or make is missing, RunFailed
    (exit 3) when the build fails."""
    return _ensure_entry(quiet) / LIBRARY


def ensure_jvm_agent(quiet: bool = False) -> Path:
    """libworkbench-jvmagent.so (native/probe/jvm_agent.c), built beside the library by :func:`ensure_probe`: what
    `exec` starts its program's Java agent with (``-agentpath``), instead of ``-javaagent``."""
    return _ensure_entry(quiet) / JVM_AGENT


def ensure_probe_test_program(quiet: bool = False) -> Path:
    """The probe's C test program (``test_probe``), built beside the library by :func:`ensure_probe`."""
    return _ensure_entry(quiet) / TEST_PROGRAM
