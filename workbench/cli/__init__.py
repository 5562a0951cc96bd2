"""The ``workbench`` command: ``main(argv) -> int``. The typer app and its commands are in ``_app`` and imported
only once a Ctrl-C during the imports can no longer give a traceback (they take half a second)."""

from __future__ import annotations

# Only modules the interpreter has already loaded, or built in: a Ctrl-C while these are imported has no handler yet.
import _signal  # type: ignore[import-not-found]  # signal without its enums (not loaded at start-up)
import codecs
import gc
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

    from workbench.cli._app import app as app

_ERRORS = "workbench.readable"
# What an ASCII terminal shows instead; anything else not encodable is written as a Python escape (\u00b5).
_ASCII = {"\u2026": "...", "\u2022": "*", "\u00b5": "u", "\u2013": "-", "\u2014": "-", "\u2192": "->",
          "\u00d7": "x", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "}


def _readable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start:error.end]
    return "".join(_ASCII.get(c) or c.encode("ascii", "backslashreplace").decode("ascii") for c in text), error.end


def _readable_output() -> None:
    """stdout and stderr degrade what they cannot encode (an ASCII terminal, a file name with undecodable bytes)
    instead of raising UnicodeEncodeError."""
    codecs.register_error(_ERRORS, _readable)
    for stream in (sys.__stdout__, sys.__stderr__):
        if stream is not None and stream.errors in ("strict", "backslashreplace"):
            stream.flush()
            stream.reconfigure(errors=_ERRORS)


def _interrupted_early(signum: int, frame: FrameType | None) -> None:
    # Nothing has started yet (no process, no file): quietly gone, as a shell expects of Ctrl-C.
    os.write(2, b"workbench: interrupted\n")
    os._exit(130)


def commands_take_interrupts() -> None:
    """From here on Ctrl-C raises KeyboardInterrupt, which the commands handle (the run stops, its report kept)."""
    if _signal.getsignal(_signal.SIGINT) is _interrupted_early:
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)


def imports_done() -> None:
    """The collector back on, with what the imports made (modules, classes, functions: alive until the exit) frozen
    out of its passes. During the imports it would only walk that growing graph and find nothing to free: 15-20 ms of
    the 0.17-0.19 s from `workbench exec` to its program's start (median of 15 alternated runs of the imports)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's arguments); returns the exit code."""
    try:
        previous = _signal.signal(_signal.SIGINT, _interrupted_early)
    except ValueError:  # not the main thread (e.g. called from a test's thread): no handler of ours
        previous = None
    try:
        _readable_output()
        gc.disable()  # until the command's modules are imported (run_app re-enables it): see imports_done
        from workbench.cli._app import run_app

        return run_app(argv)
    finally:
        imports_done()
        if previous is not None:
            _signal.signal(_signal.SIGINT, previous)


def entry() -> None:
    """The ``workbench`` console script: ``main()``, then the process exits without the interpreter's teardown.

    What that teardown does that matters is done first (threads that are not daemons joined, ``atexit`` handlers
    run, buffered output written); what it skips is freeing every object and module one by one, which took 60-80 ms
    after a run or an exec, when nothing is left to do (the worker skips it the same way)."""
    code = main()
    threading = sys.modules.get("threading")
    if threading is not None:
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (`workbench ... | head`): what Python's own exit would ignore
            pass
    os._exit(code)


def __getattr__(name: str) -> Any:
    if name == "app":  # the typer app, e.g. for typer.testing.CliRunner
        from workbench.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
