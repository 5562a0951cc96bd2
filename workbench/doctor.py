"""What this machine has and lacks for runs: each check a finding with what to install or set (``workbench doctor``).

JDKs and allocators are checked in child processes: a JVM cannot start twice in one process, and a preload must be
there from the start.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from workbench._errors import BadInput, WorkbenchError
from workbench.protocol.provenance import Provenance
from workbench.run.environment import preload_environment, preload_mismatch
from workbench.run.jdk import Jdk, arrow_options, resolve_jdk
from workbench.toolchain import source_build
from workbench.toolchain.allocators import BUILT, NAMES, SYSTEM_ALLOCATORS, AllocatorChoice, resolve_allocator
from workbench.toolchain.debian_source import APT_TOOLS
from workbench.toolchain.jemalloc import BUILD_TOOLS as JEMALLOC_BUILD_TOOLS
from workbench.toolchain.jemalloc import JEMALLOC
from workbench.toolchain.mimalloc import MIMALLOC
from workbench.toolchain.source_build import Recipe
from workbench.toolchain.tcmalloc import TCMALLOC
from workbench.toolchain.maven import cached_kernels, kernels_classpath, kernels_entry
from workbench.toolchain.probe import java_include_problem, probe_cached

JVM_DIR = Path("/usr/lib/jvm")
CHILD_TIMEOUT_S = 60
MIN_PYTHON = (3, 11)  # pyproject's requires-python
DEFAULT_RUN = "workbench run arrow-intvector"
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

Status = Literal["ok", "WARN", "FAIL"]


@dataclass(frozen=True)
class Check:
    """One finding; a FAIL of a check a default run needs is a problem (exit 2)."""

    check: str
    status: Status
    detail: str
    fix: str | None = None
    needed_by_default_run: bool = False
    found: dict[str, Any] = field(default_factory=dict)  # the figures behind the detail, for --json readers

    @property
    def is_problem(self) -> bool:
        return self.status == "FAIL" and self.needed_by_default_run


# --- child processes: a JVM cannot start twice in one process, and a preload must be there from the start ---------

_NMT_CHILD = """
import json, os, sys
os.environ[f"NMT_LEVEL_{os.getpid()}"] = "summary"  # JDKs before 18 read the NMT level only from here (JDK-8256844)
import jpype
jpype.startJVM(sys.argv[1], *sys.argv[2:], convertStrings=False)
from workbench.probes.nmt import parse_summary
server = jpype.JClass("java.lang.management.ManagementFactory").getPlatformMBeanServer()
command = jpype.JClass("javax.management.ObjectName")("com.sun.management:type=DiagnosticCommand")
text = str(server.invoke(command, "vmNativeMemory", [jpype.JArray(jpype.JString)(["summary"])],
                         ["[Ljava.lang.String;"]))
summary = parse_summary(text)
print(json.dumps({
    "version": str(jpype.JClass("java.lang.System").getProperty("java.runtime.version")),
    "nmt_committed_bytes": None if summary is None else summary.total_committed_bytes,
    "nmt_text": text.strip()[:200],
}))
"""

_ALLOCATOR_CHILD = """
import json
from dataclasses import asdict
from workbench.probes.allocator import detect
probe = detect()
snapshot = asdict(probe.snapshot())
figures = {name: value for name, value in snapshot.items() if name.endswith("_bytes") and value is not None}
print(json.dumps({"backend": probe.info.backend, "version": probe.info.version, "library": probe.info.library,
                  "figures": figures}))
