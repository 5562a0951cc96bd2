"""Which library to preload for an allocator name, and where it came from (built here, a system package, a file)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from workbench._errors import BadInput
from workbench._files import sha256_file
from workbench.protocol.provenance import Provenance
from workbench.toolchain.elf import NotAnAllocator, check_allocator_library

if TYPE_CHECKING:
    from workbench.toolchain.source_build import BuiltAllocator


@dataclass(frozen=True)
class AllocatorChoice:
    name: str
    library: Path | None  # None: nothing preloaded (glibc's malloc)
    expected_backend: str | None  # what the worker must find answering malloc; None for a user's own library
    provenance: Provenance


@dataclass(frozen=True)
class SystemAllocator:
    """An allocator a distribution package provides."""

    name: str
    sonames: tuple[str, ...]  # to look for in the linker cache, in order
    package: str  # the Debian package that installs it
    backend: str  # what the probe should then find answering malloc


SYSTEM_ALLOCATORS: Mapping[str, SystemAllocator] = MappingProxyType({
    a.name: a for a in (
        SystemAllocator("system:jemalloc", ("libjemalloc.so.2",), "libjemalloc2", "jemalloc"),
        SystemAllocator("system:tcmalloc", ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"), "libtcmalloc-minimal4",
                        "tcmalloc"),
        SystemAllocator("system:mimalloc", ("libmimalloc.so.2",), "libmimalloc2.0", "mimalloc"),
    )
})
NAMES = ("jemalloc", "system:jemalloc", "tcmalloc", "system:tcmalloc", "mimalloc", "system:mimalloc", "glibc")
# Built from source into the cache on first use (toolchain/jemalloc.py, toolchain/tcmalloc.py, toolchain/mimalloc.py).
BUILT = ("jemalloc", "tcmalloc", "mimalloc")


def _ldconfig_paths() -> dict[str, Path]:
    try:
        out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    found: dict[str, Path] = {}
    for line in out.splitlines()[1:]:
        name, _, path = line.strip().partition(" => ")
        soname, _, flags = name.partition(" (")
        if "x86-64" in flags or "64bit" in flags or "AArch64" in flags:
            found.setdefault(soname, Path(path))
    return found


def _package_of(path: Path) -> str | None:
    """``libjemalloc2 5.3.0-1``: the Debian package that installed this file, if dpkg knows it."""
    candidates = {str(path), str(path.resolve())}
    candidates |= {"/usr" + c for c in list(candidates) if c.startswith("/lib")}
    for candidate in sorted(candidates):
        try:
            owner = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True, check=True)
            package = owner.stdout.split(":")[0].strip()
            version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                                     text=True, check=True).stdout.strip()
            return f"{package} {version}"
        except (OSError, subprocess.CalledProcessError):
            continue
    return None


def find_system_allocator(name: str) -> Path | None:
    """Where the linker finds the library of a system allocator (a key of SYSTEM_ALLOCATORS), or None when it is not
    installed; installs nothing."""
    found = _ldconfig_paths()
    return next((found[s] for s in SYSTEM_ALLOCATORS[name].sonames if s in found), None)


def is_library_path(name: str) -> bool:
    """An allocator given as a file (``/path/lib.so``, ``./libmine.so.2``) rather than by name."""
    return "/" in name or name.endswith(".so") or ".so." in name


def check_allocator(name: str, option: str = "--allocator") -> None:
    """BadInput (exit 2, naming ``option``) unless a run can preload ``name``: a known name (a system allocator must be
    installed), or a file that is a shared library for this machine defining malloc and free. Builds nothing; a run
    and ``validate`` check with this alike."""
    if name == "glibc" or name in BUILT:
        return
    if name in SYSTEM_ALLOCATORS:
        system = SYSTEM_ALLOCATORS[name]
        if find_system_allocator(name) is None:
            raise BadInput(
                f"{option} {name}: {system.sonames[0]} is not installed; install the Debian package "
                f"{system.package} (apt-get install {system.package})"
            )
        return
    if not is_library_path(name):
        raise BadInput(f"{option} {name}: unknown allocator (expected one of: {', '.join(NAMES)}, or a path to a .so)")
    path = Path(name)
    if not path.is_file():
        raise BadInput(f"{option} {name}: no such file (expected a shared library to preload)")
    try:
        check_allocator_library(path)
    except NotAnAllocator as error:
        raise BadInput(f"{option} {name}: {error} (expected an allocator: a shared library that defines malloc "
                       "and free)") from None
    except OSError as error:
        raise BadInput(f"{option} {name}: cannot read it ({error.strerror or error})") from None


def resolve_allocator(name: str, quiet: bool = False, option: str = "--allocator") -> AllocatorChoice:
    """The library for an allocator name (see NAMES) or a path to a shared library; builds jemalloc, tcmalloc or
    mimalloc on first use.
    BadInput (see :func:`check_allocator`) names ``option``, where the name came from."""
    check_allocator(name, option)
    if name == "glibc":
        return AllocatorChoice("glibc", None, "glibc", Provenance("none"))
    if name == "jemalloc":
        from workbench.toolchain.jemalloc import ensure_jemalloc

        return _built_choice(ensure_jemalloc(quiet=quiet))
    if name == "tcmalloc":
        from workbench.toolchain.tcmalloc import ensure_tcmalloc

        return _built_choice(ensure_tcmalloc(quiet=quiet))
    if name == "mimalloc":
        from workbench.toolchain.mimalloc import ensure_mimalloc

        return _built_choice(ensure_mimalloc(quiet=quiet))
    if name in SYSTEM_ALLOCATORS:
        path = find_system_allocator(name)
        assert path is not None  # check_allocator found it
        return AllocatorChoice(name, path, SYSTEM_ALLOCATORS[name].backend,
                               Provenance("system", _package_of(path), sha256_file(path)))
    resolved = Path(name).resolve()
    return AllocatorChoice(str(resolved), resolved, None, Provenance("file", None, sha256_file(resolved)))


def _built_choice(built: BuiltAllocator) -> AllocatorChoice:
    return AllocatorChoice(
        built.name, built.library, built.name,
        Provenance("built", None, built.library_sha256, list(built.configure_args), built.source, built.source_sha256),
    )


def ready_allocator(name: str, option: str = "--allocator") -> AllocatorChoice | None:
    """Like :func:`resolve_allocator`, but never builds: None for a jemalloc, tcmalloc or mimalloc that is not built
    yet."""
    if name in BUILT:
        from workbench.toolchain.jemalloc import cached_jemalloc
        from workbench.toolchain.mimalloc import lookup_mimalloc
        from workbench.toolchain.tcmalloc import lookup_tcmalloc

        built = (cached_jemalloc() if name == "jemalloc" else
                 lookup_tcmalloc().built if name == "tcmalloc" else lookup_mimalloc().built)
        return _built_choice(built) if built is not None else None
    return resolve_allocator(name, option=option)
