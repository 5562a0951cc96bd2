"""Build jemalloc from its source release into the per-user cache, once per recipe, source and configure arguments.

The cache, under ``cache_dir()/allocators``::

    jemalloc-5.3.0-<recipe hash>/          one build: lib/libjemalloc.so.2, include/, build.log, manifest.json (last)
    jemalloc-<version|default>-<hash>.json where the build for a version asked of Debian is, found without downloading
    sources/, .apt/, apt-fetch.log         Debian's source packages and the private apt state (see debian_source)
    failed-jemalloc-<...>.log              the log of the last failed build of that entry
    .build-jemalloc-*/, .fetch-*/          a build or download in progress (or killed: removed under the lock)
    jemalloc.lock                          held while building or downloading
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from workbench._errors import BadInput
from workbench._files import sha256_file
from workbench._resources import native_dir
from workbench.toolchain.cache import (
    BuildArea, BuildFailed, LockedArea, allocators_dir, json_text, read_json, require_tools, write_json,
)
from workbench.toolchain.debian_source import FETCH_PREFIX, fetch_source_package

DEFAULT_CONFIGURE_ARGS = ("--enable-prof",)

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "workbench.built-allocator/1"
LIBRARY = Path("lib") / "libjemalloc.so.2"
BUILD_LOG = "build.log"
DEBIAN_PACKAGE = "jemalloc"
# The command -> the Debian package that provides it.
BUILD_TOOLS = {"gcc": "gcc", "make": "make", "bash": "bash"}
_VERSION_PATTERN = re.compile(r"^[0-9][0-9A-Za-z.+~_]*$")
_TAR_SUFFIXES = (".tar.bz2", ".tbz2", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar")
_PROGRESS_EVERY_S = 15.0


@dataclass(frozen=True)
class BuiltAllocator:
    """A jemalloc built into the cache, as its manifest records it."""

    name: str
    version: str  # what mallctl("version") answers in the built library
    library: Path
    configure_args: list[str]
    library_sha256: str
    source: str  # a local path, or the Debian source package and tarball it came from
    source_sha256: str  # of the tarball, or of a canonical listing of a source directory
    cache_entry: Path


@dataclass(frozen=True)
class _Source:
    path: Path  # a tarball or an extracted directory
    description: str
    sha256: str
    upstream_version: str


# --- the cache --------------------------------------------------------------------------------------------------


def _area() -> BuildArea:
    return BuildArea(allocators_dir(), lock_name="jemalloc.lock", staging_prefix=".build-jemalloc-",
                     log_name=BUILD_LOG, manifest_name=MANIFEST, also_abandoned=(FETCH_PREFIX,))


def _recipe() -> Path:
    # Not in _resources' public API yet: a wheel needs native/ force-included like jvm/ (see pyproject).
    return native_dir() / "jemalloc" / "build.sh"


def _args_hash(recipe: bytes, configure_args: Sequence[str]) -> str:
    return hashlib.sha256(recipe + b"\0" + json.dumps(list(configure_args)).encode()).hexdigest()


def _recipe_hash(recipe: bytes, configure_args: Sequence[str], source_sha256: str) -> str:
    return hashlib.sha256(_args_hash(recipe, configure_args).encode() + b"\0" + source_sha256.encode()).hexdigest()


@dataclass(frozen=True)
class JemallocLookup:
    """What the cache holds for one build: :func:`lookup_jemalloc`'s answer."""

    built: BuiltAllocator | None  # a complete entry whose library still has its recorded checksum
    damaged: str | None  # why a complete entry cannot be used (its library changed or is gone)


