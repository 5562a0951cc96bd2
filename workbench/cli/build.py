"""``workbench build [jemalloc|kernels]``."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench._errors import BadInput
from workbench._resources import jvm_project_dir
from workbench.toolchain.jemalloc import DEFAULT_CONFIGURE_ARGS, build_jemalloc
from workbench.toolchain.maven import build_kernels, kernels_entry, project_hash

_FROM_THE_SYSTEM = "tcmalloc, mimalloc come from the system (apt-get install libtcmalloc-minimal4 / libmimalloc2.0)"
KERNELS = "kernels"


def _echo_rows(rows: list[tuple[str, str]]) -> None:
    for name, value in rows:
        typer.echo(f"{name + ':':<15}{value}")


def _build_kernels(classpath_only: bool) -> None:
    classpath, rebuilt = build_kernels()
    if classpath_only:
        typer.echo(os.pathsep.join(classpath))
        return
    _echo_rows([
        ("jar", classpath[0]),
        ("dependencies", f"{len(classpath) - 1} jars"),
        ("cache entry", str(kernels_entry())),
        ("project", str(jvm_project_dir())),
        ("project hash", project_hash(jvm_project_dir())),
        ("status", "built" if rebuilt else "cached"),
    ])


def build(
    what: Annotated[
        str, typer.Argument(help="What to build: jemalloc (from source), or kernels (the Java kernels, with Maven).")
    ] = "jemalloc",
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
    classpath: Annotated[
        bool, typer.Option("--classpath", help="With kernels: print only the classpath, for java -cp \"$(...)\".")
    ] = False,
) -> None:
    """Build jemalloc from its source release, or the Java kernels with Maven, into the per-user cache, or show the build already cached.

    jemalloc without --source: Debian's jemalloc source package, fetched by apt-get with a private state (no root needed).

    A jemalloc build is reused while its recipe, configure arguments and source are the same and its library is unchanged.

    kernels: the jvm/ Maven project, reused while its pom and sources are the same; with --classpath, only the classpath is printed, on one line: java -cp "$(workbench build kernels --classpath)" ...

    Exit codes: 0 ok, 2 bad input or no source to be had, 3 the build failed (the log's last lines are shown).
    """
    if what == KERNELS:
        given = [name for name, value in (("--version", version), ("--configure", configure), ("--source", source))
                 if value is not None]
        if given:
            raise BadInput(f"{', '.join(given)}: only for building jemalloc, not the Java kernels")
        _build_kernels(classpath)
        return
    if classpath:
        raise BadInput(f"--classpath: only with `workbench build {KERNELS}`")
    if what != "jemalloc":
        raise BadInput(f"{what}: only jemalloc is built from source; {_FROM_THE_SYSTEM}")
    try:
        configure_args = DEFAULT_CONFIGURE_ARGS if configure is None else tuple(shlex.split(configure))
    except ValueError as exc:
        raise BadInput(f"--configure {configure!r}: {exc}") from None
    if source is not None and not source.exists():
        raise BadInput(f"--source {source}: no such file or directory")
    built, rebuilt = build_jemalloc(version, configure_args, source)
    _echo_rows([
        ("library", str(built.library)),
        ("version", built.version),
        ("configure", shlex.join(built.configure_args)),
        ("sha256", built.library_sha256),
        ("source", built.source),
        ("source sha256", built.source_sha256),
        ("status", "built" if rebuilt else "cached"),
    ])
