import pytest

from workbench._errors import BadInput
from workbench.build import allocators
from workbench.build.allocators import resolve_allocator


def test_system_jemalloc_is_found_through_the_linker_cache() -> None:
    choice = resolve_allocator("jemalloc")
    assert choice.library is not None and choice.library.name == "libjemalloc.so.2" and choice.library.is_file()
    assert choice.expected_backend == "jemalloc"


def test_glibc_preloads_nothing() -> None:
    choice = resolve_allocator("glibc")
    assert choice.library is None and choice.expected_backend == "glibc"


def test_missing_jemalloc_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocators, "_ldconfig_paths", lambda: {})
    with pytest.raises(BadInput, match=r"libjemalloc.so.2 is not installed; install the Debian package libjemalloc2"):
        resolve_allocator("jemalloc")
