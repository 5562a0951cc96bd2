"""What `workbench tune` searches: per allocator, the values each setting may take (``default`` leaves it unset).

A space file is YAML, one mapping per allocator name::

    glibc:
      arena_max: [default, 2, 4]
    jemalloc:
      background_thread: [default, true]
      dirty_decay_ms: [default, 0, 1000]
    tcmalloc: {}          # its defaults only

Every value is checked as a run checks it (toolchain.settings) before any trial starts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from workbench._errors import BadInput
from workbench._files import NotRead, read_regular
from workbench.toolchain.allocators import NAMES, SYSTEM_ALLOCATORS, find_system_allocator
from workbench.toolchain.settings import AllocatorSpec, Family, check_settings, family_of_backend

DEFAULT = "default"  # a setting's value that leaves it to the allocator
PARAMETER = "allocator"  # the study's parameter that picks the allocator; each setting is "<allocator>.<key>"
MAX_SPACE_BYTES = 64 << 10

# The settings that matter for a JVM with native memory, per allocator (docs/tune.md says why each).
DEFAULT_SPACE: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "glibc": {"arena_max": (DEFAULT, "1", "2", "4"), "mmap_threshold": (DEFAULT, "131072")},
    "jemalloc": {"background_thread": (DEFAULT, "true"), "dirty_decay_ms": (DEFAULT, "0", "1000"),
                 "narenas": (DEFAULT, "2")},
    "tcmalloc": {"release_rate": (DEFAULT, "10"), "aggressive_decommit": (DEFAULT, "true")},
    "mimalloc": {"decommit_delay": (DEFAULT, "0"), "eager_commit": (DEFAULT, "false")},
}


@dataclass(frozen=True)
class Space:
    """Allocator name -> setting -> the values tried, in order (canonical; ``default`` first when present)."""

    allocators: dict[str, dict[str, list[str]]]

    def configurations(self) -> Iterator[AllocatorSpec]:
        """Every combination, allocator by allocator: the grid."""
        for name, keys in self.allocators.items():
            for values in itertools.product(*keys.values()):
                yield AllocatorSpec(name, tuple((k, v) for k, v in zip(keys, values) if v != DEFAULT))

    def size(self) -> int:
        total = 0
        for keys in self.allocators.values():
            count = 1
            for values in keys.values():
                count *= len(values)
            total += count
        return total

    def params(self, spec: AllocatorSpec) -> dict[str, str]:
        """The study's parameters for one configuration (each setting of its allocator, ``default`` included)."""
        given = dict(spec.settings)
        return {PARAMETER: spec.name, **{f"{spec.name}.{key}": given.get(key, DEFAULT)
                                          for key in self.allocators[spec.name]}}

    def spec(self, params: Mapping[str, object]) -> AllocatorSpec:
        """The configuration of a trial's parameters."""
        name = str(params[PARAMETER])
        return AllocatorSpec(name, tuple((key, str(params[f"{name}.{key}"])) for key in self.allocators[name]
                                         if str(params[f"{name}.{key}"]) != DEFAULT))

    def to_json(self) -> dict[str, dict[str, list[str]]]:
        return {name: {key: list(values) for key, values in keys.items()} for name, keys in self.allocators.items()}


def _family(name: str) -> Family | None:
    backend = SYSTEM_ALLOCATORS[name].backend if name in SYSTEM_ALLOCATORS else name
    return family_of_backend(backend)


def build_space(raw: Mapping[str, object], where: str) -> Space:
    """A space from its mapping (a file's, or the default's); BadInput naming ``where``, the allocator and the key
    for anything a run would refuse. glibc is always in it: the default it is measured against."""
    if not isinstance(raw, Mapping) or not raw:
        raise BadInput(f"{where}: expected a mapping of allocator names ({', '.join(NAMES)}) to their settings")
    allocators: dict[str, dict[str, list[str]]] = {}
    for name, keys in raw.items():
        if not isinstance(name, str) or name not in NAMES:
            raise BadInput(f"{where}: {name!r}: expected an allocator name ({', '.join(NAMES)})")
        if keys is None:
            keys = {}
        if not isinstance(keys, Mapping):
            raise BadInput(f"{where}: {name}: expected a mapping of settings to lists of values, e.g. "
                           "arena_max: [default, 2]")
        family = _family(name)
        checked: dict[str, list[str]] = {}
        for key, values in keys.items():
            values = values if isinstance(values, (list, tuple)) else [values]
            if not values:
                raise BadInput(f"{where}: {name}.{key}: expected at least one value")
            canonical: list[str] = []
            for value in values:
                text = DEFAULT if value is None or str(value) == DEFAULT else \
                    str(value).lower() if isinstance(value, bool) else str(value)
                if text != DEFAULT:
                    text = check_settings(family, [(str(key), text)], f"{where}: {name}", name)[0][1]
                if text in canonical:
                    raise BadInput(f"{where}: {name}.{key}: {value!r} is listed twice")
                canonical.append(text)
            checked[str(key)] = canonical
        allocators[name] = checked
    if "glibc" not in allocators:
        allocators = {"glibc": {}, **allocators}
    return Space(allocators)


def default_space(names: list[str] | None = None) -> Space:
    """The default space, for ``names`` (default: every allocator installed here)."""
    if names is None:
        names = [name for name in DEFAULT_SPACE if name not in SYSTEM_ALLOCATORS or find_system_allocator(name)]
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        raise BadInput(f"--allocators: {unknown[0]!r}: expected allocator names ({', '.join(NAMES)})")
    return build_space({name: {k: list(v) for k, v in DEFAULT_SPACE.get(name.removeprefix("system:"), {}).items()}
                        for name in names}, "the default space")


def load_space(path: Path) -> Space:
    """A space file; BadInput naming the file for anything unreadable or refused."""
    try:
        text = read_regular(path, MAX_SPACE_BYTES).decode("utf-8", errors="replace")
    except NotRead as problem:
        detail = {"error": problem.detail, "not-regular": "not a regular file",
                  "size": f"larger than {MAX_SPACE_BYTES} bytes"}[problem.kind]
        raise BadInput(f"--space {path}: cannot read it ({detail})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BadInput(f"--space {path}: not YAML ({str(error).splitlines()[0]})") from None
    return build_space(raw, f"--space {path}")
