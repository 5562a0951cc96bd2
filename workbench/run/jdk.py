"""Which JDK the worker starts, and the options that JDK needs for Arrow."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench._errors import BadInput


@dataclass(frozen=True)
class Jdk:
    home: Path
    library: Path  # libjvm.so, what JPype loads
    feature_version: int


def _feature_version(home: Path, given_as: str) -> int:
    try:
        release = (home / "release").read_text(encoding="utf-8", errors="replace")
    except OSError:
        release = ""
    match = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', release, re.MULTILINE)
    if not match:
        raise BadInput(f"{given_as} {home}: no 'release' file with JAVA_VERSION (expected a JDK's home directory)")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def _jvm_finder() -> Any:
    """JPype's JVM finder (``jpype._jvmfinder``, which imports only os and sys) loaded without importing ``jpype``:
    that imports numpy and JPype's native module, 70-100 ms of the ``workbench`` process's start before its worker
    starts. ``jpype`` itself where its finder is not that file (another JPype version)."""
    spec = importlib.util.find_spec("jpype")  # finds the package; runs nothing of it
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / "_jvmfinder.py" if locations else None
    finder_spec = importlib.util.spec_from_file_location("workbench._jpype_jvmfinder", path) \
        if path is not None and path.is_file() else None
    if finder_spec is None or finder_spec.loader is None:
        import jpype

        return jpype
    module = importlib.util.module_from_spec(finder_spec)
    finder_spec.loader.exec_module(module)
    return module


def resolve_jdk(java_home: str | None) -> Jdk:
    """``--java-home``, else ``JAVA_HOME``, else JPype's default JVM."""
    given_as = "--java-home"
    if java_home is None:
        java_home = os.environ.get("JAVA_HOME") or None
        given_as = "JAVA_HOME"
    if java_home is None:
        finder = _jvm_finder()
        try:
            library = Path(finder.getDefaultJVMPath()).resolve()
        except finder.JVMNotFoundException:
            raise BadInput("no JDK found: install one (Debian: apt-get install openjdk-17-jdk) or set JAVA_HOME") from None
        home = library.parents[2] if library.parent.name == "server" else library.parents[1]
        return Jdk(home, library, _feature_version(home, f"JPype's default JVM ({library})"))
    home = Path(java_home)
    library = home / "lib" / "server" / "libjvm.so"
    if not library.is_file():
        raise BadInput(f"{given_as} {home}: no lib/server/libjvm.so there (expected a JDK's home directory)")
    return Jdk(home, library, _feature_version(home, given_as))


# The worker's JVM opens HotSpot's diagnostic command to the workbench's kernels (workbench.jvm.NativeMemory): NMT
# and the region texts are read without the platform MBean server, whose first call costs 150-300 ms.
DIAGNOSTIC_COMMAND_OPTIONS = ["--add-opens=java.management/sun.management=ALL-UNNAMED",
                              "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED"]


def arrow_options(jdk: Jdk) -> list[str]:
    """Options Arrow (and its Netty allocation manager) needs on this JDK."""
    options = ["--add-opens=java.base/java.nio=ALL-UNNAMED"]
    if jdk.feature_version >= 24:
        # Netty's Unsafe access is denied by default from JDK 24 on, and JPype's System.load warns.
        options += [
            "--sun-misc-unsafe-memory-access=allow",
            "-Dio.netty.tryReflectionSetAccessible=true",
            "--enable-native-access=ALL-UNNAMED",
        ]
    return options
