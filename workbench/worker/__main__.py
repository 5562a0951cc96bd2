"""``python -m workbench.worker SPEC EVENTS_FD``: run one scenario, one JSON line per event on EVENTS_FD."""

from __future__ import annotations

import os
import sys
import threading
import traceback
from pathlib import Path
from typing import TextIO

# numpy is never imported in this process: JPype and pyarrow import it when it is installed (0.1 s, and OpenBLAS's
# thread with its stack and buffers in the measured process), and nothing the worker runs uses it (pyarrow's compute
# and its JVM bridge work without it). Set before anything imports JPype (the events import the probes).
sys.modules.setdefault("numpy", None)  # type: ignore[arg-type]  # Python's own way to make an import fail

from workbench.protocol.events import Done, Event, StepFailed, encode  # noqa: E402
from workbench.protocol.lifetime import die_with_parent  # noqa: E402
from workbench.protocol.spec import WorkerSpec  # noqa: E402


class EventStream:
    """JSON lines written and flushed one by one, so the run keeps them if this process dies; whole lines also when
    a ``threads`` step's threads emit at once."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = encode(event)
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


def main(argv: list[str]) -> int:
    spec = WorkerSpec.read(Path(argv[1]))
    # Killed with the workbench, even by SIGKILL: nothing is left appending samples under PID 1.
    die_with_parent(spec.parent_pid)
    emit = EventStream(os.fdopen(int(argv[2]), "w", encoding="utf-8"))
    # Imported after the event stream exists: these load pyarrow and JPype, which can fail in a broken install.
    from workbench.worker.session import Session, StepError

    try:
        Session(spec, emit).run()
    except StepError as failure:
        emit(failure.event)
        return 3
    except BaseException as exc:  # a bug: report it, keep the traceback in the worker's log
        traceback.print_exc()
        emit(StepFailed(type=type(exc).__name__, message=str(exc), bug=True))
        return 3
    emit(Done())
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip JVM teardown at interpreter exit: nothing is left to measure and it can stall on non-daemon threads.
    os._exit(code)
