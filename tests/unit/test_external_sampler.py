"""The sampler `exec` and `attach` use, on a real process (a sleeping Python child: no probe, no agent)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from workbench.run.external import ExternalSampler


def sleeping_child() -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "up\n"
    return child


def test_snapshots_taken_before_reading_is_ready_are_completed_in_their_order(tmp_path: Path) -> None:
    child = sleeping_child()
    try:
        sampler = ExternalSampler(child.pid, tmp_path, ready=threading.Event())
        first = sampler.capture("start")
        assert first is not None and first.process.rss_bytes > 0
        sampler.keep(first)
        taken = sampler.take("held")
        assert taken is not None and taken.t_ms >= first.t_ms
        # Kept as read: nothing validated, nothing written, the labels already taken.
        assert sampler.snapshots == [] and not (tmp_path / "smaps").exists()
        assert sampler.has_label("start") and sampler.has_label("held") and not sampler.has_label("end")
        sampler.ready.set()
        sampler.take("end")  # a snapshot once ready completes those before it first
        assert [s["label"] for s in sampler.snapshots] == ["start", "held", "end"]
        assert [s["t_ms"] for s in sampler.snapshots][:2] == [first.t_ms, taken.t_ms]
        assert sorted(p.name for p in (tmp_path / "smaps").iterdir()) == ["end.txt", "held.txt", "start.txt"]
        start = sampler.snapshots[0]
        assert start["process"]["rss_bytes"] == first.process.rss_bytes
        assert start["nmt"] is None and start["allocator"] is None  # no agent, no probe: null, never zeros
    finally:
        child.kill()
        child.wait()


def test_finish_completes_what_is_still_kept(tmp_path: Path) -> None:
    child = sleeping_child()
    try:
        sampler = ExternalSampler(child.pid, tmp_path, ready=threading.Event())
        sampler.take("exit")
        assert sampler.snapshots == []
        sampler.finish()  # at the end, whether or not reading became ready
        assert [s["label"] for s in sampler.snapshots] == ["exit"]
        assert "[heap]" in (tmp_path / "smaps" / "exit.txt").read_text()  # the smaps text the figures came from
    finally:
        child.kill()
        child.wait()
