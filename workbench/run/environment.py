"""The environment of a measured process: what is preloaded, the allocator's settings, and the check that the preload
took effect. Scenario runs, `exec` and `doctor`'s children all build theirs here."""

from __future__ import annotations

import os
import re
import glob
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workbench._errors import BadInput
from workbench._own_environment import set_here
from workbench.toolchain import settings as allocator_settings
from workbench.toolchain.allocators import AllocatorChoice, check_allocator, ready_allocator
from workbench.toolchain.elf import NotAnAllocator, defined_functions
from workbench.toolchain.settings import AllocatorSpec, Family

TYPE_CHECKING = False
if TYPE_CHECKING:  # the report model (pydantic) is imported where a finding is made: not before `exec` starts java
    from workbench.probes.allocator import ConfSetting
    from workbench.report.model import RunError

# The directory that holds the workbench package, for Python children (`python -m workbench.worker`).
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def _inherited(key: str, value: str) -> str | None:
    """The caller's variable as the measured process may inherit it: LD_PRELOAD and every allocator variable
    (MALLOC_CONF, MALLOC_ARENA_MAX, TCMALLOC_*, MIMALLOC_*) dropped; of GLIBC_TUNABLES only the malloc tunables."""
    if key == "GLIBC_TUNABLES":
        kept = [entry for entry in value.split(":") if entry and not entry.startswith("glibc.malloc.")]
        return ":".join(kept) or None
    if key == "LD_PRELOAD" or allocator_settings.is_allocator_variable(key):
        return None
    return value