def _lookup(entry: Path, configure_args: Sequence[str]) -> JemallocLookup:
    """An entry without a readable manifest is an unfinished build: it counts as absent and is replaced."""
    manifest = read_json(entry / MANIFEST)
    if manifest is None or manifest.get("schema") != MANIFEST_SCHEMA or manifest.get("configure_args") != list(
        configure_args
    ):
        return JemallocLookup(None, None)
    library = entry / LIBRARY  # not manifest["library"]: the cache may have moved since
    try:
        actual = sha256_file(library)
    except OSError:
        return JemallocLookup(None, f"{library} is missing")
    if actual != manifest["library_sha256"]:
        return JemallocLookup(None, f"{library} changed since it was built (sha256 {actual[:16]}..., "
                                    f"built {str(manifest['library_sha256'])[:16]}...)")
    return JemallocLookup(
        BuiltAllocator(
            name=manifest["name"], version=manifest["version"], library=library,
            configure_args=list(manifest["configure_args"]), library_sha256=actual, source=manifest["source"],
            source_sha256=manifest["source_sha256"], cache_entry=entry,
        ),
        None,
    )


def _warn(message: str) -> None:
    print(f"workbench: warning: {message}", file=sys.stderr)


# --- progress ---------------------------------------------------------------------------------------------------


