"""Settings tried with the real allocators before a run (a tiny process each), read back, and in effect in the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import run_workbench
from workbench._errors import BadInput
from workbench.run.environment import check_allocator_settings
from workbench.toolchain.allocators import find_system_allocator, resolve_allocator
from workbench.toolchain.settings import parse_spec

needs_tcmalloc = pytest.mark.skipif(find_system_allocator("system:tcmalloc") is None, reason="tcmalloc is not installed")
needs_mimalloc = pytest.mark.skipif(find_system_allocator("system:mimalloc") is None, reason="mimalloc is not installed")


def _checked(text: str) -> list[tuple[str, str, object]]:
    spec = parse_spec(text)
    settings = check_allocator_settings(resolve_allocator(spec.name), spec, "--allocator")
    return [(s.key, s.asked, s.effective) for s in settings.readback or []]


def test_glibc_reads_its_tunables_back_through_the_dynamic_loader() -> None:
    assert _checked("glibc@arena_max:2,trim_threshold:1MiB,mmap_threshold:128KiB") == [
        ("arena_max", "2", 2), ("trim_threshold", "1048576", 1048576), ("mmap_threshold", "131072", 131072)]


@pytest.mark.parametrize("name", ["tcmalloc", pytest.param("system:tcmalloc", marks=needs_tcmalloc)])
def test_tcmalloc_reads_back_what_its_numeric_properties_report(name: str) -> None:
    # The build of the workbench and Debian's alike.
    assert _checked(f"{name}@max_total_thread_cache_bytes:8MiB,aggressive_decommit:true,release_rate:10") == [
        ("max_total_thread_cache_bytes", "8388608", 8388608), ("aggressive_decommit", "true", True),
        ("release_rate", "10", None)]  # tcmalloc has no C call that reports its release rate


@needs_mimalloc
def test_mimalloc_reads_back_its_options_and_refuses_one_it_does_not_have() -> None:
    assert _checked("mimalloc@decommit_delay:0,eager_commit:false") == [
        ("decommit_delay", "0", 0), ("eager_commit", "false", False)]
    with pytest.raises(BadInput) as refused:
        _checked("mimalloc@purge_delay:0")  # mimalloc 2.1's name; Debian 12 ships 2.0
    assert refused.value.message.startswith("--allocator mimalloc@purge_delay:0: this mimalloc has no option "
                                            "'purge_delay' (its options: show_errors, show_stats, verbose, ")
    assert "decommit_delay" in refused.value.message


def test_a_bad_setting_is_one_line_exit_2_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_workbench("run", "arrow-intvector", "--allocator", "glibc@arena_max:0", "--out", str(out))
    assert result.returncode == 2
    assert result.stderr == ("workbench: --allocator glibc@arena_max:0: arena_max:0: expected an integer of at least "
                             "1\n")
    assert not out.exists()


def test_jemalloc_judges_a_key_it_is_not_known_for_here_with_malloc_conf_beside(tmp_path: Path) -> None:
    result = run_workbench("run", "arrow-intvector", "--allocator", "jemalloc@nonsense:1", "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "workbench: --allocator jemalloc@nonsense:1: jemalloc refuses it (Invalid conf pair: nonsense:1)")
    result = run_workbench("run", "arrow-intvector", "--allocator", "jemalloc@narenas:2", "--malloc-conf", "bogus:3",
                           "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "workbench: --allocator jemalloc@narenas:2 with --malloc-conf bogus:3: jemalloc refuses it (Invalid conf "
        "pair: bogus:3)")
    assert not (tmp_path / "r").exists()


def test_validate_checks_a_scenarios_allocator_settings_with_the_allocator(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\ndescription: d\nallocator: 'glibc@arena_max:2,nonsense:1'\nsteps: [gc]\n")
    result = run_workbench("validate", str(scenario))
    assert result.returncode == 2
    assert "glibc has no setting 'nonsense' (allowed: arena_max, " in result.stderr