def preload_environment(preload: Sequence[Path], malloc_conf: str | None = None,
                        extra: Mapping[str, str] | None = None, python: bool = False,
                        allocator_variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``preload`` (in that order) as LD_PRELOAD, ``malloc_conf`` as MALLOC_CONF
    and ``allocator_variables`` (an allocator's settings: GLIBC_TUNABLES, TCMALLOC_*, MIMALLOC_*).

    The caller's own LD_PRELOAD and allocator variables are dropped: what is measured is what the run says it
    measured. ``python`` puts the workbench package on PYTHONPATH, for a Python child, and turns pymalloc off
    (PYTHONMALLOC=malloc): Python's own objects then go through the measured allocator, whose mappings the ledger
    finds by address, instead of pymalloc's arenas, whose resident pages no statistic gives (measured on
    intvector-large under jemalloc, JDK 17: 1,490,944 B unexplained at 'closed' with pymalloc, 4,096 B without).
    What the ``workbench`` command set for itself (``workbench._own_environment``) a Python child keeps and a
    program does not get.
    """
    env = {key: kept for key, value in os.environ.items() if (kept := _inherited(key, value)) is not None}
    if not python:
        for key in set_here():
            env.pop(key, None)
    if preload:
        env["LD_PRELOAD"] = ":".join(str(path) for path in preload)
    if malloc_conf:
        env["MALLOC_CONF"] = malloc_conf
    for key, value in (allocator_variables or {}).items():
        env[key] = f"{env[key]}:{value}" if key == "GLIBC_TUNABLES" and env.get(key) else value
    if python:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
        env["PYTHONMALLOC"] = "malloc"
    env.update(extra or {})
    return env


def allocator_preload(choice: AllocatorChoice) -> list[Path]:
    """The libraries to preload for an allocator: none for glibc's malloc."""
    return [choice.library] if choice.library is not None else []


def _same_file(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def preload_mismatch(choice: AllocatorChoice, backend: str | None, library: str | None) -> RunError | None:
    """A failure when the allocator answering malloc in the process is not the one asked for; None when it is (or
    when nothing could be detected).

    A preloaded library must be the very file malloc resolves into (dladdr of malloc in the measured process): the
    dynamic linker skips a library it cannot preload with one line on stderr and goes on with glibc's malloc."""
    from workbench.report.model import RunError

    expected = choice.expected_backend
    if backend is None:
        return None
    if expected is not None and backend != expected:
        return RunError(
            type="AllocatorMismatch",
            message=f"asked for {choice.name}, but malloc in the process is {backend}'s ({library}): the preload did "
                    "not take effect",
        )
    if choice.library is not None and (library is None or not _same_file(library, choice.library)):
        return RunError(
            type="AllocatorMismatch",
            message=f"asked for {choice.name}, but malloc in the process resolves into {library} ({backend}), not "
                    f"{choice.library}: the preload did not take effect (the dynamic linker could not preload it, "
                    "or it does not replace malloc)",
        )
    return None


# What jemalloc prints on stderr for a MALLOC_CONF it does not take (and then goes on without it).
_JEMALLOC_CONF_COMPLAINT = re.compile(r"^<jemalloc>: ((?:Invalid conf|Malformed conf|Conf string ends).*)$",
                                      re.MULTILINE)
_CONF_TRIAL = "import os; os._exit(0)"  # any malloc makes jemalloc read its conf; exit skips stats_print/prof_final


def reads_malloc_conf(choice: AllocatorChoice) -> bool:
    """Whether the allocator is a jemalloc (built, Debian's, or a file that exports mallctl), the one that reads
    MALLOC_CONF."""
    if choice.expected_backend == "jemalloc":
        return True
    if choice.expected_backend is not None or choice.library is None:
        return False
    try:
        return "mallctl" in defined_functions(choice.library, ("mallctl",))
    except (NotAnAllocator, OSError):
        return False


def check_malloc_conf(choice: AllocatorChoice, malloc_conf: str | None, option: str = "--malloc-conf",
                      shown: str | None = None) -> None:
    """BadInput (exit 2, naming ``option`` and the pair) unless the allocator takes ``malloc_conf`` whole.

    Only jemalloc reads MALLOC_CONF, and it goes on without a pair it refuses (one ``<jemalloc>: Invalid conf pair``
    line on stderr): so a tiny process with the allocator and the conf is started, and what jemalloc says is
    read. About 10 ms; it runs in an empty temporary directory, with any profile dumps sent there. ``shown``: what
    the message names instead of ``option`` and the conf (an allocator spec the conf came from)."""
    if not malloc_conf:
        return
    named = shown or f"{option} {malloc_conf}"
    if not reads_malloc_conf(choice):
        raise BadInput(f"{named}: only jemalloc reads MALLOC_CONF, and the allocator is "
                       f"{choice.name}, which would ignore it")
    assert choice.library is not None
    with tempfile.TemporaryDirectory(prefix="workbench-conf-") as scratch:
        trial = malloc_conf
        if "prof" in malloc_conf:  # a dump from this process goes nowhere the user would look
            trial += f",prof_prefix:{scratch}/jeprof"
        env = preload_environment([choice.library], trial)
        try:
            result = subprocess.run([sys.executable, "-I", "-S", "-c", _CONF_TRIAL], env=env, cwd=scratch,
                                    capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL,
                                    timeout=60, check=False)
        except subprocess.TimeoutExpired:
            raise BadInput(f"{named}: a process with it did not start within 60 s") from None
    complaint = conf_complaint(result.stderr)
    if complaint is not None:
        raise BadInput(f"{named}: jemalloc refuses it ({complaint})")
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise BadInput(f"{named}: a process with it failed ({last})")


def conf_complaint(stderr: str) -> str | None:
    """jemalloc's first complaint about its MALLOC_CONF in a process's stderr (``Invalid conf pair: nonsense:1``)."""
    found = _JEMALLOC_CONF_COMPLAINT.search(stderr)
    return found.group(1) if found else None


def _same_value(asked: str, effective: object) -> bool:
    if isinstance(effective, bool):
        return asked.lower() == str(effective).lower()
    if isinstance(effective, int):
        try:
            return int(asked) == effective
        except ValueError:
            return False
    if isinstance(effective, str):
        try:
            return asked == effective or float(asked) == float(effective)
        except ValueError:
            return False
    return False


def malloc_conf_finding(settings: list[dict[str, object]] | None, log_text: str,
                        option: str = "--malloc-conf") -> RunError | None:
    """A failure when jemalloc in the measured process refused its MALLOC_CONF: a complaint in its log, or an
    ``opt.*`` value read back that is not the one asked for (an option jemalloc does not report is not judged)."""
    from workbench.report.model import RunError

    complaint = conf_complaint(log_text)
    if complaint is not None:
        return RunError(type="MallocConfRejected", message=f"{option}: jemalloc in the process refused it "
                                                           f"({complaint}) and ran without it")
    for setting in settings or []:
        effective = setting.get("effective")
        if effective is not None and not _same_value(str(setting["asked"]), effective):
            return RunError(type="MallocConfRejected",
                            message=f"{option}: asked for {setting['key']}:{setting['asked']}, but jemalloc in the "
                                    f"process uses {setting['key']}:{effective}")
    return None


def check_scenario_allocator(allocator: str, malloc_conf: str | None, source: str) -> None:
    """What a run checks of a scenario file's ``allocator`` (``NAME@key:value,...``) and ``malloc_conf`` before it
    starts, with the same messages, for ``validate``; builds nothing."""
    check_spec(allocator, malloc_conf, f"{source}: allocator", f"{source}: malloc_conf")


# --- settings of every allocator: checked, tried in a tiny process, read back -------------------------------------


@dataclass(frozen=True)
class CheckedSettings:
    """An allocator's settings, checked and tried: what the measured process gets, and what the allocator said."""

    family: Family | None
    pairs: tuple[tuple[str, str], ...] = ()  # NAME@'s settings, values canonical
    malloc_conf: str | None = None  # jemalloc: MALLOC_CONF (NAME@'s pairs, then --malloc-conf / malloc_conf)
    variables: dict[str, str] = field(default_factory=dict)  # the other allocators' variables
    # What the allocator in the trial process says it uses (glibc, tcmalloc, mimalloc); None: not read back there
    # (jemalloc's are read back in the measured process itself).
    readback: list[ConfSetting] | None = None

    def environment(self) -> dict[str, str]:
        """Every variable the settings give the measured process, MALLOC_CONF included."""
        return {**({"MALLOC_CONF": self.malloc_conf} if self.malloc_conf else {}), **self.variables}

    def label(self) -> str | None:
        """The settings as a run directory's name shows them: MALLOC_CONF, or NAME@'s pairs."""
        return self.malloc_conf or ",".join(f"{key}:{value}" for key, value in self.pairs) or None

    def spec(self, name: str) -> str:
        """The allocator with these settings, as one would name it again: ``glibc@arena_max:2``."""
        return f"{name}@{self.malloc_conf}" if self.malloc_conf else AllocatorSpec(name, self.pairs).text()


def allocator_environment(choice: AllocatorChoice, settings: CheckedSettings) -> dict[str, str]:
    """What a run sets for its allocator, as the report records it: LD_PRELOAD and the settings' variables."""
    return {**({"LD_PRELOAD": str(choice.library)} if choice.library is not None else {}), **settings.environment()}


def allocator_family(choice: AllocatorChoice) -> Family | None:
    """The settings family of an allocator: from the backend it must be, or for a library file from the statistics
    API it exports (mallctl: jemalloc, MallocExtension: tcmalloc, mi_option_get: mimalloc); None: takes none."""
    known = allocator_settings.family_of_backend(choice.expected_backend)
    if known is not None or choice.library is None or choice.expected_backend is not None:
        return known
    markers: tuple[tuple[str, Family], ...] = (("mallctl", "jemalloc"), ("MallocExtension_GetNumericProperty",
                                                                         "tcmalloc"), ("mi_option_get", "mimalloc"))
    try:
        exported = defined_functions(choice.library, tuple(symbol for symbol, _ in markers))
    except (NotAnAllocator, OSError):
        return None
    return next((family for symbol, family in markers if symbol in exported), None)


def check_allocator_settings(choice: AllocatorChoice, spec: AllocatorSpec, option: str,
                             malloc_conf: str | None = None,
                             malloc_conf_option: str = "--malloc-conf") -> CheckedSettings:
    """``spec``'s settings (and a MALLOC_CONF given apart) checked for the allocator, then tried: BadInput (exit 2)
    naming the option for a key the allocator does not have, a value out of range, or a value the allocator does
    not take (it ignores it, or reads it otherwise). About 10 ms per try."""
    family = allocator_family(choice)
    where = f"{option} {spec.text()}"
    pairs = allocator_settings.check_settings(family, spec.settings, where, choice.name)
    if family != "jemalloc":
        check_malloc_conf(choice, malloc_conf, malloc_conf_option)  # refuses a conf the allocator would ignore
        variables = allocator_settings.environment(family, pairs)
        readback = _try_settings(choice, family, pairs, variables, where) if pairs else None
        return CheckedSettings(family, pairs, None, variables, readback)
    own = allocator_settings.environment(family, pairs).get("MALLOC_CONF")
    conf = ",".join(part for part in (own, malloc_conf) if part) or None
    shown = (where if not malloc_conf else f"{where} with {malloc_conf_option} {malloc_conf}") if own else None
    check_malloc_conf(choice, conf, malloc_conf_option, shown)
    return CheckedSettings(family, pairs, conf)


_TCMALLOC_TRIAL = """
import ctypes, json, os, sys
get = ctypes.CDLL(None).MallocExtension_GetNumericProperty
get.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)]
answers = {}
for name in sys.argv[1:]:
    value = ctypes.c_size_t()
    if get(name.encode(), ctypes.byref(value)):
        answers[name] = value.value
sys.stdout.write(json.dumps(answers)); sys.stdout.flush(); os._exit(0)
"""
_MIMALLOC_OPTION = re.compile(r"^mimalloc: option '([a-z_]+)': (-?\d+)", re.MULTILINE)
_MIMALLOC_WARNING = re.compile(r"^mimalloc: warning: (environment option .*)$", re.MULTILINE)
_TUNABLE = re.compile(r"^(glibc\.malloc\.[a-z_]+): (\S+) \(min: (\S+), max: (\S+)\)$", re.MULTILINE)


def _trial(argv: list[str], env: dict[str, str], where: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="workbench-settings-") as scratch:
        try:
            result = subprocess.run(argv, env=env, cwd=scratch, capture_output=True, text=True, errors="replace",
                                    stdin=subprocess.DEVNULL, timeout=60, check=False)
        except subprocess.TimeoutExpired:
            raise BadInput(f"{where}: a process with these settings did not start within 60 s") from None
        except OSError as error:
            raise BadInput(f"{where}: a process with these settings could not start ({error})") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise BadInput(f"{where}: a process with these settings failed ({last})")
    return result


def _dynamic_loader() -> str | None:
    """The dynamic loader of this machine's programs, for ``ld.so --list-tunables``."""
    found = sorted(glob.glob("/lib64/ld-linux-*.so.*") + glob.glob("/lib/ld-linux-*.so.*"))
    return found[0] if found else None


def _try_settings(choice: AllocatorChoice, family: Family | None, pairs: tuple[tuple[str, str], ...],
                  variables: dict[str, str], where: str) -> list[ConfSetting]:
    """Start a tiny process with the settings and read back what the allocator says it uses."""
    keys = allocator_settings.KEYS[family] if family else {}
    env = preload_environment(allocator_preload(choice), allocator_variables=variables)
    effective: dict[str, bool | int | float | str | None] = {}
    if family == "glibc":
        loader = _dynamic_loader()
        if loader is not None:
            listed = _trial([loader, "--list-tunables"], env, where).stdout
            tunables = {name: value for name, value, _, _ in _TUNABLE.findall(listed)}
            for key, _ in pairs:
                value = tunables.get(keys[key].variable)
                effective[key] = int(value, 0) if value is not None else None
    elif family == "tcmalloc":
        properties = {key: keys[key].readback for key, _ in pairs if keys[key].readback}
        answer = json.loads(_trial([sys.executable, "-I", "-S", "-c", _TCMALLOC_TRIAL,
                                    *[p for p in properties.values() if p]], env, where).stdout or "{}")
        for key, _ in pairs:
            prop = properties.get(key)
            value = answer.get(prop) if prop else None
            effective[key] = bool(value) if value is not None and keys[key].kind == "bool" else value
    elif family == "mimalloc":
        result = _trial([sys.executable, "-I", "-S", "-c", "import os; os._exit(0)"],
                        {**env, "MIMALLOC_VERBOSE": "1", "MIMALLOC_SHOW_STATS": "0"}, where)
        warning = _MIMALLOC_WARNING.search(result.stderr)
        if warning is not None:
            raise BadInput(f"{where}: mimalloc refuses it ({warning.group(1)})")
        options = {name: int(value) for name, value in _MIMALLOC_OPTION.findall(result.stderr)}
        if options:
            unknown = [key for key, _ in pairs if key not in options]
            if unknown:
                listed = ", ".join(name for name in options if not name.startswith("deprecated_"))
                raise BadInput(f"{where}: this mimalloc has no option {unknown[0]!r} (its options: {listed})")
        for key, _ in pairs:
            value = options.get(key)
            kind = keys[key].kind if key in keys else "int"
            effective[key] = bool(value) if value is not None and kind == "bool" else value
    from workbench.probes.allocator import ConfSetting  # here: `exec` loads the probes' readers after java starts

    settings = [ConfSetting(key, value, effective.get(key)) for key, value in pairs]
    for setting in settings:
        if setting.effective is not None and not _same_value(setting.asked, setting.effective):
            raise BadInput(f"{where}: {family} takes {setting.key}:{setting.asked} as {setting.key}:"
                           f"{setting.effective} (it ignores the value asked for)")
    return settings


def check_spec(spec_text: str, malloc_conf: str | None, option: str, malloc_conf_option: str) -> None:
    """What a run checks of an allocator spec and a MALLOC_CONF before it starts, with the same messages, for
    ``validate``; builds nothing (settings of a jemalloc not built yet are checked by the run)."""
    spec = allocator_settings.parse_spec(spec_text, option)
    check_allocator(spec.name, option)
    choice = ready_allocator(spec.name, option)
    if choice is not None:
        check_allocator_settings(choice, spec, option, malloc_conf, malloc_conf_option)
    elif spec.settings:
        allocator_settings.check_settings("jemalloc", spec.settings, f"{option} {spec_text}", spec.name)
