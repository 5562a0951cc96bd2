"""``--profile-buffers``: Arrow's debug allocator names the buffers still open at each snapshot, joined by address
with the native call site that holds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import JDK17, JDK25, by_label, run_json
from workbench.report.load import load_report
from workbench.report.text import findings

pytestmark = [pytest.mark.jvm, pytest.mark.slow]
FOUR_MIB = 4 * 1024 * 1024
CHUNK_SITE = "PoolArena$DirectArena.newChunk under BaseFixedWidthVector.allocateNew"


@pytest.mark.parametrize("jdk", ["17", "25"])
def test_the_twenty_open_vectors_are_named_with_their_step_stack_and_call_site(tmp_path: Path, jdk: str) -> None:
    home = {"17": JDK17, "25": JDK25}[jdk]
    if not home.is_dir():
        pytest.skip(f"no JDK {jdk} installed ({home})")
    out = tmp_path / "run"
    report = run_json(tmp_path, "intvector-open-vectors", "--profile-buffers", "--java-home", str(home), "--out",
                      str(out))
    assert report["jvm"]["version"].startswith(jdk)
    # It changes what is measured (Arrow's logs are on the Java heap): the report says it is on.
    assert report["profile"]["arrow_debug"] is True
    assert "-Darrow.memory.debug.allocator=true" in report["jvm"]["options"]
    snapshots = by_label(report)
    assert snapshots["baseline"]["call_sites"]["arrow_buffers"] == []
    ledgers = None
    for label in ("twenty-open", "churned", "after-gc"):
        buffers = snapshots[label]["call_sites"]["arrow_buffers"]
        # The 20 open vectors (steps 2-21), one 4 MiB ledger each; none of the 180 closed in step 23.
        assert [b["step"] for b in buffers] == list(range(2, 22)), label
        assert {(b["bytes"], b["allocator"], b["step_kind"], b["join"], b["call_site"], b["call_site_owner"])
                for b in buffers} == {(FOUR_MIB, "ROOT", "allocate", "address", CHUNK_SITE, "arrow-open")}
        assert sum(b["bytes"] for b in buffers) == snapshots[label]["arrow"]["allocated_bytes"] == 83_886_080
        # Joined by address: the malloc holding each is its own 4 MiB chunk, malloc'd in the buffer's own step
        # (NMT's 18-byte header on top).
        assert all(b["native_step"] == b["step"] and b["chunk_bytes"] == FOUR_MIB + 18 for b in buffers)
        for buffer in buffers:
            # The Java stack Arrow recorded when it allocated the buffer, from the worker's kernel down.
            assert buffer["frames"][0] == "workbench.jvm.VectorKernels.allocate"
            assert "org.apache.arrow.vector.BaseFixedWidthVector.allocateNew" in buffer["frames"]
            assert buffer["allocated_at"] == "BaseValueVector.allocFixedDataAndValidityBufs"
        # The same 20 ledgers at each snapshot.
        names = [(b["ledger"], b["address"]) for b in buffers]
        assert ledgers is None or names == ledgers
        ledgers = names
    assert len({address for _, address in ledgers or []}) == 20
    # The worker's own Python objects (PYTHONMALLOC=malloc) are the workbench's, not the application's.
    for snapshot in report["snapshots"]:
        assert snapshot["call_sites"]["owners"].get("workbench", 0) > 0
        assert not [s for s in snapshot["call_sites"]["sites"] if s["owner"] == "other"
                    and any(f in ("PyUnicode_New", "new_keys_object", "PyType_GenericAlloc") for f in s["frames"])]
    assert (out / "profile" / "arrow-buffers.tsv").read_text().count("\n") == 60
    # report.html: a table per snapshot that listed buffers, with the snapshot's call sites (baseline: none open).
    page = (out / "report.html").read_text()
    assert page.count('<table class="arrow-buffers">') == 3 and "Open Arrow buffers at 'baseline': 0" in page
    assert "Open Arrow buffers at 'after-gc': 20" in page and page.count("<td>address</td>") == 60
    assert any(line.startswith("Arrow's debug allocator (--profile-buffers") and "20 open buffer(s) at 'after-gc'"
               in line and f"held by the call site {CHUNK_SITE} (joined by address)" in line
               for line in findings(load_report(out)))


def test_without_profile_buffers_no_buffers_are_listed(tmp_path: Path) -> None:
    report = run_json(tmp_path, "arrow-intvector", "--profile", "--hold", "0")
    assert report["profile"]["arrow_debug"] is False
    assert not any("arrow.memory.debug" in option for option in report["jvm"]["options"])
    assert all(s["call_sites"]["arrow_buffers"] is None for s in report["snapshots"])


def test_a_buffer_inside_nettys_chunk_is_joined_with_the_chunk(tmp_path: Path) -> None:
    report = run_json(tmp_path, "arrow-intvector", "--profile-buffers", "--hold", "0")
    snapshots = by_label(report)
    for label in ("allocated", "filled", "held"):
        [buffer] = snapshots[label]["call_sites"]["arrow_buffers"]
        # Arrow's 512 KiB buffer lies in the pool's 4 MiB chunk (malloc'd in the same step): the chunk's call site,
        # of which Arrow accounts only this buffer, so the rest is the pool's.
        assert (buffer["bytes"], buffer["step"], buffer["join"], buffer["chunk_bytes"], buffer["native_step"]) == \
            (524288, 2, "address", FOUR_MIB + 18, 2)
        assert (buffer["call_site"], buffer["call_site_owner"]) == (CHUNK_SITE, "pool-retained")
    # Closed: Arrow lists nothing, while the pool keeps its chunk.
    for label in ("vector-closed", "allocator-closed"):
        assert snapshots[label]["call_sites"]["arrow_buffers"] == []
    assert snapshots["allocator-closed"]["call_sites"]["owners"]["pool-retained"] == FOUR_MIB
