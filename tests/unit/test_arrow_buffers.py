"""``--profile-buffers`` on fabricated records: the worker's ledger lines, each buffer's step from Arrow's own time,
the join by address (the reader's) and by stack when no malloc holds the address."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_callsites import ALLOCATE, POOL, _recording, _snapshot
from workbench.protocol.callsites import RecordedBuffer, RecordedSite
from workbench.report.arrow_buffers import allocated_at, join_buffers, read_ledgers, read_step_marks
from workbench.report.callsites import classify

MIB = 1024 * 1024
ARROW_STACK = [*ALLOCATE, "org.apache.arrow.memory.BaseAllocator.buffer",
               "org.apache.arrow.memory.util.HistoricalLog$Event.<init>"]


def _files(tmp_path: Path) -> tuple[Path, Path]:
    ledgers = tmp_path / "arrow-buffers.tsv"
    frames = ";".join(ARROW_STACK)
    ledgers.write_text(f"open\tROOT\t7\t{4 * MIB}\t5000\t3\t250\t{frames}\n"
                       f"open\tchild\t8\t{4 * MIB}\t9000\t1\t350\t{frames}\n"
                       "open\tcut short\n")  # a dying worker's last line
    marks = tmp_path / "marks.tsv"
    marks.write_text("step\t0\t100\t0\nstep\t1\t200\t0\nstep\t2\t300\t0\nsnapshot\topen\t400\t0\n")
    return ledgers, marks


def test_each_ledger_gets_arrows_step_and_a_call_site_by_address_or_stack(tmp_path: Path) -> None:
    ledgers_file, marks_file = _files(tmp_path)
    ledgers = read_ledgers(ledgers_file)
    assert [(entry.ledger, entry.allocator, entry.buffers, entry.created_ns) for entry in ledgers] == \
        [(7, "ROOT", 3, 250), (8, "child", 1, 350)]
    assert read_step_marks(marks_file) == [(100, 0), (200, 1), (300, 2)]
    recording = _recording(("open", [RecordedSite(stack=0, bytes=8 * MIB, count=2, steps={"1": 4 * MIB,
                                                                                            "2": 4 * MIB})]))
    # The reader found ledger 7 in a malloc of the pool's stack (step 1); ledger 8's address in none.
    recording.snapshots[0] = type(recording.snapshots[0])(
        **{**recording.snapshots[0].__dict__, "buffers": [
            RecordedBuffer(ledger=7, stack=0, step=1, chunk_address=4096, chunk_bytes=4 * MIB + 18),
            RecordedBuffer(ledger=8)]})
    by_label, _ = classify(recording, [_snapshot("open", 8 * MIB)], {1: "allocate", 2: "allocate"},
                           arrow_leaked=False, collapsed={})
    joined = join_buffers(by_label, recording, ledgers, read_step_marks(marks_file), {1: "allocate", 2: "allocate"})
    buffers = joined["open"].arrow_buffers
    assert buffers is not None
    assert [(b.ledger, b.step, b.step_kind, b.join, b.native_step, b.chunk_bytes) for b in buffers] == \
        [(7, 1, "allocate", "address", 1, 4 * MIB + 18), (8, 2, "allocate", "stack", None, None)]
    assert {b.call_site for b in buffers} == {"PoolArena$DirectArena.newChunk under BaseFixedWidthVector.allocateNew"}
    assert {b.call_site_owner for b in buffers} == {"arrow-open"}
    assert POOL.frames[0] == ARROW_STACK[0]


def test_allocated_at_skips_arrows_memory_package() -> None:
    assert allocated_at(ARROW_STACK) == "BaseFixedWidthVector.allocateNew"
    assert allocated_at([]) == "?"


def test_a_missing_file_lists_nothing(tmp_path: Path) -> None:
    assert read_ledgers(tmp_path / "none.tsv") == [] and read_step_marks(tmp_path / "none.tsv") == []


def test_profile_buffers_turns_on_profiling_and_arrows_debug_allocator() -> None:
    from workbench.run.scenario import RunRequest, prepare

    plain = prepare(RunRequest(scenario="arrow-intvector", allocator="glibc"))
    assert plain.profile_interval is None and not plain.profile_buffers
    assert "-Darrow.memory.debug.allocator=true" not in plain.jvm_options
    run = prepare(RunRequest(scenario="arrow-intvector", allocator="glibc", profile_buffers=True))
    assert run.profile_buffers and run.profile_interval == 256 * 1024  # --profile implied, at its default
    assert run.jvm_options.count("-Darrow.memory.debug.allocator=true") == 1


def test_the_scenario_key_profile_buffers_is_the_same(tmp_path: Path) -> None:
    from workbench.run.scenario import RunRequest, prepare

    source = Path(__file__).parents[2] / "scenarios" / "intvector-open-vectors.yaml"
    scenario = tmp_path / "buffers.yaml"
    scenario.write_text(source.read_text().replace("profile: native", "profile: buffers"))
    run = prepare(RunRequest(scenario=str(scenario), allocator="glibc", trust=True))
    assert run.profile_buffers and run.profile_interval is not None
    assert "-Darrow.memory.debug.allocator=true" in run.jvm_options
