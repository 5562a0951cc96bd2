"""The timeline: a background thread in the worker samples the cheap fields and appends each sample to disk."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

from workbench._files import appending
from workbench.probes.allocator import Backend, enter_own_arena
from workbench.probes.nmt import parse_summary
from workbench.probes.process_status import StatusFile
from workbench.protocol.samples import make_sample


class Sampler:
    """Every ``interval_ms``: the sampled figures (``workbench.figures.SAMPLE_COLUMNS``); NMT's every ``nmt_every``."""

    def __init__(self, path: Path, interval_ms: int, nmt_every: int, started: float, allocator: Backend,
                 arrow_allocated: Callable[[], int | None], nmt_text: Callable[[], str] | None,
                 current_step: Callable[[], int], exclusive: threading.Lock | None = None) -> None:
        self._path = path
        self._interval = interval_ms / 1000
        self._nmt_every = max(nmt_every, 1)
        self._started = started
        self._allocator = allocator
        self._arrow_allocated = arrow_allocated
        self._nmt_text = nmt_text
        self._current_step = current_step
        # Held while a sample is taken; the snapshots hold it too, so that neither counts the other's allocations
        # (a sample's NMT text alive while a snapshot read `allocated` moved a step by +16.5 KiB, the next by -16.5).
        self._exclusive = exclusive if exclusive is not None else threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="workbench-sampler", daemon=True)
        self.samples = 0
        self.cost_s = 0.0
        self.failure: BaseException | None = None  # what ended the thread early; the run fails with it
        self._status: StatusFile | None = None  # /proc/self/statm, open from the first sample on

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._status is not None:
            self._status.close()

    def _sample(self, count: int) -> dict[str, Any]:
        began = time.perf_counter()
        allocator = self._allocator.snapshot()
        t_ms = round((began - self._started) * 1000, 3)
        step = self._current_step()
        nmt = parse_summary(self._nmt_text()) if self._nmt_text is not None and count % self._nmt_every == 0 else None
        if self._status is None:
            self._status = StatusFile()
        sample = make_sample(t_ms, step, self._status.read(), self._arrow_allocated(), allocator, nmt)
        sample["cost_us"] = round((time.perf_counter() - began) * 1e6, 1)
        return sample

    def failure_line(self) -> str | None:
        """One line for a sampler that died (``OSError: [Errno 28] No space left on device``), else None."""
        if self.failure is None:
            return None
        return f"the sampler thread died: {type(self.failure).__name__}: {self.failure}"

    def _loop(self) -> None:
        try:
            # This thread is the workbench's alone: its allocations stay out of the program's arenas (jemalloc),
            # so sampling an idle program does not tick their dirty-page decay.
            enter_own_arena(self._allocator)
            self._sample_until_stopped()
        except BaseException as exc:  # a timeline with a hole is not a timeline: the run reports it and fails
            self.failure = exc

    def _sample_until_stopped(self) -> None:
        # A sample is on disk as soon as it is taken (whole lines only), so a crash keeps everything before it.
        with appending(self._path) as out:
            count = 0
            next_at = time.perf_counter()
            while not self._stop.is_set():
                with self._exclusive:
                    began = time.perf_counter()
                    out.write_line(json.dumps(self._sample(count)))
                    self.cost_s += time.perf_counter() - began
                self.samples += 1
                count += 1
                next_at += self._interval
                self._stop.wait(max(0.0, next_at - time.perf_counter()))
