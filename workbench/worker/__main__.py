"""``python -m workbench.worker SPEC EVENTS_FD``: run one scenario, one JSON line per event on EVENTS_FD."""

from __future__ import annotations

import os
import sys
import threading
import traceback
from pathlib import Path
from typing import TextIO

from workbench.protocol.lifetime import die_with_parent
from workbench.protocol.spec import WorkerSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from workbench.protocol.events import Event


def _import_the_rest() -> None:
    # Before the JVM's start (start_early): the session, its models and probes, and pyarrow.
    import pyarrow  # noqa: F401

    import workbench.protocol.events  # noqa: F401
    import workbench.worker.session  # noqa: F401


class EventStream:
    """JSON lines written and flushed one by one, so the run keeps them if this process dies; whole lines also when
    a ``threads`` step's threads emit at once."""

    def __init__(self, stream: TextIO) -> None:
        from workbench.protocol.events import encode

        self._encode = encode
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = self._encode(event)
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


def main(argv: list[str]) -> int:
    spec = WorkerSpec.read(Path(argv[1]))
    # Killed with the workbench, even by SIGKILL: nothing is left appending samples under PID 1.
    die_with_parent(spec.parent_pid)
    stream = os.fdopen(int(argv[2]), "w", encoding="utf-8")
    # The probes, the imports, the JVM (pyarrow and JPype can fail in a broken install: a traceback in the worker's
    # log, and the run says the worker died).
    from workbench.worker.jvm import start_early

    early = start_early(spec, imports=_import_the_rest)
    from workbench.protocol.events import Done, StepFailed
    from workbench.worker.session import Session, StepError

    emit = EventStream(stream)
    try:
        Session(spec, emit, early).run()
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
