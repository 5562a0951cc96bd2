"""The trust boundary of a scenario file: it describes memory work; it cannot run programs, load native code or write
outside the run directory. Values that could are accepted from the command line, or from a file the user trusts
(``--trust``)."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.scenario.model import Scenario
from workbench.toolchain.settings import parse_spec

# JVM options that run a program, load code or write a file where the user did not ask (prefix, what it does).
_JVM_OPTIONS = (
    ("-XX:OnError", "runs a program"), ("-XX:OnOutOfMemoryError", "runs a program"),
    ("-agentpath", "loads native code"), ("-agentlib", "loads native code"), ("-javaagent", "loads code"),
    ("-Xbootclasspath", "loads code"), ("--patch-module", "loads code"), ("-XX:Flags", "reads a file of options"),
    ("-XX:VMOptionsFile", "reads a file of options"), ("-XX:CompileCommandFile", "reads a file"),
    ("-XX:ErrorFile", "writes a file"), ("-XX:HeapDumpPath", "writes a file"), ("-XX:LogFile", "writes a file"),
    ("-Xloggc", "writes a file"), ("-XX:StartFlightRecording", "writes a file"),
    ("-XX:FlightRecorderOptions", "writes a file"), ("-XX:+UnlockDiagnosticVMOptions", "unlocks diagnostic options"),
    ("-Djava.library.path", "chooses native libraries to load"), ("-Djava.security.manager", "changes security"),
)
# MALLOC_CONF keys (jemalloc) that name a file to write.
_MALLOC_CONF_KEYS = {"prof_prefix": "writes profile dumps to a path"}


@dataclass(frozen=True)
class Untrusted:
    field: str  # the field path in the file, e.g. jvm.options[2]
    value: str
    why: str

    def message(self, source: str) -> str:
        shown = self.value if len(self.value) <= 80 else self.value[:77] + "..."
        return (f"{source}: {self.field}: {shown!r} {self.why}; a scenario file may not do that (give it on the command "
                "line, or pass --trust to allow it for this file)")


def _jvm_option_problem(option: str) -> str | None:
    if option.startswith("@"):
        return "reads a file of options"
    if option.startswith("-Xlog") and "file=" in option:
        return "writes a file"
    return next((why for prefix, why in _JVM_OPTIONS if option.startswith(prefix)), None)


def untrusted_values(scenario: Scenario, allocator_from_cli: bool = False,
                     malloc_conf_from_cli: bool = False) -> list[Untrusted]:
    """What in the scenario file only the person at the keyboard may decide (empty: the file is only data)."""
    found = [Untrusted(f"jvm.options[{index}]", option, why)
             for index, option in enumerate(scenario.jvm.options) if (why := _jvm_option_problem(option))]
    spec = parse_spec(scenario.allocator, "allocator")  # the model has checked its syntax
    allocator = spec.name
    if not allocator_from_cli and ("/" in allocator or allocator.endswith(".so") or ".so." in allocator):
        found.append(Untrusted("allocator", allocator, "loads native code (a library path)"))
    if not allocator_from_cli:
        found += [Untrusted("allocator", f"{key}:{value}", _MALLOC_CONF_KEYS[key])
                  for key, value in spec.settings if key in _MALLOC_CONF_KEYS]
    if not malloc_conf_from_cli and scenario.malloc_conf:
        for entry in scenario.malloc_conf.split(","):
            key = entry.partition(":")[0].strip()
            if key in _MALLOC_CONF_KEYS:
                found.append(Untrusted("malloc_conf", entry, _MALLOC_CONF_KEYS[key]))
    return found
