"""Fetch a Debian source package without root: deb-src entries derived from the machine's apt sources, apt-get run
on a private sources list, state and cache, and the .orig tarball checked against the .dsc's SHA-256.

Under the root it is given (jemalloc's: ``cache_dir()/allocators``)::

    sources/         the .orig tarballs and .dsc files downloaded so far
    .apt/            apt's private lists, cache and deb-src sources list (the machine's are left alone)
    apt-fetch.log    every apt command of the last fetch and its output
    .fetch-*/        a download in progress (or killed: removed under the caller's lock)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench._errors import BadInput, RunFailed
from workbench._files import sha256_file
from workbench.toolchain.cache import FETCH_PREFIX, require_tools

HOST_APT_DIR = Path("/etc/apt")
# The command -> the Debian package that provides it.
APT_TOOLS = {"apt-get": "apt", "apt-cache": "apt"}
# One-line sources.list options -> their deb822 field; architecture options do not apply to deb-src.
_ONE_LINE_OPTIONS = {
    "signed-by": "Signed-By", "trusted": "Trusted", "check-valid-until": "Check-Valid-Until",
    "valid-until-min": "Valid-Until-Min", "valid-until-max": "Valid-Until-Max", "check-date": "Check-Date",
    "date-max-future": "Date-Max-Future", "allow-insecure": "Allow-Insecure", "allow-weak": "Allow-Weak",
    "allow-downgrade-to-insecure": "Allow-Downgrade-To-Insecure", "by-hash": "By-Hash", "pdiffs": "PDiffs",
    "inrelease-path": "InRelease-Path", "snapshot": "Snapshot",
}

@dataclass(frozen=True)
class DebianSource:
    """A source package's .orig tarball, downloaded and checked."""

    tarball: Path  # the .orig tarball, kept in root/sources
    sha256: str  # checked against the .dsc
    description: str  # ``debian source package jemalloc 5.3.0-1 (jemalloc_5.3.0.orig.tar.bz2)``


def _deb822_paragraphs(text: str) -> list[dict[str, str]]:
    """Paragraphs of a deb822 file (``.sources``, ``.dsc``), keys lower-cased, continuation lines kept verbatim."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    field: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, field = {}, None
        elif line[0] in " \t" and field is not None:
            current[field] += "\n" + line
        else:
            name, colon, value = line.partition(":")
            if colon and " " not in name:  # PGP armour lines of a signed .dsc have no "Field:"
                field = name.lower()
                current[field] = value
    if current:
        paragraphs.append(current)
    return paragraphs


def _one_line_entries(text: str) -> list[dict[str, str]]:
    """The ``deb`` lines of a one-line-style sources.list, as deb822 paragraphs."""
    entries: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        match = re.match(r"^deb\s+(?:\[([^\]]*)\]\s*)?(\S+)\s+(\S+)(.*)$", line)
        if match is None:
            continue
        options, uri, suite, components = match.groups()
        entry = {"uris": f" {uri}", "suites": f" {suite}", "components": f" {components.strip()}"}
        for option in (options or "").split():
            key, _, value = option.partition("=")
            if key in _ONE_LINE_OPTIONS:
                entry[_ONE_LINE_OPTIONS[key].lower()] = f" {value.replace(',', ' ')}"
        entries.append(entry)
    return entries


def deb_src_sources(apt_dir: Path = HOST_APT_DIR) -> str:
    """A deb822 sources list with a ``deb-src`` paragraph for every enabled ``deb`` entry of the machine's apt."""
    entries: list[dict[str, str]] = []
    one_line = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            entries.extend(_one_line_entries(path.read_text(encoding="utf-8", errors="replace")))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for paragraph in _deb822_paragraphs(path.read_text(encoding="utf-8", errors="replace")):
            if "deb" in paragraph.get("types", "").split() and paragraph.get("enabled", "yes").strip() != "no":
                entries.append({k: v for k, v in paragraph.items() if k not in ("types", "enabled")})
    seen: set[tuple[str, str, str]] = set()
    paragraphs: list[str] = []
    for entry in entries:
        key = (entry.get("uris", "").strip(), entry.get("suites", "").strip(), entry.get("components", "").strip())
        if key in seen or not key[0] or key[0].startswith("cdrom:"):
            continue
        seen.add(key)
        lines = ["Types: deb-src"]
        lines.extend(f"{name.title()}:{value}" for name, value in entry.items() if value.strip())
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs) + "\n" if paragraphs else ""


