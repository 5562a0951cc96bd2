"""Build the jvm/ Maven project into the per-user cache once per content hash; later runs never start Maven."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from workbench._errors import BadInput, RunFailed
from workbench._resources import cache_dir, jvm_project_dir
from workbench.toolchain._lock import exclusive

CLASSPATH_FILE = "classpath.txt"


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


def kernels_classpath(project: Path | None = None, quiet: bool = False) -> list[str]:
    """The classpath of the Java kernels and Arrow, building them with Maven on first use."""
    project = project or jvm_project_dir()
    digest = project_hash(project)[:20]
    root = cache_dir() / "jvm"
    entry = root / digest
    classpath = _cached_classpath(entry)
    if classpath is not None:
        return classpath
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BadInput("Maven is needed to build the Java kernels on first use: install it (Debian: apt-get install maven)")
    with exclusive(root / f"{digest}.lock"):
        classpath = _cached_classpath(entry)
        if classpath is not None:
            return classpath
        if not quiet:
            print(f"Building the Java kernels with Maven (first use; cached in {entry}) ...", file=sys.stderr)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=root))
        try:
            shutil.copytree(project, staging / "project", ignore=shutil.ignore_patterns("target"))
            log = staging / "maven.log"
            with log.open("w") as out:
                result = subprocess.run(
                    [mvn, "-B", "-q", "-Dstyle.color=never", "-DskipTests", "package", "dependency:build-classpath",
                     f"-Dmdep.outputFile={staging / 'dependencies.txt'}"],
                    cwd=staging / "project", stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            if result.returncode != 0:
                kept = root / f"failed-{digest}.log"
                shutil.copy(log, kept)
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise RunFailed(f"Maven could not build the Java kernels (full log: {kept}):\n{tail}")
            if entry.exists():
                shutil.rmtree(entry)  # an entry without its classpath file is an unfinished one
            os.rename(staging, entry)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        jar = next((entry / "project" / "target").glob("*.jar"))
        dependencies = (entry / "dependencies.txt").read_text(encoding="utf-8").strip().split(os.pathsep)
        classpath = [str(jar), *dependencies]
        partial = entry / f".{CLASSPATH_FILE}.tmp"
        partial.write_text(os.pathsep.join(classpath), encoding="utf-8")
        os.rename(partial, entry / CLASSPATH_FILE)
        return classpath
