"""Build an allocator (jemalloc, mimalloc) from its source release into the per-user cache, once per recipe, source
and configure arguments. Each allocator is a :class:`Recipe` (``toolchain/jemalloc.py``, ``toolchain/mimalloc.py``):
its build script and patches in ``native/<name>/``, the files that mark a release tree and give its version, and the
check that the built library is the allocator it should be.

Every recipe applies its patches (``patch -p1``, in name order) and adds ``native/mapped-ranges/workbench_ranges.h``
to the source's ``src/``: the patches make the allocator keep the address ranges it maps, so that the kernel's
residency of its pages can be read (``probes/allocator.py``); mimalloc's also turns its statistics on for every
thread. The script, patches and header are part of the cache key.

The cache, under ``cache_dir()/allocators``::

    NAME-VERSION-<recipe hash>/          one build: lib/..., build.log, manifest.json (written last)
    NAME-<version|default>-<hash>.json   where the build for a version asked of Debian is, found without downloading
    sources/, .apt/, apt-fetch.log       Debian's source packages and the private apt state (see debian_source)
    failed-NAME-<...>.log                the log of the last failed build of that entry
    .build-NAME-*/, .fetch-*/            a build or download in progress (or killed: removed under the lock)
    allocators.lock                      held while building or downloading
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
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from workbench._errors import BadInput
from workbench._files import sha256_file
from workbench._resources import native_dir
from workbench.toolchain.cache import (
    FETCH_PREFIX, BuildArea, BuildFailed, LockedArea, allocators_dir, json_text, read_json, require_tools, write_json,
)

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "workbench.built-allocator/1"
# The library's file status when its checksum was last found to be the manifest's (see _library_sha256).
VERIFIED = "verified.json"
BUILD_LOG = "build.log"
RANGES_HEADER = Path("mapped-ranges") / "workbench_ranges.h"  # under native/
# The command -> the Debian package that provides it, for every recipe.
COMMON_TOOLS = {"gcc": "gcc", "bash": "bash", "patch": "patch"}
_VERSION_PATTERN = re.compile(r"^[0-9][0-9A-Za-z.+~_]*$")
_TAR_SUFFIXES = (".tar.bz2", ".tbz2", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar")
_PROGRESS_EVERY_S = 15.0


@dataclass(frozen=True)
class Recipe:
    """How one allocator is built from its source release."""

    name: str  # "jemalloc": the cache entries' prefix and native/<name>/
    debian_package: str  # the source package fetched when no --source is given
    library: Path  # the built library inside an entry
    default_args: tuple[str, ...]  # for the build script (configure's or cmake's arguments)
    build_tools: dict[str, str]  # command -> Debian package, besides COMMON_TOOLS
    markers: tuple[str, ...]  # files (relative paths) every release tree of it has
    version_file: str  # one of the markers: the release's version is read from it
    read_version: Callable[[str], str | None]  # the version in version_file's text; None: not found
    check_script: str  # Python run with the library preloaded: prints {"version": ...} as JSON, fails otherwise
    prefix_args: tuple[str, ...]  # arguments that would move the install out of the cache (refused)
    version_example: str  # for the message about a --version that is not one
    tarball_example: str  # for the message about a source that is not a release
    checkout_hint: tuple[str, str] | None = None  # (file, advice): a tree with this file and no markers is a checkout

    def tools(self) -> dict[str, str]:
        """Every command the build needs -> the Debian package that provides it, the compiler first."""
        return {"gcc": COMMON_TOOLS["gcc"], **self.build_tools, **COMMON_TOOLS}


@dataclass(frozen=True)
class BuiltAllocator:
    """An allocator built into the cache, as its manifest records it."""

    name: str
    version: str  # what the built library answers (jemalloc's mallctl("version"), mi_version())
    library: Path
    configure_args: list[str]
    library_sha256: str
    source: str  # a local path, or the Debian source package and tarball it came from
    source_sha256: str  # of the tarball, or of a canonical listing of a source directory
    cache_entry: Path
    patches: list[str] = field(default_factory=list)  # applied to the source, in order (native/<name>/*.patch)


@dataclass(frozen=True)
class _Source:
    path: Path  # a tarball or an extracted directory
    description: str
    sha256: str
    upstream_version: str


# --- the cache --------------------------------------------------------------------------------------------------


def _area(recipe: Recipe) -> BuildArea:
    # One lock for every allocator: they share the downloaded sources and the private apt state.
    return BuildArea(allocators_dir(), lock_name="allocators.lock", staging_prefix=f".build-{recipe.name}-",
                     log_name=BUILD_LOG, manifest_name=MANIFEST, also_abandoned=(".build-", FETCH_PREFIX))


def _script(recipe: Recipe) -> Path:
    return native_dir() / recipe.name / "build.sh"


def _patches(recipe: Recipe) -> list[Path]:
    return sorted((native_dir() / recipe.name).glob("*.patch"))


def _recipe_bytes(recipe: Recipe) -> bytes:
    """The build script, the patches and the ranges header, each named: what a build is keyed on besides its
    arguments and source."""
    parts = [_script(recipe), *_patches(recipe), native_dir() / RANGES_HEADER]
    return b"".join(part.name.encode() + b"\0" + part.read_bytes() + b"\0" for part in parts)


def _args_hash(recipe: bytes, configure_args: Sequence[str]) -> str:
    return hashlib.sha256(recipe + b"\0" + json.dumps(list(configure_args)).encode()).hexdigest()


def _recipe_hash(recipe: bytes, configure_args: Sequence[str], source_sha256: str) -> str:
    return hashlib.sha256(_args_hash(recipe, configure_args).encode() + b"\0" + source_sha256.encode()).hexdigest()


@dataclass(frozen=True)
class BuildLookup:
    """What the cache holds for one build: :func:`lookup`'s answer."""

    built: BuiltAllocator | None  # a complete entry whose library still has its recorded checksum
    damaged: str | None  # why a complete entry cannot be used (its library changed or is gone)


