"""The run pipeline's pieces without a JVM: the preload environment, the preload check, the run directory, exit
codes, validated values and the worker's event lines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench import _own_environment
from workbench._errors import BadInput
from workbench.probes.arrow import ArrowSnapshot
from workbench.protocol import events, layout
from workbench.protocol.provenance import Provenance
from workbench.run.environment import allocator_preload, preload_environment, preload_mismatch
from workbench.run.run_dir import RunDir, run_dir_name
from workbench.run.signals import Interrupted, interrupt_exit_code, program_exit_code
from workbench.toolchain.allocators import AllocatorChoice
from workbench.values import parse_label

JEMALLOC = AllocatorChoice("jemalloc", Path("/cache/libjemalloc.so.2"), "jemalloc", Provenance("built"))
GLIBC = AllocatorChoice("glibc", None, "glibc", Provenance("none"))
OWN = AllocatorChoice("/x/libmine.so", Path("/x/libmine.so"), None, Provenance("file"))


def test_preload_environment_drops_the_callers_allocator_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_PRELOAD", "/caller/libevil.so")
    monkeypatch.setenv("MALLOC_CONF", "narenas:64")
    env = preload_environment([], None)
    assert "LD_PRELOAD" not in env and "MALLOC_CONF" not in env
    assert env["PATH"] == os.environ["PATH"]


def test_preload_environment_keeps_the_order_and_the_conf() -> None:
    env = preload_environment([*allocator_preload(JEMALLOC), Path("/cache/probe.so")], "narenas:2",
                              extra={"ARROW_DEFAULT_MEMORY_POOL": "system"}, python=True)
    assert env["LD_PRELOAD"] == "/cache/libjemalloc.so.2:/cache/probe.so"
    assert env["MALLOC_CONF"] == "narenas:2"
    assert env["ARROW_DEFAULT_MEMORY_POOL"] == "system"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(__file__).resolve().parents[2])
    assert allocator_preload(GLIBC) == []


def test_what_the_workbench_set_for_itself_reaches_its_worker_and_not_a_program(monkeypatch: pytest.MonkeyPatch) \
        -> None:
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    monkeypatch.setattr(_own_environment, "_set_here", set())
    _own_environment.set_own_variables()
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    assert preload_environment([], None, python=True)["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    assert "PYDANTIC_DISABLE_PLUGINS" not in preload_environment([], None)
    # The user's own setting is theirs: kept as it is, and a program inherits it.
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "logfire")
    monkeypatch.setattr(_own_environment, "_set_here", set())
    _own_environment.set_own_variables()
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == "logfire"
    assert preload_environment([], None)["PYDANTIC_DISABLE_PLUGINS"] == "logfire"


def test_preload_mismatch_names_what_was_asked_and_what_answers() -> None:
    error = preload_mismatch(JEMALLOC, "glibc", "/lib/x86_64-linux-gnu/libc.so.6")
    assert error is not None and error.type == "AllocatorMismatch"
    assert error.message == ("asked for jemalloc, but malloc in the process is glibc's "
                             "(/lib/x86_64-linux-gnu/libc.so.6): the preload did not take effect")
    assert preload_mismatch(JEMALLOC, "jemalloc", "/cache/libjemalloc.so.2") is None
    assert preload_mismatch(JEMALLOC, None, None) is None  # nothing detected: no claim either way
    # A user's own library has no expected backend, but malloc must resolve into that very file.
    own = preload_mismatch(OWN, "glibc", "/lib/libc.so.6")
    assert own is not None and own.message == (
        f"asked for {OWN.name}, but malloc in the process resolves into /lib/libc.so.6 (glibc), not {OWN.library}: "
        "the preload did not take effect (the dynamic linker could not preload it, or it does not replace malloc)")
    assert preload_mismatch(OWN, "unknown", str(OWN.library)) is None


def test_exit_codes_follow_the_shell() -> None:
    assert interrupt_exit_code("SIGINT") == 130 and interrupt_exit_code("SIGTERM") == 143
    assert interrupt_exit_code("SIGHUP") == 129
    assert program_exit_code(-11) == 139 and program_exit_code(3) == 3
    error = Interrupted("SIGTERM", "/runs/x")
    assert error.exit_code == 143 and error.message == "interrupted by SIGTERM; the partial report is in /runs/x"


def test_run_dir_claims_a_new_directory_each_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = RunDir.claim("same-name", None), RunDir.claim("same-name", None)
    assert first.path == tmp_path / "runs" / "same-name" and second.path == tmp_path / "runs" / "same-name-2"
    assert first.path.is_absolute() and first.spec == first.path / "worker-spec.json"


def test_run_dir_refuses_a_non_empty_out_and_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="exists and is not an empty directory"):
        RunDir.claim("x", tmp_path / "full")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BadInput, match="is a symbolic link"):
        RunDir.claim("x", tmp_path / "link")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine" and not (tmp_path / "elsewhere").exists()


def test_run_dir_names_are_file_names() -> None:
    name = run_dir_name("my scenario/../x", OWN, "prof_prefix:/tmp/a b")
    assert "/" not in name and " " not in name and name.endswith("-my-scenario-..-x-libmine.so-prof_prefix-tmp-a-b")
    assert run_dir_name("attach-12", None, None).endswith("-attach-12-detected")


def test_raw_files_are_written_whole_under_their_kind(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path)
    path = run_dir.write_raw("smaps", "held", "txt", "7f00-7f01 rw-p\n")
    assert path == tmp_path / "smaps" / "held.txt" and path.read_text() == "7f00-7f01 rw-p\n"
    assert [p.name for p in (tmp_path / "smaps").iterdir()] == ["held.txt"]  # no temporary file left
    with pytest.raises(ValueError):
        layout.raw_path(tmp_path, "../etc", "x", "txt")


@pytest.mark.parametrize("label", ["baseline", "after-gc", "step_2", "v1.2"])
def test_labels_the_scenario_language_accepts(label: str) -> None:
    assert parse_label(label) == label


@pytest.mark.parametrize("label", ["", "..", "../x", "a/b", ".hidden", "-x", "a b", "é", "x" * 129])
def test_labels_that_are_refused(label: str) -> None:
    with pytest.raises(ValueError, match="expected a label"):
        parse_label(label)


def test_worker_events_round_trip_through_one_line() -> None:
    sent = events.SnapshotTaken(label="held", t_ms=12.5, cost_ms=3.25, probe_ms={"arrow": 0.1},
                                arrow=ArrowSnapshot(allocated_bytes=524_288, peak_bytes=524_288,
                                                    requested_bytes=412_500),
                                nmt=None, allocator=None, process=None)
    line = events.encode(sent)
    assert line.endswith("\n") and line.count("\n") == 1
    assert events.decode(line) == sent
    assert events.decode(events.encode(events.Done())) == events.Done()
    assert events.decode(events.encode(events.StepStarted(index=3, step="hold", argument="500 ms"))).index == 3


@pytest.mark.parametrize("line", ['{"event": "snapshot", "label": "x"', '{"event": "nope"}', '[1, 2]',
                                  '{"event": "step", "index": "three", "step": "hold", "argument": null}'])
def test_a_line_that_is_not_an_event_is_refused(line: str) -> None:
    with pytest.raises(events.BadEvent):
        events.decode(line)


def test_probe_and_agent_replies_are_read_into_their_types() -> None:
    from workbench.probes.native_probe import snapshot_from_stats
    from workbench.protocol.replies import BadReply, agent_stats, probe_stats

    stats = probe_stats({"backend": "jemalloc", "pid": 42, "version": "5.3.0", "library": "/c/libjemalloc.so.2",
                         "t_ns": 1, "allocated_bytes": 1_048_577, "active_bytes": 1_064_960, "metadata_bytes": None,
                         "resident_bytes": 2_097_152, "mapped_bytes": 4_194_304, "retained_bytes": 0,
                         "raw": {"stats.allocated": 1_048_577}})
    snapshot = snapshot_from_stats(stats)
    assert (snapshot.backend, snapshot.allocated_bytes, snapshot.metadata_bytes) == ("jemalloc", 1_048_577, None)
    agent = agent_stats({"pid": 7, "t_ms": 900, "nmt": None, "nmt_error": "Native memory tracking is not enabled",
                         "buffer_pools": {"direct": {"count": 1, "memory_used_bytes": 4096,
                                                     "total_capacity_bytes": 4096}},
                         "heap": {"used_bytes": 10, "committed_bytes": 20, "max_bytes": 30},
                         "non_heap": {"used_bytes": 1, "committed_bytes": 2, "max_bytes": -1},
                         "gc": [{"name": "G1 Young Generation", "count": 2, "time_ms": 5}], "threads": 11,
                         "java_version": "17.0.15", "vm_name": "OpenJDK 64-Bit Server VM"})
    assert agent.buffer_pools["direct"].memory_used_bytes == 4096 and agent.gc[0].count == 2
    assert agent.runtime()["heap"] == {"used_bytes": 10, "committed_bytes": 20, "max_bytes": 30}
    with pytest.raises(BadReply, match="the Java agent answered a bad pid"):
        agent_stats({"pid": "seven"})
    with pytest.raises(BadReply, match="not a JSON object"):
        probe_stats([1, 2])
