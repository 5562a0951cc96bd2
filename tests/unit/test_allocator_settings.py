"""NAME@key:value,...: the syntax, each allocator's keys and ranges, the environment they become, and what a run
refuses before it starts (exit 2 naming the keys an allocator has)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench._errors import BadInput
from workbench.run.environment import preload_environment
from workbench.scenario import load_scenario
from workbench.scenario.trust import untrusted_values
from workbench.toolchain.settings import KEYS, AllocatorSpec, check_settings, environment, parse_spec


def test_a_spec_names_the_allocator_and_its_settings_in_order() -> None:
    spec = parse_spec("jemalloc@background_thread:true,dirty_decay_ms:1000")
    assert spec == AllocatorSpec("jemalloc", (("background_thread", "true"), ("dirty_decay_ms", "1000")))
    assert spec.text() == "jemalloc@background_thread:true,dirty_decay_ms:1000"
    assert parse_spec("glibc") == AllocatorSpec("glibc")
    assert parse_spec("/opt/lib/libmine.so@narenas:2").name == "/opt/lib/libmine.so"


@pytest.mark.parametrize(("text", "message"), [
    ("glibc@", "--allocator glibc@: expected settings after '@' (key:value,key:value)"),
    ("@arena_max:2", "--allocator @arena_max:2: expected an allocator name before '@' (e.g. glibc@arena_max:2)"),
    ("glibc@arena_max", "--allocator glibc@arena_max: 'arena_max' is not a setting (expected key:value, e.g. "
                        "glibc@arena_max:2 or jemalloc@background_thread:true,dirty_decay_ms:1000)"),
    ("glibc@arena_max:2,arena_max:4", "--allocator glibc@arena_max:2,arena_max:4: arena_max is given twice"),
])
def test_a_spec_that_is_not_one_is_refused_naming_the_option(text: str, message: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse_spec(text)
    assert refused.value.message == message


def test_an_unknown_glibc_key_is_refused_with_every_key_glibc_has() -> None:
    with pytest.raises(BadInput) as refused:
        check_settings("glibc", [("arenas", "2")], "--allocator glibc@arenas:2")
    assert refused.value.message == (
        "--allocator glibc@arenas:2: glibc has no setting 'arenas' (allowed: arena_max, arena_test, trim_threshold, "
        "mmap_threshold, mmap_max, top_pad, tcache_count, tcache_max, tcache_unsorted_limit, mxfast, hugetlb, "
        "perturb)")


def test_an_unknown_tcmalloc_key_is_refused_with_its_keys() -> None:
    with pytest.raises(BadInput, match=r"tcmalloc has no setting 'narenas' \(allowed: release_rate, "
                                       r"max_total_thread_cache_bytes, aggressive_decommit, "):
        check_settings("tcmalloc", [("narenas", "2")], "x")


@pytest.mark.parametrize(("family", "key", "value", "expected"), [
    ("glibc", "arena_max", "0", "expected an integer of at least 1"),
    ("glibc", "mmap_threshold", "64MiB", "expected a size from 0 to 32MiB"),  # glibc ignores more, silently
    ("glibc", "tcache_count", "65536", "expected an integer from 0 to 65535"),
    ("glibc", "tcache_max", "2KiB", "expected a size from 0 to 1032"),
    ("glibc", "hugetlb", "3", "expected an integer from 0 to 2"),
    ("tcmalloc", "release_rate", "-1", "expected a number from 0 to 1000"),
    ("tcmalloc", "aggressive_decommit", "maybe", "expected true or false"),
    ("mimalloc", "decommit_delay", "-5", "expected an integer from 0 to 1073741824"),
    ("jemalloc", "narenas", "0", "expected an integer from 1 to 1048576"),
    ("jemalloc", "dirty_decay_ms", "soon", "expected an integer of at least -1"),
    ("jemalloc", "percpu_arena", "always", "expected one of disabled, percpu, phycpu"),
])
def test_a_value_out_of_range_is_refused_with_the_range(family: str, key: str, value: str, expected: str) -> None:
    with pytest.raises(BadInput) as refused:
        check_settings(family, [(key, value)], f"--allocator {family}@{key}:{value}")  # type: ignore[arg-type]
    assert refused.value.message == f"--allocator {family}@{key}:{value}: {key}:{value}: {expected}"


def test_values_become_what_the_allocator_reads() -> None:
    glibc = check_settings("glibc", [("arena_max", "2"), ("trim_threshold", "1MiB")], "x")
    assert glibc == (("arena_max", "2"), ("trim_threshold", "1048576"))
    assert environment("glibc", glibc) == {
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=1048576"}
    tcmalloc = check_settings("tcmalloc", [("release_rate", "10"), ("aggressive_decommit", "yes"),
                                           ("max_total_thread_cache_bytes", "8MiB")], "x")
    assert environment("tcmalloc", tcmalloc) == {"TCMALLOC_RELEASE_RATE": "10", "TCMALLOC_AGGRESSIVE_DECOMMIT": "1",
                                                 "TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES": "8388608"}
    mimalloc = check_settings("mimalloc", [("decommit_delay", "0"), ("eager_commit", "false")], "x")
    assert environment("mimalloc", mimalloc) == {"MIMALLOC_DECOMMIT_DELAY": "0", "MIMALLOC_EAGER_COMMIT": "0"}
    jemalloc = check_settings("jemalloc", [("background_thread", "on"), ("dirty_decay_ms", "1000")], "x")
    assert environment("jemalloc", jemalloc) == {"MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000"}


def test_jemalloc_and_mimalloc_keys_outside_the_table_are_left_to_the_library() -> None:
    # jemalloc has many more options than the table; the MALLOC_CONF trial asks jemalloc itself.
    assert check_settings("jemalloc", [("junk", "false")], "x") == (("junk", "false"),)
    assert check_settings("mimalloc", [("purge_delay", "0")], "x") == (("purge_delay", "0"),)
    assert environment("mimalloc", [("reserve_os_memory", "0")]) == {"MIMALLOC_RESERVE_OS_MEMORY": "0"}


def test_an_allocator_without_settings_refuses_them() -> None:
    with pytest.raises(BadInput, match=r"^x: /lib/libz.so takes no settings"):
        check_settings(None, [("level", "9")], "x", "/lib/libz.so")


def test_every_family_has_its_keys_with_what_they_mean() -> None:
    for family, keys in KEYS.items():
        assert keys, family
        assert all(key.meaning for key in keys.values()), family


def test_the_callers_allocator_variables_never_reach_the_measured_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("MALLOC_ARENA_MAX", "1"), ("MALLOC_CONF", "narenas:1"), ("TCMALLOC_RELEASE_RATE", "0"),
                        ("MIMALLOC_VERBOSE", "1"), ("MALLOC_TOP_PAD_", "1"),
                        ("GLIBC_TUNABLES", "glibc.malloc.arena_max=1:glibc.cpu.hwcaps=-AVX2")):
        monkeypatch.setenv(name, value)
    env = preload_environment([], allocator_variables={"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"})
    assert not any(k.startswith(("MALLOC_", "TCMALLOC_", "MIMALLOC_")) for k in env)
    # The caller's other tunables stay; its malloc ones are replaced by the run's.
    assert env["GLIBC_TUNABLES"] == "glibc.cpu.hwcaps=-AVX2:glibc.malloc.arena_max=4"


def _scenario(tmp_path: Path, allocator: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ndescription: d\nallocator: '{allocator}'\nsteps: [gc]\n")
    return path


def test_a_scenario_names_its_allocator_with_settings(tmp_path: Path) -> None:
    assert load_scenario(_scenario(tmp_path, "glibc@arena_max:2")).allocator == "glibc@arena_max:2"


def test_a_scenarios_settings_out_of_range_are_refused_at_their_line(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "glibc@arena_max:0")
    with pytest.raises(BadInput) as refused:
        load_scenario(path)
    assert refused.value.message == (f"{path}:3: allocator: 'glibc@arena_max:0': arena_max:0: expected an integer "
                                     "of at least 1")
    path = _scenario(tmp_path, "glibc@arena_max")
    with pytest.raises(BadInput) as refused:
        load_scenario(path)
    assert refused.value.message.startswith(f"{path}:3: allocator: 'glibc@arena_max': 'arena_max' is not a setting "
                                            "(expected key:value")


def test_a_scenario_may_not_send_jemalloc_profiles_elsewhere_through_its_allocator(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario(tmp_path, "jemalloc@prof:true,prof_prefix:/tmp/elsewhere"))
    found = untrusted_values(scenario)
    assert [(u.field, u.value) for u in found] == [("allocator", "prof_prefix:/tmp/elsewhere")]
    assert untrusted_values(scenario, allocator_from_cli=True) == []


def test_every_key_is_documented_with_its_range() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "allocators.md").read_text()
    for keys in KEYS.values():
        for key in keys.values():
            assert f"| `{key.name}` | {key.describe_range()} |" in docs, key.name