def _lookup(recipe: Recipe, entry: Path, configure_args: Sequence[str]) -> BuildLookup:
    """An entry without a readable manifest is an unfinished build: it counts as absent and is replaced."""
    manifest = read_json(entry / MANIFEST)
    if manifest is None or manifest.get("schema") != MANIFEST_SCHEMA or manifest.get("configure_args") != list(
        configure_args
    ):
        return BuildLookup(None, None)
    library = entry / recipe.library  # not manifest["library"]: the cache may have moved since
    try:
        actual = _library_sha256(library, entry / VERIFIED)
    except OSError:
        return BuildLookup(None, f"{library} is missing")
    if actual != manifest["library_sha256"]:
        return BuildLookup(None, f"{library} changed since it was built (sha256 {actual[:16]}..., "
                                 f"built {str(manifest['library_sha256'])[:16]}...)")
    return BuildLookup(
        BuiltAllocator(
            name=manifest["name"], version=manifest["version"], library=library,
            configure_args=list(manifest["configure_args"]), library_sha256=actual, source=manifest["source"],
            source_sha256=manifest["source_sha256"], cache_entry=entry, patches=list(manifest.get("patches", [])),
        ),
        None,
    )


def _file_status(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"device": info.st_dev, "inode": info.st_ino, "size": info.st_size, "mtime_ns": info.st_mtime_ns,
            "ctime_ns": info.st_ctime_ns}


def _library_sha256(library: Path, verified: Path) -> str:
    """The library's sha256, read again only when its file status changed since it was last read (git's index
    does the same for its files). Any write to the file, a rename over it, a `touch -r` or a `chmod` changes its
    inode change time, which no user can set back; a lookup (every `run` and `exec`, before the program starts)
    then costs a stat where hashing the 4-10 MB library took 8-9 ms here."""
    status = _file_status(library)
    record = read_json(verified)
    if record is not None and record.get("status") == status and isinstance(record.get("sha256"), str):
        return str(record["sha256"])
    started_ns = time.time_ns()
    actual = sha256_file(library)
    # Not recorded when the file changed while it was read, or changed less than a second before: the kernel keeps
    # these times at its clock tick, so a write in the same tick as this read would leave the status unchanged
    # (git's "racily clean" entries).
    if _file_status(library) == status and started_ns - status["ctime_ns"] >= 1_000_000_000:
        try:
            write_json(verified, {"status": status, "sha256": actual})
        except OSError:
            pass  # a cache we may not write to (another user's, read-only): hashed every time
    return actual


def _warn(message: str) -> None:
    print(f"workbench: warning: {message}", file=sys.stderr)


# --- progress ---------------------------------------------------------------------------------------------------


