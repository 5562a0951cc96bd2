"""The per-user build cache: where each kind of entry lives, its lock, its manifest, and the one way an entry is built.

Every kind of entry (jemalloc, the Java kernels, the probe) has an area in the per-user ``cache_dir()``::

    <entry>/                 one complete build, moved in whole; its manifest (if it has one) is written last
    <staging prefix>XXXX/    a build in progress, or one that was killed: removed under the lock
    failed-<entry>.log       the log of the last failed build of that entry
    <lock name>              held while building
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from workbench._errors import BadInput, RunFailed
from workbench._files import write_atomically
from workbench._resources import cache_dir

T = TypeVar("T")

LOG_TAIL_LINES = 15
# Where a download of sources is staged in the cache (debian_source) until it is whole.
FETCH_PREFIX = ".fetch-"


def allocators_dir() -> Path:
    """Where jemalloc's builds, their index files and the downloaded sources are."""
    return cache_dir() / "allocators"


def kernels_dir() -> Path:
    """Where the Java kernels' Maven builds are, one entry per content hash of jvm/."""
    return cache_dir() / "jvm"


def probe_dir() -> Path:
    """Where the allocator probe's builds are, one entry per content hash of native/probe."""
    return cache_dir() / "probe"


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if needed), so concurrent runs that need a build do it once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file; None when it is missing, unreadable or not an object (e.g. never finished)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON object whole or not at all."""
    write_atomically(path, json_text(data))


def json_text(data: dict[str, Any]) -> str:
    """The form every manifest and index file of the cache is written in."""
    return json.dumps(data, indent=2) + "\n"


def require_tools(tools: dict[str, str], why: str) -> dict[str, str]:
    """The path of each command in ``tools`` (command -> the Debian package that provides it); BadInput (exit 2)
    naming the package to install for the first one missing."""
    found: dict[str, str] = {}
    for command, package in tools.items():
        where = shutil.which(command)
        if where is None:
            raise BadInput(f"{command} is needed {why}: install it (Debian: apt-get install {package})")
        found[command] = where
    return found


class BuildFailed(Exception):
    """Raised by a build callable when the build ran and failed; the message says how (``... failed (exit 1)``).

    :meth:`LockedArea.build` turns it into RunFailed with the log's last lines and where the log is kept."""


@dataclass(frozen=True)
class BuildArea:
    """One kind of cache entry: the folder its entries live in, the lock held while building one, how a build in
    progress is named (so that a killed one is recognised), and the names of the log and manifest in an entry."""

    root: Path
    lock_name: str
    staging_prefix: str
    log_name: str = "build.log"
    manifest_name: str = "manifest.json"
    also_abandoned: tuple[str, ...] = ()  # prefixes of other temporary folders its builds leave when killed

    @contextmanager
    def locked(self) -> Iterator[LockedArea]:
        """Hold the area's lock; first remove what killed builds left, since no build runs while we hold it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with exclusive(self.root / self.lock_name):
            for prefix in (self.staging_prefix, *self.also_abandoned):
                for abandoned in self.root.glob(f"{prefix}*"):
                    if abandoned.is_dir():
                        shutil.rmtree(abandoned, ignore_errors=True)
            yield LockedArea(self)


@dataclass(frozen=True)
class LockedArea:
    """A :class:`BuildArea` whose lock is held: only then may an entry be built."""

    area: BuildArea

    def temporary_dir(self) -> Path:
        """A new folder inside the area, named like a build in progress: removed under the lock if left behind."""
        path = Path(tempfile.mkdtemp(prefix=self.area.staging_prefix, dir=self.area.root))
        path.chmod(0o755)  # mkdtemp's 0700 would hide a library from a process run as another user
        return path

    def build(self, entry: Path, run: Callable[[Path, Path], T], manifest: Callable[[T], str] | None = None) -> T:
        """Build ``entry`` through a staging folder: ``run(staging, log)`` builds into ``staging`` and logs to
        ``log`` (inside it); then the staging folder is renamed to ``entry`` (an existing one, unfinished or damaged,
        is replaced) and ``manifest(result)``, if given, is written into it last, so that an entry with a manifest is
        a complete one. When ``run`` raises :class:`BuildFailed`, the log is kept as ``failed-<entry>.log`` beside
        the entries and RunFailed (exit 3) names it and shows its last lines; no entry and no staging folder remain.
        """
        staging = self.temporary_dir()
        try:
            log = staging / self.area.log_name
            log.touch()
            try:
                result = run(staging, log)
            except BuildFailed as failure:
                kept = self.area.root / f"failed-{entry.name}.log"
                shutil.copy(log, kept)
                tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:])
                raise RunFailed(f"{failure} (full log: {kept}):\n{tail}") from None
            if entry.exists():
                shutil.rmtree(entry)
            os.rename(staging, entry)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if manifest is not None:
            write_atomically(entry / self.area.manifest_name, manifest(result))
        return result
