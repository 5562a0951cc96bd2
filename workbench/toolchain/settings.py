"""Allocator settings, one syntax wherever an allocator is named: ``NAME@key:value,key:value`` (as jemalloc's
MALLOC_CONF reads). Each allocator family has its keys, value kinds and ranges here, and the variables of the
measured process's environment they become (MALLOC_CONF, GLIBC_TUNABLES, TCMALLOC_*, MIMALLOC_*).

Syntax, keys and ranges are checked here without starting anything; what the allocator itself then takes is tried
and read back in a tiny process by :mod:`workbench.run.environment`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from workbench._errors import BadInput
from workbench.units import parse_size

Family = Literal["jemalloc", "tcmalloc", "mimalloc", "glibc"]
FAMILIES: tuple[Family, ...] = ("glibc", "jemalloc", "tcmalloc", "mimalloc")
Kind = Literal["int", "size", "bool", "float", "choice"]

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Key:
    """One setting of one allocator family."""

    name: str  # as written after NAME@ (``arena_max``)
    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    # What it becomes: a GLIBC_TUNABLES tunable, a TCMALLOC_/MIMALLOC_ variable, or the MALLOC_CONF key itself.
    variable: str = ""
    # Where the allocator says the value it uses: a tcmalloc numeric property (None: it does not say).
    readback: str | None = None
    meaning: str = ""

    def describe_range(self) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        low = "" if self.minimum is None else _shown_number(self.minimum, self.kind)
        high = "" if self.maximum in (None, INT64_MAX) else _shown_number(self.maximum or 0, self.kind)
        what = {"int": "an integer", "size": "a size", "float": "a number"}[self.kind]
        if low and high:
            return f"{what} from {low} to {high}"
        if low:
            return f"{what} of at least {low}"
        return f"{what} of at most {high}" if high else what


def _shown_number(value: float, kind: Kind) -> str:
    if kind == "size" and value >= 1024 and value % 1024 == 0:
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value % size == 0:
                return f"{int(value // size)}{unit}"
    return f"{value:g}" if kind == "float" else str(int(value))


def _glibc(name: str, kind: Kind, minimum: float | None, maximum: float | None, meaning: str) -> Key:
    return Key(name, kind, minimum, maximum, variable=f"glibc.malloc.{name}", meaning=meaning)


# glibc 2.36's malloc tunables (GLIBC_TUNABLES); the maxima are where glibc silently ignores a value (malloc.c's
# do_set_*: HEAP_MAX_SIZE / 2 for mmap_threshold, MAX_TCACHE_COUNT, MAX_TCACHE_SIZE, MAX_FAST_SIZE).
_GLIBC_KEYS = (
    _glibc("arena_max", "int", 1, INT64_MAX, "most arenas (default 8 per core); fewer: less memory, more contention"),
    _glibc("arena_test", "int", 1, INT64_MAX, "arenas made before arena_max is looked at"),
    _glibc("trim_threshold", "size", 0, INT64_MAX, "free memory at the top of the heap kept before trimming"),
    _glibc("mmap_threshold", "size", 0, 32 << 20, "requests at least this large get their own mmap (fixes the "
                                                  "dynamic threshold)"),
    _glibc("mmap_max", "int", 0, 2**31 - 1, "most chunks served by mmap at once (0: never mmap)"),
    _glibc("top_pad", "size", 0, INT64_MAX, "extra memory asked of the kernel at each heap growth"),
    _glibc("tcache_count", "int", 0, 65535, "chunks per size in each thread's cache"),
    _glibc("tcache_max", "size", 0, 1032, "largest request the thread cache holds"),
    _glibc("tcache_unsorted_limit", "int", 0, INT64_MAX, "unsorted chunks looked at before taking from the tcache"),
    _glibc("mxfast", "size", 0, 160, "largest request served from the fast bins"),
    _glibc("hugetlb", "int", 0, 2, "1: transparent huge pages (madvise), 2: hugetlbfs pages"),
    _glibc("perturb", "int", 0, 255, "fill memory with this byte at malloc and free (debugging)"),
)

# gperftools 2.10's environment variables (tcmalloc_minimal); readback: the numeric property that reports it.
_TCMALLOC_KEYS = (
    Key("release_rate", "float", 0, 1000, variable="TCMALLOC_RELEASE_RATE",
        meaning="how fast free pages go back to the kernel (0: never, default 1, 10: eagerly)"),
    Key("max_total_thread_cache_bytes", "size", 0, 1 << 40, variable="TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES",
        readback="tcmalloc.max_total_thread_cache_bytes", meaning="all threads' caches together (default 32 MiB)"),
    Key("aggressive_decommit", "bool", variable="TCMALLOC_AGGRESSIVE_DECOMMIT",
        readback="tcmalloc.aggressive_memory_decommit", meaning="return every free span at once"),
    Key("transfer_num_obj", "int", 1, 1 << 14, variable="TCMALLOC_TRANSFER_NUM_OBJ",
        meaning="objects moved between the thread and central caches at once (default 512)"),
    Key("heap_limit_mb", "int", 0, 1 << 30, variable="TCMALLOC_HEAP_LIMIT_MB", readback="tcmalloc.heap_limit_mb",
        meaning="most heap in MiB (0: no limit)"),
    Key("disable_memory_release", "bool", variable="TCMALLOC_DISABLE_MEMORY_RELEASE",
        meaning="never return free memory"),
    Key("skip_sbrk", "bool", variable="TCMALLOC_SKIP_SBRK", meaning="take memory with mmap only"),
)

# mimalloc's options (MIMALLOC_<NAME>): the ones that change memory use, by the names of mimalloc 2.0 and 2.1. A key
# outside this list is still taken when the preloaded mimalloc lists it as an option of its own (tried first).
_MIMALLOC_KEYS = (
    Key("eager_commit", "bool", variable="MIMALLOC_EAGER_COMMIT", meaning="commit whole segments at once"),
    Key("eager_commit_delay", "int", 0, 1 << 20, variable="MIMALLOC_EAGER_COMMIT_DELAY",
        meaning="segments per thread before eager commit starts"),
    Key("decommit_delay", "int", 0, 1 << 30, variable="MIMALLOC_DECOMMIT_DELAY",
        meaning="ms before free memory is decommitted (2.0; default 25)"),
    Key("allow_decommit", "bool", variable="MIMALLOC_ALLOW_DECOMMIT", meaning="return free memory at all (2.0)"),
    Key("segment_decommit_delay", "int", 0, 1 << 30, variable="MIMALLOC_SEGMENT_DECOMMIT_DELAY",
        meaning="ms before a free segment is decommitted (2.0)"),
    Key("page_reset", "bool", variable="MIMALLOC_PAGE_RESET", meaning="reset free pages (2.0)"),
    Key("abandoned_page_decommit", "bool", variable="MIMALLOC_ABANDONED_PAGE_DECOMMIT",
        meaning="decommit pages of exited threads (2.0)"),
    Key("purge_delay", "int", -1, 1 << 30, variable="MIMALLOC_PURGE_DELAY",
        meaning="ms before free memory is purged (2.1; -1: never)"),
    Key("purge_decommits", "bool", variable="MIMALLOC_PURGE_DECOMMITS", meaning="purge by decommitting (2.1)"),
    Key("arena_eager_commit", "int", 0, 2, variable="MIMALLOC_ARENA_EAGER_COMMIT",
        meaning="commit arenas at once (2.1; 2: only where overcommit is on)"),
    Key("large_os_pages", "bool", variable="MIMALLOC_LARGE_OS_PAGES", meaning="2 MiB pages"),
    Key("max_segment_reclaim", "int", 0, 1 << 20, variable="MIMALLOC_MAX_SEGMENT_RECLAIM",
        meaning="abandoned segments reclaimed per allocation"),
    Key("use_numa_nodes", "int", 0, 1 << 10, variable="MIMALLOC_USE_NUMA_NODES", meaning="NUMA nodes used (0: all)"),
)

# jemalloc's MALLOC_CONF keys that matter for a JVM. Any other key is passed to jemalloc, which is asked whether it
# takes it (a tiny process with the conf, see workbench.run.environment.check_malloc_conf).
_JEMALLOC_KEYS = (
    Key("background_thread", "bool", meaning="a thread that purges dirty pages on time, also while idle"),
    Key("max_background_threads", "int", 1, 1 << 16, meaning="background threads at most"),
    Key("dirty_decay_ms", "int", -1, INT64_MAX, meaning="ms before unused dirty pages are purged (-1: never)"),
    Key("muzzy_decay_ms", "int", -1, INT64_MAX, meaning="ms before muzzy pages are returned (-1: never)"),
    Key("narenas", "int", 1, 1 << 20, meaning="arenas (default 4 per core)"),
    Key("tcache", "bool", meaning="thread caches"),
    Key("tcache_max", "size", 0, 8 << 20, meaning="largest size a thread cache holds (5.3)"),
    Key("lg_tcache_max", "int", -1, 23, meaning="log2 of tcache_max (alias)"),
    Key("percpu_arena", "choice", choices=("disabled", "percpu", "phycpu"), meaning="one arena per CPU"),
    Key("metadata_thp", "choice", choices=("disabled", "auto", "always"), meaning="huge pages for metadata"),
    Key("thp", "choice", choices=("default", "always", "never"), meaning="transparent huge pages"),
    Key("retain", "bool", meaning="keep virtual memory instead of unmapping it"),
    Key("oversize_threshold", "size", 0, INT64_MAX, meaning="requests from this size go to a dedicated arena"),
)

_BY_FAMILY: tuple[tuple[Family, tuple[Key, ...]], ...] = (
    ("glibc", _GLIBC_KEYS), ("tcmalloc", _TCMALLOC_KEYS), ("mimalloc", _MIMALLOC_KEYS), ("jemalloc", _JEMALLOC_KEYS))
KEYS: Mapping[Family, Mapping[str, Key]] = MappingProxyType({
    family: MappingProxyType({key.name: key for key in keys}) for family, keys in _BY_FAMILY})
# Families whose library is asked about a key this table lacks; the others are refused one.
OPEN_FAMILIES: frozenset[Family] = frozenset({"jemalloc", "mimalloc"})

# The variables a measured process's allocator reads; none of them is inherited from the caller's environment.
ALLOCATOR_VARIABLE_PREFIXES = ("MALLOC_", "TCMALLOC_", "MIMALLOC_", "GLIBC_TUNABLES")


@dataclass(frozen=True)
class AllocatorSpec:
    """``NAME@key:value,...`` taken apart: the allocator and its settings, in the order given."""

    name: str
    settings: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        """The spec written back: ``glibc@arena_max:2``."""
        if not self.settings:
            return self.name
        return f"{self.name}@" + ",".join(f"{key}:{value}" for key, value in self.settings)

    def with_settings(self, more: Iterable[tuple[str, str]]) -> AllocatorSpec:
        """These settings, then ``more`` (a key given again takes its later value)."""
        merged = dict(self.settings)
        merged.update(more)
        return AllocatorSpec(self.name, tuple(merged.items()))


def parse_pairs(text: str, option: str) -> tuple[tuple[str, str], ...]:
    """``key:value,key:value`` into pairs; BadInput naming ``option`` for a pair without its colon or key."""
    pairs: list[tuple[str, str]] = []
    for entry in text.split(","):
        if not entry.strip():
            continue
        key, colon, value = entry.partition(":")
        key, value = key.strip(), value.strip()
        if not colon or not key or not value:
            raise BadInput(f"{option}: {entry.strip()!r} is not a setting (expected key:value, e.g. "
                           "glibc@arena_max:2 or jemalloc@background_thread:true,dirty_decay_ms:1000)")
        if any(key == seen for seen, _ in pairs):
            raise BadInput(f"{option}: {key} is given twice")
        pairs.append((key, value))
    return tuple(pairs)


def parse_spec(text: str, option: str = "--allocator") -> AllocatorSpec:
    """``NAME`` or ``NAME@key:value,...`` (the first ``@`` ends the name); the name itself is checked elsewhere."""
    name, at, settings = text.partition("@")
    name = name.strip()
    if not name:
        raise BadInput(f"{option} {text}: expected an allocator name before '@' (e.g. glibc@arena_max:2)")
    if at and not settings.strip():
        raise BadInput(f"{option} {text}: expected settings after '@' (key:value,key:value)")
    return AllocatorSpec(name, parse_pairs(settings, f"{option} {text}") if at else ())


def family_of_backend(backend: str | None) -> Family | None:
    """The family of what answers malloc (a backend name, see AllocatorChoice.expected_backend)."""
    return next((family for family in FAMILIES if family == backend), None)


def canonical_value(key: Key, value: str, where: str) -> str:
    """The value as the allocator's variable takes it (sizes in bytes, booleans as the family writes them);
    BadInput naming ``where`` and the allowed range otherwise."""
    text = value.strip()
    problem = f"{where}: {key.name}:{text}: expected {key.describe_range()}"
    if key.kind == "bool":
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return "true"
        if lowered in ("false", "0", "no", "off"):
            return "false"
        raise BadInput(problem)
    if key.kind == "choice":
        if text not in key.choices:
            raise BadInput(problem)
        return text
    number: float
    try:
        if key.kind == "size":
            number = parse_size(text)
        elif key.kind == "int":
            number = int(text)
        else:
            number = float(text)
    except ValueError:
        raise BadInput(problem) from None
    if not math.isfinite(number) or (key.minimum is not None and number < key.minimum) or (
            key.maximum is not None and number > key.maximum):
        raise BadInput(problem)
    return f"{number:g}" if key.kind == "float" else str(int(number))


def check_settings(family: Family | None, pairs: Iterable[tuple[str, str]], where: str,
                   allocator: str = "") -> tuple[tuple[str, str], ...]:
    """The pairs with canonical values; BadInput (exit 2) naming ``where`` for a key the family does not have (with
    the keys it has) or a value out of range. An open family's unknown keys pass unchanged, for its library to
    judge. ``family`` None: an allocator that takes no settings."""
    pairs = tuple(pairs)
    if not pairs:
        return ()
    if family is None:
        raise BadInput(f"{where}: {allocator or 'this allocator'} takes no settings (settings are known for "
                       f"{', '.join(FAMILIES)}, and for a library file that is one of them)")
    keys = KEYS[family]
    checked = []
    for key_name, value in pairs:
        key = keys.get(key_name)
        if key is None:
            if family in OPEN_FAMILIES:
                checked.append((key_name, value))
                continue
            raise BadInput(f"{where}: {family} has no setting {key_name!r} (allowed: {', '.join(keys)})")
        checked.append((key_name, canonical_value(key, value, where)))
    return tuple(checked)


def environment(family: Family | None, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The variables that give checked settings to the allocator of ``family`` in the measured process."""
    pairs = tuple(pairs)
    if not pairs or family is None:
        return {}
    keys = KEYS[family]
    if family == "jemalloc":
        return {"MALLOC_CONF": ",".join(f"{key}:{value}" for key, value in pairs)}
    if family == "glibc":
        return {"GLIBC_TUNABLES": ":".join(f"{keys[key].variable}={value}" for key, value in pairs)}
    variables = {}
    for key, value in pairs:
        variable = keys[key].variable if key in keys else f"MIMALLOC_{key.upper()}"
        variables[variable] = ("1" if value == "true" else "0") if value in ("true", "false") else value
    return variables


def is_allocator_variable(name: str) -> bool:
    """A variable an allocator reads (MALLOC_CONF, MALLOC_ARENA_MAX, GLIBC_TUNABLES, TCMALLOC_*, MIMALLOC_*)."""
    return name.startswith(ALLOCATOR_VARIABLE_PREFIXES)


def shown_environment(variables: Mapping[str, str]) -> str:
    """``LD_PRELOAD=... MALLOC_CONF=...`` as a shell would take it."""
    import shlex

    return " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())


def describe_keys(family: Family) -> list[tuple[str, str, str]]:
    """(key, allowed values, meaning) of each setting of a family, for docs and --help."""
    return [(key.name, key.describe_range(), key.meaning) for key in KEYS[family].values()]

