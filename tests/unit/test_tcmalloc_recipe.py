"""The tcmalloc recipe's view of a source: which trees are gperftools releases, and which version they are."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from workbench._errors import BadInput
from workbench.toolchain.tcmalloc import TCMALLOC, lookup_tcmalloc

CONFIGURE_AC = "AC_PREREQ([2.59])\nAC_INIT([gperftools],[2.10],[gperftools@googlegroups.com])\n"


def _release(root: Path, configure_ac: str = CONFIGURE_AC) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "configure.ac").write_text(configure_ac)
    (root / "src" / "system-alloc.cc").write_text("// TCMalloc_SystemAlloc\n")
    return root


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_the_version_is_read_from_configure_ac() -> None:
    assert TCMALLOC.read_version(CONFIGURE_AC) == "2.10"
    assert TCMALLOC.read_version("AC_INIT([gperftools], [2.15], [x])") == "2.15"
    assert TCMALLOC.read_version("AC_INIT([jemalloc], [5.3.0])") is None


def test_a_release_directory_is_looked_up_without_building(tmp_path: Path) -> None:
    found = lookup_tcmalloc(source=_release(tmp_path / "gperftools-2.10"))
    assert found.built is None and found.damaged is None
    assert not (tmp_path / "cache").exists()  # a lookup writes nothing


def test_a_tarball_of_debians_layout_is_a_release(tmp_path: Path) -> None:
    tree = _release(tmp_path / "gperftools-gperftools-2.10")
    tarball = tmp_path / "google-perftools_2.10.orig.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tree, arcname=tree.name)
    assert lookup_tcmalloc(source=tarball).built is None
    with pytest.raises(BadInput, match=r"^--version 2\.11: source .* is tcmalloc 2\.10$"):
        lookup_tcmalloc("2.11", source=tarball)


def test_a_directory_that_is_not_gperftools_names_what_it_lacks(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match=r"not a tcmalloc release source, it has no configure\.ac and "
                                       r"src/system-alloc\.cc; give a release tarball such as gperftools-2\.10\.tar\.gz"):
        lookup_tcmalloc(source=empty)


def test_configure_ac_without_a_version_is_refused(tmp_path: Path) -> None:
    tree = _release(tmp_path / "gperftools", configure_ac="AC_INIT([gperftools])\n")
    with pytest.raises(BadInput, match=r"its configure\.ac does not give a version number"):
        lookup_tcmalloc(source=tree)


def test_a_prefix_in_the_configure_arguments_is_refused() -> None:
    with pytest.raises(BadInput, match=r"--configure: --prefix is set by the build"):
        lookup_tcmalloc(configure_args=["--enable-minimal", "--prefix=/usr"])