class _Progress:
    """One line per phase on stderr; on a terminal the line counts seconds, elsewhere a line every 15 s."""

    def __init__(self, quiet: bool, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.phase: str | None = None
        self.started = 0.0
        self.last_line = 0.0

    def start(self, phase: str) -> None:
        self.finish()
        self.phase, self.started, self.last_line = phase, time.monotonic(), time.monotonic()
        if not self.quiet:
            self.stream.write(f"jemalloc: {phase}..." + ("" if self.live else "\n"))
            self.stream.flush()

    def tick(self) -> None:
        if self.quiet or self.phase is None:
            return
        now = time.monotonic()
        elapsed = int(now - self.started)
        if self.live:
            self.stream.write(f"\rjemalloc: {self.phase}... ({elapsed} s)")
            self.stream.flush()
        elif now - self.last_line >= _PROGRESS_EVERY_S:
            self.last_line = now
            self.stream.write(f"jemalloc: {self.phase}... ({elapsed} s)\n")
            self.stream.flush()

    def finish(self) -> None:
        if not self.quiet and self.live and self.phase is not None:
            self.stream.write(f"\rjemalloc: {self.phase}... ({int(time.monotonic() - self.started)} s)\n")
            self.stream.flush()
        self.phase = None


# --- the source: a local tarball or directory (Debian's source package: see debian_source) ------------------------


def _release_version(version_text: str, shown_as: str) -> str:
    """``5.3.0`` from a release's VERSION file (``5.3.0-0-g54eaed1d...``)."""
    version = version_text.strip().split("-")[0]
    if not _VERSION_PATTERN.match(version):
        raise BadInput(f"source {shown_as}: its VERSION file does not start with a version number")
    return version


def _not_a_release(shown_as: str, missing: list[str], has_configure_ac: bool) -> BadInput:
    hint = " (a git checkout: run ./autogen.sh in it first)" if has_configure_ac else ""
    return BadInput(f"source {shown_as}: not a jemalloc release source, it has no {' and '.join(missing)}{hint}; "
                    "give a release tarball such as jemalloc-5.3.0.tar.bz2 or the directory it unpacks to")


def _directory_version(source_dir: Path) -> str:
    missing = [name for name in ("configure", "VERSION") if not (source_dir / name).is_file()]
    if missing:
        raise _not_a_release(str(source_dir), missing, (source_dir / "configure.ac").is_file())
    return _release_version((source_dir / "VERSION").read_text(encoding="utf-8", errors="replace"), str(source_dir))


def _tarball_version(tarball: Path, shown_as: str) -> str:
    """The release in a tarball, read from its top directory's VERSION without unpacking it."""
    try:
        with tarfile.open(tarball, "r:*") as archive:
            tops: dict[str, dict[str, tarfile.TarInfo]] = {}
            for member in archive:
                parts = PurePosixPath(member.name).parts
                if parts and parts[-1] in ("configure", "VERSION", "configure.ac") and len(parts) <= 2:
                    tops.setdefault(str(PurePosixPath(*parts[:-1])), {})[parts[-1]] = member
            top = next((found for found in tops.values() if "configure" in found and "VERSION" in found), None)
            if top is None:
                found = next(iter(tops.values()), {})
                missing = [name for name in ("configure", "VERSION") if name not in found]
                raise _not_a_release(shown_as, missing, "configure.ac" in found)
            stream = archive.extractfile(top["VERSION"])
            text = stream.read().decode(errors="replace") if stream is not None else ""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadInput(f"source {shown_as}: cannot read it as a tarball ({exc})") from None
    return _release_version(text, shown_as)


def _directory_sha256(root: Path) -> str:
    """sha256 over every file's relative path, executable bit and content, and every symlink's target, sorted."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root)).encode()
        if path.is_symlink():
            digest.update(b"L\0" + relative + b"\0" + os.readlink(path).encode() + b"\0")
        elif path.is_file():
            executable = b"x" if os.access(path, os.X_OK) else b"-"
            digest.update(b"F\0" + relative + b"\0" + executable + sha256_file(path).encode() + b"\0")
    return digest.hexdigest()


def _unpack(tarball: Path, into: Path, shown_as: str) -> Path:
    """The source tree inside a tarball, unpacked with tarfile's ``data`` filter (no links or devices out of it)."""
    try:
        with tarfile.open(tarball, "r:*") as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(into, filter="data")
            else:  # Python before 3.11.4 has no extraction filters: refuse what the data filter would refuse
                for member in archive.getmembers():
                    parts = Path(member.name).parts
                    if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                        raise tarfile.TarError(f"refusing member {member.name!r}")
                archive.extractall(into)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadInput(f"source {shown_as}: cannot unpack it ({exc})") from None
    if (into / "configure").is_file():
        return into
    top = next((p.parent for p in into.glob("*/configure") if (p.parent / "VERSION").is_file()), None)
    if top is None:
        raise _not_a_release(shown_as, ["configure", "VERSION"], False)
    return top


def _local_source(path: Path, version: str | None) -> _Source:
    path = path.resolve()
    if path.is_dir():
        upstream = _directory_version(path)
        source = _Source(path, str(path), _directory_sha256(path), upstream)
    elif not path.is_file():
        raise BadInput(f"source {path}: no such file or directory")
    elif not path.name.endswith(_TAR_SUFFIXES):
        raise BadInput(f"source {path}: expected a .tar.bz2, .tar.gz or .tar.xz release tarball or a directory")
    else:
        source = _Source(path, str(path), sha256_file(path), _tarball_version(path, str(path)))
    if version is not None and source.upstream_version != version:
        raise BadInput(f"--version {version}: source {path} is jemalloc {source.upstream_version}")
    return source


# --- building ---------------------------------------------------------------------------------------------------

_CHECK_LIBRARY = """
import ctypes, json, sys
library = ctypes.CDLL(sys.argv[1])
version, size = ctypes.c_char_p(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_char_p))
assert library.mallctl(b"version", ctypes.byref(version), ctypes.byref(size), None, ctypes.c_size_t(0)) == 0
prof, size = ctypes.c_bool(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_bool))
assert library.mallctl(b"config.prof", ctypes.byref(prof), ctypes.byref(size), None, ctypes.c_size_t(0)) == 0
print(json.dumps({"version": version.value.decode(), "config.prof": prof.value}))
"""


def _check_library(library: Path) -> dict[str, Any]:
    """mallctl's ``version`` and ``config.prof`` read in a fresh Python with the library preloaded."""
    # Preloaded, not only dlopen()ed: jemalloc's initial-exec TLS does not fit in a running process's static TLS.
    env = {**os.environ, "LD_PRELOAD": str(library)}
    env.pop("MALLOC_CONF", None)
    result = subprocess.run([sys.executable, "-c", _CHECK_LIBRARY, str(library)], capture_output=True, text=True,
                            env=env, stdin=subprocess.DEVNULL, timeout=60, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise BuildFailed(f"the built {library.name} does not answer mallctl(\"version\"): {last}")
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def _follow_phases(log: Path, offset: int, progress: _Progress) -> int:
    with log.open("rb") as stream:
        stream.seek(offset)
        chunk = stream.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    for line in complete.decode(errors="replace").splitlines():
        if line.startswith("==> "):
            progress.start(line[4:].strip())
    return offset + len(complete)


def _run_recipe(recipe: Path, source_dir: Path, prefix: Path, configure_args: Sequence[str], log: Path,
                progress: _Progress) -> int:
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["bash", str(recipe), str(source_dir), str(prefix), *configure_args], cwd=source_dir, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        offset = 0
        try:
            while True:
                try:
                    returncode: int | None = process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    returncode = None
                offset = _follow_phases(log, offset, progress)
                if returncode is not None:
                    return returncode
                progress.tick()
        except BaseException:
            # make -j runs in its own session: stop all of it, not only bash.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise


def _entry(root: Path, recipe: bytes, configure_args: Sequence[str], source: _Source) -> Path:
    return root / f"jemalloc-{source.upstream_version}-{_recipe_hash(recipe, configure_args, source.sha256)[:16]}"


def _build_into(staging: Path, log: Path, recipe: Path, source: _Source, configure_args: list[str], entry: Path,
                progress: _Progress) -> BuiltAllocator:
    """Unpack, build and check in the staging folder; the result names the files as they will be in ``entry``."""
    try:
        progress.start("unpacking source")
        if source.path.is_dir():
            source_dir = staging / "src"
            shutil.copytree(source.path, source_dir, symlinks=True)
        else:
            source_dir = _unpack(source.path, staging / "src", source.description)
        log.write_text(f"# source: {source.description} (sha256 {source.sha256})\n"
                       f"# configure args: {' '.join(configure_args)}\n", encoding="utf-8")
        returncode = _run_recipe(recipe, source_dir, staging, configure_args, log, progress)
        if returncode != 0:
            raise BuildFailed(f"building jemalloc {source.upstream_version} failed (exit {returncode})")
        progress.start("checking the library")
        answer = _check_library(staging / LIBRARY)
    finally:
        progress.finish()
    shutil.rmtree(staging / "src")
    return BuiltAllocator(
        name="jemalloc", version=answer["version"], library=entry / LIBRARY, configure_args=configure_args,
        library_sha256=sha256_file(staging / LIBRARY), source=source.description, source_sha256=source.sha256,
        cache_entry=entry,
    )


def _reuse_or_build(locked: LockedArea, recipe: Path, source: _Source, configure_args: list[str],
                    progress: _Progress) -> tuple[BuiltAllocator, bool]:
    """With the lock held: the entry of this source if it is sound, else a new build."""
    entry = _entry(locked.area.root, recipe.read_bytes(), configure_args, source)
    found = _lookup(entry, configure_args)
    if found.built is not None:
        return found.built, False
    if found.damaged is not None:
        _warn(f"{found.damaged}; rebuilding it")
    built = locked.build(
        entry, lambda staging, log: _build_into(staging, log, recipe, source, configure_args, entry, progress),
        manifest=_manifest_text,
    )
    return built, True


def _manifest_text(built: BuiltAllocator) -> str:
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(built).items()}
    return json_text({"schema": MANIFEST_SCHEMA, **fields})


# --- the entry point --------------------------------------------------------------------------------------------


def _index(root: Path, recipe: bytes, version: str | None, configure_args: Sequence[str]) -> Path:
    return root / f"jemalloc-{version or 'default'}-{_args_hash(recipe, configure_args)[:16]}.json"


def _indexed_entry(index: Path) -> Path:
    return index.parent / str((read_json(index) or {}).get("entry", ".missing"))


def lookup_jemalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                    source: Path | None = None) -> JemallocLookup:
    """What :func:`ensure_jemalloc` with these arguments would find in the cache, read only: it never builds,
    downloads or runs apt (with ``source`` it reads the source, for its checksum). ``damaged`` tells why a build that
    was complete cannot be used. Raises BadInput (exit 2) for arguments ensure_jemalloc would refuse."""
    args = _checked_arguments(version, configure_args)
    root, recipe = allocators_dir(), _recipe().read_bytes()
    if source is not None:
        return _lookup(_entry(root, recipe, args, _local_source(source, version)), args)
    return _lookup(_indexed_entry(_index(root, recipe, version, args)), args)


