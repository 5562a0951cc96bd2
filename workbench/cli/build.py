"""``workbench build [jemalloc|tcmalloc|mimalloc|kernels]``."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench._errors import BadInput
from workbench._resources import jvm_project_dir
from workbench.toolchain import source_build
from workbench.toolchain.jemalloc import DEFAULT_CONFIGURE_ARGS, JEMALLOC
from workbench.toolchain.maven import build_kernels, kernels_entry, project_hash
from workbench.toolchain.mimalloc import MIMALLOC
from workbench.toolchain.tcmalloc import TCMALLOC

RECIPES = {recipe.name: recipe for recipe in (JEMALLOC, TCMALLOC, MIMALLOC)}
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
        str, typer.Argument(help="What to build: jemalloc, tcmalloc or mimalloc (from source), or kernels (the "
                                 "Java kernels, with Maven).")
    ] = "jemalloc",
    version: Annotated[
        Optional[str], typer.Option(help="The release, e.g. 5.3.0 (default: the one Debian's source has).")
    ] = None,
    configure: Annotated[
        Optional[str],
        typer.Option(help="Arguments for jemalloc's or tcmalloc's ./configure or mimalloc's cmake, as one string "
                          f"(default: {' '.join(DEFAULT_CONFIGURE_ARGS)!r}; tcmalloc "
                          f"{' '.join(TCMALLOC.default_args)!r}; mimalloc {' '.join(MIMALLOC.default_args)!r})."),
    ] = None,
    source: Annotated[
        Optional[Path], typer.Option(help="A release tarball or its unpacked directory (default: Debian's).")
    ] = None,
    classpath: Annotated[
        bool, typer.Option("--classpath", help="With kernels: print only the classpath, for java -cp \"$(...)\".")
    ] = False,
) -> None:
    """Build jemalloc, tcmalloc or mimalloc from its source release, or the Java kernels with Maven, into the per-user cache, or show the build already cached.

    jemalloc, tcmalloc and mimalloc without --source: Debian's source package (jemalloc, google-perftools, mimalloc), fetched by apt-get with a private state (no root needed). Each is patched to keep the address ranges it maps, so that the ledger reads the kernel's residency of their pages; tcmalloc is gperftools' tcmalloc_minimal only; mimalloc is built with statistics (MI_STAT=2). Debian's own libraries stay available as system:jemalloc, system:tcmalloc and system:mimalloc.

    A build is reused while its recipe, patches, arguments and source are the same and its library is unchanged.

    kernels: the jvm/ Maven project, reused while its pom and sources are the same; with --classpath, only the classpath is printed, on one line: java -cp "$(workbench build kernels --classpath)" ...

    Exit codes: 0 ok, 2 bad input or no source to be had, 3 the build failed (the log's last lines are shown).
    """
    if what == KERNELS:
        given = [name for name, value in (("--version", version), ("--configure", configure), ("--source", source))
                 if value is not None]
        if given:
            raise BadInput(f"{', '.join(given)}: only for building jemalloc, tcmalloc or mimalloc, not the Java "
                           "kernels")
        _build_kernels(classpath)
        return
    if classpath:
        raise BadInput(f"--classpath: only with `workbench build {KERNELS}`")
    recipe = RECIPES.get(what)
    if recipe is None:
        raise BadInput(f"{what}: expected one of: {', '.join(RECIPES)} (built from source) or {KERNELS}")
    try:
        configure_args = recipe.default_args if configure is None else tuple(shlex.split(configure))
    except ValueError as exc:
        raise BadInput(f"--configure {configure!r}: {exc}") from None
    if source is not None and not source.exists():
        raise BadInput(f"--source {source}: no such file or directory")
    built, rebuilt = source_build.build(recipe, version, configure_args, source)
    _echo_rows([
        ("library", str(built.library)),
        ("version", built.version),
        ("configure", shlex.join(built.configure_args)),
        ("patches", ", ".join(built.patches) or "none"),
        ("sha256", built.library_sha256),
        ("source", built.source),
        ("source sha256", built.source_sha256),
        ("status", "built" if rebuilt else "cached"),
    ])
