"""Build the jvm/ Maven project into the per-user cache once per content hash; later runs never start Maven.

The cache, under ``cache_dir()/jvm`` (see :mod:`workbench.toolchain.cache`)::

    <sha256 of jvm/'s pom and sources, 20 hex>/   project/ (built), dependencies.txt, maven.log, kernels.sha256 (of
                                                  the kernels jar, checked at first use), classpath.txt (last)
    .build-kernels-<hash>-*/                      a build in progress (or killed: removed under the lock)
    failed-<hash>.log                             the Maven log of the last failed build
    <hash>.lock                                   held while building that entry
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from workbench._errors import BadInput
from workbench._files import sha256_file, write_atomically
from workbench._resources import jvm_project_dir
from workbench.toolchain.cache import BuildArea, BuildFailed, kernels_dir

CLASSPATH_FILE = "classpath.txt"
CHECKSUM_FILE = "kernels.sha256"
_verified: set[Path] = set()  # entries whose kernels jar was checked in this process (once is enough)


def project_hash(project: Path) -> str:
    """sha256 over the pom and every source file, with their relative paths."""
    digest = hashlib.sha256()
    files = [project / "pom.xml", *sorted(p for p in (project / "src").rglob("*") if p.is_file())]
    for path in files:
        digest.update(str(path.relative_to(project)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cached_classpath(entry: Path) -> list[str] | None:
    try:
        classpath = (entry / CLASSPATH_FILE).read_text(encoding="utf-8").split(os.pathsep)
    except FileNotFoundError:
        return None
    # An entry whose jars were removed since (e.g. a cleaned ~/.m2) is stale.
    return classpath if all(Path(p).exists() for p in classpath) else None


def _kernels_jar(entry: Path) -> Path | None:
    return next((entry / "project" / "target").glob("*.jar"), None)


def _damage(entry: Path, adopt: bool) -> str | None:
    """Why the kernels jar of a complete entry cannot be used (changed since it was built), or None when it is sound.
    An entry built before jars had checksums is kept when every member of its jar reads back with its CRC, and (with
    ``adopt``) given its checksum then."""
    if entry in _verified:
        return None
    jar = _kernels_jar(entry)
    if jar is None:
        return f"no kernels jar in {entry / 'project' / 'target'}"
    try:
        recorded: str | None = (entry / CHECKSUM_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        recorded = None
    actual = sha256_file(jar)
    if recorded is None:
        try:
            with zipfile.ZipFile(jar) as archive:
                broken = archive.testzip()
        except (zipfile.BadZipFile, OSError) as error:
            return f"{jar} is not a whole jar ({error})"
        if broken is not None:
            return f"{jar} is damaged ({broken} does not match its CRC)"
        if adopt:
            write_atomically(entry / CHECKSUM_FILE, actual + "\n")
    elif actual != recorded:
        return f"{jar} changed since it was built (sha256 {actual[:16]}..., built {recorded[:16]}...)"
    _verified.add(entry)
    return None


def _maven(mvn: str, project: Path, entry: Path, staging: Path, log: Path) -> list[str]:
    shutil.copytree(project, staging / "project", ignore=shutil.ignore_patterns("target"))
    with log.open("w") as out:
        result = subprocess.run(
            [mvn, "-B", "-q", "-Dstyle.color=never", "-DskipTests", "package", "dependency:build-classpath",
             f"-Dmdep.outputFile={staging / 'dependencies.txt'}"],
            cwd=staging / "project", stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    if result.returncode != 0:
        raise BuildFailed(f"Maven could not build the Java kernels into {entry}")
    jar = next((staging / "project" / "target").glob("*.jar"))
    (staging / CHECKSUM_FILE).write_text(sha256_file(jar) + "\n", encoding="utf-8")
    dependencies = (staging / "dependencies.txt").read_text(encoding="utf-8").strip().split(os.pathsep)
    # The paths the classpath will have once the staging folder is the entry.
    return [str(entry / "project" / "target" / jar.name), *dependencies]


def kernels_entry(project: Path | None = None) -> Path:
    """The cache entry the Java kernels of ``project`` (default: the bundled jvm/) are built into."""
    return kernels_dir() / project_hash(project or jvm_project_dir())[:20]


def cached_kernels(project: Path | None = None) -> list[str] | None:
    """The classpath of the Java kernels if they are built, all its jars are still there and the kernels jar is the
    one that was built; never builds."""
    entry = kernels_entry(project)
    classpath = _cached_classpath(entry)
    return classpath if classpath is not None and _damage(entry, adopt=False) is None else None


def build_kernels(project: Path | None = None, quiet: bool = False) -> tuple[list[str], bool]:
    """Like :func:`kernels_classpath`, also telling whether it built (True) or found the build in the cache (False).
    Raises BadInput (exit 2) when Maven is missing, RunFailed (exit 3) when the build fails."""
    entry = kernels_entry(project)
    classpath = _cached_classpath(entry)
    if classpath is not None and _damage(entry, adopt=True) is None:
        return classpath, False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BadInput("Maven is needed to build the Java kernels on first use: "
                       "install it (Debian: apt-get install maven)")
    source = project or jvm_project_dir()
    area = BuildArea(entry.parent, lock_name=f"{entry.name}.lock", staging_prefix=f".build-kernels-{entry.name}-",
                     log_name="maven.log", manifest_name=CLASSPATH_FILE)
    with area.locked() as locked:
        classpath = _cached_classpath(entry)
        damage = _damage(entry, adopt=True) if classpath is not None else None
        if classpath is not None and damage is None:
            return classpath, False
        if damage is not None:
            print(f"workbench: the cached Java kernels are damaged ({damage}); rebuilding them in {entry}",
                  file=sys.stderr)
        elif not quiet:
            print(f"Building the Java kernels with Maven (first use; cached in {entry}) ...", file=sys.stderr)
        built = locked.build(entry, lambda staging, log: _maven(mvn, source, entry, staging, log),
                             manifest=os.pathsep.join)
        return built, True


def kernels_classpath(project: Path | None = None, quiet: bool = False) -> list[str]:
    """The classpath of the Java kernels and Arrow, building them with Maven on first use."""
    return build_kernels(project, quiet)[0]