def cached_jemalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                    source: Path | None = None) -> BuiltAllocator | None:
    """The build :func:`ensure_jemalloc` would return from the cache, or None when it would build; never builds."""
    return lookup_jemalloc(version, configure_args, source).built


def _checked_arguments(version: str | None, configure_args: Sequence[str] | None) -> list[str]:
    if version is not None and not _VERSION_PATTERN.match(version):
        raise BadInput(f"--version {version}: expected a version number such as 5.3.0")
    args = list(DEFAULT_CONFIGURE_ARGS if configure_args is None else configure_args)
    for arg in args:
        if arg == "--prefix" or arg.startswith("--prefix="):
            raise BadInput("--configure: --prefix is set by the build (the library goes into the cache)")
    return args


def build_jemalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                   source: Path | None = None, quiet: bool = False) -> tuple[BuiltAllocator, bool]:
    """Like :func:`ensure_jemalloc`, also telling whether it built (True) or found the build in the cache (False)."""
    args = _checked_arguments(version, configure_args)
    area = _area()
    root = area.root
    recipe = _recipe()
    progress = _Progress(quiet)
    if source is not None:
        local = _local_source(source, version)
        found = _lookup(_entry(root, recipe.read_bytes(), args, local), args)
        if found.built is not None:
            return found.built, False
        with area.locked() as locked:
            require_tools(BUILD_TOOLS, "to build jemalloc")
            return _reuse_or_build(locked, recipe, local, args, progress)

    # Debian's source: found through the index, so that a cached build needs neither apt nor the network.
    index = _index(root, recipe.read_bytes(), version, args)
    found = _lookup(_indexed_entry(index), args)
    if found.built is not None:
        return found.built, False
    with area.locked() as locked:
        pointer = read_json(index) or {}
        found = _lookup(_indexed_entry(index), args)
        if found.built is not None:
            return found.built, False
        require_tools(BUILD_TOOLS, "to build jemalloc")  # before downloading anything
        kept = root / "sources" / str(pointer.get("source_file", ".missing"))
        if kept.is_file() and sha256_file(kept) == pointer.get("source_sha256"):
            debian = _Source(kept, str(pointer["source"]), str(pointer["source_sha256"]),
                             _tarball_version(kept, str(kept)))
        else:
            progress.start("fetching source (Debian source package)")
            fetched = fetch_source_package(root, DEBIAN_PACKAGE, version)
            debian = _Source(fetched.tarball, fetched.description, fetched.sha256,
                             _tarball_version(fetched.tarball, fetched.tarball.name))
        built, rebuilt = _reuse_or_build(locked, recipe, debian, args, progress)
        write_json(index, {
            "entry": built.cache_entry.name, "source": built.source, "source_sha256": built.source_sha256,
            "source_file": debian.path.name,
        })
        return built, rebuilt


def ensure_jemalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                    source: Path | None = None, quiet: bool = False) -> BuiltAllocator:
    """jemalloc built from source with ``configure_args``: from the cache when this recipe, these arguments and this
    source were built before (checked against the library's recorded sha256), else built now and cached.

    ``source`` is a release tarball or its unpacked directory; without it, Debian's ``jemalloc`` source package is
    downloaded with a private apt state (``version``, e.g. ``5.3.0``, must then be the one Debian has). A later call
    without ``source`` finds the build through an index file and neither downloads nor runs apt.
    Raises BadInput (exit 2) for what the user can fix, RunFailed (exit 3) when the build fails.
    """
    return build_jemalloc(version, configure_args, source, quiet)[0]