class _Progress:
    """One line per phase on stderr; on a terminal the line counts seconds, elsewhere a line every 15 s."""

    def __init__(self, name: str, quiet: bool, stream: TextIO | None = None) -> None:
        self.name = name
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
            self.stream.write(f"{self.name}: {phase}..." + ("" if self.live else "\n"))
            self.stream.flush()

    def tick(self) -> None:
        if self.quiet or self.phase is None:
            return
        now = time.monotonic()
        elapsed = int(now - self.started)
        if self.live:
            self.stream.write(f"\r{self.name}: {self.phase}... ({elapsed} s)")
            self.stream.flush()
        elif now - self.last_line >= _PROGRESS_EVERY_S:
            self.last_line = now
            self.stream.write(f"{self.name}: {self.phase}... ({elapsed} s)\n")
            self.stream.flush()

    def finish(self) -> None:
        if not self.quiet and self.live and self.phase is not None:
            self.stream.write(f"\r{self.name}: {self.phase}... ({int(time.monotonic() - self.started)} s)\n")
            self.stream.flush()
        self.phase = None


# --- the source: a local tarball or directory (Debian's source package: see debian_source) ------------------------


def _release_version(recipe: Recipe, version_text: str, shown_as: str) -> str:
    """The release's version from its version file's text (jemalloc's VERSION: ``5.3.0-0-g54eaed1d...``)."""
    version = recipe.read_version(version_text)
    if version is None or not _VERSION_PATTERN.match(version):
        raise BadInput(f"source {shown_as}: its {recipe.version_file} does not give a version number")
    return version


def _not_a_release(recipe: Recipe, shown_as: str, missing: list[str], found: set[str]) -> BadInput:
    hint = ""
    if recipe.checkout_hint is not None and recipe.checkout_hint[0] in found:
        hint = f" (a git checkout: {recipe.checkout_hint[1]})"
    return BadInput(f"source {shown_as}: not a {recipe.name} release source, it has no {' and '.join(missing)}{hint}; "
                    f"give a release tarball such as {recipe.tarball_example} or the directory it unpacks to")


def _directory_version(recipe: Recipe, source_dir: Path) -> str:
    missing = [name for name in recipe.markers if not (source_dir / name).is_file()]
    if missing:
        hint = recipe.checkout_hint[0] if recipe.checkout_hint else None
        raise _not_a_release(recipe, str(source_dir), missing,
                             {hint} if hint is not None and (source_dir / hint).is_file() else set())
    text = (source_dir / recipe.version_file).read_text(encoding="utf-8", errors="replace")
    return _release_version(recipe, text, str(source_dir))


def _top_and_marker(recipe: Recipe, member: str) -> tuple[str, str] | None:
    """(the tree's top directory, the marker) when a tarball member is a marker at the top or one directory down."""
    names = [*recipe.markers, *([recipe.checkout_hint[0]] if recipe.checkout_hint else [])]
    path = PurePosixPath(member)
    for name in names:
        depth = len(PurePosixPath(name).parts)
        if len(path.parts) in (depth, depth + 1) and PurePosixPath(*path.parts[-depth:]) == PurePosixPath(name):
            return str(PurePosixPath(*path.parts[:-depth])) if len(path.parts) > depth else "", name
    return None


def _tarball_version(recipe: Recipe, tarball: Path, shown_as: str) -> str:
    """The release in a tarball, read from its top directory's version file without unpacking it."""
    import tarfile  # here: the cache's lookup (every exec's start) does not unpack

    try:
        with tarfile.open(tarball, "r:*") as archive:
            tops: dict[str, dict[str, tarfile.TarInfo]] = {}
            for member in archive:
                found = _top_and_marker(recipe, member.name)
                if found is not None:
                    tops.setdefault(found[0], {})[found[1]] = member
            top = next((markers for markers in tops.values() if all(m in markers for m in recipe.markers)), None)
            if top is None:
                markers = next(iter(tops.values()), {})
                raise _not_a_release(recipe, shown_as, [m for m in recipe.markers if m not in markers], set(markers))
            stream = archive.extractfile(top[recipe.version_file])
            text = stream.read().decode(errors="replace") if stream is not None else ""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadInput(f"source {shown_as}: cannot read it as a tarball ({exc})") from None
    return _release_version(recipe, text, shown_as)


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


def _unpack(recipe: Recipe, tarball: Path, into: Path, shown_as: str) -> Path:
    """The source tree inside a tarball, unpacked with tarfile's ``data`` filter (no links or devices out of it)."""
    import tarfile  # here: the cache's lookup (every exec's start) does not unpack

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
    for top in (into, *sorted(p for p in into.iterdir() if p.is_dir())):
        if all((top / marker).is_file() for marker in recipe.markers):
            return top
    raise _not_a_release(recipe, shown_as, list(recipe.markers), set())


