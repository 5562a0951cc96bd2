"""Where the bundled scenarios and the jvm/ project are, installed from a wheel or run from a checkout."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# A wheel carries them inside the package (see pyproject's force-include); a checkout has them at the root.
_BUNDLED = _PACKAGE / "_bundled"
_CHECKOUT = _PACKAGE.parent


def _resource(name: str) -> Path:
    bundled = _BUNDLED / name
    return bundled if bundled.is_dir() else _CHECKOUT / name


def scenarios_dir() -> Path:
    """The folder of bundled scenario files."""
    return _resource("scenarios")


def jvm_project_dir() -> Path:
    """The Maven project of the Java kernels (read only: it is built in the cache)."""
    return _resource("jvm")


def native_dir() -> Path:
    """The native build recipes (native/)."""
    return _resource("native")


def cache_dir() -> Path:
    """The per-user cache: ``$XDG_CACHE_HOME/workbench`` or ``~/.cache/workbench``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "workbench"
