"""``--profile``: native call sites from async-profiler in real runs, classified against Arrow's accounting."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import JDK25, ROOT, by_label, run_json
from tests.integration.test_html import _open, browser  # noqa: F401 (the browser fixture)

pytestmark = [pytest.mark.jvm, pytest.mark.slow]
MIB = 1024 * 1024


def _arrow_sites(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """Arrow's buffers under allocateNew (not a JIT compilation or a class loaded under it: the JVM's)."""
    return [s for s in snapshot["call_sites"]["sites"] if s["owner"] != "jvm"
            and any(f == "org.apache.arrow.vector.BaseFixedWidthVector.allocateNew" for f in s["frames"])]


def _pool_chunk(snapshot: dict[str, Any]) -> dict[str, Any]:
    sites = [s for s in _arrow_sites(snapshot) if any(f.startswith("io.netty.buffer.PoolArena") for f in s["frames"])]
    assert len(sites) == 1, snapshot["call_sites"]
    return sites[0]


def _check_netty_chunk(report: dict[str, Any]) -> None:
    snapshots = by_label(report)
    allocated = _pool_chunk(snapshots["allocated"])
    assert allocated["bytes"] >= 4 * MIB and allocated["count"] == 1
    assert allocated["step_kind"] == "allocate" and allocated["arrow_accounted_bytes"] == 524288
    closed = _pool_chunk(snapshots["allocator-closed"])
    assert closed["frames"] == allocated["frames"] and closed["bytes"] == allocated["bytes"]
    assert (closed["owner"], closed["arrow_accounted_bytes"], closed["delta_bytes"]) == ("pool-retained", 0, 0)


def test_netty_chunk_under_allocate_new_is_pool_retained_after_close(tmp_path: Path) -> None:
    report = run_json(tmp_path, "arrow-intvector", "--profile", "--hold", "0", "--out", str(tmp_path / "run"))
    _check_netty_chunk(report)
    profile = report["profile"]
    assert profile["tool"] == "async-profiler 4.2" and profile["error"] is None and profile["leaks"] == []
    assert profile["marks"] == profile["marks_on_recording_clock"] == 20  # 14 steps and 6 snapshots
    assert any("-agentpath:" in option and "event=nativemem" in option for option in report["jvm"]["options"])
    # Every live stack of a snapshot, collapsed, in the run directory: the chunk with its exact bytes.
    collapsed = (tmp_path / "run" / "profile" / "collapsed" / "allocator-closed.txt").read_text()
    assert any(line.endswith(" 4194304") and "PoolArena$DirectArena.newChunk" in line
               for line in collapsed.splitlines())


def test_unsafe_manager_buffer_is_exact_and_gone_after_close(tmp_path: Path) -> None:
    scenario = tmp_path / "unsafe.yaml"
    scenario.write_text((ROOT / "scenarios" / "arrow-intvector.yaml").read_text()
                        .replace("allocation_manager: netty", "allocation_manager: unsafe"))
    report = run_json(tmp_path, str(scenario), "--profile", "--hold", "0")
    snapshots = by_label(report)
    [allocated] = _arrow_sites(snapshots["allocated"])
    assert (allocated["bytes"], allocated["count"], allocated["owner"]) == (524288, 1, "arrow-open")
    assert allocated["arrow_accounted_bytes"] == 524288 and allocated["detail"] == "UnsafeAllocationManager"
    for label in ("vector-closed", "allocator-closed"):
        assert _arrow_sites(snapshots[label]) == []
        assert "arrow-open" not in snapshots[label]["call_sites"]["owners"]
    assert any(s["delta_bytes"] == -524288 for s in snapshots["vector-closed"]["call_sites"]["growth"])


def test_profile_interval_zero_records_every_malloc(tmp_path: Path) -> None:
    report = run_json(tmp_path, "arrow-intvector", "--profile-interval", "0", "--hold", "0")
    assert report["profile"]["interval_bytes"] == 0
    _check_netty_chunk(report)
    # Every malloc: the small ones are there with their own sizes, not as a multiple of an interval.
    sizes = {s["bytes"] for snap in report["snapshots"] for s in snap["call_sites"]["sites"]}
    assert any(size % 4096 for size in sizes)


@pytest.mark.skipif(not JDK25.is_dir(), reason=f"no JDK 25 installed ({JDK25})")
def test_jdk25_records_the_same_chunk(tmp_path: Path) -> None:
    report = run_json(tmp_path, "arrow-intvector", "--profile", "--hold", "0", "--java-home", str(JDK25))
    assert report["jvm"]["version"].startswith("25")
    _check_netty_chunk(report)


def _exec_profiled(tmp_path: Path, java: str, *options: str) -> dict[str, Any]:
    """`exec --profile` on ProfiledMain under ``java``: checks what does not depend on the JDK, returns the report."""
    from tests.integration.conftest import run_workbench
    from workbench.toolchain.maven import kernels_classpath

    classpath = kernels_classpath()
    classes = tmp_path / "classes"
    subprocess.run(["javac", "--release", "17", "-d", str(classes), "-cp", ":".join(classpath),
                    str(ROOT / "tests" / "integration" / "programs" / "ProfiledMain.java")], check=True)
    out = tmp_path / "run"
    result = run_workbench("exec", "--profile", "--quiet", "--out", str(out), "--", java,
                           "--add-opens=java.base/java.nio=ALL-UNNAMED", *options, "-cp",
                           ":".join([str(classes), *classpath]), "ProfiledMain")
    assert result.returncode == 0, result.stderr
    assert "kept 3333333" in result.stdout
    assert "Profiling started" not in result.stdout  # async-profiler speaks into profile/async-profiler.log
    assert (out / "profile" / "async-profiler.log").read_text().strip() == "Profiling started"
    report = json.loads((out / "report.json").read_text())
    assert report["profile"]["error"] is None
    exit_sites = by_label(report)["exit"]["call_sites"]["sites"]
    # The kept buffer: its own frames, its exact size (Unsafe rounds a malloc up to 8 bytes), a direct buffer.
    kept = [s for s in exit_sites if "ProfiledMain.keep" in s["frames"]]
    assert [(s["bytes"], s["count"], s["owner"], s["name"]) for s in kept] == \
        [(3_333_336, 1, "direct-buffer", "ProfiledMain.keep under ProfiledMain.main")]
    assert kept[0]["frames"][0].endswith("ProfiledMain.main") or "ProfiledMain.main" in kept[0]["frames"]
    # The vector was closed before the end: no Arrow buffer of its is left.
    assert not [s for s in exit_sites if s["owner"] == "arrow-open"]
    return report


def test_exec_profile_gives_call_sites_under_the_programs_own_main(tmp_path: Path) -> None:
    report = _exec_profiled(tmp_path, "java")
    assert report["jvm"]["version"].startswith("17")


@pytest.mark.skipif(not JDK25.is_dir(), reason=f"no JDK 25 installed ({JDK25})")
def test_exec_profile_on_jdk25_gives_the_same_call_site(tmp_path: Path) -> None:
    report = _exec_profiled(tmp_path, str(JDK25 / "bin" / "java"), "--sun-misc-unsafe-memory-access=allow",
                            "-Dio.netty.tryReflectionSetAccessible=true")
    assert report["jvm"]["version"].startswith("25")
    # NMT's header is taken off on JDK 25 too (measured: 18 bytes, as on 17), so the kept buffer reads exact.
    assert report["profile"]["nmt_header_bytes"] == 18


def test_report_html_has_a_flame_graph_per_snapshot_and_fetches_nothing(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    out = tmp_path / "run"
    run_json(tmp_path, "arrow-intvector", "--profile", "--hold", "0", "--out", str(out))
    page = out / "report.html"
    assert _open(browser, page) == [page.as_uri()]
    canvas = browser.find_element(By.ID, "flame-canvas")
    assert canvas.size["height"] > 10 * 18  # the chunk's stack is deeper than ten frames
    chunk = "io.netty.buffer.PoolArena$DirectArena.newChunk"
    assert browser.execute_script(
        f"return JSON.parse(document.getElementById('flame-data').textContent).frames.includes('{chunk}')")
    select = Select(browser.find_element(By.ID, "flame-snapshot"))
    assert [o.text for o in select.options] == ["baseline", "allocated", "filled", "held", "vector-closed",
                                                "allocator-closed"]
    select.select_by_visible_text("allocated")
    visible = [t for t in browser.find_elements(By.CSS_SELECTOR, "#call-sites .site-table") if t.is_displayed()]
    assert [t.get_attribute("data-label") for t in visible] == ["allocated"]
    assert "PoolArena$DirectArena.newChunk under BaseFixedWidthVector.allocateNew" in visible[0].text
    assert browser.find_element(By.ID, "flame-info").text.endswith("MiB live")