def _local_source(recipe: Recipe, path: Path, version: str | None) -> _Source:
    path = path.resolve()
    if path.is_dir():
        upstream = _directory_version(recipe, path)
        source = _Source(path, str(path), _directory_sha256(path), upstream)
    elif not path.is_file():
        raise BadInput(f"source {path}: no such file or directory")
    elif not path.name.endswith(_TAR_SUFFIXES):
        raise BadInput(f"source {path}: expected a .tar.bz2, .tar.gz or .tar.xz release tarball or a directory")
    else:
        source = _Source(path, str(path), sha256_file(path), _tarball_version(recipe, path, str(path)))
    if version is not None and source.upstream_version != version:
        raise BadInput(f"--version {version}: source {path} is {recipe.name} {source.upstream_version}")
    return source


# --- building ---------------------------------------------------------------------------------------------------


def _check_library(recipe: Recipe, library: Path) -> dict[str, Any]:
    """The recipe's check run in a fresh Python with the library preloaded: its answer ({"version": ...})."""
    # Preloaded, not only dlopen()ed: jemalloc's initial-exec TLS does not fit in a running process's static TLS.
    env = {**os.environ, "LD_PRELOAD": str(library)}
    env.pop("MALLOC_CONF", None)
    result = subprocess.run([sys.executable, "-c", recipe.check_script, str(library)], capture_output=True,
                            text=True, env=env, stdin=subprocess.DEVNULL, timeout=60, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise BuildFailed(f"the built {library.name} does not answer as {recipe.name}: {last}")
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


def _run_logged(command: list[str], cwd: Path, log: Path, progress: _Progress) -> int:
    with log.open("ab") as out:
        offset = out.tell()  # only what this command logs (before it starts: it shares the file offset)
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
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


def _apply_patches(recipe: Recipe, source_dir: Path, log: Path, progress: _Progress) -> list[str]:
    """The recipe's patches applied in order, and the ranges header they include put beside the patched files."""
    progress.start("patching source")
    applied = []
    for patch in _patches(recipe):
        with log.open("a", encoding="utf-8") as out:
            out.write(f"# patch -p1 -i {patch.name}\n")
        if _run_logged(["patch", "-p1", "--batch", "-i", str(patch)], source_dir, log, progress) != 0:
            raise BuildFailed(f"{patch.name} does not apply to this {recipe.name} source")
        applied.append(patch.name)
    shutil.copy(native_dir() / RANGES_HEADER, source_dir / "src" / RANGES_HEADER.name)
    return applied


def _entry(recipe: Recipe, root: Path, configure_args: Sequence[str], source: _Source) -> Path:
    key = _recipe_hash(_recipe_bytes(recipe), configure_args, source.sha256)
    return root / f"{recipe.name}-{source.upstream_version}-{key[:16]}"


def _build_into(recipe: Recipe, staging: Path, log: Path, source: _Source, configure_args: list[str], entry: Path,
                progress: _Progress) -> BuiltAllocator:
    """Unpack, patch, build and check in the staging folder; the result names the files as they will be in
    ``entry``."""
    try:
        progress.start("unpacking source")
        if source.path.is_dir():
            source_dir = staging / "src"
            shutil.copytree(source.path, source_dir, symlinks=True)
        else:
            source_dir = _unpack(recipe, source.path, staging / "src", source.description)
        log.write_text(f"# source: {source.description} (sha256 {source.sha256})\n"
                       f"# configure args: {' '.join(configure_args)}\n", encoding="utf-8")
        patches = _apply_patches(recipe, source_dir, log, progress)
        command = ["bash", str(_script(recipe)), str(source_dir), str(staging), *configure_args]
        returncode = _run_logged(command, source_dir, log, progress)
        if returncode != 0:
            raise BuildFailed(f"building {recipe.name} {source.upstream_version} failed (exit {returncode})")
        progress.start("checking the library")
        answer = _check_library(recipe, staging / recipe.library)
    finally:
        progress.finish()
    shutil.rmtree(staging / "src")
    return BuiltAllocator(
        name=recipe.name, version=answer["version"], library=entry / recipe.library, configure_args=configure_args,
        library_sha256=sha256_file(staging / recipe.library), source=source.description,
        source_sha256=source.sha256, cache_entry=entry, patches=patches,
    )


def _reuse_or_build(recipe: Recipe, locked: LockedArea, source: _Source, configure_args: list[str],
                    progress: _Progress) -> tuple[BuiltAllocator, bool]:
    """With the lock held: the entry of this source if it is sound, else a new build."""
    entry = _entry(recipe, locked.area.root, configure_args, source)
    found = _lookup(recipe, entry, configure_args)
    if found.built is not None:
        return found.built, False
    if found.damaged is not None:
        _warn(f"{found.damaged}; rebuilding it")
    built = locked.build(
        entry, lambda staging, log: _build_into(recipe, staging, log, source, configure_args, entry, progress),
        manifest=_manifest_text,
    )
    return built, True


def _manifest_text(built: BuiltAllocator) -> str:
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(built).items()}
    return json_text({"schema": MANIFEST_SCHEMA, **fields})


