"""``workbench build [ALLOCATOR]``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench._errors import BadInput
from workbench.toolchain.jemalloc import DEFAULT_CONFIGURE_ARGS, build_jemalloc

_FROM_THE_SYSTEM = "tcmalloc, mimalloc come from the system (apt-get install libtcmalloc-minimal4 / libmimalloc2.0)"


def build(
    allocator: Annotated[str, typer.Argument(help="The allocator to build; only jemalloc is built from source.")]
    = "jemalloc",
    version: Annotated[
        Optional[str], typer.Option(help="The jemalloc release, e.g. 5.3.0 (default: the one Debian's source has).")
    ] = None,
    configure: Annotated[
        Optional[str],
        typer.Option(help=f"Arguments for ./configure, as one string (default: {' '.join(DEFAULT_CONFIGURE_ARGS)!r})."),
    ] = None,
    source: Annotated[
        Optional[Path], typer.Option(help="A jemalloc release tarball or its unpacked directory (default: Debian's).")
    ] = None,
) -> None:
    """Build jemalloc from its source release into the per-user cache, or show the build already cached.

    Without --source: Debian's jemalloc source package, fetched by apt-get with a private state (no root needed).

    A build is reused while its recipe, configure arguments and source are the same and its library is unchanged.

    Exit codes: 0 ok, 2 bad input or no source to be had, 3 the build failed (the log's last lines are shown).
    """
    if allocator != "jemalloc":
        raise BadInput(f"{allocator}: only jemalloc is built from source; {_FROM_THE_SYSTEM}")
    try:
        configure_args = DEFAULT_CONFIGURE_ARGS if configure is None else tuple(shlex.split(configure))
    except ValueError as exc:
        raise BadInput(f"--configure {configure!r}: {exc}") from None
    if source is not None and not source.exists():
        raise BadInput(f"--source {source}: no such file or directory")
    built, rebuilt = build_jemalloc(version, configure_args, source)
    rows = [
        ("library", str(built.library)),
        ("version", built.version),
        ("configure", shlex.join(built.configure_args)),
        ("sha256", built.library_sha256),
        ("source", built.source),
        ("source sha256", built.source_sha256),
        ("status", "built" if rebuilt else "cached"),
    ]
    for name, value in rows:
        typer.echo(f"{name + ':':<15}{value}")