"""


def _child_environment(preload: Path | None = None) -> dict[str, str]:
    """A check child's environment: built like every measured process's (see workbench.run.environment)."""
    return preload_environment([preload] if preload is not None else [], None, python=True)


def _run_child(script: str, args: list[str], env: dict[str, str]) -> dict[str, Any] | str:
    """The JSON the child prints last, or one sentence saying why there is none."""
    try:
        result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                                stdin=subprocess.DEVNULL, timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"no answer within {CHILD_TIMEOUT_S} s"
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return f"the check process failed (exit {result.returncode}): {last}"
    try:
        answer: dict[str, Any] = json.loads(lines[-1])
    except ValueError:
        return f"the check process printed no answer (last line: {lines[-1][:200]})"
    return answer


# --- 1. Python --------------------------------------------------------------------------------------------------


def _python_checks() -> Iterator[Check]:
    version = ".".join(map(str, sys.version_info[:3]))
    found = {"version": version, "executable": sys.executable}
    if sys.version_info[:2] >= MIN_PYTHON:
        yield Check("python", "ok", f"{version} ({sys.executable})", None, True, found)
    else:
        yield Check("python", "FAIL", f"{version} ({sys.executable})",
                    f"use Python {'.'.join(map(str, MIN_PYTHON))} or later", True, found)
    shown: list[str] = []
    missing: list[str] = []
    for module, distribution in (("jpype", "JPype1"), ("pyarrow", "pyarrow")):
        try:
            imported = importlib.import_module(module)
        except ImportError as exc:
            missing.append(distribution)
            shown.append(f"{module}: {exc}")
        else:
            shown.append(f"{module} {getattr(imported, '__version__', '(version unknown)')}")
    if missing:
        yield Check("python packages", "FAIL", ", ".join(shown),
                    f"{sys.executable} -m pip install {' '.join(missing)}", True)
    else:
        yield Check("python packages", "ok", ", ".join(shown), None, True)


# --- 2. JDKs ----------------------------------------------------------------------------------------------------


def installed_jdk_homes(root: Path = JVM_DIR) -> list[Path]:
    """JDK homes under ``root`` (libjvm.so and a release file), symlinks counted once, by their resolved path."""
    if not root.is_dir():
        return []
    homes: dict[Path, None] = {}
    for path in sorted(root.iterdir()):
        if (path / "lib" / "server" / "libjvm.so").is_file() and (path / "release").is_file():
            homes.setdefault(path.resolve(), None)
    return list(homes)


def _default_jdk_problem(error: BadInput, installed: list[Path]) -> Check:
    java_home = os.environ.get("JAVA_HOME")
    example = f", e.g. {installed[0]}" if installed else ""
    if java_home:
        reason = error.message.removeprefix(f"--java-home {java_home}: ")
        return Check("default jdk", "FAIL", f"JAVA_HOME={java_home} is not a JDK: {reason}",
                     "set JAVA_HOME to a JDK's home directory (with lib/server/libjvm.so and a release file)"
                     f"{example}, or unset it", True, {"java_home": java_home})
    return Check("default jdk", "FAIL", error.message,
                 "install a JDK (Debian: apt-get install openjdk-17-jdk) or set JAVA_HOME", True)


def _jdk_check(jdk: Jdk, is_default: bool) -> Check:
    name = "default jdk" if is_default else "jdk"
    options = ["-XX:NativeMemoryTracking=summary", *arrow_options(jdk)]
    answer = _run_child(_NMT_CHILD, [str(jdk.library), *options], _child_environment())
    found: dict[str, Any] = {"home": str(jdk.home), "feature_version": jdk.feature_version, "version": None,
                             "nmt": "off"}
    # Another JDK only matters for runs given --java-home: its trouble is a warning about that JDK.
    bad: Status = "FAIL" if is_default else "WARN"
    use_other = "use another JDK (--java-home or JAVA_HOME), e.g. Debian's openjdk-17-jdk"
    if isinstance(answer, str):
        return Check(name, bad, f"{jdk.home}: JDK {jdk.feature_version}: {answer}", use_other, is_default, found)
    found["version"] = answer["version"]
    if answer["nmt_committed_bytes"] is None:
        return Check(name, bad, f"{jdk.home}: {answer['version']}, NMT off in a JPype-started VM "
                                f"({answer['nmt_text'].splitlines()[0] if answer['nmt_text'] else 'no output'})",
                     use_other, is_default, found)
    found["nmt"] = "ok"
    return Check(name, "ok", f"{jdk.home}: {answer['version']}, NMT summary ok", None, is_default, found)


def _jdk_checks() -> Iterator[Check]:
    installed = installed_jdk_homes()
    try:
        default: Jdk | None = resolve_jdk(None)
    except BadInput as error:
        default = None
        yield _default_jdk_problem(error, installed)
    if default is not None:
        yield _jdk_check(default, is_default=True)
    for home in installed:
        if default is not None and home == default.home.resolve():
            continue
        try:
            jdk = resolve_jdk(str(home))
        except BadInput as error:
            yield Check("jdk", "WARN", error.message, None, False, {"home": str(home)})
            continue
        yield _jdk_check(jdk, is_default=False)


# --- 3. Maven and the Java kernels ------------------------------------------------------------------------------


def _maven_check(kernels_cached: bool) -> Check:
    mvn = shutil.which("mvn")
    found: dict[str, Any] = {"mvn": mvn}
    if mvn is not None:
        try:
            result = subprocess.run([mvn, "-v"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                    timeout=CHILD_TIMEOUT_S, check=False)
            # Maven 3.8 colours its banner even into a pipe, and -B does not stop it.
            output = _ANSI_ESCAPE.sub("", result.stdout + result.stderr).strip().splitlines()
            first = output[0].rstrip(",") if output else f"exit {result.returncode}"
            if result.returncode == 0:
                return Check("maven", "ok", f"{first} ({mvn})", None, not kernels_cached, found)
            problem, fix = f"{mvn} -v failed: {first}", "check JAVA_HOME and Maven's installation (mvn -v)"
        except subprocess.TimeoutExpired:
            problem, fix = f"{mvn} -v: no answer within {CHILD_TIMEOUT_S} s", "check Maven's installation (mvn -v)"
    else:
        problem, fix = "mvn not found on PATH", "apt-get install maven"
    if kernels_cached:
        fix += " (the kernels are built, so runs do not need Maven until jvm/ changes)"
    return Check("maven", "FAIL", problem, fix, not kernels_cached, found)


def _kernels_check(build: bool) -> tuple[Check, bool]:
    entry, classpath = kernels_entry(), cached_kernels()
    if classpath is None and build:
        try:
            classpath = kernels_classpath()
        except WorkbenchError as error:
            return Check("java kernels", "FAIL", error.message, None, True, {"entry": str(entry)}), False
    if classpath is None:
        return Check("java kernels", "WARN", "not built yet: the first run builds it "
                                             "(needs Maven and network access to Maven Central)",
                     f"workbench doctor --build (or any run) builds it into {entry}", True,
                     {"entry": str(entry), "cached": False}), False
    return Check("java kernels", "ok", f"built, cached in {entry} ({len(classpath)} jars)", None, True,
                 {"entry": str(entry), "cached": True}), True


# --- 4. allocators ----------------------------------------------------------------------------------------------


def _load_check(name: str, library: Path | None, expected: str, needed: bool, fix: str | None) -> Check:
    """The allocator preloaded into a fresh Python: the probe must find it answering malloc and read its figures."""
    answer = _run_child(_ALLOCATOR_CHILD, [], _child_environment(library))
    check = f"allocator {name}"
    found: dict[str, Any] = {"library": str(library) if library else None, "expected_backend": expected,
                             "backend": None, "version": None}
    if isinstance(answer, str):
        return Check(check, "FAIL", f"LD_PRELOAD={library}: {answer}", fix, needed, found)
    found.update(backend=answer["backend"], version=answer["version"], figures=len(answer["figures"]))
    shown = f"{answer['backend']} {answer['version'] or '(version unknown)'} ({answer['library']})"
    if answer["backend"] != expected:
        return Check(check, "FAIL", f"expected {expected} to answer malloc, found {shown}", fix, needed, found)
    mismatch = preload_mismatch(AllocatorChoice(name, library, expected, Provenance("none")), answer["backend"],
                                answer["library"])
    if mismatch is not None:  # the right kind of allocator, but not the file that was preloaded
        return Check(check, "FAIL", mismatch.message, fix, needed, found)
    if not answer["figures"]:
        return Check(check, "FAIL", f"{shown}: its statistics returned no figures", fix, needed, found)
    count = len(answer["figures"])
    return Check(check, "ok", f"{shown}, {count} figure{'' if count == 1 else 's'} read", None, needed, found)


def _built_check(recipe: Recipe, build: bool, needed: bool, takes: str) -> tuple[Check, bool]:
    """An allocator the workbench builds: its cached build loads and answers as that allocator."""
    name = recipe.name
    lookup = source_build.lookup(recipe)
    built = lookup.built
    if built is None and build:
        try:
            built = source_build.build(recipe, quiet=True)[0]
        except WorkbenchError as error:
            return Check(f"allocator {name}", "FAIL", error.message, None, needed), False
    if built is None:
        why = f"{lookup.damaged}; " if lookup.damaged else ""
        tools = ", ".join(sorted(recipe.tools()))
        return Check(f"allocator {name}", "WARN",
                     f"{why}not built yet: the first run {'' if needed else 'with it '}builds it "
                     f"({takes}; needs {tools} and apt access to Debian's source packages)",
                     f"workbench build {name} (or any run with it) builds it", needed, {"cached": False}), False
    check = _load_check(name, built.library, name, needed,
                        f"rebuild it: remove {built.cache_entry} and run workbench build {name}")
    return replace(check, found={**check.found, "cached": True}), True


def _system_allocator_checks() -> Iterator[Check]:
    """glibc and the allocators a distribution package provides: none of them is what a default run uses."""
    for name in NAMES:
        if name in BUILT:
            continue
        if name == "glibc":
            yield _load_check("glibc", None, "glibc", False, None)
            continue
        package = SYSTEM_ALLOCATORS[name].package
        try:
            choice = resolve_allocator(name, quiet=True)
        except BadInput as error:
            yield Check(f"allocator {name}", "FAIL", error.message, f"apt-get install {package}", False)
            continue
        assert choice.expected_backend is not None
        yield _load_check(name, choice.library, choice.expected_backend, False,
                          f"apt-get install --reinstall {package}")


# --- 5. the C toolchain -----------------------------------------------------------------------------------------


def _toolchain_check(jemalloc_cached: bool) -> Check:
    tools = {**JEMALLOC_BUILD_TOOLS, **APT_TOOLS}
    found = {command: shutil.which(command) for command in tools}
    missing_build = [command for command in JEMALLOC_BUILD_TOOLS if found[command] is None]
    missing_apt = [command for command in APT_TOOLS if found[command] is None]
    needed = not jemalloc_cached
    if not missing_build and not missing_apt:
        return Check("c toolchain", "ok", ", ".join(f"{c} ({p})" for c, p in found.items()), None, needed, found)
    fixes = []
    if missing_build:
        fixes.append(f"apt-get install {' '.join(JEMALLOC_BUILD_TOOLS[c] for c in missing_build)}")
    if missing_apt:
        fixes.append("without apt, build jemalloc from a release tarball: "
                     "workbench build jemalloc --source jemalloc-5.3.0.tar.bz2")
    fix = "; ".join(fixes) + (" (jemalloc is built, so runs do not need them)" if jemalloc_cached else "")
    return Check("c toolchain", "FAIL", f"not found on PATH: {', '.join(missing_build + missing_apt)}", fix,
                 needed, found)


def _headers_check() -> Check:
    """The default JDK's C headers, which the probe's build needs (its native agent, native/probe/jvm_agent.c)."""
    needed = not probe_cached()
    try:
        home = resolve_jdk(None).home
    except BadInput as error:
        return Check("jdk headers", "FAIL", error.message, None, needed)
    problem = java_include_problem(home)
    if problem is not None:
        fix = "apt-get install openjdk-17-jdk-headless" + (" (the probe is built, so runs do not need them)"
                                                             if not needed else "")
        return Check("jdk headers", "FAIL", problem, fix, needed, {"include": str(home / "include")})
    return Check("jdk headers", "ok", f"{home / 'include'} (jni.h, jvmti.h: the probe's native agent)", None, needed,
                 {"include": str(home / "include")})


# --- 6. /proc ---------------------------------------------------------------------------------------------------


def _proc_check() -> Check:
    from workbench.probes.process import read_process
    from workbench.probes.process_status import read_status

    fix = "mount procfs at /proc (mount -t proc proc /proc); in a container, do not mask /proc/self"
    try:
        snapshot, _ = read_process()
        status = read_status()
    except OSError as exc:
        return Check("/proc", "FAIL", f"cannot read /proc/self: {exc}", fix, True)
    found = {"rss_bytes": snapshot.rss_bytes, "anon_rss_bytes": snapshot.anon_rss_bytes, **{
        f"status_{k}": v for k, v in status.items()}}
    if snapshot.rss_bytes <= 0 or set(status) != {"rss_bytes", "anon_rss_bytes"}:
        return Check("/proc", "FAIL", f"/proc/self/smaps or statm lack the expected fields (read: {found})", fix,
                     True, found)
    return Check("/proc", "ok", f"smaps and statm readable (RSS {snapshot.rss_bytes // 1024} KiB, "
                                f"{snapshot.anon_mappings} anonymous mappings)", None, True, found)


# --- all of them -------------------------------------------------------------------------------------------------


def run_checks(build: bool) -> Iterator[Check]:
    """Every check, in the order printed; each one as soon as it is done. With ``build``, what is missing (the Java
    kernels, jemalloc) is built instead of reported; without it, nothing is built or written."""
    yield from _python_checks()
    yield from _jdk_checks()
    kernels, kernels_cached = _kernels_check(build)
    yield _maven_check(kernels_cached)
    yield kernels
    jemalloc, jemalloc_cached = _built_check(JEMALLOC, build, True, "about 90 s")
    yield jemalloc
    yield _built_check(TCMALLOC, build, False, "about 60 s")[0]
    yield _built_check(MIMALLOC, build, False, "about 5 s")[0]
    yield from _system_allocator_checks()
    yield _toolchain_check(jemalloc_cached)
    yield _headers_check()
    yield _proc_check()