# --- the entry point --------------------------------------------------------------------------------------------


def _index(recipe: Recipe, root: Path, version: str | None, configure_args: Sequence[str]) -> Path:
    return root / f"{recipe.name}-{version or 'default'}-{_args_hash(_recipe_bytes(recipe), configure_args)[:16]}.json"


def _indexed_entry(index: Path) -> Path:
    return index.parent / str((read_json(index) or {}).get("entry", ".missing"))


def lookup(recipe: Recipe, version: str | None = None, configure_args: Sequence[str] | None = None,
           source: Path | None = None) -> BuildLookup:
    """What :func:`build` with these arguments would find in the cache, read only: it never builds, downloads or
    runs apt (with ``source`` it reads the source, for its checksum). ``damaged`` tells why a build that was
    complete cannot be used. Raises BadInput (exit 2) for arguments build would refuse."""
    args = _checked_arguments(recipe, version, configure_args)
    root = allocators_dir()
    if source is not None:
        return _lookup(recipe, _entry(recipe, root, args, _local_source(recipe, source, version)), args)
    return _lookup(recipe, _indexed_entry(_index(recipe, root, version, args)), args)


def _checked_arguments(recipe: Recipe, version: str | None, configure_args: Sequence[str] | None) -> list[str]:
    if version is not None and not _VERSION_PATTERN.match(version):
        raise BadInput(f"--version {version}: expected a version number such as {recipe.version_example}")
    args = list(recipe.default_args if configure_args is None else configure_args)
    for arg in args:
        for refused in recipe.prefix_args:
            if arg == refused or arg.startswith(f"{refused}="):
                raise BadInput(f"--configure: {refused} is set by the build (the library goes into the cache)")
    return args


def build(recipe: Recipe, version: str | None = None, configure_args: Sequence[str] | None = None,
          source: Path | None = None, quiet: bool = False) -> tuple[BuiltAllocator, bool]:
    """The allocator built from source with ``configure_args`` (default: the recipe's), and whether it was built now
    (True) or found in the cache (False): from the cache when this recipe, these arguments and this source were
    built before (checked against the library's recorded sha256), else built now and cached.

    ``source`` is a release tarball or its unpacked directory; without it, Debian's source package is downloaded
    with a private apt state (``version``, e.g. ``5.3.0``, must then be the one Debian has). A later call without
    ``source`` finds the build through an index file and neither downloads nor runs apt.
    Raises BadInput (exit 2) for what the user can fix, RunFailed (exit 3) when the build fails.
    """
    args = _checked_arguments(recipe, version, configure_args)
    area = _area(recipe)
    root = area.root
    progress = _Progress(recipe.name, quiet)
    why = f"to build {recipe.name}"
    if source is not None:
        local = _local_source(recipe, source, version)
        found = _lookup(recipe, _entry(recipe, root, args, local), args)
        if found.built is not None:
            return found.built, False
        with area.locked() as locked:
            require_tools(recipe.tools(), why)
            return _reuse_or_build(recipe, locked, local, args, progress)

    # Debian's source: found through the index, so that a cached build needs neither apt nor the network.
    index = _index(recipe, root, version, args)
    found = _lookup(recipe, _indexed_entry(index), args)
    if found.built is not None:
        return found.built, False
    with area.locked() as locked:
        pointer = read_json(index) or {}
        found = _lookup(recipe, _indexed_entry(index), args)
        if found.built is not None:
            return found.built, False
        require_tools(recipe.tools(), why)  # before downloading anything
        kept = root / "sources" / str(pointer.get("source_file", ".missing"))
        if kept.is_file() and sha256_file(kept) == pointer.get("source_sha256"):
            debian = _Source(kept, str(pointer["source"]), str(pointer["source_sha256"]),
                             _tarball_version(recipe, kept, str(kept)))
        else:
            progress.start("fetching source (Debian source package)")
            from workbench.toolchain.debian_source import fetch_source_package

            fetched = fetch_source_package(root, recipe.debian_package, version)
            debian = _Source(fetched.tarball, fetched.description, fetched.sha256,
                             _tarball_version(recipe, fetched.tarball, fetched.tarball.name))
        built, rebuilt = _reuse_or_build(recipe, locked, debian, args, progress)
        write_json(index, {
            "entry": built.cache_entry.name, "source": built.source, "source_sha256": built.source_sha256,
            "source_file": debian.path.name,
        })
        return built, rebuilt
