"""async-profiler's native agent, extracted from its Maven jar (a dependency of jvm/) into the per-user cache.

The cache, under ``cache_dir()/profiler`` (see :mod:`workbench.toolchain.cache`)::

    async-profiler-<version>-<sha256 of the jar, 16 hex>/   libasyncProfiler.so (for this machine's architecture),
                                                            manifest.json (last: the library's sha256 and where it
                                                            came from, checked at first use)
    .extract-*/                                             an extraction in progress (or killed: removed under
                                                            the lock)
    profiler.lock                                           held while extracting
"""

from __future__ import annotations

import platform
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from workbench._errors import BadInput
from workbench._files import sha256_file
from workbench._resources import cache_dir
from workbench.toolchain.cache import BuildArea, BuildFailed, json_text, read_json

LIBRARY = "libasyncProfiler.so"
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "workbench.profiler-agent/1"
_JAR = re.compile(r"async-profiler-(?P<version>\d[\w.]*)\.jar$")
# The folder inside the jar that holds the library of each machine architecture (platform.machine()).
_ARCHITECTURES = {"x86_64": "linux-x64", "amd64": "linux-x64", "aarch64": "linux-arm64", "arm64": "linux-arm64"}
_verified: set[Path] = set()


@dataclass(frozen=True)
class ProfilerAgent:
    """The agent library to load into a JVM, and the jar it came from."""

    library: Path
    version: str
    jar: Path
    library_sha256: str


def profiler_dir() -> Path:
    """Where the extracted agent libraries are, one entry per jar."""
    return cache_dir() / "profiler"


def find_jar(classpath: list[str]) -> tuple[Path, str]:
    """The async-profiler jar on the kernels' classpath and its version; BadInput when it is not there."""
    for entry in classpath:
        match = _JAR.search(Path(entry).name)
        if match:
            return Path(entry), match.group("version")
    raise BadInput("async-profiler is not on the Java kernels' classpath (jvm/pom.xml should depend on "
                   "tools.profiler:async-profiler): rebuild them with `workbench build kernels`")


def check_platform() -> None:
    """BadInput unless async-profiler's jar has a library for this machine (Linux on x86_64 or aarch64)."""
    _member()


def _member() -> str:
    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in _ARCHITECTURES:
        raise BadInput(f"--profile needs Linux on x86_64 or aarch64 (async-profiler's jar has no library for "
                       f"{sys.platform} {machine})")
    return f"{_ARCHITECTURES[machine]}/{LIBRARY}"


def _damage(entry: Path) -> str | None:
    manifest = read_json(entry / MANIFEST)
    if manifest is None or manifest.get("schema") != MANIFEST_SCHEMA:
        return "it has no manifest"
    actual = sha256_file(entry / LIBRARY)
    if actual != manifest.get("sha256"):
        return f"{entry / LIBRARY} changed since it was extracted (sha256 {actual[:16]}...)"
    return None


def ensure_agent(classpath: list[str]) -> ProfilerAgent:
    """async-profiler's library for this machine, extracted from the jar on ``classpath`` into the cache on first
    use and checked against its recorded sha256 after that (a damaged one is extracted again)."""
    jar, version = find_jar(classpath)
    member = _member()
    entry = profiler_dir() / f"async-profiler-{version}-{sha256_file(jar)[:16]}"
    if entry not in _verified and not ((entry / LIBRARY).is_file() and _damage(entry) is None):
        area = BuildArea(profiler_dir(), lock_name="profiler.lock", staging_prefix=".extract-", log_name="extract.log")

        def extract(staging: Path, log: Path) -> str:
            try:
                with zipfile.ZipFile(jar) as archive:
                    (staging / LIBRARY).write_bytes(archive.read(member))
            except (KeyError, zipfile.BadZipFile, OSError) as error:
                log.write_text(f"{jar}: {error}\n", encoding="utf-8")
                raise BuildFailed(f"could not extract {member} from {jar}") from None
            (staging / LIBRARY).chmod(0o755)
            return sha256_file(staging / LIBRARY)

        with area.locked() as locked:
            if not ((entry / LIBRARY).is_file() and _damage(entry) is None):
                if (entry / LIBRARY).is_file():
                    print(f"workbench: the cached async-profiler library is damaged ({_damage(entry)}); "
                          f"extracting it again into {entry}", file=sys.stderr)
                locked.build(entry, extract, manifest=lambda sha: json_text(
                    {"schema": MANIFEST_SCHEMA, "sha256": sha, "jar": str(jar), "member": member, "version": version}))
        _verified.add(entry)
    manifest = read_json(entry / MANIFEST) or {}
    return ProfilerAgent(entry / LIBRARY, version, jar, str(manifest.get("sha256", "")))
