import pytest

from workbench._errors import BadInput
from workbench.toolchain import allocators
from workbench.toolchain.allocators import resolve_allocator


def test_system_jemalloc_is_found_through_the_linker_cache_with_its_package() -> None:
    choice = resolve_allocator("system:jemalloc")
    assert choice.library is not None and choice.library.name == "libjemalloc.so.2" and choice.library.is_file()
    assert choice.expected_backend == "jemalloc"
    assert choice.provenance.kind == "system" and choice.provenance.package == "libjemalloc2 5.3.0-1"
    assert choice.provenance.library_sha256 is not None and len(choice.provenance.library_sha256) == 64


def test_glibc_preloads_nothing() -> None:
    choice = resolve_allocator("glibc")
    assert choice.library is None and choice.expected_backend == "glibc"


def test_missing_jemalloc_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocators, "_ldconfig_paths", lambda: {})
    with pytest.raises(BadInput, match=r"libjemalloc.so.2 is not installed; install the Debian package libjemalloc2"):
        resolve_allocator("system:jemalloc")


@pytest.mark.parametrize(("name", "soname", "backend"), [
    ("system:tcmalloc", "libtcmalloc_minimal.so.4", "tcmalloc"), ("system:mimalloc", "libmimalloc.so.2", "mimalloc"),
])
def test_other_system_allocators(name: str, soname: str, backend: str) -> None:
    choice = resolve_allocator(name)
    assert choice.library is not None and choice.library.name == soname
    assert choice.expected_backend == backend and choice.provenance.kind == "system"


def test_unknown_allocator_lists_the_names() -> None:
    with pytest.raises(BadInput, match=r"hoard: unknown allocator \(expected one of: jemalloc, system:jemalloc, tcmalloc, system:tcmalloc"):
        resolve_allocator("hoard")