class _PrivateApt:
    """apt-get and apt-cache on a private sources list, state and cache: no root, the machine's apt untouched."""

    def __init__(self, root: Path, log: Path, package: str) -> None:
        self.tools = require_tools(APT_TOOLS, f"to fetch {package}'s Debian source package (or give --source PATH)")
        self.root, self.log, self.package = root, log, package
        for sub in ("lists/partial", "cache/archives/partial", "state"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.sources = root / "deb-src.sources"  # apt reads a Dir::Etc::SourceList ending in .sources as deb822
        self.update_error: str | None = None

    def options(self) -> list[str]:
        return [
            "-o", f"Dir::Etc::SourceList={self.sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State={self.root / 'state'}", "-o", f"Dir::Cache={self.root / 'cache'}",
            "-o", f"Dir::State::Lists={self.root / 'lists'}",
        ]

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        command = [self.tools[tool], *self.options(), *args]
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
                                env={**os.environ, "LC_ALL": "C"})
        with self.log.open("a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}--- exit {result.returncode}\n")
        return result

    def update(self) -> None:
        # Some repositories of the machine may have no Sources index: only the download decides; this explains it.
        result = self.run("apt-get", "-q", "update")
        if result.returncode != 0:
            self.update_error = _first_error(result)

    def unavailable(self, what: str, result: subprocess.CompletedProcess[str]) -> BadInput:
        reason = _first_error(result)
        if self.update_error is not None:
            reason += f", after apt-get update: {self.update_error}"
        return BadInput(f"cannot fetch {self.package}'s Debian source package ({what}: {reason}; log: {self.log}); "
                        f"give --source PATH to a {self.package} release tarball, or let apt reach a Debian mirror")


def _first_error(result: subprocess.CompletedProcess[str]) -> str:
    errors = [line[2:].strip() for line in result.stderr.splitlines() if line.startswith("E:")]
    return " ".join(errors[0].split()) if errors else f"exit {result.returncode}"


def debian_upstream(debian_version: str) -> str:
    """``1:5.3.0-1`` -> ``5.3.0``."""
    return debian_version.split(":", 1)[-1].rsplit("-", 1)[0]


def fetch_source_package(root: Path, package: str, upstream_version: str | None = None,
                         apt_dir: Path | None = None) -> DebianSource:
    """Download Debian's source package ``package`` (the newest, or the one of ``upstream_version``, e.g. ``5.3.0``)
    with a private apt state in ``root/.apt``, check its .orig tarball against the .dsc's SHA-256, and keep both in
    ``root/sources``. The deb-src entries are derived from the machine's apt sources (``apt_dir``, default
    :data:`HOST_APT_DIR`). Raises BadInput (exit 2) when the package cannot be had, RunFailed (exit 3) when what was
    downloaded does not check out. Call it with the lock of ``root`` held: its temporary folder is ``root/.fetch-*``.
    """
    apt_dir = apt_dir or HOST_APT_DIR
    apt = _PrivateApt(root / ".apt", root / "apt-fetch.log", package)
    apt.log.write_text("", encoding="utf-8")
    text = deb_src_sources(apt_dir)
    if not text:
        raise BadInput(f"no deb entries in {apt_dir}/sources.list(.d) to fetch {package}'s source from; "
                       f"give --source PATH to a {package} release tarball")
    apt.sources.write_text(text, encoding="utf-8")
    apt.update()
    wanted = package
    if upstream_version is not None:
        shown = apt.run("apt-cache", "showsrc", package)
        versions = [p["version"].strip() for p in _deb822_paragraphs(shown.stdout)
                    if p.get("package", "").strip() == package and "version" in p]
        if not versions:
            raise apt.unavailable(f"apt-cache showsrc {package}", shown)
        matching = [v for v in versions if debian_upstream(v) == upstream_version]
        if not matching:
            available = ", ".join(sorted({debian_upstream(v) for v in versions}))
            raise BadInput(f"--version {upstream_version}: Debian has {package} {available} only; "
                           f"use --source PATH to a {package} {upstream_version} release tarball")
        wanted = f"{package}={matching[0]}"
    download = Path(tempfile.mkdtemp(prefix=FETCH_PREFIX, dir=root))
    try:
        fetched = apt.run("apt-get", "-q", "source", "--download-only", wanted, cwd=download)
        dscs = sorted(download.glob(f"{package}_*.dsc"))
        if fetched.returncode != 0 or not dscs:
            raise apt.unavailable(f"apt-get source {wanted}", fetched)
        dsc = next((p for p in _deb822_paragraphs(dscs[0].read_text(encoding="utf-8")) if "checksums-sha256" in p), {})
        debian_version = dsc.get("version", "").strip()
        checksums = {name: sha for sha, _size, name in
                     (line.split() for line in dsc.get("checksums-sha256", "").splitlines() if line.strip())}
        origs = [name for name in checksums if ".orig.tar." in name]
        if not debian_version or len(origs) != 1:
            raise RunFailed(f"{dscs[0].name}: expected a Version and one .orig tarball in Checksums-Sha256")
        orig = download / origs[0]
        actual = sha256_file(orig)
        if actual != checksums[origs[0]]:
            raise RunFailed(f"{orig.name}: sha256 {actual} does not match {checksums[origs[0]]} in {dscs[0].name}")
        kept = root / "sources"
        kept.mkdir(exist_ok=True)
        os.replace(dscs[0], kept / dscs[0].name)
        os.replace(orig, kept / orig.name)
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return DebianSource(kept / orig.name, actual, f"debian source package {package} {debian_version} ({orig.name})")
